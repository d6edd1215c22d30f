//! Whole-policy checks after reading: unique rule ids, declared decisions, and the warnings
//! (rules that never match, rules shadowed by an always-matching rule, unused decisions).
//!
//! The warnings come from a small abstract interpretation: every condition is classified
//! as always true, never true, or unknown, using the declared constraints of the signals
//! (bounds, enums, `max_length`, required) and, inside an `all`, the intersection of the
//! constraints its leaves put on each signal. The classification is sound (a condition
//! classified always/never really is), not complete: unknown is always a safe answer.
//!
//! Its cost is bounded for the whole policy ([`ANALYSIS_BUDGET`]): trying every value of an
//! enumerated signal costs the values times the constants compared, and a policy within every
//! limit could otherwise keep a core busy for minutes at every load. Past the budget every
//! condition left is unknown, and one `policy.analysis_incomplete` warning says so.

use std::cell::Cell;
use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, DiagnosticCode as Code};
use crate::model::{
    Cond, CondKind, Constant, Leaf, Op, Operand, PolicyModel, SchemaVersion, SignalDecl, SignalType,
};

/// How many elementary comparisons the warnings may cost, for the whole policy, a string
/// counting one more for each 64 bytes compared ([`weight`]): far more than any hand-written
/// policy needs (the bundled ones use under a thousand), a few gigabytes of memory compared —
/// about a second of work — at most.
pub(crate) const ANALYSIS_BUDGET: u64 = 50_000_000;

/// What the analysis has left of [`ANALYSIS_BUDGET`]; once spent, it stays spent.
#[derive(Debug)]
pub(crate) struct Budget {
    left: Cell<u64>,
    exhausted: Cell<bool>,
}

impl Budget {
    pub(crate) fn new(work: u64) -> Self {
        Self {
            left: Cell::new(work),
            exhausted: Cell::new(false),
        }
    }

    /// Takes `cost` comparisons from what is left, or refuses (and then every later request)
    /// when that is not enough.
    fn spend(&self, cost: usize) -> bool {
        let cost = u64::try_from(cost).unwrap_or(u64::MAX);
        match self.left.get().checked_sub(cost) {
            Some(left) if !self.exhausted.get() => {
                self.left.set(left);
                true
            }
            _ => {
                self.exhausted.set(true);
                false
            }
        }
    }

    fn exhausted(&self) -> bool {
        self.exhausted.get()
    }
}

/// What is known statically about a condition's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tri {
    Always,
    Never,
    Unknown,
}

impl Tri {
    fn not(self) -> Self {
        match self {
            Self::Always => Self::Never,
            Self::Never => Self::Always,
            Self::Unknown => Self::Unknown,
        }
    }
}

/// Runs the whole-policy checks and warnings; returns the model only when there is no error.
pub(crate) fn finish(
    model: Option<PolicyModel>,
    mut diagnostics: Vec<Diagnostic>,
) -> (Option<PolicyModel>, Vec<Diagnostic>) {
    if let Some(model) = &model {
        check_rules(model, &mut diagnostics);
    }
    if diagnostics.iter().any(Diagnostic::is_error) {
        return (None, diagnostics);
    }
    if let Some(model) = &model {
        warn(model, &mut diagnostics);
    }
    (model, diagnostics)
}

fn check_rules(model: &PolicyModel, diagnostics: &mut Vec<Diagnostic>) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let mut cells_left = crate::suggest::POLICY_SUGGESTION_CELLS;
    for rule in &model.rules {
        let id_path = format!("{}/id", rule.path);
        if rule.id == "default" {
            diagnostics.push(Diagnostic::new(
                Code::ReservedRuleId,
                &id_path,
                "rule id \"default\" is reserved for the default outcome",
            ));
        }
        if let Some(first) = seen.get(rule.id.as_str()) {
            diagnostics.push(Diagnostic::new(
                Code::DuplicateRuleId,
                &id_path,
                format!(
                    "rule id {:?} is already used by the rule at {first}",
                    rule.id
                ),
            ));
        } else {
            seen.insert(&rule.id, &rule.path);
        }
        check_decision(
            model,
            &rule.then.decision,
            &rule_decision_path(model, &rule.path),
            diagnostics,
            &mut cells_left,
        );
    }
    let default_path = if model.schema == SchemaVersion::V2 {
        format!("{}/decision", model.default_path)
    } else {
        model.default_path.clone()
    };
    check_decision(
        model,
        &model.default.decision,
        &default_path,
        diagnostics,
        &mut cells_left,
    );
}

