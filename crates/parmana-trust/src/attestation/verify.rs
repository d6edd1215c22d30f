//! Verifying attestations: every check reported separately, for one envelope or many (Ed25519 batch verification, same reports).

use parmana_canon::Digest;
use serde::Serialize;
use serde_json::Value;

use super::DOCUMENT;
use super::statement::{
    DsseEnvelope, ExecutionPredicate, SUBJECT_PREFIX, Statement, pae, parse_dsse, parse_statement,
};
use crate::envelope::{SignatureCheck, check_signatures_with};
use crate::keys::{BatchItem, verify_batch};
use crate::{Role, TrustError, VerifiedBundle, VerifiedTrustRoot};

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

/// A decoded envelope: its signatures, the PAE they cover, and the statement (or why it could
/// not be read).
struct Decoded {
    dsse: DsseEnvelope,
    message: Vec<u8>,
    statement: Result<Statement, TrustError>,
}

/// An envelope read as far as it goes, before any signature is checked.
struct Parsed {
    /// The decoded envelope, or why it could not be decoded.
    envelope: Result<Decoded, TrustError>,
}

fn parse(envelope: &[u8]) -> Parsed {
    Parsed {
        envelope: parse_dsse(envelope).map(|dsse| {
            let statement = parse_statement(&dsse.payload);
            let message = pae(&dsse.payload);
            Decoded {
                dsse,
                message,
                statement,
            }
        }),
    }
}

/// Per signature: `None` when the trust root does not know its key, else whether it verifies.
type SignatureOutcomes = Vec<Option<bool>>;

/// Each signature of a parsed envelope checked on its own, strictly.
fn verify_each(parsed: &Parsed, trust_root: &VerifiedTrustRoot) -> SignatureOutcomes {
    let Ok(Decoded { dsse, message, .. }) = &parsed.envelope else {
        return Vec::new();
    };
    dsse.signatures
        .iter()
        .map(|entry| {
            trust_root
                .key(&entry.keyid)
                .map(|key| key.verify_strict(message, &entry.sig))
        })
        .collect()
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
    let parsed = parse(envelope);
    let outcomes = verify_each(&parsed, trust_root);
    report(parsed, &outcomes, trust_root, bundle, signals)
}

/// At most this many signatures go into one Ed25519 batch; a failing batch is re-checked one
/// signature at a time, so smaller batches waste less work on a bad signature.
const BATCH_SIZE: usize = 64;

/// Verifies many attestation envelopes against one verified trust root: the reports equal
/// [`verify_attestation`]`(envelope, trust_root, None, None)` for each envelope, in order.
///
/// The signatures of all well-formed envelopes are checked together with Ed25519 batch
/// verification, in batches of up to 64; a batch that fails is checked again one signature at
/// a time with the strict single check, so every report names exactly the checks that fail.
/// See `docs/trust-model.md` §6 for what batch verification does and does not change.
pub fn verify_attestations(
    envelopes: &[&[u8]],
    trust_root: &VerifiedTrustRoot,
) -> Vec<AttestationReport> {
    let parsed: Vec<Parsed> = envelopes.iter().map(|bytes| parse(bytes)).collect();
    // Every signature whose key the trust root knows: (envelope, signature) → batch item.
    let mut slots: Vec<(usize, usize)> = Vec::new();
    let mut items: Vec<BatchItem<'_>> = Vec::new();
    let mut outcomes: Vec<SignatureOutcomes> = Vec::with_capacity(parsed.len());
    for (index, one) in parsed.iter().enumerate() {
        let mut own = Vec::new();
        if let Ok(Decoded { dsse, message, .. }) = &one.envelope {
            for (position, entry) in dsse.signatures.iter().enumerate() {
                match trust_root.key(&entry.keyid) {
                    None => own.push(None),
                    Some(key) => {
                        // Provisional; settled below, batch by batch.
                        own.push(Some(false));
                        slots.push((index, position));
                        items.push((key, message.as_slice(), &entry.sig));
                    }
                }
            }
        }
        outcomes.push(own);
    }
    for (chunk, chunk_slots) in items.chunks(BATCH_SIZE).zip(slots.chunks(BATCH_SIZE)) {
        let all_verify = verify_batch(chunk);
        for ((key, message, sig), &(index, position)) in chunk.iter().zip(chunk_slots) {
            let verified = all_verify || key.verify_strict(message, sig);
            if let Some(slot) = outcomes
                .get_mut(index)
                .and_then(|own| own.get_mut(position))
            {
                *slot = Some(verified);
            }
        }
    }
    parsed
        .into_iter()
        .zip(outcomes)
        .map(|(one, own)| report(one, &own, trust_root, None, None))
        .collect()
}

