//! Verifying attestations: every check reported separately, for one envelope or many (Ed25519 batch verification, same reports), against one trust root or a verified trust history.

use parmana_canon::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::DOCUMENT;
use super::checks::{
    check_all_signatures, check_bundle, check_current_trust, check_decision, check_executed_at,
    check_fingerprint, check_key_role, check_revocation, check_signals, check_trust_root,
};
use super::statement::{DsseEnvelope, Statement, pae, parse_dsse, parse_statement};
use crate::envelope::SignatureCheck;
use crate::keys::{BatchItem, verify_batch};
use crate::{
    DocumentRef, ExecutionPredicate, KeyId, Role, TrustError, VerifiedBundle, VerifiedInclusion,
    VerifiedTrustHistory, VerifiedTrustRoot,
};

/// How far in the future of the verifier's clock an attestation's `executed_at` may lie
/// (5 minutes: clocks of the executing and the verifying machine differ a little). A later
/// `executed_at` is refused (`trust.executed_in_future`).
pub const EXECUTED_AT_TOLERANCE_SECONDS: i64 = 300;

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
    /// The predicate names the given trust root's version and digest (with a history: one of
    /// its versions).
    TrustRoot,
    /// The subject names the execution and carries the recomputed fingerprint.
    Fingerprint,
    /// `executed_at` is before the expiry of the trust-root version the attestation was made
    /// under, and (with a history) not beyond the verifier's clock plus
    /// [`EXECUTED_AT_TOLERANCE_SECONDS`].
    ExecutedAt,
    /// With a history only: whether the version is superseded and whether the signing keys are
    /// still trusted by the newest version; fails only when current trust is required.
    CurrentTrust,
    /// Only when a key that signed the attestation is revoked (in any version of the history,
    /// or in the trust root given): the attestation's log entry, proven included, comes before
    /// the revocation (`docs/trust-model.md` §6.2).
    Revocation,
    /// The predicate's policy matches the given verified bundle (only when one is given).
    BundleDigest,
    /// Only when a signed release manifest is given
    /// ([`AttestationReport::with_release_manifest_check`]): it is the one the predicate names
    /// (version and digest), it lists the predicate's policy with its bundle digest, it released
    /// for the predicate's evaluator semantics, and the execution came before it expired.
    ReleaseManifest,
    /// The signals digest matches the given signals and any embedded signals.
    SignalsDigest,
    /// Only when a policy and the signals are both known (a bundle given, and signals given or
    /// embedded): the policy, given those signals, decides what the predicate says it decided —
    /// decision, rule and reason (`docs/trust-model.md` §6). The trust layer compares; a layer
    /// that evaluates policies works the decision out ([`AttestationReport::with_decision_check`]).
    Decision,
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
            Self::ExecutedAt => "executed_at",
            Self::CurrentTrust => "current_trust",
            Self::Revocation => "revocation",
            Self::BundleDigest => "bundle_digest",
            Self::ReleaseManifest => "release_manifest",
            Self::SignalsDigest => "signals_digest",
            Self::Decision => "decision",
        }
    }
}

/// The most characters of a check's [`detail`](AttestationCheck::detail) (then `…`).
pub const MAX_DETAIL_CHARS: usize = 1_024;

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
    /// What was found (at most [`MAX_DETAIL_CHARS`] characters).
    pub detail: String,
}

/// How an attestation is verified against a [`VerifiedTrustHistory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The verifier's clock: an `executed_at` later than this plus
    /// [`EXECUTED_AT_TOLERANCE_SECONDS`] is refused. It is not used to judge the expiry of the
    /// version the attestation was made under (that is judged at `executed_at`).
    pub now: Timestamp,
    /// Fail the `current_trust` check when the version the attestation was made under has been
    /// superseded, when a key that signed it no longer holds the `attestation` role in the
    /// newest version, or when the newest version has expired at `now`.
    pub require_current_trust: bool,
}

