//! The `runtime` feature: fixture environments loaded through the runtime, rotated to throwaway trust-root versions, the fixed clock, the fixture keys and temporary stores.

use std::io;

use parmana_canon::{Digest, ExecutionId, Timestamp};
use parmana_runtime::canon::PolicyRef;
use parmana_runtime::replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, MemoryReplayStore, ReplayError, ReplayStore,
    SqliteReplayStore, sequence_all,
};
use parmana_runtime::trust::{
    BUNDLE_MANIFEST_FILE, LocalSigningKey, LogSpec, POLICY_FILE, RELEASE_MANIFEST_FILE,
    ReleaseManifestSpec, RoleSpec, TrustError, TrustRootSpec, read_bundle_dir,
};
use parmana_runtime::{
    ExecutionError, FixedClock, Rotation, RuntimeEnvironment, RuntimeEnvironmentConfig,
    load_bundle, rotate_trust_root_file, sign_bundle_verified, sign_release_manifest_verified,
};

use crate::{FixtureEnvironment, now};

/// A clock reading [`NOW`](crate::NOW).
pub fn fixed_clock() -> FixedClock {
    FixedClock(now())
}

impl FixtureEnvironment {
    /// The standard layout under [`root`](Self::root).
    pub fn config(&self) -> RuntimeEnvironmentConfig {
        RuntimeEnvironmentConfig::standard_layout(self.root())
    }

    /// Loads the environment at [`NOW`](crate::NOW).
    pub fn load(&self) -> Result<RuntimeEnvironment, ExecutionError> {
        self.load_at(now())
    }

    /// Loads the environment at `at`.
    pub fn load_at(&self, at: Timestamp) -> Result<RuntimeEnvironment, ExecutionError> {
        RuntimeEnvironment::load(&self.config(), at)
    }

    /// The TEST-ONLY fixture key `name` (`root-1`, `root-2`, `policy`, `release`, `attestation`).
    pub fn key(&self, name: &str) -> Result<LocalSigningKey, TrustError> {
        LocalSigningKey::read_pem_file(&self.key_path(name))
    }

    /// The TEST-ONLY attestation signing key of the fixtures.
    pub fn attestation_signer(&self) -> Result<LocalSigningKey, TrustError> {
        self.key("attestation")
    }

    /// A runtime of this environment over `store`, signing with the fixtures' attestation key,
    /// its clock reading [`NOW`](crate::NOW).
    pub fn runtime_over(
        &self,
        store: std::sync::Arc<dyn ReplayStore>,
    ) -> Result<parmana_runtime::Runtime, ExecutionError> {
        parmana_runtime::Runtime::builder(self.config())
            .signer(self.attestation_signer()?)
            .shared_store(store)
            .clock(fixed_clock())
            .build()
    }

    /// Rotates this environment's trust root to its next version, as `parmana trust rotate`
    /// would (the current version is archived under `trust/trust-root.d/`): the `attestation`
    /// role holds `attestation` with `threshold`, the version expires at `expires`, and the
    /// other roles keep the fixture keys (`root-2` is the root key, and signs the rotation).
    /// The chain is checked at [`NOW`](crate::NOW).
    pub fn rotate_trust_root(
        &self,
        attestation: &[&LocalSigningKey],
        threshold: u64,
        expires: Timestamp,
    ) -> Result<Rotation, ExecutionError> {
        self.rotate_with(attestation, threshold, expires, None)
    }

    /// Rotates this environment's trust root to a version naming the log
    /// [`FIXTURE_LOG_ORIGIN`] with the TEST-ONLY key `root-1` as its one log key (expiring in
    /// 2036), as [`rotate_with_log`](Self::rotate_with_log); returns that key.
    pub fn rotate_to_fixture_log(&self) -> Result<LocalSigningKey, ExecutionError> {
        let log_key = self.key("root-1")?;
        self.rotate_with_log(
            LogSpec::one_key(FIXTURE_LOG_ORIGIN, log_key.public_key()),
            Timestamp::parse("2036-01-01T00:00:00Z")?,
        )?;
        Ok(log_key)
    }

