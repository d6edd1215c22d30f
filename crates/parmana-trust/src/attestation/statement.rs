//! The attestation's wire types — predicate, in-toto statement, DSSE envelope — and their encoding, parsing, PAE and fingerprint.
//!
//! Every byte written here comes from `parmana-canon`: the statement and the envelope are wire
//! structs encoded by `to_canonical_vec`, the predicate is embedded as a `RawCanonical` so it
//! is encoded once. Parsing reads straight into the same types; the payload must then be
//! byte for byte its own canonical form.

use std::borrow::Cow;

use parmana_canon::{
    Digest, ExecutionId, PolicyId, PolicyVersion, RawCanonical, Timestamp, to_canonical_vec,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DOCUMENT;
use crate::envelope::{MAX_SIGNATURES, SignatureEntry, check_distinct};
use crate::keys::{decode_base64, decode_signature, encode_base64};
use crate::{KeyId, TrustError};

/// The DSSE `payloadType` of an attestation.
pub(crate) const DSSE_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The in-toto Statement `_type`.
pub(crate) const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// The predicate type of an execution attestation.
pub(crate) const PREDICATE_TYPE: &str = "urn:parmana:attestation:execution:v1";

/// The prefix of the statement subject's name, followed by the execution id.
pub(crate) const SUBJECT_PREFIX: &str = "execution/";

/// The largest attestation envelope read or verified: 4 MiB. An envelope embedding the largest
/// signals (1 MiB of JSON, base64 inside the payload) and the most signatures stays well below.
pub const MAX_ENVELOPE_BYTES: usize = 4 * 1024 * 1024;

/// The start of every attestation's PAE: `"DSSEv1" SP LEN(type) SP type SP`.
const PAE_PREFIX: &str = "DSSEv1 28 application/vnd.in-toto+json ";

/// The policy an execution ran under, as its attestation records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedPolicy {
    /// Policy id.
    pub id: PolicyId,
    /// Policy version.
    pub version: PolicyVersion,
    /// SHA-256 of the raw bytes of `policy.json`.
    pub policy_digest: Digest,
    /// Digest of the bundle manifest's `signed` part.
    pub bundle_digest: Digest,
}

/// The evaluator that decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluatorRef {
    /// Evaluator name.
    pub name: String,
    /// Evaluator version.
    pub version: String,
    /// Evaluator semantics version.
    pub semantics: String,
}

/// The runtime that executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeRef {
    /// Runtime name.
    pub name: String,
    /// Runtime version.
    pub version: String,
}

/// A signed document (trust root or release manifest) by version and digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentRef {
    /// Document version.
    pub version: u64,
    /// Document digest.
    pub digest: Digest,
}

/// The predicate of an execution attestation: everything the attestation binds. The runtime
/// fills it in; [`build_attestation`](crate::build_attestation) signs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionPredicate {
    /// The execution id.
    pub execution_id: ExecutionId,
    /// The policy.
    pub policy: AttestedPolicy,
    /// Digest of the JCS bytes of the validated signals.
    pub signals_digest: Digest,
    /// The decision.
    pub decision: String,
    /// The deciding rule id, or `default`.
    pub rule_id: String,
    /// The reason given by the deciding outcome; absent when the policy gives none (as in
    /// `policy eval` and `explain`). An attestation of an earlier version may carry `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The evaluator.
    pub evaluator: EvaluatorRef,
    /// The runtime.
    pub runtime: RuntimeRef,
    /// The trust root that authorizes the signing key.
    pub trust_root: DocumentRef,
    /// The release manifest the policy was released in.
    pub release_manifest: DocumentRef,
    /// When the execution happened (the injected clock's reading).
    pub executed_at: Timestamp,
    /// The validated signals themselves, when the caller asked for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Value>,
}

