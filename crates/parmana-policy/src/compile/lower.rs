//! Lowering: the conditions of a checked model become typed IR trees, each test typed by its signal's declaration.
//!
//! The static checks have already refused every leaf whose operator or operand does not fit
//! its signal, so lowering never meets one. It still does not assume so: a leaf it cannot type
//! is refused with the diagnostic the static checks give for the same fault
//! (`policy.undeclared_signal`, `policy.operator_type_mismatch`,
//! `policy.operand_type_mismatch`), never compiled with a made-up operand. A test builds such
//! a model by hand to show that it is refused.

use crate::diagnostic::{Diagnostic, DiagnosticCode as Code, json_text};
use crate::model::{
    Cond as ModelCond, CondKind, Constant, Leaf, Op, Operand, SignalDecl, SignalType,
};

use super::ir::{
    BoolTest, Cmp, CompiledPolicy, Cond, IntTest, Node, NodeInfo, NumTest, StrTest, Test,
};

/// Bounded by the documented limits, far below `u32::MAX`.
pub(super) fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Lowers one condition tree; node ids are given in pre-order, continuing `p.node_info`.
pub(super) fn lower(
    p: &mut CompiledPolicy,
    cond: &ModelCond,
    depth: u32,
    rule: u32,
) -> Result<Node, Diagnostic> {
    let id = to_u32(p.node_info.len());
    let label = match &cond.kind {
        CondKind::All(_) => "all".to_owned(),
        CondKind::Any(_) => "any".to_owned(),
        CondKind::Not(_) => "not".to_owned(),
        CondKind::Leaf(leaf) => leaf_label(leaf, &p.signals),
    };
    // Pushed before the children: a parent precedes them (pre-order, as traces print).
    p.node_info.push(NodeInfo {
        path: cond.path.clone(),
        label,
        depth,
        rule,
    });
    let cond = match &cond.kind {
        CondKind::All(items) => Cond::All(lower_all(p, items, depth, rule)?),
        CondKind::Any(items) => Cond::Any(lower_all(p, items, depth, rule)?),
        CondKind::Not(inner) => Cond::Not(Box::new(lower(p, inner, depth + 1, rule)?)),
        CondKind::Leaf(leaf) => Cond::Leaf {
            slot: to_u32(leaf.slot),
            test: lower_leaf(p, leaf, &cond.path)?,
        },
    };
    Ok(Node { id, cond })
}

fn lower_all(
    p: &mut CompiledPolicy,
    items: &[ModelCond],
    depth: u32,
    rule: u32,
) -> Result<Box<[Node]>, Diagnostic> {
    items.iter().map(|c| lower(p, c, depth + 1, rule)).collect()
}