    /// Rotates this environment's trust root, as [`rotate_trust_root`](Self::rotate_trust_root)
    /// with the fixture attestation key, to a version that names the transparency log `log`.
    pub fn rotate_with_log(
        &self,
        log: LogSpec,
        expires: Timestamp,
    ) -> Result<Rotation, ExecutionError> {
        let attestation = self.attestation_signer()?;
        self.rotate_with(&[&attestation], 1, expires, Some(log))
    }

    /// Rotates this environment's trust root, as [`rotate_trust_root`](Self::rotate_trust_root),
    /// to a version that names the transparency log `log` when given (its revocations
    /// included).
    pub fn rotate_with(
        &self,
        attestation: &[&LocalSigningKey],
        threshold: u64,
        expires: Timestamp,
        log: Option<LogSpec>,
    ) -> Result<Rotation, ExecutionError> {
        let root = self.key("root-2")?;
        let one = |key: &LocalSigningKey| RoleSpec {
            keys: vec![key.public_key()],
            threshold: 1,
        };
        let spec = TrustRootSpec {
            expires,
            root: one(&root),
            policy: one(&self.key("policy")?),
            release: one(&self.key("release")?),
            attestation: RoleSpec {
                keys: attestation.iter().map(|key| key.public_key()).collect(),
                threshold,
            },
            log,
        };
        let trust = self.root().join("trust");
        rotate_trust_root_file(
            &trust.join("root.pub"),
            &trust.join("trust-root.json"),
            &spec,
            &[&root],
            now(),
        )
    }
}

impl FixtureEnvironment {
    /// Adds `text` as the bundle `policies/<id>/<version>/` of `policy`, signed
    /// by the fixture `policy` key, and releases it as `parmana release sign` would: a release
    /// manifest one version above the one in force, with its policies and this one, signed by the
    /// fixture `release` key, replaces `release-manifest.json`. Checked at [`NOW`](crate::NOW).
    pub fn release_policy(&self, policy: &PolicyRef, text: &str) -> Result<(), ExecutionError> {
        let current = self.load()?;
        let trust_root = current.trust_root();
        let dir = self
            .root()
            .join("policies")
            .join(policy.id().as_str())
            .join(policy.version().as_str());
        let io_error = |e: io::Error| ExecutionError::io("write", &dir, &e);
        std::fs::create_dir_all(&dir).map_err(io_error)?;
        std::fs::write(dir.join(POLICY_FILE), text).map_err(io_error)?;
        let files = read_bundle_dir(&dir)?;
        let manifest = sign_bundle_verified(trust_root, policy, &files, &self.key("policy")?)?;
        std::fs::write(dir.join(BUNDLE_MANIFEST_FILE), manifest).map_err(io_error)?;
        let mut policies = current.release_manifest().policies().clone();
        policies.insert(
            policy.clone(),
            load_bundle(trust_root, &dir)?.bundle_digest(),
        );
        self.release_next(&current, policies)
    }

    /// Withdraws `policy` as `parmana release sign` over a `policies/` without it would: a
    /// release manifest one version above the one in force, listing every other policy, signed
    /// by the fixture `release` key, replaces `release-manifest.json` (the bundle stays on disk).
    pub fn withdraw_policy(&self, policy: &PolicyRef) -> Result<(), ExecutionError> {
        let current = self.load()?;
        let mut policies = current.release_manifest().policies().clone();
        policies.remove(policy);
        self.release_next(&current, policies)
    }

    /// Releases `policies` in the release manifest one version above the one `current` holds
    /// (its expiry and requirements kept), signed with the fixture `release` key (checked at
    /// [`NOW`](crate::NOW)), over `release-manifest.json`.
    fn release_next(
        &self,
        current: &RuntimeEnvironment,
        policies: std::collections::BTreeMap<PolicyRef, Digest>,
    ) -> Result<(), ExecutionError> {
        let released = current.release_manifest();
        let spec = ReleaseManifestSpec {
            version: released.version() + 1,
            expires: released.expires(),
            evaluator_semantics: released.evaluator_semantics().to_owned(),
            minimum_runtime_version: released.minimum_runtime_version().to_owned(),
            policies,
        };
        let bytes = sign_release_manifest_verified(
            current.trust_root(),
            &spec,
            &self.key("release")?,
            now(),
        )?;
        let path = self.root().join(RELEASE_MANIFEST_FILE);
        std::fs::write(&path, bytes).map_err(|e| ExecutionError::io("write", &path, &e))
    }
}

