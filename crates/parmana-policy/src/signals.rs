//! Signal validation: a JSON object checked against the policy's declarations becomes [`ValidatedSignals`], typed and slotted.

use std::fmt;

use serde_json::{Map, Value};

use crate::compile::CompiledPolicy;
use crate::error::{SignalError, json_kind};
use crate::model::{AdditionalSignals, Constant, SignalDecl, SignalType};
use crate::parse::integer_of;

/// The value of one signal slot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Slot {
    Absent,
    Bool(bool),
    Num(f64),
    Int(i64),
    /// A string with its symbol (position among the policy's string constants, or `NO_SYMBOL`).
    Str {
        symbol: u32,
        text: Box<str>,
    },
}

/// A typed signal value, as traces show it.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalValue {
    /// A boolean signal.
    Boolean(bool),
    /// A number signal.
    Number(f64),
    /// An integer signal.
    Integer(i64),
    /// A string signal.
    String(String),
}

impl SignalValue {
    /// The value as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Boolean(b) => Value::Bool(*b),
            Self::Number(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
            Self::Integer(i) => Value::from(*i),
            Self::String(s) => Value::String(s.clone()),
        }
    }

    pub(crate) fn from_slot(slot: &Slot) -> Option<Self> {
        match slot {
            Slot::Absent => None,
            Slot::Bool(b) => Some(Self::Boolean(*b)),
            Slot::Num(n) => Some(Self::Number(*n)),
            Slot::Int(i) => Some(Self::Integer(*i)),
            Slot::Str { text, .. } => Some(Self::String(text.to_string())),
        }
    }
}

impl fmt::Display for SignalValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::diagnostic::json_text(&self.to_json()))
    }
}

impl serde::Serialize for SignalValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

/// Signals that passed validation against one policy: every required signal present,
/// every value of its declared type and within its constraints, nothing undeclared kept.
///
/// Only [`CompiledPolicy::validate_signals`] and [`CompiledPolicy::validate_signals_json`]
/// build this value; it borrows the policy it was checked against, so it can only be
/// evaluated by that policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedSignals<'p> {
    pub(crate) policy: &'p CompiledPolicy,
    /// One value per declared signal, in the policy's (name-sorted) declaration order.
    pub(crate) slots: Vec<Slot>,
}

impl<'p> ValidatedSignals<'p> {
    /// The policy these signals were validated against.
    pub fn policy(&self) -> &'p CompiledPolicy {
        self.policy
    }

    /// The value of a declared signal, `None` when it is absent or not declared.
    pub fn get(&self, name: &str) -> Option<SignalValue> {
        let slot = self.policy.slot_index(name)?;
        self.slots.get(slot).and_then(SignalValue::from_slot)
    }

    /// The validated signals as a JSON object of the declared, present signals
    /// (undeclared signals ignored under `"additional_signals": "ignore"` are not in it).
    pub fn to_json_value(&self) -> Value {
        let mut map = Map::new();
        for (decl, slot) in self.policy.signals.iter().zip(&self.slots) {
            if let Some(v) = SignalValue::from_slot(slot) {
                map.insert(decl.name.clone(), v.to_json());
            }
        }
        Value::Object(map)
    }

    /// The RFC 8785 canonical bytes of [`to_json_value`](Self::to_json_value): what an attestation's
    /// `signals_digest` is computed over.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, parmana_canon::CanonError> {
        parmana_canon::to_canonical_vec(&self.to_json_value())
    }

    /// The `sha256:` digest of [`canonical_bytes`](Self::canonical_bytes).
    pub fn digest(&self) -> Result<parmana_canon::Digest, parmana_canon::CanonError> {
        Ok(parmana_canon::Digest::of(&self.canonical_bytes()?))
    }
}