/// The report of a parsed envelope, given the outcome of each of its signatures.
fn report(
    parsed: Parsed,
    outcomes: &[Option<bool>],
    trust_root: &VerifiedTrustRoot,
    bundle: Option<&VerifiedBundle>,
    signals: Option<&Value>,
) -> AttestationReport {
    use AttestationCheckKind as Kind;
    let mut report = AttestationReport {
        checks: Vec::with_capacity(7),
        predicate: None,
    };
    let not_checked = |why: &str| {
        Err(TrustError::malformed(
            DOCUMENT,
            format!("not checked: {why}"),
        ))
    };
    let (dsse, statement) = match parsed.envelope {
        Ok(Decoded {
            dsse, statement, ..
        }) => (dsse, statement),
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
    report.record(
        Kind::Envelope,
        statement
            .as_ref()
            .map(|_| "well formed".to_owned())
            .map_err(Clone::clone),
    );
    report.record(Kind::Signature, check_all_signatures(&dsse, outcomes));
    report.record(Kind::KeyRole, check_key_role(&dsse, outcomes, trust_root));
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
    outcomes: &[Option<bool>],
) -> Result<String, TrustError> {
    for (entry, outcome) in dsse.signatures.iter().zip(outcomes) {
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
    outcomes: &[Option<bool>],
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
        |index, _key| outcomes.get(index).copied().flatten().unwrap_or(false),
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
    let execution_id = statement.predicate.execution_id.as_str();
    let named = statement
        .subject_name
        .strip_prefix(SUBJECT_PREFIX)
        .is_some_and(|rest| rest == execution_id);
    if !named {
        return Err(TrustError::SubjectMismatch {
            message: format!(
                "subject name {:?} is not {:?}",
                statement.subject_name,
                format!("{SUBJECT_PREFIX}{execution_id}")
            ),
        });
    }
    let fingerprint = statement.fingerprint;
    let hex = fingerprint.to_hex();
    if statement.subject_sha256 != hex {
        return Err(TrustError::DigestMismatch {
            subject: "fingerprint".to_owned(),
            expected: statement.subject_sha256.clone(),
            found: hex,
        });
    }
    Ok(fingerprint.to_string())
}

fn check_bundle(
    predicate: &ExecutionPredicate,
    bundle: &VerifiedBundle,
) -> Result<String, TrustError> {
    let policy = &predicate.policy;
    // In the order the report has always named them (alphabetical).
    let pairs: [(&str, String, String, bool); 4] = [
        (
            "bundle digest",
            policy.bundle_digest.to_string(),
            bundle.bundle_digest().to_string(),
            policy.bundle_digest == bundle.bundle_digest(),
        ),
        (
            "policy digest",
            policy.policy_digest.to_string(),
            bundle.policy_digest().to_string(),
            policy.policy_digest == bundle.policy_digest(),
        ),
        (
            "policy id",
            policy.id.to_string(),
            bundle.policy_id().to_string(),
            policy.id == *bundle.policy_id(),
        ),
        (
            "policy version",
            policy.version.to_string(),
            bundle.policy_version().to_string(),
            policy.version == *bundle.policy_version(),
        ),
    ];
    if let Some((subject, expected, found, _)) = pairs.into_iter().find(|pair| !pair.3) {
        return Err(TrustError::DigestMismatch {
            subject: subject.to_owned(),
            expected,
            found,
        });
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
