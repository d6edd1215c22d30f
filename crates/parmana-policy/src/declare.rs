//! Reading the `signals` declarations: names, types, `required`, and the constraints `minimum`, `maximum`, `enum`, `max_length`.

use serde_json::Value;

use crate::diagnostic::{DiagnosticCode as Code, join_path};
use crate::limits;
use crate::model::{Constant, SignalDecl, SignalType};
use crate::parse::{
    Dialect, Reader, check_fields, constant_of_type, integer_of, required, string,
    valid_signal_name,
};

/// The `signals` object as read: the declarations taken, sorted by name, and the names of those
/// refused (their own errors reported), so that a condition on one is not reported again as
/// undeclared.
#[derive(Debug, Default)]
pub(crate) struct DeclaredSignals {
    pub(crate) decls: Vec<SignalDecl>,
    /// Sorted.
    pub(crate) refused: Vec<String>,
    /// The whole object was refused (too many declarations): every name counts as refused.
    pub(crate) all_refused: bool,
}

/// Reads the `signals` object.
pub(crate) fn read_signals(reader: &mut Reader<'_>, value: &Value, path: &str) -> DeclaredSignals {
    let Value::Object(map) = value else {
        reader.report(
            Code::WrongJsonType,
            path,
            format!(
                "\"signals\" must be an object of name to declaration, found {}",
                crate::error::json_kind(value)
            ),
        );
        return DeclaredSignals {
            all_refused: true,
            ..DeclaredSignals::default()
        };
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
        // Every name refused with the object; a condition on any other is still undeclared.
        let mut refused: Vec<String> = map.keys().cloned().collect();
        refused.sort();
        return DeclaredSignals {
            refused,
            ..DeclaredSignals::default()
        };
    }
    let mut decls = Vec::with_capacity(map.len());
    let mut refused = Vec::new();
    for (name, decl) in crate::parse::sorted_members(map) {
        let decl_path = join_path(path, name);
        // The bound on every string, before the grammar (both schemas).
        if name.chars().count() > limits::MAX_STRING_LEN {
            reader.report(
                Code::StringTooLong,
                &decl_path,
                format!(
                    "signal name longer than {} characters",
                    limits::MAX_STRING_LEN
                ),
            );
            refused.push(name.clone());
            continue;
        }
        // Schema 1.0.0 names signals with any JSON string, as the original tooling did; 2.0.0
        // keeps its grammar.
        if reader.dialect == Dialect::V2 && !valid_signal_name(name) {
            reader.report(
                Code::InvalidName,
                &decl_path,
                format!(
                    "signal name {name:?} must match [A-Za-z_][A-Za-z0-9_.-]* and have at most {} characters",
                    limits::MAX_NAME_LEN
                ),
            );
            refused.push(name.clone());
            continue;
        }
        match read_signal_decl(reader, name, decl, &decl_path) {
            Some(d) => decls.push(d),
            None => refused.push(name.clone()),
        }
    }
    decls.sort_by(|a, b| a.name.cmp(&b.name));
    refused.sort();
    DeclaredSignals {
        decls,
        refused,
        all_refused: false,
    }
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
                    "signal {name:?} has type {}; expected \"boolean\", \"number\", \"integer\" or \"string\"",
                    crate::diagnostic::snippet_of(ty_value)
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
            } else if let Some(n) = v
                .as_number()
                .and_then(integer_of)
                .and_then(|n| usize::try_from(n).ok())
            {
                // A whole number however it is spelt (`5`, `5.0`, `5e0`), as for `integer`.
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
                        Err(crate::parse::ConstantProblem::TooLong) => {
                            ok = false;
                            reader.report(
                                Code::StringTooLong,
                                &ip,
                                format!(
                                    "enum value of {name:?}: string longer than {} characters",
                                    crate::limits::MAX_STRING_LEN
                                ),
                            );
                        }
                        Err(crate::parse::ConstantProblem::WrongType) => {
                            ok = false;
                            reader.report(
                                Code::InvalidConstraint,
                                &ip,
                                format!(
                                    "enum value {} is not {}",
                                    crate::diagnostic::snippet_of(item),
                                    crate::error::with_article(ty)
                                ),
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