/// DSSE's pre-authentication encoding of an attestation payload:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal bytes.
pub(crate) fn pae(payload: &[u8]) -> Vec<u8> {
    let length = payload.len().to_string();
    let mut out = Vec::with_capacity(PAE_PREFIX.len() + length.len() + 1 + payload.len());
    out.extend_from_slice(PAE_PREFIX.as_bytes());
    out.extend_from_slice(length.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// The member of the predicate its fingerprint leaves out.
const FINGERPRINT_OMITS: &str = "executed_at";

/// The predicate's canonical bytes and its fingerprint — SHA-256 of the JCS of the predicate
/// without `executed_at` —, from one encoding.
pub(crate) fn encode_predicate(
    predicate: &ExecutionPredicate,
) -> Result<(RawCanonical, Digest), TrustError> {
    let (whole, without) = RawCanonical::encode_omitting(predicate, FINGERPRINT_OMITS)?;
    Ok((whole, Digest::of(&without)))
}

/// The in-toto statement as it travels. Parsed straight into types, then re-encoded and
/// compared byte for byte with the payload, so that only the canonical encoding of exactly
/// these values is accepted (duplicate keys, other number spellings, whitespace or unknown
/// fields all fail one check or the other). `P` is the predicate: [`ExecutionPredicate`] when
/// read, its [`RawCanonical`] bytes when written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatementWire<'a, P> {
    #[serde(rename = "_type", borrow)]
    statement_type: Cow<'a, str>,
    subject: Vec<SubjectWire>,
    #[serde(rename = "predicateType", borrow)]
    predicate_type: Cow<'a, str>,
    predicate: P,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectWire {
    name: String,
    digest: SubjectDigestWire,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectDigestWire {
    sha256: String,
}

/// The DSSE envelope as it travels. Parsed straight into types: duplicate or unknown fields,
/// lone surrogates and trailing data are refused by the parser.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DsseWire<'a> {
    #[serde(borrow)]
    payload: Cow<'a, str>,
    #[serde(rename = "payloadType", borrow)]
    payload_type: Cow<'a, str>,
    signatures: Vec<DsseSignatureWire<'a>>,
}

/// The DSSE envelope as it is read: like [`DsseWire`], with the signature list bounded while
/// it is parsed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DsseReadWire<'a> {
    #[serde(borrow)]
    payload: Cow<'a, str>,
    #[serde(rename = "payloadType", borrow)]
    payload_type: Cow<'a, str>,
    #[serde(borrow)]
    signatures: BoundedSignatures<'a>,
}

/// A signature list read up to [`MAX_SIGNATURES`] entries; the rest are skipped without being
/// kept (only counted), and the list is then refused.
struct BoundedSignatures<'a> {
    entries: Vec<DsseSignatureWire<'a>>,
    total: usize,
}

impl<'de: 'a, 'a> Deserialize<'de> for BoundedSignatures<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Entries<'a> {
            type Value = BoundedSignatures<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of signatures")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                let mut total = 0usize;
                loop {
                    let more = if entries.len() < MAX_SIGNATURES {
                        match seq.next_element::<ObjectOnly<DsseSignatureWire<'a>>>()? {
                            Some(ObjectOnly(entry)) => {
                                entries.push(entry);
                                true
                            }
                            None => false,
                        }
                    } else {
                        seq.next_element::<serde::de::IgnoredAny>()?.is_some()
                    };
                    if !more {
                        break;
                    }
                    total = total.saturating_add(1);
                }
                Ok(BoundedSignatures { entries, total })
            }
        }
        deserializer.deserialize_seq(Entries(std::marker::PhantomData))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DsseSignatureWire<'a> {
    #[serde(borrow)]
    keyid: Cow<'a, str>,
    #[serde(borrow)]
    sig: Cow<'a, str>,
}

/// `T` read from a JSON object only. A struct serde derives also takes a list of its fields in
/// order (`["payload", "type", [...]]`), which DSSE does not allow: two verifiers must not
/// disagree on what an envelope is.
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
            type Value = ObjectOnly<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ObjectOnly)
            }
        }
        deserializer.deserialize_map(Object(std::marker::PhantomData))
    }
}

fn malformed(message: impl Into<String>) -> TrustError {
    TrustError::malformed(DOCUMENT, message)
}

/// The canonical statement (the DSSE payload) around an already encoded predicate.
pub(crate) fn encode_payload(
    predicate: &RawCanonical,
    execution_id: &ExecutionId,
    fingerprint: &Digest,
) -> Result<Vec<u8>, TrustError> {
    Ok(to_canonical_vec(&StatementWire {
        statement_type: Cow::Borrowed(STATEMENT_TYPE),
        subject: vec![SubjectWire {
            name: format!("{SUBJECT_PREFIX}{execution_id}"),
            digest: SubjectDigestWire {
                sha256: fingerprint.to_hex(),
            },
        }],
        predicate_type: Cow::Borrowed(PREDICATE_TYPE),
        predicate,
    })?)
}

/// The canonical DSSE envelope of a payload with one signature.
pub(crate) fn encode_envelope(
    payload: &[u8],
    signatures: &[(KeyId, [u8; 64])],
) -> Result<RawCanonical, TrustError> {
    Ok(RawCanonical::encode(&DsseWire {
        payload: Cow::Owned(encode_base64(payload)),
        payload_type: Cow::Borrowed(DSSE_PAYLOAD_TYPE),
        signatures: signatures
            .iter()
            .map(|(keyid, sig)| DsseSignatureWire {
                keyid: Cow::Owned(keyid.to_string()),
                sig: Cow::Owned(encode_base64(sig)),
            })
            .collect(),
    })?)
}

/// The outer DSSE envelope, decoded.
pub(crate) struct DsseEnvelope {
    pub(crate) payload: Vec<u8>,
    pub(crate) signatures: Vec<SignatureEntry>,
}