fn rule_decision_path(model: &PolicyModel, rule_path: &str) -> String {
    match model.schema {
        SchemaVersion::V2 => format!("{rule_path}/then/decision"),
        SchemaVersion::Legacy1 => "/decision".to_owned(),
    }
}

/// Where a rule's condition is: its `when`, or, in a legacy 1.0.0 document, `/rules` itself.
fn rule_condition_path(model: &PolicyModel, rule_path: &str) -> String {
    match model.schema {
        SchemaVersion::V2 => format!("{rule_path}/when"),
        SchemaVersion::Legacy1 => rule_path.to_owned(),
    }
}

fn check_decision(
    model: &PolicyModel,
    decision: &str,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
    cells_left: &mut usize,
) {
    if !model.decisions.iter().any(|d| d == decision) {
        diagnostics.push(Diagnostic::new(
            Code::UndeclaredDecision,
            path,
            format!(
                "decision {decision:?} is not in \"decisions\" {}",
                crate::suggest::declared_decisions(decision, &model.decisions, cells_left)
            ),
        ));
    }
}

fn warn(model: &PolicyModel, diagnostics: &mut Vec<Diagnostic>) {
    let budget = Budget::new(ANALYSIS_BUDGET);
    let mut produced: Vec<&str> = vec![&model.default.decision];
    let mut always_first: Option<&crate::model::Rule> = None;
    for rule in &model.rules {
        let tri = classify(&rule.when, &model.signals, &budget);
        if tri == Tri::Never {
            diagnostics.push(Diagnostic::new(
                Code::RuleNeverMatches,
                rule_condition_path(model, &rule.path),
                format!(
                    "rule {:?} can never match: its condition is false for every valid signal set",
                    rule.id
                ),
            ));
            continue;
        }
        if let Some(first) = always_first {
            diagnostics.push(Diagnostic::new(
                Code::RuleShadowed,
                &rule.path,
                format!(
                    "rule {:?} is never reached: rule {:?} ({}) always matches first",
                    rule.id, first.id, first.path
                ),
            ));
            continue;
        }
        produced.push(&rule.then.decision);
        if tri == Tri::Always {
            always_first = Some(rule);
        }
    }
    if budget.exhausted() {
        diagnostics.push(Diagnostic::new(
            Code::AnalysisIncomplete,
            "",
            format!(
                "the warnings are incomplete: the policy's conditions need more than {ANALYSIS_BUDGET} \
                 comparisons to analyse, and those left unanalysed get no warning"
            ),
        ));
    }
    for (i, decision) in model.decisions.iter().enumerate() {
        if !produced.contains(&decision.as_str()) {
            let path = match model.schema {
                SchemaVersion::V2 => format!("/decisions/{i}"),
                SchemaVersion::Legacy1 => "/decision".to_owned(),
            };
            diagnostics.push(Diagnostic::new(
                Code::DecisionUnused,
                &path,
                format!("decision {decision:?} is declared but no reachable rule nor the default produces it"),
            ));
        }
    }
}

