//! The compiled form: conditions flattened into arrays, signals addressed by slot, strings interned, rules indexed.
//!
//! A [`CompiledPolicy`] is built once from a checked model. Evaluation then reads
//! only these arrays and the slot values of a [`ValidatedSignals`](crate::ValidatedSignals):
//! no hashing, no allocation, no JSON.
//!
//! **Rule index.** A rule whose condition is an `eq` or `in` leaf on a boolean,
//! integer or string signal — or an `all` with such a leaf among its direct items —
//! can only match when that signal has one of the leaf's values. Such rules are put
//! in buckets keyed by (signal, value); at evaluation only the bucket of the signal's
//! actual value is visited, merged in rule order with the rules that have no key.
//! Every list is sorted by rule position and each rule sits in at most one list per
//! value, so first-match order is exactly that of the policy.

use std::collections::BTreeMap;

use crate::diagnostic::json_text;
use crate::model::{
    AdditionalSignals, Cond, CondKind, Constant, Leaf, Op, Operand, PolicyModel, SchemaVersion,
    SignalDecl, SignalType,
};
use crate::names::NameIndex;

/// Most signals the rule index keys on; rules keyed on other signals are visited in order.
pub(crate) const MAX_INDEXED_SLOTS: usize = 7;

/// The symbol of a string that no policy constant equals.
pub(crate) const NO_SYMBOL: u32 = u32::MAX;

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    #[inline]
    pub(crate) fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Self::Eq => a == b,
            Self::Ne => a != b,
            Self::Lt => a < b,
            Self::Le => a <= b,
            Self::Gt => a > b,
            Self::Ge => a >= b,
        }
    }
}

/// A compiled leaf test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Test {
    Present,
    Absent,
    BoolEq(bool),
    /// Bit 0: `false` is in the list; bit 1: `true` is.
    BoolIn {
        mask: u8,
        negate: bool,
    },
    NumCmp(Cmp, f64),
    NumIn {
        start: u32,
        len: u32,
        negate: bool,
    },
    IntCmp(Cmp, i64),
    IntIn {
        start: u32,
        len: u32,
        negate: bool,
    },
    StrEq {
        symbol: u32,
        negate: bool,
    },
    StrIn {
        start: u32,
        len: u32,
        negate: bool,
    },
    StartsWith(u32),
    EndsWith(u32),
}

/// One node of the flattened condition trees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Node {
    All { start: u32, len: u32 },
    Any { start: u32, len: u32 },
    Not(u32),
    Leaf { slot: u32, test: Test },
}

/// What the trace and coverage report say about a node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeInfo {
    pub(crate) path: String,
    pub(crate) label: String,
    pub(crate) depth: u32,
    pub(crate) rule: u32,
}

/// One compiled rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompiledRule {
    pub(crate) id: String,
    pub(crate) path: String,
    pub(crate) root: u32,
    pub(crate) decision: String,
    pub(crate) reason: Option<String>,
}

/// The buckets of one indexed signal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndexedSlot {
    pub(crate) slot: u32,
    /// (value key, start, len) into `bucket_rules`, sorted by key.
    pub(crate) buckets: Vec<(i64, u32, u32)>,
}

/// The rule index (see the module documentation).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct RuleIndex {
    pub(crate) unindexed: Vec<u32>,
    pub(crate) slots: Vec<IndexedSlot>,
    pub(crate) bucket_rules: Vec<u32>,
}

