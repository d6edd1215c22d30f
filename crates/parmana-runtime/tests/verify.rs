//! Offline verification with the policy: the `decision` check refuses an attestation a key holder signed with a decision, rule, reason or evaluator the policy did not make, by every verifier the runtime offers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{Fixture, runtime_over};
use parmana_runtime::canon::{Digest, PolicyRef};
use parmana_runtime::replay::MemoryReplayStore;
use parmana_runtime::trust::{AttestationReport, ExecutionPredicate, VerifyOptions};
use parmana_runtime::{
    ExecutionRequest, Runtime, verify_attestation, verify_attestation_in_history,
    verify_attestation_with_log,
};
use parmana_trust::build_attestation;
use serde_json::{Value, json};

/// The released policy every attestation here names.
const POLICY: &str = "claims-approval@1.0.0";

const VIP: &str =
    r#"{"claim_amount": 4200, "vip_customer": true, "country": "DE", "policy_age_days": 400}"#;

/// What the `decision` row of a report says: absent, passed, or failed with a code.
#[derive(Debug, PartialEq, Eq)]
enum Row {
    Absent,
    Passed,
    Failed(&'static str),
}

fn decision_row(report: &AttestationReport) -> Row {
    match report
        .checks
        .iter()
        .find(|c| c.check.as_str() == "decision")
    {
        None => Row::Absent,
        Some(c) if c.passed => Row::Passed,
        Some(c) => Row::Failed(c.code.unwrap()),
    }
}

struct Setup {
    fixture: Fixture,
    runtime: Runtime,
    /// The genuine attestation's predicate, its signals embedded.
    genuine: ExecutionPredicate,
}

impl Setup {
    fn new() -> Self {
        let fixture = Fixture::new();
        let runtime = runtime_over(&fixture, Arc::new(MemoryReplayStore::new()));
        let mut request = ExecutionRequest::parse("exec-vip", POLICY, VIP).unwrap();
        request.include_signals = true;
        let attestation = runtime.execute(&request).unwrap();
        let genuine = attestation.predicate().clone();
        assert_eq!(
            (genuine.decision.as_str(), genuine.rule_id.as_str()),
            ("approve", "vip")
        );
        Self {
            fixture,
            runtime,
            genuine,
        }
    }

    /// `predicate` signed by the deployment's attestation key: what only its holder can make.
    fn signed(&self, predicate: &ExecutionPredicate) -> Vec<u8> {
        let environment = self.runtime.environment();
        build_attestation(
            predicate,
            &self.fixture.key("attestation"),
            environment.trust_root(),
        )
        .unwrap()
    }

    /// The released policy the attestations name.
    fn policy(&self) -> std::sync::Arc<parmana_runtime::LoadedPolicy> {
        self.runtime
            .policy(&PolicyRef::parse(POLICY).unwrap())
            .unwrap()
    }