/// Classifies a condition as always true, never true, or unknown (unknown too once `budget`
/// is spent).
pub(crate) fn classify(cond: &Cond, signals: &[SignalDecl], budget: &Budget) -> Tri {
    match &cond.kind {
        CondKind::Leaf(leaf) => signals
            .get(leaf.slot)
            .map_or(Tri::Unknown, |d| classify_leaf(leaf, d, budget)),
        CondKind::Not(inner) => classify(inner, signals, budget).not(),
        CondKind::Any(items) => {
            let tris: Vec<Tri> = items.iter().map(|c| classify(c, signals, budget)).collect();
            if tris.contains(&Tri::Always) || disjunction_exhausts(items, signals, budget) {
                Tri::Always
            } else if tris.iter().all(|t| *t == Tri::Never) {
                Tri::Never
            } else {
                Tri::Unknown
            }
        }
        CondKind::All(items) => {
            let tris: Vec<Tri> = items.iter().map(|c| classify(c, signals, budget)).collect();
            if tris.contains(&Tri::Never) || conjunction_conflicts(items, signals, budget) {
                Tri::Never
            } else if tris.iter().all(|t| *t == Tri::Always) {
                Tri::Always
            } else {
                Tri::Unknown
            }
        }
    }
}

fn same(a: &Constant, b: &Constant) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// A boolean's two values.
static BOOLEANS: [Constant; 2] = [Constant::Bool(false), Constant::Bool(true)];

/// The values a signal may take, when its declaration enumerates them (borrowed, not copied).
fn enumerated(decl: &SignalDecl) -> Option<&[Constant]> {
    match decl.ty {
        SignalType::Boolean => Some(&BOOLEANS),
        _ => decl.enum_values.as_deref(),
    }
}

/// Whether a numeric constant lies within the declared bounds.
fn within_bounds(decl: &SignalDecl, c: &Constant) -> bool {
    c.as_f64().is_none_or(|f| {
        decl.minimum.is_none_or(|lo| f >= lo) && decl.maximum.is_none_or(|hi| f <= hi)
    })
}

/// Whether a signal value `v` can occur (bounds, enum, length).
fn possible(decl: &SignalDecl, c: &Constant) -> bool {
    let in_enum = decl
        .enum_values
        .as_ref()
        .is_none_or(|e| e.iter().any(|x| same(x, c)));
    in_enum && possible_value(decl, c)
}

/// [`possible`] for a value of the declaration's own enum (in it by construction): its length
/// and bounds only.
fn possible_value(decl: &SignalDecl, c: &Constant) -> bool {
    let short = match c {
        Constant::Str(s) => decl.max_length.is_none_or(|m| s.chars().count() <= m),
        _ => true,
    };
    short && within_bounds(decl, c)
}

/// What comparing with `c` costs, in the budget's units: one, and one more for each 64 bytes
/// of a string (a comparison reads up to the shorter of the two strings; counting a string's
/// characters reads it whole).
fn weight(c: &Constant) -> usize {
    match c {
        Constant::Str(s) => 1 + s.len() / 64,
        _ => 1,
    }
}

/// What deciding one value-reading leaf for one value costs: its constants compared.
fn leaf_cost(leaf: &Leaf) -> usize {
    match &leaf.operand {
        Operand::One(c) => weight(c),
        Operand::List(list) => list.iter().map(weight).fold(1, usize::saturating_add),
        _ => 1,
    }
}

/// What [`possible`] costs for a constant of `weight`: the enum scanned, the length counted.
fn possible_cost(decl: &SignalDecl, weight: usize) -> usize {
    decl.enum_values
        .as_ref()
        .map_or(1, |e| e.len().saturating_add(1))
        .saturating_mul(weight)
}

/// What trying every enumerated value of `decl` costs before the leaves: each value's length
/// and bounds ([`possible_value`]). With the number of values: `None` when it enumerates none.
fn values_cost(decl: &SignalDecl) -> Option<(usize, usize)> {
    let values = enumerated(decl)?;
    Some((
        values.len(),
        values.iter().map(weight).fold(0, usize::saturating_add),
    ))
}

