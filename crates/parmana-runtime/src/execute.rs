//! The execution pipeline: resolve, verify, validate, evaluate, claim, sign, complete — and recovery after a crash.

use parmana_canon::{
    Digest, ExecutionId, IdError, IdKind, PolicyRef, RawCanonical, Timestamp, parse_strict,
    to_canonical_vec,
};
use parmana_replay::{
    AcceptedVersions, ClaimOutcome, ClaimRecord, ExecutionState, PENDING_PAGE, ReplayError,
    ReplayStore,
};
use parmana_trust::{
    AttestedPolicy, DocumentRef, EvaluatorRef, ExecutionPredicate, KeyId, Role, RuntimeRef, Signer,
    TrustError, prepare_attestation,
};
use serde_json::Value;

use crate::{
    Clock, ExecutionError, ExecutionRequest, RUNTIME_NAME, RUNTIME_VERSION, RuntimeEnvironment,
};

/// A signed execution attestation: the DSSE envelope's canonical bytes and what it binds.
#[derive(Debug, Clone, PartialEq)]
pub struct Attestation {
    envelope: RawCanonical,
    predicate: ExecutionPredicate,
}

impl Attestation {
    /// The DSSE envelope, as RFC 8785 JSON bytes: what is stored, printed and verified.
    pub fn envelope(&self) -> &[u8] {
        self.envelope.as_bytes()
    }

    /// The envelope as a [`RawCanonical`]: embedded in a larger canonical document (an HTTP
    /// answer), its bytes are copied as they are, not parsed and encoded again.
    pub fn envelope_canonical(&self) -> &RawCanonical {
        &self.envelope
    }

    /// The envelope as a string (it is always UTF-8 JSON).
    pub fn envelope_str(&self) -> &str {
        std::str::from_utf8(self.envelope.as_bytes()).unwrap_or_default()
    }

    /// Everything the attestation binds.
    pub fn predicate(&self) -> &ExecutionPredicate {
        &self.predicate
    }

    /// Consumes the attestation, returning the envelope bytes.
    pub fn into_envelope(self) -> Vec<u8> {
        self.envelope.into_bytes()
    }
}

/// Executes `request` under the environment's signed policy, exactly once, signed by `signer`.
///
/// The call shape of the first releases, kept as a thin wrapper: a long-lived caller builds a
/// [`Runtime`](crate::Runtime) once and calls [`Runtime::execute`](crate::Runtime::execute).
/// A signer that is not a key in memory is checked at every call, as a runtime checks it once
/// when it is built ([`check_signer_at_call`]).
pub fn execute_from_signals(
    request: &ExecutionRequest,
    signer: &dyn Signer,
    replay_store: &dyn ReplayStore,
    environment: &RuntimeEnvironment,
    clock: &dyn Clock,
) -> Result<Attestation, ExecutionError> {
    check_signer_at_call(signer)?;
    execute(request, &[signer], replay_store, environment, clock, None)
}

/// What `RuntimeBuilder::build` checks of each signer (`parmana_trust::check_signer`: its key
/// id, a signature that verifies, the same signature twice), for the free functions that take a
/// signer at each call. A key in memory ([`Signer::local_key`]) passes by construction and is
/// not asked to sign; any other signer signs twice more per call (build a
/// [`Runtime`](crate::Runtime) to check it once).
fn check_signer_at_call(signer: &dyn Signer) -> Result<(), ExecutionError> {
    if signer
        .local_key()
        .is_some_and(|local| local.public_key() == signer.public_key())
    {
        return Ok(());
    }
    Ok(parmana_trust::check_signer(signer)?)
}

