//! Signal validation: a JSON object checked against the policy's declarations becomes [`ValidatedSignals`], typed and slotted.

use std::fmt;

use serde_json::{Map, Value};

use crate::compile::CompiledPolicy;
use crate::error::{SignalError, json_kind};
use crate::model::{AdditionalSignals, Constant, SignalDecl, SignalType};

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

/// A scalar signal value as read from the input, before its declaration is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar<'a> {
    Bool(bool),
    /// An integer within ±(2^53−1).
    Int(i64),
    /// Any other number.
    Float(f64),
    Str(&'a str),
    /// `null`, a list or an object.
    Other,
}

/// Why a scalar does not fit its declaration (turned into a [`SignalError`] by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    WrongType,
    NotInteger,
    OutOfRange,
    NotInEnum,
    TooLong { length: usize, max_length: usize },
}

/// A JSON number as a scalar: integers within ±(2^53−1) stay integers.
fn scalar_of_number(n: &serde_json::Number) -> Scalar<'static> {
    let max = parmana_canon::MAX_SAFE_INTEGER;
    match n.as_i64() {
        Some(i) if (-max..=max).contains(&i) => Scalar::Int(i),
        _ => n.as_f64().map_or(Scalar::Other, Scalar::Float),
    }
}

/// Whether `n` is a double, or an integer a double holds exactly (every one within ±(2^53−1)).
fn exact_as_double(n: &serde_json::Number) -> bool {
    let exact = |as_double: Option<f64>, as_integer: i128| {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "compared back with the integer: a truncation is what is detected"
        )]
        as_double.is_some_and(|f| f.is_finite() && f as i128 == as_integer)
    };
    match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => exact(n.as_f64(), i128::from(i)),
        (None, Some(u)) => exact(n.as_f64(), i128::from(u)),
        (None, None) => true,
    }
}

/// An integer anywhere in `value` that no double holds exactly, if there is one (walked without
/// recursion: a tree built in code may be of any depth).
fn first_inexact_integer(value: &Value) -> Option<&serde_json::Number> {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Number(n) if !exact_as_double(n) => return Some(n),
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    None
}

/// The whole number a double denotes, if it is one within ±(2^53−1).
pub(crate) fn whole_number(f: f64) -> Option<i64> {
    #[allow(clippy::cast_precision_loss, reason = "2^53−1 is exact as a double")]
    let bound = parmana_canon::MAX_SAFE_INTEGER as f64;
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
    ///
    /// Written straight from the slots (no JSON tree is built): each present signal is
    /// serialized as its `Value` would be — booleans, `integer` slots as integers, `number`
    /// slots as doubles, strings — so the bytes are identical (a property test checks it).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, parmana_canon::CanonError> {
        parmana_canon::to_canonical_vec(&SlotsView(self))
    }

    /// [`canonical_bytes`](Self::canonical_bytes) as a [`RawCanonical`](parmana_canon::RawCanonical),
    /// to embed in another canonical document without encoding it again.
    pub fn canonical(&self) -> Result<parmana_canon::RawCanonical, parmana_canon::CanonError> {
        parmana_canon::RawCanonical::encode(&SlotsView(self))
    }

    /// The `sha256:` digest of [`canonical_bytes`](Self::canonical_bytes).
    pub fn digest(&self) -> Result<parmana_canon::Digest, parmana_canon::CanonError> {
        Ok(parmana_canon::Digest::of(&self.canonical_bytes()?))
    }
}

/// The present slots as a JSON object, serialized without building a [`Value`].
struct SlotsView<'a, 'p>(&'a ValidatedSignals<'p>);

impl serde::Serialize for SlotsView<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let signals = self.0;
        let present = signals
            .slots
            .iter()
            .filter(|slot| !matches!(slot, Slot::Absent))
            .count();
        let mut map = serializer.serialize_map(Some(present))?;
        for (decl, slot) in signals.policy.signals.iter().zip(&signals.slots) {
            match slot {
                Slot::Absent => {}
                Slot::Bool(b) => map.serialize_entry(decl.name.as_str(), b)?,
                Slot::Int(i) => map.serialize_entry(decl.name.as_str(), i)?,
                // As `serde_json::Number::from_f64` serializes it (slots hold finite numbers;
                // a non-finite one would be `null` in the tree, as here).
                Slot::Num(n) if n.is_finite() => map.serialize_entry(decl.name.as_str(), n)?,
                Slot::Num(_) => map.serialize_entry(decl.name.as_str(), &())?,
                Slot::Str { text, .. } => map.serialize_entry(decl.name.as_str(), &**text)?,
            }
        }
        map.end()
    }
}

