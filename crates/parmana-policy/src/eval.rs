//! Evaluation of a compiled policy over validated signals: first match wins, total, allocation-free; and `explain`.
//!
//! One generic evaluator serves both paths: with [`NoTrace`] it compiles to plain
//! comparisons; with [`Recorder`] it records every condition it evaluates. The
//! decision cannot differ between the two because the code is the same.
//!
//! Each leaf's test was typed at compile time by its signal's declaration, and validation
//! fills each slot with a value of that type, so a test meets a value of its own type. The
//! states that cannot arise on validated signals — a value test on an absent slot (the guard
//! check forbids it), a slot of another type, an index out of range — are not answered with
//! a made-up `false`: the evaluator stops with a [`Fault`]. Tests show that no fault arises
//! (`evaluation_never_faults` over every policy and case in the repository, and the property
//! tests through the public API).

use std::fmt;

use crate::compile::{CompiledPolicy, Cond, KeyKind, MAX_INDEXED_SLOTS, NO_SYMBOL, Node, Test};
use crate::signals::{SignalValue, Slot, ValidatedSignals};

/// The rule id reported when no rule matched and the default outcome applies.
pub const DEFAULT_RULE_ID: &str = "default";

/// The result of evaluating a policy: `{decision, rule_id, reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Decision<'p> {
    /// The decision, one of the policy's `decisions`.
    pub decision: &'p str,
    /// The id of the first matching rule, or [`DEFAULT_RULE_ID`].
    pub rule_id: &'p str,
    /// The outcome's `reason`, when the policy gives one (absent from the JSON otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'p str>,
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (rule {:?}", self.decision, self.rule_id)?;
        if let Some(reason) = self.reason {
            write!(f, ": {reason}")?;
        }
        f.write_str(")")
    }
}

/// One evaluated condition in an [`Explanation`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConditionTrace<'p> {
    /// JSON pointer of the condition in the policy document.
    pub path: &'p str,
    /// Nesting depth below the rule's `when` (0 for the root condition).
    pub depth: u32,
    /// The condition, for example `fraud_score gt 80`, `all`, `not`.
    pub condition: &'p str,
    /// The signal a leaf reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<&'p str>,
    /// The signal's value as seen by a leaf; `None` when it is absent (or for `all`/`any`/`not`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<SignalValue>,
    /// What the condition evaluated to.
    pub result: bool,
    #[serde(skip)]
    pub(crate) node: u32,
}

/// One rule tried in an [`Explanation`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleTrace<'p> {
    /// The rule's id.
    pub rule_id: &'p str,
    /// JSON pointer of the rule.
    pub path: &'p str,
    /// Whether its condition held (only the last rule tried can have matched).
    pub matched: bool,
    /// Every condition evaluated, in evaluation order (parents before children).
    pub conditions: Vec<ConditionTrace<'p>>,
}

/// A decision with the trace of how it was reached: every rule tried, in order,
/// up to the first that matched, with every condition evaluated.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Explanation<'p> {
    /// The decision, identical to [`ValidatedSignals::evaluate`].
    pub decision: Decision<'p>,
    /// The rules tried.
    pub rules: Vec<RuleTrace<'p>>,
}

impl fmt::Display for Explanation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "decision: {}", self.decision)?;
        for rule in &self.rules {
            writeln!(
                f,
                "rule {:?} ({}): {}",
                rule.rule_id,
                rule.path,
                if rule.matched { "matched" } else { "no match" }
            )?;
            for c in &rule.conditions {
                let indent = "  ".repeat(c.depth as usize + 1);
                let mark = if c.result { "true " } else { "false" };
                write!(f, "{indent}[{mark}] {}", c.condition)?;
                if let Some(signal) = c.signal {
                    let signal = crate::parse::shown_signal_name(signal);
                    match &c.value {
                        Some(v) => write!(f, "  ({signal} = {v})")?,
                        None => write!(f, "  ({signal} absent)")?,
                    }
                }
                writeln!(f)?;
            }
        }
        if self.decision.rule_id == DEFAULT_RULE_ID {
            writeln!(f, "no rule matched: default outcome")?;
        }
        Ok(())
    }
}

