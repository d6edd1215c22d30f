//! The shared signed-document envelope `{"signed": {...}, "signatures": [{"keyid", "sig"}]}`.
//!
//! Signatures are over the RFC 8785 bytes of `signed`; its `_type` separates document kinds.

use std::collections::{BTreeMap, BTreeSet};

use parmana_canon::{Digest, canonicalize_value, parse_strict};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::keys::{decode_signature, encode_base64};
use crate::{KeyId, PublicKey, Signer, TrustError};

/// One signature entry of an envelope.
#[derive(Debug, Clone)]
pub(crate) struct SignatureEntry {
    pub(crate) keyid: KeyId,
    pub(crate) sig: [u8; 64],
}

/// A parsed envelope whose `_type` is the one expected; signatures not yet checked.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    pub(crate) signed: Value,
    /// JCS bytes of `signed`: what every signature covers.
    pub(crate) signed_bytes: Vec<u8>,
    pub(crate) signatures: Vec<SignatureEntry>,
}

impl Envelope {
    /// Parses envelope bytes strictly and checks `_type` before anything else.
    pub(crate) fn parse(bytes: &[u8], expected_type: &str) -> Result<Self, TrustError> {
        let value = parse_strict(bytes)
            .map_err(|e| TrustError::malformed(expected_type, format!("{e} ({})", e.code())))?;
        let Value::Object(mut top) = value else {
            return Err(TrustError::malformed(expected_type, "not a JSON object"));
        };
        check_keys(&top, &["signatures", "signed"], expected_type, "envelope")?;
        let signed = top.remove("signed").unwrap_or(Value::Null);
        let found_type = match &signed {
            Value::Object(map) => match map.get("_type") {
                Some(Value::String(t)) => t.clone(),
                _ => String::new(),
            },
            _ => {
                return Err(TrustError::malformed(
                    expected_type,
                    "`signed` is not an object",
                ));
            }
        };
        if found_type != expected_type {
            return Err(TrustError::WrongType {
                expected: expected_type.to_owned(),
                found: found_type,
            });
        }
        let Some(Value::Array(raw_signatures)) = top.remove("signatures") else {
            return Err(TrustError::malformed(
                expected_type,
                "`signatures` is not an array",
            ));
        };
        if raw_signatures.len() > MAX_SIGNATURES {
            return Err(TrustError::TooManySignatures {
                document: expected_type.to_owned(),
                found: raw_signatures.len(),
                limit: MAX_SIGNATURES,
            });
        }
        let mut signatures = Vec::with_capacity(raw_signatures.len());
        for raw in raw_signatures {
            signatures.push(parse_signature_entry(raw, expected_type)?);
        }
        check_distinct(&signatures, expected_type)?;
        let signed_bytes = canonicalize_value(&signed)?;
        Ok(Self {
            signed,
            signed_bytes,
            signatures,
        })
    }

    /// The document digest: SHA-256 of the JCS bytes of `signed`.
    pub(crate) fn digest(&self) -> Digest {
        Digest::of(&self.signed_bytes)
    }

    /// Reads `signed` into its typed form (unknown fields are refused by the type).
    pub(crate) fn body<T: DeserializeOwned>(&self, document: &str) -> Result<T, TrustError> {
        serde_json::from_value(self.signed.clone())
            .map_err(|e| TrustError::malformed(document, e.to_string()))
    }

    /// Checks that at least `threshold` distinct keys of a role signed `signed` validly.
    ///
    /// `role_keys` are the keys of the role; `known_keys` every key of the trust root (to tell
    /// "unknown key" from "key lacks role"). See [`check_signatures`] for the rule.
    pub(crate) fn check_role(
        &self,
        document: &str,
        role: &str,
        role_keys: &BTreeMap<KeyId, PublicKey>,
        known_keys: &BTreeMap<KeyId, PublicKey>,
        threshold: u64,
    ) -> Result<(), TrustError> {
        self.check(&SignatureCheck {
            document,
            role,
            role_keys,
            known_keys,
            threshold,
            co_signers: None,
        })
    }

    /// [`check_role`](Self::check_role) with every part of the check given.
    pub(crate) fn check(&self, check: &SignatureCheck<'_>) -> Result<(), TrustError> {
        check_signatures(&self.signatures, &self.signed_bytes, check)
    }
}

