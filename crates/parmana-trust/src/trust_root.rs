//! The trust root: keys, roles and thresholds, anchored in the pinned root key and rotated version by version.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use parmana_canon::{Digest, Timestamp};
use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, SignatureCheck, sign_document};
use crate::keys::PublicKeyDocument;
use crate::revocation::{Revocation, RevocationBody, RevocationSpec, parse_revocations};
use crate::{
    CosignerKey, KeyId, LogVerifier, NoteKeyName, NoteVerifierKey, PublicKey, Signer, TrustError,
};

/// The `_type` of a trust root.
pub(crate) const TRUST_ROOT_TYPE: &str = "parmana/trust-root";

/// A role a key can hold in the trust root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Signs trust roots (and their rotations).
    Root,
    /// Signs policy bundle manifests.
    Policy,
    /// Signs release manifests.
    Release,
    /// Signs execution attestations.
    Attestation,
}

impl Role {
    /// Every role, in document order.
    pub const ALL: [Role; 4] = [Role::Root, Role::Policy, Role::Release, Role::Attestation];

    /// The role's name in documents.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Policy => "policy",
            Role::Release => "release",
            Role::Attestation => "attestation",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustRootBody {
    #[serde(rename = "_type")]
    doc_type: String,
    version: u64,
    expires: Timestamp,
    keys: BTreeMap<String, PublicKeyDocument>,
    roles: BTreeMap<String, RoleBody>,
    /// The transparency log's origin and keys; absent in trust roots without a log (the field
    /// is then omitted, so documents written before it keep their bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log: Option<LogBody>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogBody {
    origin: String,
    keyids: Vec<String>,
    threshold: u64,
    /// The witnesses whose cosignatures a checkpoint needs (omitted when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    witnesses: Vec<WitnessBody>,
    /// How many distinct witnesses must cosign (omitted when none are required).
    #[serde(default, skip_serializing_if = "is_zero")]
    witness_threshold: u64,
    /// Attestation keys revoked as of a checkpoint of this log (omitted when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    revocations: Vec<RevocationBody>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WitnessBody {
    name: String,
    keyid: String,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    keyids: Vec<String>,
    threshold: u64,
}

/// The keys of one role and how many of them must sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoleKeys {
    pub keys: BTreeMap<KeyId, PublicKey>,
    pub threshold: u64,
}

/// The `log` role of a trust root: the transparency log's origin (also the note key name of its
/// keys) and the keys that sign its checkpoints, of which `threshold` must sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRole {
    origin: NoteKeyName,
    keys: BTreeMap<KeyId, PublicKey>,
    threshold: u64,
    witnesses: Vec<CosignerKey>,
    witness_threshold: u64,
    revocations: Vec<Revocation>,
}

impl LogRole {
    /// The log's origin (the first line of its checkpoints and the name of its note keys).
    pub fn origin(&self) -> &NoteKeyName {
        &self.origin
    }

    /// How many distinct log keys must sign a checkpoint.
    pub fn threshold(&self) -> u64 {
        self.threshold
    }

    /// Whether the key with this id signs the log's checkpoints.
    pub fn holds(&self, keyid: &KeyId) -> bool {
        self.keys.contains_key(keyid)
    }

    /// The note verifier keys of the log's keys, named by the origin.
    pub fn verifiers(&self) -> Vec<NoteVerifierKey> {
        self.keys
            .values()
            .map(|key| NoteVerifierKey::new(self.origin.clone(), *key))
            .collect()
    }

    /// The keys that sign the log's checkpoints.
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.values()
    }

    /// The witnesses whose cosignatures a checkpoint needs, and how many of them.
    pub fn witnesses(&self) -> (&[CosignerKey], u64) {
        (&self.witnesses, self.witness_threshold)
    }

    /// The attestation keys this version revokes as of checkpoints of this log.
    pub fn revocations(&self) -> &[Revocation] {
        &self.revocations
    }

    /// What a verifier of this log's checkpoints trusts: the origin, the keys, the threshold,
    /// and the witnesses that must cosign.
    pub fn verifier(&self) -> LogVerifier {
        LogVerifier::new(self.origin.as_str(), self.verifiers(), self.threshold)
            .with_witnesses(self.witnesses.clone(), self.witness_threshold)
    }
}