/// The pipeline, in order (`docs/design.md` §4): the signers must hold the `attestation` role and meet its
/// threshold; the policy bundle is resolved path-safely, verified against its signature and
/// the release manifest (cached per environment); the signals are validated and the policy
/// evaluated (pure — nothing is consumed when any of this fails); the trust root and release
/// manifest must not have expired at the clock's reading; then the id is claimed atomically
/// together with every attestation input — in the same atomic step the store refuses versions
/// older than its high-water marks (raising them when ours are newer), marks lower than its
/// ledger proves, and a clock reading behind the newest it holds — and the attestation is
/// signed, recorded as completed, and returned.
///
/// A store that [completes in one write](ReplayStore::completes_in_one_write) (PostgreSQL) is
/// given the signed attestation with the claim instead: signed first, then claimed and completed
/// in one write ([`ReplayStore::claim_completed`]), with the same checks and refusals. A replay
/// then costs a signature, and the envelope is dropped unreturned; the store sends it to its
/// database only once the claim has won (`docs/trust-model.md` §8.1).
///
/// A second use of an id is refused with `runtime.replay_detected` and the first outcome stands.
/// If signing or completion fails after the claim, the id stays claimed and
/// [`recover`] completes it with byte-identical output.
pub(crate) fn execute(
    request: &ExecutionRequest,
    signers: &[&dyn Signer],
    replay_store: &dyn ReplayStore,
    environment: &RuntimeEnvironment,
    clock: &dyn Clock,
    unfinished: Option<&Unfinished>,
) -> Result<Attestation, ExecutionError> {
    let execution_id = &request.execution_id;
    check_new_execution_id(execution_id)?;
    check_signers(signers, environment)?;
    let loaded = environment.policy(&request.policy)?;
    let signals = request.signals.validate(loaded.policy())?;
    let decision = signals.evaluate()?;
    // Canonical bytes straight from the validated slots; the JSON tree only when embedded.
    let signals_canonical = signals.canonical()?;
    let signals_digest = Digest::of(signals_canonical.as_bytes());

    let now = clock.now();
    check_expiry(environment, now)?;

    let predicate = build_predicate(
        environment,
        &loaded,
        execution_id,
        decision,
        signals_digest,
        request.include_signals.then(|| signals.to_json_value()),
        now,
    );
    let prepared = prepare_attestation(&predicate, environment.trust_root())?;
    let request_digest = request_digest(execution_id, &request.policy, &signals_digest)?;
    let one_write = replay_store.completes_in_one_write();
    let inputs = tagged_claim_inputs(
        signers,
        prepared.raw_predicate(),
        &signals_canonical,
        if one_write {
            ONE_WRITE_CLAIM_INPUTS_FORMAT
        } else {
            CLAIM_INPUTS_FORMAT
        },
    )?;
    let claim = ClaimRecord::new(request_digest, inputs, now);
    let under = versions_of(environment);
    if one_write {
        // Sign first, then write the execution once, already completed: the id is consumed
        // exactly when that write commits, under the same checks as a claim. On a replay the
        // envelope just signed is dropped, never returned.
        let envelope = prepared.sign_all_canonical(signers, environment.trust_root())?;
        return match replay_store.claim_completed(
            execution_id,
            &claim,
            under,
            envelope.as_bytes(),
        )? {
            ClaimOutcome::Claimed => Ok(Attestation {
                envelope,
                predicate,
            }),
            ClaimOutcome::AlreadyClaimed => Err(ExecutionError::ReplayDetected {
                execution_id: execution_id.as_str().to_owned(),
            }),
        };
    }
    // One atomic step: the rollback, marks-reset and clock checks cannot interleave with the
    // claim (a raise by another runtime either lands before it, and refuses it, or after it).
    match replay_store.claim(execution_id, &claim, under)? {
        ClaimOutcome::Claimed => {}
        ClaimOutcome::AlreadyClaimed => {
            return Err(ExecutionError::ReplayDetected {
                execution_id: execution_id.as_str().to_owned(),
            });
        }
    }
    // The id is claimed: whatever stops the signing now is `trust.signing_failed`, which names
    // the id as one that may be claimed (`may_follow_a_claim`); it stays claimed for `recover`.
    let envelope = prepared
        .sign_all_canonical(signers, environment.trust_root())
        .map_err(|error| signing_failed_after_claim(execution_id, error))?;
    if let Err(error) = replay_store.complete(execution_id, envelope.as_bytes()) {
        // Completed meanwhile with these very bytes (another process's recovery of this claim,
        // which decides again and signs the same attestation): the execution is recorded as
        // this one signed it, so it succeeded. Other bytes, or a read that fails, are the
        // refusal as it came.
        if matches!(error, parmana_replay::ReplayError::AlreadyCompleted { .. })
            && matches!(
                replay_store.get(execution_id),
                Ok(ExecutionState::Completed(done)) if done.attestation() == envelope.as_bytes()
            )
        {
            return Ok(Attestation {
                envelope,
                predicate,
            });
        }
        // The id is claimed and its attestation signed, but not recorded: kept, so that the
        // completion can be written again once the store takes it, rather than the id staying
        // claimed until a `recover` (and, while it waits, the runtime does not itself record a
        // reload's versions in the store's marks: `accept_settled_environment`).
        if let Some(unfinished) = unfinished {
            unfinished.keep(
                execution_id.clone(),
                &claim,
                Attestation {
                    envelope,
                    predicate,
                },
            );
        }
        return Err(error.into());
    }
    Ok(Attestation {
        envelope,
        predicate,
    })
}

/// A refusal of the signing that comes after `execution_id` was claimed, as `trust.signing_failed`
/// (what it was kept in the message), naming the id as claimed.
fn signing_failed_after_claim(execution_id: &ExecutionId, error: TrustError) -> ExecutionError {
    let source = match error {
        TrustError::SigningFailed { .. } => error,
        other => TrustError::SigningFailed {
            message: format!("{}: {other}", other.code()),
        },
    };
    ExecutionError::SigningFailedAfterClaim {
        execution_id: execution_id.as_str().to_owned(),
        source: Box::new(source),
    }
}

/// Refuses `.` and `..` as the id of a new execution (`runtime.invalid_execution_id`, nothing
/// consumed): they are URL path segments, so the address of the outcome
/// (`/v1/executions/..`) is resolved away by every HTTP client before it is requested, and no
/// escaping helps (WHATWG URL parsers read `%2e%2e` as `..` too). An id an older build executed
/// is still read back.
fn check_new_execution_id(execution_id: &ExecutionId) -> Result<(), ExecutionError> {
    if matches!(execution_id.as_str(), "." | "..") {
        return Err(ExecutionError::InvalidExecutionId(IdError {
            kind: IdKind::ExecutionId,
            reason: "`.` and `..` are URL path segments: no address could name its outcome",
        }));
    }
    Ok(())
}

/// Completions a runtime signed but could not record (the store failed at `complete`), to be
/// written again ([`Runtime::finish_completions`](crate::Runtime::finish_completions)); at most
/// [`Unfinished::MAX`] are kept, and [`Unfinished::MAX_BYTES`] of attestations, the rest wait
/// for `recover`.
#[derive(Debug, Default)]
pub(crate) struct Unfinished(std::sync::Mutex<Vec<Kept>>, std::sync::Mutex<()>);

/// One completion kept: the id, the claim it completes (its clock reading and the digest of its
/// recorded inputs: written again only onto that claim), and the attestation signed.
#[derive(Debug)]
struct Kept {
    execution_id: ExecutionId,
    claimed_at: Timestamp,
    inputs_digest: Digest,
    envelope: RawCanonical,
    /// The store refused its row at an earlier pass: a pass tries it after every other.
    refused_before: bool,
}