fn classify_leaf(leaf: &Leaf, decl: &SignalDecl, budget: &Budget) -> Tri {
    let one = match &leaf.operand {
        Operand::One(c) => Some(c),
        _ => None,
    };
    let list: &[Constant] = match &leaf.operand {
        Operand::List(l) => l,
        _ => &[],
    };
    // The constants compared below: the operand's against the declared enum.
    if !budget.spend(possible_cost(decl, leaf_cost(leaf))) {
        return Tri::Unknown;
    }
    // With an enumerated domain, decide by trying every value.
    if let Some((count, values_weight)) = values_cost(decl)
        && let Some(values) = enumerated(decl)
        && leaf.op.reads_value()
    {
        if !budget.spend(values_weight.saturating_add(count.saturating_mul(leaf_cost(leaf)))) {
            return Tri::Unknown;
        }
        let results: Vec<bool> = values
            .iter()
            .filter(|v| possible_value(decl, v))
            .map(|v| leaf_holds(leaf.op, &leaf.operand, v))
            .collect();
        return if results.iter().all(|r| *r) {
            Tri::Always
        } else if !results.contains(&true) {
            Tri::Never
        } else {
            Tri::Unknown
        };
    }
    let (lo, hi) = (
        decl.minimum.unwrap_or(f64::NEG_INFINITY),
        decl.maximum.unwrap_or(f64::INFINITY),
    );
    let num = one.and_then(Constant::as_f64);
    match (leaf.op, num) {
        (Op::Present, _) if decl.required => Tri::Always,
        (Op::Absent, _) if decl.required => Tri::Never,
        (Op::Eq, _) if one.is_some_and(|c| !possible(decl, c)) => Tri::Never,
        (Op::Ne, _) if one.is_some_and(|c| !possible(decl, c)) => Tri::Always,
        (Op::In, _) if list.iter().all(|c| !possible(decl, c)) => Tri::Never,
        (Op::NotIn, _) if list.iter().all(|c| !possible(decl, c)) => Tri::Always,
        (Op::Lt, Some(c)) if hi < c => Tri::Always,
        (Op::Lt, Some(c)) if lo >= c => Tri::Never,
        (Op::Le, Some(c)) if hi <= c => Tri::Always,
        (Op::Le, Some(c)) if lo > c => Tri::Never,
        (Op::Gt, Some(c)) if lo > c => Tri::Always,
        (Op::Gt, Some(c)) if hi <= c => Tri::Never,
        (Op::Ge, Some(c)) if lo >= c => Tri::Always,
        (Op::Ge, Some(c)) if hi < c => Tri::Never,
        (Op::StartsWith | Op::EndsWith, _) => match one {
            Some(Constant::Str(s)) if s.is_empty() => Tri::Always,
            Some(Constant::Str(s)) if decl.max_length.is_some_and(|m| s.chars().count() > m) => {
                Tri::Never
            }
            _ => Tri::Unknown,
        },
        _ => Tri::Unknown,
    }
}

/// The value of a value-reading leaf for a signal value `v` (the evaluator's semantics).
pub(crate) fn leaf_holds(op: Op, operand: &Operand, v: &Constant) -> bool {
    let one = match operand {
        Operand::One(c) => Some(c),
        _ => None,
    };
    let list: &[Constant] = match operand {
        Operand::List(l) => l,
        _ => &[],
    };
    let cmp = |f: fn(f64, f64) -> bool| match (v.as_f64(), one.and_then(Constant::as_f64)) {
        (Some(a), Some(b)) => f(a, b),
        _ => false,
    };
    match op {
        Op::Eq => one.is_some_and(|c| same(v, c)),
        Op::Ne => one.is_some_and(|c| !same(v, c)),
        Op::In => list.iter().any(|c| same(v, c)),
        Op::NotIn => !list.iter().any(|c| same(v, c)),
        Op::Lt => cmp(|a, b| a < b),
        Op::Le => cmp(|a, b| a <= b),
        Op::Gt => cmp(|a, b| a > b),
        Op::Ge => cmp(|a, b| a >= b),
        Op::StartsWith => match (v, one) {
            (Constant::Str(s), Some(Constant::Str(p))) => s.starts_with(p.as_str()),
            _ => false,
        },
        Op::EndsWith => match (v, one) {
            (Constant::Str(s), Some(Constant::Str(p))) => s.ends_with(p.as_str()),
            _ => false,
        },
        Op::Present => true,
        Op::Absent => false,
    }
}

