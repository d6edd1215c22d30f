//! The shared reader of both schemas: diagnostics collection, strict field helpers, typed constants, and type-checked, guarded conditions.
//!
//! Both schemas share this reader; [`Dialect`] selects the leaf operators and the
//! top-level layout. Every problem becomes a [`Diagnostic`] with a JSON pointer and
//! reading continues, so one run reports as many problems as possible.

use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostic, DiagnosticCode as Code, join_path};
use crate::limits;
use crate::model::{Cond, CondKind, Constant, Leaf, Op, Operand, SignalDecl, SignalType};

/// Which schema's condition syntax is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    V2,
    Legacy1,
}

impl Dialect {
    /// The operator a leaf key names in this dialect.
    fn operator(self, key: &str) -> Option<Op> {
        match self {
            Self::V2 => Op::ALL
                .iter()
                .find(|(name, _)| *name == key)
                .map(|(_, op)| *op),
            Self::Legacy1 => match key {
                "equals" => Some(Op::Eq),
                "greater_than" => Some(Op::Gt),
                "less_than" => Some(Op::Lt),
                _ => None,
            },
        }
    }

    /// The keys that make an object a compound condition in this dialect.
    /// Every operator name of the dialect, for suggestions.
    fn operator_names(self) -> Vec<&'static str> {
        match self {
            Self::V2 => Op::ALL.iter().map(|(name, _)| *name).collect(),
            Self::Legacy1 => vec!["equals", "greater_than", "less_than"],
        }
    }

    fn compound_keys(self) -> &'static [&'static str] {
        match self {
            Self::V2 => &["all", "any", "not"],
            Self::Legacy1 => &["all", "any"],
        }
    }
}

/// Collects diagnostics while reading one document.
pub(crate) struct Reader<'a> {
    pub(crate) diagnostics: Vec<Diagnostic>,
    pub(crate) dialect: Dialect,
    signals: &'a [SignalDecl],
    /// Names declared but refused (sorted), and whether every name counts as such: a condition
    /// on one is not reported again as undeclared.
    refused_signals: (&'a [String], bool),
    condition_nodes: usize,
    too_many_nodes_reported: bool,
    /// How many more diagnostics may show their node (see [`MAX_SNIPPETS`]).
    snippets_left: usize,
    /// What this reader's did-you-mean suggestions have left to spend, all together
    /// ([`POLICY_SUGGESTION_CELLS`](crate::suggest::POLICY_SUGGESTION_CELLS); the checks across
    /// rules and `permit` have budgets of their own).
    suggestion_cells: usize,
    /// How many diagnostics were found past [`MAX_DIAGNOSTICS`], and the first of them (an
    /// error's, where any was): [`Reader::take_diagnostics`] ends the list with it.
    unlisted: (usize, Option<Diagnostic>),
}

/// The diagnostics of one policy that show the node they name; the rest name only its path.
const MAX_SNIPPETS: usize = 100;

/// The diagnostics one reader lists: a document can hold millions of faults within its size
/// limit (`[1,1,…]` where conditions belong), and each takes memory; past this, they are
/// counted, and the last one listed says how many more there were.
pub(crate) const MAX_DIAGNOSTICS: usize = 1000;

impl<'a> Reader<'a> {
    pub(crate) fn new(dialect: Dialect, signals: &'a [SignalDecl]) -> Self {
        Self {
            diagnostics: Vec::new(),
            dialect,
            signals,
            refused_signals: (&[], false),
            condition_nodes: 0,
            too_many_nodes_reported: false,
            snippets_left: MAX_SNIPPETS,
            suggestion_cells: crate::suggest::POLICY_SUGGESTION_CELLS,
            unlisted: (0, None),
        }
    }

    /// A reader of the rules under `declared`: conditions on its declarations, and none
    /// reported as undeclared for a name whose declaration was refused.
    pub(crate) fn over(dialect: Dialect, declared: &'a crate::declare::DeclaredSignals) -> Self {
        Self {
            refused_signals: (&declared.refused, declared.all_refused),
            ..Self::new(dialect, &declared.decls)
        }
    }

    pub(crate) fn report(&mut self, code: Code, path: &str, message: impl Into<String>) {
        self.keep(Diagnostic::new(code, path, message));
    }

