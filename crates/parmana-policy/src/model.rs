//! The checked policy model that both schema readers produce and the compiler consumes.

use std::fmt;

/// Which schema a policy was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SchemaVersion {
    /// The original format (`"schema_version": "1.0.0"`), read-compatible.
    #[serde(rename = "1.0.0")]
    Legacy1,
    /// The current format (`"schema_version": "2.0.0"`).
    #[serde(rename = "2.0.0")]
    V2,
}

impl SchemaVersion {
    /// The `schema_version` string, `"1.0.0"` or `"2.0.0"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Legacy1 => "1.0.0",
            Self::V2 => "2.0.0",
        }
    }
}

/// The declared type of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalType {
    /// `true` or `false`.
    Boolean,
    /// A finite IEEE 754 double.
    Number,
    /// A whole number within ±(2^53−1).
    Integer,
    /// A UTF-8 string.
    String,
}

impl SignalType {
    /// The name used in policies: `boolean`, `number`, `integer`, `string`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::Number => "number",
            Self::Integer => "integer",
            Self::String => "string",
        }
    }

    /// Whether the type is ordered (`lt le gt ge` apply).
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Number | Self::Integer)
    }
}

impl fmt::Display for SignalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with signals the policy does not declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdditionalSignals {
    /// Refuse them (the default).
    Reject,
    /// Drop them: they are neither evaluated nor part of the validated (and digested) signals.
    Ignore,
}

/// One declared signal with its constraints.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalDecl {
    pub(crate) name: String,
    pub(crate) ty: SignalType,
    pub(crate) required: bool,
    pub(crate) minimum: Option<f64>,
    pub(crate) maximum: Option<f64>,
    pub(crate) enum_values: Option<Vec<Constant>>,
    pub(crate) max_length: Option<usize>,
}

impl SignalDecl {
    /// The signal's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Its declared type.
    pub fn signal_type(&self) -> SignalType {
        self.ty
    }
    /// Whether it must be present.
    pub fn required(&self) -> bool {
        self.required
    }
    /// Inclusive lower bound (numeric types).
    pub fn minimum(&self) -> Option<f64> {
        self.minimum
    }
    /// Inclusive upper bound (numeric types).
    pub fn maximum(&self) -> Option<f64> {
        self.maximum
    }
    /// Longest allowed string in Unicode scalar values (strings).
    pub fn max_length(&self) -> Option<usize> {
        self.max_length
    }
}

/// A typed constant of a policy (operand or enum value).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Constant {
    Bool(bool),
    Num(f64),
    Int(i64),
    Str(String),
}

impl Constant {
    /// The constant as JSON, for messages and traces.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Bool(b) => serde_json::Value::Bool(*b),
            Self::Num(n) => serde_json::Number::from_f64(*n)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Self::Int(i) => serde_json::Value::from(*i),
            Self::Str(s) => serde_json::Value::String(s.clone()),
        }
    }

    /// The constant as a double, for numeric constants.
    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Num(n) => Some(*n),
            #[allow(
                clippy::cast_precision_loss,
                reason = "integers are within ±(2^53−1): the conversion is exact"
            )]
            Self::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

/// The operators of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    StartsWith,
    EndsWith,
    Present,
    Absent,
}

impl Op {
    /// Every operator of schema 2.0.0 with its name.
    pub(crate) const ALL: [(&'static str, Op); 12] = [
        ("eq", Op::Eq),
        ("ne", Op::Ne),
        ("lt", Op::Lt),
        ("le", Op::Le),
        ("gt", Op::Gt),
        ("ge", Op::Ge),
        ("in", Op::In),
        ("not_in", Op::NotIn),
        ("starts_with", Op::StartsWith),
        ("ends_with", Op::EndsWith),
        ("present", Op::Present),
        ("absent", Op::Absent),
    ];

    /// The operator's name in schema 2.0.0.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Lt => "lt",
            Self::Le => "le",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::In => "in",
            Self::NotIn => "not_in",
            Self::StartsWith => "starts_with",
            Self::EndsWith => "ends_with",
            Self::Present => "present",
            Self::Absent => "absent",
        }
    }

    /// Whether the operator reads the signal's value (everything but `present` and `absent`).
    pub(crate) fn reads_value(self) -> bool {
        !matches!(self, Self::Present | Self::Absent)
    }

    /// Whether the operator applies to a signal of type `ty`.
    pub(crate) fn fits(self, ty: SignalType) -> bool {
        match self {
            Self::Eq | Self::Ne | Self::In | Self::NotIn | Self::Present | Self::Absent => true,
            Self::Lt | Self::Le | Self::Gt | Self::Ge => ty.is_numeric(),
            Self::StartsWith | Self::EndsWith => ty == SignalType::String,
        }
    }
}

/// The operand of a leaf.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    /// `present` / `absent`.
    None,
    /// A single constant.
    One(Constant),
    /// The list of `in` / `not_in`.
    List(Vec<Constant>),
}

/// A leaf test on one signal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leaf {
    /// Index of the signal in the (name-sorted) declarations.
    pub(crate) slot: usize,
    pub(crate) op: Op,
    pub(crate) operand: Operand,
}

/// A condition node and the JSON pointer it was read from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cond {
    pub(crate) kind: CondKind,
    pub(crate) path: String,
}

/// The kinds of condition node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CondKind {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Leaf(Leaf),
}

/// A decision with an optional reason.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    pub(crate) decision: String,
    pub(crate) reason: Option<String>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    pub(crate) id: String,
    pub(crate) when: Cond,
    pub(crate) then: Outcome,
    pub(crate) path: String,
}

/// A policy that passed every static check, in either schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PolicyModel {
    pub(crate) schema: SchemaVersion,
    pub(crate) policy_id: Option<String>,
    pub(crate) policy_version: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) decisions: Vec<String>,
    /// The decisions that permit what was asked (schema 2.0.0 `permit`), when declared.
    pub(crate) permit: Option<Vec<String>>,
    /// Sorted by name; a leaf's `slot` indexes this list.
    pub(crate) signals: Vec<SignalDecl>,
    pub(crate) additional_signals: AdditionalSignals,
    pub(crate) rules: Vec<Rule>,
    pub(crate) default: Outcome,
    pub(crate) default_path: String,
}
