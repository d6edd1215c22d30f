//! Runtime rows: Ed25519 floors, JCS + SHA-256, end-to-end execute (memory store), verify (one and a batch of 64, and one with its transparency-log proof), durable execute on SQLite and PostgreSQL (with the server's bare single-row insert at 8 connections beside it), and `execute --batch` on durable SQLite at `--jobs` 1 and 8.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code: a failed unwrap is a failed run

#[path = "../support/proof_log.rs"]
mod proof_log;
#[path = "../support/signed_message.rs"]
mod signed_message;

use proof_log::ProofLog;
use signed_message::signed_message;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parmana_runtime::canon::{Digest, to_canonical_vec};
use parmana_runtime::replay::{
    MemoryReplayStore, PostgresOptions, PostgresReplayStore, ReplayStore, SqliteReplayStore,
};
use parmana_runtime::trust::{LocalSigningKey, Signer, verify_attestations};
use parmana_runtime::{
    AttestationProofVerifier, BatchOptions, BatchReader, ExecutionRequest, FixedClock, Runtime,
    RuntimeEnvironment, RuntimeEnvironmentConfig, execute_from_signals, run_batch,
    verify_attestation,
};

const SIGNALS: &[u8] =
    br#"{"claim_amount": 1200, "vip_customer": true, "country": "DE", "policy_age_days": 400}"#;

struct Setup {
    environment: RuntimeEnvironment,
    signer: LocalSigningKey,
    clock: FixedClock,
}

fn setup() -> Setup {
    let root = parmana_testkit::repository_root();
    let now = parmana_testkit::now();
    let environment =
        RuntimeEnvironment::load(&RuntimeEnvironmentConfig::standard_layout(&root), now).unwrap();
    environment.preload_released_policies().unwrap();
    let signer = LocalSigningKey::read_pem_file(&root.join("trust/keys/attestation.pem")).unwrap();
    Setup {
        environment,
        signer,
        clock: FixedClock(now),
    }
}

/// A fresh execution id per call, unique across threads and runs of one process.
fn next_id(counter: &AtomicU64) -> String {
    format!(
        "bench-{}-{}",
        std::process::id(),
        counter.fetch_add(1, Ordering::Relaxed)
    )
}

fn execute_once(setup: &Setup, store: &dyn ReplayStore, counter: &AtomicU64) -> Vec<u8> {
    let request =
        ExecutionRequest::parse(&next_id(counter), "claims-approval@1.0.0", SIGNALS).unwrap();
    execute_from_signals(
        &request,
        &setup.signer,
        store,
        &setup.environment,
        &setup.clock,
    )
    .unwrap()
    .into_envelope()
}

fn primitives_and_memory(c: &mut Criterion) {
    let setup = setup();
    let counter = AtomicU64::new(0);
    let store = MemoryReplayStore::new();
    let envelope = execute_once(&setup, &store, &counter);
    // The floor signs and verifies the very bytes an attestation signs: DSSE's PAE of its payload.
    let message = signed_message(&envelope, &setup.signer.public_key());
    let signature = setup.signer.sign(&message).unwrap();
    let public = setup.signer.public_key();

    let mut group = c.benchmark_group("primitives");
    group.bench_function("ed25519_sign", |b| {
        b.iter(|| setup.signer.sign(black_box(&message)))
    });
    group.bench_function("ed25519_verify", |b| {
        b.iter(|| public.verify_signature(black_box(&message), black_box(&signature)))
    });
    let predicate = verify_attestation(&envelope, setup.environment.trust_root(), None, None)
        .predicate()
        .cloned()
        .unwrap();
    group.bench_function("jcs_sha256_attestation", |b| {
        b.iter(|| Digest::of(&to_canonical_vec(black_box(&predicate)).unwrap()))
    });
    group.finish();

    let mut group = c.benchmark_group("runtime");
    group.bench_function("execute_memory", |b| {
        b.iter(|| execute_once(&setup, &store, &counter))
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            let report = verify_attestation(
                black_box(&envelope),
                setup.environment.trust_root(),
                None,
                None,
            );
            assert!(report.is_valid());
        })
    });
    // Batch verification: 64 distinct attestations per iteration, counted as 64 elements so the
    // rate is attestations per second, comparable with `runtime/verify` (one per iteration).
    let batch: Vec<Vec<u8>> = (0..VERIFY_BATCH)
        .map(|_| execute_once(&setup, &store, &counter))
        .collect();
    let batch: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    group.throughput(Throughput::Elements(VERIFY_BATCH));
    group.bench_function("verify_batch", |b| {
        b.iter(|| {
            let reports = verify_attestations(black_box(&batch), setup.environment.trust_root());
            assert!(reports.iter().all(|r| r.is_valid()));
        })
    });
    group.finish();
}

