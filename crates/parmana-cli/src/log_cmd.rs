//! `parmana log …`: the transparency log over the replay store's ledger — the batched sequencer, signed and stored checkpoints, offline inclusion proofs of executions, consistency with an older checkpoint, witness cosignatures.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use parmana_runtime::canon::ExecutionId;
use parmana_runtime::replay::ReplayStore;
use parmana_runtime::trust::{
    CosignerKey, LocalSigningKey, MAX_NOTE_BYTES, MAX_RELEASE_MANIFEST_BYTES, NoteKeyName,
    VerifiedTrustHistory, VerifiedTrustRoot, signed_release_manifest_version, tlog_hash_text,
};
use parmana_runtime::{
    ExecutionError, LockedWitnessState, LogSequencer, LogSigning, SequenceReport, WitnessStateOpen,
    load_trust_history, load_trust_root, log_consistency, parse_execution_id, prove_execution,
    read_witness_state, sign_log_checkpoint, signers_of, verified_latest_log_checkpoint,
    witness_checkpoint,
};
use parmana_server::{WITNESS_ANSWER_TIMEOUT, WitnessServer, WitnessSettings, request_cosignature};

use crate::common::{
    ClockArgs, TrustRootArgs, create_new_file, read_bounded, read_private_key,
    warn_trust_root_expiry,
};
use crate::config::Deployment;
use crate::exit::ExitClass;
use crate::report::{Failure, Format, Json, out, outln};
use crate::store::StoreArgs;
use parmana_runtime::trust::NEW_FILE_MODE;

