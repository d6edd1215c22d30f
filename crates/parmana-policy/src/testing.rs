//! Policy tests: cases of signals with expected outcomes (a policy's `tests/*.json`), run with rule and condition coverage.
//!
//! A case file is
//!
//! ```json
//! {"description": "optional", "signals": {"claim_amount": 500},
//!  "expect": {"decision": "approve", "rule_id": "small", "reason": "optional"}}
//! ```
//!
//! or, for signals that must be refused, `"expect": {"error": "policy.signal_missing"}`.
//! Unknown fields are errors. The runner is pure: the caller reads the files.

use std::fmt;

use serde_json::{Map, Value};

use crate::compile::CompiledPolicy;
use crate::error::PolicyError;

/// What a case expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// The signals are valid and evaluate to this outcome.
    Decision {
        /// Expected decision.
        decision: String,
        /// Expected deciding rule id (`default` for the default outcome).
        rule_id: String,
        /// Expected reason, when the case states one.
        reason: Option<String>,
    },
    /// The signals are refused with this [`SignalError`](crate::SignalError) code.
    Error {
        /// Expected code, for example `policy.signal_missing`.
        code: String,
    },
}

/// How one case went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseOutcome {
    /// The outcome was the expected one.
    Passed,
    /// The outcome differed.
    Failed {
        /// What the case expected.
        expected: String,
        /// What happened.
        actual: String,
    },
    /// The case file itself is malformed.
    Invalid {
        /// Why it could not be read.
        message: String,
    },
}

/// One case's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    /// The case's name (its file name as given by the caller).
    pub name: String,
    /// How it went.
    pub outcome: CaseOutcome,
}

/// How often a rule decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCoverage {
    /// The rule id.
    pub rule_id: String,
    /// JSON pointer of the rule.
    pub path: String,
    /// Cases it decided.
    pub hits: usize,
}

/// Whether a condition was seen both true and false.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionCoverage {
    /// JSON pointer of the condition.
    pub path: String,
    /// The rule it belongs to.
    pub rule_id: String,
    /// The condition, for example `fraud_score gt 80`.
    pub condition: String,
    /// Evaluated to true in some case.
    pub seen_true: bool,
    /// Evaluated to false in some case.
    pub seen_false: bool,
}

/// Rule and condition coverage over all cases with valid signals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Every rule, in policy order.
    pub rules: Vec<RuleCoverage>,
    /// Cases decided by the default outcome.
    pub default_hits: usize,
    /// Every condition node, in policy order.
    pub conditions: Vec<ConditionCoverage>,
}

/// `covered` of `total` as a percentage, one rounding only: `covered × 100 / total` (29 of 50 is
/// exactly 58, where `29 / 50 × 100` is 57.99999999999999).
fn percent(covered: usize, total: usize) -> f64 {
    if total == 0 {
        100.0
    } else {
        #[allow(
            clippy::cast_precision_loss,
            reason = "a percentage, not an exact count"
        )]
        let (hundredfold, total) = (covered.saturating_mul(100) as f64, total as f64);
        hundredfold / total
    }
}

/// Whether `covered` of `total` reaches `threshold_percent`: the percentage worked out with one
/// rounding ([`percent`]) against the threshold as read (one rounding too). Rounding keeps order,
/// and one real number rounds to one double: a coverage exactly at the threshold meets it,
/// whatever its decimals (161 of 250 meets 64.4; `64.4 × 250` would round above 16,100).
fn reaches(covered: usize, total: usize, threshold_percent: f64) -> bool {
    percent(covered, total) >= threshold_percent
}

impl Coverage {
    /// Rules that decided at least one case.
    pub fn rules_covered(&self) -> usize {
        self.rules.iter().filter(|r| r.hits > 0).count()
    }
    /// Conditions seen both true and false.
    pub fn conditions_covered(&self) -> usize {
        self.conditions
            .iter()
            .filter(|c| c.seen_true && c.seen_false)
            .count()
    }
    /// Percentage of rules that decided at least one case (100 when there are no rules).
    pub fn rule_percent(&self) -> f64 {
        percent(self.rules_covered(), self.rules.len())
    }
    /// Percentage of conditions seen both true and false (100 when there are none).
    pub fn condition_percent(&self) -> f64 {
        percent(self.conditions_covered(), self.conditions.len())
    }
}