/// The parsed statement, with the fingerprint recomputed from its predicate.
pub(crate) struct Statement {
    pub(crate) subject_name: String,
    pub(crate) subject_sha256: String,
    pub(crate) predicate: ExecutionPredicate,
    pub(crate) fingerprint: Digest,
}

pub(crate) fn parse_dsse(bytes: &[u8]) -> Result<DsseEnvelope, TrustError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(TrustError::DocumentTooLarge {
            path: DOCUMENT.to_owned(),
            limit: MAX_ENVELOPE_BYTES,
        });
    }
    let ObjectOnly(wire): ObjectOnly<DsseReadWire<'_>> = serde_json::from_slice(bytes)
        .map_err(|e| malformed(format!("envelope: {}", quoted(&e))))?;
    if wire.payload_type != DSSE_PAYLOAD_TYPE {
        return Err(TrustError::WrongType {
            expected: DSSE_PAYLOAD_TYPE.to_owned(),
            found: parmana_canon::excerpt(&wire.payload_type),
        });
    }
    let payload = decode_base64(&wire.payload).ok_or_else(|| TrustError::InvalidEncoding {
        document: DOCUMENT.to_owned(),
        field: "payload",
        expected: "canonical base64",
    })?;
    if wire.signatures.total > MAX_SIGNATURES {
        return Err(TrustError::TooManySignatures {
            document: DOCUMENT.to_owned(),
            found: wire.signatures.total,
            limit: MAX_SIGNATURES,
        });
    }
    if wire.signatures.entries.is_empty() {
        return Err(malformed("signatures is empty"));
    }
    let mut signatures = Vec::with_capacity(wire.signatures.entries.len());
    for entry in &wire.signatures.entries {
        let keyid: KeyId = entry.keyid.parse()?;
        let sig = decode_signature(&entry.sig).ok_or_else(|| TrustError::InvalidEncoding {
            document: DOCUMENT.to_owned(),
            field: "sig",
            expected: "64 bytes of canonical base64",
        })?;
        signatures.push(SignatureEntry { keyid, sig });
    }
    check_distinct(&signatures, DOCUMENT)?;
    Ok(DsseEnvelope {
        payload,
        signatures,
    })
}

/// Whether `envelope` is spelled exactly as a runtime emits an attestation: canonical JSON, its
/// signatures in ascending key-id order. A verifier accepts other spellings of one attestation
/// (whitespace, member or signature order: the signatures cover the payload only), but the
/// ledger and log proofs bind an attestation by the digest of its bytes, so what a runtime reads
/// back from its store (outside the trust boundary) must be the one spelling it wrote — a store
/// writer's re-spelling would otherwise be logged in place of what the client holds.
pub fn is_emitted_attestation_encoding(envelope: &[u8]) -> bool {
    let Ok(dsse) = parse_dsse(envelope) else {
        return false;
    };
    if dsse
        .signatures
        .windows(2)
        .any(|pair| pair[0].keyid >= pair[1].keyid)
    {
        return false;
    }
    let signatures: Vec<(KeyId, [u8; 64])> = dsse
        .signatures
        .iter()
        .map(|entry| (entry.keyid, entry.sig))
        .collect();
    encode_envelope(&dsse.payload, &signatures).is_ok_and(|encoded| encoded.as_bytes() == envelope)
}

/// The in-toto statement an attestation envelope carries, decoded for display (`parmana verify
/// --show`): the DSSE envelope read as [`verify_attestation`](crate::verify_attestation) reads
/// it, its payload parsed as strict JSON. Nothing is verified: the statement of a forged or
/// tampered attestation decodes too, so show it only beside its verification report.
pub fn decode_attestation_statement(envelope: &[u8]) -> Result<Value, TrustError> {
    let dsse = parse_dsse(envelope)?;
    parmana_canon::parse_strict(&dsse.payload).map_err(|e| malformed(format!("payload: {e}")))
}

/// Refuses (`trust.malformed`) a predicate holding a value the published schema
/// (`docs/schema/attestation-predicate.schema.json`) forbids and no runtime signs: a decision or
/// rule id that is not a label, a document version of 0, embedded signals that are not an
/// object. A verifier built from the schema refuses it too, so both agree on what is valid.
pub(super) fn check_predicate_values(predicate: &ExecutionPredicate) -> Result<(), TrustError> {
    for (member, label) in [
        ("decision", &predicate.decision),
        ("rule_id", &predicate.rule_id),
    ] {
        if !parmana_canon::is_label(label) {
            return Err(malformed(format!(
                "payload: predicate.{member} {:?} is not a label ([A-Za-z0-9][A-Za-z0-9_.-]*, at \
                 most {} characters)",
                parmana_canon::excerpt(label),
                parmana_canon::MAX_LABEL_LEN
            )));
        }
    }
    for (member, document) in [
        ("trust_root", &predicate.trust_root),
        ("release_manifest", &predicate.release_manifest),
    ] {
        if document.version == 0 {
            return Err(malformed(format!(
                "payload: predicate.{member}.version is 0: document versions start at 1"
            )));
        }
    }
    if predicate.signals.as_ref().is_some_and(|s| !s.is_object()) {
        return Err(malformed(
            "payload: predicate.signals is not an object".to_owned(),
        ));
    }
    Ok(())
}