/// `parmana log …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum LogCommand {
    /// Print the newest stored checkpoint: a C2SP tlog-checkpoint (origin, size, base64 root
    /// hash) in a note signed by a key of the trust root's log role. With --key (repeatable): first
    /// sequence every completed execution still waiting, then sign the checkpoint of the log as it
    /// is now with each key, store it, and print it. Refused when the ledger is broken, a key does
    /// not hold the log role, fewer keys than the role's threshold are given, an entry past the
    /// newest checkpoint is not an attested execution or a marks raise above the trust root in
    /// force and the release manifest's version (its signature checked, not its expiry), or
    /// (without --key) no checkpoint is stored or the newest one stored is not signed by the
    /// trust-root chain's log role.
    #[command(after_help = "Examples:
  parmana log checkpoint > checkpoint.txt                      # the newest stored one
  parmana log checkpoint --key keys/log.pem > checkpoint.txt   # sequence, sign, store now")]
    Checkpoint(CheckpointArgs),
    /// Run the batched sequencer once: give the completed executions that wait for it their
    /// ledger positions (at most --batch, in claim-time then id order) and, with --key (keys of
    /// the log role, as many as its threshold), sign and store a checkpoint of the grown log —
    /// refused over an entry that is not an attested execution, or a marks raise above the trust
    /// root in force and the release manifest's version (its signature checked, not its
    /// expiry). Prints what it integrated.
    /// Safe while servers share the store: one integrator runs at a time, the others are told
    /// it is busy.
    #[command(after_help = "Example:\n  parmana log sequence --key keys/log.pem")]
    Sequence(SequenceArgs),
    /// Write the .tlog-proof of an execution (C2SP tlog-proof: index, inclusion proof, the
    /// checkpoint verbatim; the execution's log entry as its extra data) for a signed checkpoint
    /// that the store's log extends: the one given, or the newest stored one.
    /// `parmana verify ATTESTATION --proof FILE` checks it offline.
    #[command(after_help = "Examples:
  parmana log prove exec-42 --out exec-42.tlog-proof
  parmana log prove exec-42 --checkpoint checkpoint.txt --out exec-42.tlog-proof")]
    Prove(ProveArgs),
    /// Check that the store's log extends an older signed checkpoint (no entry rewritten or
    /// removed since) and print the RFC 9162 consistency proof from it to the current size.
    #[command(after_help = "Example:\n  parmana log consistency checkpoint-yesterday.txt")]
    Consistency(ConsistencyArgs),
    /// Act as a witness: cosign a checkpoint (C2SP tlog-cosignature, Ed25519) after checking that
    /// the log signed it and that it extends the last checkpoint this witness cosigned (kept in
    /// --state; the consistency proof is taken from the store and verified against both signed
    /// roots). Prints the cosigned checkpoint and keeps it in --state; a forked or rewritten log
    /// is refused and --state is left as it was. The state must be there, with this witness's own
    /// cosignature, unless --new-state (a witness that lost its state would cosign forks).
    ///
    /// With --serve ADDRESS instead of a checkpoint, runs the witness as an HTTP service (C2SP
    /// tlog-witness): `POST /add-checkpoint` takes `old N`, the consistency proof from N, an
    /// empty line and the checkpoint; answers 200 with the cosignature line, 409 with the size it
    /// cosigned last (text/x.tlog.size) or, in plain text, for its size with another root (a
    /// fork), 400/403/404/422 per the specification. The state is
    /// written, synced and renamed into place before each answer, so a restarted witness
    /// remembers. The first stdout line is `listening on http://ADDRESS`, the second the
    /// witness's cosigner key.
    #[command(
        after_help = "Examples:\n  # A new witness (there is no state yet; the first checkpoint is trusted on first use):\n  parmana log witness checkpoint.txt --key keys/witness.pem --name witness.example/w1 \\\n      --state witness-state.txt --new-state > checkpoint-cosigned.txt\n  # From then on the state must be there (a witness that lost it would cosign forks):\n  parmana log witness --serve 0.0.0.0:7380 --key keys/witness.pem --name witness.example/w1 \\\n      --state witness-state.txt"
    )]
    Witness(WitnessArgs),
    /// Ask a witness (C2SP tlog-witness, `POST <URL>/add-checkpoint`) to cosign a checkpoint of
    /// this store's log: sends it with the consistency proof from the size the witness last
    /// cosigned (asking the witness for that size first), checks the cosignatures of the trust
    /// root's witnesses in the answer, and prints the checkpoint with them (or writes --out), for
    /// `log prove` and `verify --proof` with a witness threshold.
    #[command(
        after_help = "Example:\n  parmana log cosign checkpoint.txt --url https://witness.example/w1 --out checkpoint-cosigned.txt"
    )]
    Cosign(CosignArgs),
    /// Print the keys of the trust root's log role as the transparency-log tools read them: the
    /// note verifier key of each log key (`<origin>+<key ID>+base64(0x01 ‖ key)`, for Go's
    /// sumdb/note and C2SP tools) and the cosigner key of each witness the role lists.
    #[command(after_help = "Example:\n  parmana log keys\n  parmana --format json log keys")]
    Keys(KeysArgs),
}

/// Arguments of `parmana log keys`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeysArgs {
    #[command(flatten)]
    trust: TrustRootArgs,
}

/// Arguments of `parmana log cosign`.
#[derive(Debug, clap::Args)]
pub(crate) struct CosignArgs {
    /// The signed checkpoint to have cosigned.
    #[arg(value_name = "CHECKPOINT")]
    checkpoint: PathBuf,
    /// The witness's submission prefix, an `http://` or `https://` URL (`<URL>/add-checkpoint`
    /// is posted to).
    #[arg(long, value_name = "URL")]
    url: String,
    /// Write the cosigned checkpoint to this file instead of standard output (created: nothing
    /// may be there, `cli.output_exists` otherwise).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace an existing --out, but only a checkpoint of the same log (its first line the
    /// log's origin): never a key or any other file.
    #[arg(long, requires = "out")]
    force: bool,
    /// A PEM file of the certificate authorities an `https://` witness's certificate must chain
    /// to, in place of the Web PKI roots built into the binary (a private or enterprise CA)
    /// [env: PARMANA_WITNESS_CA; config: server.witness_ca; no default: the Web PKI roots].
    #[arg(long, value_name = "FILE")]
    witness_ca: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    trust: TrustRootArgs,
}

