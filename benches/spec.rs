//! The engine-neutral policy definition the benchmarks share: signals, ordered rules, a default.
//!
//! A [`PolicySpec`] is read once from `benches/claims/claims.json` (or built in code for the
//! scaling rows) and rendered into each engine's language by [`crate::render`]. It also carries a
//! tiny reference evaluator ([`PolicySpec::decide`]) so the differential check has an oracle that
//! belongs to none of the engines under test.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// Why a policy definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The text is not strict JSON.
    #[error("policy definition is not strict JSON: {0}")]
    Json(#[from] parmana_canon::CanonError),
    /// The JSON does not have the shape of a policy definition.
    #[error("policy definition has the wrong shape: {0}")]
    Shape(String),
    /// A name (policy, signal, rule, decision) is not of the form the three languages share.
    #[error("{what} {name:?} is not a plain identifier")]
    BadName {
        /// What kind of name it is.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A rule reads a signal that is not declared.
    #[error("rule {rule:?} reads undeclared signal {signal:?}")]
    UndeclaredSignal {
        /// The rule.
        rule: String,
        /// The signal.
        signal: String,
    },
    /// A leaf compares a signal with an operator or value that does not fit its type.
    #[error("rule {rule:?}: operator {op} with this value does not fit signal {signal:?}")]
    OperatorMismatch {
        /// The rule.
        rule: String,
        /// The signal.
        signal: String,
        /// The operator.
        op: Op,
    },
    /// A rule or the default names a decision that is not declared.
    #[error("decision {0:?} is not declared")]
    UndeclaredDecision(String),
    /// Two rules share an id, or a rule is called `default`.
    #[error("rule id {0:?} is used twice or is reserved")]
    DuplicateRule(String),
    /// A rule has no conditions, or an `in` list is empty.
    #[error("rule {0:?} has an empty condition list")]
    EmptyCondition(String),
    /// A signal set lacks a signal or gives it the wrong type (reference evaluator only).
    #[error("signal {0:?} is missing or has the wrong type")]
    BadSignal(String),
}

impl SpecError {
    /// A stable machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Json(_) => "bench_spec.json",
            Self::Shape(_) => "bench_spec.shape",
            Self::BadName { .. } => "bench_spec.bad_name",
            Self::UndeclaredSignal { .. } => "bench_spec.undeclared_signal",
            Self::OperatorMismatch { .. } => "bench_spec.operator_mismatch",
            Self::UndeclaredDecision(_) => "bench_spec.undeclared_decision",
            Self::DuplicateRule(_) => "bench_spec.duplicate_rule",
            Self::EmptyCondition(_) => "bench_spec.empty_condition",
            Self::BadSignal(_) => "bench_spec.bad_signal",
        }
    }
}

/// The rule id reported when no rule matches.
pub const DEFAULT_RULE_ID: &str = "default";

/// A validated, engine-neutral policy: typed signals, ordered rules (first match wins), a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    name: String,
    signals: BTreeMap<String, SignalKind>,
    decisions: Vec<String>,
    rules: Vec<RuleSpec>,
    default: Verdict,
}

/// The declared type of a signal, with the constraints every engine can express or check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalKind {
    /// A whole number within `minimum..=maximum`.
    Integer {
        /// Smallest accepted value.
        minimum: i64,
        /// Largest accepted value.
        maximum: i64,
    },
    /// `true` or `false`.
    Boolean,
    /// A string, optionally restricted to a list of values.
    String {
        /// The accepted values, when restricted.
        one_of: Option<Vec<String>>,
    },
}

/// One ordered rule: when every leaf holds, the rule decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// The rule id, reported as the deciding rule.
    pub id: String,
    /// Leaves that must all hold (a conjunction, never empty).
    pub when: Vec<Leaf>,
    /// What the rule decides.
    pub verdict: Verdict,
}

/// A decision with its human reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// One of the declared decisions.
    pub decision: String,
    /// Why, in words (only our engine carries it; Cedar and Rego report the rule id).
    pub reason: String,
}

/// A comparison of one signal with a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// The signal read.
    pub signal: String,
    /// The comparison.
    pub op: Op,
    /// The literal compared with.
    pub value: Literal,
}

/// Comparison operators all three languages express the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Less than (integers).
    Lt,
    /// Less than or equal (integers).
    Le,
    /// Greater than (integers).
    Gt,
    /// Greater than or equal (integers).
    Ge,
    /// Member of a list of strings.
    In,
}

impl Op {
    /// The operator's name in the neutral definition and in our schema 2.0.0.
    pub fn name(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Lt => "lt",
            Self::Le => "le",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::In => "in",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [
            Self::Eq,
            Self::Ne,
            Self::Lt,
            Self::Le,
            Self::Gt,
            Self::Ge,
            Self::In,
        ]
        .into_iter()
        .find(|op| op.name() == name)
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A literal in a leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// A whole number.
    Integer(i64),
    /// A boolean.
    Boolean(bool),
    /// A string.
    String(String),
    /// A non-empty list of strings (for `in`).
    StringList(Vec<String>),
}

/// One value of a signal set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalValue {
    /// A whole number.
    Integer(i64),
    /// A boolean.
    Boolean(bool),
    /// A string.
    String(String),
}