/// Attestations per `runtime/verify_batch` iteration.
const VERIFY_BATCH: u64 = 64;

/// Entries of the log `runtime/verify_proof` proves in (so that its proof has ⌈log2⌉ = 10
/// hashes, like a real log's).
const PROOF_LOG_ENTRIES: usize = 1_000;

/// How many proofs the `runtime/verify_proof` rows take in turn.
const PROOFS_IN_TURN: usize = 64;

/// `verify --proof` against plain verify, in the group of `runtime/verify`: a fixture chain
/// rotated to a version naming a log, [`PROOF_LOG_ENTRIES`] executions in a memory store, one
/// signed checkpoint, and the attestations and proofs of [`PROOFS_IN_TURN`] executions, each
/// iteration the next one in turn. `verify_proof` is plain `verify_attestation` plus the proof
/// checked by one [`AttestationProofVerifier`] kept across iterations — the checkpoint's
/// signature verified once and amortised, as for a batch of proofs against one checkpoint — for
/// consecutive entries (a range audited together); `verify_proof_spread` the same for entries
/// spread evenly over the log; `verify_proof_added` times only the proof of `verify_proof`'s
/// iterations (the target row: see below); `verify_proof_cold` makes a new verifier each time
/// (one more Ed25519 verification, the checkpoint's, and no node shared with an earlier proof).
fn verify_with_proof(c: &mut Criterion) {
    let log = ProofLog::new(PROOF_LOG_ENTRIES);
    let environment = &log.environment;
    // A batch audit of a range: consecutive entries share nearly all of their paths (what the
    // verifier's node memo reuses). Entries spread over the whole log share only the nodes near
    // the root: the other end of what a batch can share.
    let start = (PROOF_LOG_ENTRIES - PROOFS_IN_TURN) / 2;
    let consecutive = log.proofs(start..start + PROOFS_IN_TURN);
    let spread = log.proofs(
        (0..PROOF_LOG_ENTRIES)
            .step_by(PROOF_LOG_ENTRIES / PROOFS_IN_TURN)
            .take(PROOFS_IN_TURN),
    );
    let history = environment.trust_history();

    let mut group = c.benchmark_group("runtime");
    for (name, proven) in [
        ("verify_proof", &consecutive),
        ("verify_proof_spread", &spread),
    ] {
        let mut verifier = AttestationProofVerifier::new(history).unwrap();
        let mut turn = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                let (envelope, proof) = &proven[turn % PROOFS_IN_TURN];
                turn += 1;
                let report =
                    verify_attestation(black_box(envelope), environment.trust_root(), None, None);
                let inclusion = verifier.verify(black_box(envelope), black_box(proof));
                assert!(report.is_valid() && inclusion.is_ok());
            })
        });
    }
    // The proof's own time, taken inside iterations that each run the plain verify first (so
    // the caches are as a verifier leaves them) and time only the proof: the target row adds it
    // to `runtime/verify`, which no drift of the machine between two rows measured seconds apart
    // can then swamp. Criterion plans its iterations by the time returned, about a fifteenth of
    // each iteration's, hence the short measurement.
    let mut verifier = AttestationProofVerifier::new(history).unwrap();
    let mut turn = 0;
    group.measurement_time(Duration::from_millis(500));
    group.warm_up_time(Duration::from_millis(200));
    group.bench_function("verify_proof_added", |b| {
        b.iter_custom(|iterations| {
            let mut added = Duration::ZERO;
            for _ in 0..iterations {
                let (envelope, proof) = &consecutive[turn % PROOFS_IN_TURN];
                turn += 1;
                let report =
                    verify_attestation(black_box(envelope), environment.trust_root(), None, None);
                let start = Instant::now();
                let inclusion = verifier.verify(black_box(envelope), black_box(proof));
                added += start.elapsed();
                assert!(report.is_valid() && inclusion.is_ok());
            }
            added
        })
    });
    group.measurement_time(Duration::from_secs(5));
    group.warm_up_time(Duration::from_secs(3));
    let mut turn = 0;
    group.bench_function("verify_proof_cold", |b| {
        b.iter(|| {
            let (envelope, proof) = &consecutive[turn % PROOFS_IN_TURN];
            turn += 1;
            let report =
                verify_attestation(black_box(envelope), environment.trust_root(), None, None);
            let inclusion = AttestationProofVerifier::new(history)
                .unwrap()
                .verify(black_box(envelope), black_box(proof));
            assert!(report.is_valid() && inclusion.is_ok());
        })
    });
    group.finish();
}