/// Receives the conditions the evaluator visits.
pub(crate) trait Tracer {
    /// A node is about to be evaluated; returns a token for [`Tracer::leave`].
    fn enter(&mut self, node: &Node) -> usize;
    /// The node evaluated to `result`, having read `seen` (leaves only).
    fn leave(&mut self, token: usize, result: bool, seen: Option<&Slot>);
}

/// The tracer of plain evaluation: does nothing.
pub(crate) struct NoTrace;

impl Tracer for NoTrace {
    #[inline(always)]
    fn enter(&mut self, _node: &Node) -> usize {
        0
    }
    #[inline(always)]
    fn leave(&mut self, _token: usize, _result: bool, _seen: Option<&Slot>) {}
}

/// The tracer of coverage: hands each condition's node id and outcome to `seen`, and keeps
/// nothing (no value read: a policy test's coverage costs no memory per condition evaluated).
pub(crate) struct Covering<F: FnMut(u32, bool)> {
    seen: F,
}

impl<F: FnMut(u32, bool)> Tracer for Covering<F> {
    fn enter(&mut self, node: &Node) -> usize {
        node.id as usize
    }
    fn leave(&mut self, token: usize, result: bool, _seen: Option<&Slot>) {
        if let Ok(id) = u32::try_from(token) {
            (self.seen)(id, result);
        }
    }
}

/// The tracer of `explain`: records every condition.
pub(crate) struct Recorder<'p> {
    policy: &'p CompiledPolicy,
    pub(crate) entries: Vec<ConditionTrace<'p>>,
}

impl<'p> Tracer for Recorder<'p> {
    fn enter(&mut self, node: &Node) -> usize {
        let info = self.policy.node_info.get(node.id as usize);
        let signal = match &node.cond {
            Cond::Leaf { slot, .. } => self
                .policy
                .signals
                .get(*slot as usize)
                .map(|d| d.name.as_str()),
            _ => None,
        };
        self.entries.push(ConditionTrace {
            path: info.map_or("", |i| i.path.as_str()),
            depth: info.map_or(0, |i| i.depth),
            condition: info.map_or("", |i| i.label.as_str()),
            signal,
            value: None,
            result: false,
            node: node.id,
        });
        self.entries.len() - 1
    }

    fn leave(&mut self, token: usize, result: bool, seen: Option<&Slot>) {
        if let Some(entry) = self.entries.get_mut(token) {
            entry.result = result;
            entry.value = seen.and_then(SignalValue::from_slot);
        }
    }
}

/// A state the evaluator cannot meet on validated signals (see the module documentation): a
/// defect of this crate. Evaluation stops and no decision is made — never a made-up outcome.
/// Its code is `policy.evaluation_fault`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Fault {
    /// The leaf with this node id read a slot that is absent, of another type, or not there.
    #[error("internal evaluation fault: condition node {0} met a value validation cannot produce")]
    Leaf(u32),
    /// The rule index is inconsistent with the policy or the signals.
    #[error("internal evaluation fault: the rule index is inconsistent with the policy")]
    Index,
}

impl Fault {
    /// The stable code: `policy.evaluation_fault`.
    pub fn code(&self) -> &'static str {
        "policy.evaluation_fault"
    }
}

/// One leaf test on its slot; `None` when the slot does not hold what the test reads.
#[inline]
fn test_slot(test: &Test, value: &Slot) -> Option<bool> {
    match (test, value) {
        (Test::Present, v) => Some(!matches!(v, Slot::Absent)),
        (Test::Absent, v) => Some(matches!(v, Slot::Absent)),
        (Test::Bool(t), Slot::Bool(v)) => Some(t.holds(*v)),
        (Test::Num(t), Slot::Num(v)) => Some(t.holds(*v)),
        (Test::Int(t), Slot::Int(v)) => Some(t.holds(*v)),
        (Test::Str(t), Slot::Str { symbol, text }) => Some(t.holds(*symbol, text)),
        (Test::Bool(_) | Test::Num(_) | Test::Int(_) | Test::Str(_), _) => None,
    }
}