/// The most signatures any one document may carry, whatever its roles: a longer list is
/// refused while it is read, before any signature is decoded or checked.
pub const MAX_SIGNATURES: usize = 1_024;

/// What one role check needs.
///
/// `role_keys` are the keys of the role; `known_keys` every key of the trust root (to tell
/// "unknown key" from "key lacks role"); `co_signers` the keys whose signatures the document
/// carries for another check of the same document (the other side of a trust-root rotation):
/// they are neither counted nor reported as unknown or lacking the role.
pub(crate) struct SignatureCheck<'a> {
    pub(crate) document: &'a str,
    pub(crate) role: &'a str,
    pub(crate) role_keys: &'a BTreeMap<KeyId, PublicKey>,
    pub(crate) known_keys: &'a BTreeMap<KeyId, PublicKey>,
    pub(crate) threshold: u64,
    pub(crate) co_signers: Option<&'a BTreeMap<KeyId, PublicKey>>,
}

impl SignatureCheck<'_> {
    /// How many signatures the document may carry: one per key id of the role and of the
    /// co-signers.
    pub(crate) fn allowed_signatures(&self) -> usize {
        let others = self.co_signers.map_or(0, |co| {
            co.keys()
                .filter(|keyid| !self.role_keys.contains_key(keyid))
                .count()
        });
        self.role_keys.len().saturating_add(others)
    }

    /// Refuses more signatures than [`allowed_signatures`](Self::allowed_signatures), before
    /// any of them is checked.
    pub(crate) fn check_count(&self, signatures: usize) -> Result<(), TrustError> {
        let limit = self.allowed_signatures();
        if signatures > limit {
            return Err(TrustError::TooManySignatures {
                document: self.document.to_owned(),
                found: signatures,
                limit,
            });
        }
        Ok(())
    }
}

/// Refuses a signature list that names one key id twice or carries the same signature bytes
/// twice (a repeated entry can only inflate the work of checking it).
pub(crate) fn check_distinct(
    signatures: &[SignatureEntry],
    document: &str,
) -> Result<(), TrustError> {
    let mut keyids = BTreeSet::new();
    let mut sigs = BTreeSet::new();
    for entry in signatures {
        if !keyids.insert(entry.keyid) {
            return Err(TrustError::DuplicateSignature {
                document: document.to_owned(),
                what: format!("key id {} twice", entry.keyid),
            });
        }
        if !sigs.insert(entry.sig) {
            return Err(TrustError::DuplicateSignature {
                document: document.to_owned(),
                what: "the same signature bytes twice".to_owned(),
            });
        }
    }
    Ok(())
}

/// The threshold rule shared by envelopes and attestations.
///
/// The number of signatures is bounded first ([`SignatureCheck::check_count`]), before any is
/// verified. A signature claiming a role key that does not verify refuses the whole document.
/// Keys are counted by their public bytes, so one key listed under two ids counts once.
pub(crate) fn check_signatures(
    signatures: &[SignatureEntry],
    message: &[u8],
    check: &SignatureCheck<'_>,
) -> Result<(), TrustError> {
    check_signatures_with(signatures, check, |index, key| {
        signatures
            .get(index)
            .is_some_and(|entry| key.verify_strict(message, &entry.sig))
    })
}

/// [`check_signatures`] with the verification supplied by the caller (to reuse results).
pub(crate) fn check_signatures_with(
    signatures: &[SignatureEntry],
    check: &SignatureCheck<'_>,
    verifies: impl Fn(usize, &PublicKey) -> bool,
) -> Result<(), TrustError> {
    check.check_count(signatures.len())?;
    let mut valid: BTreeSet<[u8; 32]> = BTreeSet::new();
    let mut lacking_role = None;
    let mut unknown = None;
    for (index, entry) in signatures.iter().enumerate() {
        if let Some(key) = check.role_keys.get(&entry.keyid) {
            if !verifies(index, key) {
                return Err(TrustError::BadSignature {
                    document: check.document.to_owned(),
                    keyid: entry.keyid.to_string(),
                });
            }
            valid.insert(key.to_bytes());
        } else if check
            .co_signers
            .is_some_and(|co| co.contains_key(&entry.keyid))
        {
            // Signed for the other side of a rotation: checked by that side's own check.
        } else if check.known_keys.contains_key(&entry.keyid) {
            lacking_role.get_or_insert(entry.keyid);
        } else {
            unknown.get_or_insert(entry.keyid);
        }
    }
    let found = u64::try_from(valid.len()).unwrap_or(u64::MAX);
    if check.threshold > 0 && found >= check.threshold {
        return Ok(());
    }
    if let Some(keyid) = lacking_role {
        return Err(TrustError::KeyLacksRole {
            document: check.document.to_owned(),
            keyid: keyid.to_string(),
            role: check.role.to_owned(),
        });
    }
    if let Some(keyid) = unknown {
        return Err(TrustError::UnknownKey {
            document: check.document.to_owned(),
            keyid: keyid.to_string(),
        });
    }
    Err(TrustError::ThresholdNotMet {
        document: check.document.to_owned(),
        role: check.role.to_owned(),
        threshold: check.threshold,
        found,
    })
}