/// The result of running a policy's test cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReport {
    /// Every case, sorted by name.
    pub cases: Vec<CaseReport>,
    /// Coverage over the cases with valid signals.
    pub coverage: Coverage,
}

impl TestReport {
    /// Cases that passed.
    pub fn passed(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.outcome == CaseOutcome::Passed)
            .count()
    }
    /// Whether every case passed (and there was at least one).
    pub fn all_passed(&self) -> bool {
        !self.cases.is_empty() && self.passed() == self.cases.len()
    }
    /// Whether both rule coverage and condition coverage reach `threshold_percent` (exactly at
    /// it included: compared as counts, not as rounded percentages).
    pub fn meets_threshold(&self, threshold_percent: f64) -> bool {
        let coverage = &self.coverage;
        reaches(
            coverage.rules_covered(),
            coverage.rules.len(),
            threshold_percent,
        ) && reaches(
            coverage.conditions_covered(),
            coverage.conditions.len(),
            threshold_percent,
        )
    }
}

impl TestReport {
    /// The cases, one line each (a failure's expected and actual outcomes below it), and the
    /// passed and failed count: the report without its coverage.
    pub fn cases_text(&self) -> impl fmt::Display + '_ {
        CasesText(self)
    }

    /// The rule and condition coverage, and what was never decided or seen both ways.
    pub fn coverage_text(&self) -> impl fmt::Display + '_ {
        CoverageText(&self.coverage)
    }
}

/// [`TestReport::cases_text`].
struct CasesText<'a>(&'a TestReport);

/// [`TestReport::coverage_text`].
struct CoverageText<'a>(&'a Coverage);

/// The whole report: [`TestReport::cases_text`], then [`TestReport::coverage_text`].
impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.cases_text(), self.coverage_text())
    }
}

impl fmt::Display for CasesText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = self.0;
        for case in &report.cases {
            match &case.outcome {
                CaseOutcome::Passed => writeln!(f, "test {} ... ok", case.name)?,
                CaseOutcome::Failed { expected, actual } => writeln!(
                    f,
                    "test {} ... FAILED\n    expected {expected}\n    got      {actual}",
                    case.name
                )?,
                CaseOutcome::Invalid { message } => {
                    writeln!(f, "test {} ... INVALID: {message}", case.name)?;
                }
            }
        }
        let failed = report.cases.len() - report.passed();
        writeln!(f, "{} passed, {failed} failed", report.passed())
    }
}

impl fmt::Display for CoverageText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        writeln!(
            f,
            "rule coverage: {}/{} rules ({:.1}%), default outcome used {} time{}",
            c.rules_covered(),
            c.rules.len(),
            c.rule_percent(),
            c.default_hits,
            if c.default_hits == 1 { "" } else { "s" }
        )?;
        writeln!(
            f,
            "condition coverage: {}/{} conditions seen true and false ({:.1}%)",
            c.conditions_covered(),
            c.conditions.len(),
            c.condition_percent()
        )?;
        for r in c.rules.iter().filter(|r| r.hits == 0) {
            writeln!(f, "  rule {:?} ({}) never decided", r.rule_id, r.path)?;
        }
        for cond in c
            .conditions
            .iter()
            .filter(|c| !(c.seen_true && c.seen_false))
        {
            let missing = match (cond.seen_true, cond.seen_false) {
                (false, false) => "never evaluated",
                (true, false) => "never false",
                _ => "never true",
            };
            writeln!(
                f,
                "  condition {} ({}) {missing}",
                cond.path, cond.condition
            )?;
        }
        Ok(())
    }
}

/// Compiles `policy` and runs the cases `(name, bytes)` against it.
pub fn run_policy_tests<N: AsRef<str>, B: AsRef<[u8]>>(
    policy: &[u8],
    cases: &[(N, B)],
) -> Result<TestReport, PolicyError> {
    let compiled = crate::compile(policy)?;
    Ok(run_tests(&compiled, cases))
}