impl CompiledPolicy {
    /// Evaluates one node; `values` are the slots of validated signals.
    pub(crate) fn eval_node<T: Tracer>(
        &self,
        node: &Node,
        values: &[Slot],
        tracer: &mut T,
    ) -> Result<bool, Fault> {
        let token = tracer.enter(node);
        let (result, seen) = match &node.cond {
            Cond::All(items) => {
                let mut all = true;
                for item in items {
                    if !self.eval_node(item, values, tracer)? {
                        all = false;
                        break;
                    }
                }
                (all, None)
            }
            Cond::Any(items) => {
                let mut any = false;
                for item in items {
                    if self.eval_node(item, values, tracer)? {
                        any = true;
                        break;
                    }
                }
                (any, None)
            }
            Cond::Not(inner) => (!self.eval_node(inner, values, tracer)?, None),
            Cond::Leaf { slot, test } => {
                let fault = Fault::Leaf(node.id);
                let value = values.get(*slot as usize).ok_or(fault)?;
                (test_slot(test, value).ok_or(fault)?, Some(value))
            }
        };
        tracer.leave(token, result, seen);
        Ok(result)
    }

    /// Whether rule `rule` matches.
    #[inline]
    fn rule_matches(&self, rule: u32, values: &[Slot]) -> Result<bool, Fault> {
        let rule = self.rules.get(rule as usize).ok_or(Fault::Index)?;
        self.eval_node(&rule.root, values, &mut NoTrace)
    }

    /// Position of the first rule that matches, using the rule index.
    pub(crate) fn first_match(&self, values: &[Slot]) -> Result<Option<usize>, Fault> {
        let index = &self.index;
        if index.slots.is_empty() {
            for (i, rule) in self.rules.iter().enumerate() {
                if self.eval_node(&rule.root, values, &mut NoTrace)? {
                    return Ok(Some(i));
                }
            }
            return Ok(None);
        }
        let mut lists: [&[u32]; MAX_INDEXED_SLOTS + 1] = [&[]; MAX_INDEXED_SLOTS + 1];
        lists[0] = &index.unindexed;
        let mut count = 1;
        for indexed in &index.slots {
            let key = match (indexed.kind, values.get(indexed.slot as usize)) {
                (KeyKind::Bool, Some(Slot::Bool(b))) => i64::from(*b),
                (KeyKind::Int, Some(Slot::Int(i))) => *i,
                (KeyKind::Str, Some(Slot::Str { symbol, .. })) if *symbol != NO_SYMBOL => {
                    i64::from(*symbol)
                }
                // No bucket: an optional signal not given, or a string no constant equals.
                (_, Some(Slot::Absent)) | (KeyKind::Str, Some(Slot::Str { .. })) => continue,
                _ => return Err(Fault::Index),
            };
            if let Ok(found) = indexed.buckets.binary_search_by_key(&key, |(k, _, _)| *k) {
                let (_, start, len) = indexed.buckets.get(found).ok_or(Fault::Index)?;
                let start = *start as usize;
                let bucket = index
                    .bucket_rules
                    .get(start..start + *len as usize)
                    .ok_or(Fault::Index)?;
                *lists.get_mut(count).ok_or(Fault::Index)? = bucket;
                count += 1;
            }
        }
        let lists = lists.get_mut(..count).ok_or(Fault::Index)?;
        loop {
            // The smallest rule position at the head of any list, taken off that list.
            let mut best: Option<(u32, &[u32], &mut &[u32])> = None;
            for list in lists.iter_mut() {
                let current: &[u32] = list;
                if let Some((&head, rest)) = current.split_first()
                    && best.as_ref().is_none_or(|(b, _, _)| head < *b)
                {
                    best = Some((head, rest, list));
                }
            }
            let Some((rule, rest, list)) = best else {
                return Ok(None);
            };
            *list = rest;
            if self.rule_matches(rule, values)? {
                return Ok(Some(rule as usize));
            }
        }
    }

    fn decision_of(&self, rule: Option<usize>) -> Decision<'_> {
        match rule.and_then(|r| self.rules.get(r)) {
            Some(r) => Decision {
                decision: &r.decision,
                rule_id: &r.id,
                reason: r.reason.as_deref(),
            },
            None => Decision {
                decision: &self.default_decision,
                rule_id: DEFAULT_RULE_ID,
                reason: self.default_reason.as_deref(),
            },
        }
    }
}