/// The checked content of one trust-root version (signatures verified, expiry not yet).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TrustRootContent {
    version: u64,
    expires: Timestamp,
    digest: Digest,
    keys: BTreeMap<KeyId, PublicKey>,
    roles: BTreeMap<Role, RoleKeys>,
    log: Option<LogRole>,
}

impl TrustRootContent {
    fn role(&self, role: Role) -> Result<&RoleKeys, TrustError> {
        self.roles
            .get(&role)
            .ok_or_else(|| TrustError::malformed(TRUST_ROOT_TYPE, format!("no {role} role")))
    }

    fn check_role(
        &self,
        envelope: &Envelope,
        role: Role,
        co_signers: Option<&BTreeMap<KeyId, PublicKey>>,
    ) -> Result<(), TrustError> {
        let keys = self.role(role)?;
        envelope.check(&SignatureCheck {
            document: TRUST_ROOT_TYPE,
            role: role.as_str(),
            role_keys: &keys.keys,
            known_keys: &self.keys,
            threshold: keys.threshold,
            co_signers,
        })
    }
}

/// A trust-root version whose whole chain, from the pinned root key to this version, verified.
///
/// Only the chain check builds one: [`verify_trust_chain`] and [`load_trust_chain`] return the
/// newest version, which had not expired and was not older than the highest accepted version
/// when checked; a [`VerifiedTrustHistory`](crate::VerifiedTrustHistory) holds every version
/// of a verified chain, whose expiry its user judges (an attestation's at its `executed_at`).
///
/// [`verify_trust_chain`]: crate::verify_trust_chain
/// [`load_trust_chain`]: crate::load_trust_chain
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTrustRoot {
    content: TrustRootContent,
}

impl VerifiedTrustRoot {
    /// Every key this version gives something to — a role, the log, a witness — with what, by
    /// key id (a key revoked by an earlier version may hold none of it).
    pub(crate) fn key_holdings(&self) -> Vec<(KeyId, String)> {
        key_holdings(&self.content.roles, self.content.log.as_ref())
    }

    /// The trust-root version.
    pub fn version(&self) -> u64 {
        self.content.version
    }

    /// When this version expires.
    pub fn expires(&self) -> Timestamp {
        self.content.expires
    }

    /// The document digest (SHA-256 of the JCS bytes of `signed`).
    pub fn digest(&self) -> Digest {
        self.content.digest
    }

    /// Refuses with [`TrustError::Expired`] when this version has expired at `now` (for a
    /// long-lived process that verified the chain earlier).
    pub fn check_not_expired(&self, now: Timestamp) -> Result<(), TrustError> {
        if now >= self.content.expires {
            return Err(TrustError::Expired {
                document: TRUST_ROOT_TYPE.to_owned(),
                expires: self.content.expires,
                now,
            });
        }
        Ok(())
    }

    /// The public key with this id, if the trust root lists it.
    pub fn key(&self, keyid: &KeyId) -> Option<PublicKey> {
        self.content.keys.get(keyid).copied()
    }

    /// The key ids holding `role`.
    pub fn role_key_ids(&self, role: Role) -> Vec<KeyId> {
        self.content
            .roles
            .get(&role)
            .map(|r| r.keys.keys().copied().collect())
            .unwrap_or_default()
    }

    /// How many distinct keys of `role` must sign.
    pub fn role_threshold(&self, role: Role) -> u64 {
        self.content
            .roles
            .get(&role)
            .map_or(u64::MAX, |r| r.threshold)
    }

    /// Whether the key with this id holds `role`.
    pub fn has_role(&self, keyid: &KeyId, role: Role) -> bool {
        self.content
            .roles
            .get(&role)
            .is_some_and(|r| r.keys.contains_key(keyid))
    }

    /// The transparency log's role, if this version names a log.
    pub fn log(&self) -> Option<&LogRole> {
        self.content.log.as_ref()
    }

    pub(crate) fn role_keys(&self, role: Role) -> Result<&RoleKeys, TrustError> {
        self.content.role(role)
    }

    pub(crate) fn all_keys(&self) -> &BTreeMap<KeyId, PublicKey> {
        &self.content.keys
    }
}

