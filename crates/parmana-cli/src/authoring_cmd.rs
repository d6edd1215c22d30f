//! Authoring the chain of trust: `keygen`, `trust init|rotate`, `bundle sign|import-legacy`, `release sign`.

mod publish;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use parmana_runtime::canon::{Digest, PolicyId, PolicyRef, PolicyVersion, Timestamp, parse_strict};
use parmana_runtime::policy::EVALUATOR_SEMANTICS;
use parmana_runtime::trust::{
    BUNDLE_MANIFEST_FILE, BundleFiles, KeyFile, LocalSigningKey, LogRole, LogSpec, NEW_FILE_MODE,
    POLICY_FILE, PublicKey, ReleaseManifestSpec, Role, RoleSpec, Signer, TrustError, TrustRootSpec,
    VerifiedTrustRoot, check_signer_role, create_trust_root, read_bundle_dir, read_key_file,
    read_legacy_bundle_dir, read_public_key_file, read_release_manifest_listing,
    verify_legacy_bundle,
};
use parmana_runtime::{
    ExecutionError, RUNTIME_VERSION, load_bundle, load_trust_history, load_trust_root,
    rotate_trust_root_file, sign_bundle_verified, sign_release_manifest_verified,
};

use publish::{lock_directory_of, publish_bundle_dir, publish_manifest};

use crate::common::{
    ClockArgs, TrustRootArgs, create_dir, create_new_file, output_exists, parse_timestamp,
    read_private_key, refuse_past_expiry, write_file,
};
use crate::config::Deployment;
use crate::exit::ExitClass;
use crate::report::{Failure, Format, print_written};
use crate::revoke::RevokeArgs;

// ---------------------------------------------------------------------------------------------
// keygen

/// Arguments of `parmana keygen`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  parmana keygen --out trust/keys/attestation.pem   # writes trust/keys/attestation.pem and trust/keys/attestation.pub\n\n`execute --key` defaults to trust/keys/attestation.pem (or `keys` in parmana.toml)."
)]
pub(crate) struct KeygenArgs {
    /// Where to write the private key (PKCS#8 PEM, mode 0600; the directory is created if
    /// missing). The public key (SPKI PEM) is written beside it with the extension `.pub`, so
    /// FILE may not end in `.pub` (`cli.usage`). Existing files are never overwritten.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Runs `parmana keygen`: prints the new key's id.
pub(crate) fn keygen(args: &KeygenArgs, format: Format) -> Result<(), Failure> {
    let public_path = args.out.with_extension("pub");
    // `--out k.pub` would name both halves one file: the public key would replace the private
    // one just written, leaving a key id printed for a key nobody holds.
    if public_path == args.out {
        return Err(Failure::new(
            "cli.usage",
            format!(
                "--out {}: the private key's file may not end in .pub (the public key is written \
                 beside it as <name>.pub)",
                args.out.display()
            ),
            ExitClass::Usage,
        ));
    }
    for path in [&args.out, &public_path] {
        refuse_existing(path)?;
    }
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(parent)?;
    }
    let key = LocalSigningKey::generate().map_err(|e| Failure::trust(&e))?;
    let private = key.to_pkcs8_pem().map_err(|e| Failure::trust(&e))?;
    let public = key.public_key().to_pem().map_err(|e| Failure::trust(&e))?;
    // Each created only where nothing is, even against another command racing for the path: a
    // key is never overwritten. A public file that cannot be created takes the private one just
    // created with it, so a failure leaves no half of a key.
    create_new_file(&args.out, private.as_bytes(), 0o600)?;
    if let Err(failure) = create_new_file(&public_path, public.as_bytes(), NEW_FILE_MODE) {
        let _ = std::fs::remove_file(&args.out);
        return Err(failure);
    }
    print_written(
        format,
        &key.key_id().to_string(),
        &serde_json::json!({
            "key_id": key.key_id().to_string(),
            "private_key": args.out.display().to_string(),
            "public_key": public_path.display().to_string(),
        }),
    )
}

/// `cli.output_exists` when something is at `path` already (the early check; what creates the
/// file checks again as it publishes it).
fn refuse_existing(path: &Path) -> Result<(), Failure> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(output_exists(path));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// trust init | rotate

/// The keys of the four roles of a trust root version.
#[derive(Debug, clap::Args)]
pub(crate) struct RoleKeyArgs {
    /// A key of the `root` role, which signs trust roots (repeat for several). Private keys
    /// (PKCS#8 PEM) also sign the new version; public keys (SPKI PEM) are only listed.
    #[arg(long, value_name = "FILE", required = true)]
    root_key: Vec<PathBuf>,
    /// A key of the `policy` role, which signs policy bundles (public or private PEM; repeatable).
    #[arg(long, value_name = "FILE", required = true)]
    policy_key: Vec<PathBuf>,
    /// A key of the `release` role, which signs release manifests (public or private PEM; repeatable).
    #[arg(long, value_name = "FILE", required = true)]
    release_key: Vec<PathBuf>,
    /// A key of the `attestation` role, which signs execution attestations (public or private PEM; repeatable).
    #[arg(long, value_name = "FILE", required = true)]
    attestation_key: Vec<PathBuf>,
    /// How many distinct `root` keys must sign a trust root (default: 1 for `trust init`; for
    /// `trust rotate`, the threshold of the version in force).
    #[arg(long, value_name = "N")]
    root_threshold: Option<u64>,
    /// How many distinct `policy` keys must sign a bundle (default: 1 for `trust init`; for
    /// `trust rotate`, the threshold of the version in force).
    #[arg(long, value_name = "N")]
    policy_threshold: Option<u64>,
    /// How many distinct `release` keys must sign a release manifest (default: 1 for `trust init`; for
    /// `trust rotate`, the threshold of the version in force).
    #[arg(long, value_name = "N")]
    release_threshold: Option<u64>,
    /// How many distinct `attestation` keys must sign an attestation (default: 1 for `trust init`; for
    /// `trust rotate`, the threshold of the version in force).
    #[arg(long, value_name = "N")]
    attestation_threshold: Option<u64>,
    /// The origin of the transparency log this version names (for example
    /// `log.example.com/parmana`; also the note key name of its keys): adds the optional `log`
    /// role, whose keys sign checkpoints (docs/transparency-log.md). Needs --log-key.
    #[arg(long, value_name = "ORIGIN", requires = "log_key")]
    log_origin: Option<String>,
    /// A key of the `log` role, which signs transparency-log checkpoints (public or private PEM;
    /// repeatable). Needs --log-origin.
    #[arg(long, value_name = "FILE", requires = "log_origin")]
    log_key: Vec<PathBuf>,
    /// How many distinct `log` keys must sign a checkpoint (default: 1; for `trust rotate` naming
    /// the log in force, its threshold). Needs --log-origin.
    #[arg(long, value_name = "N", requires = "log_origin")]
    log_threshold: Option<u64>,
    /// A witness whose cosignature every checkpoint needs, as `NAME=FILE` (its name and its
    /// public or private PEM key; repeatable). Needs --log-origin.
    #[arg(long, value_name = "NAME=FILE", requires = "log_origin")]
    witness: Vec<String>,
    /// How many distinct witnesses must cosign a checkpoint (default: 1 when --witness is given,
    /// else 0; for `trust rotate` naming the log in force, its threshold, at least 1, and fewer
    /// witnesses than that are refused). Needs --log-origin.
    #[arg(long, value_name = "N", requires = "log_origin")]
    witness_threshold: Option<u64>,
    /// When this trust root version expires (RFC 3339 UTC, for example `2027-12-31T00:00:00Z`).
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    expires: Timestamp,
}