    /// Lists `diagnostic`, or counts it past [`MAX_DIAGNOSTICS`] (keeping the first counted,
    /// an error's where there is one, so that the list refuses what it would have refused).
    fn keep(&mut self, diagnostic: Diagnostic) {
        if self.diagnostics.len() < MAX_DIAGNOSTICS {
            self.diagnostics.push(diagnostic);
            return;
        }
        let (count, first) = &mut self.unlisted;
        *count += 1;
        if first
            .as_ref()
            .is_none_or(|kept| !kept.is_error() && diagnostic.is_error())
        {
            *first = Some(Diagnostic {
                snippet: None,
                ..diagnostic
            });
        }
    }

    /// The diagnostics found, ending, where more were found than listed, with the first of
    /// those not listed, saying how many there were.
    pub(crate) fn take_diagnostics(&mut self) -> Vec<Diagnostic> {
        let mut listed = std::mem::take(&mut self.diagnostics);
        if let (count, Some(first)) = std::mem::take(&mut self.unlisted) {
            listed.push(Diagnostic {
                message: format!(
                    "{} (and {} more diagnostics found past the first {MAX_DIAGNOSTICS}, not \
                     listed)",
                    first.message,
                    count.saturating_sub(1)
                ),
                ..first
            });
        }
        listed
    }

    pub(crate) fn report_at(
        &mut self,
        code: Code,
        path: &str,
        node: &Value,
        message: impl Into<String>,
    ) {
        let diagnostic = Diagnostic::new(code, path, message);
        // A snippet costs time in proportion to the node's members, and one node may be named
        // by a diagnostic per member: only the first diagnostics show theirs.
        let diagnostic = if self.snippets_left > 0 && self.diagnostics.len() < MAX_DIAGNOSTICS {
            self.snippets_left -= 1;
            diagnostic.with_snippet(node)
        } else {
            diagnostic
        };
        self.keep(diagnostic);
    }

    /// Reads one condition; `guarded` lists the optional signals an enclosing `all` proved present.
    pub(crate) fn condition(
        &mut self,
        value: &Value,
        path: &str,
        depth: usize,
        guarded: &[usize],
    ) -> Option<Cond> {
        if depth > limits::MAX_CONDITION_DEPTH {
            self.report_at(
                Code::TooDeep,
                path,
                value,
                format!(
                    "conditions nest deeper than {} levels",
                    limits::MAX_CONDITION_DEPTH
                ),
            );
            return None;
        }
        self.condition_nodes += 1;
        if self.condition_nodes > limits::MAX_CONDITION_NODES {
            // Reported once, at the first node past the limit; no node past it is read, so the
            // limit bounds the work as well as the policy.
            if !self.too_many_nodes_reported {
                self.too_many_nodes_reported = true;
                self.report(
                    Code::TooMany,
                    path,
                    format!(
                        "the policy has more than {} condition nodes",
                        limits::MAX_CONDITION_NODES
                    ),
                );
            }
            return None;
        }
        let Value::Object(map) = value else {
            self.report_at(
                Code::WrongJsonType,
                path,
                value,
                format!(
                    "a condition must be an object, found {}",
                    crate::error::json_kind(value)
                ),
            );
            return None;
        };
        let compound: Vec<&str> = self
            .dialect
            .compound_keys()
            .iter()
            .copied()
            .filter(|k| map.contains_key(*k))
            .collect();
        match compound.as_slice() {
            [] => self.leaf(map, value, path, guarded),
            [key] => {
                let key = *key;
                for (other, _) in sorted_members(map)
                    .into_iter()
                    .filter(|(k, _)| k.as_str() != key)
                {
                    self.report_at(
                        Code::UnknownField,
                        &join_path(path, other),
                        value,
                        format!("unknown field {other:?} beside {key:?} in a condition"),
                    );
                }
                let inner_path = join_path(path, key);
                let inner = map.get(key).unwrap_or(&Value::Null);
                let kind = match key {
                    "not" => CondKind::Not(Box::new(self.condition(
                        inner,
                        &inner_path,
                        depth + 1,
                        guarded,
                    )?)),
                    _ => {
                        let items = self.list(inner, &inner_path, key)?;
                        let mut guarded_here = guarded.to_vec();
                        let mut children = Vec::with_capacity(items.len());
                        let mut ok = true;
                        for (i, item) in items.iter().enumerate() {
                            match self.condition(
                                item,
                                &join_path(&inner_path, &i.to_string()),
                                depth + 1,
                                &guarded_here,
                            ) {
                                Some(child) => {
                                    if key == "all"
                                        && let CondKind::Leaf(Leaf {
                                            slot,
                                            op: Op::Present,
                                            ..
                                        }) = &child.kind
                                    {
                                        // Each slot once: the list is then no longer
                                        // than the declared signals however many `present`
                                        // items repeat, and a read scans no more than that.
                                        if !guarded_here.contains(slot) {
                                            guarded_here.push(*slot);
                                        }
                                    }
                                    children.push(child);
                                }
                                None => ok = false,
                            }
                        }
                        if !ok {
                            return None;
                        }
                        if key == "all" {
                            CondKind::All(children)
                        } else {
                            CondKind::Any(children)
                        }
                    }
                };
                Some(Cond {
                    kind,
                    path: path.to_owned(),
                })
            }
            _ => {
                self.report_at(
                    Code::InvalidCondition,
                    path,
                    value,
                    format!(
                        "a condition has exactly one of {}; found {}",
                        self.dialect.compound_keys().join(", "),
                        compound.join(" and ")
                    ),
                );
                None
            }
        }
    }