fn parse_content(envelope: &Envelope) -> Result<TrustRootContent, TrustError> {
    let bad = |message: String| TrustError::malformed(TRUST_ROOT_TYPE, message);
    let body: TrustRootBody = envelope.body(TRUST_ROOT_TYPE)?;
    if body.version == 0 {
        return Err(TrustError::InvalidVersion {
            document: TRUST_ROOT_TYPE.to_owned(),
            message: "version must be at least 1".to_owned(),
        });
    }
    let mut keys = BTreeMap::new();
    for (text, document) in &body.keys {
        let keyid: KeyId = text.parse()?;
        let key = PublicKey::from_document(document)?;
        if key.key_id() != keyid {
            return Err(TrustError::KeyIdMismatch {
                keyid: text.clone(),
            });
        }
        keys.insert(keyid, key);
    }
    crate::keys::check_distinct_points(&keys)?;
    let names: BTreeSet<&str> = body.roles.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    if names != expected {
        return Err(bad(format!(
            "roles must be exactly {expected:?}, found {names:?}"
        )));
    }
    let mut roles = BTreeMap::new();
    for role in Role::ALL {
        let Some(role_body) = body.roles.get(role.as_str()) else {
            return Err(bad(format!("no {role} role")));
        };
        let mut role_keys = BTreeMap::new();
        for text in &role_body.keyids {
            let keyid: KeyId = text.parse()?;
            let key = keys
                .get(&keyid)
                .ok_or_else(|| bad(format!("{role} role lists key {text} not in keys")))?;
            if role_keys.insert(keyid, *key).is_some() {
                return Err(bad(format!("{role} role lists key {text} twice")));
            }
        }
        let distinct: BTreeSet<[u8; 32]> = role_keys.values().map(PublicKey::to_bytes).collect();
        let available = u64::try_from(distinct.len()).unwrap_or(u64::MAX);
        if role_body.threshold == 0 || role_body.threshold > available {
            return Err(TrustError::InvalidThreshold {
                role: role.as_str().to_owned(),
                threshold: role_body.threshold,
                available,
            });
        }
        roles.insert(
            role,
            RoleKeys {
                keys: role_keys,
                threshold: role_body.threshold,
            },
        );
    }
    let log = body
        .log
        .as_ref()
        .map(|log| parse_log(log, &keys, body.version))
        .transpose()?;
    // A revoked key holds nothing: not the attestation role, whose attestations the revocation
    // is about, nor any other — as a root, policy or release key its thief could sign what the
    // runtime trusts, as a log key or a witness a forked checkpoint the revocation's ordering
    // relies on.
    // (The holdings are gathered once, and each revocation looked up: linear in the document.)
    if let Some(log) = &log
        && !log.revocations.is_empty()
        && let Some((revoked, held)) = {
            let holdings: BTreeMap<KeyId, String> =
                key_holdings(&roles, Some(log)).into_iter().collect();
            log.revocations.iter().find_map(|revocation| {
                holdings
                    .get(revocation.keyid())
                    .map(|held| (revocation.keyid(), held.clone()))
            })
        }
    {
        return Err(bad(format!(
            "key {revoked} is revoked and holds the {held} in the same version"
        )));
    }
    Ok(TrustRootContent {
        version: body.version,
        expires: body.expires,
        digest: envelope.digest(),
        keys,
        roles,
        log,
    })
}

/// Every key a version's `roles` and `log` give something to, with what (`attestation role`,
/// `log role`, `witness role`, …), by key id.
fn key_holdings(roles: &BTreeMap<Role, RoleKeys>, log: Option<&LogRole>) -> Vec<(KeyId, String)> {
    let mut held: Vec<(KeyId, String)> = roles
        .iter()
        .flat_map(|(role, keys)| {
            keys.keys
                .keys()
                .map(move |keyid| (*keyid, format!("{} role", role.as_str())))
        })
        .collect();
    if let Some(log) = log {
        held.extend(
            log.keys
                .values()
                .map(|key| (KeyId::of(key), "log role".to_owned())),
        );
        held.extend(log.witnesses.iter().map(|witness| {
            (
                KeyId::of(witness.public_key()),
                format!("witness role (as {})", witness.name()),
            )
        }));
    }
    held
}

