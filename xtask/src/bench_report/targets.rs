//! The targets as data: every ratio of the report, which rows it divides, and the bar it is judged against (issue 7), computed from one run's results.

use std::collections::BTreeMap;

use super::results::BenchResult;

/// How a ratio compares with its bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Bar {
    AtMost(f64),
    AtLeast(f64),
}

/// Whether the ratio compares times (lower is better) or rates (elements per second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Measure {
    Time,
    Rate,
    /// The numerator is time added to the denominator's work: (denominator + numerator) ÷
    /// denominator.
    AddedTime,
}

/// One ratio of the report: numerator and denominator candidates (ids, the first present is
/// used; with `fastest_denominator` the fastest present denominator is used instead).
pub(super) struct RatioSpec {
    pub(super) label: &'static str,
    pub(super) numerator: &'static [&'static str],
    pub(super) denominator: &'static [&'static str],
    fastest_denominator: bool,
    pub(super) measure: Measure,
    pub(super) bar: Option<Bar>,
    pub(super) target: &'static str,
}

/// A ratio of two times shown for comparison, with no bar.
const fn compared_times(
    label: &'static str,
    numerator: &'static [&'static str],
    denominator: &'static [&'static str],
) -> RatioSpec {
    RatioSpec {
        label,
        numerator,
        denominator,
        fastest_denominator: false,
        measure: Measure::Time,
        bar: None,
        target: "for comparison",
    }
}

const RATIOS: &[RatioSpec] = &[
    RatioSpec {
        label: "Decision from typed signals: ours ÷ Cedar",
        numerator: &["decision/typed/parmana"],
        denominator: &["decision/typed/cedar"],
        fastest_denominator: false,
        measure: Measure::Time,
        bar: Some(Bar::AtMost(0.1)),
        target: "ours at least 10× faster",
    },
    RatioSpec {
        label: "Decision from typed signals: ours ÷ regorus (faster of interpreter and VM)",
        numerator: &["decision/typed/parmana"],
        denominator: &["decision/typed/regorus", "decision/typed/regorus-vm"],
        fastest_denominator: true,
        measure: Measure::Time,
        bar: Some(Bar::AtMost(0.1)),
        target: "ours at least 10× faster",
    },
    RatioSpec {
        label: "Decision from JSON text: ours ÷ Cedar",
        numerator: &["decision/json/parmana"],
        denominator: &["decision/json/cedar"],
        fastest_denominator: false,
        measure: Measure::Time,
        bar: Some(Bar::AtMost(0.1)),
        target: "ours at least 10× faster",
    },
    RatioSpec {
        label: "Decision from JSON text: ours ÷ regorus (faster of interpreter and VM)",
        numerator: &["decision/json/parmana"],
        denominator: &["decision/json/regorus", "decision/json/regorus-vm"],
        fastest_denominator: true,
        measure: Measure::Time,
        bar: Some(Bar::AtMost(0.1)),
        target: "ours at least 10× faster",
    },
    RatioSpec {
        label: "Scaling, ours: 1,000 rules ÷ 10 rules (one relevant)",
        numerator: &["scaling/1000/parmana"],
        denominator: &["scaling/10/parmana"],
        fastest_denominator: false,
        measure: Measure::Time,
        bar: Some(Bar::AtMost(3.0)),
        target: "at most 3×",
    },
    compared_times(
        "Scaling, Cedar: 1,000 rules ÷ 10 rules",
        &["scaling/1000/cedar"],
        &["scaling/10/cedar"],
    ),
    compared_times(
        "Scaling, regorus: 1,000 rules ÷ 10 rules",
        &["scaling/1000/regorus"],
        &["scaling/10/regorus"],
    ),
    RatioSpec {
        label: "End-to-end execute (JSON in, signed attestation out, memory store) ÷ Ed25519 sign",
        numerator: &["runtime/execute_memory", "execute/memory"],
        denominator: &["primitives/ed25519_sign", "ed25519/sign"],
        fastest_denominator: false,
        measure: Measure::Time,
        bar: Some(Bar::AtMost(1.5)),
        target: "at most 1.5×",
    },
    RatioSpec {
        label: "verify_attestation ÷ Ed25519 verify",
        numerator: &["runtime/verify", "verify/attestation"],
        denominator: &["primitives/ed25519_verify", "ed25519/verify"],
        fastest_denominator: false,
        measure: Measure::Time,
        bar: Some(Bar::AtMost(1.3)),
        target: "at most 1.3×",
    },
    RatioSpec {
        label: "verify --proof (the checkpoint's signature amortised; 64 consecutive entries) ÷ plain verify: the proof's time taken inside the same iterations as the verify it follows",
        numerator: &["runtime/verify_proof_added"],
        denominator: &["runtime/verify"],
        fastest_denominator: false,
        measure: Measure::AddedTime,
        bar: Some(Bar::AtMost(1.1)),
        target: "at most 1.1×",
    },
    compared_times(
        "verify --proof (64 consecutive entries), the two rows as measured one after the other ÷ plain verify",
        &["runtime/verify_proof"],
        &["runtime/verify"],
    ),
    compared_times(
        "verify --proof, 64 entries spread over the log (they share only the nodes near the root) ÷ plain verify",
        &["runtime/verify_proof_spread"],
        &["runtime/verify"],
    ),
    compared_times(
        "verify --proof, the checkpoint's signature checked every time ÷ plain verify",
        &["runtime/verify_proof_cold"],
        &["runtime/verify"],
    ),
    RatioSpec {
        label: "Batch verify (64 attestations): attestations/s ÷ verify_attestation",
        numerator: &["runtime/verify_batch"],
        denominator: &["runtime/verify", "verify/attestation"],
        fastest_denominator: false,
        measure: Measure::Rate,
        bar: Some(Bar::AtLeast(1.5)),
        target: "at least 1.5×",
    },
    RatioSpec {
        label: "Durable SQLite execute: executions/s at 8 callers ÷ at 1 caller",
        numerator: &["durable/sqlite/8", "execute/sqlite/8_callers"],
        denominator: &["durable/sqlite/1", "execute/sqlite/1_callers"],
        fastest_denominator: false,
        measure: Measure::Rate,
        bar: Some(Bar::AtLeast(3.0)),
        target: "at least 3×",
    },
    RatioSpec {
        label: "`execute --batch` on durable SQLite: executions/s at `--jobs 8` ÷ `--jobs 1`",
        numerator: &["batch/sqlite/jobs_8"],
        denominator: &["batch/sqlite/jobs_1"],
        fastest_denominator: false,
        measure: Measure::Rate,
        bar: Some(Bar::AtLeast(3.0)),
        target: "at least 3×",
    },
    RatioSpec {
        label: "SQLite replay store alone (claim + complete): claims/s at 8 callers ÷ at 1 caller",
        numerator: &["replay/sqlite/claim_and_complete/8_callers"],
        denominator: &["replay/sqlite/claim_and_complete/1_callers"],
        fastest_denominator: false,
        measure: Measure::Rate,
        bar: None,
        target: "for comparison",
    },
    RatioSpec {
        label: "Durable PostgreSQL execute: executions/s at 8 callers ÷ at 1 caller",
        numerator: &["durable/postgres/8", "execute/postgres/8_callers"],
        denominator: &["durable/postgres/1", "execute/postgres/1_callers"],
        fastest_denominator: false,
        measure: Measure::Rate,
        bar: Some(Bar::AtLeast(3.0)),
        target: "at least 3× (issue 15; needs a server)",
    },
    RatioSpec {
        label: "Durable PostgreSQL execute at 8 callers ÷ bare single-row `INSERT … ON CONFLICT DO NOTHING` at 8 connections (same server, same run)",
        numerator: &["durable/postgres/8", "execute/postgres/8_callers"],
        denominator: &["postgres/bare_insert/8_connections"],
        fastest_denominator: false,
        measure: Measure::Rate,
        bar: Some(Bar::AtLeast(0.5)),
        target: "at least 50% (issue 15; needs a server)",
    },
];