fn parse_signature_entry(raw: Value, document: &str) -> Result<SignatureEntry, TrustError> {
    let Value::Object(map) = raw else {
        return Err(TrustError::malformed(
            document,
            "a signature is not an object",
        ));
    };
    check_keys(&map, &["keyid", "sig"], document, "signature")?;
    let keyid = match map.get("keyid") {
        Some(Value::String(text)) => text.parse::<KeyId>()?,
        _ => {
            return Err(TrustError::malformed(
                document,
                "signature keyid is not a string",
            ));
        }
    };
    let sig = match map.get("sig") {
        Some(Value::String(text)) => {
            decode_signature(text).ok_or_else(|| TrustError::InvalidEncoding {
                document: document.to_owned(),
                field: "sig",
                expected: "64 bytes of canonical base64",
            })?
        }
        _ => {
            return Err(TrustError::malformed(
                document,
                "signature sig is not a string",
            ));
        }
    };
    Ok(SignatureEntry { keyid, sig })
}

/// Refuses an object unless its keys are exactly `expected`.
pub(crate) fn check_keys(
    map: &Map<String, Value>,
    expected: &[&str],
    document: &str,
    what: &str,
) -> Result<(), TrustError> {
    let found: BTreeSet<&str> = map.keys().map(String::as_str).collect();
    let wanted: BTreeSet<&str> = expected.iter().copied().collect();
    if found == wanted {
        Ok(())
    } else {
        Err(TrustError::malformed(
            document,
            format!("{what} must have exactly the fields {expected:?}, found {found:?}"),
        ))
    }
}

/// Signs a document body with every signer and returns the envelope file bytes
/// (pretty-printed JSON with a final newline; verification recomputes the JCS bytes).
pub(crate) fn sign_document<T: Serialize>(
    body: &T,
    signers: &[&dyn Signer],
) -> Result<Vec<u8>, TrustError> {
    let signed = serde_json::to_value(body).map_err(|e| {
        TrustError::Canon(parmana_canon::CanonError::NotRepresentable {
            message: e.to_string(),
        })
    })?;
    let signed_bytes = canonicalize_value(&signed)?;
    let mut seen = BTreeSet::new();
    let mut signatures = Vec::with_capacity(signers.len());
    for signer in signers {
        // The key id written is the one its signature is verified under.
        let key = signer.public_key();
        let keyid = key.key_id();
        if !seen.insert(keyid) {
            continue;
        }
        let sig = crate::keys::sign_checked(*signer, &key, &signed_bytes)?;
        let mut entry = Map::new();
        entry.insert("keyid".to_owned(), Value::String(keyid.to_string()));
        entry.insert("sig".to_owned(), Value::String(encode_base64(&sig)));
        signatures.push(Value::Object(entry));
    }
    let mut top = Map::new();
    top.insert("signed".to_owned(), signed);
    top.insert("signatures".to_owned(), Value::Array(signatures));
    // Members in canonical (sorted) order whatever `serde_json`'s features: the same file bytes
    // in every build (with `preserve_order`, a Map keeps insertion order instead).
    let sorted = parmana_canon::parse_strict(&canonicalize_value(&Value::Object(top))?)?;
    let mut out = serde_json::to_vec_pretty(&sorted).map_err(|e| {
        TrustError::Canon(parmana_canon::CanonError::NotRepresentable {
            message: e.to_string(),
        })
    })?;
    out.push(b'\n');
    Ok(out)
}