    /// The `decision` row of every verifier the runtime offers, which must agree; and the
    /// other checks, which all pass.
    fn check(&self, name: &str, envelope: &[u8], signals: Option<&Value>) -> Row {
        let environment = self.runtime.environment();
        let loaded = self.policy();
        let bundle = Some(loaded.bundle());
        let options = VerifyOptions {
            now: parmana_testkit::now(),
            require_current_trust: false,
        };
        let history = environment.trust_history();
        let reports = [
            verify_attestation(envelope, environment.trust_root(), bundle, signals),
            verify_attestation_in_history(envelope, history, options, bundle, signals),
            verify_attestation_with_log(envelope, history, options, bundle, signals, None),
            self.runtime.verify(envelope, Some(&loaded), signals),
        ];
        let rows: Vec<Row> = reports.iter().map(decision_row).collect();
        for (report, row) in reports.iter().zip(&rows) {
            assert_eq!(row, &rows[0], "{name}: the verifiers disagree");
            let others: Vec<&str> = report
                .failures()
                .map(|c| c.check.as_str())
                .filter(|c| *c != "decision")
                .collect();
            assert!(others.is_empty(), "{name}: {others:?} failed too");
        }
        // Without the policy there is nothing to decide with.
        let without = verify_attestation(envelope, environment.trust_root(), None, signals);
        assert_eq!(decision_row(&without), Row::Absent, "{name}");
        rows.into_iter().next().unwrap()
    }
}

#[test]
fn the_decision_check_refuses_what_the_policy_did_not_decide() {
    let setup = Setup::new();
    let signals: Value = serde_json::from_str(VIP).unwrap();
    let refused = json!({"claim_amount": 4200});
    type Mutate = fn(&mut ExecutionPredicate);
    let cases: [(&str, Mutate, Option<&Value>, Row); 11] = [
        (
            "genuine, signals given",
            |_| {},
            Some(&signals),
            Row::Passed,
        ),
        ("genuine, signals embedded", |_| {}, None, Row::Passed),
        (
            "genuine, no signals anywhere",
            |p| p.signals = None,
            None,
            Row::Absent,
        ),
        (
            "another decision",
            |p| p.decision = "deny".to_owned(),
            Some(&signals),
            Row::Failed("trust.decision_mismatch"),
        ),
        (
            "another decision, embedded signals only",
            |p| p.decision = "deny".to_owned(),
            None,
            Row::Failed("trust.decision_mismatch"),
        ),
        (
            "another rule",
            |p| p.rule_id = "small".to_owned(),
            Some(&signals),
            Row::Failed("trust.decision_mismatch"),
        ),
        (
            "another reason",
            |p| p.reason = Some("approved by the board".to_owned()),
            Some(&signals),
            Row::Failed("trust.decision_mismatch"),
        ),
        (
            "no reason",
            |p| p.reason = None,
            Some(&signals),
            Row::Failed("trust.decision_mismatch"),
        ),
        (
            "a decision the policy cannot make",
            |p| p.decision = "pay-twice".to_owned(),
            None,
            Row::Failed("trust.decision_mismatch"),
        ),
        (
            "other evaluator semantics",
            |p| p.evaluator.semantics = "parmana-policy/1".to_owned(),
            Some(&signals),
            Row::Failed("trust.decision_not_reproduced"),
        ),
        (
            "signals the policy refuses",
            |p| {
                let refused = json!({"claim_amount": 4200});
                p.signals = None;
                p.signals_digest = Digest::of_canonical(&refused).unwrap();
            },
            Some(&refused),
            Row::Failed("trust.decision_not_reproduced"),
        ),
    ];
    for (name, mutate, given, expected) in cases {
        let mut predicate = setup.genuine.clone();
        mutate(&mut predicate);
        let envelope = setup.signed(&predicate);
        assert_eq!(setup.check(name, &envelope, given), expected, "{name}");
    }
    // Semantics of a megabyte, as whoever signed wrote them: quoted bounded in the row.
    let mut predicate = setup.genuine.clone();
    predicate.evaluator.semantics = "\u{7f}".repeat(1 << 20);
    let envelope = setup.signed(&predicate);
    let report = setup
        .runtime
        .verify(&envelope, Some(&setup.policy()), Some(&signals));
    let row = report.checks.last().unwrap();
    assert_eq!(
        (row.check.as_str(), row.code),
        ("decision", Some("trust.decision_not_reproduced")),
        "{row:?}"
    );
    assert!(row.detail.len() < 2_048, "{} bytes", row.detail.len());
    // The row says which signals it decided: the verifier's own, or those the attestation
    // embeds (chosen by whoever signed it, with the decision).
    let envelope = setup.signed(&setup.genuine);
    let loaded = setup.policy();
    for (given, words) in [
        (Some(&signals), "for the signals given"),
        (None, "for the signals the attestation embeds"),
    ] {
        let report = setup.runtime.verify(&envelope, Some(&loaded), given);
        let row = report.checks.last().unwrap();
        assert!(row.detail.starts_with(words), "{row:?}");
    }
}

#[test]
fn the_decision_check_of_an_unreadable_attestation_is_not_run() {
    let setup = Setup::new();
    let signals: Value = serde_json::from_str(VIP).unwrap();
    let report = verify_attestation(
        b"not an attestation",
        setup.runtime.environment().trust_root(),
        Some(setup.policy().bundle()),
        Some(&signals),
    );
    let row = report.checks.last().unwrap();
    assert_eq!((row.check.as_str(), row.passed), ("decision", false));
    assert!(row.detail.contains("not checked: "), "{row:?}");
}
