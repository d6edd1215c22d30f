//! `RuntimeEnvironment`: the trust chain and release manifest verified once, and a cache of verified, compiled policies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use parmana_canon::{PolicyRef, Timestamp};
use parmana_policy::CompiledPolicy;
use parmana_trust::{
    MAX_RELEASE_MANIFEST_BYTES, TrustError, VerifiedBundle, VerifiedReleaseManifest,
    VerifiedTrustHistory, VerifiedTrustRoot, load_trust_history, read_bundle_dir, verify_bundle,
    verify_release_manifest,
};

use crate::{ExecutionError, RUNTIME_VERSION};

/// Where an environment's files are. Every path is explicit: the library reads no current
/// directory, no environment variable and no network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEnvironmentConfig {
    /// The directory holding `<policy_id>/<version>/` bundle directories.
    pub policies_root: PathBuf,
    /// The pinned root public key (SPKI PEM), the out-of-band anchor of the trust chain.
    pub root_public_key: PathBuf,
    /// The current trust root; older versions are read from `trust-root.d/<N>.json` beside it.
    /// A directory holding the chain, or any version's file `trust-root.d/<N>.json`, is
    /// accepted too (see `parmana_trust::read_trust_chain`): the newest version is in force.
    pub trust_root: PathBuf,
    /// The signed release manifest.
    pub release_manifest: PathBuf,
}

impl RuntimeEnvironmentConfig {
    /// The standard repository layout under `root`: `policies/`, `trust/root.pub`,
    /// `trust/trust-root.json` and `release-manifest.json`.
    pub fn standard_layout(root: &Path) -> Self {
        Self {
            policies_root: root.join("policies"),
            root_public_key: root.join("trust").join("root.pub"),
            trust_root: root.join("trust").join("trust-root.json"),
            release_manifest: root.join("release-manifest.json"),
        }
    }
}

/// A verified policy ready to decide: its bundle (with digests) and its compiled form.
#[derive(Debug)]
pub struct LoadedPolicy {
    bundle: VerifiedBundle,
    policy: CompiledPolicy,
}

impl LoadedPolicy {
    /// The verified bundle the policy came from.
    pub fn bundle(&self) -> &VerifiedBundle {
        &self.bundle
    }

    /// The compiled policy.
    pub fn policy(&self) -> &CompiledPolicy {
        &self.policy
    }
}

/// The highest versions a store has accepted before, for rollback protection at load time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HighestAccepted {
    /// Highest trust-root version accepted before, if any.
    pub trust_root: Option<u64>,
    /// Highest release-manifest version accepted before, if any.
    pub release_manifest: Option<u64>,
}

/// The verified trust chain and release manifest, loaded once and shared by many executions.
///
/// It can only be built by [`RuntimeEnvironment::load`], which fails closed. Verified and
/// compiled policies are cached inside it: executing many times reads and verifies each
/// bundle once. The cache is dropped only with the environment.
#[derive(Debug)]
pub struct RuntimeEnvironment {
    policies_root: PathBuf,
    trust_history: VerifiedTrustHistory,
    trust_root: VerifiedTrustRoot,
    release_manifest: VerifiedReleaseManifest,
    /// policy id → (version, policy): looked up by `&str` without allocating.
    policies: RwLock<PolicyCache>,
}

/// Verified policies by id, then by version.
type PolicyCache = HashMap<String, Vec<(String, Arc<LoadedPolicy>)>>;

impl RuntimeEnvironment {
    /// Verifies the trust chain from the pinned root key to the current trust root, then the
    /// release manifest under it, and checks that this runtime is compatible with the release.
    ///
    /// `now` is checked against both documents' expiry. Refuses on any doubt.
    pub fn load(config: &RuntimeEnvironmentConfig, now: Timestamp) -> Result<Self, ExecutionError> {
        Self::load_after(config, now, HighestAccepted::default())
    }

    /// Like [`load`](Self::load), refusing a trust root or release manifest older than the
    /// versions in `highest` (for example those a replay store has accepted).
    pub fn load_after(
        config: &RuntimeEnvironmentConfig,
        now: Timestamp,
        highest: HighestAccepted,
    ) -> Result<Self, ExecutionError> {
        let trust_history = load_trust_history(&config.root_public_key, &config.trust_root)?;
        let trust_root = trust_history.current(now, highest.trust_root)?;
        let manifest_bytes = read_file(&config.release_manifest, MAX_RELEASE_MANIFEST_BYTES)?;
        let release_manifest =
            verify_release_manifest(&trust_root, &manifest_bytes, now, highest.release_manifest)?;
        release_manifest.check_runtime(parmana_policy::EVALUATOR_SEMANTICS, RUNTIME_VERSION)?;
        Ok(Self {
            policies_root: config.policies_root.clone(),
            trust_history,
            trust_root,
            release_manifest,
            policies: RwLock::new(HashMap::new()),
        })
    }

    /// The verified trust root in force (the newest version of the chain, unexpired when the
    /// environment was loaded).
    pub fn trust_root(&self) -> &VerifiedTrustRoot {
        &self.trust_root
    }

    /// Every verified version of the trust-root chain, from 1 to the one in force: what
    /// attestations made under earlier versions are verified against.
    pub fn trust_history(&self) -> &VerifiedTrustHistory {
        &self.trust_history
    }

