//! The checks of an attestation report, one function each: signatures, role threshold, trust-root reference, fingerprint, time, current trust, bundle, signals and decision.

use parmana_canon::{Digest, Timestamp};
use serde_json::Value;

use super::DOCUMENT;
use super::statement::{DsseEnvelope, ExecutionPredicate, SUBJECT_PREFIX, Statement};
use super::verify::{
    Anchor, EXECUTED_AT_TOLERANCE_SECONDS, Redecision, SigningKeyStanding, TrustStanding,
    VerifyOptions,
};
use crate::envelope::{SignatureCheck, check_signatures_with};
use crate::{
    Revocation, Role, TrustError, VerifiedBundle, VerifiedInclusion, VerifiedTrustHistory,
    VerifiedTrustRoot,
};

pub(super) fn check_all_signatures(
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

/// The threshold rule for the `attestation` role of `root`, the version the attestation was
/// checked under.
pub(super) fn check_key_role(
    dsse: &DsseEnvelope,
    outcomes: &[Option<bool>],
    root: &VerifiedTrustRoot,
) -> Result<String, TrustError> {
    let role = root.role_keys(Role::Attestation)?;
    check_signatures_with(
        &dsse.signatures,
        &SignatureCheck {
            document: DOCUMENT,
            role: Role::Attestation.as_str(),
            role_keys: &role.keys,
            known_keys: root.all_keys(),
            threshold: role.threshold,
            co_signers: None,
        },
        |index, _key| outcomes.get(index).copied().flatten().unwrap_or(false),
    )?;
    Ok(format!(
        "signed by the attestation role of trust root version {}",
        root.version()
    ))
}

pub(super) fn check_trust_root(
    predicate: &ExecutionPredicate,
    anchor: Anchor<'_>,
) -> Result<String, TrustError> {
    let named = predicate.trust_root;
    if let Some(root) = anchor.named(Some(named)) {
        return Ok(format!(
            "trust root version {} {}",
            root.version(),
            root.digest()
        ));
    }
    let expected = match anchor {
        Anchor::Root(root) => format!("{} {}", root.version(), root.digest()),
        Anchor::History(history, _) => match history.version(named.version) {
            Some(root) => format!("{} {}", root.version(), root.digest()),
            None => format!(
                "a version from 1 to {} of the trust-root chain",
                history.newest().version()
            ),
        },
    };
    Err(TrustError::DigestMismatch {
        subject: "trust_root".to_owned(),
        expected,
        found: format!("{} {}", named.version, named.digest),
    })
}

/// `executed_at` must be before the expiry of `root` (the version the attestation was made
/// under) and, when the verifier's clock is given, not beyond it plus the tolerance.
pub(super) fn check_executed_at(
    predicate: &ExecutionPredicate,
    root: &VerifiedTrustRoot,
    now: Option<Timestamp>,
) -> Result<String, TrustError> {
    let executed_at = predicate.executed_at;
    if executed_at >= root.expires() {
        return Err(TrustError::ExecutedAfterExpiry {
            document: "trust root",
            version: root.version(),
            expires: root.expires(),
            executed_at,
        });
    }
    if let Some(now) = now
        && executed_at.unix_seconds()
            > now
                .unix_seconds()
                .saturating_add(EXECUTED_AT_TOLERANCE_SECONDS)
    {
        return Err(TrustError::ExecutedInFuture {
            executed_at,
            now,
            tolerance_seconds: EXECUTED_AT_TOLERANCE_SECONDS,
        });
    }
    Ok(format!(
        "executed at {executed_at}, before trust root version {} expired at {}",
        root.version(),
        root.expires()
    ))
}

/// Where the attestation stands against the newest version of `history`, and — when current
/// trust is required — whether that fails the check.
pub(super) fn check_current_trust(
    dsse: &DsseEnvelope,
    made_under: &VerifiedTrustRoot,
    history: &VerifiedTrustHistory,
    options: VerifyOptions,
) -> (Result<String, TrustError>, TrustStanding) {
    let newest = history.newest();
    let signing_keys: Vec<SigningKeyStanding> = dsse
        .signatures
        .iter()
        .filter(|entry| made_under.has_role(&entry.keyid, Role::Attestation))
        .map(|entry| SigningKeyStanding {
            keyid: entry.keyid,
            trusted_by_newest: newest.has_role(&entry.keyid, Role::Attestation),
        })
        .collect();
    let expired = newest.check_not_expired(options.now).err();
    let standing = TrustStanding {
        version: made_under.version(),
        newest_version: newest.version(),
        superseded: made_under.version() < newest.version(),
        newest_expired: expired.is_some(),
        signing_keys,
    };
    if options.require_current_trust {
        // The most telling first: a key no longer trusted, then the version superseded, then
        // the newest version expired.
        let untrusted = standing
            .signing_keys
            .iter()
            .find(|key| !key.trusted_by_newest);
        let refusal = if let Some(key) = untrusted {
            Some(TrustError::KeyNoLongerTrusted {
                keyid: key.keyid.to_string(),
                newest: standing.newest_version,
            })
        } else if standing.superseded {
            Some(TrustError::Superseded {
                version: standing.version,
                newest: standing.newest_version,
            })
        } else {
            expired
        };
        if let Some(error) = refusal {
            return (Err(error), standing);
        }
    }
    let (newest_version, keys) = (standing.newest_version, &standing.signing_keys);
    let mut detail = if standing.superseded {
        format!(
            "made under trust root version {}, superseded by version {newest_version}",
            standing.version
        )
    } else {
        format!(
            "made under trust root version {}, the newest",
            standing.version
        )
    };
    let trusted = keys.iter().filter(|key| key.trusted_by_newest).count();
    detail.push_str(&format!(
        "; {trusted} of {} signing key(s) still trusted for attestations by version {newest_version}",
        keys.len()
    ));
    let untrusted: Vec<String> = keys
        .iter()
        .filter(|key| !key.trusted_by_newest)
        .map(|key| key.keyid.to_string())
        .collect();
    if !untrusted.is_empty() {
        detail.push_str(&format!("; no longer trusted: {}", untrusted.join(", ")));
    }
    if standing.newest_expired {
        detail.push_str(&format!(
            "; version {newest_version} expired at {}",
            newest.expires()
        ));
    }
    let current = !standing.superseded && untrusted.is_empty() && !standing.newest_expired;
    if !current && !options.require_current_trust {
        detail.push_str(" (current trust not required)");
    }
    (Ok(detail), standing)
}

/// The revocations of the keys that signed the envelope — of every version of the history, or of
/// the one trust root given —, each of which must admit the attestation given its proven log
/// entry (`inclusion`); `None` when no signing key is revoked (the check is then not reported).
pub(super) fn check_revocation(
    dsse: &DsseEnvelope,
    anchor: Anchor<'_>,
    inclusion: Option<&VerifiedInclusion>,
) -> Option<Result<String, TrustError>> {
    let mut revoked: Vec<&Revocation> = Vec::new();
    for entry in &dsse.signatures {
        match anchor {
            Anchor::Root(root) => revoked.extend(
                root.log()
                    .into_iter()
                    .flat_map(|log| log.revocations())
                    .filter(|r| *r.keyid() == entry.keyid),
            ),
            Anchor::History(history, _) => revoked.extend(history.revocations_of(entry.keyid)),
        }
    }
    if revoked.is_empty() {
        return None;
    }
    let mut admitted = Vec::with_capacity(revoked.len());
    for revocation in revoked {
        match revocation.admits(inclusion) {
            Ok(detail) => admitted.push(detail),
            Err(error) => return Some(Err(error)),
        }
    }
    admitted.dedup();
    Some(Ok(admitted.join("; ")))
}

pub(super) fn check_fingerprint(statement: &Statement) -> Result<String, TrustError> {
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

pub(super) fn check_bundle(
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

pub(super) fn check_signals(
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

/// The `decision` check: what the policy decides for the signals, worked out again, is what the
/// predicate says. A reason of `""` (as attestations of earlier versions carry for none) is none.
pub(super) fn check_decision(
    predicate: &ExecutionPredicate,
    redecided: &Redecision,
) -> Result<String, TrustError> {
    let attested_reason = predicate.reason.as_deref().filter(|r| !r.is_empty());
    let decided_reason = redecided.reason.as_deref().filter(|r| !r.is_empty());
    let said = |decision: &str, rule_id: &str, reason: Option<&str>| match reason {
        Some(reason) => format!(
            "{} by rule {} (reason {})",
            quoted(decision),
            quoted(rule_id),
            quoted(reason)
        ),
        None => format!(
            "{} by rule {} (no reason)",
            quoted(decision),
            quoted(rule_id)
        ),
    };
    let decided = said(&redecided.decision, &redecided.rule_id, decided_reason);
    if predicate.decision != redecided.decision
        || predicate.rule_id != redecided.rule_id
        || attested_reason != decided_reason
    {
        return Err(TrustError::DecisionMismatch {
            attested: said(&predicate.decision, &predicate.rule_id, attested_reason),
            decided,
            signals: redecided.on.describe(),
        });
    }
    Ok(format!(
        "for {}, the policy decides {decided}",
        redecided.on.describe()
    ))
}

/// How many characters of a string the attestation carries a report shows.
const QUOTED_CHARS: usize = 256;

/// `text` as a report shows it: quoted as Rust writes a string's debug form (its control and
/// direction characters escaped, never written raw to a terminal), its first [`QUOTED_CHARS`]
/// characters, `…` where there were more.
fn quoted(text: &str) -> String {
    let kept: String = text.chars().take(QUOTED_CHARS).collect();
    let cut = text.chars().nth(QUOTED_CHARS).is_some();
    format!("{kept:?}{}", if cut { "…" } else { "" })
}

/// The `release_manifest` check ([`AttestationReport::with_release_manifest_check`]).
///
/// [`AttestationReport::with_release_manifest_check`]: crate::AttestationReport::with_release_manifest_check
pub(super) fn check_release_manifest(
    predicate: &ExecutionPredicate,
    released: &crate::SignedReleaseManifest,
) -> Result<String, TrustError> {
    let named = predicate.release_manifest;
    if named.version != released.version() || named.digest != released.digest() {
        return Err(TrustError::DigestMismatch {
            subject: "release_manifest".to_owned(),
            expected: format!("{} {}", released.version(), released.digest()),
            found: format!("{} {}", named.version, named.digest),
        });
    }
    let policy = parmana_canon::PolicyRef::new(
        predicate.policy.id.clone(),
        predicate.policy.version.clone(),
    );
    match released.policies().get(&policy) {
        None => {
            return Err(TrustError::NotInReleaseManifest {
                policy: policy.to_string(),
                detail: format!(" version {}", released.version()),
            });
        }
        Some(listed) if *listed != predicate.policy.bundle_digest => {
            return Err(TrustError::NotInReleaseManifest {
                policy: policy.to_string(),
                detail: format!(
                    " version {} with bundle digest {} (listed: {listed})",
                    released.version(),
                    predicate.policy.bundle_digest
                ),
            });
        }
        Some(_) => {}
    }
    if predicate.evaluator.semantics != released.evaluator_semantics() {
        return Err(TrustError::RuntimeIncompatible {
            message: format!(
                "evaluator semantics {:?}, released for {:?}",
                parmana_canon::excerpt(&predicate.evaluator.semantics),
                released.evaluator_semantics()
            ),
        });
    }
    if predicate.executed_at >= released.expires() {
        return Err(TrustError::ExecutedAfterExpiry {
            document: "release manifest",
            version: released.version(),
            expires: released.expires(),
            executed_at: predicate.executed_at,
        });
    }
    Ok(format!(
        "release manifest version {} {} lists {policy} with bundle digest {}, released for {}; \
         executed at {}, before it expired at {}",
        released.version(),
        released.digest(),
        predicate.policy.bundle_digest,
        released.evaluator_semantics(),
        predicate.executed_at,
        released.expires()
    ))
}
