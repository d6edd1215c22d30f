//! The transparency log's read API over HTTP: the signed checkpoint, every hash tile and entry bundle of a log past one full tile (rebuilt into the checkpoint's root), caching headers, 404 past the tree, scopes and the public mode, `GET /v1/executions/{id}/proof` checked offline by `parmana verify --proof`, a log anchor keeping a restarted server from signing a store rewritten under it, and a checkpoint signed once per log and reused.

use std::path::Path;

use parmana_runtime::canon::tile::{Tile, TileKind, hash_tiles};
use parmana_runtime::canon::{Digest, merkle};
use parmana_runtime::trust::{LogVerifier, NoteKeyName, NoteVerifierKey, read_public_key_file};

use crate::harness::{README_SIGNALS, Served, deployment, execution_body, parmana, tokens_file};

pub(crate) const ORIGIN: &str = "log.example/parmana";
/// The TEST-ONLY fixture key made the log's key by [`name_a_log`].
pub(crate) const LOG_KEY: &str = "trust/keys/root-1.pem";

/// Rotates the fixture trust chain (in `dir`) to a version naming the log [`ORIGIN`], whose one
/// key is the fixture key `root-1`; `extra` adds flags (witnesses).
pub(crate) fn name_a_log(dir: &Path, extra: &[&str]) {
    rotate_naming(
        dir,
        "trust/keys/attestation.pub",
        "trust/keys/root-1.pub",
        extra,
    );
}

/// A server with a dev token signing the log with [`LOG_KEY`], sequencing every 20 ms.
const SIGNING_FAST: [&str; 5] = [
    "--dev-token",
    "--log-key",
    LOG_KEY,
    "--sequence-interval-ms",
    "20",
];

/// A fresh deployment on the memory store whose trust root names the log, and a server of it
/// signing with [`LOG_KEY`] (and a dev token).
fn serving_a_log() -> (parmana_testkit::FixtureEnvironment, Served) {
    let env = deployment("memory", "");
    name_a_log(env.root(), &[]);
    let served = Served::start(env.root(), &["--dev-token", "--log-key", LOG_KEY]);
    (env, served)
}