    /// The verified release manifest in force.
    pub fn release_manifest(&self) -> &VerifiedReleaseManifest {
        &self.release_manifest
    }

    /// The verified, compiled policy `id@version`, from the cache or loaded now.
    ///
    /// Loading refuses: a missing bundle directory, a name the release manifest does not list
    /// (before its bundle is read), a bundle whose files or signature do not verify, a bundle
    /// the release manifest does not list with that digest, a policy file
    /// that is not a valid policy, and a policy file naming another policy than its bundle.
    /// The reference is a parsed [`PolicyRef`], so no path can escape the policies root.
    pub fn policy(&self, policy: &PolicyRef) -> Result<Arc<LoadedPolicy>, ExecutionError> {
        let (policy_id, policy_version) = (policy.id().as_str(), policy.version().as_str());
        if let Ok(cache) = self.policies.read()
            && let Some(hit) = cache
                .get(policy_id)
                .and_then(|versions| versions.iter().find(|(v, _)| v == policy_version))
        {
            return Ok(Arc::clone(&hit.1));
        }
        let loaded = Arc::new(self.load_policy(policy)?);
        if let Ok(mut cache) = self.policies.write() {
            let versions = cache.entry(policy_id.to_owned()).or_default();
            // Two threads may have loaded it at once; both results are equal, keep the first.
            if let Some((_, first)) = versions.iter().find(|(v, _)| v == policy_version) {
                return Ok(Arc::clone(first));
            }
            versions.push((policy_version.to_owned(), Arc::clone(&loaded)));
        }
        Ok(loaded)
    }

    /// Refuses attestation signers this environment would refuse to sign with: a key without
    /// the `attestation` role in the trust root in force (`runtime.signer_lacks_role`), one
    /// given twice, or fewer than the role's threshold — what `execute` and `recover` check
    /// before anything is consumed, for a caller that checks before it opens a store.
    pub fn check_signers(
        &self,
        signers: &[&dyn parmana_trust::Signer],
    ) -> Result<(), ExecutionError> {
        crate::execute::check_signers(signers, self)
    }

    /// Loads and verifies every policy the release manifest lists, so that a broken bundle is
    /// found at start-up instead of at its first execution.
    pub fn preload_released_policies(&self) -> Result<usize, ExecutionError> {
        let names: Vec<_> = self.release_manifest.policies().keys().cloned().collect();
        for name in &names {
            self.policy(name)?;
        }
        Ok(names.len())
    }

    fn load_policy(&self, reference: &PolicyRef) -> Result<LoadedPolicy, ExecutionError> {
        let (policy_id, policy_version) = (reference.id().as_str(), reference.version().as_str());
        let name = reference.to_string();
        // A policy the release manifest does not list is refused before anything on disk is
        // looked at: anyone who may name a policy (a client of the server) would otherwise have
        // a bundle left on disk read and verified again at every request (a refusal is not
        // cached), and learn from the answer which unreleased versions lie there. It is the
        // caller's input that names it, whatever is on disk: `runtime.policy_not_found`.
        if !self.release_manifest.policies().contains_key(reference) {
            return Err(ExecutionError::PolicyNotFound {
                policy: name,
                reason: format!(
                    "release manifest version {} does not list it",
                    self.release_manifest.version()
                ),
            });
        }
        // A released policy whose directory is missing (or not a directory) is the deployment's
        // fault, not the caller's: refused as the file it is (`trust.io`,
        // `trust.not_a_bundle_directory`), as any unreadable bundle file is.
        let dir = self.policies_root.join(policy_id).join(policy_version);
        let files = read_bundle_dir(&dir)?;
        let bundle = verify_bundle(&self.trust_root, &files)?;
        if bundle.policy_id().as_str() != policy_id
            || bundle.policy_version().as_str() != policy_version
        {
            return Err(ExecutionError::PolicyIdentityMismatch {
                policy: name,
                declared: bundle.policy_ref().to_string(),
            });
        }
        self.release_manifest.check_bundle(&bundle)?;
        let policy = parmana_policy::compile(bundle.policy_bytes()).map_err(|source| {
            ExecutionError::PolicyInvalid {
                policy: name.clone(),
                source,
            }
        })?;
        // Schema 2.0.0 policies name themselves; legacy 1.0.0 policies take the bundle's name.
        let declared_id = policy.policy_id().unwrap_or(policy_id);
        let declared_version = policy.policy_version().unwrap_or(policy_version);
        if declared_id != policy_id || declared_version != policy_version {
            return Err(ExecutionError::PolicyIdentityMismatch {
                policy: name,
                declared: format!("{declared_id}@{declared_version}"),
            });
        }
        Ok(LoadedPolicy { bundle, policy })
    }
}

/// Reads a file of at most `limit` bytes, refusing a larger one after reading one byte more.
pub(crate) fn read_file(path: &Path, limit: usize) -> Result<Vec<u8>, ExecutionError> {
    use std::io::Read as _;
    let file =
        parmana_trust::open_regular_file(path).map_err(|e| ExecutionError::io("read", path, &e))?;
    let mut bytes = Vec::new();
    file.take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ExecutionError::io("read", path, &e))?;
    if bytes.len() > limit {
        return Err(TrustError::DocumentTooLarge {
            path: path.display().to_string(),
            limit,
        }
        .into());
    }
    Ok(bytes)
}