/// A key file of either kind (public SPKI or private PKCS#8 PEM). A refused public key keeps
/// its code (`trust.weak_public_key`, `trust.non_canonical_public_key`, …).
fn key_file(path: &Path) -> Result<KeyFile, Failure> {
    read_key_file(path).map_err(|e| {
        let mut failure = Failure::trust(&e);
        failure.message = format!("{}: {}", path.display(), failure.message);
        failure
    })
}

impl RoleKeyArgs {
    /// The spec, and the private root keys given (which sign). Refuses an `--expires` that is
    /// not in the future; warns when one key holds several roles, or when the version expires
    /// within the warning window.
    fn checked_spec(
        &self,
        deployment: &Deployment,
        clock: &ClockArgs,
    ) -> Result<(TrustRootSpec, Vec<LocalSigningKey>), Failure> {
        refuse_past_expiry("--expires", self.expires, clock.now())?;
        let (spec, signers) = self.spec()?;
        warn_shared_keys(&spec);
        clock.warn_if_expiring(deployment, "the new trust root version", spec.expires)?;
        Ok((spec, signers))
    }

    /// The spec, and the private root keys given (which sign).
    fn spec(&self) -> Result<(TrustRootSpec, Vec<LocalSigningKey>), Failure> {
        let mut signers = Vec::new();
        let mut root_keys = Vec::new();
        for path in &self.root_key {
            let file = key_file(path)?;
            root_keys.push(file.public_key());
            if let KeyFile::Private(key) = file {
                signers.push(*key);
            }
        }
        let role = |paths: &[PathBuf], threshold: u64| -> Result<RoleSpec, Failure> {
            let keys = paths
                .iter()
                .map(|p| key_file(p).map(|f| f.public_key()))
                .collect::<Result<_, _>>()?;
            Ok(RoleSpec { keys, threshold })
        };
        let spec = TrustRootSpec {
            expires: self.expires,
            root: RoleSpec {
                keys: root_keys,
                threshold: self.root_threshold.unwrap_or(1),
            },
            policy: role(&self.policy_key, self.policy_threshold.unwrap_or(1))?,
            release: role(&self.release_key, self.release_threshold.unwrap_or(1))?,
            attestation: role(
                &self.attestation_key,
                self.attestation_threshold.unwrap_or(1),
            )?,
            log: match &self.log_origin {
                Some(origin) => {
                    let role = role(&self.log_key, self.log_threshold.unwrap_or(1))?;
                    Some(LogSpec {
                        origin: origin.clone(),
                        keys: role.keys,
                        threshold: role.threshold,
                        witnesses: self.witnesses()?,
                        witness_threshold: self
                            .witness_threshold
                            .unwrap_or(u64::from(!self.witness.is_empty())),
                        // Filled by `trust rotate` (see `revoke.rs`).
                        revocations: Vec::new(),
                    })
                }
                None => None,
            },
        };
        Ok((spec, signers))
    }
}

impl RoleKeyArgs {
    /// The witnesses of `--witness NAME=FILE`.
    fn witnesses(&self) -> Result<Vec<(String, PublicKey)>, Failure> {
        self.witness
            .iter()
            .map(|text| {
                let (name, path) = text.split_once('=').ok_or_else(|| {
                    Failure::new(
                        "cli.invalid_witness",
                        format!("--witness {text:?}: expected NAME=FILE"),
                        ExitClass::Usage,
                    )
                })?;
                Ok((name.to_owned(), key_file(Path::new(path))?.public_key()))
            })
            .collect()
    }
}

/// Writes `warning[cli.key_in_several_roles]` for every key listed in more than one role: one
/// compromised key then defeats the separation the roles exist for.
fn warn_shared_keys(spec: &TrustRootSpec) {
    let roles = [
        ("root", &spec.root.keys),
        ("policy", &spec.policy.keys),
        ("release", &spec.release.keys),
        ("attestation", &spec.attestation.keys),
    ];
    let log = spec.log.as_ref().map(|log| ("log", &log.keys));
    let mut holders: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, keys) in roles.into_iter().chain(log) {
        for key in keys {
            let names = holders.entry(key.key_id().to_string()).or_default();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    for (key_id, names) in holders {
        if names.len() > 1 {
            crate::report::errln!(
                "warning[cli.key_in_several_roles]: key {key_id} holds the roles {}: a compromise of it is a compromise of each",
                names.join(", ")
            );
        }
    }
}

/// `parmana trust …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TrustCommand {
    /// Create trust root version 1 and its pinned root key: writes `OUT/trust-root.json` and
    /// `OUT/root.pub` (the first --root-key, which must be a private key: it signs).
    #[command(
        after_help = "Example:\n  parmana trust init --root-key trust/keys/root.pem --policy-key trust/keys/policy.pub \\\n      --release-key trust/keys/release.pub --attestation-key trust/keys/attestation.pub \\\n      --expires 2027-12-31T00:00:00Z --out trust"
    )]
    Init(TrustInitArgs),
    /// Rotate to trust root version N+1: the current `trust-root.json` moves to
    /// `trust-root.d/<N>.json` and the new version takes its place. It must be signed by a
    /// threshold of version N's root keys (--sign-with) and of its own (private --root-key files).
    /// --trust-root must name the current file itself (not its directory or an archived
    /// version: `runtime.io`, nothing written).
    #[command(
        after_help = "Example:\n  parmana trust rotate --sign-with trust/keys/root-1.pem --root-key trust/keys/root-2.pem \\\n      --policy-key trust/keys/policy.pub --release-key trust/keys/release.pub \\\n      --attestation-key trust/keys/attestation.pub --expires 2028-12-31T00:00:00Z"
    )]
    Rotate(TrustRotateArgs),
}