/// Arguments of `parmana log witness`.
#[derive(Debug, clap::Args)]
pub(crate) struct WitnessArgs {
    /// The signed checkpoint to cosign (or --serve).
    #[arg(
        value_name = "CHECKPOINT",
        required_unless_present = "serve",
        conflicts_with = "serve"
    )]
    checkpoint: Option<PathBuf>,
    /// Serve the C2SP tlog-witness HTTP protocol on this address instead (it reads no replay
    /// store: --store is refused with it).
    #[arg(long, value_name = "ADDRESS", conflicts_with = "store")]
    serve: Option<SocketAddr>,
    /// The witness's private key (PKCS#8 PEM).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The witness's name (its note key name, for example `witness.example/w1`).
    #[arg(long, value_name = "NAME")]
    name: String,
    /// The file holding the last checkpoint this witness cosigned: it must be there (a witness
    /// that lost its state would cosign forks of what it cosigned before), unless --new-state.
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// A new witness: there is no state file yet (refused if there is one); the first
    /// checkpoint cosigned is trusted on first use and makes it. Drop it once the state exists.
    #[arg(long)]
    new_state: bool,
    /// With --serve: how long a connection may take to send a complete request head, from when
    /// it opens or from its previous answer, before it is closed, from 100 to 3600000.
    #[arg(long, value_name = "MS", default_value_t = 30_000, requires = "serve")]
    idle_timeout_ms: u64,
    /// With --serve: how long one request may take, its body's arrival included, before it is
    /// answered 503 (Retry-After, the connection closed), from 1 to 3600000.
    #[arg(long, value_name = "MS", default_value_t = 10_000, requires = "serve")]
    request_timeout_ms: u64,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    trust: TrustRootArgs,
    #[command(flatten)]
    clock: ClockArgs,
}

/// Arguments of `parmana log sequence`.
#[derive(Debug, clap::Args)]
pub(crate) struct SequenceArgs {
    /// A private key (PKCS#8 PEM) of the trust root's log role that signs the checkpoint
    /// (repeatable, as many as the role's threshold); without one the executions are sequenced
    /// and no checkpoint is signed.
    /// [env: PARMANA_LOG_KEY (a path list); config: server.log_key; no default]
    #[arg(long, value_name = "FILE")]
    key: Vec<PathBuf>,
    /// The signed release manifest whose version bounds the marks records signed (with --key)
    /// [env: PARMANA_RELEASE_MANIFEST; config: release_manifest; default: release-manifest.json].
    #[arg(long, value_name = "FILE")]
    release_manifest: Option<PathBuf>,
    /// The most executions integrated.
    #[arg(long, value_name = "N", default_value_t = parmana_runtime::replay::DEFAULT_SEQUENCE_BATCH)]
    batch: usize,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    trust: TrustRootArgs,
    #[command(flatten)]
    clock: ClockArgs,
}

/// Arguments of `parmana log checkpoint`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckpointArgs {
    /// A private key (PKCS#8 PEM) of the trust root's log role that signs a checkpoint now
    /// (repeatable, as many as the role's threshold); without one, the newest stored checkpoint
    /// is printed.
    #[arg(long, value_name = "FILE")]
    key: Vec<PathBuf>,
    /// The signed release manifest whose version bounds the marks records signed (with --key)
    /// [env: PARMANA_RELEASE_MANIFEST; config: release_manifest; default: release-manifest.json].
    #[arg(long, value_name = "FILE")]
    release_manifest: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    trust: TrustRootArgs,
    #[command(flatten)]
    clock: ClockArgs,
}

/// Arguments of `parmana log prove`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProveArgs {
    /// The execution id.
    #[arg(value_name = "EXECUTION_ID")]
    execution_id: String,
    /// The signed checkpoint to prove inclusion in (what `parmana log checkpoint` printed); the
    /// newest stored one when absent.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Write the proof to this file instead of standard output (created: nothing may be there,
    /// `cli.output_exists` otherwise).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace an existing --out, but only a proof (its first line the proof header): never a
    /// key or any other file.
    #[arg(long, requires = "out")]
    force: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    trust: TrustRootArgs,
}

/// Arguments of `parmana log consistency`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConsistencyArgs {
    /// The older signed checkpoint.
    #[arg(value_name = "OLD_CHECKPOINT")]
    old: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    trust: TrustRootArgs,
}