/// Renders a leaf for traces: `fraud_score gt 80` (a legacy name outside 2.0.0's grammar quoted: `"10" gt 9`).
fn leaf_label(leaf: &Leaf, signals: &[SignalDecl]) -> String {
    let name = signals
        .get(leaf.slot)
        .map_or(std::borrow::Cow::Borrowed("?"), |d| {
            crate::parse::shown_signal_name(&d.name)
        });
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

/// Why a leaf could not be typed (see the module documentation).
fn refused(code: Code, path: &str, leaf: &Leaf, ty: Option<SignalType>) -> Diagnostic {
    let on = ty.map_or_else(
        || "an undeclared signal".to_owned(),
        |t| format!("a {t} signal"),
    );
    Diagnostic::new(
        code,
        path,
        format!(
            "cannot compile `{}` on {on}: the static checks should have refused it",
            leaf.op.name()
        ),
    )
}

/// The comparison of an operator that compares one value.
fn cmp_of(op: Op) -> Option<Cmp> {
    match op {
        Op::Eq => Some(Cmp::Eq),
        Op::Ne => Some(Cmp::Ne),
        Op::Lt => Some(Cmp::Lt),
        Op::Le => Some(Cmp::Le),
        Op::Gt => Some(Cmp::Gt),
        Op::Ge => Some(Cmp::Ge),
        _ => None,
    }
}

/// Lowers a leaf's test, typed by its signal's declaration.
fn lower_leaf(p: &CompiledPolicy, leaf: &Leaf, path: &str) -> Result<Test, Diagnostic> {
    let Some(decl) = p.signals.get(leaf.slot) else {
        return Err(refused(Code::UndeclaredSignal, path, leaf, None));
    };
    let ty = decl.ty;
    let operator = || refused(Code::OperatorTypeMismatch, path, leaf, Some(ty));
    let operand = || refused(Code::OperandTypeMismatch, path, leaf, Some(ty));
    let negate = matches!(leaf.op, Op::Ne | Op::NotIn);
    let list = matches!(leaf.op, Op::In | Op::NotIn);
    let test = match (&leaf.operand, leaf.op) {
        (Operand::None, Op::Present) => Test::Present,
        (Operand::None, Op::Absent) => Test::Absent,
        (Operand::None, _) | (_, Op::Present | Op::Absent) => return Err(operand()),
        (Operand::List(items), _) if list => match ty {
            SignalType::Boolean => {
                let mut mask = 0u8;
                for c in items {
                    mask |= match c {
                        Constant::Bool(true) => 2,
                        Constant::Bool(false) => 1,
                        _ => return Err(operand()),
                    };
                }
                Test::Bool(BoolTest::In { mask, negate })
            }
            SignalType::Number => Test::Num(NumTest::In {
                values: items
                    .iter()
                    .map(|c| c.as_f64().ok_or_else(operand))
                    .collect::<Result<_, _>>()?,
                negate,
            }),
            SignalType::Integer => {
                let mut values = items
                    .iter()
                    .map(|c| match c {
                        Constant::Int(i) => Ok(*i),
                        _ => Err(operand()),
                    })
                    .collect::<Result<Vec<i64>, _>>()?;
                values.sort_unstable();
                values.dedup();
                Test::Int(IntTest::In {
                    values: values.into(),
                    negate,
                })
            }
            SignalType::String => {
                let mut symbols = items
                    .iter()
                    .map(|c| match c {
                        Constant::Str(s) => p.constant_symbol(s).ok_or_else(operand),
                        _ => Err(operand()),
                    })
                    .collect::<Result<Vec<u32>, _>>()?;
                symbols.sort_unstable();
                symbols.dedup();
                Test::Str(StrTest::In {
                    symbols: symbols.into(),
                    negate,
                })
            }
        },
        (Operand::List(_), _) => return Err(operand()),
        (Operand::One(_), _) if list => return Err(operand()),
        (Operand::One(c), op) => match (ty, op, c) {
            (SignalType::Boolean, Op::Eq | Op::Ne, Constant::Bool(b)) => {
                Test::Bool(BoolTest::Eq(*b != negate))
            }
            (SignalType::Number, _, c) => {
                let cmp = cmp_of(op).ok_or_else(operator)?;
                Test::Num(NumTest::Cmp(cmp, c.as_f64().ok_or_else(operand)?))
            }
            (SignalType::Integer, _, Constant::Int(i)) => {
                Test::Int(IntTest::Cmp(cmp_of(op).ok_or_else(operator)?, *i))
            }
            (SignalType::String, Op::Eq | Op::Ne, Constant::Str(s)) => Test::Str(StrTest::Eq {
                symbol: p.constant_symbol(s).ok_or_else(operand)?,
                negate,
            }),
            (SignalType::String, Op::StartsWith, Constant::Str(s)) => {
                Test::Str(StrTest::StartsWith(s.as_str().into()))
            }
            (SignalType::String, Op::EndsWith, Constant::Str(s)) => {
                Test::Str(StrTest::EndsWith(s.as_str().into()))
            }
            (_, op, _) if !op.fits(ty) => return Err(operator()),
            _ => return Err(operand()),
        },
    };
    Ok(test)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Cond as ModelCond;

    fn policy() -> CompiledPolicy {
        crate::compile(
            br#"{"schema_version": "2.0.0", "policy_id": "p", "policy_version": "1.0.0",
                 "decisions": ["yes"],
                 "signals": {"b": {"type": "boolean", "required": true},
                             "i": {"type": "integer", "required": true},
                             "n": {"type": "number", "required": true},
                             "s": {"type": "string", "required": true}},
                 "rules": [{"id": "r", "when": {"signal": "s", "in": ["x", "y"]},
                            "then": {"decision": "yes"}}],
                 "default": {"decision": "yes"}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Leaves that the static checks refuse, built by hand: lowering refuses each with the
    /// code the checks give, rather than compiling a default operand.
    #[test]
    fn a_leaf_that_does_not_fit_its_signal_is_refused_not_defaulted() {
        let cases: &[(usize, Op, Operand, &str)] = &[
            (
                9,
                Op::Eq,
                Operand::One(Constant::Bool(true)),
                "policy.undeclared_signal",
            ),
            (
                0,
                Op::Eq,
                Operand::One(Constant::Int(1)),
                "policy.operand_type_mismatch",
            ),
            (
                0,
                Op::Gt,
                Operand::One(Constant::Bool(true)),
                "policy.operator_type_mismatch",
            ),
            (
                0,
                Op::In,
                Operand::List(vec![Constant::Str("x".into())]),
                "policy.operand_type_mismatch",
            ),
            (
                1,
                Op::Lt,
                Operand::One(Constant::Num(1.5)),
                "policy.operand_type_mismatch",
            ),
            (
                1,
                Op::StartsWith,
                Operand::One(Constant::Int(1)),
                "policy.operator_type_mismatch",
            ),
            (
                1,
                Op::In,
                Operand::One(Constant::Int(1)),
                "policy.operand_type_mismatch",
            ),
            (
                2,
                Op::Ge,
                Operand::One(Constant::Str("1".into())),
                "policy.operand_type_mismatch",
            ),
            (
                2,
                Op::EndsWith,
                Operand::One(Constant::Num(1.0)),
                "policy.operator_type_mismatch",
            ),
            (
                2,
                Op::NotIn,
                Operand::List(vec![Constant::Bool(false)]),
                "policy.operand_type_mismatch",
            ),
            (
                3,
                Op::Eq,
                Operand::One(Constant::Str("not a constant".into())),
                "policy.operand_type_mismatch",
            ),
            (
                3,
                Op::Lt,
                Operand::One(Constant::Str("x".into())),
                "policy.operator_type_mismatch",
            ),
            (
                3,
                Op::StartsWith,
                Operand::One(Constant::Int(0)),
                "policy.operand_type_mismatch",
            ),
            (
                3,
                Op::Present,
                Operand::One(Constant::Bool(true)),
                "policy.operand_type_mismatch",
            ),
            (3, Op::Eq, Operand::None, "policy.operand_type_mismatch"),
            (
                3,
                Op::In,
                Operand::List(vec![Constant::Str("z".into())]),
                "policy.operand_type_mismatch",
            ),
        ];
        for (slot, op, operand, code) in cases {
            let mut p = policy();
            let cond = ModelCond {
                kind: CondKind::Leaf(Leaf {
                    slot: *slot,
                    op: *op,
                    operand: operand.clone(),
                }),
                path: "/rules/0/when".to_owned(),
            };
            let refused = lower(&mut p, &cond, 0, 0).expect_err("must be refused");
            assert_eq!(refused.code.code(), *code, "{slot} {op:?} {operand:?}");
            assert_eq!(refused.path, "/rules/0/when");
        }
    }

    #[test]
    fn fitting_leaves_are_typed_by_their_signal() {
        let mut p = policy();
        let leaf = |slot, op, operand| ModelCond {
            kind: CondKind::Leaf(Leaf { slot, op, operand }),
            path: String::new(),
        };
        let typed = |p: &mut CompiledPolicy, c: &ModelCond| match lower(p, c, 0, 0) {
            Ok(Node {
                cond: Cond::Leaf { test, .. },
                ..
            }) => test,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            typed(&mut p, &leaf(0, Op::Ne, Operand::One(Constant::Bool(true)))),
            Test::Bool(BoolTest::Eq(false))
        );
        assert_eq!(
            typed(
                &mut p,
                &leaf(
                    1,
                    Op::NotIn,
                    Operand::List(vec![Constant::Int(3), Constant::Int(1), Constant::Int(3)])
                )
            ),
            Test::Int(IntTest::In {
                values: vec![1, 3].into(),
                negate: true
            })
        );
        assert_eq!(
            typed(&mut p, &leaf(2, Op::Le, Operand::One(Constant::Num(2.5)))),
            Test::Num(NumTest::Cmp(Cmp::Le, 2.5))
        );
        assert_eq!(
            typed(
                &mut p,
                &leaf(3, Op::Ne, Operand::One(Constant::Str("y".into())))
            ),
            Test::Str(StrTest::Eq {
                symbol: 1,
                negate: true
            })
        );
    }
}