/// The most kept completions a pass of
/// [`Runtime::finish_completions`](crate::Runtime::finish_completions) goes on past when the
/// store refuses their rows: a store refusing every row (misconfigured, say) costs a pass that
/// many calls, not one per completion kept.
pub const MAX_REFUSED_COMPLETIONS_PER_PASS: usize = 16;

/// What [`Runtime::finish_completions`](crate::Runtime::finish_completions) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FinishReport {
    /// Completions recorded now (or found recorded already, byte for byte, or by another).
    pub finished: usize,
    /// Completions not written, kept for the next call: those the store refused, and those
    /// after one it did not answer for (not tried).
    pub waiting: usize,
    /// Of those waiting, the completions the store answered with a refusal of their own row
    /// this pass (a corrupt row, say, or a store refusing every row: at most
    /// [`MAX_REFUSED_COMPLETIONS_PER_PASS`], then the pass stops): each is kept, after all the
    /// others so that the next pass tries them first, and the pass goes on past it — rows
    /// refused for ever hold back no other. Nothing is given up; while one waits, the runtime
    /// does not itself record a reload's versions in the store's marks
    /// (`accept_settled_environment`).
    pub refused: usize,
}

impl Unfinished {
    /// The most completions kept.
    pub(crate) const MAX: usize = 10_000;
    /// The most bytes of attestations kept (an attestation embedding its signals can be over a
    /// megabyte).
    pub(crate) const MAX_BYTES: usize = 64 * 1024 * 1024;

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Kept>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps a completion unless that passes [`Self::MAX`] or [`Self::MAX_BYTES`].
    fn keep(&self, execution_id: ExecutionId, claim: &ClaimRecord, attestation: Attestation) {
        let mut kept = self.lock();
        let bytes: usize = kept.iter().map(|k| k.envelope.as_bytes().len()).sum();
        if kept.len() < Self::MAX
            && bytes.saturating_add(attestation.envelope.as_bytes().len()) <= Self::MAX_BYTES
        {
            kept.push(Kept {
                execution_id,
                claimed_at: claim.claimed_at(),
                inputs_digest: Digest::of(claim.attestation_inputs()),
                envelope: attestation.envelope,
                refused_before: false,
            });
        }
    }

    /// Writes again, now, the completion kept for `execution_id` alone (see [`Self::finish`]):
    /// [`KeptCompletion::Recorded`] with the attestation this runtime signed once the store
    /// holds exactly its bytes; kept again when the store did not take it.
    pub(crate) fn complete_one(
        &self,
        store: &dyn ReplayStore,
        execution_id: &ExecutionId,
    ) -> KeptCompletion {
        let _one_pass = self
            .1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let kept = {
            let mut kept = self.lock();
            let Some(index) = kept.iter().position(|k| k.execution_id == *execution_id) else {
                return KeptCompletion::NotKept;
            };
            kept.remove(index)
        };
        // The predicate read again from the envelope this runtime signed (not kept beside it:
        // the bounds on what is kept count envelopes).
        let recorded = || {
            parmana_trust::decode_attestation_statement(kept.envelope.as_bytes())
                .ok()
                .and_then(|statement| statement.get("predicate").cloned())
                .and_then(|predicate| serde_json::from_value(predicate).ok())
                .map_or(KeptCompletion::Unconfirmed, |predicate| {
                    KeptCompletion::Recorded(Box::new(Attestation {
                        envelope: kept.envelope.clone(),
                        predicate,
                    }))
                })
        };
        match write_again(store, &kept) {
            // The store took these bytes onto the claim they were signed for.
            WriteAgain::Written => recorded(),
            WriteAgain::Finished => match store.get(execution_id) {
                // Recorded as this runtime signed it: delivered, byte for byte.
                Ok(ExecutionState::Completed(done))
                    if done.attestation() == kept.envelope.as_bytes() =>
                {
                    recorded()
                }
                // Completed with other bytes, no longer this claim, or not read back: the
                // store's word alone, never delivered as this execution's.
                _ => KeptCompletion::Unconfirmed,
            },
            outcome => {
                self.lock().push(Kept {
                    refused_before: matches!(outcome, WriteAgain::RowRefused),
                    ..kept
                });
                KeptCompletion::Waiting
            }
        }
    }

    /// Writes the kept completions again, in order: each only onto the claim it was signed for
    /// (still claimed, with the same clock reading and recorded inputs; otherwise it is dropped
    /// — completed already, its reply lost, or by `recover`; or the id is no longer that claim).
    /// The first the store does not answer for (`replay.store_unavailable`) stops the pass (one
    /// store wait a pass, not one each): it and the rest are kept, in order. One the store
    /// answers with another refusal (its row corrupt, say) is kept, moved after all the others
    /// (the next pass tries them first), and the pass goes on past it (`refused`), up to
    /// [`MAX_REFUSED_COMPLETIONS_PER_PASS`] a pass.
    /// One pass at a time: a pass takes the kept completions out while it runs, so another at
    /// the same time would see none and report none waiting.
    pub(crate) fn finish(&self, store: &dyn ReplayStore) -> FinishReport {
        let _one_pass = self
            .1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Those the store refused for their rows at an earlier pass come after every other
        // (kept since included), in their order: rows refused for ever hold back no other.
        let (fresh, refused_before): (Vec<Kept>, Vec<Kept>) = std::mem::take(&mut *self.lock())
            .into_iter()
            .partition(|kept| !kept.refused_before);
        let mut taken = fresh.into_iter().chain(refused_before);
        let mut report = FinishReport::default();
        let mut still = Vec::new();
        // Refused for their rows: kept, but after every other, so that the next pass tries the
        // others first — a few rows refused for ever never hold back the rest.
        let mut refused_rows = Vec::new();
        for kept in taken.by_ref() {
            match write_again(store, &kept) {
                WriteAgain::Written | WriteAgain::Finished => report.finished += 1,
                WriteAgain::NoAnswer => {
                    still.push(kept);
                    break;
                }
                WriteAgain::RowRefused => {
                    refused_rows.push(Kept {
                        refused_before: true,
                        ..kept
                    });
                    report.refused += 1;
                    if report.refused >= MAX_REFUSED_COMPLETIONS_PER_PASS {
                        break;
                    }
                }
            }
        }
        still.extend(taken);
        let mut kept = self.lock();
        // Kept while this pass ran come after, then those refused for their rows; the bounds
        // hold for the whole (a completion dropped by them stays claimed for `recover`).
        still.append(&mut kept);
        still.append(&mut refused_rows);
        let mut bytes = 0usize;
        still.retain(|k| {
            bytes = bytes.saturating_add(k.envelope.as_bytes().len());
            bytes <= Self::MAX_BYTES
        });
        still.truncate(Self::MAX);
        // Every completion still kept waits, those kept while this pass ran included.
        report.waiting = still.len();
        *kept = still;
        report
    }
}