    /// A non-empty, bounded list.
    pub(crate) fn list<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        what: &str,
    ) -> Option<&'v [Value]> {
        let Value::Array(items) = value else {
            self.report_at(
                Code::WrongJsonType,
                path,
                value,
                format!(
                    "{what:?} must be a list, found {}",
                    crate::error::json_kind(value)
                ),
            );
            return None;
        };
        if items.is_empty() {
            self.report(
                Code::EmptyList,
                path,
                format!("{what:?} must not be empty (an empty list would decide nothing)"),
            );
            return None;
        }
        if items.len() > limits::MAX_LIST_LEN {
            self.report(
                Code::ListTooLong,
                path,
                format!(
                    "{what:?} has {} items, more than {}",
                    items.len(),
                    limits::MAX_LIST_LEN
                ),
            );
            return None;
        }
        Some(items)
    }

    fn leaf(
        &mut self,
        map: &Map<String, Value>,
        node: &Value,
        path: &str,
        guarded: &[usize],
    ) -> Option<Cond> {
        let mut ops: Vec<(&str, Op)> = Vec::new();
        let mut unknown: Vec<&str> = Vec::new();
        for (key, _) in sorted_members(map)
            .into_iter()
            .filter(|(k, _)| k.as_str() != "signal")
        {
            match self.dialect.operator(key) {
                Some(op) => ops.push((key, op)),
                None => unknown.push(key),
            }
        }
        let Some(signal_value) = map.get("signal") else {
            if ops.is_empty() {
                self.report_at(
                    Code::InvalidCondition,
                    path,
                    node,
                    format!(
                        "a condition must be one of {} or a leaf with \"signal\"",
                        self.dialect.compound_keys().join(", ")
                    ),
                );
            } else {
                self.report_at(
                    Code::MissingSignal,
                    path,
                    node,
                    "this leaf has no \"signal\"",
                );
            }
            return None;
        };
        let mut ok = true;
        for key in &unknown {
            ok = false;
            let hint = crate::suggest::hint(
                key,
                self.dialect.operator_names(),
                &mut self.suggestion_cells,
            );
            self.report_at(
                Code::UnknownOperator,
                &join_path(path, key),
                node,
                format!("unknown operator {key:?}{hint}"),
            );
        }
        let Value::String(signal) = signal_value else {
            self.report_at(
                Code::WrongJsonType,
                &join_path(path, "signal"),
                node,
                "\"signal\" must be a string",
            );
            return None;
        };
        // The bound on every string: a name longer is none declared, and is not looked up.
        if signal.chars().count() > limits::MAX_STRING_LEN {
            self.report(
                Code::StringTooLong,
                &join_path(path, "signal"),
                format!(
                    "signal name longer than {} characters",
                    limits::MAX_STRING_LEN
                ),
            );
            return None;
        }
        let Some(slot) = self
            .signals
            .binary_search_by(|d| d.name.as_str().cmp(signal))
            .ok()
        else {
            // Declared, but the declaration was refused (with its own error): not undeclared.
            let (refused, all_refused) = self.refused_signals;
            if all_refused
                || refused
                    .binary_search_by(|name| name.as_str().cmp(signal))
                    .is_ok()
            {
                return None;
            }
            let hint = crate::suggest::hint(
                signal,
                self.signals.iter().map(|d| d.name.as_str()),
                &mut self.suggestion_cells,
            );
            self.report_at(
                Code::UndeclaredSignal,
                &join_path(path, "signal"),
                node,
                format!("signal {signal:?} is not declared in \"signals\"{hint}"),
            );
            return None;
        };
        let (op_key, op) = match ops.as_slice() {
            [] => {
                self.report_at(
                    Code::MissingOperator,
                    path,
                    node,
                    format!("the leaf on {signal:?} has no operator"),
                );
                return None;
            }
            [one] => *one,
            _ => {
                let names: Vec<&str> = ops.iter().map(|(k, _)| *k).collect();
                self.report_at(
                    Code::MultipleOperators,
                    path,
                    node,
                    format!(
                        "a leaf has exactly one operator; this one has {}",
                        names.join(", ")
                    ),
                );
                return None;
            }
        };
        let decl = &self.signals[slot];
        let (ty, required) = (decl.ty, decl.required);
        let op_path = join_path(path, op_key);
        if !op.fits(ty) {
            self.report_at(
                Code::OperatorTypeMismatch,
                &op_path,
                node,
                format!(
                    "operator {op_key:?} does not apply to {signal:?}, {} signal",
                    crate::error::with_article(ty)
                ),
            );
            return None;
        }
        let operand_value = map.get(op_key).unwrap_or(&Value::Null);
        let operand = match op {
            Op::Present | Op::Absent => {
                if operand_value != &Value::Bool(true) {
                    self.report_at(
                        Code::InvalidPresence,
                        &op_path,
                        node,
                        format!(
                            "{op_key:?} must be true (write {:?} for the opposite)",
                            if op == Op::Present {
                                "absent"
                            } else {
                                "present"
                            }
                        ),
                    );
                    return None;
                }
                Operand::None
            }
            Op::In | Op::NotIn => {
                let items = self.list(operand_value, &op_path, op_key)?;
                let mut constants = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match self.constant(ty, item, &join_path(&op_path, &i.to_string()), node) {
                        Some(c) => constants.push(c),
                        None => ok = false,
                    }
                }
                Operand::List(constants)
            }
            Op::StartsWith | Op::EndsWith => {
                Operand::One(self.constant(ty, operand_value, &op_path, node)?)
            }
            _ => Operand::One(self.constant(ty, operand_value, &op_path, node)?),
        };
        if op.reads_value() && !required && !guarded.contains(&slot) {
            ok = false;
            self.report_at(
                Code::UnguardedOptionalSignal,
                path,
                node,
                format!(
                    "{signal:?} is optional: guard this leaf with an earlier {{\"signal\": {signal:?}, \"present\": true}} in an enclosing \"all\""
                ),
            );
        }
        ok.then(|| Cond {
            kind: CondKind::Leaf(Leaf { slot, op, operand }),
            path: path.to_owned(),
        })
    }

    /// A constant of the signal's type.
    fn constant(
        &mut self,
        ty: SignalType,
        value: &Value,
        path: &str,
        node: &Value,
    ) -> Option<Constant> {
        match constant_of_type(ty, value) {
            Ok(c) => Some(c),
            Err(problem) => {
                let code = if problem == ConstantProblem::TooLong {
                    Code::StringTooLong
                } else {
                    Code::OperandTypeMismatch
                };
                let message = match problem {
                    ConstantProblem::TooLong => {
                        format!("string longer than {} characters", limits::MAX_STRING_LEN)
                    }
                    ConstantProblem::WrongType => format!(
                        "expected {} operand, found {}",
                        crate::error::with_article(ty),
                        crate::error::json_kind(value)
                    ),
                };
                self.report_at(code, path, node, message);
                None
            }
        }
    }
}