/// Runs `parmana log …`.
pub(crate) fn log(command: &LogCommand, format: Format) -> Result<(), Failure> {
    let deployment = Deployment::load()?;
    match command {
        LogCommand::Checkpoint(args) => {
            // A command that reads a store says first when none is named (as every other does).
            args.store.location(&deployment)?;
            let paths = args.trust.resolve(&deployment);
            if args.key.is_empty() {
                // Printed only once checked against the trust-root chain: the store is outside
                // the trust boundary, and what this prints may be published or sent to witnesses.
                let history = load_trust_history(&paths.pinned_root, &paths.trust_root)
                    .map_err(|e| Failure::execution(&e))?;
                warn_trust_root_expiry(&deployment, &args.clock, history.newest())?;
                // No key helps a trust root that names no log: say that, not that none signed.
                require_log_role(history.newest())?;
                let store = args.store.open_read_only(&deployment)?;
                let stored = verified_latest_log_checkpoint(store.as_ref(), &history)
                    .map_err(|e| Failure::execution(&e))?;
                out!("{}", stored.note);
                return Ok(());
            }
            let (history, release_manifest) = signing_environment(
                &deployment,
                &args.trust,
                args.release_manifest.as_deref(),
                &args.clock,
            )?;
            let keys = args
                .key
                .iter()
                .map(|path| read_private_key(path))
                .collect::<Result<Vec<_>, _>>()?;
            let store = args.store.open_existing(&deployment)?;
            let anchor = crate::execute_cmd::configured_log_anchor(&deployment, None)?;
            let note = sign_log_checkpoint(
                store.as_ref(),
                &history,
                args.clock.now(),
                release_manifest,
                &signers_of(&keys),
                anchor.as_ref(),
            )
            .map_err(|e| Failure::execution(&e))?;
            delivered(
                format_args!("{note}"),
                "the checkpoint was signed, and stored unless one of its size was already (a \
                 store keeps one a size)",
            )
        }
        LogCommand::Sequence(args) => sequence(args, &deployment, format),
        LogCommand::Prove(args) => {
            let id: ExecutionId =
                parse_execution_id(&args.execution_id).map_err(|e| Failure::execution(&e))?;
            args.store.location(&deployment)?;
            let paths = args.trust.resolve(&deployment);
            let history = load_trust_history(&paths.pinned_root, &paths.trust_root)
                .map_err(|e| Failure::execution(&e))?;
            let checkpoint = args
                .checkpoint
                .as_deref()
                .map(read_checkpoint)
                .transpose()?;
            let store = args.store.open_read_only(&deployment)?;
            let proof =
                prove_execution(store.as_ref(), history.newest(), &id, checkpoint.as_deref())
                    .map_err(|e| Failure::execution(&e))?;
            match &args.out {
                Some(path) => write_output(path, proof.to_text().as_bytes(), args.force),
                None => {
                    out!("{}", proof.to_text());
                    Ok(())
                }
            }
        }
        LogCommand::Witness(args) => {
            let name = NoteKeyName::parse(&args.name).map_err(|e| Failure::trust(&e))?;
            let paths = args.trust.resolve(&deployment);
            let history = load_trust_history(&paths.pinned_root, &paths.trust_root)
                .map_err(|e| Failure::execution(&e))?;
            warn_trust_root_expiry(&deployment, &args.clock, history.newest())?;
            let key = read_private_key(&args.key)?;
            let (Some(checkpoint), None) = (&args.checkpoint, args.serve) else {
                return serve_witness(args, name, key, history.newest().clone());
            };
            let checkpoint = read_checkpoint(checkpoint)?;
            let store = args.store.open_read_only(&deployment)?;
            let cosign = |previous: Option<&[u8]>| {
                witness_checkpoint(
                    store.as_ref(),
                    history.newest(),
                    previous,
                    &checkpoint,
                    &name,
                    &key,
                    args.clock.now(),
                )
                .map_err(|e| Failure::execution(&e))
            };
            // Checked first against the state as it is (reading the store's ledger for the
            // proof may take long: not while holding the lock a served witness on the same file
            // waits for), then, under the lock, again only if another witness process changed
            // the state meanwhile; replaced durably before the cosigned checkpoint is printed.
            let read = read_witness_state(&args.state).map_err(|e| Failure::execution(&e))?;
            let mut cosigned = cosign(read.as_deref())?;
            let open = if args.new_state {
                WitnessStateOpen::New
            } else {
                WitnessStateOpen::Existing
            };
            let mut state =
                LockedWitnessState::lock(&args.state, open).map_err(|e| Failure::execution(&e))?;
            if state.state() != read.as_deref() {
                cosigned = cosign(state.state())?;
            }
            state
                .replace(cosigned.as_bytes())
                .map_err(|e| Failure::execution(&e))?;
            drop(state);
            // The state moved on: a reader gone before the cosignature arrived is an error too.
            crate::report::write_stdout_delivered(format_args!("{cosigned}"))
        }
        LogCommand::Keys(args) => {
            let paths = args.trust.resolve(&deployment);
            let history = load_trust_history(&paths.pinned_root, &paths.trust_root)
                .map_err(|e| Failure::execution(&e))?;
            let role = require_log_role(history.newest())?;
            let keys: Vec<String> = role.verifiers().iter().map(ToString::to_string).collect();
            let (witnesses, witness_threshold) = role.witnesses();
            let witnesses: Vec<String> = witnesses.iter().map(ToString::to_string).collect();
            match format {
                Format::Human => {
                    for key in &keys {
                        outln!("log {key}");
                    }
                    for witness in &witnesses {
                        outln!("witness {witness}");
                    }
                }
                Format::Json => outln!(
                    "{}",
                    Json(serde_json::json!({
                        "origin": role.origin().as_str(),
                        "log_keys": keys,
                        "threshold": role.threshold(),
                        "witnesses": witnesses,
                        "witness_threshold": witness_threshold,
                    }))
                ),
            }
            Ok(())
        }
        LogCommand::Cosign(args) => {
            let scheme = args
                .url
                .split_once("://")
                .map(|(scheme, _)| scheme.to_ascii_lowercase());
            if !matches!(scheme.as_deref(), Some("http" | "https")) {
                return Err(Failure::new(
                    "cli.usage",
                    format!(
                        "--url {:?}: a witness's URL starts with http:// or https://",
                        args.url.chars().take(64).collect::<String>()
                    ),
                    ExitClass::Usage,
                ));
            }
            args.store.location(&deployment)?;
            let roots = crate::serve_cmd::read_witness_roots(
                deployment
                    .server_path(crate::config::WITNESS_CA, args.witness_ca.as_deref())
                    .as_ref(),
            )?;
            let paths = args.trust.resolve(&deployment);
            let history = load_trust_history(&paths.pinned_root, &paths.trust_root)
                .map_err(|e| Failure::execution(&e))?;
            let checkpoint = read_checkpoint(&args.checkpoint)?;
            // The witness moves its state on when it cosigns: an `--out` that would be refused
            // is refused before it is asked (a cosigned checkpoint starts with the checkpoint's
            // origin line).
            if let Some(path) = &args.out {
                check_output(path, first_line(&checkpoint), args.force)?;
            }
            let store = args.store.open_read_only(&deployment)?;
            let cosigned = cosign(
                store.as_ref(),
                history.newest(),
                &checkpoint,
                (&args.url, roots.as_ref()),
            )?;
            match &args.out {
                Some(path) => write_output(path, cosigned.as_bytes(), args.force).map_err(|f| {
                    Failure::new(
                        f.code,
                        format!(
                            "{}; the witness cosigned the checkpoint (it moved its state on): ask \
                             it again once --out can be written",
                            f.message
                        ),
                        f.class,
                    )
                }),
                None => delivered(
                    format_args!("{cosigned}"),
                    "the checkpoint was cosigned (the witness moved its state on to it); ask it \
                     again to print the cosignature",
                ),
            }
        }
        LogCommand::Consistency(args) => {
            args.store.location(&deployment)?;
            let paths = args.trust.resolve(&deployment);
            let history = load_trust_history(&paths.pinned_root, &paths.trust_root)
                .map_err(|e| Failure::execution(&e))?;
            let old = read_checkpoint(&args.old)?;
            let store = args.store.open_read_only(&deployment)?;
            let consistency = log_consistency(store.as_ref(), history.newest(), &old)
                .map_err(|e| Failure::execution(&e))?;
            let proof: Vec<String> = consistency.proof.iter().map(tlog_hash_text).collect();
            let root = tlog_hash_text(&consistency.new_root);
            match format {
                Format::Human => {
                    outln!(
                        "consistent: the log of size {} extends the checkpoint of size {} (root now {root})",
                        consistency.new_size,
                        consistency.old_size
                    );
                    for hash in &proof {
                        outln!("{hash}");
                    }
                }
                Format::Json => outln!(
                    "{}",
                    Json(serde_json::json!({
                        "old_size": consistency.old_size,
                        "new_size": consistency.new_size,
                        "new_root": root,
                        "proof": proof,
                    }))
                ),
            }
            Ok(())
        }
    }
}