/// What [`Runtime::complete_kept`](crate::Runtime::complete_kept) came to for one execution.
#[derive(Debug)]
pub enum KeptCompletion {
    /// Recorded now (or already), the store holding exactly the attestation this runtime
    /// signed: the execution is complete, and this is its attestation.
    Recorded(Box<Attestation>),
    /// The store did not take it: still kept, for the next
    /// [`Runtime::finish_completions`](crate::Runtime::finish_completions) (the id stays claimed
    /// until then, or a `recover`).
    Waiting,
    /// Not confirmed as recorded with the attestation this runtime signed: the store holds
    /// another completion of the id, no longer the claim it was signed for (completed or
    /// claimed again by another, or gone), or did not answer the read back. What it holds is
    /// its own word — read it back with [`Runtime::attestation`](crate::Runtime::attestation),
    /// which verifies it.
    Unconfirmed,
    /// No completion of this execution was kept.
    NotKept,
}

/// What writing a kept completion again came to.
enum WriteAgain {
    /// Recorded now, as signed.
    Written,
    /// Recorded already (byte for byte, or by another), or no longer the claim it was signed
    /// for: nothing is left to do.
    Finished,
    /// The store did not answer (`replay.store_unavailable`).
    NoAnswer,
    /// The store answered with a refusal of this row (a corrupt row, say).
    RowRefused,
}

/// Writes `kept` again, only onto the claim it was signed for (still claimed, with the same
/// clock reading and recorded inputs).
fn write_again(store: &dyn ReplayStore, kept: &Kept) -> WriteAgain {
    let refused = |error: &ReplayError| match error {
        ReplayError::Unavailable { .. } => WriteAgain::NoAnswer,
        _ => WriteAgain::RowRefused,
    };
    let ours = match store.get(&kept.execution_id) {
        Ok(ExecutionState::Claimed(claim)) => {
            claim.claimed_at() == kept.claimed_at
                && Digest::of(claim.attestation_inputs()) == kept.inputs_digest
        }
        Ok(_) => false,
        Err(error) => return refused(&error),
    };
    if !ours {
        return WriteAgain::Finished;
    }
    match store.complete(&kept.execution_id, kept.envelope.as_bytes()) {
        Ok(()) => WriteAgain::Written,
        Err(ReplayError::AlreadyCompleted { .. } | ReplayError::NotClaimed { .. }) => {
            WriteAgain::Finished
        }
        Err(error) => refused(&error),
    }
}

/// The version of what a claim records ([`ClaimInputs`]).
const CLAIM_INPUTS_FORMAT: u64 = 3;

/// The same inputs, recorded by a claim that completes in one write
/// ([`ReplayStore::completes_in_one_write`]): such a claim is never left pending, so recovery
/// refuses it. Its inputs reach the store before the store decides (a replay's too, a claim the
/// store then refuses too); a writer of the store who captured them (a trigger, statement
/// logging) and filed them as a pending claim would otherwise have `recover` sign a request the
/// runtime refused. The format is inside the tagged bytes: changing it breaks the tag.
const ONE_WRITE_CLAIM_INPUTS_FORMAT: u64 = 4;

/// What a claim records: everything recovery needs to decide again — the canonical validated
/// signals — and what it must then arrive at byte for byte — the canonical predicate; and, from
/// format 3, the `tag` that proves a runtime holding the attestation key recorded it.
#[derive(serde::Serialize)]
struct ClaimInputs<'a> {
    format: u64,
    predicate: &'a RawCanonical,
    signals: &'a RawCanonical,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
}

/// The key that tags claims: the claim key of the signer with the smallest key id, so that
/// every runtime holding the same keys, in any order, makes and checks the same tags.
fn claim_key(signers: &[&dyn Signer]) -> Result<parmana_trust::ClaimKey, ExecutionError> {
    let signer = signers
        .iter()
        .min_by_key(|signer| signer.key_id())
        .ok_or_else(|| TrustError::SigningFailed {
            message: "no attestation signer to tag the claim".to_owned(),
        })?;
    Ok(signer.claim_key()?)
}

/// The canonical bytes a claim records: the format, predicate and signals, and the tag of those
/// three (their canonical bytes, without it) under the signers' [`claim_key`].
fn tagged_claim_inputs(
    signers: &[&dyn Signer],
    predicate: &RawCanonical,
    signals: &RawCanonical,
    format: u64,
) -> Result<Vec<u8>, ExecutionError> {
    let mut inputs = ClaimInputs {
        format,
        predicate,
        signals,
        tag: None,
    };
    let untagged = to_canonical_vec(&inputs)?;
    inputs.tag = Some(claim_key(signers)?.tag(&untagged).to_hex());
    Ok(to_canonical_vec(&inputs)?)
}