impl<'p> ValidatedSignals<'p> {
    /// Evaluates the policy: the first rule whose condition holds decides, else the default.
    ///
    /// Deterministic; allocates nothing. A [`Fault`] — a state validated signals cannot
    /// produce, tested unreachable — refuses instead of deciding (fail closed).
    pub fn evaluate(&self) -> Result<Decision<'p>, Fault> {
        Ok(self
            .policy
            .decision_of(self.policy.first_match(&self.slots)?))
    }

    /// Evaluates the policy as [`explain`](Self::explain) walks it — every rule tried, in order,
    /// up to the first match — handing each condition evaluated (its node id, as
    /// [`ConditionTrace::node`]) and its outcome to `seen`, and recording nothing: what a policy
    /// test's coverage needs, without the trace's copies of the values read.
    pub(crate) fn cover(&self, seen: impl FnMut(u32, bool)) -> Result<Decision<'p>, Fault> {
        let policy = self.policy;
        let mut covering = Covering { seen };
        let mut matched = None;
        for (i, rule) in policy.rules.iter().enumerate() {
            if policy.eval_node(&rule.root, &self.slots, &mut covering)? {
                matched = Some(i);
                break;
            }
        }
        Ok(policy.decision_of(matched))
    }

    /// Evaluates the policy and records every rule tried (in order, up to the first
    /// match) with every condition evaluated and the values it read.
    pub fn explain(&self) -> Result<Explanation<'p>, Fault> {
        let policy = self.policy;
        let mut rules = Vec::new();
        let mut matched = None;
        for (i, rule) in policy.rules.iter().enumerate() {
            let mut recorder = Recorder {
                policy,
                entries: Vec::new(),
            };
            let result = policy.eval_node(&rule.root, &self.slots, &mut recorder)?;
            rules.push(RuleTrace {
                rule_id: &rule.id,
                path: &rule.path,
                matched: result,
                conditions: recorder.entries,
            });
            if result {
                matched = Some(i);
                break;
            }
        }
        Ok(Explanation {
            decision: policy.decision_of(matched),
            rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde_json::{Value, json};

    use super::NoTrace;
    use crate::compile::ir::Cmp;
    use crate::model::{Constant, SignalType};
    use crate::{CompiledPolicy, ValidatedSignals};

    #[test]
    fn cmp_follows_ieee_754() {
        assert!(Cmp::Eq.holds(0.0, -0.0));
        assert!(!Cmp::Lt.holds(-0.0, 0.0));
        assert!(Cmp::Le.holds(-0.0, 0.0));
        assert!(Cmp::Ne.holds(1.0, 1.0 + f64::EPSILON));
    }

    fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                json_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }

    /// Every accepted policy in the repository, with the signal sets its tests give.
    fn corpus() -> Vec<(CompiledPolicy, Vec<Value>)> {
        let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut out = Vec::new();
        let mut files = Vec::new();
        json_files(&crate_dir.join("tests/cases"), &mut files);
        for path in files {
            let case: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let bytes = match (case.get("policy"), case.get("policy_text")) {
                (Some(p), _) => serde_json::to_vec(p).unwrap(),
                (None, Some(Value::String(t))) => t.clone().into_bytes(),
                _ => continue,
            };
            let Ok(policy) = crate::compile(&bytes) else {
                continue;
            };
            let signals = case
                .get("evaluations")
                .and_then(Value::as_array)
                .map(|evals| {
                    evals
                        .iter()
                        .filter_map(|e| match (e.get("signals"), e.get("signals_text")) {
                            (Some(s), _) => Some(s.clone()),
                            (None, Some(Value::String(t))) => serde_json::from_str(t).ok(),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((policy, signals));
        }
        let mut files = Vec::new();
        json_files(&crate_dir.join("../../policies"), &mut files);
        for path in files.iter().filter(|p| p.ends_with("policy.json")) {
            let policy = crate::compile(&std::fs::read(path).unwrap()).unwrap();
            let signals = files
                .iter()
                .filter(|t| t.starts_with(path.parent().unwrap().join("tests")))
                .map(|t| crate::read_case(&std::fs::read(t).unwrap()).unwrap().0)
                .collect();
            out.push((policy, signals));
        }
        out
    }

    /// Values worth trying for a signal: its policy's constants and bounds, and a few others.
    fn candidates(policy: &CompiledPolicy, i: usize) -> Vec<Option<Value>> {
        let decl = &policy.signals[i];
        let mut values: Vec<Option<Value>> = vec![None];
        let enums = decl.enum_values.iter().flatten().map(Constant::to_json);
        values.extend(enums.map(Some));
        match decl.ty {
            SignalType::Boolean => values.extend([Some(json!(true)), Some(json!(false))]),
            SignalType::Number | SignalType::Integer => {
                for bound in [decl.minimum, decl.maximum].into_iter().flatten() {
                    values.extend([Some(json!(bound)), Some(json!(bound.floor() + 1.0))]);
                }
                for n in [-1, 0, 1, 7, 50, 100, 1_000, 5_000, 10_000, 100_000] {
                    values.push(Some(json!(n)));
                }
                values.push(Some(json!(0.5)));
            }
            SignalType::String => {
                values.extend(policy.symbols.iter().map(|s| Some(json!(s))));
                values.extend([Some(json!("")), Some(json!("zz-unknown"))]);
            }
        }
        values
    }

    /// `count` signal sets for `policy`, each signal given one of its [`candidates`] (or left
    /// out) as an xorshift generator seeded with `seed` picks.
    fn generated_signals(policy: &CompiledPolicy, mut seed: u64, count: usize) -> Vec<Value> {
        (0..count)
            .map(|_| {
                let mut map = serde_json::Map::new();
                for (i, decl) in policy.signals.iter().enumerate() {
                    let options = candidates(policy, i);
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    if let Some(Some(v)) = options.get((seed % options.len() as u64) as usize) {
                        map.insert(decl.name.clone(), v.clone());
                    }
                }
                Value::Object(map)
            })
            .collect()
    }

    /// A slot meeting a test of another type, an absent slot read by a value test, an index out
    /// of range: none of these arises on validated signals. Every rule (not only up to the first
    /// match) is evaluated over the signals of every test in the repository and over generated
    /// signal sets built from each policy's constants, and must not fault.
    #[test]
    fn evaluation_never_faults() {
        let mut evaluated = 0;
        for (policy, mut signal_sets) in corpus() {
            signal_sets.extend(generated_signals(&policy, 0x2545_f491_4f6c_dd1d, 300));
            for signals in &signal_sets {
                let Ok(validated): Result<ValidatedSignals<'_>, _> =
                    policy.validate_signals(signals)
                else {
                    continue;
                };
                for rule in &policy.rules {
                    let result = policy.eval_node(&rule.root, &validated.slots, &mut NoTrace);
                    assert!(result.is_ok(), "{signals}: rule {} faulted", rule.id);
                }
                assert!(policy.first_match(&validated.slots).is_ok(), "{signals}");
                evaluated += 1;
            }
        }
        assert!(evaluated > 1_000, "only {evaluated} signal sets evaluated");
    }

    /// Coverage's walk (`cover`, what `policy test` counts) visits exactly the conditions an
    /// explanation records, with the same outcomes, and decides as `explain` and `evaluate` do,
    /// over the same corpus and generated signal sets as above.
    #[test]
    fn coverage_walks_what_an_explanation_records() {
        let mut compared = 0;
        for (policy, mut signal_sets) in corpus() {
            signal_sets.extend(generated_signals(&policy, 0x9e37_79b9_7f4a_7c15, 100));
            for signals in &signal_sets {
                let Ok(validated) = policy.validate_signals(signals) else {
                    continue;
                };
                let explanation = validated.explain().unwrap();
                let recorded: Vec<(u32, bool)> = explanation
                    .rules
                    .iter()
                    .flat_map(|rule| rule.conditions.iter().map(|c| (c.node, c.result)))
                    .collect();
                let mut walked = Vec::new();
                let decision = validated
                    .cover(|node, result| walked.push((node, result)))
                    .unwrap();
                // The explanation lists a node when it is entered, coverage when it is left:
                // the same pairs, in another order.
                let (mut recorded, mut walked) = (recorded, walked);
                recorded.sort_unstable();
                walked.sort_unstable();
                assert_eq!(walked, recorded, "{signals}");
                assert_eq!(decision, explanation.decision, "{signals}");
                assert_eq!(decision, validated.evaluate().unwrap(), "{signals}");
                compared += 1;
            }
        }
        assert!(compared > 500, "only {compared} signal sets compared");
    }
}
