//! Replay-store claims (and claim + complete) per second, per backend, at 1 and 8 concurrent callers (PostgreSQL only when `PARMANA_TEST_POSTGRES_URL` is set).
//!
//! Every claim is a fresh id, so every claim is a durable write: for SQLite one WAL commit
//! shared by the batch the writer thread gathered (group commit), for PostgreSQL one prepared
//! statement — the marks row read `FOR SHARE` with the newest marks record and claim time, and
//! `INSERT … ON CONFLICT DO NOTHING` — committed with `synchronous_commit = on`. Every
//! claim is made under the same versions, as a runtime's are, so only the first raises the
//! marks. The ratio of the 8-caller to the 1-caller rate is the group-commit gain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code: a failed unwrap is a failed run

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parmana_canon::{Digest, Timestamp};
use parmana_replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionId, MemoryReplayStore, ReplayStore,
};

/// Ids are unique across iterations, callers and runs (the PostgreSQL schema is reused).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn run_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("bench-{}-{nanos}", std::process::id())
}

/// Makes `iters` claims of fresh ids (each followed by its completion when `complete`), split
/// over `callers` threads, and returns the wall time.
fn claim_fresh_ids(
    store: &dyn ReplayStore,
    prefix: &str,
    callers: u64,
    iters: u64,
    complete: bool,
) -> Duration {
    let claim = ClaimRecord::new(
        Digest::of(b"bench request"),
        br#"{"policy":"claims-approval@1.0.0"}"#.to_vec(),
        Timestamp::from_unix_seconds(1_795_000_000).unwrap(),
    );
    let start = Instant::now();
    std::thread::scope(|scope| {
        for caller in 0..callers {
            let share = iters / callers + u64::from(caller < iters % callers);
            let claim = &claim;
            scope.spawn(move || {
                for _ in 0..share {
                    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
                    let id = ExecutionId::parse(&format!("{prefix}-{n}")).unwrap();
                    let under = AcceptedVersions::new(2, 1);
                    assert_eq!(
                        store.claim(&id, claim, under).unwrap(),
                        ClaimOutcome::Claimed
                    );
                    if complete {
                        store.complete(&id, b"attestation").unwrap();
                    }
                }
            });
        }
    });
    start.elapsed()
}

fn bench_store(c: &mut Criterion, backend: &str, store: &dyn ReplayStore) {
    let prefix = run_prefix();
    // `claims`: the replay check alone. `claim_and_complete`: a whole execution's store
    // traffic, including the ledger append (serialized per store).
    for (what, complete) in [("claims", false), ("claim_and_complete", true)] {
        let mut group = c.benchmark_group(format!("replay/{backend}/{what}"));
        group.throughput(Throughput::Elements(1));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(3));
        for callers in [1u64, 8] {
            group.bench_function(format!("{callers}_callers"), |b| {
                b.iter_custom(|iters| claim_fresh_ids(store, &prefix, callers, iters, complete))
            });
        }
        group.finish();
    }
}

fn claims(c: &mut Criterion) {
    bench_store(c, "memory", &MemoryReplayStore::new());

    let dir = durable_dir();
    let sqlite = parmana_replay::SqliteReplayStore::open(dir.path().join("bench.sqlite")).unwrap();
    bench_store(c, "sqlite", &sqlite);
    drop(sqlite);

    match std::env::var("PARMANA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let options = parmana_replay::PostgresOptions {
                schema: "parmana_bench".to_owned(),
                pool_size: 8,
                ..Default::default()
            };
            let postgres = parmana_replay::PostgresReplayStore::connect(&url, &options).unwrap();
            bench_store(c, "postgres", &postgres);
        }
        _ => {
            // As the tests: CI runs every row, and fails rather than skip one.
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "CI=true but PARMANA_TEST_POSTGRES_URL is not set: the PostgreSQL rows must run"
            );
            eprintln!(
                "replay/postgres: skipped (set PARMANA_TEST_POSTGRES_URL=postgres://… to measure it)"
            );
        }
    }
}

criterion_group!(benches, claims);
criterion_main!(benches);

/// A folder for a store whose flushes are measured: in the build's target directory (Cargo's
/// `CARGO_TARGET_TMPDIR`), never the temporary directory, which Debian 13 and many CI
/// containers keep in memory (tmpfs), where a flush costs nothing.
fn durable_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}