/// An error of what was read, as a refusal quotes it: its first 512 characters (serde repeats a
/// refused value whole, escaped).
fn quoted(error: &impl std::fmt::Display) -> String {
    parmana_canon::bounded_display(error, 512)
}

pub(crate) fn parse_statement(payload: &[u8]) -> Result<Statement, TrustError> {
    // Read by parmana-canon's reader, as every signed document is: numbers correctly rounded
    // (serde_json's own reader, in a build without its `float_roundtrip` feature, misreads
    // many 16- and 17-digit decimals, and the canonical check below would then refuse an
    // attestation the runtime signed), duplicate members refused.
    let value = parmana_canon::parse_strict(payload)
        .map_err(|e| malformed(format!("payload: {}", quoted(&e))))?;
    // The types first, before the predicate is read as ours: another kind of statement (SLSA
    // provenance, say) is `trust.wrong_type` whatever its predicate's shape.
    for (member, expected) in [("_type", STATEMENT_TYPE), ("predicateType", PREDICATE_TYPE)] {
        if let Some(found) = value.get(member).and_then(Value::as_str)
            && found != expected
        {
            return Err(TrustError::WrongType {
                expected: expected.to_owned(),
                found: parmana_canon::excerpt(found),
            });
        }
    }
    let StatementWire {
        statement_type,
        subject,
        predicate_type,
        predicate,
    } = StatementWire::<'_, ExecutionPredicate>::deserialize(&value)
        .map_err(|e| malformed(format!("payload: {}", quoted(&e))))?;
    // The predicate is encoded once, for the fingerprint and for the canonical check of the
    // whole statement (which embeds those very bytes).
    let (canonical_predicate, fingerprint) = encode_predicate(&predicate)?;
    let reencoded = StatementWire {
        statement_type,
        subject,
        predicate_type,
        predicate: &canonical_predicate,
    };
    if to_canonical_vec(&reencoded)? != payload {
        return Err(TrustError::NotCanonical {
            document: DOCUMENT.to_owned(),
        });
    }
    let StatementWire {
        statement_type,
        subject,
        predicate_type,
        ..
    } = reencoded;
    if statement_type != STATEMENT_TYPE {
        return Err(TrustError::WrongType {
            expected: STATEMENT_TYPE.to_owned(),
            found: statement_type.into_owned(),
        });
    }
    if predicate_type != PREDICATE_TYPE {
        return Err(TrustError::WrongType {
            expected: PREDICATE_TYPE.to_owned(),
            found: predicate_type.into_owned(),
        });
    }
    check_predicate_values(&predicate)?;
    let mut subjects = subject.into_iter();
    let (Some(subject), None) = (subjects.next(), subjects.next()) else {
        return Err(TrustError::SubjectMismatch {
            message: "subject must be a list of exactly one entry".to_owned(),
        });
    };
    Ok(Statement {
        subject_name: subject.name,
        subject_sha256: subject.digest.sha256,
        predicate,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_prefix_is_the_dsse_header_of_the_payload_type() {
        assert_eq!(
            PAE_PREFIX,
            format!("DSSEv1 {} {DSSE_PAYLOAD_TYPE} ", DSSE_PAYLOAD_TYPE.len())
        );
        assert_eq!(
            pae(b""),
            PAE_PREFIX.bytes().chain(*b"0 ").collect::<Vec<_>>()
        );
        assert_eq!(
            pae(b"{\"a\":1}"),
            b"DSSEv1 28 application/vnd.in-toto+json 7 {\"a\":1}".to_vec()
        );
    }

    fn keyid() -> KeyId {
        format!("sha256:{}", "ab".repeat(32)).parse().unwrap()
    }

    #[test]
    fn the_statement_decodes_from_the_envelope_without_verifying_it() {
        let payload = br#"{"_type":"x","predicate":{"a":1}}"#;
        let envelope = encode_envelope(payload, &[(keyid(), [7; 64])]).unwrap();
        let statement = decode_attestation_statement(envelope.as_bytes()).unwrap();
        assert_eq!(statement["predicate"]["a"], 1);
        assert_eq!(
            decode_attestation_statement(b"{}").unwrap_err().code(),
            "trust.malformed"
        );
        let not_json = encode_envelope(b"{", &[(keyid(), [7; 64])]).unwrap();
        assert!(decode_attestation_statement(not_json.as_bytes()).is_err());
    }
}