/// Arguments of `parmana trust init`.
#[derive(Debug, clap::Args)]
pub(crate) struct TrustInitArgs {
    #[command(flatten)]
    roles: RoleKeyArgs,
    /// The directory to write `trust-root.json` and `root.pub` into (created if missing).
    #[arg(long, value_name = "DIR", default_value = "trust")]
    out: PathBuf,
    #[command(flatten)]
    clock: ClockArgs,
}

/// Arguments of `parmana trust rotate`.
#[derive(Debug, clap::Args)]
pub(crate) struct TrustRotateArgs {
    #[command(flatten)]
    roles: RoleKeyArgs,
    /// A private key that signs the new version: the current version's root keys (repeatable).
    #[arg(long, value_name = "FILE")]
    sign_with: Vec<PathBuf>,
    #[command(flatten)]
    revoke: RevokeArgs,
    /// Removes the `log` role the version in force has. Without it, a rotation that gives no
    /// --log-origin carries that role forward unchanged (its keys, witnesses and revocations).
    /// Without the role, attestations of a key an earlier version revoked can no longer be
    /// proven logged before the revocation (`trust.key_revoked_unproven`), and a log key has no
    /// role: `serve`, `execute` and `recover` with one configured refuse
    /// (`runtime.no_transparency_log`) until it is removed from their configuration.
    #[arg(long, conflicts_with = "log_origin")]
    drop_log: bool,
    /// Removes the witnesses of the `log` role the version in force has, when --log-origin names
    /// the same log again. Without it, such a rotation that gives no --witness carries that
    /// role's witnesses forward (and --witness-threshold, when given, applies to them): a log
    /// key rotated for the same log does not silently lose the cosignatures its checkpoints
    /// need. Needs --log-origin.
    #[arg(
        long,
        requires = "log_origin",
        conflicts_with_all = ["witness", "witness_threshold"]
    )]
    drop_witnesses: bool,
    /// The pinned root key and the current trust root (rewritten in place; the old version
    /// moves to `trust-root.d/`).
    #[command(flatten)]
    trust: TrustRootArgs,
    #[command(flatten)]
    clock: ClockArgs,
}

/// The `log` role of the version in force as the next version names it unchanged (its
/// revocations are carried as `--revoke` carries them, for the same origin).
fn carried_log(role: &LogRole) -> LogSpec {
    let (witnesses, witness_threshold) = role.witnesses();
    LogSpec {
        origin: role.origin().as_str().to_owned(),
        keys: role.keys().copied().collect(),
        threshold: role.threshold(),
        witnesses: witnesses
            .iter()
            .map(|witness| (witness.name().as_str().to_owned(), *witness.public_key()))
            .collect(),
        witness_threshold,
        revocations: Vec::new(),
    }
}

fn as_signers(keys: &[LocalSigningKey]) -> Vec<&dyn Signer> {
    let mut seen = Vec::new();
    let mut signers: Vec<&dyn Signer> = Vec::new();
    for key in keys {
        let id = key.key_id();
        if !seen.contains(&id) {
            seen.push(id);
            signers.push(key);
        }
    }
    signers
}

/// Runs `parmana trust …`.
pub(crate) fn trust(command: &TrustCommand, format: Format) -> Result<(), Failure> {
    match command {
        TrustCommand::Init(args) => trust_init(args, format),
        TrustCommand::Rotate(args) => trust_rotate(args, format),
    }
}

fn trust_init(args: &TrustInitArgs, format: Format) -> Result<(), Failure> {
    let deployment = Deployment::load()?;
    let first_root = args
        .roles
        .root_key
        .first()
        .map(|p| read_private_key(p))
        .transpose()?
        .ok_or_else(|| Failure::new("cli.usage", "--root-key is required", ExitClass::Usage))?;
    let (spec, signers) = args.roles.checked_spec(&deployment, &args.clock)?;
    let trust_root_path = args.out.join("trust-root.json");
    let root_pub_path = args.out.join("root.pub");
    refuse_existing(&trust_root_path)?;
    refuse_existing(&root_pub_path)?;
    let bytes = create_trust_root(&spec, &as_signers(&signers)).map_err(|e| Failure::trust(&e))?;
    let root_pub = first_root
        .public_key()
        .to_pem()
        .map_err(|e| Failure::trust(&e))?;
    create_dir(&args.out)?;
    // Neither file replaces one another command wrote meanwhile; the pinned key first, so that a
    // trust root is never left without it, and removed again when the trust root cannot be
    // created.
    create_new_file(&root_pub_path, root_pub.as_bytes(), NEW_FILE_MODE)?;
    if let Err(failure) = create_new_file(&trust_root_path, &bytes, NEW_FILE_MODE) {
        let _ = std::fs::remove_file(&root_pub_path);
        return Err(failure);
    }
    print_written(
        format,
        &format!(
            "trust root version 1 written to {}; pinned root key {} ({})",
            trust_root_path.display(),
            root_pub_path.display(),
            first_root.key_id()
        ),
        &serde_json::json!({
            "trust_root": trust_root_path.display().to_string(),
            "version": 1,
            "pinned_root": root_pub_path.display().to_string(),
            "pinned_root_key_id": first_root.key_id().to_string(),
        }),
    )
}