/// Checks the tag of recorded claim inputs (`recorded`, the stored bytes), before anything
/// reads them: only inputs a runtime holding the signers' attestation key recorded are
/// completed, and a writer's row — of any size — is refused for the price of one HMAC, never
/// parsed into a tree. A runtime records the canonical bytes of `{"format", "predicate",
/// "signals", "tag"}` (members in that order), so they end in `,"tag":"<64 hex digits>"}`, and
/// the tag is of the same bytes without that member: `{…}`.
fn check_claim_tag(
    signers: &[&dyn Signer],
    execution_id: &ExecutionId,
    recorded: &[u8],
) -> Result<(), ExecutionError> {
    const MEMBER: &[u8] = b",\"tag\":\"";
    const HEX_DIGITS: usize = 64;
    let refuse = |why: &'static str| ExecutionError::ClaimNotAuthenticated {
        execution_id: execution_id.as_str().to_owned(),
        why,
    };
    let Some(before_end) = recorded.strip_suffix(b"\"}") else {
        return Err(refuse(
            "no tag: a row not recorded by this runtime, or by an earlier build",
        ));
    };
    let Some(split) = before_end.len().checked_sub(HEX_DIGITS + MEMBER.len()) else {
        return Err(refuse(
            "no tag: a row not recorded by this runtime, or by an earlier build",
        ));
    };
    let (untagged_body, member) = before_end.split_at(split);
    let (name, hex) = member.split_at(MEMBER.len());
    if name != MEMBER {
        return Err(refuse(
            "no tag: a row not recorded by this runtime, or by an earlier build",
        ));
    }
    let tag: Digest = std::str::from_utf8(hex)
        .ok()
        .and_then(|hex| format!("sha256:{hex}").parse().ok())
        .ok_or_else(|| refuse("a tag that is not 64 lowercase hex digits"))?;
    let mut untagged = Vec::with_capacity(untagged_body.len() + 1);
    untagged.extend_from_slice(untagged_body);
    untagged.push(b'}');
    let expected = claim_key(signers)?.tag(&untagged);
    if !expected.ct_eq(&tag) {
        return Err(refuse("another tag: recorded by a writer without this key"));
    }
    Ok(())
}

/// The predicate of an execution decided under `environment` by `loaded` at `executed_at`.
fn build_predicate(
    environment: &RuntimeEnvironment,
    loaded: &crate::LoadedPolicy,
    execution_id: &ExecutionId,
    decision: parmana_policy::Decision<'_>,
    signals_digest: Digest,
    signals: Option<Value>,
    executed_at: Timestamp,
) -> ExecutionPredicate {
    let bundle = loaded.bundle();
    ExecutionPredicate {
        execution_id: execution_id.clone(),
        policy: AttestedPolicy {
            id: bundle.policy_id().clone(),
            version: bundle.policy_version().clone(),
            policy_digest: bundle.policy_digest(),
            bundle_digest: bundle.bundle_digest(),
        },
        signals_digest,
        decision: decision.decision.to_owned(),
        rule_id: decision.rule_id.to_owned(),
        reason: decision.reason.map(str::to_owned),
        evaluator: EvaluatorRef {
            name: parmana_policy::EVALUATOR_NAME.to_owned(),
            version: parmana_policy::EVALUATOR_VERSION.to_owned(),
            semantics: parmana_policy::EVALUATOR_SEMANTICS.to_owned(),
        },
        runtime: RuntimeRef {
            name: RUNTIME_NAME.to_owned(),
            version: RUNTIME_VERSION.to_owned(),
        },
        trust_root: DocumentRef {
            version: environment.trust_root().version(),
            digest: environment.trust_root().digest(),
        },
        release_manifest: DocumentRef {
            version: environment.release_manifest().version(),
            digest: environment.release_manifest().digest(),
        },
        executed_at,
        signals,
    }
}

/// The digest of what was asked: the execution id, the policy and the digest of the canonical
/// validated signals.
fn request_digest(
    execution_id: &ExecutionId,
    policy: &PolicyRef,
    signals_digest: &Digest,
) -> Result<Digest, ExecutionError> {
    #[derive(serde::Serialize)]
    struct RequestDigestInput<'a> {
        execution_id: &'a str,
        policy_id: &'a str,
        policy_version: &'a str,
        signals_digest: Digest,
    }
    let input = RequestDigestInput {
        execution_id: execution_id.as_str(),
        policy_id: policy.id().as_str(),
        policy_version: policy.version().as_str(),
        signals_digest: *signals_digest,
    };
    Ok(Digest::of(&to_canonical_vec(&input)?))
}

/// Checks that every signer holds the `attestation` role in the trust root in force, that no
/// key is given twice, and that together they meet the role's threshold — before anything is
/// consumed, so an attestation that could never verify is never made.
pub(crate) fn check_signers(
    signers: &[&dyn Signer],
    environment: &RuntimeEnvironment,
) -> Result<(), ExecutionError> {
    let trust_root = environment.trust_root();
    let mut keys: Vec<KeyId> = Vec::with_capacity(signers.len());
    for signer in signers {
        let keyid = signer.key_id();
        if !(trust_root.has_role(&keyid, Role::Attestation)
            && trust_root.key(&keyid) == Some(signer.public_key()))
        {
            return Err(ExecutionError::SignerLacksRole {
                keyid: keyid.to_string(),
                trust_root_version: trust_root.version(),
            });
        }
        if keys.contains(&keyid) {
            return Err(ExecutionError::DuplicateSigner {
                keyid: keyid.to_string(),
            });
        }
        keys.push(keyid);
    }
    let threshold = trust_root.role_threshold(Role::Attestation);
    if u64::try_from(keys.len()).unwrap_or(u64::MAX) < threshold || keys.is_empty() {
        return Err(ExecutionError::SignersBelowThreshold {
            signers: keys.len(),
            threshold,
            trust_root_version: trust_root.version(),
        });
    }
    Ok(())
}