/// Runs the cases `(name, bytes)` against a compiled policy.
pub fn run_tests<N: AsRef<str>, B: AsRef<[u8]>>(
    policy: &CompiledPolicy,
    cases: &[(N, B)],
) -> TestReport {
    let mut sorted: Vec<(&str, &[u8])> = cases
        .iter()
        .map(|(n, b)| (n.as_ref(), b.as_ref()))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut coverage = Coverage {
        rules: policy
            .rules
            .iter()
            .map(|r| RuleCoverage {
                rule_id: r.id.clone(),
                path: r.path.clone(),
                hits: 0,
            })
            .collect(),
        default_hits: 0,
        conditions: policy
            .node_info
            .iter()
            .map(|info| ConditionCoverage {
                path: info.path.clone(),
                rule_id: policy
                    .rules
                    .get(info.rule as usize)
                    .map_or_else(String::new, |r| r.id.clone()),
                condition: info.label.clone(),
                seen_true: false,
                seen_false: false,
            })
            .collect(),
    };
    let reports = sorted
        .into_iter()
        .map(|(name, bytes)| CaseReport {
            name: name.to_owned(),
            outcome: run_case(policy, bytes, &mut coverage),
        })
        .collect();
    TestReport {
        cases: reports,
        coverage,
    }
}

fn run_case(policy: &CompiledPolicy, bytes: &[u8], coverage: &mut Coverage) -> CaseOutcome {
    let (signals, expect) = match read_case(bytes) {
        Ok(case) => case,
        Err(message) => return CaseOutcome::Invalid { message },
    };
    let validated = match policy.validate_signals(&signals) {
        Ok(v) => v,
        Err(e) => {
            return match &expect {
                Expectation::Error { code } if code == e.code() => CaseOutcome::Passed,
                _ => CaseOutcome::Failed {
                    expected: describe(&expect),
                    actual: format!("error {}: {e}", e.code()),
                },
            };
        }
    };
    // Coverage from the walk `explain` makes (linear over the rules), without its trace: the
    // values the conditions read are not copied, so a case costs no memory per condition.
    let mut outcomes: Vec<(u32, bool)> = Vec::new();
    let walked = match validated.cover(|node, result| outcomes.push((node, result))) {
        Ok(decision) => decision,
        Err(fault) => {
            return CaseOutcome::Failed {
                expected: describe(&expect),
                actual: format!("error {}: {fault}", fault.code()),
            };
        }
    };
    // The case is run on both evaluators: the walk for coverage, and the indexed one a runtime
    // signs with. They agree on every input (a property test checks it); should they not, the
    // case fails rather than pass on the one the runtime does not use.
    match validated.evaluate() {
        Ok(decided) if decided == walked => {}
        Ok(decided) => {
            return CaseOutcome::Failed {
                expected: describe(&expect),
                actual: format!(
                    "error policy.evaluation_fault: the trace decides {:?} by rule {:?}, the \
                     indexed evaluation {:?} by rule {:?}",
                    walked.decision, walked.rule_id, decided.decision, decided.rule_id
                ),
            };
        }
        Err(fault) => {
            return CaseOutcome::Failed {
                expected: describe(&expect),
                actual: format!("error {}: {fault}", fault.code()),
            };
        }
    }
    for (node, result) in outcomes {
        if let Some(cov) = coverage.conditions.get_mut(node as usize) {
            if result {
                cov.seen_true = true;
            } else {
                cov.seen_false = true;
            }
        }
    }
    let d = walked;
    match coverage.rules.iter_mut().find(|r| r.rule_id == d.rule_id) {
        Some(r) => r.hits += 1,
        None => coverage.default_hits += 1,
    }
    let ok = match &expect {
        Expectation::Decision {
            decision,
            rule_id,
            reason,
        } => {
            decision == d.decision
                && rule_id == d.rule_id
                && reason.as_ref().is_none_or(|r| Some(r.as_str()) == d.reason)
        }
        Expectation::Error { .. } => false,
    };
    if ok {
        CaseOutcome::Passed
    } else {
        let actual = match d.reason {
            Some(reason) => format!(
                "decision {:?} by rule {:?} (reason {reason:?})",
                d.decision, d.rule_id
            ),
            None => format!("decision {:?} by rule {:?}", d.decision, d.rule_id),
        };
        CaseOutcome::Failed {
            expected: describe(&expect),
            actual,
        }
    }
}

fn describe(expect: &Expectation) -> String {
    match expect {
        Expectation::Decision {
            decision,
            rule_id,
            reason: Some(reason),
        } => format!("decision {decision:?} by rule {rule_id:?} (reason {reason:?})"),
        Expectation::Decision {
            decision, rule_id, ..
        } => format!("decision {decision:?} by rule {rule_id:?}"),
        Expectation::Error { code } => format!("error {code}"),
    }
}

