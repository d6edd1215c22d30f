//! Execution attestations: a DSSE envelope around an in-toto Statement v1 whose predicate binds one execution.

use std::collections::BTreeMap;

use parmana_canon::{Digest, ExecutionId, Timestamp, to_canonical_vec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::{SignatureCheck, SignatureEntry, check_signatures_with};
use crate::keys::{decode_base64, encode_base64};
use crate::{KeyId, Role, Signer, TrustError, VerifiedBundle, VerifiedTrustRoot};

/// The DSSE `payloadType` of an attestation.
pub const DSSE_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The in-toto Statement `_type`.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// The predicate type of an execution attestation.
pub const PREDICATE_TYPE: &str = "urn:parmana:attestation:execution:v1";

/// The prefix of the statement subject's name, followed by the execution id.
pub const SUBJECT_PREFIX: &str = "execution/";

const DOCUMENT: &str = "attestation";

/// The policy an execution ran under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRef {
    /// Policy id.
    pub id: String,
    /// Policy version.
    pub version: String,
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
/// fills it in; [`build_attestation`] signs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionPredicate {
    /// The execution id (1–128 printable ASCII characters, no spaces).
    pub execution_id: String,
    /// The policy.
    pub policy: PolicyRef,
    /// Digest of the JCS bytes of the validated signals.
    pub signals_digest: Digest,
    /// The decision.
    pub decision: String,
    /// The deciding rule id, or `default`.
    pub rule_id: String,
    /// The reason given by the deciding rule.
    pub reason: String,
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

/// DSSE's pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal bytes.
pub fn dsse_pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// The predicate as serialized for its fingerprint: every field but `executed_at`.
struct FingerprintView<'a>(&'a ExecutionPredicate);

impl Serialize for FingerprintView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let p = self.0;
        let mut s = serializer.serialize_struct("ExecutionPredicate", 12)?;
        s.serialize_field("execution_id", &p.execution_id)?;
        s.serialize_field("policy", &p.policy)?;
        s.serialize_field("signals_digest", &p.signals_digest)?;
        s.serialize_field("decision", &p.decision)?;
        s.serialize_field("rule_id", &p.rule_id)?;
        s.serialize_field("reason", &p.reason)?;
        s.serialize_field("evaluator", &p.evaluator)?;
        s.serialize_field("runtime", &p.runtime)?;
        s.serialize_field("trust_root", &p.trust_root)?;
        s.serialize_field("release_manifest", &p.release_manifest)?;
        if let Some(signals) = &p.signals {
            s.serialize_field("signals", signals)?;
        }
        s.end()
    }
}

/// The execution fingerprint: SHA-256 of the JCS of the predicate without `executed_at`.
pub fn attestation_fingerprint(predicate: &ExecutionPredicate) -> Result<Digest, TrustError> {
    Ok(Digest::of(&to_canonical_vec(&FingerprintView(predicate))?))
}

/// Appends the RFC 8785 form of a string (quotes and minimal escapes).
fn push_canonical_string(out: &mut Vec<u8>, text: &str) -> Result<(), TrustError> {
    out.extend_from_slice(&to_canonical_vec(text)?);
    Ok(())
}

/// Builds and signs an attestation; returns the envelope's bytes (its RFC 8785 form).
///
/// Refuses (before signing) an invalid execution id, a `trust_root` reference that is not
/// `trust_root`'s version and digest, embedded signals that do not have `signals_digest`, and a
/// signer whose key does not hold the `attestation` role. The same inputs and key always give
/// the same bytes. This is [`prepare_attestation`] followed by [`PreparedAttestation::sign`].
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
    canonical: Vec<u8>,
    fingerprint: Digest,
}

/// Checks a predicate against the trust root it claims and encodes it once.
///
/// Refuses an invalid execution id, a `trust_root` reference that is not `trust_root`'s
/// version and digest, and embedded signals that do not have `signals_digest`.
pub fn prepare_attestation<'a>(
    predicate: &'a ExecutionPredicate,
    trust_root: &VerifiedTrustRoot,
) -> Result<PreparedAttestation<'a>, TrustError> {
    if !ExecutionId::is_valid(&predicate.execution_id) {
        return Err(TrustError::malformed(
            DOCUMENT,
            "execution id must be 1 to 128 printable ASCII characters without spaces",
        ));
    }
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
    Ok(PreparedAttestation {
        predicate,
        canonical: to_canonical_vec(predicate)?,
        fingerprint: attestation_fingerprint(predicate)?,
    })
}