pub(crate) fn check_expiry(
    environment: &RuntimeEnvironment,
    now: Timestamp,
) -> Result<(), ExecutionError> {
    let trust_expires = environment.trust_root().expires();
    if now >= trust_expires {
        return Err(ExecutionError::Expired {
            document: "trust root",
            expires: trust_expires,
            now,
        });
    }
    let release_expires = environment.release_manifest().expires();
    if now >= release_expires {
        return Err(ExecutionError::Expired {
            document: "release manifest",
            expires: release_expires,
            now,
        });
    }
    Ok(())
}

/// The trust-root and release-manifest versions of `environment`, which a claim is made under.
pub(crate) fn versions_of(environment: &RuntimeEnvironment) -> AcceptedVersions {
    AcceptedVersions::new(
        environment.trust_root().version(),
        environment.release_manifest().version(),
    )
}

/// Refuses an environment older than the store's high-water marks (`trust.version_rollback`),
/// and a store whose marks are lower than its ledger proves (`replay.marks_reset`).
pub(crate) fn check_not_older_than_store(
    store: &dyn ReplayStore,
    environment: &RuntimeEnvironment,
) -> Result<(), ExecutionError> {
    let marks = store.accepted_versions()?;
    let ours = versions_of(environment);
    for (document, version, highest) in [
        ("trust root", ours.trust_root, marks.trust_root),
        (
            "release manifest",
            ours.release_manifest,
            marks.release_manifest,
        ),
    ] {
        if version < highest {
            return Err(ExecutionError::Trust(TrustError::VersionRollback {
                document: document.to_owned(),
                version,
                highest,
            }));
        }
    }
    Ok(())
}

/// What [`recover`] did.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    /// Ids completed now, with their attestations.
    pub completed: Vec<Attestation>,
    /// Ids that could not be completed, with why. They stay claimed (and refused).
    pub failed: Vec<(String, ExecutionError)>,
}

/// One claimed-but-unfinished execution that recovery settled, handed out as soon as it is
/// (by [`Runtime::recover_each`](crate::Runtime::recover_each)).
#[derive(Debug)]
pub enum Recovered {
    /// Completed now: its attestation is stored.
    Completed(Box<Attestation>),
    /// Could not be completed, with why; it stays claimed (and refused).
    Failed {
        /// The claimed id.
        execution_id: String,
        /// Why it could not be completed.
        error: ExecutionError,
    },
}

/// How many executions [`Runtime::recover_each`](crate::Runtime::recover_each) completed and how
/// many it could not.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryCounts {
    /// Completed now.
    pub completed: u64,
    /// Left claimed, each with why (handed out as [`Recovered::Failed`]).
    pub failed: u64,
    /// Whether it was stopped before an id it listed
    /// ([`Runtime::recover_each_until`](crate::Runtime::recover_each_until)): the ids not yet
    /// reached stay claimed, for the next recovery.
    pub stopped: bool,
}

/// Completes every claimed-but-unfinished execution from its recorded inputs.
///
/// Ed25519 is deterministic and the recorded inputs include the clock reading, so the
/// attestation is byte-identical to the one the interrupted execution would have returned.
/// It must run with the environment (trust root) and signer of the interrupted execution;
/// otherwise that id fails here and stays claimed — a claimed id is never reopened. A signer
/// without the `attestation` role is refused before anything is read, and so are an
/// environment older than the store's high-water marks (`trust.version_rollback`) and a store
/// whose marks were reset (`replay.marks_reset`): recovery signs nothing a rolled-back
/// environment decides. A store that does not answer for an id (`replay.store_unavailable`) is
/// asked again: when it does not answer a read of its marks either, the recovery stops with the
/// error — the ids settled before stay settled, and the next recovery completes the others —;
/// otherwise the id is tried once more, and fails alone if it fails again.
pub fn recover(
    replay_store: &dyn ReplayStore,
    signer: &dyn Signer,
    environment: &RuntimeEnvironment,
) -> Result<RecoveryReport, ExecutionError> {
    check_signer_at_call(signer)?;
    recover_with(replay_store, &[signer], environment)
}

pub(crate) fn recover_with(
    replay_store: &dyn ReplayStore,
    signers: &[&dyn Signer],
    environment: &RuntimeEnvironment,
) -> Result<RecoveryReport, ExecutionError> {
    let mut report = RecoveryReport::default();
    recover_each_with(
        replay_store,
        signers,
        environment,
        None,
        &mut |recovered| match recovered {
            Recovered::Completed(attestation) => report.completed.push(*attestation),
            Recovered::Failed {
                execution_id,
                error,
            } => report.failed.push((execution_id, error)),
        },
        &|| false,
    )?;
    Ok(report)
}