fn only_fields(map: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), String> {
    match crate::parse::sorted_members(map)
        .into_iter()
        .map(|(k, _)| k)
        .find(|k| !allowed.contains(&k.as_str()))
    {
        Some(k) => Err(format!(
            "unknown field {k:?} in {at} (expected {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn text_field(map: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{name:?} must be a string")),
    }
}

/// Reads one case file: `(signals, expectation)`.
pub fn read_case(bytes: &[u8]) -> Result<(Value, Expectation), String> {
    let value = parmana_canon::parse_strict(bytes)
        .map_err(|e| format!("not strict JSON: {e} ({})", e.code()))?;
    let Value::Object(map) = value else {
        return Err("a test case must be a JSON object".to_owned());
    };
    only_fields(&map, &["description", "signals", "expect"], "the case")?;
    text_field(&map, "description")?;
    let signals = map
        .get("signals")
        .cloned()
        .ok_or("missing field \"signals\"")?;
    let Some(Value::Object(expect)) = map.get("expect") else {
        return Err("missing object field \"expect\"".to_owned());
    };
    let expectation = if expect.contains_key("error") {
        only_fields(expect, &["error"], "\"expect\"")?;
        Expectation::Error {
            code: text_field(expect, "error")?.unwrap_or_default(),
        }
    } else {
        only_fields(expect, &["decision", "rule_id", "reason"], "\"expect\"")?;
        Expectation::Decision {
            decision: text_field(expect, "decision")?
                .ok_or("\"expect\" needs \"decision\" and \"rule_id\", or \"error\"")?,
            rule_id: text_field(expect, "rule_id")?
                .ok_or("\"expect\" needs \"decision\" and \"rule_id\", or \"error\"")?,
            reason: text_field(expect, "reason")?,
        }
    };
    Ok((signals, expectation))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A coverage exactly at the threshold meets it, one just below does not; the percentage
    /// shown is the exact one. Every fraction of up to 200 items whose quotient-then-product
    /// misses its exact percentage (29 of 50 gave 57.99999999999999) is among the cases.
    #[test]
    fn a_coverage_exactly_at_the_threshold_meets_it() {
        let mut misread = 0;
        for total in 1..=200_usize {
            for covered in 0..=total {
                if (covered * 100) % total != 0 {
                    continue;
                }
                #[allow(clippy::cast_precision_loss, reason = "small counts")]
                let exact = (covered * 100 / total) as f64;
                #[allow(clippy::cast_precision_loss, reason = "small counts")]
                if (covered as f64 / total as f64) * 100.0 != exact {
                    misread += 1;
                }
                assert_eq!(percent(covered, total), exact, "{covered}/{total}");
                assert!(reaches(covered, total, exact), "{covered}/{total}");
                assert!(!reaches(covered, total, exact + 0.5), "{covered}/{total}");
            }
        }
        assert!(misread > 0, "no fraction was misread the old way");
        assert!(reaches(0, 0, 100.0));
        // Thresholds with decimals, exactly met: the threshold as `--threshold` reads it.
        for (covered, total, threshold) in [
            (161, 250, "64.4"),
            (33, 375, "8.8"),
            (1, 3, "33.333333333333336"),
            (2, 3, "66.66666666666667"),
            (29, 50, "58.0"),
        ] {
            let threshold: f64 = threshold.parse().unwrap();
            assert!(reaches(covered, total, threshold), "{covered}/{total}");
            assert!(
                !reaches(covered - 1, total, threshold),
                "{covered}-1/{total}"
            );
        }
        // A report of 29 rules of 50 decided, no conditions: 58% met, not 58.5%.
        let report = TestReport {
            cases: Vec::new(),
            coverage: Coverage {
                rules: (0..50)
                    .map(|n| RuleCoverage {
                        rule_id: format!("r{n}"),
                        path: format!("/rules/{n}"),
                        hits: usize::from(n < 29),
                    })
                    .collect(),
                default_hits: 0,
                conditions: Vec::new(),
            },
        };
        assert!(report.meets_threshold(58.0));
        assert!(!report.meets_threshold(58.5));
        assert_eq!(report.coverage.rule_percent(), 58.0);
    }
}
