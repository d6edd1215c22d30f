//! Rollback: once a store has accepted a trust root or release manifest, an older one is refused — by the running store, after reopening the SQLite file, and on PostgreSQL — and no execution id is consumed by the refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use parmana_reliability::{
    fixed_clock, fixed_now, open_target, postgres_url, release_signer, stream_request, unique_name,
};
use parmana_replay::{
    AcceptedVersions, ExecutionId, ExecutionState, ReplayStore, SqliteReplayStore, sequence_all,
    verify_ledger,
};
use parmana_runtime::{
    ErrorClass, HighestAccepted, RuntimeEnvironment, RuntimeEnvironmentConfig,
    execute_from_signals, trust::LocalSigningKey,
};
use parmana_testkit::FixtureEnvironment;
use parmana_trust::{ReleaseManifestSpec, sign_release_manifest};

/// Where the variant with trust root version 1 keeps it: a copy of the chain file
/// `trust/trust-root.d/1.json` with no `trust-root.d/` beside it (pointing at the chain file
/// itself reads the whole chain, whose newest version is 2).
const TRUST_ROOT_1: &str = "trust-root-v1.json";

/// The fixtures plus three variants of the environment: trust root version 1 (a copy of the
/// chain file `trust-root.d/1.json` used as the current trust root), and release manifests 2
/// and 3 signed with the fixture release key.
struct Versions {
    fixture: FixtureEnvironment,
    signer: LocalSigningKey,
}

impl Versions {
    fn new() -> Self {
        let fixture = FixtureEnvironment::new().unwrap();
        let signer = fixture.attestation_signer().unwrap();
        let current = fixture.load_at(fixed_now()).unwrap();
        assert_eq!(current.trust_root().version(), 2);
        assert_eq!(current.release_manifest().version(), 1);
        std::fs::copy(
            fixture
                .root()
                .join("trust")
                .join("trust-root.d")
                .join("1.json"),
            fixture.root().join(TRUST_ROOT_1),
        )
        .unwrap();
        let release_key = release_signer(fixture.root()).unwrap();
        for version in [2, 3] {
            let spec = ReleaseManifestSpec {
                version,
                expires: current.release_manifest().expires(),
                evaluator_semantics: current.release_manifest().evaluator_semantics().to_owned(),
                minimum_runtime_version: current
                    .release_manifest()
                    .minimum_runtime_version()
                    .to_owned(),
                policies: current.release_manifest().policies().clone(),
            };
            let bytes = sign_release_manifest(&spec, &[&release_key]).unwrap();
            std::fs::write(Self::release_path(fixture.root(), version), bytes).unwrap();
        }
        Self { fixture, signer }
    }

    fn release_path(root: &Path, version: u64) -> PathBuf {
        if version == 1 {
            root.join("release-manifest.json")
        } else {
            root.join(format!("release-manifest-v{version}.json"))
        }
    }

    /// The configuration with trust root `trust_root` (1 or 2) and release manifest `release` (1–3).
    fn config(&self, trust_root: u64, release: u64) -> RuntimeEnvironmentConfig {
        let mut config = self.fixture.config();
        if trust_root == 1 {
            config.trust_root = self.fixture.root().join(TRUST_ROOT_1);
        }
        config.release_manifest = Self::release_path(self.fixture.root(), release);
        config
    }

    fn environment(&self, trust_root: u64, release: u64) -> RuntimeEnvironment {
        let environment =
            RuntimeEnvironment::load(&self.config(trust_root, release), fixed_now()).unwrap();
        assert_eq!(environment.trust_root().version(), trust_root);
        assert_eq!(environment.release_manifest().version(), release);
        environment
    }

    fn execute(
        &self,
        store: &dyn ReplayStore,
        (trust_root, release): (u64, u64),
        n: u64,
    ) -> Result<(), (String, ErrorClass)> {
        let request = stream_request(&format!("rollback-{n}"), n, n).unwrap();
        execute_from_signals(
            &request,
            &self.signer,
            store,
            &self.environment(trust_root, release),
            &fixed_clock(),
        )
        .map(|_| ())
        .map_err(|e| (e.code().to_owned(), e.class()))
    }
}

