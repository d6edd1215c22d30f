//! Evaluation of a compiled policy over validated signals: first match wins, total, allocation-free; and `explain`.
//!
//! One generic evaluator serves both paths: with [`NoTrace`] it compiles to plain
//! comparisons; with [`Recorder`] it records every condition it evaluates. The
//! decision cannot differ between the two because the code is the same.

use std::fmt;

use crate::compile::{CompiledPolicy, Node, Test};
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
    /// The outcome's `reason`, when the policy gives one.
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
    fn enter(&mut self, node: u32) -> usize;
    /// The node evaluated to `result`, having read `seen` (leaves only).
    fn leave(&mut self, token: usize, result: bool, seen: Option<&Slot>);
}

/// The tracer of plain evaluation: does nothing.
pub(crate) struct NoTrace;

impl Tracer for NoTrace {
    #[inline(always)]
    fn enter(&mut self, _node: u32) -> usize {
        0
    }
    #[inline(always)]
    fn leave(&mut self, _token: usize, _result: bool, _seen: Option<&Slot>) {}
}

/// The tracer of `explain`: records every condition.
pub(crate) struct Recorder<'p> {
    policy: &'p CompiledPolicy,
    pub(crate) entries: Vec<ConditionTrace<'p>>,
}

impl<'p> Tracer for Recorder<'p> {
    fn enter(&mut self, node: u32) -> usize {
        let info = self.policy.node_info.get(node as usize);
        let signal = match self.policy.nodes.get(node as usize) {
            Some(Node::Leaf { slot, .. }) => self
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
            node,
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

impl CompiledPolicy {
    /// Evaluates one node; `values` are the slots of validated signals.
    pub(crate) fn eval_node<T: Tracer>(&self, node: u32, values: &[Slot], tracer: &mut T) -> bool {
        let token = tracer.enter(node);
        let (result, seen) = match self.nodes.get(node as usize) {
            Some(Node::All { start, len }) => (
                self.child_ids(*start, *len)
                    .iter()
                    .all(|c| self.eval_node(*c, values, tracer)),
                None,
            ),
            Some(Node::Any { start, len }) => (
                self.child_ids(*start, *len)
                    .iter()
                    .any(|c| self.eval_node(*c, values, tracer)),
                None,
            ),
            Some(Node::Not(inner)) => (!self.eval_node(*inner, values, tracer), None),
            Some(Node::Leaf { slot, test }) => {
                let value = values.get(*slot as usize).unwrap_or(&Slot::Absent);
                (self.test(test, value), Some(value))
            }
            None => (false, None),
        };
        tracer.leave(token, result, seen);
        result
    }

    #[inline]
    fn child_ids(&self, start: u32, len: u32) -> &[u32] {
        let start = start as usize;
        self.children
            .get(start..start + len as usize)
            .unwrap_or(&[])
    }

    #[inline]
    fn range<T>(list: &[T], start: u32, len: u32) -> &[T] {
        let start = start as usize;
        list.get(start..start + len as usize).unwrap_or(&[])
    }

    /// One leaf test. A value of the wrong kind (impossible after validation) or an
    /// absent value read by a comparison (impossible after the guard check) is false.
    #[inline]
    fn test(&self, test: &Test, value: &Slot) -> bool {
        match (test, value) {
            (Test::Present, v) => !matches!(v, Slot::Absent),
            (Test::Absent, v) => matches!(v, Slot::Absent),
            (Test::BoolEq(b), Slot::Bool(v)) => v == b,
            (Test::BoolIn { mask, negate }, Slot::Bool(v)) => {
                let bit = if *v { 2 } else { 1 };
                (mask & bit != 0) != *negate
            }
            (Test::NumCmp(cmp, c), Slot::Num(v)) => cmp.holds(*v, *c),
            (Test::NumIn { start, len, negate }, Slot::Num(v)) => {
                Self::range(&self.nums, *start, *len).iter().any(|c| c == v) != *negate
            }
            (Test::IntCmp(cmp, c), Slot::Int(v)) => cmp.holds(*v, *c),
            (Test::IntIn { start, len, negate }, Slot::Int(v)) => {
                Self::range(&self.ints, *start, *len)
                    .binary_search(v)
                    .is_ok()
                    != *negate
            }
            (Test::StrEq { symbol, negate }, Slot::Str { symbol: s, .. }) => {
                (symbol == s && *s != crate::compile::NO_SYMBOL) != *negate
            }
            (Test::StrIn { start, len, negate }, Slot::Str { symbol, .. }) => {
                Self::range(&self.syms, *start, *len)
                    .binary_search(symbol)
                    .is_ok()
                    != *negate
            }
            (Test::StartsWith(at), Slot::Str { text, .. }) => self
                .texts
                .get(*at as usize)
                .is_some_and(|p| text.starts_with(p.as_str())),
            (Test::EndsWith(at), Slot::Str { text, .. }) => self
                .texts
                .get(*at as usize)
                .is_some_and(|p| text.ends_with(p.as_str())),
            _ => false,
        }
    }

    /// Position of the first rule that matches, using the rule index.
    fn first_match(&self, values: &[Slot]) -> Option<usize> {
        let index = &self.index;
        if index.slots.is_empty() {
            return self
                .rules
                .iter()
                .position(|r| self.eval_node(r.root, values, &mut NoTrace));
        }
        let mut lists: [&[u32]; crate::compile::MAX_INDEXED_SLOTS + 1] =
            [&[]; crate::compile::MAX_INDEXED_SLOTS + 1];
        lists[0] = &index.unindexed;
        let mut count = 1;
        for indexed in &index.slots {
            let key = match values.get(indexed.slot as usize) {
                Some(Slot::Bool(b)) => i64::from(*b),
                Some(Slot::Int(i)) => *i,
                Some(Slot::Str { symbol, .. }) if *symbol != crate::compile::NO_SYMBOL => {
                    i64::from(*symbol)
                }
                _ => continue,
            };
            if let Ok(found) = indexed.buckets.binary_search_by_key(&key, |(k, _, _)| *k)
                && let (Some((_, start, len)), Some(entry)) =
                    (indexed.buckets.get(found), lists.get_mut(count))
            {
                *entry = Self::range(&index.bucket_rules, *start, *len);
                count += 1;
            }
        }
        let lists = lists.get_mut(..count)?;
        loop {
            // The smallest rule position at the head of any list.
            let mut best: Option<(usize, u32)> = None;
            for (i, list) in lists.iter().enumerate() {
                if let Some(&head) = list.first()
                    && best.is_none_or(|(_, b)| head < b)
                {
                    best = Some((i, head));
                }
            }
            let (list, rule) = best?;
            if let Some(l) = lists.get_mut(list) {
                *l = l.get(1..).unwrap_or(&[]);
            }
            if let Some(r) = self.rules.get(rule as usize)
                && self.eval_node(r.root, values, &mut NoTrace)
            {
                return Some(rule as usize);
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
    /// Total and deterministic; allocates nothing.
    pub fn evaluate(&self) -> Decision<'p> {
        self.policy
            .decision_of(self.policy.first_match(&self.slots))
    }

    /// Evaluates the policy and records every rule tried (in order, up to the first
    /// match) with every condition evaluated and the values it read.
    pub fn explain(&self) -> Explanation<'p> {
        let policy = self.policy;
        let mut rules = Vec::new();
        let mut matched = None;
        for (i, rule) in policy.rules.iter().enumerate() {
            let mut recorder = Recorder {
                policy,
                entries: Vec::new(),
            };
            let result = policy.eval_node(rule.root, &self.slots, &mut recorder);
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
        Explanation {
            decision: policy.decision_of(matched),
            rules,
        }
    }
}

#[cfg(test)]
mod tests {

    use crate::compile::Cmp;

    #[test]
    fn cmp_follows_ieee_754() {
        assert!(Cmp::Eq.holds(0.0, -0.0));
        assert!(!Cmp::Lt.holds(-0.0, 0.0));
        assert!(Cmp::Le.holds(-0.0, 0.0));
        assert!(Cmp::Ne.holds(1.0, 1.0 + f64::EPSILON));
    }
}