impl CompiledPolicy {
    /// Validates signals given as a JSON object against the declarations.
    ///
    /// Declared signals are checked in name order (missing, type, whole number, range,
    /// enum, length), then undeclared names in sorted order. Every problem is reported: one as
    /// itself, several as [`SignalError::Several`] whose code is the first one's.
    pub fn validate_signals(&self, signals: &Value) -> Result<ValidatedSignals<'_>, SignalError> {
        let Value::Object(map) = signals else {
            return Err(SignalError::NotAnObject {
                found: json_kind(signals),
            });
        };
        // What the strict parser refuses before anything else, wherever it is in the text (a
        // tree built in code can hold it): the same refusal here, before any other problem.
        if let Some(n) = first_inexact_integer(signals) {
            return Err(SignalError::InvalidJson(
                parmana_canon::CanonError::NotRepresentable {
                    message: format!("{n} is an integer no IEEE 754 double holds exactly"),
                },
            ));
        }
        let mut problems = Problems::default();
        let mut slots = Vec::with_capacity(self.signals.len());
        for decl in &self.signals {
            slots.push(match map.get(&decl.name) {
                None if decl.required => {
                    problems.push(SignalError::Missing {
                        signal: decl.name.clone(),
                    });
                    Slot::Absent
                }
                None => Slot::Absent,
                Some(value) => match self.slot_of(decl, value) {
                    Ok(slot) => slot,
                    Err(problem) => {
                        problems.push(problem);
                        Slot::Absent
                    }
                },
            });
        }
        if self.additional_signals == AdditionalSignals::Reject {
            let mut undeclared: Vec<&String> = map
                .keys()
                .filter(|k| self.slot_index(k).is_none())
                .collect();
            undeclared.sort();
            // A suggestion is looked for only for a problem that will be listed, and within one
            // budget for all of them: names sent from outside cost bounded time.
            let mut cells_left = crate::suggest::SUGGESTION_CELLS;
            for name in undeclared {
                let suggestion = if problems.has_room() {
                    crate::suggest::closest(
                        name,
                        self.signals
                            .iter()
                            .filter(|d| !map.contains_key(&d.name))
                            .map(|d| d.name.as_str()),
                        &mut cells_left,
                    )
                    .map(str::to_owned)
                } else {
                    None
                };
                problems.push(SignalError::Undeclared {
                    // The caller's name, quoted bounded (`excerpt`).
                    signal: parmana_canon::excerpt(name),
                    suggestion,
                });
            }
        }
        problems.into_result()?;
        Ok(ValidatedSignals {
            policy: self,
            slots,
        })
    }

    /// The slot of a declared signal (declarations are sorted by name).
    pub(crate) fn slot_index(&self, name: &str) -> Option<usize> {
        self.signal_index
            .find(name, |i| self.signals.get(i).map(|d| d.name.as_str()))
    }

    /// Parses JSON text strictly (`parmana_canon::parse_strict`) and validates it as signals.
    ///
    /// The result is exactly that of `validate_signals(&parse_strict(text)?)`. A flat object
    /// of declared scalars without escapes (the common case) is read directly into slots
    /// without building a JSON tree; anything else, and every refusal, goes through the
    /// strict parser so that errors are reported identically.
    pub fn validate_signals_json(&self, text: &[u8]) -> Result<ValidatedSignals<'_>, SignalError> {
        if let Some(slots) = crate::fast::read_flat_signals(self, text) {
            return Ok(ValidatedSignals {
                policy: self,
                slots,
            });
        }
        let value = parmana_canon::parse_strict(text).map_err(SignalError::InvalidJson)?;
        self.validate_signals(&value)
    }

    fn slot_of(&self, decl: &SignalDecl, value: &Value) -> Result<Slot, SignalError> {
        let scalar = match value {
            Value::Bool(b) => Scalar::Bool(*b),
            // An integer beyond ±(2^53−1) that no double holds exactly (a tree built in code;
            // the strict parser refuses it as text) would be attested rounded: refused, as the
            // canonical encoder refuses it.
            Value::Number(n) if !exact_as_double(n) => {
                return Err(SignalError::InvalidJson(
                    parmana_canon::CanonError::NotRepresentable {
                        message: format!(
                            "signal {:?} = {n} is an integer no IEEE 754 double holds exactly",
                            decl.name
                        ),
                    },
                ));
            }
            Value::Number(n) => scalar_of_number(n),
            Value::String(s) => Scalar::Str(s),
            _ => Scalar::Other,
        };
        self.check_scalar(decl, scalar).map_err(|problem| {
            let signal = decl.name.clone();
            match problem {
                Problem::WrongType => SignalError::WrongType {
                    signal,
                    expected: decl.ty.as_str(),
                    found: json_kind(value),
                },
                Problem::NotInteger => SignalError::NotInteger {
                    signal,
                    value: value.to_string(),
                },
                Problem::OutOfRange => {
                    let show =
                        |b: Option<f64>, inf: &str| b.map_or(inf.to_owned(), |x| x.to_string());
                    SignalError::OutOfRange {
                        signal,
                        value: value.to_string(),
                        range: format!(
                            "[{}, {}]",
                            show(decl.minimum, "-inf"),
                            show(decl.maximum, "+inf")
                        ),
                    }
                }
                Problem::NotInEnum => SignalError::NotInEnum {
                    signal,
                    // The caller's value, quoted bounded (`excerpt`).
                    value: parmana_canon::excerpt(&value.to_string()),
                },
                Problem::TooLong { length, max_length } => SignalError::TooLong {
                    signal,
                    length,
                    max_length,
                },
            }
        })
    }

    /// Checks one scalar against its declaration and makes its slot: the single
    /// definition of signal validity, shared by the `Value` path and the fast text path.
    pub(crate) fn check_scalar(
        &self,
        decl: &SignalDecl,
        scalar: Scalar<'_>,
    ) -> Result<Slot, Problem> {
        let slot = match (decl.ty, scalar) {
            (SignalType::Boolean, Scalar::Bool(b)) => Slot::Bool(b),
            #[allow(clippy::cast_precision_loss, reason = "within ±(2^53−1): exact")]
            (SignalType::Number, Scalar::Int(i)) => Slot::Num(i as f64),
            (SignalType::Number, Scalar::Float(f)) if f.is_finite() => Slot::Num(f),
            (SignalType::Integer, Scalar::Int(i)) => Slot::Int(i),
            (SignalType::Integer, Scalar::Float(f)) => {
                Slot::Int(whole_number(f).ok_or(Problem::NotInteger)?)
            }
            (SignalType::String, Scalar::Str(s)) => Slot::Str {
                symbol: self.symbol_of(s),
                text: s.into(),
            },
            _ => return Err(Problem::WrongType),
        };
        let number = match &slot {
            Slot::Num(f) => Some(*f),
            #[allow(clippy::cast_precision_loss, reason = "within ±(2^53−1): exact")]
            Slot::Int(i) => Some(*i as f64),
            _ => None,
        };
        if let Some(f) = number {
            let below = decl.minimum.is_some_and(|lo| f < lo);
            let above = decl.maximum.is_some_and(|hi| f > hi);
            if below || above {
                return Err(Problem::OutOfRange);
            }
        }
        if let Some(values) = &decl.enum_values {
            let found = values.iter().any(|c| match (c, &slot) {
                (Constant::Str(a), Slot::Str { text, .. }) => a.as_str() == &**text,
                (c, _) => c.as_f64().is_some_and(|a| Some(a) == number),
            });
            if !found {
                return Err(Problem::NotInEnum);
            }
        }
        if let (Some(max_length), Scalar::Str(s)) = (decl.max_length, scalar) {
            let length = s.chars().count();
            if length > max_length {
                return Err(Problem::TooLong { length, max_length });
            }
        }
        Ok(slot)
    }
}