/// Recovery page by page ([`PENDING_PAGE`] ids at a time, each page continuing after the last
/// id of the one before): memory stays bounded by a page however many ids the store lists, and
/// each settled id is handed to `each` at once.
pub(crate) fn recover_each_with(
    replay_store: &dyn ReplayStore,
    signers: &[&dyn Signer],
    environment: &RuntimeEnvironment,
    unfinished: Option<&Unfinished>,
    each: &mut dyn FnMut(Recovered),
    stop: &dyn Fn() -> bool,
) -> Result<RecoveryCounts, ExecutionError> {
    check_signers(signers, environment)?;
    check_not_older_than_store(replay_store, environment)?;
    let mut counts = RecoveryCounts::default();
    let mut after: Option<ExecutionId> = None;
    // Brent's cycle detection over the ends of full pages, in constant memory: one end kept, and
    // kept anew after 1, 2, 4, 8, … pages — pages that go round meet it again.
    let (mut kept_end, mut power, mut since): (Option<ExecutionId>, u64, u64) = (None, 1, 0);
    loop {
        let page = replay_store.pending_after(after.as_ref(), PENDING_PAGE)?;
        // A page must move on: one holding the id it was to follow, or ending where an earlier
        // one ended (a store that ignores `after`, or goes round between pages), would have
        // recovery go round the same ids for ever.
        let repeated = match page.last() {
            Some(last) if page.len() == PENDING_PAGE => {
                let seen = kept_end.as_ref() == Some(last);
                since += 1;
                if since == power {
                    kept_end = Some(last.clone());
                    power = power.saturating_mul(2);
                    since = 0;
                }
                seen
            }
            _ => false,
        };
        if let Some(after) = &after
            && (page.contains(after) || repeated)
        {
            return Err(parmana_replay::ReplayError::Corrupt {
                message: format!(
                    "the store's pages of claimed ids do not move on (after {:?}, it listed ids \
                     it had listed before)",
                    after.as_str()
                ),
            }
            .into());
        }
        let last_page = page.len() < PENDING_PAGE;
        for execution_id in &page {
            // Asked to stop (a server's shutdown): before the next id, each begun settled.
            if stop() {
                counts.stopped = true;
                return Ok(counts);
            }
            match recover_one_again(replay_store, signers, environment, unfinished, execution_id)? {
                Ok(Some(attestation)) => {
                    counts.completed = counts.completed.saturating_add(1);
                    each(Recovered::Completed(Box::new(attestation)));
                }
                Ok(None) => {}
                Err(error) => {
                    counts.failed = counts.failed.saturating_add(1);
                    each(Recovered::Failed {
                        execution_id: execution_id.as_str().to_owned(),
                        error,
                    });
                }
            }
        }
        match page.into_iter().last() {
            Some(last) if !last_page => after = Some(last),
            _ => return Ok(counts),
        }
    }
}

/// [`recover_one`], once more where the store did not answer for the id
/// (`replay.store_unavailable`: a lock held past its timeout, a connection lost, a volume full for
/// a moment), which says nothing of the id. When the store does not answer a read of its marks
/// either, it is down: the recovery stops with the error (`Err`: the ids settled before stay
/// settled; this one and those after are recovered by the next run, byte for byte — a server's
/// start fails with it, for its supervisor to start it again). When the store answers, the id is
/// tried again; failing again, the failure is the id's (`Ok(Err)`: a row the store cannot serve —
/// a lock on it held elsewhere, say — stays claimed, and the ids after it are recovered).
fn recover_one_again(
    store: &dyn ReplayStore,
    signers: &[&dyn Signer],
    environment: &RuntimeEnvironment,
    unfinished: Option<&Unfinished>,
    execution_id: &ExecutionId,
) -> Result<Result<Option<Attestation>, ExecutionError>, ExecutionError> {
    // Kept (for a runtime to write again) only at the try after the store answered the probe:
    // one completion a leftover.
    match recover_one(store, signers, environment, None, execution_id) {
        Err(error @ ExecutionError::Store(parmana_replay::ReplayError::Unavailable { .. })) => {
            if store.accepted_versions().is_err() {
                return Err(error);
            }
            Ok(recover_one(
                store,
                signers,
                environment,
                unfinished,
                execution_id,
            ))
        }
        outcome => Ok(outcome),
    }
}