fn refused_as_rollback(result: Result<(), (String, ErrorClass)>) {
    assert_eq!(
        result,
        Err(("replay.version_rollback".to_owned(), ErrorClass::Trust))
    );
}

fn unused(store: &dyn ReplayStore, n: u64) {
    let id = ExecutionId::parse(&format!("rollback-{n}")).unwrap();
    assert_eq!(
        store.get(&id).unwrap(),
        ExecutionState::Absent,
        "rollback-{n} was consumed"
    );
}

/// Runs the rollback sequence on `open()`, reopening the store between steps.
fn check_rollbacks(open: &dyn Fn() -> Box<dyn ReplayStore>) {
    let versions = Versions::new();
    // Older documents are accepted first; then the newer ones raise the marks.
    versions.execute(open().as_ref(), (1, 1), 0).unwrap();
    versions.execute(open().as_ref(), (2, 2), 1).unwrap();
    // An older trust root, then an older release manifest: refused, nothing consumed.
    let store = open();
    refused_as_rollback(versions.execute(store.as_ref(), (1, 2), 2));
    refused_as_rollback(versions.execute(store.as_ref(), (2, 1), 3));
    refused_as_rollback(versions.execute(store.as_ref(), (1, 1), 4));
    unused(store.as_ref(), 2);
    unused(store.as_ref(), 3);
    unused(store.as_ref(), 4);
    drop(store);
    // Across a restart: the marks are durable.
    let store = open();
    let marks = store.accepted_versions().unwrap();
    assert_eq!((marks.trust_root, marks.release_manifest), (2, 2));
    refused_as_rollback(versions.execute(store.as_ref(), (1, 2), 5));
    refused_as_rollback(versions.execute(store.as_ref(), (2, 1), 6));
    unused(store.as_ref(), 5);
    unused(store.as_ref(), 6);
    // The marks refuse at load time too, when the caller passes them.
    let highest = HighestAccepted {
        trust_root: Some(marks.trust_root),
        release_manifest: Some(marks.release_manifest),
    };
    for (trust_root, release) in [(1, 2), (2, 1)] {
        let error = RuntimeEnvironment::load_after(
            &versions.config(trust_root, release),
            fixed_now(),
            highest,
        )
        .unwrap_err();
        assert_eq!(
            (error.code(), error.class()),
            ("trust.version_rollback", ErrorClass::Trust)
        );
    }
    // Equal and newer versions go on working; then the newer one is the floor.
    versions.execute(store.as_ref(), (2, 2), 7).unwrap();
    versions.execute(store.as_ref(), (2, 3), 8).unwrap();
    drop(store);
    let store = open();
    refused_as_rollback(versions.execute(store.as_ref(), (2, 2), 9));
    unused(store.as_ref(), 9);
    // Every raise is a marks record in the chained ledger: (1, 1), (2, 2), (2, 3).
    sequence_all(store.as_ref()).unwrap().unwrap();
    let ledger = verify_ledger(store.as_ref()).unwrap();
    assert!(ledger.is_intact(), "{ledger:?}");
    assert_eq!(
        (ledger.executions, ledger.mark_records, ledger.marks),
        (4, 3, AcceptedVersions::new(2, 3))
    );
}

#[test]
fn older_trust_roots_and_release_manifests_are_refused_on_sqlite_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollback.sqlite");
    check_rollbacks(&|| Box::new(SqliteReplayStore::open(&path).unwrap()));
}

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn older_trust_roots_and_release_manifests_are_refused_on_postgres_across_reconnects() {
    let Some(_url) = postgres_url().unwrap() else {
        return;
    };
    let target = format!("postgres:{}", unique_name("rollback"));
    check_rollbacks(&|| open_target(&target, 2).unwrap());
}
