//! Building an attestation: check the predicate against its trust root, encode it once, sign the PAE of the statement.

use parmana_canon::{Digest, RawCanonical};

use super::DOCUMENT;
use super::statement::{
    ExecutionPredicate, check_predicate_values, encode_envelope, encode_payload, encode_predicate,
    pae,
};
use crate::{KeyId, PublicKey, Role, Signer, TrustError, VerifiedTrustRoot};

/// Builds and signs an attestation; returns the envelope's bytes (its RFC 8785 form).
///
/// Refuses (before signing) a `trust_root` reference that is not `trust_root`'s version and
/// digest, an `executed_at` at or after its expiry, embedded signals that do not have
/// `signals_digest`, and a signer whose key does not hold the `attestation` role. The same inputs and key always give the same bytes. This is
/// [`prepare_attestation`] followed by [`PreparedAttestation::sign`].
pub fn build_attestation(
    predicate: &ExecutionPredicate,
    signer: &dyn Signer,
    trust_root: &VerifiedTrustRoot,
) -> Result<Vec<u8>, TrustError> {
    prepare_attestation(predicate, trust_root)?.sign(signer, trust_root)
}

/// A predicate checked and encoded, ready to sign: only [`prepare_attestation`] builds one.
///
/// Its canonical bytes are what a replay store records as the attestation's inputs; signing
/// later (or again, after a crash) gives byte-identical envelopes.
#[derive(Debug, Clone)]
pub struct PreparedAttestation<'a> {
    predicate: &'a ExecutionPredicate,
    canonical: RawCanonical,
    fingerprint: Digest,
}

/// Checks a predicate against the trust root it claims and encodes it once.
///
/// Refuses a `trust_root` reference that is not `trust_root`'s version and digest, an
/// `executed_at` at or after `trust_root`'s expiry (such an attestation would never verify),
/// embedded signals that do not have `signals_digest`, and a value the published schema forbids
/// (a decision or rule id that is not a label, a document version of 0, embedded signals that
/// are not an object: `trust.malformed`, as verification refuses them). (The execution id,
/// policy id and version are valid by their types.)
pub fn prepare_attestation<'a>(
    predicate: &'a ExecutionPredicate,
    trust_root: &VerifiedTrustRoot,
) -> Result<PreparedAttestation<'a>, TrustError> {
    if predicate.trust_root.version != trust_root.version()
        || predicate.trust_root.digest != trust_root.digest()
    {
        return Err(TrustError::DigestMismatch {
            subject: "trust_root".to_owned(),
            expected: format!("{} {}", trust_root.version(), trust_root.digest()),
            found: format!(
                "{} {}",
                predicate.trust_root.version, predicate.trust_root.digest
            ),
        });
    }
    if predicate.executed_at >= trust_root.expires() {
        return Err(TrustError::ExecutedAfterExpiry {
            document: "trust root",
            version: trust_root.version(),
            expires: trust_root.expires(),
            executed_at: predicate.executed_at,
        });
    }
    if let Some(signals) = &predicate.signals {
        let found = Digest::of_canonical(signals)?;
        if found != predicate.signals_digest {
            return Err(TrustError::DigestMismatch {
                subject: "signals".to_owned(),
                expected: predicate.signals_digest.to_string(),
                found: found.to_string(),
            });
        }
    }
    check_predicate_values(predicate)?;
    let (canonical, fingerprint) = encode_predicate(predicate)?;
    Ok(PreparedAttestation {
        predicate,
        canonical,
        fingerprint,
    })
}

impl PreparedAttestation<'_> {
    /// The RFC 8785 bytes of the whole predicate (including `executed_at`).
    pub fn canonical_predicate(&self) -> &[u8] {
        self.canonical.as_bytes()
    }

    /// The predicate's canonical encoding, for embedding in another canonical document.
    pub fn raw_predicate(&self) -> &RawCanonical {
        &self.canonical
    }

    /// The execution fingerprint.
    pub fn fingerprint(&self) -> Digest {
        self.fingerprint
    }

    /// Signs the attestation; refuses a signer whose key does not hold the `attestation` role.
    ///
    /// The statement embeds the predicate's canonical bytes as they were encoded by
    /// [`prepare_attestation`] (`parmana-canon` copies them verbatim), so the predicate is
    /// encoded once.
    pub fn sign(
        &self,
        signer: &dyn Signer,
        trust_root: &VerifiedTrustRoot,
    ) -> Result<Vec<u8>, TrustError> {
        self.sign_all(&[signer], trust_root)
    }

    /// Signs the attestation with every signer (one signature each, ordered by key id), for an
    /// `attestation` role whose threshold is more than one key. Refuses an empty list, a signer
    /// whose key does not hold the `attestation` role, and the same key twice.
    pub fn sign_all(
        &self,
        signers: &[&dyn Signer],
        trust_root: &VerifiedTrustRoot,
    ) -> Result<Vec<u8>, TrustError> {
        Ok(self.sign_all_canonical(signers, trust_root)?.into_bytes())
    }

    /// Like [`sign_all`](Self::sign_all), the envelope as [`RawCanonical`]: a document that
    /// embeds it (an HTTP answer) copies its bytes as they are instead of encoding it again.
    pub fn sign_all_canonical(
        &self,
        signers: &[&dyn Signer],
        trust_root: &VerifiedTrustRoot,
    ) -> Result<RawCanonical, TrustError> {
        if signers.is_empty() {
            return Err(TrustError::malformed(DOCUMENT, "no signer given"));
        }
        // Each signer with the key the trust root holds for its key id: the key its signature is
        // verified under (`sign_checked`), the one a verifier will use.
        let mut keyed: Vec<(KeyId, &dyn Signer, PublicKey)> = Vec::with_capacity(signers.len());
        for signer in signers {
            let keyid = signer.key_id();
            let held = trust_root.key(&keyid);
            let Some(key) = held.filter(|key| {
                trust_root.has_role(&keyid, Role::Attestation) && *key == signer.public_key()
            }) else {
                return Err(TrustError::KeyLacksRole {
                    document: DOCUMENT.to_owned(),
                    keyid: keyid.to_string(),
                    role: Role::Attestation.as_str().to_owned(),
                });
            };
            keyed.push((keyid, *signer, key));
        }
        keyed.sort_by_key(|(keyid, _, _)| *keyid);
        if keyed.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Err(TrustError::malformed(
                DOCUMENT,
                "the same key is given twice",
            ));
        }
        let payload = encode_payload(
            &self.canonical,
            &self.predicate.execution_id,
            &self.fingerprint,
        )?;
        let message = pae(&payload);
        let signatures = keyed
            .iter()
            .map(|(keyid, signer, key)| {
                Ok((*keyid, crate::keys::sign_checked(*signer, key, &message)?))
            })
            .collect::<Result<Vec<_>, TrustError>>()?;
        encode_envelope(&payload, &signatures)
    }
}