/// Whether the newest trust-root version still trusts a key that signed an attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SigningKeyStanding {
    /// The key id (a key of the `attestation` role of the version the attestation names).
    pub keyid: KeyId,
    /// Whether the newest version lists it in its `attestation` role.
    pub trusted_by_newest: bool,
}

/// Where an attestation stands in the trust history it was verified against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustStanding {
    /// The trust-root version the attestation was made under.
    pub version: u64,
    /// The newest version of the history.
    pub newest_version: u64,
    /// Whether a newer version superseded the one it was made under.
    pub superseded: bool,
    /// Whether the newest version had expired at the verifier's clock.
    pub newest_expired: bool,
    /// Each signature's key of the `attestation` role, and whether the newest version trusts it.
    pub signing_keys: Vec<SigningKeyStanding>,
}

/// Every check of an attestation, each reported separately; valid only if all passed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttestationReport {
    /// The checks, in order.
    pub checks: Vec<AttestationCheck>,
    #[serde(skip)]
    predicate: Option<ExecutionPredicate>,
    #[serde(skip)]
    standing: Option<TrustStanding>,
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

    /// Where the attestation stands in the history it was verified against: present when it
    /// was verified against a [`VerifiedTrustHistory`] that holds the version it names.
    pub fn trust_standing(&self) -> Option<&TrustStanding> {
        self.standing.as_ref()
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &AttestationCheck> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// The report as verifying with a bundle would have made it, for an attestation whose
    /// predicate could not be read (one with a predicate is returned as it is: its bundle check
    /// needs the bundle): the `bundle_digest` check added, not run, for the reason the envelope
    /// check gave — as every check after an unreadable envelope is. A verifier that learns which
    /// bundle to check only from the predicate (`POST /v1/verify` with `check_bundle`) reports
    /// what one given the bundle up front reports. With `signals_given`, the `decision` check is
    /// added too, not run, as it is for a bundle and signals given up front.
    pub fn with_bundle_check_not_run(mut self, signals_given: bool) -> Self {
        use AttestationCheckKind as Kind;
        if self.predicate.is_some() || self.checks.iter().any(|c| c.check == Kind::BundleDigest) {
            return self;
        }
        let why = self.unreadable_reason();
        let at = self
            .checks
            .iter()
            .position(|c| c.check > Kind::BundleDigest)
            .unwrap_or(self.checks.len());
        let mut row = AttestationReport {
            checks: Vec::new(),
            predicate: None,
            standing: None,
        };
        row.record(Kind::BundleDigest, not_checked(&why));
        self.checks.splice(at..at, row.checks);
        if signals_given {
            // Never run: there is no predicate to decide for.
            self = self.with_decision_check(|_| Err(TrustError::malformed(DOCUMENT, why)));
        }
        self
    }

    /// The report with the `decision` check added: whether `redecided` — what the policy
    /// decides for the attested signals, worked out again by a layer that evaluates policies, or
    /// why it could not be — is what the predicate says (decision, rule id and reason; a reason
    /// of `""`, as earlier versions wrote for none, is none). For an attestation whose predicate
    /// could not be read, the check is reported not run, for the reason the envelope check
    /// gave. Added once: a report that has the check is returned as it is.
    pub fn with_decision_check(
        mut self,
        redecide: impl FnOnce(&ExecutionPredicate) -> Result<Redecision, TrustError>,
    ) -> Self {
        if self
            .checks
            .iter()
            .any(|c| c.check == AttestationCheckKind::Decision)
        {
            return self;
        }
        let outcome = match &self.predicate {
            Some(predicate) => {
                redecide(predicate).and_then(|redecided| check_decision(predicate, &redecided))
            }
            None => not_checked(&self.unreadable_reason()),
        };
        self.record(AttestationCheckKind::Decision, outcome);
        self
    }

    /// The report with the `release_manifest` check added, in its place among the checks: that
    /// `released` — a release manifest verified under the trust-root version the attestation
    /// names, or a later one — is the one the predicate names
    /// (version and digest), lists its policy with its bundle digest, released for its evaluator
    /// semantics, and had not expired at its `executed_at`. With the bundle checked too
    /// (`bundle_digest`), the bundle decided under was released: its signature by the `policy`
    /// role alone does not say so. For an attestation whose predicate could not be read, the
    /// check is reported not run. Added once: a report that has the check is returned as it is.
    pub fn with_release_manifest_check(mut self, released: &crate::SignedReleaseManifest) -> Self {
        use AttestationCheckKind as Kind;
        if self.checks.iter().any(|c| c.check == Kind::ReleaseManifest) {
            return self;
        }
        let outcome = match &self.predicate {
            Some(predicate) => super::checks::check_release_manifest(predicate, released),
            None => not_checked(&self.unreadable_reason()),
        };
        let at = self
            .checks
            .iter()
            .position(|c| c.check > Kind::ReleaseManifest)
            .unwrap_or(self.checks.len());
        let mut row = AttestationReport {
            checks: Vec::new(),
            predicate: None,
            standing: None,
        };
        row.record(Kind::ReleaseManifest, outcome);
        self.checks.splice(at..at, row.checks);
        self
    }

    /// Why the predicate could not be read: the envelope check's detail.
    fn unreadable_reason(&self) -> String {
        self.checks
            .iter()
            .find(|c| c.check == AttestationCheckKind::Envelope && !c.passed)
            .map_or_else(
                || "the attestation could not be read".to_owned(),
                |c| c.detail.clone(),
            )
    }

    fn record(&mut self, check: AttestationCheckKind, outcome: Result<String, TrustError>) {
        // Each row's detail bounded as it is formatted ([`MAX_DETAIL_CHARS`]): an attestation's
        // own strings (a `payloadType` of a megabyte, say) are quoted by the refusals, and a
        // row's words are carried into the rows after it.
        let entry = match outcome {
            Ok(detail) => AttestationCheck {
                check,
                passed: true,
                code: None,
                detail: parmana_canon::bounded_display(&detail, MAX_DETAIL_CHARS),
            },
            Err(error) => AttestationCheck {
                check,
                passed: false,
                code: Some(error.code()),
                detail: parmana_canon::bounded_display(&error, MAX_DETAIL_CHARS),
            },
        };
        self.checks.push(entry);
    }
}