/// A validated policy, compiled for evaluation.
///
/// Build it with [`compile`](crate::compile) or [`check`](crate::check); validate
/// signals against it with [`validate_signals`](CompiledPolicy::validate_signals) or
/// [`validate_signals_json`](CompiledPolicy::validate_signals_json), then call
/// [`ValidatedSignals::evaluate`](crate::ValidatedSignals::evaluate).
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledPolicy {
    pub(crate) schema: SchemaVersion,
    pub(crate) policy_id: Option<String>,
    pub(crate) policy_version: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) decisions: Vec<String>,
    pub(crate) signals: Vec<SignalDecl>,
    pub(crate) additional_signals: AdditionalSignals,
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) default_decision: String,
    pub(crate) default_reason: Option<String>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) children: Vec<u32>,
    pub(crate) node_info: Vec<NodeInfo>,
    pub(crate) nums: Vec<f64>,
    pub(crate) ints: Vec<i64>,
    pub(crate) syms: Vec<u32>,
    pub(crate) texts: Vec<String>,
    /// Sorted; a string's symbol is its position.
    pub(crate) symbols: Vec<String>,
    pub(crate) symbol_index: NameIndex,
    pub(crate) signal_index: NameIndex,
    pub(crate) index: RuleIndex,
}

impl CompiledPolicy {
    /// The schema the policy was written in.
    pub fn schema_version(&self) -> SchemaVersion {
        self.schema
    }
    /// `policy_id` (schema 2.0.0; a legacy policy carries none, its bundle names it).
    pub fn policy_id(&self) -> Option<&str> {
        self.policy_id.as_deref()
    }
    /// `policy_version` (schema 2.0.0 only).
    pub fn policy_version(&self) -> Option<&str> {
        self.policy_version.as_deref()
    }
    /// The policy's `description`, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// The declared decisions, in declaration order.
    pub fn decisions(&self) -> &[String] {
        &self.decisions
    }
    /// The declared signals, sorted by name.
    pub fn signals(&self) -> &[SignalDecl] {
        &self.signals
    }
    /// What happens to undeclared signals.
    pub fn additional_signals(&self) -> AdditionalSignals {
        self.additional_signals
    }
    /// The rule ids, in evaluation order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }
    /// Number of rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
    /// Number of condition nodes (each counted by condition coverage).
    pub fn condition_count(&self) -> usize {
        self.nodes.len()
    }
    /// The symbol of a string: its position among the policy's string constants, or [`NO_SYMBOL`].
    pub(crate) fn symbol_of(&self, s: &str) -> u32 {
        self.symbol_index
            .find(s, |i| self.symbols.get(i).map(String::as_str))
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or(NO_SYMBOL)
    }
}