/// Whether the direct leaves of an `all` contradict each other on some signal.
fn conjunction_conflicts(items: &[Cond], signals: &[SignalDecl], budget: &Budget) -> bool {
    let leaves: Vec<&Leaf> = items
        .iter()
        .filter_map(|c| match &c.kind {
            CondKind::Leaf(l) => Some(l),
            _ => None,
        })
        .collect();
    let mut slots: Vec<usize> = leaves.iter().map(|l| l.slot).collect();
    slots.sort_unstable();
    slots.dedup();
    slots.into_iter().any(|slot| {
        // Finding the slot's leaves is a pass over all of them.
        if !budget.spend(leaves.len()) {
            return false;
        }
        let on_slot: Vec<&Leaf> = leaves.iter().copied().filter(|l| l.slot == slot).collect();
        signals
            .get(slot)
            .is_some_and(|decl| slot_conflicts(&on_slot, decl, budget))
    })
}

fn slot_conflicts(leaves: &[&Leaf], decl: &SignalDecl, budget: &Budget) -> bool {
    // At most: the first equality constant's possibility checked and every leaf decided for it,
    // or every enumerated value's length and bounds checked and every leaf decided for it.
    let leaves_cost = leaves
        .iter()
        .map(|l| leaf_cost(l))
        .fold(0, usize::saturating_add);
    let first_cost = leaves
        .iter()
        .map(|l| possible_cost(decl, leaf_cost(l)))
        .max()
        .unwrap_or(0)
        .saturating_add(leaves_cost);
    let values_cost = values_cost(decl).map_or(0, |(count, weight)| {
        weight.saturating_add(count.saturating_mul(leaves_cost))
    });
    if !budget.spend(first_cost.saturating_add(values_cost)) {
        return false;
    }
    let present = leaves.iter().any(|l| l.op == Op::Present);
    let absent = leaves.iter().any(|l| l.op == Op::Absent);
    let reads = leaves.iter().any(|l| l.op.reads_value());
    if absent && (present || reads) {
        return true;
    }
    // Candidate values: every equality constant must satisfy every other leaf.
    let candidates: Vec<&Constant> = leaves
        .iter()
        .filter_map(|l| match (&l.op, &l.operand) {
            (Op::Eq, Operand::One(c)) => Some(c),
            _ => None,
        })
        .collect();
    if let Some(first) = candidates.first() {
        let all_hold = leaves
            .iter()
            .filter(|l| l.op.reads_value())
            .all(|l| leaf_holds(l.op, &l.operand, first));
        return !all_hold || !possible(decl, first);
    }
    if let Some(values) = enumerated(decl) {
        return !values.iter().any(|v| {
            possible_value(decl, v)
                && leaves
                    .iter()
                    .filter(|l| l.op.reads_value())
                    .all(|l| leaf_holds(l.op, &l.operand, v))
        });
    }
    if decl.ty.is_numeric() {
        return numeric_interval_empty(leaves, decl);
    }
    false
}

/// Whether the interval the declared bounds and the comparisons allow is empty.
fn numeric_interval_empty(leaves: &[&Leaf], decl: &SignalDecl) -> bool {
    let (mut lo, mut lo_open) = (decl.minimum.unwrap_or(f64::NEG_INFINITY), false);
    let (mut hi, mut hi_open) = (decl.maximum.unwrap_or(f64::INFINITY), false);
    for leaf in leaves {
        let Operand::One(c) = &leaf.operand else {
            continue;
        };
        let Some(c) = c.as_f64() else { continue };
        match leaf.op {
            Op::Gt if c >= lo => (lo, lo_open) = (c, true),
            Op::Ge if c > lo => (lo, lo_open) = (c, false),
            Op::Lt if c <= hi => (hi, hi_open) = (c, true),
            Op::Le if c < hi => (hi, hi_open) = (c, false),
            _ => {}
        }
    }
    if decl.ty == SignalType::Integer {
        // Smallest and largest whole numbers inside the bounds.
        let first = if lo_open && lo.fract() == 0.0 {
            lo + 1.0
        } else {
            lo.ceil()
        };
        let last = if hi_open && hi.fract() == 0.0 {
            hi - 1.0
        } else {
            hi.floor()
        };
        return first > last;
    }
    lo > hi || (lo == hi && (lo_open || hi_open))
}