/// A SQLite replay store in its own temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempSqliteStore {
    /// The directory holding `store.sqlite`.
    pub dir: tempfile::TempDir,
    /// The open store.
    pub store: SqliteReplayStore,
}

impl TempSqliteStore {
    /// Opens a fresh store at `store.sqlite` in a new temporary directory.
    pub fn new() -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let store = SqliteReplayStore::open(dir.path().join("store.sqlite"))
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Self { dir, store })
    }
}

/// A fresh in-memory replay store.
pub fn memory_store() -> MemoryReplayStore {
    MemoryReplayStore::new()
}

/// Claims and completes the executions `ids` in `store`, in that order (under versions 0, at
/// [`NOW`](crate::NOW), each with an attestation of its own), then sequences them: the ledger
/// grows by one record per id. An id claimed before is an error.
pub fn append_sequenced(
    store: &dyn ReplayStore,
    ids: impl IntoIterator<Item = String>,
) -> Result<(), Box<dyn std::error::Error>> {
    for id in ids {
        let execution_id = ExecutionId::parse(&id)?;
        let claim = ClaimRecord::new(Digest::of(id.as_bytes()), b"inputs".to_vec(), now());
        let attestation = format!("attestation of {id}");
        let outcome = store.claim_completed(
            &execution_id,
            &claim,
            AcceptedVersions::new(0, 0),
            attestation.as_bytes(),
        )?;
        if outcome != ClaimOutcome::Claimed {
            return Err(format!("{id} was claimed before").into());
        }
    }
    sequence_all(store)?;
    Ok(())
}

/// The origin of the transparency log [`FixtureEnvironment::rotate_to_fixture_log`] names.
pub const FIXTURE_LOG_ORIGIN: &str = "log.example/parmana";

/// A store whose `complete` always fails (`replay.store_unavailable`), and which never completes
/// in one write: an execution through it stays claimed with every input recorded, as after a
/// crash between the claim and the completion — the leftover `recover` completes. Everything
/// else goes to the store it wraps.
#[derive(Debug)]
pub struct CrashBeforeComplete<'a>(pub &'a dyn ReplayStore);

impl ReplayStore for CrashBeforeComplete<'_> {
    crate::forward_store_writes!(0: claim);
    fn complete(&self, _: &ExecutionId, _: &[u8]) -> Result<(), ReplayError> {
        Err(ReplayError::Unavailable {
            message: "crashed before the completion".to_owned(),
        })
    }
    crate::forward_store_reads!(0);
}