/// One computed ratio.
pub(super) struct Ratio<'a> {
    pub(super) spec: &'a RatioSpec,
    pub(super) value: Option<(f64, &'a BenchResult, &'a BenchResult)>,
}

impl Ratio<'_> {
    pub(super) fn status(&self) -> &'static str {
        match (self.value, self.spec.bar) {
            (None, _) => "not measured",
            (Some(_), None) => "—",
            (Some((value, _, _)), Some(Bar::AtMost(limit))) if value <= limit => "**met**",
            (Some((value, _, _)), Some(Bar::AtLeast(limit))) if value >= limit => "**met**",
            (Some(_), Some(_)) => "**not met**",
        }
    }
}

pub(super) fn compute_ratios(results: &[BenchResult]) -> Vec<Ratio<'_>> {
    let by_id: BTreeMap<&str, &BenchResult> = results.iter().map(|r| (r.id.as_str(), r)).collect();
    RATIOS
        .iter()
        .map(|spec| {
            let numerator = spec.numerator.iter().find_map(|id| by_id.get(id).copied());
            let present = spec
                .denominator
                .iter()
                .filter_map(|id| by_id.get(id).copied());
            let denominator = if spec.fastest_denominator {
                present.min_by(|a, b| a.median_ns.total_cmp(&b.median_ns))
            } else {
                present.into_iter().next()
            };
            let value = match (numerator, denominator) {
                (Some(n), Some(d)) => {
                    let value = match spec.measure {
                        Measure::Time => n.median_ns / d.median_ns,
                        Measure::AddedTime => (d.median_ns + n.median_ns) / d.median_ns,
                        Measure::Rate => n.rate_per_second() / d.rate_per_second(),
                    };
                    value.is_finite().then_some((value, n, d))
                }
                _ => None,
            };
            Ratio { spec, value }
        })
        .collect()
}
