//! Authoring checks: a key may sign a document only if the trust root in force gives it the role that kind of document needs.

use crate::bundle::BUNDLE_TYPE;
use crate::release::RELEASE_MANIFEST_TYPE;
use crate::trust_root::TRUST_ROOT_TYPE;
use crate::{KeyId, Role, TrustError, VerifiedTrustRoot};

/// The kind of document a role signs, as errors name it.
fn document_of(role: Role) -> &'static str {
    match role {
        Role::Root => TRUST_ROOT_TYPE,
        Role::Policy => BUNDLE_TYPE,
        Role::Release => RELEASE_MANIFEST_TYPE,
        Role::Attestation => "attestation",
    }
}

/// Refuses to author a document with a key that `trust_root` does not give `role`: the
/// document would be refused when it is verified. A key the trust root does not list is
/// `trust.unknown_key`; a listed key outside the role is `trust.key_lacks_role` — the codes
/// verification gives the same signature, so an author sees before writing anything what
/// `execute` would say.
///
/// ```
/// use parmana_trust::*;
/// use parmana_canon::Timestamp;
/// let root = LocalSigningKey::from_seed(&[1; 32]);
/// let policy = LocalSigningKey::from_seed(&[2; 32]);
/// let role = |k: &LocalSigningKey| RoleSpec { keys: vec![k.public_key()], threshold: 1 };
/// let spec = TrustRootSpec {
///     expires: Timestamp::parse("2036-01-01T00:00:00Z").unwrap(),
///     root: role(&root), policy: role(&policy), release: role(&root), attestation: role(&root),
///     log: None,
/// };
/// let v1 = create_trust_root(&spec, &[&root]).unwrap();
/// let now = Timestamp::parse("2026-11-28T21:00:00Z").unwrap();
/// let trust = verify_trust_chain(&root.public_key(), &[v1], now, None).unwrap();
/// assert!(check_signer_role(&trust, &policy.key_id(), Role::Policy).is_ok());
/// let err = check_signer_role(&trust, &policy.key_id(), Role::Release).unwrap_err();
/// assert_eq!(err.code(), "trust.key_lacks_role");
/// ```
pub fn check_signer_role(
    trust_root: &VerifiedTrustRoot,
    keyid: &KeyId,
    role: Role,
) -> Result<(), TrustError> {
    if trust_root.has_role(keyid, role) {
        return Ok(());
    }
    let document = document_of(role).to_owned();
    if trust_root.key(keyid).is_some() {
        return Err(TrustError::KeyLacksRole {
            document,
            keyid: keyid.to_string(),
            role: role.as_str().to_owned(),
        });
    }
    Err(TrustError::UnknownKey {
        document,
        keyid: keyid.to_string(),
    })
}