/// Runs `parmana log witness --serve` until SIGTERM or SIGINT.
fn serve_witness(
    args: &WitnessArgs,
    name: NoteKeyName,
    key: LocalSigningKey,
    trust_root: VerifiedTrustRoot,
) -> Result<(), Failure> {
    let server_failure = crate::serve_cmd::server_failure;
    let listen = args.serve.ok_or_else(|| {
        Failure::new(
            "cli.usage",
            "give a CHECKPOINT to cosign, or --serve ADDRESS",
            ExitClass::Usage,
        )
    })?;
    let cosigner = CosignerKey::new(name.clone(), key.public_key());
    let server = WitnessServer::bind(WitnessSettings {
        listen,
        name,
        signer: Arc::new(key),
        state: args.state.clone(),
        new_state: args.new_state,
        trust_root,
        clock: Arc::from(args.clock.clock()),
        idle_timeout: std::time::Duration::from_millis(args.idle_timeout_ms),
        request_timeout: std::time::Duration::from_millis(args.request_timeout_ms),
    })
    .map_err(|e| server_failure(&e))?;
    let address = server.local_addr();
    // Printed once SIGTERM and SIGINT are the witness's.
    let mut announced = Ok(());
    let served = server.run(|| {
        announced = announce_witness(address, &cosigner);
        announced.is_ok()
    });
    announced?;
    served.map_err(|e| server_failure(&e))
}