impl PreparedAttestation<'_> {
    /// The RFC 8785 bytes of the whole predicate (including `executed_at`).
    pub fn canonical_predicate(&self) -> &[u8] {
        &self.canonical
    }

    /// The execution fingerprint.
    pub fn fingerprint(&self) -> Digest {
        self.fingerprint
    }

    /// Signs the attestation; refuses a signer whose key does not hold the `attestation` role.
    ///
    /// The statement and the envelope are assembled from canonical pieces in RFC 8785 member
    /// order (`_type`, `predicate`, `predicateType`, `subject`; `payload`, `payloadType`,
    /// `signatures`), so the predicate is encoded once; a test checks the result equals
    /// re-encoding it whole.
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
        if signers.is_empty() {
            return Err(TrustError::malformed(DOCUMENT, "no signer given"));
        }
        let mut keyed: Vec<(KeyId, &dyn Signer)> = Vec::with_capacity(signers.len());
        for signer in signers {
            let keyid = signer.key_id();
            if !trust_root.has_role(&keyid, Role::Attestation)
                || trust_root.key(&keyid) != Some(signer.public_key())
            {
                return Err(TrustError::KeyLacksRole {
                    document: DOCUMENT.to_owned(),
                    keyid: keyid.to_string(),
                    role: Role::Attestation.as_str().to_owned(),
                });
            }
            keyed.push((keyid, *signer));
        }
        keyed.sort_by_key(|a| a.0);
        if keyed.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Err(TrustError::malformed(
                DOCUMENT,
                "the same key is given twice",
            ));
        }
        let mut payload = Vec::with_capacity(self.canonical.len() + 256);
        payload.extend_from_slice(b"{\"_type\":");
        push_canonical_string(&mut payload, STATEMENT_TYPE)?;
        payload.extend_from_slice(b",\"predicate\":");
        payload.extend_from_slice(&self.canonical);
        payload.extend_from_slice(b",\"predicateType\":");
        push_canonical_string(&mut payload, PREDICATE_TYPE)?;
        payload.extend_from_slice(b",\"subject\":[{\"digest\":{\"sha256\":\"");
        payload.extend_from_slice(self.fingerprint.to_hex().as_bytes());
        payload.extend_from_slice(b"\"},\"name\":");
        push_canonical_string(
            &mut payload,
            &format!("{SUBJECT_PREFIX}{}", self.predicate.execution_id),
        )?;
        payload.extend_from_slice(b"}]}");

        let pae = dsse_pae(DSSE_PAYLOAD_TYPE, &payload);
        let payload_b64 = encode_base64(&payload);
        let mut envelope = Vec::with_capacity(payload_b64.len() + 128 + 128 * keyed.len());
        envelope.extend_from_slice(b"{\"payload\":\"");
        envelope.extend_from_slice(payload_b64.as_bytes());
        envelope.extend_from_slice(b"\",\"payloadType\":");
        push_canonical_string(&mut envelope, DSSE_PAYLOAD_TYPE)?;
        envelope.extend_from_slice(b",\"signatures\":[");
        for (index, (keyid, signer)) in keyed.iter().enumerate() {
            let sig = signer.sign(&pae)?;
            if index > 0 {
                envelope.push(b',');
            }
            envelope.extend_from_slice(b"{\"keyid\":");
            push_canonical_string(&mut envelope, &keyid.to_string())?;
            envelope.extend_from_slice(b",\"sig\":\"");
            envelope.extend_from_slice(encode_base64(&sig).as_bytes());
            envelope.extend_from_slice(b"\"}");
        }
        envelope.extend_from_slice(b"]}");
        Ok(envelope)
    }
}

/// One check of [`verify_attestation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttestationCheckKind {
    /// The DSSE envelope, the statement and the predicate are well formed and canonical.
    Envelope,
    /// Every signature is by a key of the trust root and verifies over the PAE.
    Signature,
    /// A threshold of `attestation`-role keys signed.
    KeyRole,
    /// The predicate names the given trust root's version and digest.
    TrustRoot,
    /// The subject names the execution and carries the recomputed fingerprint.
    Fingerprint,
    /// The predicate's policy matches the given verified bundle (only when one is given).
    BundleDigest,
    /// The signals digest matches the given signals and any embedded signals.
    SignalsDigest,
}