/// Why a JSON value is not a constant of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConstantProblem {
    WrongType,
    TooLong,
}

/// Converts a JSON value to a constant of type `ty` (integers: whole numbers within ±(2^53−1)).
pub(crate) fn constant_of_type(ty: SignalType, value: &Value) -> Result<Constant, ConstantProblem> {
    match (ty, value) {
        (SignalType::Boolean, Value::Bool(b)) => Ok(Constant::Bool(*b)),
        (SignalType::Number, Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Constant::Num)
            .ok_or(ConstantProblem::WrongType),
        (SignalType::Integer, Value::Number(n)) => integer_of(n)
            .map(Constant::Int)
            .ok_or(ConstantProblem::WrongType),
        (SignalType::String, Value::String(s)) => {
            if s.chars().count() > limits::MAX_STRING_LEN {
                Err(ConstantProblem::TooLong)
            } else {
                Ok(Constant::Str(s.clone()))
            }
        }
        _ => Err(ConstantProblem::WrongType),
    }
}

/// The whole number a JSON number denotes, if it is one within ±(2^53−1).
pub(crate) fn integer_of(n: &serde_json::Number) -> Option<i64> {
    let max = parmana_canon::MAX_SAFE_INTEGER;
    if let Some(i) = n.as_i64() {
        return (-max..=max).contains(&i).then_some(i);
    }
    let f = n.as_f64()?;
    #[allow(
        clippy::cast_precision_loss,
        reason = "the bound is at most 2^53−1: exact"
    )]
    let bound = max as f64;
    if f.is_finite() && f.fract() == 0.0 && f.abs() <= bound {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "whole and within ±(2^53−1): the conversion is exact"
        )]
        Some(f as i64)
    } else {
        None
    }
}