/// The lines a started witness prints: where it listens and its cosigner key.
fn announce_witness(
    address: std::net::SocketAddr,
    cosigner: &impl std::fmt::Display,
) -> Result<(), Failure> {
    outln!("listening on http://{address}");
    outln!("cosigner key: {cosigner}");
    Ok(())
}

/// Has a witness cosign `checkpoint` ([`request_cosignature`]).
fn cosign(
    store: &dyn ReplayStore,
    trust_root: &VerifiedTrustRoot,
    checkpoint: &[u8],
    witness: (&str, Option<&parmana_server::WitnessRoots>),
) -> Result<String, Failure> {
    let request =
        |old_size| parmana_runtime::witness_request(store, trust_root, checkpoint, old_size);
    request_cosignature(
        &request,
        trust_root,
        checkpoint,
        witness,
        0,
        WITNESS_ANSWER_TIMEOUT,
    )
    .map_err(|e| Failure::new(e.code(), e.to_string(), ExitClass::from(e.class())))
}

/// What a log signer of this deployment signs under: the trust-root chain, its newest version in
/// force at `now` (the entries' attestations are verified against it), and the version of the
/// release manifest (`manifest`, else the deployment's), signed by that version's `release` role
/// — expired or not: it proves the version was released — above which no marks record is signed.
/// Warns when that trust root version expires soon: from then on no checkpoint is signed.
fn signing_environment(
    deployment: &Deployment,
    trust: &TrustRootArgs,
    manifest: Option<&std::path::Path>,
    clock: &ClockArgs,
) -> Result<(VerifiedTrustHistory, u64), Failure> {
    let paths = trust.resolve(deployment);
    let trust_root = load_trust_root(&paths.pinned_root, &paths.trust_root, clock.now())
        .map_err(|e| Failure::execution(&e))?;
    warn_trust_root_expiry(deployment, clock, &trust_root)?;
    let history = load_trust_history(&paths.pinned_root, &paths.trust_root)
        .map_err(|e| Failure::execution(&e))?;
    let manifest = deployment
        .path(crate::config::RELEASE_MANIFEST, manifest)
        .value;
    let bytes = read_bounded(&manifest, MAX_RELEASE_MANIFEST_BYTES)?;
    let version = signed_release_manifest_version(&trust_root, &bytes)
        .map_err(|e| Failure::execution(&e.into()))?;
    Ok((history, version))
}