/// Reads the `log` role: an origin that is a note key name, keys the trust root lists, each
/// once, a threshold between 1 and their number, witnesses, and revocations.
fn parse_log(
    body: &LogBody,
    keys: &BTreeMap<KeyId, PublicKey>,
    version: u64,
) -> Result<LogRole, TrustError> {
    let bad = |message: String| TrustError::malformed(TRUST_ROOT_TYPE, message);
    let origin = NoteKeyName::parse(&body.origin)
        .map_err(|e| bad(format!("log origin {:?}: {e}", body.origin)))?;
    let mut log_keys = BTreeMap::new();
    for text in &body.keyids {
        let keyid: KeyId = text.parse()?;
        let key = keys
            .get(&keyid)
            .ok_or_else(|| bad(format!("log role lists key {text} not in keys")))?;
        if log_keys.insert(keyid, *key).is_some() {
            return Err(bad(format!("log role lists key {text} twice")));
        }
    }
    // Every log key signs as the origin: two whose note key IDs (a 4-byte hash of name and
    // key) collide would each be tried on the other's lines, and every checkpoint refused.
    let mut ids = BTreeMap::new();
    for (keyid, key) in &log_keys {
        if let Some(other) = ids.insert(crate::note_key_id(&origin, key), keyid) {
            return Err(bad(format!(
                "log keys {other} and {keyid} have the same note key ID under {origin}"
            )));
        }
    }
    let available = u64::try_from(log_keys.len()).unwrap_or(u64::MAX);
    if body.threshold == 0 || body.threshold > available {
        return Err(TrustError::InvalidThreshold {
            role: "log".to_owned(),
            threshold: body.threshold,
            available,
        });
    }
    let mut witnesses: Vec<CosignerKey> = Vec::new();
    for witness in &body.witnesses {
        let name = NoteKeyName::parse(&witness.name)
            .map_err(|e| bad(format!("witness name {:?}: {e}", witness.name)))?;
        let keyid: KeyId = witness.keyid.parse()?;
        let key = keys
            .get(&keyid)
            .ok_or_else(|| bad(format!("witness {name} names key {keyid} not in keys")))?;
        // A witness is someone other than the log: not one of its keys (the log could meet
        // the witness threshold alone), nor named as the log signs (its lines would be tried
        // as the log's).
        if log_keys.contains_key(&keyid) {
            return Err(bad(format!(
                "witness {name} names key {keyid} of the log role"
            )));
        }
        if name == origin {
            return Err(bad(format!("witness {name} is named as the log's origin")));
        }
        if witnesses
            .iter()
            .any(|w| w.public_key() == key || *w.name() == name)
        {
            return Err(bad(format!("witness {name} or its key is listed twice")));
        }
        witnesses.push(CosignerKey::new(name, *key));
    }
    let listed = u64::try_from(witnesses.len()).unwrap_or(u64::MAX);
    if body.witness_threshold > listed || (listed > 0 && body.witness_threshold == 0) {
        return Err(TrustError::InvalidThreshold {
            role: "witness".to_owned(),
            threshold: body.witness_threshold,
            available: listed,
        });
    }
    let revocations = parse_revocations(&body.revocations, &origin, version)?;
    Ok(LogRole {
        origin,
        keys: log_keys,
        threshold: body.threshold,
        witnesses,
        witness_threshold: body.witness_threshold,
        revocations,
    })
}

/// Verifies version 1: it says version 1, and is signed by the pinned root key and by a
/// threshold of its own root keys. The content is read before any signature is checked, so
/// that the signature list is bounded by the keys that may sign it (the pinned key and the
/// version's root keys) before any verification work.
pub(crate) fn verify_first(
    pinned: &PublicKey,
    bytes: &[u8],
) -> Result<VerifiedTrustRoot, TrustError> {
    let envelope = Envelope::parse(bytes, TRUST_ROOT_TYPE)?;
    let content = parse_content(&envelope)?;
    if content.version != 1 {
        return Err(TrustError::InvalidVersion {
            document: TRUST_ROOT_TYPE.to_owned(),
            message: format!(
                "the chain must start at version 1, found {}",
                content.version
            ),
        });
    }
    let pinned_keys: BTreeMap<KeyId, PublicKey> = [(pinned.key_id(), *pinned)].into();
    let own_root = &content.role(Role::Root)?.keys;
    envelope.check(&SignatureCheck {
        document: TRUST_ROOT_TYPE,
        role: "pinned root",
        role_keys: &pinned_keys,
        known_keys: &pinned_keys,
        threshold: 1,
        co_signers: Some(own_root),
    })?;
    content.check_role(&envelope, Role::Root, Some(&pinned_keys))?;
    Ok(VerifiedTrustRoot { content })
}

