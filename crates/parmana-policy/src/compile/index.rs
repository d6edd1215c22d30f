//! The rule index: rules bucketed by the value of a signal that an `eq`/`in` at the top of their condition requires.
//!
//! A rule whose condition is an `eq` or `in` leaf on a boolean, integer or string signal —
//! or an `all` with such a leaf among its direct items — can only match when that signal has
//! one of the leaf's values. Such rules are put in buckets keyed by (signal, value); at
//! evaluation only the bucket of the signal's actual value is visited, merged in rule order
//! with the rules that have no key. Every list is sorted by rule position and each rule sits
//! in at most one list per value, so first-match order is exactly that of the policy.
//!
//! Keys: a boolean is 0 or 1, an integer itself, a string its symbol ([`KeyKind`]). Like
//! lowering, the index refuses a constant that does not fit its signal instead of dropping
//! it (which would drop the rule from that value's bucket).

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, DiagnosticCode as Code};
use crate::model::{Cond, CondKind, Constant, Leaf, Op, Operand, Rule, SignalType};

use super::ir::{CompiledPolicy, IndexedSlot, KeyKind, MAX_INDEXED_SLOTS, RuleIndex};
use super::lower::to_u32;

/// The keys a rule offers on one signal.
struct Candidate {
    slot: usize,
    kind: KeyKind,
    keys: Vec<i64>,
}

/// The index keys a leaf offers: `eq`/`in` on a boolean, integer or string signal.
fn leaf_keys(
    leaf: &Leaf,
    policy: &CompiledPolicy,
    path: &str,
) -> Result<Option<Candidate>, Diagnostic> {
    let Some(decl) = policy.signals.get(leaf.slot) else {
        return Ok(None);
    };
    let kind = match decl.ty {
        SignalType::Boolean => KeyKind::Bool,
        SignalType::Integer => KeyKind::Int,
        SignalType::String => KeyKind::Str,
        SignalType::Number => return Ok(None),
    };
    let constants: &[Constant] = match (&leaf.operand, leaf.op) {
        (Operand::One(c), Op::Eq) => std::slice::from_ref(c),
        (Operand::List(l), Op::In) => l,
        _ => return Ok(None),
    };
    let mut keys = constants
        .iter()
        .map(|c| match (kind, c) {
            (KeyKind::Bool, Constant::Bool(b)) => Some(i64::from(*b)),
            (KeyKind::Int, Constant::Int(i)) => Some(*i),
            (KeyKind::Str, Constant::Str(s)) => policy.constant_symbol(s).map(i64::from),
            _ => None,
        })
        .collect::<Option<Vec<i64>>>()
        .ok_or_else(|| {
            Diagnostic::new(
                Code::OperandTypeMismatch,
                path,
                format!(
                    "cannot index `{}` on a {} signal: the static checks should have refused it",
                    leaf.op.name(),
                    decl.ty
                ),
            )
        })?;
    keys.sort_unstable();
    keys.dedup();
    Ok(Some(Candidate {
        slot: leaf.slot,
        kind,
        keys,
    }))
}

/// For each signal a rule could be keyed on: its keys.
fn rule_candidates(cond: &Cond, policy: &CompiledPolicy) -> Result<Vec<Candidate>, Diagnostic> {
    let leaves: Vec<(&Leaf, &str)> = match &cond.kind {
        CondKind::Leaf(l) => vec![(l, cond.path.as_str())],
        CondKind::All(items) => items
            .iter()
            .filter_map(|c| match &c.kind {
                CondKind::Leaf(l) => Some((l, c.path.as_str())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<Candidate> = Vec::new();
    for (leaf, path) in leaves {
        if out.iter().any(|c| c.slot == leaf.slot) {
            continue;
        }
        if let Some(candidate) = leaf_keys(leaf, policy, path)? {
            out.push(candidate);
        }
    }
    Ok(out)
}

/// Builds the index of `rules` (the model's, in policy order) for `policy`.
pub(super) fn build_index(
    rules: &[Rule],
    policy: &CompiledPolicy,
) -> Result<RuleIndex, Diagnostic> {
    let candidates = rules
        .iter()
        .map(|r| rule_candidates(&r.when, policy))
        .collect::<Result<Vec<_>, _>>()?;
    let mut counts: Vec<(usize, KeyKind, usize)> = Vec::new(); // (slot, kind, rules keyed on it)
    for cands in &candidates {
        for c in cands {
            match counts.iter_mut().find(|(s, _, _)| *s == c.slot) {
                Some((_, _, n)) => *n += 1,
                None => counts.push((c.slot, c.kind, 1)),
            }
        }
    }
    counts.retain(|(_, _, n)| *n >= 2);
    counts.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    counts.truncate(MAX_INDEXED_SLOTS);
    let mut index = RuleIndex::default();
    if counts.is_empty() {
        index.unindexed = (0..rules.len()).map(to_u32).collect();
        return Ok(index);
    }
    // Per indexed slot: key -> rule positions (ascending, as rules are visited in order).
    let mut per_slot: Vec<BTreeMap<i64, Vec<u32>>> = vec![BTreeMap::new(); counts.len()];
    for (rule, cands) in candidates.iter().enumerate() {
        let chosen = counts.iter().enumerate().find_map(|(k, (slot, _, _))| {
            cands.iter().find(|c| c.slot == *slot).map(|c| (k, &c.keys))
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
    for ((slot, kind, _), buckets) in counts.iter().zip(per_slot) {
        let mut entries = Vec::with_capacity(buckets.len());
        for (key, list) in buckets {
            let start = to_u32(index.bucket_rules.len());
            index.bucket_rules.extend_from_slice(&list);
            entries.push((key, start, to_u32(list.len())));
        }
        index.slots.push(IndexedSlot {
            slot: to_u32(*slot),
            kind: *kind,
            buckets: entries,
        });
    }
    Ok(index)
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
        assert_eq!(signals.evaluate().unwrap().rule_id, "p999");
        let unknown = policy
            .validate_signals(&json!({"product": "nope", "amount": 6000}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unknown.evaluate().unwrap().rule_id, "big");
    }

    #[test]
    fn a_single_keyed_rule_is_not_indexed() {
        let policy = keyed_policy(1);
        assert!(policy.index.slots.is_empty());
        assert_eq!(policy.index.unindexed, [0, 1]);
    }
}