/// Durable executions per second with `callers` threads sharing one store.
fn durable(c: &mut Criterion, backend: &str, store: Arc<dyn ReplayStore>) {
    let setup = Arc::new(setup());
    let counter = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group(format!("durable/{backend}"));
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for callers in [1_u64, 8] {
        group.bench_function(format!("{callers}"), |b| {
            b.iter_custom(|iterations| {
                let per_caller = iterations.div_ceil(callers);
                let start = Instant::now();
                let handles: Vec<_> = (0..callers)
                    .map(|_| {
                        let (setup, store, counter) =
                            (Arc::clone(&setup), Arc::clone(&store), Arc::clone(&counter));
                        std::thread::spawn(move || {
                            for _ in 0..per_caller {
                                execute_once(&setup, store.as_ref(), &counter);
                            }
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.join().unwrap();
                }
                // Time per execution, as if `iterations` ran: criterion reports executions per second.
                start
                    .elapsed()
                    .mul_f64(iterations as f64 / (per_caller * callers) as f64)
            })
        });
    }
    group.finish();
}

fn durable_sqlite(c: &mut Criterion) {
    let dir = durable_dir();
    let store = SqliteReplayStore::open(dir.path().join("bench.sqlite3")).unwrap();
    durable(c, "sqlite", Arc::new(store));
}

/// Lines per batch of the `batch/sqlite` rows.
const BATCH_LINES: u64 = 64;

/// `execute --batch` as the CLI runs it (`run_batch`: bounded read-ahead, output in input
/// order) on a durable SQLite store, with `jobs` 1 and 8: executions per second.
fn batch_sqlite(c: &mut Criterion) {
    let dir = durable_dir();
    let root = parmana_testkit::repository_root();
    let runtime = Runtime::builder(RuntimeEnvironmentConfig::standard_layout(&root))
        .signer(LocalSigningKey::read_pem_file(&root.join("trust/keys/attestation.pem")).unwrap())
        .store(SqliteReplayStore::open(dir.path().join("batch.sqlite3")).unwrap())
        .clock(FixedClock(parmana_testkit::now()))
        .build()
        .unwrap();
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("batch/sqlite");
    group.throughput(Throughput::Elements(BATCH_LINES));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for jobs in [1_usize, 8] {
        let options = BatchOptions {
            jobs,
            default_policy: Some("claims-approval@1.0.0".parse().unwrap()),
            include_signals: false,
        };
        group.bench_function(format!("jobs_{jobs}"), |b| {
            b.iter(|| {
                let mut input = Vec::new();
                for _ in 0..BATCH_LINES {
                    input.extend_from_slice(b"{\"execution_id\":\"");
                    input.extend_from_slice(next_id(&counter).as_bytes());
                    input.extend_from_slice(b"\",\"signals\":");
                    input.extend_from_slice(SIGNALS);
                    input.extend_from_slice(b"}\n");
                }
                let summary = run_batch(
                    &runtime,
                    BatchReader::new(input.as_slice()),
                    &options,
                    |outcome| {
                        black_box(outcome);
                        Ok::<(), ()>(())
                    },
                )
                .unwrap();
                assert_eq!(summary.refused(), 0);
            })
        });
    }
    group.finish();
}

fn durable_postgres(c: &mut Criterion) {
    let Ok(url) = std::env::var("PARMANA_TEST_POSTGRES_URL") else {
        // As the tests: CI runs every row, and fails rather than skip one.
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but PARMANA_TEST_POSTGRES_URL is not set: the PostgreSQL rows must run"
        );
        eprintln!("durable/postgres: skipped (PARMANA_TEST_POSTGRES_URL is not set)");
        return;
    };
    // A schema of its own per run: a separate store, so ids never collide with tests or other runs.
    let options = PostgresOptions {
        schema: format!("bench_{}", std::process::id()),
        ..PostgresOptions::default()
    };
    let store = PostgresReplayStore::connect(&url, &options).unwrap();
    durable(c, "postgres", Arc::new(store));
    bare_insert_postgres(c, &url, &options.schema);
}

/// Connections (and threads) of the `postgres/bare_insert` row: as many as the 8-caller row.
const BARE_CONNECTIONS: usize = 8;

/// The server's floor for what a durable execute writes, measured right after the
/// `durable/postgres` rows on the same server: `BARE_CONNECTIONS` threads, each on its own
/// connection with `synchronous_commit = on` (as the store's), each committing one prepared
/// single-row `INSERT … ON CONFLICT DO NOTHING` of a fresh text key at a time. Inserts per second.
fn bare_insert_postgres(c: &mut Criterion, url: &str, store_schema: &str) {
    let schema = format!("{store_schema}_bare");
    let mut connections: Vec<(postgres::Client, postgres::Statement)> = (0..BARE_CONNECTIONS)
        .map(|_| {
            let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
            client
                .batch_execute(&format!(
                    "SET synchronous_commit = on;
                     CREATE SCHEMA IF NOT EXISTS {schema};
                     CREATE TABLE IF NOT EXISTS {schema}.t (id TEXT PRIMARY KEY);"
                ))
                .unwrap();
            let insert = client
                .prepare(&format!(
                    "INSERT INTO {schema}.t (id) VALUES ($1) ON CONFLICT DO NOTHING"
                ))
                .unwrap();
            (client, insert)
        })
        .collect();
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("postgres/bare_insert");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(format!("{BARE_CONNECTIONS}_connections"), |b| {
        b.iter_custom(|iterations| {
            let per_connection = iterations.div_ceil(BARE_CONNECTIONS as u64);
            let start = Instant::now();
            std::thread::scope(|scope| {
                for (client, insert) in connections.iter_mut() {
                    let counter = &counter;
                    scope.spawn(move || {
                        for _ in 0..per_connection {
                            let inserted = client.execute(&*insert, &[&next_id(counter)]).unwrap();
                            assert_eq!(inserted, 1);
                        }
                    });
                }
            });
            start
                .elapsed()
                .mul_f64(iterations as f64 / (per_connection * BARE_CONNECTIONS as u64) as f64)
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    primitives_and_memory,
    verify_with_proof,
    durable_sqlite,
    batch_sqlite,
    durable_postgres
);
criterion_main!(benches);

/// A folder for a store whose flushes are measured: in the build's target directory (Cargo's
/// `CARGO_TARGET_TMPDIR`), never the temporary directory, which Debian 13 and many CI
/// containers keep in memory (tmpfs), where a flush costs nothing.
fn durable_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}