/// Verifies version N+1 against version N: it says version N+1, and is signed by a threshold
/// of N's root keys and of its own. Each side's signatures are expected by the other side's
/// check, so a rotation below either threshold is `trust.threshold_not_met`.
pub(crate) fn verify_next(
    previous: &VerifiedTrustRoot,
    bytes: &[u8],
) -> Result<VerifiedTrustRoot, TrustError> {
    let previous = &previous.content;
    let envelope = Envelope::parse(bytes, TRUST_ROOT_TYPE)?;
    let content = parse_content(&envelope)?;
    if previous.version.checked_add(1) != Some(content.version) {
        return Err(TrustError::VersionRollback {
            document: TRUST_ROOT_TYPE.to_owned(),
            version: content.version,
            highest: previous.version,
        });
    }
    let (old_root, new_root) = (
        &previous.role(Role::Root)?.keys,
        &content.role(Role::Root)?.keys,
    );
    previous.check_role(&envelope, Role::Root, Some(new_root))?;
    content.check_role(&envelope, Role::Root, Some(old_root))?;
    Ok(VerifiedTrustRoot { content })
}

/// The version a trust-root document claims, read without checking anything but its shape
/// (to place a file in its chain before the chain is verified).
pub(crate) fn claimed_version(bytes: &[u8]) -> Result<u64, TrustError> {
    let envelope = Envelope::parse(bytes, TRUST_ROOT_TYPE)?;
    Ok(parse_content(&envelope)?.version)
}

/// The keys of one role and its threshold, for authoring a trust root.
#[derive(Debug, Clone)]
pub struct RoleSpec {
    /// The keys holding the role.
    pub keys: Vec<PublicKey>,
    /// How many distinct keys must sign.
    pub threshold: u64,
}

/// The content of a trust root to author (the version is chosen by the function).
#[derive(Debug, Clone)]
pub struct TrustRootSpec {
    /// Expiry of the new version.
    pub expires: Timestamp,
    /// Keys that sign trust roots.
    pub root: RoleSpec,
    /// Keys that sign policy bundles.
    pub policy: RoleSpec,
    /// Keys that sign release manifests.
    pub release: RoleSpec,
    /// Keys that sign attestations.
    pub attestation: RoleSpec,
    /// The transparency log and the keys that sign its checkpoints, if any.
    pub log: Option<LogSpec>,
}

/// The transparency log of a trust root to author: its origin and the keys of its `log` role.
#[derive(Debug, Clone)]
pub struct LogSpec {
    /// The log's origin, also the note key name of its keys (see `docs/transparency-log.md`).
    pub origin: String,
    /// The keys that sign checkpoints.
    pub keys: Vec<PublicKey>,
    /// How many distinct keys must sign a checkpoint.
    pub threshold: u64,
    /// The witnesses (name and Ed25519 key) whose cosignatures a checkpoint needs.
    pub witnesses: Vec<(String, PublicKey)>,
    /// How many distinct witnesses must cosign (0 when `witnesses` is empty).
    pub witness_threshold: u64,
    /// Attestation keys revoked as of checkpoints of this log (see `docs/trust-model.md` §6.2).
    pub revocations: Vec<RevocationSpec>,
}

impl LogSpec {
    /// A log whose checkpoints one key signs: threshold 1, no witnesses, no revocations.
    pub fn one_key(origin: impl Into<String>, key: PublicKey) -> Self {
        Self {
            origin: origin.into(),
            keys: vec![key],
            threshold: 1,
            witnesses: vec![],
            witness_threshold: 0,
            revocations: vec![],
        }
    }
}