/// The problems found while validating signals, bounded: the first, up to
/// [`MAX_REPORTED_SIGNAL_PROBLEMS`](crate::MAX_REPORTED_SIGNAL_PROBLEMS) in all, and a count of the rest.
#[derive(Default)]
struct Problems {
    listed: Vec<SignalError>,
    unlisted: usize,
}

impl Problems {
    /// Whether the next problem pushed will be listed.
    fn has_room(&self) -> bool {
        self.listed.len() < crate::MAX_REPORTED_SIGNAL_PROBLEMS
    }

    fn push(&mut self, problem: SignalError) {
        if self.has_room() {
            self.listed.push(problem);
        } else {
            self.unlisted += 1;
        }
    }

    fn into_result(self) -> Result<(), SignalError> {
        let mut listed = self.listed.into_iter();
        let Some(first) = listed.next() else {
            return Ok(());
        };
        let more: Vec<SignalError> = listed.collect();
        if more.is_empty() {
            return Err(first);
        }
        Err(SignalError::Several {
            first: Box::new(first),
            more,
            unlisted: self.unlisted,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use crate::{CompiledPolicy, MAX_REPORTED_SIGNAL_PROBLEMS, SignalError, compile};

    /// A policy of one required signal `amount` of type `ty`, deciding `ok`.
    fn amount_policy(ty: &str) -> CompiledPolicy {
        compile(
            format!(
                r#"{{"schema_version": "2.0.0", "policy_id": "p", "policy_version": "1.0.0",
                    "decisions": ["ok"], "signals": {{"amount": {{"type": "{ty}", "required": true}}}},
                    "rules": [], "default": {{"decision": "ok"}}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn problems_are_all_reported_but_bounded() {
        let policy = amount_policy("integer");
        let mut signals = Map::new();
        for i in 0..1000 {
            signals.insert(format!("extra{i:04}"), json!(1));
        }
        let err = policy
            .validate_signals(&Value::Object(signals))
            .unwrap_err();
        assert_eq!(err.code(), "policy.signal_missing");
        let SignalError::Several { more, unlisted, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(more.len() + 1, MAX_REPORTED_SIGNAL_PROBLEMS);
        assert_eq!(more.len() + 1 + unlisted, 1001);
        assert_eq!(err.problems().len(), MAX_REPORTED_SIGNAL_PROBLEMS);
        assert!(err.to_string().len() < 4096, "{}", err.to_string().len());
        let one = policy.validate_signals(&json!({"amont": 1})).unwrap_err();
        assert_eq!(
            one.to_string(),
            "required signal \"amount\" is missing; and 1 more: signal \"amont\" is not declared by the policy (did you mean \"amount\"?)"
        );
    }

    /// A tree built in code can hold an integer no double holds exactly; it is refused, as its
    /// text is by the strict parser, never attested rounded. Integers a double holds exactly,
    /// however large, are numbers like any other.
    #[test]
    fn an_integer_no_double_holds_is_refused_not_rounded() {
        let policy = amount_policy("number");
        for inexact in [
            json!(9_007_199_254_740_993_u64),
            json!(-9_007_199_254_740_993_i64),
            json!(u64::MAX),
        ] {
            let err = policy
                .validate_signals(&json!({ "amount": inexact }))
                .unwrap_err();
            // The code the same text gets from the strict parser.
            assert_eq!(
                err.code(),
                "policy.signals_invalid_json",
                "{inexact}: {err}"
            );
            // Whatever else is wrong, and wherever it is, as the parser refuses the text first.
            for signals in [
                json!({ "other": inexact }),
                json!({ "amount": 1, "other": [{ "deep": inexact }] }),
            ] {
                let err = policy.validate_signals(&signals).unwrap_err();
                assert_eq!(
                    err.code(),
                    "policy.signals_invalid_json",
                    "{signals}: {err}"
                );
                let text = serde_json::to_vec(&signals).unwrap();
                assert_eq!(
                    policy.validate_signals_json(&text).unwrap_err().code(),
                    err.code()
                );
            }
        }
        for exact in [
            json!(9_007_199_254_740_992_u64),
            json!(9_007_199_254_740_991_i64),
            json!(-9_007_199_254_740_992_i64),
            json!(1e300),
        ] {
            let signals = policy
                .validate_signals(&json!({ "amount": exact }))
                .unwrap();
            assert_eq!(
                signals.canonical().unwrap().as_bytes(),
                parmana_canon::canonicalize_value(&json!({ "amount": exact }))
                    .unwrap()
                    .as_slice(),
                "{exact}"
            );
        }
    }
}