/// Completes one leftover claim (`None`: completed since it was listed). A completion the store
/// did not answer for (`replay.store_unavailable`) is kept in `unfinished` when one is given (a
/// runtime's: written again by
/// [`Runtime::finish_completions`](crate::Runtime::finish_completions), as an execution's is),
/// so that a store whose writes fail for a while — a lock held past its timeout, a volume full,
/// while its reads go on — leaves the id claimed until the next tick, not until the next
/// recovery; one refused for its row leaves the id claimed, for the next `recover` to say why.
fn recover_one(
    store: &dyn ReplayStore,
    signers: &[&dyn Signer],
    environment: &RuntimeEnvironment,
    unfinished: Option<&Unfinished>,
    execution_id: &ExecutionId,
) -> Result<Option<Attestation>, ExecutionError> {
    let ExecutionState::Claimed(claim) = store.get(execution_id)? else {
        // Completed (or, impossibly, absent) since it was listed: nothing to do.
        return Ok(None);
    };
    let unreadable = |message: String| ExecutionError::StoredClaimUnreadable {
        execution_id: execution_id.as_str().to_owned(),
        message,
    };
    let mismatch = |what: &'static str| ExecutionError::RecoveryMismatch {
        execution_id: execution_id.as_str().to_owned(),
        what,
    };
    // The store is not trusted to say what was claimed: a row is completed only when a
    // runtime holding this attestation key recorded it (its tag, checked before the row is
    // read), and then only when deciding it again gives the recorded predicate byte for byte.
    check_claim_tag(signers, execution_id, claim.attestation_inputs())?;
    let mut recorded: Value =
        parse_strict(claim.attestation_inputs()).map_err(|e| unreadable(e.to_string()))?;
    // Format 3 records the predicate, the signals and the tag (checked above); the formats of
    // earlier builds carry no tag and were refused with it.
    match recorded.get("format").and_then(Value::as_u64) {
        Some(CLAIM_INPUTS_FORMAT) => {}
        Some(ONE_WRITE_CLAIM_INPUTS_FORMAT) => {
            return Err(ExecutionError::ClaimNotAuthenticated {
                execution_id: execution_id.as_str().to_owned(),
                why: "recorded by a claim that completes in one write, which is never left \
                      pending: inputs a writer of the store captured and filed as a claim",
            });
        }
        _ => return Err(unreadable("an unknown claim format".to_owned())),
    }
    let mut take = |member: &str| {
        recorded
            .get_mut(member)
            .map(Value::take)
            .ok_or_else(|| unreadable(format!("no {member} recorded")))
    };
    let recorded_predicate = take("predicate")?;
    let recorded_signals = take("signals")?;
    let predicate: ExecutionPredicate = serde_json::from_value(recorded_predicate.clone())
        .map_err(|e| unreadable(e.to_string()))?;
    if predicate.execution_id != *execution_id || predicate.executed_at != claim.claimed_at() {
        return Err(unreadable(
            "the recorded inputs belong to another execution".to_owned(),
        ));
    }
    // A claim made under other versions cannot come out byte for byte here: said as such (the
    // deployment published or reloaded since), not as a forgery. A writer of the store gains
    // nothing by it: the id stays claimed either way.
    let in_force = versions_of(environment);
    if predicate.trust_root.version != in_force.trust_root
        || predicate.release_manifest.version != in_force.release_manifest
    {
        return Err(ExecutionError::RecoveryEnvironmentChanged {
            execution_id: execution_id.as_str().to_owned(),
            recorded_trust_root: predicate.trust_root.version,
            recorded_release_manifest: predicate.release_manifest.version,
            trust_root: in_force.trust_root,
            release_manifest: in_force.release_manifest,
        });
    }
    // A claim another build of this runtime left (a crash, then an upgrade, or a rollback of
    // one): decided again by this build, under the same evaluator semantics, and signed as
    // recorded — naming the runtime and evaluator that decided and claimed it, so that the
    // attestation is the one that build would have signed — while the release manifest in force
    // still admits that runtime. Another engine, other semantics or a runtime the manifest no
    // longer admits is a mismatch.
    if predicate.runtime.name != RUNTIME_NAME
        || predicate.evaluator.name != parmana_policy::EVALUATOR_NAME
        || predicate.evaluator.semantics != parmana_policy::EVALUATOR_SEMANTICS
    {
        return Err(mismatch(
            "runtime or evaluator (another engine, or other semantics)",
        ));
    }
    environment
        .release_manifest()
        .check_runtime(&predicate.evaluator.semantics, &predicate.runtime.version)
        .map_err(|_| mismatch("runtime version (not admitted by the release manifest in force)"))?;
    // Decide again under the environment in force: the policy must be released there, the
    // signals valid, and everything — decision, rule, digests, trust root, release manifest —
    // must come out byte for byte as recorded. The store is not trusted to say what was decided.
    let reference = PolicyRef::new(
        predicate.policy.id.clone(),
        predicate.policy.version.clone(),
    );
    // A policy the release manifest does not list is the row's (forged, or foreign); one that
    // is listed but does not load (its bundle unreadable or not verifying) is this
    // environment's failure, said as it is — not the row's.
    let loaded = environment
        .policy(&reference)
        .map_err(|error| match error {
            ExecutionError::PolicyNotFound { .. } => {
                mismatch("policy (not released in this environment)")
            }
            other => other,
        })?;
    let validated = loaded
        .policy()
        .validate_signals(&recorded_signals)
        .map_err(|_| mismatch("signals (refused by the policy)"))?;
    let decision = validated.evaluate()?;
    let signals_digest = Digest::of(validated.canonical()?.as_bytes());
    let mut rebuilt = build_predicate(
        environment,
        &loaded,
        execution_id,
        decision,
        signals_digest,
        predicate
            .signals
            .is_some()
            .then(|| validated.to_json_value()),
        claim.claimed_at(),
    );
    // The build that decided it is named (checked above: this runtime, these semantics).
    rebuilt.runtime = predicate.runtime;
    rebuilt.evaluator = predicate.evaluator;
    if to_canonical_vec(&recorded_predicate)? != to_canonical_vec(&rebuilt)? {
        return Err(mismatch(
            "predicate (deciding again under this environment gives another attestation)",
        ));
    }
    if request_digest(execution_id, &reference, &signals_digest)? != claim.request_digest() {
        return Err(mismatch("request digest"));
    }
    let envelope = prepare_attestation(&rebuilt, environment.trust_root())?
        .sign_all_canonical(signers, environment.trust_root())?;
    let attestation = Attestation {
        envelope,
        predicate: rebuilt,
    };
    match store.complete(execution_id, attestation.envelope.as_bytes()) {
        Ok(()) => Ok(Some(attestation)),
        // Completed by another process since it was read (another server's recovery, or a live
        // server's own completion): nothing is left to do, as when it was completed before.
        Err(parmana_replay::ReplayError::AlreadyCompleted { .. }) => Ok(None),
        Err(error) => {
            // Kept (for the runtime's ticks to write again) only when the store did not answer —
            // recovery's second try, after the store answered a read (`recover_one_again`): a
            // refusal of this row leaves the id claimed, for the next `recover` to say why.
            if let (Some(unfinished), parmana_replay::ReplayError::Unavailable { .. }) =
                (unfinished, &error)
            {
                unfinished.keep(execution_id.clone(), &claim, attestation);
            }
            Err(error.into())
        }
    }
}
