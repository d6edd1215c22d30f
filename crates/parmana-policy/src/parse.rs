//! Reading a policy document into the checked model: strict fields, typed signals, type-checked and guarded conditions.
//!
//! Both schemas share this reader; [`Dialect`] selects the leaf operators and the
//! top-level layout. Every problem becomes a [`Diagnostic`] with a JSON pointer and
//! reading continues, so one run reports as many problems as possible.

use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostic, DiagnosticCode as Code, join_path};
use crate::limits;
use crate::model::{
    AdditionalSignals, Cond, CondKind, Constant, Leaf, Op, Operand, Outcome, PolicyModel, Rule,
    SchemaVersion, SignalDecl, SignalType,
};

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
    condition_nodes: usize,
    too_many_nodes_reported: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(dialect: Dialect, signals: &'a [SignalDecl]) -> Self {
        Self {
            diagnostics: Vec::new(),
            dialect,
            signals,
            condition_nodes: 0,
            too_many_nodes_reported: false,
        }
    }

    pub(crate) fn report(&mut self, code: Code, path: &str, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(code, path, message));
    }

    fn report_at(&mut self, code: Code, path: &str, node: &Value, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::new(code, path, message).with_snippet(node));
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
        if self.condition_nodes > limits::MAX_CONDITION_NODES && !self.too_many_nodes_reported {
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
                for other in map.keys().filter(|k| k.as_str() != key) {
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
                                        guarded_here.push(*slot);
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
    fn list<'v>(&mut self, value: &'v Value, path: &str, what: &str) -> Option<&'v [Value]> {
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
        for key in map.keys().filter(|k| k.as_str() != "signal") {
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
            self.report_at(
                Code::UnknownOperator,
                &join_path(path, key),
                node,
                format!("unknown operator {key:?}"),
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
        let Some(slot) = self.signals.iter().position(|d| &d.name == signal) else {
            self.report_at(
                Code::UndeclaredSignal,
                &join_path(path, "signal"),
                node,
                format!("signal {signal:?} is not declared in \"signals\""),
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
                format!("operator {op_key:?} does not apply to {signal:?}, a {ty} signal"),
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
                        "expected a {ty} operand, found {}",
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
    #[allow(clippy::cast_precision_loss)]
    let bound = max as f64;
    if f.is_finite() && f.fract() == 0.0 && f.abs() <= bound {
        // Whole and within ±(2^53−1): the conversion is exact.
        #[allow(clippy::cast_possible_truncation)]
        Some(f as i64)
    } else {
        None
    }
}

/// Reports every key of `map` not in `allowed` as an unknown field.
pub(crate) fn check_fields(
    reader: &mut Reader<'_>,
    map: &Map<String, Value>,
    path: &str,
    allowed: &[&str],
) {
    for key in map.keys() {
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

/// Whether `name` is a valid decision name or rule id: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 128 characters.
pub(crate) fn valid_label(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= limits::MAX_NAME_LEN
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Reads the `signals` object, sorted by name.
pub(crate) fn read_signals(reader: &mut Reader<'_>, value: &Value, path: &str) -> Vec<SignalDecl> {
    let Value::Object(map) = value else {
        reader.report(
            Code::WrongJsonType,
            path,
            format!(
                "\"signals\" must be an object of name to declaration, found {}",
                crate::error::json_kind(value)
            ),
        );
        return Vec::new();
    };
    if map.len() > limits::MAX_SIGNALS {
        reader.report(
            Code::TooMany,
            path,
            format!(
                "{} signals declared, more than {}",
                map.len(),
                limits::MAX_SIGNALS
            ),
        );
        return Vec::new();
    }
    let mut decls = Vec::with_capacity(map.len());
    for (name, decl) in map {
        let decl_path = join_path(path, name);
        if !valid_signal_name(name) {
            reader.report(
                Code::InvalidName,
                &decl_path,
                format!(
                    "signal name {name:?} must match [A-Za-z_][A-Za-z0-9_.-]* and have at most {} characters",
                    limits::MAX_NAME_LEN
                ),
            );
            continue;
        }
        if let Some(d) = read_signal_decl(reader, name, decl, &decl_path) {
            decls.push(d);
        }
    }
    decls.sort_by(|a, b| a.name.cmp(&b.name));
    decls
}

fn read_signal_decl(
    reader: &mut Reader<'_>,
    name: &str,
    value: &Value,
    path: &str,
) -> Option<SignalDecl> {
    let Value::Object(map) = value else {
        reader.report(
            Code::WrongJsonType,
            path,
            format!(
                "the declaration of {name:?} must be an object, found {}",
                crate::error::json_kind(value)
            ),
        );
        return None;
    };
    check_fields(
        reader,
        map,
        path,
        &[
            "type",
            "required",
            "minimum",
            "maximum",
            "enum",
            "max_length",
            "description",
        ],
    );
    if let Some(d) = map.get("description") {
        string(reader, d, &join_path(path, "description"));
    }
    let ty_value = required(reader, map, path, "type")?;
    let ty = match ty_value.as_str() {
        Some("boolean") => SignalType::Boolean,
        Some("number") => SignalType::Number,
        Some("integer") => SignalType::Integer,
        Some("string") => SignalType::String,
        _ => {
            reader.report(
                Code::UnknownSignalType,
                &join_path(path, "type"),
                format!(
                    "signal {name:?} has type {ty_value}; expected \"boolean\", \"number\", \"integer\" or \"string\""
                ),
            );
            return None;
        }
    };
    let required_flag = match required(reader, map, path, "required")? {
        Value::Bool(b) => *b,
        other => {
            reader.report(
                Code::WrongJsonType,
                &join_path(path, "required"),
                format!(
                    "\"required\" must be true or false, found {}",
                    crate::error::json_kind(other)
                ),
            );
            return None;
        }
    };
    let mut ok = true;
    let mut bound = |reader: &mut Reader<'_>, key: &str| -> Option<f64> {
        let v = map.get(key)?;
        let bound_path = join_path(path, key);
        if !ty.is_numeric() {
            ok = false;
            reader.report(
                Code::InvalidConstraint,
                &bound_path,
                format!("{key:?} applies only to number and integer signals, not to {ty}"),
            );
            return None;
        }
        match v.as_f64() {
            Some(f) if f.is_finite() => Some(f),
            _ => {
                ok = false;
                reader.report(
                    Code::InvalidConstraint,
                    &bound_path,
                    format!("{key:?} must be a number"),
                );
                None
            }
        }
    };
    let minimum = bound(reader, "minimum");
    let maximum = bound(reader, "maximum");
    if let (Some(lo), Some(hi)) = (minimum, maximum)
        && lo > hi
    {
        ok = false;
        reader.report(
            Code::InvalidConstraint,
            path,
            format!("signal {name:?} has minimum {lo} above maximum {hi}"),
        );
    }
    let max_length = match map.get("max_length") {
        None => None,
        Some(v) => {
            let lp = join_path(path, "max_length");
            if ty != SignalType::String {
                ok = false;
                reader.report(
                    Code::InvalidConstraint,
                    &lp,
                    format!("\"max_length\" applies only to string signals, not to {ty}"),
                );
                None
            } else if let Some(n) = v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                Some(n)
            } else {
                ok = false;
                reader.report(
                    Code::InvalidConstraint,
                    &lp,
                    "\"max_length\" must be a non-negative integer",
                );
                None
            }
        }
    };
    let enum_values = match map.get("enum") {
        None => None,
        Some(v) => {
            let ep = join_path(path, "enum");
            if ty == SignalType::Boolean {
                ok = false;
                reader.report(
                    Code::InvalidConstraint,
                    &ep,
                    "\"enum\" does not apply to boolean signals",
                );
                None
            } else {
                let items = reader.list(v, &ep, "enum")?;
                let mut values = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let ip = join_path(&ep, &i.to_string());
                    match constant_of_type(ty, item) {
                        Ok(c) => {
                            if !constant_within(&c, minimum, maximum, max_length) {
                                ok = false;
                                reader.report(
                                    Code::InvalidConstraint,
                                    &ip,
                                    format!(
                                        "enum value {item} of {name:?} violates its own minimum, maximum or max_length"
                                    ),
                                );
                            }
                            values.push(c);
                        }
                        Err(_) => {
                            ok = false;
                            reader.report(
                                Code::InvalidConstraint,
                                &ip,
                                format!("enum value {item} is not a {ty}"),
                            );
                        }
                    }
                }
                Some(values)
            }
        }
    };
    ok.then(|| SignalDecl {
        name: name.to_owned(),
        ty,
        required: required_flag,
        minimum,
        maximum,
        enum_values,
        max_length,
    })
}

/// Whether a constant satisfies declared bounds and length.
fn constant_within(
    c: &Constant,
    minimum: Option<f64>,
    maximum: Option<f64>,
    max_length: Option<usize>,
) -> bool {
    match c {
        Constant::Str(s) => max_length.is_none_or(|m| s.chars().count() <= m),
        other => other
            .as_f64()
            .is_none_or(|f| minimum.is_none_or(|lo| f >= lo) && maximum.is_none_or(|hi| f <= hi)),
    }
}

/// Reads a whole policy document of either schema.
pub(crate) fn read_policy(bytes: &[u8]) -> (Option<PolicyModel>, Vec<Diagnostic>) {
    if bytes.len() > limits::MAX_POLICY_BYTES {
        return (
            None,
            vec![Diagnostic::new(
                Code::PolicyTooLarge,
                "",
                format!(
                    "the policy has {} bytes, more than {}",
                    bytes.len(),
                    limits::MAX_POLICY_BYTES
                ),
            )],
        );
    }
    match parmana_canon::parse_strict(bytes) {
        Ok(value) => read_policy_value(&value),
        Err(e) => (
            None,
            vec![Diagnostic::new(
                Code::InvalidJson,
                "",
                format!("not strict JSON: {e} ({})", e.code()),
            )],
        ),
    }
}

/// Reads a parsed policy document of either schema.
pub(crate) fn read_policy_value(value: &Value) -> (Option<PolicyModel>, Vec<Diagnostic>) {
    let Value::Object(map) = value else {
        return (
            None,
            vec![Diagnostic::new(
                Code::WrongJsonType,
                "",
                format!(
                    "a policy must be a JSON object, found {}",
                    crate::error::json_kind(value)
                ),
            )],
        );
    };
    match map.get("schema_version") {
        Some(Value::String(v)) if v == "2.0.0" => read_v2(map),
        Some(Value::String(v)) if v == "1.0.0" => crate::legacy::read_legacy(map),
        Some(other) => (
            None,
            vec![Diagnostic::new(
                Code::UnsupportedSchemaVersion,
                "/schema_version",
                format!(
                    "schema_version {other} is not supported; expected \"2.0.0\" (or \"1.0.0\" for legacy policies)"
                ),
            )],
        ),
        None => (
            None,
            vec![Diagnostic::new(
                Code::UnsupportedSchemaVersion,
                "",
                "the document has no \"schema_version\": it is not a policy of a known schema",
            )],
        ),
    }
}

/// Whether `id` is a valid policy id: `[a-z0-9][a-z0-9-_.]*`, no `..`, at most 128 characters.
pub fn valid_policy_id(id: &str) -> bool {
    let mut chars = id.chars();
    id.len() <= limits::MAX_NAME_LEN
        && !id.contains("..")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// Whether `version` is a semantic version `MAJOR.MINOR.PATCH` (no leading zeros),
/// optionally followed by `-prerelease` of `[0-9A-Za-z.-]`.
pub fn valid_policy_version(version: &str) -> bool {
    if version.len() > limits::MAX_NAME_LEN {
        return false;
    }
    let (core, pre) = match version.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (version, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| {
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_digit())
            && (p.len() == 1 || !p.starts_with('0'))
    };
    parts.len() == 3
        && parts.iter().all(numeric)
        && pre.is_none_or(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && !p.ends_with('.')
                && !p.contains("..")
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        })
}

/// Reads an outcome `{"decision": D, "reason": R?}`.
pub(crate) fn read_outcome(reader: &mut Reader<'_>, value: &Value, path: &str) -> Option<Outcome> {
    let Value::Object(map) = value else {
        reader.report(
            Code::WrongJsonType,
            path,
            format!(
                "an outcome must be an object {{\"decision\", \"reason\"}}, found {}",
                crate::error::json_kind(value)
            ),
        );
        return None;
    };
    check_fields(reader, map, path, &["decision", "reason"]);
    let reason = match map.get("reason") {
        Some(r) => Some(string(reader, r, &join_path(path, "reason"))?.to_owned()),
        None => None,
    };
    let decision_value = required(reader, map, path, "decision")?;
    let decision = string(reader, decision_value, &join_path(path, "decision"))?;
    Some(Outcome {
        decision: decision.to_owned(),
        reason,
    })
}

fn read_v2(map: &Map<String, Value>) -> (Option<PolicyModel>, Vec<Diagnostic>) {
    let mut top = Reader::new(Dialect::V2, &[]);
    check_fields(
        &mut top,
        map,
        "",
        &[
            "schema_version",
            "policy_id",
            "policy_version",
            "description",
            "decisions",
            "signals",
            "additional_signals",
            "rules",
            "default",
        ],
    );
    let policy_id = required(&mut top, map, "", "policy_id")
        .and_then(|v| string(&mut top, v, "/policy_id"))
        .map(str::to_owned);
    if let Some(id) = &policy_id
        && !valid_policy_id(id)
    {
        top.report(
            Code::InvalidPolicyId,
            "/policy_id",
            format!("policy_id {id:?} must match [a-z0-9][a-z0-9-_.]* without \"..\""),
        );
    }
    let policy_version = required(&mut top, map, "", "policy_version")
        .and_then(|v| string(&mut top, v, "/policy_version"))
        .map(str::to_owned);
    if let Some(v) = &policy_version
        && !valid_policy_version(v)
    {
        top.report(
            Code::InvalidPolicyVersion,
            "/policy_version",
            format!("policy_version {v:?} is not a semantic version such as \"1.0.0\""),
        );
    }
    let description = map
        .get("description")
        .and_then(|d| string(&mut top, d, "/description"))
        .map(str::to_owned);
    let additional_signals = match map.get("additional_signals") {
        None => AdditionalSignals::Reject,
        Some(Value::String(s)) if s == "reject" => AdditionalSignals::Reject,
        Some(Value::String(s)) if s == "ignore" => AdditionalSignals::Ignore,
        Some(other) => {
            top.report(
                Code::InvalidAdditionalSignals,
                "/additional_signals",
                format!("additional_signals must be \"reject\" or \"ignore\", found {other}"),
            );
            AdditionalSignals::Reject
        }
    };
    let decisions = match required(&mut top, map, "", "decisions") {
        Some(v) => read_decisions(&mut top, v),
        None => Vec::new(),
    };
    let signals = match required(&mut top, map, "", "signals") {
        Some(v) => read_signals(&mut top, v, "/signals"),
        None => Vec::new(),
    };
    let mut diagnostics = std::mem::take(&mut top.diagnostics);
    let mut reader = Reader::new(Dialect::V2, &signals);
    let mut rules = Vec::new();
    if let Some(v) = required(&mut reader, map, "", "rules") {
        match v {
            Value::Array(items) if items.len() > limits::MAX_RULES => reader.report(
                Code::TooMany,
                "/rules",
                format!("{} rules, more than {}", items.len(), limits::MAX_RULES),
            ),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(rule) = read_rule(&mut reader, item, &format!("/rules/{i}")) {
                        rules.push(rule);
                    }
                }
            }
            other => reader.report(
                Code::WrongJsonType,
                "/rules",
                format!(
                    "\"rules\" must be a list, found {}",
                    crate::error::json_kind(other)
                ),
            ),
        }
    }
    let default = required(&mut reader, map, "", "default")
        .and_then(|v| read_outcome(&mut reader, v, "/default"));
    diagnostics.append(&mut reader.diagnostics);
    let model = match (policy_id, policy_version, default) {
        (Some(id), Some(version), Some(default)) => Some(PolicyModel {
            schema: SchemaVersion::V2,
            policy_id: Some(id),
            policy_version: Some(version),
            description,
            decisions,
            signals,
            additional_signals,
            rules,
            default,
            default_path: "/default".to_owned(),
        }),
        _ => None,
    };
    crate::analysis::finish(model, diagnostics)
}

fn read_decisions(reader: &mut Reader<'_>, value: &Value) -> Vec<String> {
    let Some(items) = reader.list(value, "/decisions", "decisions") else {
        return Vec::new();
    };
    if items.len() > limits::MAX_DECISIONS {
        reader.report(
            Code::TooMany,
            "/decisions",
            format!(
                "{} decisions, more than {}",
                items.len(),
                limits::MAX_DECISIONS
            ),
        );
        return Vec::new();
    }
    let mut decisions: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("/decisions/{i}");
        let Some(name) = string(reader, item, &path) else {
            continue;
        };
        if !valid_label(name) {
            reader.report(
                Code::InvalidName,
                &path,
                format!("decision {name:?} must match [A-Za-z0-9][A-Za-z0-9_.-]*"),
            );
        } else if decisions.iter().any(|d| d == name) {
            reader.report(
                Code::DuplicateDecision,
                &path,
                format!("decision {name:?} is declared twice"),
            );
        } else {
            decisions.push(name.to_owned());
        }
    }
    decisions
}

fn read_rule(reader: &mut Reader<'_>, value: &Value, path: &str) -> Option<Rule> {
    let Value::Object(map) = value else {
        reader.report(
            Code::WrongJsonType,
            path,
            format!(
                "a rule must be an object {{\"id\", \"when\", \"then\"}}, found {}",
                crate::error::json_kind(value)
            ),
        );
        return None;
    };
    check_fields(reader, map, path, &["id", "when", "then", "description"]);
    if let Some(d) = map.get("description") {
        string(reader, d, &join_path(path, "description"));
    }
    let id =
        required(reader, map, path, "id").and_then(|v| string(reader, v, &join_path(path, "id")));
    if let Some(id) = id
        && !valid_label(id)
    {
        reader.report(
            Code::InvalidName,
            &join_path(path, "id"),
            format!("rule id {id:?} must match [A-Za-z0-9][A-Za-z0-9_.-]*"),
        );
    }
    let when = required(reader, map, path, "when")
        .and_then(|v| reader.condition(v, &join_path(path, "when"), 1, &[]));
    let then = required(reader, map, path, "then")
        .and_then(|v| read_outcome(reader, v, &join_path(path, "then")));
    Some(Rule {
        id: id?.to_owned(),
        when: when?,
        then: then?,
        path: path.to_owned(),
    })
}