/// A complete set of signals, by name.
pub type SignalSet = BTreeMap<String, SignalValue>;

/// A decision and the rule that made it (`default` when none matched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Outcome<'a> {
    /// The decision.
    pub decision: &'a str,
    /// The deciding rule id, or [`DEFAULT_RULE_ID`].
    pub rule_id: &'a str,
}

impl std::fmt::Display for Outcome<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} by {}", self.decision, self.rule_id)
    }
}

/// Renders a signal set as one JSON object (the "JSON text" every engine is given).
pub fn signals_to_json(signals: &SignalSet) -> String {
    let object: serde_json::Map<String, serde_json::Value> = signals
        .iter()
        .map(|(name, value)| {
            let json = match value {
                SignalValue::Integer(n) => serde_json::Value::from(*n),
                SignalValue::Boolean(b) => serde_json::Value::from(*b),
                SignalValue::String(s) => serde_json::Value::from(s.as_str()),
            };
            (name.clone(), json)
        })
        .collect();
    serde_json::Value::Object(object).to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSpec {
    name: String,
    #[serde(default)]
    #[expect(dead_code, reason = "read for the humans who open the file")]
    description: String,
    signals: BTreeMap<String, WireSignal>,
    decisions: Vec<String>,
    rules: Vec<WireRule>,
    default: WireVerdict,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSignal {
    #[serde(rename = "type")]
    kind: String,
    minimum: Option<i64>,
    maximum: Option<i64>,
    #[serde(rename = "enum")]
    one_of: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRule {
    id: String,
    when: Vec<WireLeaf>,
    decision: String,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireLeaf {
    signal: String,
    op: String,
    value: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireVerdict {
    decision: String,
    reason: String,
}

/// `[a-z][a-z0-9_-]*`, with `-` allowed only where `allow_dash` (rule ids and decisions).
fn check_name(what: &'static str, name: &str, allow_dash: bool) -> Result<(), SpecError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (allow_dash && c == '-')
    });
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(SpecError::BadName {
            what,
            name: name.to_owned(),
        })
    }
}

impl PolicySpec {
    /// Reads a definition from strict JSON text and validates it.
    pub fn from_json(text: &[u8]) -> Result<Self, SpecError> {
        let value = parmana_canon::parse_strict(text)?;
        let wire: WireSpec =
            serde_json::from_value(value).map_err(|e| SpecError::Shape(e.to_string()))?;
        let mut signals = BTreeMap::new();
        for (name, signal) in wire.signals {
            let kind = match signal.kind.as_str() {
                "integer" => SignalKind::Integer {
                    minimum: signal.minimum.unwrap_or(-parmana_canon::MAX_SAFE_INTEGER),
                    maximum: signal.maximum.unwrap_or(parmana_canon::MAX_SAFE_INTEGER),
                },
                "boolean" => SignalKind::Boolean,
                "string" => SignalKind::String {
                    one_of: signal.one_of,
                },
                other => return Err(SpecError::Shape(format!("unknown signal type {other:?}"))),
            };
            signals.insert(name, kind);
        }
        let rules = wire
            .rules
            .into_iter()
            .map(|rule| {
                let when = rule
                    .when
                    .into_iter()
                    .map(|leaf| {
                        let op = Op::parse(&leaf.op).ok_or_else(|| {
                            SpecError::Shape(format!("unknown operator {:?}", leaf.op))
                        })?;
                        let value = literal_from_json(&leaf.value)?;
                        Ok(Leaf {
                            signal: leaf.signal,
                            op,
                            value,
                        })
                    })
                    .collect::<Result<Vec<_>, SpecError>>()?;
                Ok(RuleSpec {
                    id: rule.id,
                    when,
                    verdict: Verdict {
                        decision: rule.decision,
                        reason: rule.reason,
                    },
                })
            })
            .collect::<Result<Vec<_>, SpecError>>()?;
        let default = Verdict {
            decision: wire.default.decision,
            reason: wire.default.reason,
        };
        Self::new(wire.name, signals, wire.decisions, rules, default)
    }

    /// Builds a definition in code and validates it.
    pub fn new(
        name: String,
        signals: BTreeMap<String, SignalKind>,
        decisions: Vec<String>,
        rules: Vec<RuleSpec>,
        default: Verdict,
    ) -> Result<Self, SpecError> {
        check_name("policy name", &name, false)?;
        for name in signals.keys() {
            check_name("signal", name, false)?;
        }
        for decision in &decisions {
            check_name("decision", decision, true)?;
        }
        let mut seen = BTreeSet::new();
        for rule in &rules {
            check_name("rule id", &rule.id, true)?;
            if rule.id == DEFAULT_RULE_ID || !seen.insert(rule.id.as_str()) {
                return Err(SpecError::DuplicateRule(rule.id.clone()));
            }
            if rule.when.is_empty() {
                return Err(SpecError::EmptyCondition(rule.id.clone()));
            }
            if !decisions.contains(&rule.verdict.decision) {
                return Err(SpecError::UndeclaredDecision(rule.verdict.decision.clone()));
            }
            for leaf in &rule.when {
                let kind =
                    signals
                        .get(&leaf.signal)
                        .ok_or_else(|| SpecError::UndeclaredSignal {
                            rule: rule.id.clone(),
                            signal: leaf.signal.clone(),
                        })?;
                let fits = match (kind, leaf.op, &leaf.value) {
                    (SignalKind::Integer { .. }, _, Literal::Integer(_)) => leaf.op != Op::In,
                    (SignalKind::Boolean, Op::Eq | Op::Ne, Literal::Boolean(_)) => true,
                    (SignalKind::String { .. }, Op::Eq | Op::Ne, Literal::String(_)) => true,
                    (SignalKind::String { .. }, Op::In, Literal::StringList(list)) => {
                        if list.is_empty() {
                            return Err(SpecError::EmptyCondition(rule.id.clone()));
                        }
                        true
                    }
                    _ => false,
                };
                if !fits {
                    return Err(SpecError::OperatorMismatch {
                        rule: rule.id.clone(),
                        signal: leaf.signal.clone(),
                        op: leaf.op,
                    });
                }
            }
        }
        if !decisions.contains(&default.decision) {
            return Err(SpecError::UndeclaredDecision(default.decision.clone()));
        }
        Ok(Self {
            name,
            signals,
            decisions,
            rules,
            default,
        })
    }

    /// The policy name (our `policy_id`, the Rego package).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Declared signals, by name.
    pub fn signals(&self) -> &BTreeMap<String, SignalKind> {
        &self.signals
    }

    /// Declared decisions.
    pub fn decisions(&self) -> &[String] {
        &self.decisions
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[RuleSpec] {
        &self.rules
    }

    /// The verdict when no rule matches.
    pub fn default_verdict(&self) -> &Verdict {
        &self.default
    }

    /// The reference evaluator: the first rule whose leaves all hold, else the default.
    ///
    /// Signals are checked against the declaration (presence and type, not ranges) before use.
    pub fn decide(&self, signals: &SignalSet) -> Result<Outcome<'_>, SpecError> {
        for rule in &self.rules {
            let mut all = true;
            for leaf in &rule.when {
                let value = signals
                    .get(&leaf.signal)
                    .ok_or_else(|| SpecError::BadSignal(leaf.signal.clone()))?;
                all &= leaf_holds(leaf, value)
                    .ok_or_else(|| SpecError::BadSignal(leaf.signal.clone()))?;
            }
            if all {
                return Ok(Outcome {
                    decision: &rule.verdict.decision,
                    rule_id: &rule.id,
                });
            }
        }
        Ok(Outcome {
            decision: &self.default.decision,
            rule_id: DEFAULT_RULE_ID,
        })
    }
}

/// Whether a leaf holds for a value; `None` when the value's type does not fit.
fn leaf_holds(leaf: &Leaf, value: &SignalValue) -> Option<bool> {
    Some(match (&leaf.value, value) {
        (Literal::Integer(literal), SignalValue::Integer(v)) => match leaf.op {
            Op::Eq => v == literal,
            Op::Ne => v != literal,
            Op::Lt => v < literal,
            Op::Le => v <= literal,
            Op::Gt => v > literal,
            Op::Ge => v >= literal,
            Op::In => return None,
        },
        (Literal::Boolean(literal), SignalValue::Boolean(v)) => match leaf.op {
            Op::Eq => v == literal,
            Op::Ne => v != literal,
            _ => return None,
        },
        (Literal::String(literal), SignalValue::String(v)) => match leaf.op {
            Op::Eq => v == literal,
            Op::Ne => v != literal,
            _ => return None,
        },
        (Literal::StringList(list), SignalValue::String(v)) if leaf.op == Op::In => {
            list.contains(v)
        }
        _ => return None,
    })
}

fn literal_from_json(value: &serde_json::Value) -> Result<Literal, SpecError> {
    match value {
        serde_json::Value::Bool(b) => Ok(Literal::Boolean(*b)),
        serde_json::Value::String(s) => Ok(Literal::String(s.clone())),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Literal::Integer)
            .ok_or_else(|| SpecError::Shape(format!("literal {n} is not a whole number"))),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| SpecError::Shape("an `in` list holds only strings".to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Literal::StringList),
        other => Err(SpecError::Shape(format!("unsupported literal {other}"))),
    }
}