/// A memory store whose ledger reads end before position `visible` (all of them while it holds
/// `u64::MAX`): what a writer of the store without a key who cuts the ledger's tail shows
/// readers. Its writes and other reads go to `inner`.
#[derive(Debug)]
pub struct CutLedger {
    /// The store cut.
    pub inner: parmana_runtime::replay::MemoryReplayStore,
    /// The first position no ledger read returns.
    pub visible: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl CutLedger {
    /// An empty memory store, nothing cut yet, and the position to cut it at.
    pub fn new() -> (Self, std::sync::Arc<std::sync::atomic::AtomicU64>) {
        let visible = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
        let store = Self {
            inner: parmana_runtime::replay::MemoryReplayStore::new(),
            visible: std::sync::Arc::clone(&visible),
        };
        (store, visible)
    }
}

impl ReplayStore for CutLedger {
    crate::forward_store_writes!(inner);
    fn ledger_summary(&self) -> Result<parmana_runtime::replay::LedgerSummary, ReplayError> {
        let mut summary = self.inner.ledger_summary()?;
        summary.records = summary
            .records
            .min(self.visible.load(std::sync::atomic::Ordering::SeqCst));
        Ok(summary)
    }
    fn ledger_rows(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<parmana_runtime::replay::LedgerRow>, ReplayError> {
        let visible = self.visible.load(std::sync::atomic::Ordering::SeqCst);
        Ok(self
            .inner
            .ledger_rows(from, max)?
            .into_iter()
            .filter(|row| row.position < visible)
            .collect())
    }
    crate::forward_store_reads!(@all_but_ledger_reads inner);
}

/// `envelope` (an attestation) with its predicate changed by `mutate`, its fingerprint
/// recomputed, and signed again by `key`: what only the holder of an attestation key can make
/// — a decision the policy did not make, for example.
pub fn re_signed_attestation(
    envelope: &[u8],
    key: &LocalSigningKey,
    mutate: impl FnOnce(&mut serde_json::Value),
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use parmana_runtime::canon::canonicalize_value;
    let outer: serde_json::Value = serde_json::from_slice(envelope)?;
    let payload = BASE64.decode(outer["payload"].as_str().ok_or("no payload")?)?;
    let mut statement: serde_json::Value = serde_json::from_slice(&payload)?;
    mutate(&mut statement["predicate"]);
    let mut timeless = statement["predicate"].clone();
    timeless
        .as_object_mut()
        .ok_or("the predicate is not an object")?
        .remove("executed_at");
    statement["subject"][0]["digest"]["sha256"] =
        serde_json::json!(Digest::of(&canonicalize_value(&timeless)?).to_hex());
    signed_attestation(&statement, key)
}

/// The DSSE envelope of `statement` (any JSON: its canonical bytes are the payload), signed by
/// `key` over DSSE's pre-authentication encoding, as the runtime signs an attestation's.
pub fn signed_attestation(
    statement: &serde_json::Value,
    key: &LocalSigningKey,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use parmana_runtime::canon::canonicalize_value;
    use parmana_runtime::trust::Signer as _;
    const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
    let payload = canonicalize_value(statement)?;
    let mut pae = format!(
        "DSSEv1 {} {PAYLOAD_TYPE} {} ",
        PAYLOAD_TYPE.len(),
        payload.len()
    )
    .into_bytes();
    pae.extend_from_slice(&payload);
    let signature = key.sign(&pae)?;
    Ok(canonicalize_value(&serde_json::json!({
        "payload": BASE64.encode(&payload),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": key.key_id().to_string(), "sig": BASE64.encode(signature)}],
    }))?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_fixture_environment_loads_with_its_keys() {
        let fixture = FixtureEnvironment::new().unwrap();
        fixture.load().unwrap();
        fixture.load_at(crate::now_plus_hour()).unwrap();
        fixture.attestation_signer().unwrap();
        assert_eq!(fixed_clock().0, now());
    }

    #[test]
    fn a_fixture_environment_rotates_to_its_next_version() {
        let fixture = FixtureEnvironment::new().unwrap();
        let other = LocalSigningKey::from_seed(&[42; 32]);
        let expires = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        let rotation = fixture.rotate_trust_root(&[&other], 1, expires).unwrap();
        assert_eq!((rotation.previous_version, rotation.version), (2, 3));
        let environment = fixture.load().unwrap();
        assert_eq!(environment.trust_root().version(), 3);
        assert_eq!(environment.trust_root().expires(), expires);
        assert_eq!(
            environment
                .trust_root()
                .role_key_ids(parmana_runtime::trust::Role::Attestation),
            vec![other.key_id()]
        );
        assert_eq!(environment.trust_history().versions().count(), 3);
    }

    #[test]
    fn temporary_stores_start_empty() {
        let sqlite = TempSqliteStore::new().unwrap();
        assert!(sqlite.dir.path().join("store.sqlite").is_file());
        assert!(sqlite.store.ledger_snapshot().unwrap().rows.is_empty());
        assert!(memory_store().ledger_snapshot().unwrap().rows.is_empty());
    }
}
