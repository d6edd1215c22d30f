//! Compilation: a checked model becomes a [`CompiledPolicy`], in three steps kept in their own files.
//!
//! * [`ir`] — the compiled types: typed condition trees, slots, interned strings;
//! * [`lower`] — the model's conditions lowered into that IR, each test typed by its signal;
//! * [`index`] — the rule index that buckets rules by an `eq`/`in` value.
//!
//! A [`CompiledPolicy`] is built once. Evaluation then reads only the IR and the slot values
//! of a [`ValidatedSignals`](crate::ValidatedSignals): no hashing, no allocation, no JSON.

pub(crate) mod index;
pub(crate) mod ir;
pub(crate) mod lower;

pub use ir::CompiledPolicy;
pub(crate) use ir::{Cond, KeyKind, MAX_INDEXED_SLOTS, NO_SYMBOL, Node, Test};

use crate::diagnostic::Diagnostic;
use crate::model::{CondKind, Constant, Op, Operand, PolicyModel};
use crate::names::NameIndex;

/// Compiles a checked model.
///
/// The static checks have accepted `model`, so this does not fail; a leaf it could not type
/// anyway is refused with the static checks' own diagnostic (see [`lower`]).
pub(crate) fn compile_model(model: PolicyModel) -> Result<CompiledPolicy, Diagnostic> {
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
        permit: model.permit,
        signals: model.signals,
        additional_signals: model.additional_signals,
        rules: Vec::with_capacity(model.rules.len()),
        default_decision: model.default.decision,
        default_reason: model.default.reason,
        node_info: Vec::new(),
        symbols,
        symbol_index,
        signal_index,
        index: ir::RuleIndex::default(),
    };
    for (i, rule) in model.rules.iter().enumerate() {
        let root = lower::lower(&mut policy, &rule.when, 0, lower::to_u32(i))?;
        policy.rules.push(ir::CompiledRule {
            id: rule.id.clone(),
            path: rule.path.clone(),
            root,
            decision: rule.then.decision.clone(),
            reason: rule.then.reason.clone(),
        });
    }
    policy.index = index::build_index(&model.rules, &policy)?;
    Ok(policy)
}

/// Every string constant an equality or membership test compares with (what gets interned).
fn collect_symbols(cond: &crate::model::Cond, out: &mut Vec<String>) {
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