/// Runs `parmana log sequence`: one run of the sequencer, and what it did.
fn sequence(args: &SequenceArgs, deployment: &Deployment, format: Format) -> Result<(), Failure> {
    let keys = crate::execute_cmd::read_log_keys(deployment, &args.key)?;
    let environment = if keys.is_empty() {
        None
    } else {
        Some(signing_environment(
            deployment,
            &args.trust,
            args.release_manifest.as_deref(),
            &args.clock,
        )?)
    };
    let anchor = crate::execute_cmd::configured_log_anchor(deployment, None)?;
    let signers = signers_of(&keys);
    let signing = environment
        .as_ref()
        .map(|(history, release_manifest)| LogSigning {
            trust_root: history.newest(),
            history,
            now: args.clock.now(),
            release_manifest: *release_manifest,
            signers: &signers,
            anchor: anchor.as_ref(),
        });
    let store = args.store.open_existing(deployment)?;
    let report = LogSequencer::new(args.batch)
        .run_anchored(store.as_ref(), signing, anchor.as_ref())
        .map_err(|e| Failure::execution(&e))?;
    print_sequence_report(&report, format)
}

/// Prints what a sequencer run did.
fn print_sequence_report(report: &SequenceReport, format: Format) -> Result<(), Failure> {
    use std::fmt::Write as _;
    let mut text = String::new();
    match format {
        Format::Human => {
            if report.busy {
                outln!("another sequencer holds the store's lock: nothing integrated");
                return Ok(());
            }
            match (report.integrated.first(), report.integrated.last()) {
                (Some(first), Some(last)) => {
                    let _ = writeln!(
                        text,
                        "integrated {} (positions {}..={}); log size {}",
                        if report.integrated.len() == 1 {
                            "1 execution".to_owned()
                        } else {
                            format!("{} executions", report.integrated.len())
                        },
                        first.position,
                        last.position,
                        report.size
                    );
                }
                _ => {
                    let _ = writeln!(text, "nothing to integrate; log size {}", report.size);
                }
            }
            for entry in &report.integrated {
                let _ = writeln!(text, "{} {}", entry.position, entry.execution_id);
            }
            if let Some(checkpoint) = &report.checkpoint {
                let _ = writeln!(
                    text,
                    "checkpoint of size {} signed and stored (root {})",
                    checkpoint.size,
                    tlog_hash_text(&checkpoint.root)
                );
            }
        }
        Format::Json => {
            let _ = writeln!(
                text,
                "{}",
                Json(serde_json::json!({
                "busy": report.busy,
                "size": report.size,
                "integrated": report.integrated.iter().map(|entry| serde_json::json!({
                    "position": entry.position,
                    "execution_id": entry.execution_id,
                })).collect::<Vec<_>>(),
                "checkpoint": report.checkpoint.as_ref().map(|checkpoint| serde_json::json!({
                    "size": checkpoint.size,
                    "root": tlog_hash_text(&checkpoint.root),
                    "note": checkpoint.note,
                })),
                }))
            );
        }
    }
    if report.integrated.is_empty() && report.checkpoint.is_none() {
        outln!("{}", text.trim_end_matches('\n'));
        return Ok(());
    }
    // What changed the store is reported to someone, or the command fails saying what it did.
    delivered(
        format_args!("{text}"),
        "the executions listed were integrated into the log (a checkpoint signed and stored where \
         one is named): `parmana ledger verify` and `parmana log checkpoint` read them back",
    )
}