impl AttestationCheckKind {
    /// The check's name in reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Envelope => "envelope",
            Self::Signature => "signature",
            Self::KeyRole => "key_role",
            Self::TrustRoot => "trust_root",
            Self::Fingerprint => "fingerprint",
            Self::BundleDigest => "bundle_digest",
            Self::SignalsDigest => "signals_digest",
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttestationCheck {
    /// Which check.
    pub check: AttestationCheckKind,
    /// Whether it passed.
    pub passed: bool,
    /// The stable error code when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// What was found.
    pub detail: String,
}

/// Every check of an attestation, each reported separately; valid only if all passed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttestationReport {
    /// The checks, in order.
    pub checks: Vec<AttestationCheck>,
    #[serde(skip)]
    predicate: Option<ExecutionPredicate>,
}

impl AttestationReport {
    /// `true` only when there are checks and every one passed.
    pub fn is_valid(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// The predicate, when the envelope was well formed (even if other checks failed).
    pub fn predicate(&self) -> Option<&ExecutionPredicate> {
        self.predicate.as_ref()
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &AttestationCheck> {
        self.checks.iter().filter(|c| !c.passed)
    }

    fn record(&mut self, check: AttestationCheckKind, outcome: Result<String, TrustError>) {
        let entry = match outcome {
            Ok(detail) => AttestationCheck {
                check,
                passed: true,
                code: None,
                detail,
            },
            Err(error) => AttestationCheck {
                check,
                passed: false,
                code: Some(error.code()),
                detail: error.to_string(),
            },
        };
        self.checks.push(entry);
    }
}

/// The outer DSSE envelope.
struct DsseEnvelope {
    payload: Vec<u8>,
    signatures: Vec<SignatureEntry>,
}

/// The parsed statement.
struct Statement {
    subject_name: String,
    subject_sha256: String,
    predicate: ExecutionPredicate,
}

/// The in-toto statement as it travels: parsed straight into types, then re-encoded and
/// compared byte for byte with the payload, so that only the canonical encoding of exactly
/// these values is accepted (duplicate keys, other number spellings, whitespace or unknown
/// fields all fail one check or the other).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatementWire {
    #[serde(rename = "_type")]
    statement_type: String,
    subject: Vec<SubjectWire>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: ExecutionPredicate,
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

fn malformed(message: impl Into<String>) -> TrustError {
    TrustError::malformed(DOCUMENT, message)
}

/// The DSSE envelope as it travels. Parsed straight into types: duplicate or unknown fields,
/// lone surrogates and trailing data are refused by the parser.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DsseWire {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    signatures: Vec<DsseSignatureWire>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DsseSignatureWire {
    keyid: String,
    sig: String,
}

fn parse_dsse(bytes: &[u8]) -> Result<DsseEnvelope, TrustError> {
    let wire: DsseWire =
        serde_json::from_slice(bytes).map_err(|e| malformed(format!("envelope: {e}")))?;
    if wire.payload_type != DSSE_PAYLOAD_TYPE {
        return Err(TrustError::WrongType {
            expected: DSSE_PAYLOAD_TYPE.to_owned(),
            found: wire.payload_type,
        });
    }
    let payload =
        decode_base64(&wire.payload).ok_or_else(|| malformed("payload is not canonical base64"))?;
    if wire.signatures.is_empty() {
        return Err(malformed("signatures is empty"));
    }
    let mut signatures = Vec::with_capacity(wire.signatures.len());
    for entry in &wire.signatures {
        let keyid: KeyId = entry.keyid.parse()?;
        let sig = decode_base64(&entry.sig)
            .filter(|s| s.len() == 64)
            .ok_or_else(|| malformed("signature is not 64 bytes of canonical base64"))?;
        signatures.push(SignatureEntry { keyid, sig });
    }
    Ok(DsseEnvelope {
        payload,
        signatures,
    })
}

fn parse_statement(payload: &[u8]) -> Result<Statement, TrustError> {
    let wire: StatementWire =
        serde_json::from_slice(payload).map_err(|e| malformed(format!("payload: {e}")))?;
    if to_canonical_vec(&wire)? != payload {
        return Err(malformed("payload is not in RFC 8785 canonical form"));
    }
    if wire.statement_type != STATEMENT_TYPE {
        return Err(TrustError::WrongType {
            expected: STATEMENT_TYPE.to_owned(),
            found: wire.statement_type,
        });
    }
    if wire.predicate_type != PREDICATE_TYPE {
        return Err(TrustError::WrongType {
            expected: PREDICATE_TYPE.to_owned(),
            found: wire.predicate_type,
        });
    }
    let mut subjects = wire.subject.into_iter();
    let (Some(subject), None) = (subjects.next(), subjects.next()) else {
        return Err(malformed("subject must be a list of exactly one entry"));
    };
    if !ExecutionId::is_valid(&wire.predicate.execution_id) {
        return Err(malformed("invalid execution id"));
    }
    Ok(Statement {
        subject_name: subject.name,
        subject_sha256: subject.digest.sha256,
        predicate: wire.predicate,
    })
}

/// Verifies an attestation envelope against a verified trust root and, when given, the
/// verified policy bundle and the signals it claims to bind.
///
/// Every check is reported separately (see [`AttestationCheckKind`]); checks that could not run
/// because the envelope was malformed are reported as failed. Never panics on hostile input.
pub fn verify_attestation(
    envelope: &[u8],
    trust_root: &VerifiedTrustRoot,
    bundle: Option<&VerifiedBundle>,
    signals: Option<&Value>,
) -> AttestationReport {
    use AttestationCheckKind as Kind;
    let mut report = AttestationReport {
        checks: Vec::new(),
        predicate: None,
    };
    let not_checked = |why: &str| Err(malformed(format!("not checked: {why}")));
    let dsse = match parse_dsse(envelope) {
        Ok(dsse) => dsse,
        Err(error) => {
            let why = error.to_string();
            report.record(Kind::Envelope, Err(error));
            for kind in [
                Kind::Signature,
                Kind::KeyRole,
                Kind::TrustRoot,
                Kind::Fingerprint,
            ] {
                report.record(kind, not_checked(&why));
            }
            if bundle.is_some() {
                report.record(Kind::BundleDigest, not_checked(&why));
            }
            if signals.is_some() {
                report.record(Kind::SignalsDigest, not_checked(&why));
            }
            return report;
        }
    };
    let statement = parse_statement(&dsse.payload);
    let message = dsse_pae(DSSE_PAYLOAD_TYPE, &dsse.payload);
    report.record(
        Kind::Envelope,
        statement
            .as_ref()
            .map(|_| "well formed".to_owned())
            .map_err(Clone::clone),
    );
    // Each signature is verified once; both checks below read the results.
    let verified: Vec<Option<bool>> = dsse
        .signatures
        .iter()
        .map(|entry| {
            trust_root
                .key(&entry.keyid)
                .map(|key| key.verify_signature(&message, &entry.sig))
        })
        .collect();
    report.record(Kind::Signature, check_all_signatures(&dsse, &verified));
    report.record(Kind::KeyRole, check_key_role(&dsse, &verified, trust_root));
    let statement = match statement {
        Ok(statement) => statement,
        Err(error) => {
            let why = error.to_string();
            report.record(Kind::TrustRoot, not_checked(&why));
            report.record(Kind::Fingerprint, not_checked(&why));
            if bundle.is_some() {
                report.record(Kind::BundleDigest, not_checked(&why));
            }
            if signals.is_some() {
                report.record(Kind::SignalsDigest, not_checked(&why));
            }
            return report;
        }
    };
    let predicate = &statement.predicate;
    report.record(Kind::TrustRoot, check_trust_root(predicate, trust_root));
    report.record(Kind::Fingerprint, check_fingerprint(&statement));
    if let Some(bundle) = bundle {
        report.record(Kind::BundleDigest, check_bundle(predicate, bundle));
    }
    if signals.is_some() || predicate.signals.is_some() {
        report.record(Kind::SignalsDigest, check_signals(predicate, signals));
    }
    report.predicate = Some(statement.predicate);
    report
}

fn check_all_signatures(
    dsse: &DsseEnvelope,
    verified: &[Option<bool>],
) -> Result<String, TrustError> {
    for (entry, outcome) in dsse.signatures.iter().zip(verified) {
        match outcome {
            None => {
                return Err(TrustError::UnknownKey {
                    document: DOCUMENT.to_owned(),
                    keyid: entry.keyid.to_string(),
                });
            }
            Some(false) => {
                return Err(TrustError::BadSignature {
                    document: DOCUMENT.to_owned(),
                    keyid: entry.keyid.to_string(),
                });
            }
            Some(true) => {}
        }
    }
    Ok(format!("{} signature(s) verify", dsse.signatures.len()))
}

fn check_key_role(
    dsse: &DsseEnvelope,
    verified: &[Option<bool>],
    trust_root: &VerifiedTrustRoot,
) -> Result<String, TrustError> {
    let role = trust_root.role_keys(Role::Attestation)?;
    check_signatures_with(
        &dsse.signatures,
        &SignatureCheck {
            document: DOCUMENT,
            role: Role::Attestation.as_str(),
            role_keys: &role.keys,
            known_keys: trust_root.all_keys(),
            threshold: role.threshold,
        },
        |index, _key| verified.get(index).copied().flatten().unwrap_or(false),
    )?;
    Ok(format!(
        "signed by the attestation role of trust root version {}",
        trust_root.version()
    ))
}

fn check_trust_root(
    predicate: &ExecutionPredicate,
    trust_root: &VerifiedTrustRoot,
) -> Result<String, TrustError> {
    if predicate.trust_root.version == trust_root.version()
        && predicate.trust_root.digest == trust_root.digest()
    {
        Ok(format!(
            "trust root version {} {}",
            trust_root.version(),
            trust_root.digest()
        ))
    } else {
        Err(TrustError::DigestMismatch {
            subject: "trust_root".to_owned(),
            expected: format!("{} {}", trust_root.version(), trust_root.digest()),
            found: format!(
                "{} {}",
                predicate.trust_root.version, predicate.trust_root.digest
            ),
        })
    }
}

fn check_fingerprint(statement: &Statement) -> Result<String, TrustError> {
    let expected_name = format!("{SUBJECT_PREFIX}{}", statement.predicate.execution_id);
    if statement.subject_name != expected_name {
        return Err(malformed(format!(
            "subject name {:?} is not {expected_name:?}",
            statement.subject_name
        )));
    }
    let fingerprint = attestation_fingerprint(&statement.predicate)?;
    if statement.subject_sha256 != fingerprint.to_hex() {
        return Err(TrustError::DigestMismatch {
            subject: "fingerprint".to_owned(),
            expected: statement.subject_sha256.clone(),
            found: fingerprint.to_hex(),
        });
    }
    Ok(fingerprint.to_string())
}

fn check_bundle(
    predicate: &ExecutionPredicate,
    bundle: &VerifiedBundle,
) -> Result<String, TrustError> {
    let pairs: BTreeMap<&str, (String, String)> = [
        (
            "policy id",
            (predicate.policy.id.clone(), bundle.policy_id().to_owned()),
        ),
        (
            "policy version",
            (
                predicate.policy.version.clone(),
                bundle.policy_version().to_owned(),
            ),
        ),
        (
            "bundle digest",
            (
                predicate.policy.bundle_digest.to_string(),
                bundle.bundle_digest().to_string(),
            ),
        ),
        (
            "policy digest",
            (
                predicate.policy.policy_digest.to_string(),
                bundle.policy_digest().to_string(),
            ),
        ),
    ]
    .into();
    for (subject, (expected, found)) in pairs {
        if expected != found {
            return Err(TrustError::DigestMismatch {
                subject: subject.to_owned(),
                expected,
                found,
            });
        }
    }
    Ok(format!("bundle {}", bundle.bundle_digest()))
}

fn check_signals(
    predicate: &ExecutionPredicate,
    signals: Option<&Value>,
) -> Result<String, TrustError> {
    for (label, value) in [
        ("given signals", signals),
        ("embedded signals", predicate.signals.as_ref()),
    ] {
        if let Some(value) = value {
            let found = Digest::of_canonical(value)?;
            if found != predicate.signals_digest {
                return Err(TrustError::DigestMismatch {
                    subject: label.to_owned(),
                    expected: predicate.signals_digest.to_string(),
                    found: found.to_string(),
                });
            }
        }
    }
    Ok(predicate.signals_digest.to_string())
}