/// Whether the direct leaves of an `any` on one enumerable signal accept every value it can take.
fn disjunction_exhausts(items: &[Cond], signals: &[SignalDecl], budget: &Budget) -> bool {
    let leaves: Vec<&Leaf> = items
        .iter()
        .filter_map(|c| match &c.kind {
            CondKind::Leaf(l) if l.op.reads_value() => Some(l),
            _ => None,
        })
        .collect();
    // Each signal once, however many leaves read it.
    let mut slots: Vec<usize> = leaves.iter().map(|l| l.slot).collect();
    slots.sort_unstable();
    slots.dedup();
    slots.into_iter().any(|slot| {
        let Some(decl) = signals.get(slot) else {
            return false;
        };
        let (Some((count, values_weight)), Some(values)) = (values_cost(decl), enumerated(decl))
        else {
            return false;
        };
        // Finding the slot's leaves is a pass over all of them.
        if !budget.spend(leaves.len()) {
            return false;
        }
        let on_slot: Vec<&Leaf> = leaves.iter().copied().filter(|l| l.slot == slot).collect();
        let leaves_cost = on_slot
            .iter()
            .map(|l| leaf_cost(l))
            .fold(0, usize::saturating_add);
        if !budget.spend(values_weight.saturating_add(count.saturating_mul(leaves_cost))) {
            return false;
        }
        values
            .iter()
            .filter(|v| possible_value(decl, v))
            .all(|v| on_slot.iter().any(|l| leaf_holds(l.op, &l.operand, v)))
    })
}
#[cfg(test)]
mod tests {
    use super::{ANALYSIS_BUDGET, Budget, Tri, classify};

    #[test]
    fn the_bundled_policies_use_a_tiny_part_of_the_budget() {
        // What docs/policy-language.md says: under a thousand comparisons each.
        for policy in ["claims-approval/1.0.0", "patient-triage/1.0.0"] {
            let path = format!(
                "{}/../../policies/{policy}/policy.json",
                env!("CARGO_MANIFEST_DIR")
            );
            let bytes = std::fs::read(&path).unwrap();
            let (model, diagnostics) = crate::document::read_policy(&bytes);
            let model = model.unwrap_or_else(|| panic!("{path}: {diagnostics:?}"));
            let budget = Budget::new(ANALYSIS_BUDGET);
            for rule in &model.rules {
                classify(&rule.when, &model.signals, &budget);
            }
            let spent = ANALYSIS_BUDGET - budget.left.get();
            assert!(spent > 0 && spent < 1_000, "{policy}: {spent}");
        }
    }

    #[test]
    fn a_spent_budget_classifies_nothing() {
        // `gt 10` and `lt 5` in one `all`: never, with budget left; unknown without.
        let policy = br#"{"schema_version": "2.0.0", "policy_id": "p", "policy_version": "1.0.0",
            "decisions": ["yes", "no"],
            "signals": {"x": {"type": "integer", "required": true}},
            "rules": [{"id": "r", "when": {"all": [{"signal": "x", "gt": 10}, {"signal": "x", "lt": 5}]},
                       "then": {"decision": "yes"}}],
            "default": {"decision": "no"}}"#;
        let (model, _) = crate::document::read_policy(policy);
        let model = model.unwrap();
        let when = &model.rules[0].when;
        assert_eq!(
            classify(when, &model.signals, &Budget::new(1_000)),
            Tri::Never
        );
        let spent = Budget::new(3);
        assert_eq!(classify(when, &model.signals, &spent), Tri::Unknown);
        assert!(spent.exhausted());
        // Once spent, it stays spent: a cheaper request is refused too.
        assert!(!spent.spend(0));
    }
}