impl CompiledPolicy {
    /// Validates signals given as a JSON object against the declarations.
    ///
    /// Declared signals are checked in name order (missing, type, whole number, range,
    /// enum, length), then undeclared names in sorted order; the first problem is returned.
    pub fn validate_signals(&self, signals: &Value) -> Result<ValidatedSignals<'_>, SignalError> {
        let Value::Object(map) = signals else {
            return Err(SignalError::NotAnObject {
                found: json_kind(signals),
            });
        };
        let mut slots = Vec::with_capacity(self.signals.len());
        for decl in &self.signals {
            slots.push(match map.get(&decl.name) {
                None if decl.required => {
                    return Err(SignalError::Missing {
                        signal: decl.name.clone(),
                    });
                }
                None => Slot::Absent,
                Some(value) => self.slot_of(decl, value)?,
            });
        }
        if self.additional_signals == AdditionalSignals::Reject {
            let mut undeclared: Vec<&String> = map
                .keys()
                .filter(|k| self.slot_index(k).is_none())
                .collect();
            undeclared.sort();
            if let Some(name) = undeclared.first() {
                return Err(SignalError::Undeclared {
                    signal: (*name).clone(),
                });
            }
        }
        Ok(ValidatedSignals {
            policy: self,
            slots,
        })
    }

    /// The slot of a declared signal (declarations are sorted by name).
    pub(crate) fn slot_index(&self, name: &str) -> Option<usize> {
        self.signals
            .binary_search_by(|d| d.name.as_str().cmp(name))
            .ok()
    }

    /// Parses JSON text strictly (`parmana_canon::parse_strict`) and validates it as signals.
    pub fn validate_signals_json(&self, text: &[u8]) -> Result<ValidatedSignals<'_>, SignalError> {
        let value = parmana_canon::parse_strict(text).map_err(SignalError::InvalidJson)?;
        self.validate_signals(&value)
    }

    fn slot_of(&self, decl: &SignalDecl, value: &Value) -> Result<Slot, SignalError> {
        let wrong_type = || SignalError::WrongType {
            signal: decl.name.clone(),
            expected: decl.ty.as_str(),
            found: json_kind(value),
        };
        let (slot, constant) = match (decl.ty, value) {
            (SignalType::Boolean, Value::Bool(b)) => (Slot::Bool(*b), Constant::Bool(*b)),
            (SignalType::Number, Value::Number(n)) => {
                let f = n
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .ok_or_else(wrong_type)?;
                (Slot::Num(f), Constant::Num(f))
            }
            (SignalType::Integer, Value::Number(n)) => {
                let i = integer_of(n).ok_or_else(|| SignalError::NotInteger {
                    signal: decl.name.clone(),
                    value: n.to_string(),
                })?;
                (Slot::Int(i), Constant::Int(i))
            }
            (SignalType::String, Value::String(s)) => (
                Slot::Str {
                    symbol: self.symbol_of(s),
                    text: s.as_str().into(),
                },
                Constant::Str(s.clone()),
            ),
            _ => return Err(wrong_type()),
        };
        if let Some(f) = constant.as_f64() {
            let below = decl.minimum.is_some_and(|lo| f < lo);
            let above = decl.maximum.is_some_and(|hi| f > hi);
            if below || above {
                let show = |b: Option<f64>, inf: &str| b.map_or(inf.to_owned(), |x| x.to_string());
                return Err(SignalError::OutOfRange {
                    signal: decl.name.clone(),
                    value: value.to_string(),
                    range: format!(
                        "[{}, {}]",
                        show(decl.minimum, "-inf"),
                        show(decl.maximum, "+inf")
                    ),
                });
            }
        }
        if let Some(values) = &decl.enum_values {
            let found = values
                .iter()
                .any(|c| match (c.as_f64(), constant.as_f64()) {
                    (Some(a), Some(b)) => a == b,
                    _ => c == &constant,
                });
            if !found {
                return Err(SignalError::NotInEnum {
                    signal: decl.name.clone(),
                    value: value.to_string(),
                });
            }
        }
        if let (Some(max), Value::String(s)) = (decl.max_length, value) {
            let length = s.chars().count();
            if length > max {
                return Err(SignalError::TooLong {
                    signal: decl.name.clone(),
                    length,
                    max_length: max,
                });
            }
        }
        Ok(slot)
    }
}