/// What a policy decides for an attestation's signals, worked out again for its `decision`
/// check ([`AttestationReport::with_decision_check`]) by a layer that evaluates policies (the
/// runtime: the trust layer knows no policy language).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redecision {
    /// The decision.
    pub decision: String,
    /// The deciding rule id, or `default`.
    pub rule_id: String,
    /// The deciding outcome's reason, when it gives one.
    pub reason: Option<String>,
    /// Which signals were decided: the report says so, since only the verifier's own copy
    /// says anything of the facts.
    pub on: DecidedOn,
}

/// Which signals a [`Redecision`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedOn {
    /// Those the verifier was given (its own copy of what was decided on).
    Given,
    /// Those the attestation embeds: chosen by whoever signed it, like the decision — the check
    /// then shows the decision follows from them, not that they are the facts.
    Embedded,
}

impl DecidedOn {
    /// How a report names them.
    pub(crate) const fn describe(self) -> &'static str {
        match self {
            Self::Given => "the signals given",
            Self::Embedded => "the signals the attestation embeds",
        }
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

impl Parsed {
    /// The trust-root version and digest the predicate names, when it could be read.
    fn named_trust_root(&self) -> Option<DocumentRef> {
        let decoded = self.envelope.as_ref().ok()?;
        let statement = decoded.statement.as_ref().ok()?;
        Some(statement.predicate.trust_root)
    }
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

/// What attestations are verified against.
#[derive(Clone, Copy)]
pub(super) enum Anchor<'a> {
    /// One trust root: the attestation must name exactly it.
    Root(&'a VerifiedTrustRoot),
    /// A verified history: the attestation must name one of its versions.
    History(&'a VerifiedTrustHistory, VerifyOptions),
}

impl<'a> Anchor<'a> {
    /// The version the attestation names, when the anchor holds it exactly.
    pub(super) fn named(self, named: Option<DocumentRef>) -> Option<&'a VerifiedTrustRoot> {
        let named = named?;
        match self {
            Self::Root(root) => {
                (root.version() == named.version && root.digest() == named.digest).then_some(root)
            }
            Self::History(history, _) => history.find(named.version, &named.digest),
        }
    }

    /// The version whose keys check an envelope: the one it names when the anchor holds it,
    /// else the given root or the newest version (the `trust_root` check then fails).
    fn select(self, parsed: &Parsed) -> &'a VerifiedTrustRoot {
        self.named(parsed.named_trust_root()).unwrap_or(match self {
            Self::Root(root) => root,
            Self::History(history, _) => history.newest(),
        })
    }
}

impl VerifiedTrustHistory {
    /// The version an attestation envelope names (its predicate's `trust_root` version and
    /// digest), when this history holds it; otherwise the newest version.
    pub fn attestation_trust_root(&self, envelope: &[u8]) -> &VerifiedTrustRoot {
        parse(envelope)
            .named_trust_root()
            .and_then(|named| self.find(named.version, &named.digest))
            .unwrap_or_else(|| self.newest())
    }
}

/// Per signature: `None` when the trust root does not know its key, else whether it verifies;
/// or why no signature was checked at all.
type SignatureOutcomes = Result<Vec<Option<bool>>, TrustError>;

/// The bound on an envelope's signatures under `root`, checked before any of them is verified:
/// no more than the keys of the `attestation` role.
fn check_count(dsse: &DsseEnvelope, root: &VerifiedTrustRoot) -> Result<(), TrustError> {
    let role = root.role_keys(Role::Attestation)?;
    SignatureCheck {
        document: DOCUMENT,
        role: Role::Attestation.as_str(),
        role_keys: &role.keys,
        known_keys: root.all_keys(),
        threshold: role.threshold,
        co_signers: None,
    }
    .check_count(dsse.signatures.len())
}

/// Each signature of a parsed envelope checked on its own, strictly.
fn verify_each(parsed: &Parsed, root: &VerifiedTrustRoot) -> SignatureOutcomes {
    let Ok(Decoded { dsse, message, .. }) = &parsed.envelope else {
        return Ok(Vec::new());
    };
    check_count(dsse, root)?;
    Ok(dsse
        .signatures
        .iter()
        .map(|entry| {
            root.key(&entry.keyid)
                .map(|key| key.verify_strict(message, &entry.sig))
        })
        .collect())
}

/// Verifies an attestation envelope against one verified trust root and, when given, the
/// verified policy bundle and the signals it claims to bind.
///
/// The attestation must name exactly this trust root, and have been executed before it
/// expired. Every check is reported separately (see [`AttestationCheckKind`]); checks that
/// could not run because the envelope was malformed are reported as failed. Never panics on
/// hostile input. To verify an attestation made under an older version of the chain, use
/// [`verify_attestation_in_history`].
pub fn verify_attestation(
    envelope: &[u8],
    trust_root: &VerifiedTrustRoot,
    bundle: Option<&VerifiedBundle>,
    signals: Option<&Value>,
) -> AttestationReport {
    verify_one(envelope, Anchor::Root(trust_root), bundle, signals, None)
}

/// Verifies an attestation envelope against a verified trust history: the version its
/// predicate names (version and digest) must be one of the history's; its signatures must meet
/// the `attestation` threshold of that version; that version's expiry is judged at the
/// attestation's `executed_at`, which must not lie beyond `options.now` plus
/// [`EXECUTED_AT_TOLERANCE_SECONDS`]. The report says whether that version is superseded and
/// whether the newest version still trusts the signing keys ([`AttestationReport::trust_standing`]);
/// with `options.require_current_trust` either fails the `current_trust` check.
pub fn verify_attestation_in_history(
    envelope: &[u8],
    history: &VerifiedTrustHistory,
    options: VerifyOptions,
    bundle: Option<&VerifiedBundle>,
    signals: Option<&Value>,
) -> AttestationReport {
    verify_attestation_with_log(envelope, history, options, bundle, signals, None)
}

/// [`verify_attestation_in_history`] for an attestation whose log entry is proven included in
/// the transparency log: `inclusion` must be the verified inclusion of **this envelope's** entry
/// (`parmana_runtime::verify_attestation_proof` reads the entry from the proof, checks that it
/// records this envelope's digest at the proof's index, and verifies the proof). It matters only
/// when a key that signed the attestation is revoked: the `revocation` check then passes when the
/// entry comes before every revocation of the key (`docs/trust-model.md` §6.2). With `None` the
/// report is that of [`verify_attestation_in_history`].
pub fn verify_attestation_with_log(
    envelope: &[u8],
    history: &VerifiedTrustHistory,
    options: VerifyOptions,
    bundle: Option<&VerifiedBundle>,
    signals: Option<&Value>,
    inclusion: Option<&VerifiedInclusion>,
) -> AttestationReport {
    verify_one(
        envelope,
        Anchor::History(history, options),
        bundle,
        signals,
        inclusion,
    )
}

fn verify_one(
    envelope: &[u8],
    anchor: Anchor<'_>,
    bundle: Option<&VerifiedBundle>,
    signals: Option<&Value>,
    inclusion: Option<&VerifiedInclusion>,
) -> AttestationReport {
    let parsed = parse(envelope);
    let root = anchor.select(&parsed);
    let outcomes = verify_each(&parsed, root);
    let context = ReportContext {
        anchor,
        bundle,
        signals,
        inclusion,
    };
    report(parsed, outcomes, root, &context)
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
    verify_many(envelopes, Anchor::Root(trust_root))
}

/// Verifies many attestation envelopes against a verified trust history, with Ed25519 batch
/// verification: the reports equal [`verify_attestation_in_history`]`(envelope, history,
/// options, None, None)` for each envelope, in order.
pub fn verify_attestations_in_history(
    envelopes: &[&[u8]],
    history: &VerifiedTrustHistory,
    options: VerifyOptions,
) -> Vec<AttestationReport> {
    verify_many(envelopes, Anchor::History(history, options))
}

fn verify_many(envelopes: &[&[u8]], anchor: Anchor<'_>) -> Vec<AttestationReport> {
    let parsed: Vec<Parsed> = envelopes.iter().map(|bytes| parse(bytes)).collect();
    let roots: Vec<&VerifiedTrustRoot> = parsed.iter().map(|one| anchor.select(one)).collect();
    // Every signature whose key the selected version knows: (envelope, signature) → batch item.
    let mut slots: Vec<(usize, usize)> = Vec::new();
    let mut items: Vec<BatchItem<'_>> = Vec::new();
    let mut outcomes: Vec<SignatureOutcomes> = Vec::with_capacity(parsed.len());
    for (index, (one, root)) in parsed.iter().zip(&roots).enumerate() {
        let mut own = Vec::new();
        if let Ok(Decoded { dsse, message, .. }) = &one.envelope {
            if let Err(error) = check_count(dsse, root) {
                outcomes.push(Err(error));
                continue;
            }
            for (position, entry) in dsse.signatures.iter().enumerate() {
                match root.key(&entry.keyid) {
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
        outcomes.push(Ok(own));
    }
    for (chunk, chunk_slots) in items.chunks(BATCH_SIZE).zip(slots.chunks(BATCH_SIZE)) {
        let all_verify = verify_batch(chunk);
        for ((key, message, sig), &(index, position)) in chunk.iter().zip(chunk_slots) {
            let verified = all_verify || key.verify_strict(message, sig);
            if let Some(slot) = outcomes
                .get_mut(index)
                .and_then(|own| own.as_mut().ok())
                .and_then(|own| own.get_mut(position))
            {
                *slot = Some(verified);
            }
        }
    }
    parsed
        .into_iter()
        .zip(outcomes)
        .zip(roots)
        .map(|((one, own), root)| {
            let context = ReportContext {
                anchor,
                bundle: None,
                signals: None,
                inclusion: None,
            };
            report(one, own, root, &context)
        })
        .collect()
}

fn not_checked(why: &str) -> Result<String, TrustError> {
    Err(TrustError::malformed(
        DOCUMENT,
        format!("not checked: {why}"),
    ))
}

/// What an envelope is verified against besides its own bytes.
struct ReportContext<'a> {
    anchor: Anchor<'a>,
    bundle: Option<&'a VerifiedBundle>,
    signals: Option<&'a Value>,
    /// The proven inclusion of the envelope's log entry, if any.
    inclusion: Option<&'a VerifiedInclusion>,
}

/// The report of a parsed envelope, given the outcome of each of its signatures under `root`
/// (the version selected for it).
fn report(
    parsed: Parsed,
    outcomes: SignatureOutcomes,
    root: &VerifiedTrustRoot,
    context: &ReportContext<'_>,
) -> AttestationReport {
    use AttestationCheckKind as Kind;
    let ReportContext {
        anchor,
        bundle,
        signals,
        inclusion,
    } = *context;
    let mut report = AttestationReport {
        checks: Vec::with_capacity(9),
        predicate: None,
        standing: None,
    };
    let history = matches!(anchor, Anchor::History(..));
    // The checks after `from` that cannot run, each reported as failed.
    let skip_rest = |report: &mut AttestationReport, from: Kind, why: &str| {
        let mut later = vec![
            Kind::Signature,
            Kind::KeyRole,
            Kind::TrustRoot,
            Kind::Fingerprint,
            Kind::ExecutedAt,
        ];
        if history {
            later.push(Kind::CurrentTrust);
        }
        if bundle.is_some() {
            later.push(Kind::BundleDigest);
        }
        if signals.is_some() {
            later.push(Kind::SignalsDigest);
        }
        for kind in later.into_iter().filter(|kind| *kind >= from) {
            report.record(kind, not_checked(why));
        }
    };
    let named_trust_root = parsed.named_trust_root();
    let (dsse, statement) = match parsed.envelope {
        Ok(Decoded {
            dsse, statement, ..
        }) => (dsse, statement),
        Err(error) => {
            let why = error.to_string();
            report.record(Kind::Envelope, Err(error));
            skip_rest(&mut report, Kind::Signature, &why);
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
    match &outcomes {
        Ok(outcomes) => {
            report.record(Kind::Signature, check_all_signatures(&dsse, outcomes));
            report.record(Kind::KeyRole, check_key_role(&dsse, outcomes, root));
        }
        Err(error) => {
            report.record(Kind::Signature, Err(error.clone()));
            report.record(Kind::KeyRole, not_checked(&error.to_string()));
        }
    }
    let statement = match statement {
        Ok(statement) => statement,
        Err(error) => {
            skip_rest(&mut report, Kind::TrustRoot, &error.to_string());
            return report;
        }
    };
    let predicate = &statement.predicate;
    report.record(Kind::TrustRoot, check_trust_root(predicate, anchor));
    report.record(Kind::Fingerprint, check_fingerprint(&statement));
    let now = match anchor {
        Anchor::Root(_) => None,
        Anchor::History(_, options) => Some(options.now),
    };
    report.record(Kind::ExecutedAt, check_executed_at(predicate, root, now));
    if let Anchor::History(history, options) = anchor {
        match anchor.named(named_trust_root) {
            Some(made_under) => {
                let (outcome, standing) = check_current_trust(&dsse, made_under, history, options);
                report.record(Kind::CurrentTrust, outcome);
                report.standing = Some(standing);
            }
            None => report.record(
                Kind::CurrentTrust,
                not_checked("the attestation names no version of the trust-root chain"),
            ),
        }
    }
    if let Some(outcome) = check_revocation(&dsse, anchor, inclusion) {
        report.record(Kind::Revocation, outcome);
    }
    if let Some(bundle) = bundle {
        report.record(Kind::BundleDigest, check_bundle(predicate, bundle));
    }
    if signals.is_some() || predicate.signals.is_some() {
        report.record(Kind::SignalsDigest, check_signals(predicate, signals));
    }
    report.predicate = Some(statement.predicate);
    report
}