/// The thresholds `trust rotate` was not given, taken from the version in force (a rotation
/// made to replace one key must not lower a 2-of-3 root quorum to 1 unsaid): refused where the
/// keys now listed are fewer than that threshold; a threshold given lower than the one in force
/// is said. The log's threshold likewise, for a rotation naming the same log.
fn keep_thresholds(
    args: &RoleKeyArgs,
    current: &VerifiedTrustRoot,
    spec: &mut TrustRootSpec,
) -> Result<(), Failure> {
    // (the role, the threshold given, the one in force, the keys listed, the threshold set)
    fn listed<T>(keys: &[T]) -> u64 {
        u64::try_from(keys.len()).unwrap_or(u64::MAX)
    }
    let mut thresholds: Vec<(&str, Option<u64>, u64, u64, &mut u64)> = [
        (Role::Root, args.root_threshold, &mut spec.root),
        (Role::Policy, args.policy_threshold, &mut spec.policy),
        (Role::Release, args.release_threshold, &mut spec.release),
        (
            Role::Attestation,
            args.attestation_threshold,
            &mut spec.attestation,
        ),
    ]
    .into_iter()
    .map(|(role, given, keys)| {
        (
            role.as_str(),
            given,
            current.role_threshold(role),
            listed(&keys.keys),
            &mut keys.threshold,
        )
    })
    .collect();
    if let (Some(log), Some(role)) = (spec.log.as_mut(), current.log())
        && log.origin == role.origin().as_str()
    {
        let LogSpec {
            keys,
            threshold,
            witnesses,
            witness_threshold,
            ..
        } = log;
        thresholds.push((
            "log",
            args.log_threshold,
            role.threshold(),
            listed(keys),
            threshold,
        ));
        // Witnesses given anew for the same log (those carried forward keep theirs below):
        // their threshold too, at least 1.
        if !witnesses.is_empty() {
            thresholds.push((
                "witness",
                args.witness_threshold,
                role.witnesses().1.max(1),
                listed(witnesses),
                witness_threshold,
            ));
        }
    }
    for (name, given, in_force, listed, threshold) in thresholds {
        match given {
            None if in_force > listed => {
                return Err(Failure::new(
                    "cli.usage",
                    format!(
                        "the {name} threshold of trust root version {} is {in_force}, more than \
                         the {listed} {name} key(s) given: give --{name}-threshold",
                        current.version()
                    ),
                    ExitClass::Usage,
                ));
            }
            None => *threshold = in_force,
            Some(given) if given < in_force => crate::report::errln!(
                "note: the {name} threshold goes down from {in_force} (trust root version {}) \
                 to {given}",
                current.version()
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

fn trust_rotate(args: &TrustRotateArgs, format: Format) -> Result<(), Failure> {
    args.revoke.check_reason()?;
    let deployment = Deployment::load()?;
    let (mut spec, mut signers) = args.roles.checked_spec(&deployment, &args.clock)?;
    let paths = args.trust.resolve(&deployment);
    // One rotation at a time, from the first read of the chain to the new version written: two
    // at once both printed success and the last write won, and the carried log, witnesses and
    // revocations could come from a version the new one does not follow.
    let _one_at_a_time = lock_directory_of(&paths.trust_root)?;
    // Each --sign-with key must be a root key of the version in force: say which ones are.
    let history = load_trust_history(&paths.pinned_root, &paths.trust_root)
        .map_err(|e| Failure::execution(&e))?;
    let current = history.newest();
    keep_thresholds(&args.roles, current, &mut spec)?;
    if spec.log.is_none()
        && !args.drop_log
        && let Some(role) = current.log()
    {
        spec.log = Some(carried_log(role));
        crate::report::errln!(
            "note: the log role of trust root version {} ({}) is carried forward unchanged; \
             --log-origin and --log-key give another, --drop-log removes it",
            current.version(),
            role.origin()
        );
    }
    if let (Some(log), Some(role)) = (spec.log.as_mut(), current.log())
        && log.origin == role.origin().as_str()
        && log.witnesses.is_empty()
        && !args.drop_witnesses
    {
        let (witnesses, threshold) = role.witnesses();
        if !witnesses.is_empty() {
            log.witnesses = carried_log(role).witnesses;
            log.witness_threshold = args.roles.witness_threshold.unwrap_or(threshold);
            if log.witness_threshold < threshold {
                crate::report::errln!(
                    "note: the witness threshold goes down from {threshold} (trust root version \
                     {}) to {}",
                    current.version(),
                    log.witness_threshold
                );
            }
            crate::report::errln!(
                "note: the witnesses of log {} in trust root version {} ({} of them, threshold \
                 {}) are carried forward; --witness gives others, --drop-witnesses removes them",
                role.origin(),
                current.version(),
                witnesses.len(),
                log.witness_threshold
            );
        }
    }
    if let (Some(log), Some(role)) = (spec.log.as_ref(), current.log())
        && log.origin != role.origin().as_str()
        && log.witnesses.is_empty()
        && !role.witnesses().0.is_empty()
    {
        crate::report::errln!(
            "note: the witnesses of log {} in trust root version {} ({} of them) are not carried \
             to log {}: --witness names them",
            role.origin(),
            current.version(),
            role.witnesses().0.len(),
            log.origin
        );
    }
    let revocations = args.revoke.revocations(current, spec.log.as_ref())?;
    if let Some(log) = spec.log.as_mut() {
        log.revocations = revocations;
    }
    for path in &args.sign_with {
        let key = read_private_key(path)?;
        check_signer_role(current, &key.key_id(), Role::Root).map_err(|e| {
            let roots: Vec<String> = current
                .role_key_ids(Role::Root)
                .iter()
                .map(ToString::to_string)
                .collect();
            let mut failure = Failure::trust(&e);
            failure.message = format!(
                "--sign-with {}: {}; the root keys of trust root version {} are {} ({} of them must sign)",
                path.display(),
                failure.message,
                current.version(),
                roots.join(", "),
                current.role_threshold(Role::Root)
            );
            failure
        })?;
        signers.push(key);
    }
    let rotation = rotate_trust_root_file(
        &paths.pinned_root,
        &paths.trust_root,
        &spec,
        &as_signers(&signers),
        args.clock.now(),
    )
    .map_err(|e| Failure::execution(&e))?;
    print_written(
        format,
        &format!(
            "trust root version {} written to {}; version {} kept as {}",
            rotation.version,
            paths.trust_root.display(),
            rotation.previous_version,
            rotation.archived.display()
        ),
        &serde_json::json!({
            "trust_root": paths.trust_root.display().to_string(),
            "version": rotation.version,
            "previous_version": rotation.previous_version,
            "archived": rotation.archived.display().to_string(),
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// bundle sign | import-legacy

/// `parmana bundle …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum BundleCommand {
    /// Sign a policy bundle directory: checks that --key holds the `policy` role in the trust
    /// root in force and that policy.json is a valid policy, then writes `bundle.json` with the
    /// digest of every other file, signed by --key — only after checking the bundle verifies
    /// under the trust root as `execute` will verify it. Prints `ID@VERSION BUNDLE_DIGEST`, the
    /// line a release manifest lists.
    #[command(
        after_help = "Example:\n  parmana bundle sign policies/claims-approval/1.0.0 --key trust/keys/policy.pem"
    )]
    Sign(BundleSignArgs),
    /// Re-issue a bundle of the original TypeScript tooling as a signed bundle of ours.
    ///
    /// The legacy bundle (bundle.manifest.json, bundle.sig, policy.json) must verify against
    /// --legacy-key: signature, bundle hash and every artifact hash. Its policy must compile
    /// with our evaluator. The artifacts are then copied to --out byte for byte — the schema
    /// 1.0.0 policy.json is kept as it is, not translated, because our evaluator reads schema
    /// 1.0.0 (with the fail-closed fixes) and the policy digest stays that of the bytes the old
    /// tooling signed — and a `bundle.json` signed with --key is written beside them. The
    /// bundle keeps the legacy id and version (for example `claims-approval@v1`); list it in a
    /// release manifest (`parmana release sign`) to execute it.
    #[command(
        after_help = "Example:\n  parmana bundle import-legacy legacy/claims-approval/v1 --legacy-key legacy-bundle-signing.pub \\\n      --key trust/keys/policy.pem --out policies/claims-approval/v1"
    )]
    ImportLegacy(ImportLegacyArgs),
}

/// Arguments of `parmana bundle sign`.
#[derive(Debug, clap::Args)]
pub(crate) struct BundleSignArgs {
    /// The bundle directory `<id>/<version>/`: policy.json and any other files; `bundle.json` is
    /// (re)written. `tests/` holds the policy's test cases: they are run, not signed.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The signing key (PKCS#8 PEM) of the `policy` role.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Sign even when some of the policy's test cases fail (they are reported). Policy errors
    /// always refuse.
    #[arg(long)]
    allow_failing_tests: bool,
    #[command(flatten)]
    trust: TrustRootArgs,
    #[command(flatten)]
    clock: ClockArgs,
}

/// Arguments of `parmana bundle import-legacy`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportLegacyArgs {
    /// The legacy bundle directory.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The legacy tooling's signing public key (SPKI PEM).
    #[arg(long, value_name = "PUB")]
    legacy_key: PathBuf,
    /// The signing key (PKCS#8 PEM) of the `policy` role for the new bundle.
    #[arg(long, value_name = "POLICY_KEY")]
    key: PathBuf,
    /// The new bundle directory (created; it must not already hold files).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    trust: TrustRootArgs,
    #[command(flatten)]
    clock: ClockArgs,
}

/// Runs `parmana bundle …`.
pub(crate) fn bundle(command: &BundleCommand, format: Format) -> Result<(), Failure> {
    match command {
        BundleCommand::Sign(args) => bundle_sign(args, format),
        BundleCommand::ImportLegacy(args) => import_legacy(args, format),
    }
}

/// The name a bundle is signed under; an id or version outside the grammar is refused as the
/// bundle manifest would refuse it.
fn bundle_policy_ref(id: &str, version: &str) -> Result<PolicyRef, Failure> {
    let document = "parmana/bundle".to_owned();
    let id = PolicyId::parse(id).map_err(|error| {
        Failure::trust(&TrustError::InvalidPolicyId {
            document: document.clone(),
            error,
        })
    })?;
    let version = PolicyVersion::parse(version)
        .map_err(|error| Failure::trust(&TrustError::InvalidPolicyVersion { document, error }))?;
    Ok(PolicyRef::new(id, version))
}

/// The bundle digest of `bundle.json` bytes: the digest of the JCS of its `signed` part.
fn bundle_digest(bundle_json: &[u8]) -> Result<Digest, Failure> {
    let value = parse_strict(bundle_json).map_err(|e| Failure::canon("bundle.json", &e))?;
    let signed = value.get("signed").ok_or_else(|| {
        Failure::new(
            "trust.malformed",
            "bundle.json has no signed part",
            ExitClass::Trust,
        )
    })?;
    Digest::of_canonical(signed).map_err(|e| Failure::canon("bundle.json", &e))
}

/// Reads the signing key and the trust root in force (warning when it expires soon), and
/// refuses a key without `role` before anything else is read or written.
fn authoring_key(
    key: &Path,
    trust: &TrustRootArgs,
    clock: &ClockArgs,
    deployment: &Deployment,
    role: Role,
) -> Result<(LocalSigningKey, VerifiedTrustRoot), Failure> {
    let signer = read_private_key(key)?;
    let paths = trust.resolve(deployment);
    let trust_root = load_trust_root(&paths.pinned_root, &paths.trust_root, clock.now())
        .map_err(|e| Failure::execution(&e))?;
    clock.warn_if_expiring(
        deployment,
        &format!("the trust root (version {})", trust_root.version()),
        trust_root.expires(),
    )?;
    check_signer_role(&trust_root, &signer.key_id(), role).map_err(|e| {
        let mut failure = Failure::trust(&e);
        failure.message = format!(
            "{}: {} (trust root version {})",
            key.display(),
            failure.message,
            trust_root.version()
        );
        failure
    })?;
    Ok((signer, trust_root))
}

fn bundle_sign(args: &BundleSignArgs, format: Format) -> Result<(), Failure> {
    let deployment = Deployment::load()?;
    let (signer, trust_root) = authoring_key(
        &args.key,
        &args.trust,
        &args.clock,
        &deployment,
        Role::Policy,
    )?;
    if !args.dir.is_dir() {
        return Err(Failure::trust(&TrustError::NotABundleDirectory {
            path: args.dir.display().to_string(),
        }));
    }
    let policy_path = args.dir.join(POLICY_FILE);
    // The directory is read once: the policy checked and tested below is the one signed (a
    // second read could sign a policy changed in between, never checked).
    // What an interrupted sign left (its temporary file) is removed, never signed in.
    parmana_runtime::trust::remove_interrupted_writes(&args.dir);
    let files = read_bundle_dir(&args.dir).map_err(|e| Failure::trust(&e))?;
    let Some(policy_bytes) = files.get(POLICY_FILE) else {
        // Refused as reading it alone refuses it (it is not there, or not a file).
        return Err(crate::policy_cmd::read_policy(&policy_path)
            .err()
            .unwrap_or_else(|| {
                Failure::trust(&TrustError::NotABundleDirectory {
                    path: args.dir.display().to_string(),
                })
            }));
    };
    // The checks `policy check` runs: warnings are printed, errors refuse.
    let report = parmana_runtime::policy::check(policy_bytes);
    if !report.diagnostics.is_empty() {
        crate::report::errw!("{}", report.render());
    }
    let policy = report
        .into_result()
        .map_err(|e| Failure::policy(&policy_path.display().to_string(), &e))?;
    // Schema 2.0.0 policies name themselves; a legacy policy takes its directory's names.
    let from_dirs = || {
        let version = args.dir.file_name()?.to_str()?.to_owned();
        let id = args.dir.parent()?.file_name()?.to_str()?.to_owned();
        Some((id, version))
    };
    let (id, version) = match (policy.policy_id(), policy.policy_version()) {
        (Some(id), Some(version)) => (id.to_owned(), version.to_owned()),
        _ => from_dirs().ok_or_else(|| {
            Failure::new(
                "cli.policy_unnamed",
                "the policy does not name itself and the directory is not <id>/<version>",
                ExitClass::InvalidInput,
            )
        })?,
    };
    if let Some((dir_id, dir_version)) = from_dirs()
        && (dir_id != id || dir_version != version)
    {
        return Err(Failure::new(
            "cli.bundle_directory_mismatch",
            format!(
                "{} is {dir_id}/{dir_version}/, but its policy is {id}@{version}: a bundle lives in <id>/<version>/",
                args.dir.display()
            ),
            ExitClass::InvalidInput,
        ));
    }
    crate::policy_cmd::gate_on_tests(&policy, &args.dir, args.allow_failing_tests)?;
    let policy = bundle_policy_ref(&id, &version)?;
    let bytes = sign_bundle_verified(&trust_root, &policy, &files, &signer)
        .map_err(|e| Failure::execution(&e))?;
    write_file(&args.dir.join(BUNDLE_MANIFEST_FILE), &bytes)?;
    let digest = bundle_digest(&bytes)?;
    print_written(
        format,
        &format!("{id}@{version} {digest}"),
        &serde_json::json!({
            "policy": format!("{id}@{version}"),
            "bundle_digest": digest.to_string(),
            "bundle": args.dir.display().to_string(),
        }),
    )
}

fn import_legacy(args: &ImportLegacyArgs, format: Format) -> Result<(), Failure> {
    let deployment = Deployment::load()?;
    let (signer, trust_root) = authoring_key(
        &args.key,
        &args.trust,
        &args.clock,
        &deployment,
        Role::Policy,
    )?;
    let legacy_key = read_public_key_file(&args.legacy_key).map_err(|e| Failure::trust(&e))?;
    let files = read_legacy_bundle_dir(&args.dir).map_err(|e| Failure::trust(&e))?;
    let legacy = verify_legacy_bundle(&files, &legacy_key).map_err(|e| Failure::trust(&e))?;
    let policy_bytes = legacy.files().get(POLICY_FILE).ok_or_else(|| {
        Failure::new(
            "trust.bundle_file_missing",
            "the legacy bundle has no policy.json",
            ExitClass::Trust,
        )
    })?;
    parmana_runtime::policy::compile(policy_bytes).map_err(|e| {
        Failure::policy(
            &format!("{} (legacy policy)", args.dir.join(POLICY_FILE).display()),
            &e,
        )
    })?;
    if args.out.exists()
        && std::fs::read_dir(&args.out)
            .map_err(|e| Failure::io(&args.out.display().to_string(), &e))?
            .next()
            .is_some()
    {
        return Err(Failure::new(
            "cli.output_exists",
            format!("{} is not empty; not overwriting it", args.out.display()),
            ExitClass::Io,
        ));
    }
    let mut files: BundleFiles = legacy.files().clone();
    files.remove(BUNDLE_MANIFEST_FILE);
    let policy = bundle_policy_ref(legacy.policy_id(), legacy.policy_version())?;
    // Signed and verified in memory first: a refusal writes nothing.
    let bundle = sign_bundle_verified(&trust_root, &policy, &files, &signer)
        .map_err(|e| Failure::execution(&e))?;
    files.insert(BUNDLE_MANIFEST_FILE.to_owned(), bundle.clone());
    publish_bundle_dir(&args.out, &files)?;
    let (policy, digest) = (
        format!("{}@{}", legacy.policy_id(), legacy.policy_version()),
        bundle_digest(&bundle)?,
    );
    print_written(
        format,
        &format!("{policy} {digest}"),
        &serde_json::json!({
            "policy": policy,
            "bundle_digest": digest.to_string(),
            "bundle": args.out.display().to_string(),
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// release sign

/// `parmana release …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ReleaseCommand {
    /// Sign a release manifest listing every bundle under --policies-root
    /// (`<id>/<version>/bundle.json`). --key must hold the `release` role in the trust root in
    /// force. Each bundle must verify under the trust root, hold a valid policy, and sit in the
    /// directory its id and version name (two directories claiming one `id@version` are
    /// refused); only listed bundles can execute. The manifest is verified as `execute` will
    /// verify it before it is written. An existing --out is replaced only with --force, and only
    /// by a higher --version; signers in one directory take turns (a lock on it), so that one
    /// never replaces what another wrote meanwhile. A warning names the policies the replaced
    /// manifest listed and the new one does not, or says the new one lists none.
    #[command(
        after_help = "Example:\n  parmana release sign --key trust/keys/release.pem --policies-root policies \\\n      --version 2 --expires 2027-12-31T00:00:00Z --out release-manifest.json --force"
    )]
    Sign(ReleaseSignArgs),
}

/// Arguments of `parmana release sign`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReleaseSignArgs {
    /// The signing key (PKCS#8 PEM) of the `release` role.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The directory holding `<id>/<version>/` bundles
    /// [env: PARMANA_POLICIES; config: policies; default: policies].
    #[arg(long, value_name = "DIR")]
    policies_root: Option<PathBuf>,
    /// The manifest version: higher than any released before (runtimes refuse older ones), and
    /// higher than the version of the manifest --out replaces.
    #[arg(long, value_name = "N")]
    version: u64,
    /// When the manifest expires (RFC 3339 UTC).
    #[arg(long, value_name = "RFC3339", value_parser = parse_timestamp)]
    expires: Timestamp,
    /// The lowest runtime version allowed to execute these policies.
    #[arg(long, value_name = "VERSION", default_value = RUNTIME_VERSION)]
    minimum_runtime_version: String,
    /// Where to write the manifest
    /// [env: PARMANA_RELEASE_MANIFEST; config: release_manifest; default: release-manifest.json].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace an existing --out. It must be a release manifest whose version can be read
    /// (signatures and expiry are not checked: it may be expired or signed by a rotated key),
    /// and --version must be higher than that version.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    trust: TrustRootArgs,
    #[command(flatten)]
    clock: ClockArgs,
}

/// Runs `parmana release …`.
pub(crate) fn release(command: &ReleaseCommand, format: Format) -> Result<(), Failure> {
    let ReleaseCommand::Sign(args) = command;
    refuse_past_expiry("--expires", args.expires, args.clock.now())?;
    let deployment = Deployment::load()?;
    let (signer, trust_root) = authoring_key(
        &args.key,
        &args.trust,
        &args.clock,
        &deployment,
        Role::Release,
    )?;
    args.clock
        .warn_if_expiring(&deployment, "the new release manifest", args.expires)?;
    // The deployment's files, as every other command finds them.
    let policies_root = deployment
        .path(crate::config::POLICIES, args.policies_root.as_deref())
        .value;
    let out = deployment
        .path(crate::config::RELEASE_MANIFEST, args.out.as_deref())
        .value;
    // One `release sign` at a time in --out's directory: for concurrent signers, the check of
    // what --out holds and its replacement are one step (two --force runs cannot both replace
    // version 2, the later one rolling the earlier's higher version back).
    let _signing = lock_directory_of(&out)?;
    let replaced = check_replaced_manifest(args, &out)?;
    let spec = ReleaseManifestSpec {
        version: args.version,
        expires: args.expires,
        evaluator_semantics: EVALUATOR_SEMANTICS.to_owned(),
        minimum_runtime_version: args.minimum_runtime_version.clone(),
        policies: released_policies(&trust_root, &policies_root)?,
    };
    let bytes = sign_release_manifest_verified(&trust_root, &spec, &signer, args.clock.now())
        .map_err(|e| Failure::execution(&e))?;
    publish_manifest(&out, &bytes, replaced.as_ref().map(|r| r.bytes.as_slice()))?;
    warn_withdrawn(&spec, replaced.as_ref().map(|r| &r.policies));
    print_written(
        format,
        &format!(
            "release manifest version {} with {} polic{} written to {}",
            spec.version,
            spec.policies.len(),
            if spec.policies.len() == 1 { "y" } else { "ies" },
            out.display()
        ),
        &serde_json::json!({
            "release_manifest": out.display().to_string(),
            "version": spec.version,
            "policies": spec
                .policies
                .iter()
                .map(|(policy, digest)| (policy.to_string(), digest.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }),
    )
}

/// The release manifest `release sign --force` replaces.
struct ReplacedManifest {
    bytes: Vec<u8>,
    /// The policies it lists (as it states them: its signatures are not checked).
    policies: BTreeSet<PolicyRef>,
}

/// Says what a new release manifest stops releasing, before it is published:
/// `warning[cli.no_policy_released]` when it lists no policy at all (every execution under it
/// is refused), and `warning[cli.policies_withdrawn]` naming each policy the manifest it
/// replaces listed and it does not (a bundle directory moved or removed by mistake withdraws
/// that policy from every deployment the manifest reaches).
fn warn_withdrawn(spec: &ReleaseManifestSpec, replaced: Option<&BTreeSet<PolicyRef>>) {
    if spec.policies.is_empty() {
        crate::report::errln!(
            "warning[cli.no_policy_released]: release manifest version {} lists no policy: every \
             execution under it is refused (runtime.policy_not_found)",
            spec.version
        );
        return;
    }
    let withdrawn: Vec<String> = replaced
        .into_iter()
        .flatten()
        .filter(|policy| !spec.policies.contains_key(*policy))
        .map(ToString::to_string)
        .collect();
    if !withdrawn.is_empty() {
        crate::report::errln!(
            "warning[cli.policies_withdrawn]: release manifest version {} no longer releases {}: \
             executions of {} are refused once it is in force",
            spec.version,
            withdrawn.join(", "),
            if withdrawn.len() == 1 { "it" } else { "them" }
        );
    }
}

/// Refuses to replace an existing --out without --force, one whose version cannot be read
/// (fail closed: the rollback check needs it; move it away by hand after looking at it), and
/// a --version not higher than the one it replaces. Returns the manifest to be replaced,
/// `None` when nothing is there.
fn check_replaced_manifest(
    args: &ReleaseSignArgs,
    path: &Path,
) -> Result<Option<ReplacedManifest>, Failure> {
    let out = path.display().to_string();
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Failure::io(&out, &e)),
        Ok(_) if !args.force => {
            return Err(Failure::new(
                "cli.output_exists",
                format!(
                    "{out} already exists; not overwriting it (--force replaces it with a higher --version)"
                ),
                ExitClass::Io,
            ));
        }
        Ok(_) => {}
    }
    // Bounded: a file past the manifest's limit is refused by the version check below.
    let bytes =
        crate::common::read_bounded(path, parmana_runtime::trust::MAX_RELEASE_MANIFEST_BYTES)?;
    let (replaced, policies) = read_release_manifest_listing(&bytes).map_err(|e| {
        let mut failure = Failure::trust(&e);
        failure.message = format!(
            "{out}: {}; not replacing a file whose release-manifest version cannot be read (move it away first)",
            failure.message
        );
        failure
    })?;
    if args.version <= replaced {
        return Err(Failure::new(
            "cli.version_not_higher",
            format!(
                "--version {} is not higher than version {replaced} of the release manifest {out} replaces",
                args.version
            ),
            ExitClass::InvalidInput,
        ));
    }
    Ok(Some(ReplacedManifest { bytes, policies }))
}

/// Every bundle under `root`, verified, with a valid policy, in the directory its name says:
/// `<id>@<version>` → bundle digest. Refuses two directories claiming one name
/// (`cli.duplicate_policy`) and a directory whose `<id>/<version>` differs from what its
/// bundle or its policy declares (`runtime.policy_identity_mismatch`, as `execute` would).
fn released_policies(
    trust_root: &VerifiedTrustRoot,
    root: &Path,
) -> Result<BTreeMap<PolicyRef, Digest>, Failure> {
    let mut policies = BTreeMap::new();
    let mut found_in: BTreeMap<PolicyRef, PathBuf> = BTreeMap::new();
    for dir in bundle_dirs(root)? {
        let in_dir = |failure: Failure| Failure {
            message: format!("{}: {}", dir.display(), failure.message),
            ..failure
        };
        let bundle = load_bundle(trust_root, &dir).map_err(|e| in_dir(Failure::execution(&e)))?;
        let policy = parmana_runtime::policy::compile(bundle.policy_bytes())
            .map_err(|e| Failure::policy(&dir.join(POLICY_FILE).display().to_string(), &e))?;
        let name = bundle.policy_ref();
        if let Some(first) = found_in.get(&name) {
            return Err(Failure::new(
                "cli.duplicate_policy",
                format!(
                    "{name} is claimed by two bundle directories, {} and {}: give each its own policy_version",
                    first.display(),
                    dir.display()
                ),
                ExitClass::Trust,
            ));
        }
        let location = dir_name(&dir);
        // Schema 2.0.0 policies name themselves; legacy 1.0.0 policies take the bundle's name.
        let declared = match (policy.policy_id(), policy.policy_version()) {
            (Some(id), Some(version)) => format!("{id}@{version}"),
            _ => name.to_string(),
        };
        for declared in [name.to_string(), declared] {
            if declared != location {
                return Err(in_dir(Failure::execution(
                    &ExecutionError::PolicyIdentityMismatch {
                        policy: location,
                        declared,
                    },
                )));
            }
        }
        found_in.insert(name.clone(), dir);
        policies.insert(name, bundle.bundle_digest());
    }
    Ok(policies)
}

/// `<id>@<version>` as the directory `…/<id>/<version>` spells it.
fn dir_name(dir: &Path) -> String {
    let name = |path: Option<&Path>| {
        path.and_then(Path::file_name)
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    format!("{}@{}", name(dir.parent()), name(Some(dir)))
}

/// Every `<id>/<version>/` directory under `root`, sorted. A name starting with `.` is no
/// policy id or version (as `policy check` skips it): the staging directory an interrupted
/// `bundle import-legacy` left (`.VERSION.import.PID-NANOS.tmp`), an editor's or a tool's.
fn bundle_dirs(root: &Path) -> Result<Vec<PathBuf>, Failure> {
    bundle_dirs_within(root, MAX_RELEASED_BUNDLES)
}

/// [`bundle_dirs`], at most `max` directories (ids and versions together) listed: counted as
/// they are listed, before any is read, so that past what a release manifest can list the tree
/// is refused without verifying one bundle.
fn bundle_dirs_within(root: &Path, max: usize) -> Result<Vec<PathBuf>, Failure> {
    let mut listed = 0_usize;
    let mut list = |dir: &Path| -> Result<Vec<PathBuf>, Failure> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| Failure::io(&dir.display().to_string(), &e))?;
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Failure::io(&dir.display().to_string(), &e))?;
            if entry.path().is_dir() && !entry.file_name().to_string_lossy().starts_with('.') {
                listed += 1;
                if listed > max {
                    return Err(Failure::new(
                        "cli.usage",
                        format!(
                            "more than {max} directories under {}: more policies than a release \
                             manifest lists (4 MiB)",
                            root.display()
                        ),
                        ExitClass::Usage,
                    ));
                }
                dirs.push(entry.path());
            }
        }
        dirs.sort();
        Ok(dirs)
    };
    let mut bundles = Vec::new();
    for id_dir in list(root)? {
        bundles.extend(list(&id_dir)?);
    }
    Ok(bundles)
}

/// The most directories `release` lists under its policies root (ids and versions together):
/// more than a release manifest of 4 MiB can name, at about 100 bytes a policy.
const MAX_RELEASED_BUNDLES: usize = 50_000;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// `release` lists at most so many bundle directories, counted before any is read: one more
    /// is refused (`cli.usage`), however many there are.
    #[test]
    fn release_lists_a_bounded_number_of_bundle_directories() {
        let dir = tempfile::tempdir().unwrap();
        for (id, version) in [("a", "1.0.0"), ("a", "2.0.0"), ("b", "1.0.0")] {
            std::fs::create_dir_all(dir.path().join(id).join(version)).unwrap();
        }
        // Two ids and three versions: five directories listed.
        assert_eq!(bundle_dirs_within(dir.path(), 5).unwrap().len(), 3);
        let refused = bundle_dirs_within(dir.path(), 4).unwrap_err();
        assert_eq!(refused.code, "cli.usage", "{}", refused.message);
    }
}