fn to_u32(n: usize) -> u32 {
    // Bounded by the documented limits, far below u32::MAX.
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Compiles a checked model.
pub(crate) fn compile_model(model: PolicyModel) -> CompiledPolicy {
    let mut symbols: Vec<String> = Vec::new();
    for rule in &model.rules {
        collect_symbols(&rule.when, &mut symbols);
    }
    symbols.sort();
    symbols.dedup();
    let symbol_index = NameIndex::new(symbols.iter().map(String::as_str));
    let signal_index = NameIndex::new(model.signals.iter().map(|d| d.name.as_str()));
    let mut policy = CompiledPolicy {
        schema: model.schema,
        policy_id: model.policy_id,
        policy_version: model.policy_version,
        description: model.description,
        decisions: model.decisions,
        signals: model.signals,
        additional_signals: model.additional_signals,
        rules: Vec::with_capacity(model.rules.len()),
        default_decision: model.default.decision,
        default_reason: model.default.reason,
        nodes: Vec::new(),
        children: Vec::new(),
        node_info: Vec::new(),
        nums: Vec::new(),
        ints: Vec::new(),
        syms: Vec::new(),
        texts: Vec::new(),
        symbols,
        symbol_index,
        signal_index,
        index: RuleIndex::default(),
    };
    for (i, rule) in model.rules.iter().enumerate() {
        let root = lower(&mut policy, &rule.when, 0, to_u32(i));
        policy.rules.push(CompiledRule {
            id: rule.id.clone(),
            path: rule.path.clone(),
            root,
            decision: rule.then.decision.clone(),
            reason: rule.then.reason.clone(),
        });
    }
    policy.index = build_index(&model.rules, &policy);
    policy
}

fn collect_symbols(cond: &Cond, out: &mut Vec<String>) {
    match &cond.kind {
        CondKind::All(items) | CondKind::Any(items) => {
            for c in items {
                collect_symbols(c, out);
            }
        }
        CondKind::Not(inner) => collect_symbols(inner, out),
        CondKind::Leaf(leaf) => {
            if matches!(leaf.op, Op::Eq | Op::Ne | Op::In | Op::NotIn) {
                let constants: &[Constant] = match &leaf.operand {
                    Operand::One(c) => std::slice::from_ref(c),
                    Operand::List(l) => l,
                    Operand::None => &[],
                };
                for c in constants {
                    if let Constant::Str(s) = c {
                        out.push(s.clone());
                    }
                }
            }
        }
    }
}

/// Renders a leaf for traces: `fraud_score gt 80`.
fn leaf_label(leaf: &Leaf, signals: &[SignalDecl]) -> String {
    let name = signals.get(leaf.slot).map_or("?", |d| d.name.as_str());
    match &leaf.operand {
        Operand::None => format!("{name} {}", leaf.op.name()),
        Operand::One(c) => format!("{name} {} {}", leaf.op.name(), json_text(&c.to_json())),
        Operand::List(l) => {
            let items: Vec<serde_json::Value> = l.iter().map(Constant::to_json).collect();
            format!(
                "{name} {} {}",
                leaf.op.name(),
                json_text(&serde_json::Value::Array(items))
            )
        }
    }
}

/// Flattens one condition; returns its node index.
fn lower(p: &mut CompiledPolicy, cond: &Cond, depth: u32, rule: u32) -> u32 {
    let id = to_u32(p.nodes.len());
    // Reserve the slot so that a parent precedes its children (pre-order, as traces print).
    p.nodes.push(Node::Not(id));
    let label = match &cond.kind {
        CondKind::All(_) => "all".to_owned(),
        CondKind::Any(_) => "any".to_owned(),
        CondKind::Not(_) => "not".to_owned(),
        CondKind::Leaf(leaf) => leaf_label(leaf, &p.signals),
    };
    p.node_info.push(NodeInfo {
        path: cond.path.clone(),
        label,
        depth,
        rule,
    });
    let node = match &cond.kind {
        CondKind::All(items) | CondKind::Any(items) => {
            let kids: Vec<u32> = items.iter().map(|c| lower(p, c, depth + 1, rule)).collect();
            let start = to_u32(p.children.len());
            p.children.extend_from_slice(&kids);
            let len = to_u32(kids.len());
            if matches!(cond.kind, CondKind::All(_)) {
                Node::All { start, len }
            } else {
                Node::Any { start, len }
            }
        }
        CondKind::Not(inner) => Node::Not(lower(p, inner, depth + 1, rule)),
        CondKind::Leaf(leaf) => Node::Leaf {
            slot: to_u32(leaf.slot),
            test: lower_leaf(p, leaf),
        },
    };
    if let Some(slot) = p.nodes.get_mut(id as usize) {
        *slot = node;
    }
    id
}

fn lower_leaf(p: &mut CompiledPolicy, leaf: &Leaf) -> Test {
    let ty = p
        .signals
        .get(leaf.slot)
        .map_or(SignalType::Boolean, |d| d.ty);
    let negate = matches!(leaf.op, Op::Ne | Op::NotIn);
    let cmp = match leaf.op {
        Op::Ne => Cmp::Ne,
        Op::Lt => Cmp::Lt,
        Op::Le => Cmp::Le,
        Op::Gt => Cmp::Gt,
        Op::Ge => Cmp::Ge,
        _ => Cmp::Eq,
    };
    let list: &[Constant] = match &leaf.operand {
        Operand::List(l) => l,
        _ => &[],
    };
    let one = match &leaf.operand {
        Operand::One(c) => Some(c),
        _ => None,
    };
    match (leaf.op, ty) {
        (Op::Present, _) => Test::Present,
        (Op::Absent, _) => Test::Absent,
        (Op::In | Op::NotIn, SignalType::Boolean) => {
            let mask = list.iter().fold(0u8, |m, c| match c {
                Constant::Bool(true) => m | 2,
                Constant::Bool(false) => m | 1,
                _ => m,
            });
            Test::BoolIn { mask, negate }
        }
        (_, SignalType::Boolean) => {
            let b = matches!(one, Some(Constant::Bool(true)));
            Test::BoolEq(if negate { !b } else { b })
        }
        (Op::In | Op::NotIn, SignalType::Number) => {
            let start = to_u32(p.nums.len());
            p.nums.extend(list.iter().filter_map(Constant::as_f64));
            Test::NumIn {
                start,
                len: to_u32(p.nums.len()) - start,
                negate,
            }
        }
        (_, SignalType::Number) => Test::NumCmp(cmp, one.and_then(Constant::as_f64).unwrap_or(0.0)),
        (Op::In | Op::NotIn, SignalType::Integer) => {
            let mut values: Vec<i64> = list
                .iter()
                .filter_map(|c| match c {
                    Constant::Int(i) => Some(*i),
                    _ => None,
                })
                .collect();
            values.sort_unstable();
            values.dedup();
            let start = to_u32(p.ints.len());
            p.ints.extend_from_slice(&values);
            Test::IntIn {
                start,
                len: to_u32(values.len()),
                negate,
            }
        }
        (_, SignalType::Integer) => Test::IntCmp(
            cmp,
            match one {
                Some(Constant::Int(i)) => *i,
                _ => 0,
            },
        ),
        (Op::StartsWith | Op::EndsWith, SignalType::String) => {
            let text = match one {
                Some(Constant::Str(s)) => s.clone(),
                _ => String::new(),
            };
            let at = to_u32(p.texts.len());
            p.texts.push(text);
            if leaf.op == Op::StartsWith {
                Test::StartsWith(at)
            } else {
                Test::EndsWith(at)
            }
        }
        (Op::In | Op::NotIn, SignalType::String) => {
            let mut values: Vec<u32> = list
                .iter()
                .filter_map(|c| match c {
                    Constant::Str(s) => Some(p.symbol_of(s)),
                    _ => None,
                })
                .collect();
            values.sort_unstable();
            values.dedup();
            let start = to_u32(p.syms.len());
            p.syms.extend_from_slice(&values);
            Test::StrIn {
                start,
                len: to_u32(values.len()),
                negate,
            }
        }
        (_, SignalType::String) => Test::StrEq {
            symbol: match one {
                Some(Constant::Str(s)) => p.symbol_of(s),
                _ => NO_SYMBOL,
            },
            negate,
        },
    }
}

/// The index keys a leaf offers: `eq`/`in` on a boolean, integer or string signal.
fn leaf_keys(leaf: &Leaf, policy: &CompiledPolicy) -> Option<Vec<i64>> {
    let ty = policy.signals.get(leaf.slot)?.ty;
    if ty == SignalType::Number || !matches!(leaf.op, Op::Eq | Op::In) {
        return None;
    }
    let constants: &[Constant] = match &leaf.operand {
        Operand::One(c) => std::slice::from_ref(c),
        Operand::List(l) => l,
        Operand::None => return None,
    };
    let mut keys: Vec<i64> = constants
        .iter()
        .filter_map(|c| match c {
            Constant::Bool(b) => Some(i64::from(*b)),
            Constant::Int(i) => Some(*i),
            Constant::Str(s) => Some(i64::from(policy.symbol_of(s))),
            Constant::Num(_) => None,
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    Some(keys)
}

/// For each signal a rule could be keyed on: (slot, keys).
fn rule_candidates(cond: &Cond, policy: &CompiledPolicy) -> Vec<(usize, Vec<i64>)> {
    let leaves: Vec<&Leaf> = match &cond.kind {
        CondKind::Leaf(l) => vec![l],
        CondKind::All(items) => items
            .iter()
            .filter_map(|c| match &c.kind {
                CondKind::Leaf(l) => Some(l),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<(usize, Vec<i64>)> = Vec::new();
    for leaf in leaves {
        if out.iter().any(|(s, _)| *s == leaf.slot) {
            continue;
        }
        if let Some(keys) = leaf_keys(leaf, policy) {
            out.push((leaf.slot, keys));
        }
    }
    out
}

fn build_index(rules: &[crate::model::Rule], policy: &CompiledPolicy) -> RuleIndex {
    let candidates: Vec<Vec<(usize, Vec<i64>)>> = rules
        .iter()
        .map(|r| rule_candidates(&r.when, policy))
        .collect();
    let mut counts: Vec<(usize, usize)> = Vec::new(); // (slot, rules keyed on it)
    for cands in &candidates {
        for (slot, _) in cands {
            match counts.iter_mut().find(|(s, _)| s == slot) {
                Some((_, n)) => *n += 1,
                None => counts.push((*slot, 1)),
            }
        }
    }
    counts.retain(|(_, n)| *n >= 2);
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts.truncate(MAX_INDEXED_SLOTS);
    let mut index = RuleIndex::default();
    if counts.is_empty() {
        index.unindexed = (0..rules.len()).map(to_u32).collect();
        return index;
    }
    // Per indexed slot: key -> rule positions (ascending, as rules are visited in order).
    let mut per_slot: Vec<BTreeMap<i64, Vec<u32>>> = vec![BTreeMap::new(); counts.len()];
    for (rule, cands) in candidates.iter().enumerate() {
        let chosen = counts.iter().enumerate().find_map(|(k, (slot, _))| {
            cands
                .iter()
                .find(|(s, _)| s == slot)
                .map(|(_, keys)| (k, keys))
        });
        match chosen {
            Some((k, keys)) => {
                if let Some(buckets) = per_slot.get_mut(k) {
                    for key in keys {
                        buckets.entry(*key).or_default().push(to_u32(rule));
                    }
                }
            }
            None => index.unindexed.push(to_u32(rule)),
        }
    }
    for ((slot, _), buckets) in counts.iter().zip(per_slot) {
        let mut entries = Vec::with_capacity(buckets.len());
        for (key, list) in buckets {
            let start = to_u32(index.bucket_rules.len());
            index.bucket_rules.extend_from_slice(&list);
            entries.push((key, start, to_u32(list.len())));
        }
        index.slots.push(IndexedSlot {
            slot: to_u32(*slot),
            buckets: entries,
        });
    }
    index
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    fn keyed_policy(n: usize) -> crate::CompiledPolicy {
        let mut rules: Vec<_> = (0..n)
            .map(|k| {
                json!({"id": format!("p{k}"), "when": {"all": [
                    {"signal": "product", "eq": format!("p-{k}")},
                    {"signal": "amount", "le": 1000}
                ]}, "then": {"decision": "yes"}})
            })
            .collect();
        rules.push(json!({"id": "big", "when": {"signal": "amount", "gt": 5000}, "then": {"decision": "no"}}));
        let policy = json!({
            "schema_version": "2.0.0", "policy_id": "p", "policy_version": "1.0.0",
            "decisions": ["yes", "no"],
            "signals": {"product": {"type": "string", "required": true},
                        "amount": {"type": "number", "required": true}},
            "rules": rules, "default": {"decision": "no"}
        });
        crate::compile(&serde_json::to_vec(&policy).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn keyed_rules_are_bucketed_one_per_value() {
        let policy = keyed_policy(1_000);
        let index = &policy.index;
        assert_eq!(index.slots.len(), 1);
        assert_eq!(index.unindexed, [1_000]);
        assert_eq!(index.slots[0].buckets.len(), 1_000);
        assert!(index.slots[0].buckets.iter().all(|(_, _, len)| *len == 1));
        let signals = policy
            .validate_signals(&json!({"product": "p-999", "amount": 10}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(signals.evaluate().rule_id, "p999");
        let unknown = policy
            .validate_signals(&json!({"product": "nope", "amount": 6000}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unknown.evaluate().rule_id, "big");
    }

    #[test]
    fn a_single_keyed_rule_is_not_indexed() {
        let policy = keyed_policy(1);
        assert!(policy.index.slots.is_empty());
        assert_eq!(policy.index.unindexed, [0, 1]);
    }
}