/// The members of `map` in key order (by bytes), whatever order serde_json keeps: a build in
/// which another crate turns on its `preserve_order` keeps the document's. What the reader
/// reports, and so the code of a refused policy (its first error's), does not depend on the
/// build.
pub(crate) fn sorted_members(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    members
}

/// Reports every key of `map` not in `allowed` as an unknown field.
pub(crate) fn check_fields(
    reader: &mut Reader<'_>,
    map: &Map<String, Value>,
    path: &str,
    allowed: &[&str],
) {
    for (key, _) in sorted_members(map) {
        if !allowed.contains(&key.as_str()) {
            reader.report(
                Code::UnknownField,
                &join_path(path, key),
                format!(
                    "unknown field {key:?} (expected one of: {})",
                    allowed.join(", ")
                ),
            );
        }
    }
}

/// A required field, reporting it when missing.
pub(crate) fn required<'v>(
    reader: &mut Reader<'_>,
    map: &'v Map<String, Value>,
    path: &str,
    name: &str,
) -> Option<&'v Value> {
    let value = map.get(name);
    if value.is_none() {
        reader.report(
            Code::MissingField,
            path,
            format!("missing required field {name:?}"),
        );
    }
    value
}

/// A string field, reporting wrong JSON types and over-long strings.
pub(crate) fn string<'v>(reader: &mut Reader<'_>, value: &'v Value, path: &str) -> Option<&'v str> {
    match value {
        Value::String(s) if s.chars().count() <= limits::MAX_STRING_LEN => Some(s),
        Value::String(_) => {
            reader.report(
                Code::StringTooLong,
                path,
                format!("string longer than {} characters", limits::MAX_STRING_LEN),
            );
            None
        }
        other => {
            reader.report(
                Code::WrongJsonType,
                path,
                format!(
                    "expected a string, found {}",
                    crate::error::json_kind(other)
                ),
            );
            None
        }
    }
}

/// Whether `name` is a valid signal name: `[A-Za-z_][A-Za-z0-9_.-]*`, at most 128 characters.
pub(crate) fn valid_signal_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= limits::MAX_NAME_LEN
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A signal name as traces and explanations show it: as written when it is within 2.0.0's
/// grammar, otherwise (a legacy name such as `10`, `a b` or `""`) as a JSON string, so that no
/// name can read as another name, an operator or a value.
pub(crate) fn shown_signal_name(name: &str) -> std::borrow::Cow<'_, str> {
    if valid_signal_name(name) {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(crate::diagnostic::json_text(&Value::String(
            name.to_owned(),
        )))
    }
}

/// Whether `name` is a valid decision name or rule id: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 128 characters.
/// The grammar is canon's ([`parmana_canon::is_label`]), the one an attestation verifier checks.
pub(crate) fn valid_label(name: &str) -> bool {
    parmana_canon::is_label(name)
}