fn body_of(spec: &TrustRootSpec, version: u64) -> TrustRootBody {
    let mut keys = BTreeMap::new();
    let mut roles = BTreeMap::new();
    for (role, role_spec) in [
        (Role::Root, &spec.root),
        (Role::Policy, &spec.policy),
        (Role::Release, &spec.release),
        (Role::Attestation, &spec.attestation),
    ] {
        let mut keyids = Vec::new();
        for key in &role_spec.keys {
            let id = key.key_id().to_string();
            keys.insert(id.clone(), key.to_document());
            if !keyids.contains(&id) {
                keyids.push(id);
            }
        }
        keyids.sort();
        roles.insert(
            role.as_str().to_owned(),
            RoleBody {
                keyids,
                threshold: role_spec.threshold,
            },
        );
    }
    let log = spec.log.as_ref().map(|log| {
        let mut keyids = Vec::new();
        for key in &log.keys {
            let id = key.key_id().to_string();
            keys.insert(id.clone(), key.to_document());
            if !keyids.contains(&id) {
                keyids.push(id);
            }
        }
        keyids.sort();
        let witnesses = log
            .witnesses
            .iter()
            .map(|(name, key)| {
                let keyid = key.key_id().to_string();
                keys.insert(keyid.clone(), key.to_document());
                WitnessBody {
                    name: name.clone(),
                    keyid,
                }
            })
            .collect();
        LogBody {
            origin: log.origin.clone(),
            keyids,
            threshold: log.threshold,
            witnesses,
            witness_threshold: log.witness_threshold,
            revocations: log
                .revocations
                .iter()
                .map(RevocationSpec::to_body)
                .collect(),
        }
    });
    TrustRootBody {
        doc_type: TRUST_ROOT_TYPE.to_owned(),
        version,
        expires: spec.expires,
        keys,
        roles,
        log,
    }
}

/// Authors trust root version 1, signed by `signers` (the pinned root key among them), and
/// checks the result: it must meet its own root threshold.
pub fn create_trust_root(
    spec: &TrustRootSpec,
    signers: &[&dyn Signer],
) -> Result<Vec<u8>, TrustError> {
    let bytes = within_file_bound(sign_document(&body_of(spec, 1), signers)?)?;
    let envelope = Envelope::parse(&bytes, TRUST_ROOT_TYPE)?;
    parse_content(&envelope)?.check_role(&envelope, Role::Root, None)?;
    Ok(bytes)
}

/// Authors version N+1 after `previous` (version N), signed by `signers`, which must include
/// a threshold of N's root keys and of the new version's own root keys. The result is checked
/// as a rotation of `previous` before it is returned.
pub fn rotate_trust_root(
    previous: &VerifiedTrustRoot,
    spec: &TrustRootSpec,
    signers: &[&dyn Signer],
) -> Result<Vec<u8>, TrustError> {
    let version = previous.version().checked_add(1).ok_or_else(|| {
        TrustError::malformed(TRUST_ROOT_TYPE, "no version after the largest integer")
    })?;
    let bytes = within_file_bound(sign_document(&body_of(spec, version), signers)?)?;
    verify_next(previous, &bytes)?;
    Ok(bytes)
}

/// Refuses a version larger than a trust-root file is read within
/// ([`MAX_TRUST_ROOT_BYTES`](crate::MAX_TRUST_ROOT_BYTES), `trust.document_too_large`): written,
/// it would be refused by every later reader of the chain.
fn within_file_bound(bytes: Vec<u8>) -> Result<Vec<u8>, TrustError> {
    if bytes.len() > crate::MAX_TRUST_ROOT_BYTES {
        return Err(TrustError::DocumentTooLarge {
            path: format!("the new trust-root version ({} bytes)", bytes.len()),
            limit: crate::MAX_TRUST_ROOT_BYTES,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalSigningKey;
    use crate::envelope::{SignatureCheck, SignatureEntry, check_signatures};

    /// One public key listed under two ids still counts once towards a threshold.
    #[test]
    fn one_key_under_two_ids_counts_once() {
        let key = LocalSigningKey::from_seed(&[1; 32]);
        let public = key.public_key();
        let alias: KeyId = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let keys: BTreeMap<KeyId, PublicKey> = [(key.key_id(), public), (alias, public)].into();
        let message = b"message";
        let sig = key.sign(message).unwrap();
        let signatures = vec![
            SignatureEntry {
                keyid: key.key_id(),
                sig,
            },
            SignatureEntry { keyid: alias, sig },
        ];
        let check = SignatureCheck {
            document: "test",
            role: "root",
            role_keys: &keys,
            known_keys: &keys,
            threshold: 2,
            co_signers: None,
        };
        let err = check_signatures(&signatures, message, &check).unwrap_err();
        assert_eq!(err.code(), "trust.threshold_not_met");
        let once = SignatureCheck {
            threshold: 1,
            ..check
        };
        check_signatures(&signatures, message, &once).unwrap();
    }
}