/// Rotates the fixture trust chain (in `dir`) to a version whose `attestation` role holds the
/// public key `attestation` and whose log [`ORIGIN`] has the one key `log`.
fn rotate_naming(dir: &Path, attestation: &str, log: &str, extra: &[&str]) {
    let mut args = vec![
        "trust",
        "rotate",
        "--sign-with",
        "trust/keys/root-2.pem",
        "--root-key",
        "trust/keys/root-2.pem",
        "--policy-key",
        "trust/keys/policy.pub",
        "--release-key",
        "trust/keys/release.pub",
        "--attestation-key",
        attestation,
        "--log-origin",
        ORIGIN,
        "--log-key",
        log,
        "--expires",
        "2036-01-01T00:00:00Z",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = parmana(dir, &args);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_reload_that_rotates_the_servers_keys_out_stops_their_signing_and_turns_readyz_false() {
    let (env, served) = serving_a_log();
    let d = env.root();
    let token = served.token.clone();
    let token = token.as_deref();
    let execute = |id: &str| served.post("/v1/executions", token, &execution_body(id));
    assert_eq!(execute("before").status, 201);
    // The log key rotated out (it may have leaked): the reload is taken, no checkpoint is
    // signed with it any more, executions go on (integrated into the ledger, unsigned), and
    // `/readyz` says why.
    rotate_naming(
        d,
        "trust/keys/attestation.pub",
        "trust/keys/policy.pub",
        &[],
    );
    let reloaded = served.post("/v1/admin/reload", token, "");
    assert_eq!(reloaded.status, 200, "{}", reloaded.text);
    assert_eq!(execute("log-key-rotated").status, 201);
    let ready = served.get("/readyz", None);
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert!(ready.text.contains("log key"), "{}", ready.text);
    // The attestation key rotated out too: every execution is refused, nothing consumed.
    rotate_naming(d, "trust/keys/policy.pub", "trust/keys/root-1.pub", &[]);
    let reloaded = served.post("/v1/admin/reload", token, "");
    assert_eq!(reloaded.status, 200, "{}", reloaded.text);
    let refused = execute("attestation-key-rotated");
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (500, "runtime.signer_lacks_role"),
        "{}",
        refused.text
    );
    let unused = served.get("/v1/executions/attestation-key-rotated", token);
    assert_eq!(unused.status, 404, "{}", unused.text);
    let ready = served.get("/readyz", None);
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert!(ready.text.contains("attestation keys"), "{}", ready.text);
}

/// The log's note verifier key, as Go's `sumdb/note` reads it.
pub(crate) fn verifier_key(dir: &Path) -> NoteVerifierKey {
    NoteVerifierKey::new(
        NoteKeyName::parse(ORIGIN).unwrap(),
        read_public_key_file(&dir.join("trust/keys/root-1.pub")).unwrap(),
    )
}

/// Executes `count` claims through the server as `prefix-N`.
pub(crate) fn execute_many(served: &Served, token: Option<&str>, prefix: &str, count: usize) {
    for i in 0..count {
        let reply = served.post(
            "/v1/executions",
            token,
            &execution_body(&format!("{prefix}-{i:04}")),
        );
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    // The server's sequencer integrates completions in batches (every second by default): wait
    // until the last one has a proof — batches go in claim order, so every earlier one has too.
    let last = format!(
        "/v1/executions/{prefix}-{:04}/proof",
        count.saturating_sub(1)
    );
    for _ in 0..400 {
        let proof = served.get(&last, token);
        if proof.status == 200 {
            return;
        }
        assert_eq!(
            (
                proof.status,
                proof.code().as_str(),
                proof.header("retry-after")
            ),
            (404, "runtime.not_yet_sequenced", Some("1")),
            "{}",
            proof.text
        );
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("{last} was never sequenced: {}", served.stderr());
}

#[test]
fn the_log_is_served_as_tiles_that_rebuild_the_signed_checkpoint() {
    let env = deployment("memory", "");
    let d = env.root();
    name_a_log(d, &[]);
    let tokens = tokens_file(
        d,
        &[("all", &["execute", "read"]), ("executor", &["execute"])],
    );
    let served = Served::start(
        d,
        &["--tokens", tokens.to_str().unwrap(), "--log-key", LOG_KEY],
    );
    let all = Some("all");
    // Past one full tile of 256 entries.
    execute_many(&served, all, "tile", 300);

    let checkpoint = served.get("/log/checkpoint", all);
    assert_eq!(checkpoint.status, 200, "{}", checkpoint.text);
    assert_eq!(checkpoint.header("cache-control"), Some("no-cache"));
    let verifier = LogVerifier::new(ORIGIN, vec![verifier_key(d)], 1);
    let verified = verifier.open_checkpoint(&checkpoint.bytes).unwrap();
    let size = verified.checkpoint().size();
    assert!(size >= 300, "{size}");

    // Every tile of that size: level-0 hashes are the leaf hashes of the bundled entries, and
    // the tree they rebuild has the checkpoint's root and the level-1 tile's hashes.
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut leaves: Vec<Digest> = Vec::new();
    let mut level1 = Vec::new();
    for tile in hash_tiles(size) {
        let reply = served.get(&format!("/log/tile/{}", tile.path()), all);
        assert_eq!(reply.status, 200, "{}: {}", tile.path(), reply.text);
        let expected_cache = if tile.is_full() {
            "private, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        assert_eq!(reply.header("cache-control"), Some(expected_cache));
        assert_eq!(reply.bytes.len(), usize::from(tile.width()) * 32);
        let TileKind::Hashes { level } = tile.kind() else {
            unreachable!()
        };
        match level {
            0 => {
                let bundle_path = format!(
                    "/log/tile/{}",
                    Tile::new(TileKind::Entries, tile.index(), tile.width())
                        .unwrap()
                        .path()
                );
                let bundle = served.get(&bundle_path, all);
                assert_eq!(bundle.status, 200, "{bundle_path}");
                assert_eq!(bundle.header("cache-control"), Some(expected_cache));
                let mut rest = bundle.bytes.as_slice();
                while let Some((length, tail)) = rest.split_first_chunk::<2>() {
                    let length = usize::from(u16::from_be_bytes(*length));
                    entries.push(tail[..length].to_vec());
                    rest = &tail[length..];
                }
                for hash in reply.bytes.chunks(32) {
                    leaves.push(Digest::from_bytes(hash.try_into().unwrap()));
                }
            }
            _ => level1.extend_from_slice(&reply.bytes),
        }
    }
    assert_eq!(entries.len() as u64, size);
    let mut tree = merkle::MerkleTree::new();
    for (entry, leaf) in entries.iter().zip(&leaves) {
        assert_eq!(merkle::leaf_hash(entry), *leaf);
        tree.push(entry);
    }
    assert_eq!(tree.root(), verified.checkpoint().root());
    assert_eq!(level1, tree.stored_hash(8, 0).unwrap().as_bytes().to_vec());

    // Past the tree: 404; not a tile path: 400.
    for (path, status, code) in [
        ("/log/tile/0/001", 404, "tile.beyond_tree"),
        ("/log/tile/entries/002.p/1", 404, "tile.beyond_tree"),
        ("/log/tile/1/000.p/2", 404, "tile.beyond_tree"),
        ("/log/tile/0/x000/001", 400, "tile.malformed_path"),
        ("/log/tile/0/000.p/256", 400, "tile.malformed_path"),
        ("/log/tile/64/000", 400, "tile.malformed_path"),
        ("/log/tile/entries", 400, "tile.malformed_path"),
        // One spelling per tile: percent escapes are not it, even decoding to a tile path.
        ("/log/tile/0%2F000", 400, "tile.malformed_path"),
        ("/log/tile/0/%30%30%30", 400, "tile.malformed_path"),
    ] {
        let reply = served.get(path, all);
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (status, code),
            "{path}"
        );
        // A tile not there yet may be soon: no cache keeps the refusal.
        if status == 404 {
            assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
        }
    }
    // A full tile past the newest checkpoint the server signed is not yet committed to: served
    // `no-cache` until a checkpoint covers it, then immutable. (The entries are integrated by
    // the sequencer; asking for the tile signs nothing.)
    for i in 0..(512 - 300) {
        let reply = served.post(
            "/v1/executions",
            all,
            &execution_body(&format!("more-{i:04}")),
        );
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let mut past = served.get("/log/tile/0/001", all);
    for _ in 0..400 {
        if past.status == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
        past = served.get("/log/tile/0/001", all);
    }
    assert_eq!(past.status, 200, "{}", past.text);
    assert_eq!(past.header("cache-control"), Some("no-cache"));
    assert_eq!(served.get("/log/checkpoint", all).status, 200);
    let covered = served.get("/log/tile/0/001", all);
    assert_eq!(
        covered.header("cache-control"),
        Some("private, max-age=31536000, immutable")
    );
    assert_eq!(covered.bytes, past.bytes);
    // The read scope is needed unless the log is public.
    for path in [
        "/log/checkpoint",
        "/log/tile/0/000",
        "/v1/executions/tile-0001/proof",
    ] {
        assert_eq!(served.get(path, None).status, 401, "{path}");
        assert_eq!(served.get(path, Some("executor")).status, 403, "{path}");
    }
}

#[test]
fn a_completion_a_writer_of_the_store_inserts_is_never_signed_into_a_checkpoint() {
    let env = deployment("sqlite:state/replay.sqlite3", "");
    let root = env.root();
    name_a_log(root, &[]);
    let args = SIGNING_FAST;
    let served = Served::start(root, &args);
    let token = served.token.clone();
    let token = token.as_deref();
    execute_many(&served, token, "honest", 2);
    let signed = served.get("/log/checkpoint", token);
    assert_eq!(signed.status, 200, "{}", signed.text);
    // Whoever can write the database, holding no key, inserts a completed execution of its own
    // (here through the store's own API, on the same file).
    {
        use parmana_runtime::replay::{AcceptedVersions, ClaimOutcome, ClaimRecord, ReplayStore};
        let store =
            parmana_runtime::replay::SqliteReplayStore::open(root.join("state/replay.sqlite3"))
                .unwrap();
        let forged = parmana_runtime::canon::ExecutionId::parse("forged-1").unwrap();
        let claim = ClaimRecord::new(
            Digest::of(b"a request"),
            b"{}".to_vec(),
            parmana_runtime::canon::Timestamp::from_unix_seconds(
                i64::try_from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs(),
                )
                .unwrap(),
            )
            .unwrap(),
        );
        let under = store.accepted_versions().unwrap();
        let under = AcceptedVersions::new(under.trust_root, under.release_manifest);
        assert_eq!(
            store.claim(&forged, &claim, under).unwrap(),
            ClaimOutcome::Claimed
        );
        store
            .complete(&forged, b"{\"not\":\"an attestation\"}")
            .unwrap();
    }
    // Integrated by the sequencer (it holds no key to judge the row), never signed: the server
    // answers no checkpoint over it, twice the same, and keeps executing.
    let mut refused = None;
    for _ in 0..200 {
        let reply = served.get("/log/checkpoint", token);
        if reply.status != 200 {
            refused = Some(reply);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let refused = refused.expect("a checkpoint was signed over the forged entry");
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (500, "runtime.log_entry_unattested"),
        "{}",
        refused.text
    );
    let again = served.get("/log/checkpoint", token);
    assert_eq!(again.text, refused.text);
    let executed = served.post("/v1/executions", token, &execution_body("still-serving"));
    assert_eq!(executed.status, 201, "{}", executed.text);
}

#[test]
fn an_execution_proof_from_the_server_verifies_offline() {
    let (env, served) = serving_a_log();
    let d = env.root();
    let token = served.token.clone();
    let token = token.as_deref();
    execute_many(&served, token, "proof", 5);
    let attestation = served.get("/v1/executions/proof-0003", token);
    std::fs::write(d.join("proof-0003.json"), attestation.text.trim_end()).unwrap();
    let proof = served.get("/v1/executions/proof-0003/proof", token);
    assert_eq!(proof.status, 200, "{}", proof.text);
    assert!(
        proof.text.starts_with("c2sp.org/tlog-proof@v1\n"),
        "{}",
        proof.text
    );
    std::fs::write(d.join("proof-0003.tlog-proof"), &proof.bytes).unwrap();
    let (code, out, err) = parmana(
        d,
        &[
            "verify",
            "proof-0003.json",
            "--proof",
            "proof-0003.tlog-proof",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("log: included as entry"), "{out}");
    // Another execution's proof does not verify this attestation.
    let other = served.get("/v1/executions/proof-0001/proof", token);
    std::fs::write(d.join("other.tlog-proof"), &other.bytes).unwrap();
    let (code, _, err) = parmana(
        d,
        &["verify", "proof-0003.json", "--proof", "other.tlog-proof"],
    );
    assert_eq!(code, 7, "{err}");
    // Unknown or malformed ids.
    let unknown = served.get("/v1/executions/never-ran/proof", token);
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (404, "runtime.not_in_log")
    );
}

#[test]
fn a_public_log_needs_no_token_and_a_server_without_a_log_key_serves_none() {
    let env = deployment("memory", "");
    let d = env.root();
    name_a_log(d, &[]);
    let public = Served::start(d, &["--dev-token", "--log-key", LOG_KEY, "--log-public"]);
    let token = public.token.clone();
    execute_many(&public, token.as_deref(), "pub", 1);
    let checkpoint = public.get("/log/checkpoint", None);
    assert_eq!(checkpoint.status, 200, "{}", checkpoint.text);
    let size = LogVerifier::new(ORIGIN, vec![verifier_key(d)], 1)
        .open_checkpoint(&checkpoint.bytes)
        .unwrap()
        .checkpoint()
        .size();
    let partial = public.get(&format!("/log/tile/0/000.p/{size}"), None);
    assert_eq!(partial.status, 200, "{}", partial.text);
    assert_eq!(partial.header("cache-control"), Some("no-cache"));
    // The proof route still needs the read scope.
    assert_eq!(
        public.get("/v1/executions/pub-0000/proof", None).status,
        401
    );
    drop(public);

    let no_log = Served::start(d, &["--dev-token"]);
    let token = no_log.token.clone();
    for path in [
        "/log/checkpoint",
        "/log/tile/0/000",
        "/v1/executions/x/proof",
    ] {
        let reply = no_log.get(path, token.as_deref());
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (404, "server.log_disabled"),
            "{path}"
        );
        // Whether it serves a log is told to readers only.
        let anonymous = no_log.get(path, None);
        assert_eq!(
            (anonymous.status, anonymous.code().as_str()),
            (401, "server.unauthorized"),
            "{path}"
        );
    }
    // A key that is not the log's refuses to start; --log-public without a key is a usage error.
    for (args, code) in [
        (
            &["--dev-token", "--log-key", "trust/keys/policy.pem"][..],
            "trust.key_lacks_role",
        ),
        (&["--dev-token", "--log-public"][..], "cli.usage"),
    ] {
        let mut full = vec!["serve", "--listen", "127.0.0.1:0"];
        full.extend_from_slice(args);
        let (exit, out, err) = parmana(d, &full);
        assert_ne!(exit, 0, "{out}");
        assert!(err.contains(code), "{err}");
    }
}

#[test]
fn a_server_restarted_over_a_replaced_store_does_not_start_nor_execute_on_it() {
    // The anchor named in parmana.toml: the server and the CLI's signers read it alike.
    let env = deployment(
        "sqlite:state/replay.sqlite3",
        "[server]\nlog_anchor = \"anchor/log-anchor\"\n",
    );
    let root = env.root();
    name_a_log(root, &[]);
    let args = SIGNING_FAST;
    std::fs::create_dir_all(root.join("anchor")).unwrap();
    {
        let served = Served::start(root, &args);
        let token = served.token.clone();
        execute_many(&served, token.as_deref(), "anchored", 3);
        let checkpoint = served.get("/log/checkpoint", token.as_deref());
        assert_eq!(checkpoint.status, 200, "{}", checkpoint.text);
    }
    let anchored = std::fs::read_to_string(root.join("anchor/log-anchor")).unwrap();
    assert!(
        anchored.starts_with("parmana log anchor v1\n"),
        "{anchored}"
    );
    // Whoever can write the store replaces it (its ledger and checkpoints gone). A server
    // restarted over it with the same anchor does not start: the store does not reach the
    // checkpoint the key signed, and the ids executed before would execute again.
    for name in ["replay.sqlite3", "replay.sqlite3-wal", "replay.sqlite3-shm"] {
        let _ = std::fs::remove_file(root.join("state").join(name));
    }
    let mut serve = vec!["serve", "--listen", "127.0.0.1:0"];
    serve.extend_from_slice(&args);
    // Deleted: neither the server nor an execution makes a new, empty store there (which,
    // the anchor set aside, would let the ids cut away execute again).
    let (code, stdout, stderr) = parmana(root, &serve);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("runtime.store_not_found"), "{stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");
    let (code, _, stderr) = parmana(
        root,
        &[
            "execute",
            "--policy",
            "claims-approval@1.0.0",
            "--signals",
            README_SIGNALS,
        ],
    );
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("runtime.store_not_found"), "{stderr}");
    assert!(!root.join("state/replay.sqlite3").exists());
    // Replaced by an empty store: refused before the server listens.
    drop(
        parmana_runtime::replay::SqliteReplayStore::open(root.join("state/replay.sqlite3"))
            .unwrap(),
    );
    let (code, stdout, stderr) = parmana(root, &serve);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("runtime.store_rewound"), "{stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");
    // Nor does the CLI execute on it (an id executed before, again), recover, or sign a
    // checkpoint with the same key; no checkpoint is stored.
    let execute = |extra: [&str; 2]| {
        let mut args = vec![
            "execute",
            "--policy",
            "claims-approval@1.0.0",
            "--signals",
            README_SIGNALS,
        ];
        args.extend(extra);
        parmana(root, &args)
    };
    let (code, _, stderr) = execute(["--execution-id", "anchored-0"]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("runtime.store_rewound"), "{stderr}");
    // A memory store (a dry run) holds no history the anchor could record: not refused.
    let (code, _, stderr) = execute(["--store", "memory"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = parmana(root, &["recover"]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("runtime.store_rewound"), "{stderr}");
    let (code, _, stderr) = parmana(root, &["log", "checkpoint"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("runtime.no_checkpoint"), "{stderr}");
    let (code, _, stderr) = parmana(root, &["log", "checkpoint", "--key", LOG_KEY]);
    assert_ne!(code, 0);
    assert!(stderr.contains("runtime.store_rewound"), "{stderr}");
    // The anchor is unchanged.
    assert_eq!(
        std::fs::read_to_string(root.join("anchor/log-anchor")).unwrap(),
        anchored
    );
}

#[test]
fn a_checkpoint_is_signed_once_per_log_and_reused() {
    let env = deployment(
        "sqlite:state/replay.sqlite3",
        "[server]\nlog_anchor = \"anchor/log-anchor\"\nlog_public = true\n",
    );
    let root = env.root();
    name_a_log(root, &[]);
    std::fs::create_dir_all(root.join("anchor")).unwrap();
    let served = Served::start(
        root,
        &[
            "--dev-token",
            "--log-key",
            LOG_KEY,
            "--sequence-interval-ms",
            "20",
        ],
    );
    let token = served.token.clone();
    execute_many(&served, token.as_deref(), "reused", 2);
    let first = served.get("/log/checkpoint", None);
    assert_eq!(first.status, 200, "{}", first.text);
    // The anchor made unreadable: the same log's checkpoint is the note signed before, not a new
    // signature (which would read the anchor and be refused).
    std::fs::write(root.join("anchor/log-anchor"), "not an anchor").unwrap();
    for _ in 0..3 {
        let again = served.get("/log/checkpoint", None);
        assert_eq!(again.status, 200, "{}", again.text);
        assert_eq!(again.text, first.text);
    }
    // Once the log grows, a new checkpoint must be signed, and the anchor refuses it.
    let grown = served.post(
        "/v1/executions",
        token.as_deref(),
        &execution_body("reused-grown"),
    );
    assert_eq!(grown.status, 201, "{}", grown.text);
    let refused = (0..400).find_map(|_| {
        let reply = served.get("/log/checkpoint", None);
        if reply.status == 200 {
            std::thread::sleep(std::time::Duration::from_millis(25));
            return None;
        }
        Some(reply)
    });
    let refused = refused.unwrap_or_else(|| panic!("never refused: {}", served.stderr()));
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (500, "runtime.log_anchor_invalid"),
        "{}",
        refused.text
    );
}

/// A dry run (`--store memory`) of a deployment whose log has an anchor, or witnesses, serves no
/// log and signs no checkpoint — its log, signed under the deployment's log key, would be another
/// history of that log, written into the anchor or cosigned by the witnesses (who would then
/// refuse the real log's next checkpoint) — and says so; it still executes, the anchor is left as
/// it was, and no witness is asked.
#[test]
fn a_dry_run_of_an_anchored_or_witnessed_deployment_serves_no_log() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A witness that counts the connections made to it (and answers none).
    let witness = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let witness_url = format!("http://{}", witness.local_addr().unwrap());
    let asked = Arc::new(AtomicUsize::new(0));
    let counting = Arc::clone(&asked);
    std::thread::spawn(move || {
        for _ in witness.incoming() {
            counting.fetch_add(1, Ordering::SeqCst);
        }
    });
    let anchored = "[server]\nlog_anchor = \"anchor/log-anchor\"\nlog_public = true\n";
    let witnessed = format!("[server]\nwitness_url = \"{witness_url}\"\nlog_public = true\n");
    let witness_flags = [
        "--witness",
        "witness.example/w1=trust/keys/policy.pub",
        "--witness-threshold",
        "1",
    ];
    for (case, config, log_flags) in [
        ("anchor", anchored.to_owned(), &[][..]),
        ("witnesses", witnessed, &witness_flags[..]),
    ] {
        let env = deployment("memory", &config);
        let root = env.root();
        name_a_log(root, log_flags);
        std::fs::create_dir_all(root.join("anchor")).unwrap();
        let served = Served::start(root, &SIGNING_FAST);
        let token = served.token.clone();
        let executed = served.post("/v1/executions", token.as_deref(), &execution_body("dry-0"));
        assert_eq!(executed.status, 201, "{case}: {}", executed.text);
        for path in ["/log/checkpoint", "/v1/executions/dry-0/proof"] {
            let refused = served.get(path, token.as_deref());
            assert_eq!(
                (refused.status, refused.code().as_str()),
                (404, "server.log_disabled"),
                "{case}: {path}: {}",
                refused.text
            );
        }
        assert!(
            served.stderr().contains("warning[server.log_not_served]"),
            "{case}: {}",
            served.stderr()
        );
        assert!(!root.join("anchor/log-anchor").exists(), "{case}");
        // Past a cosigning round's cadence (a second at least), still no witness asked.
        std::thread::sleep(std::time::Duration::from_millis(1_500));
        assert_eq!(
            asked.load(Ordering::SeqCst),
            0,
            "{case}: {}",
            served.stderr()
        );
    }
}