/// Writes what reports a change of state to standard output ([`write_stdout_delivered`]: a
/// reader gone is an error too), the failure saying `done`, what was done all the same.
///
/// [`write_stdout_delivered`]: crate::report::write_stdout_delivered
fn delivered(text: std::fmt::Arguments<'_>, done: &str) -> Result<(), Failure> {
    crate::report::write_stdout_delivered(text).map_err(|failure| {
        Failure::new(
            failure.code,
            format!("{}; {done}", failure.message),
            failure.class,
        )
    })
}

/// Writes `bytes` (a proof or a note) to `out` durably: created where nothing is; with `force`,
/// replacing only a file whose first line is the first line of `bytes` — a file of the same kind
/// (a proof, a checkpoint of the same log), never a key or anything else a slip names.
fn write_output(out: &std::path::Path, bytes: &[u8], force: bool) -> Result<(), Failure> {
    if !force {
        return create_new_file(out, bytes, NEW_FILE_MODE);
    }
    check_output(out, first_line(bytes), true)?;
    parmana_runtime::trust::replace_file_durably(out, bytes, None)
        .map_err(|e| Failure::io(&out.display().to_string(), &e))
}

/// The first line of `bytes`, its newline included (all of them when there is none).
fn first_line(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => &bytes[..=end],
        None => bytes,
    }
}

/// Refuses, before the work whose result it will hold, an `--out` that [`write_output`] would
/// refuse (`cli.output_exists`): any file there without `--force`, and with it one whose first
/// line is not `first_line` (what this command writes starts with). [`write_output`] checks
/// again as it writes.
fn check_output(out: &std::path::Path, first_line: &[u8], force: bool) -> Result<(), Failure> {
    // The directory it goes into must be there and writable.
    let directory = out
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    #[cfg(unix)]
    rustix::fs::access(directory, rustix::fs::Access::WRITE_OK).map_err(|e| {
        Failure::io(
            &format!(
                "{} (the directory of {})",
                directory.display(),
                out.display()
            ),
            &std::io::Error::from(e),
        )
    })?;
    #[cfg(not(unix))]
    if !directory.is_dir() {
        return Err(Failure::io(
            &format!(
                "{} (the directory of {})",
                directory.display(),
                out.display()
            ),
            &std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    if !force {
        return match std::fs::symlink_metadata(out) {
            Ok(_) => Err(crate::common::output_exists(out)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Failure::io(&out.display().to_string(), &e)),
        };
    }
    let mut head = Vec::with_capacity(first_line.len());
    match std::fs::File::open(out) {
        Ok(file) => {
            use std::io::Read as _;
            let limit = u64::try_from(first_line.len()).unwrap_or(u64::MAX);
            file.take(limit)
                .read_to_end(&mut head)
                .map_err(|e| Failure::io(&out.display().to_string(), &e))?;
            if head != first_line {
                return Err(Failure::new(
                    "cli.output_exists",
                    format!(
                        "{} already exists and is not what this command writes; not overwriting \
                         it (--force replaces only a file of the same kind)",
                        out.display()
                    ),
                    ExitClass::Io,
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Failure::io(&out.display().to_string(), &e)),
    }
    Ok(())
}

/// Reads a signed checkpoint file, bounded as a signed note is (its cosignatures included).
fn read_checkpoint(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    let bytes = read_bounded(path, MAX_NOTE_BYTES)?;
    if bytes.len() > MAX_NOTE_BYTES {
        return Err(Failure::new(
            "trust.note_malformed",
            format!(
                "{}: a checkpoint is a signed note, at most {MAX_NOTE_BYTES} bytes",
                path.display()
            ),
            // The class this code has wherever the library refuses it.
            ExitClass::Trust,
        ));
    }
    Ok(bytes)
}

/// The `log` role of `trust_root`, or `runtime.no_transparency_log` when it names none.
fn require_log_role(
    trust_root: &VerifiedTrustRoot,
) -> Result<&parmana_runtime::trust::LogRole, Failure> {
    trust_root.log().ok_or_else(|| {
        Failure::execution(&ExecutionError::NoTransparencyLog {
            trust_root_version: trust_root.version(),
        })
    })
}
