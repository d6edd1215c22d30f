//! Static-validation diagnostics: a stable code, a severity, the JSON pointer of the offending node, and terminal rendering.

use std::fmt;

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The policy is refused.
    Error,
    /// The policy loads, but probably does not say what its author meant.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

macro_rules! diagnostic_codes {
    ($( $(#[$doc:meta])* $variant:ident => $code:literal, $severity:ident; )*) => {
        /// Every finding of static validation, each with a stable [`code`](DiagnosticCode::code).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum DiagnosticCode {
            $( $(#[$doc])* $variant, )*
        }

        impl DiagnosticCode {
            /// Every code, in documentation order.
            pub const ALL: &'static [DiagnosticCode] = &[$(DiagnosticCode::$variant,)*];

            /// The stable machine-readable code, for example `policy.undeclared_signal`.
            pub fn code(self) -> &'static str {
                match self { $( Self::$variant => $code, )* }
            }

            /// Whether this finding refuses the policy or only warns.
            pub fn severity(self) -> Severity {
                match self { $( Self::$variant => Severity::$severity, )* }
            }
        }
    };
}

diagnostic_codes! {
    /// The policy text is not strict JSON (see `parmana_canon::parse_strict`).
    InvalidJson => "policy.invalid_json", Error;
    /// The policy document is larger than [`MAX_POLICY_BYTES`](crate::limits::MAX_POLICY_BYTES).
    PolicyTooLarge => "policy.too_large", Error;
    /// `schema_version` is missing or is neither `"2.0.0"` nor `"1.0.0"`.
    UnsupportedSchemaVersion => "policy.unsupported_schema_version", Error;
    /// A required field is missing.
    MissingField => "policy.missing_field", Error;
    /// A field that the schema does not define (a typo must not silently drop a rule).
    UnknownField => "policy.unknown_field", Error;
    /// A field holds the wrong kind of JSON value (for example a string where a list is expected).
    WrongJsonType => "policy.wrong_json_type", Error;
    /// `policy_id` does not match `[a-z0-9][a-z0-9-_.]*`.
    InvalidPolicyId => "policy.invalid_policy_id", Error;
    /// `policy_version` is not a semantic version such as `1.0.0`.
    InvalidPolicyVersion => "policy.invalid_policy_version", Error;
    /// A signal, decision or rule name has characters or a length outside the documented pattern.
    InvalidName => "policy.invalid_name", Error;
    /// A list that must not be empty is empty (`decisions`, `all`, `any`, `in`, `not_in`, `enum`).
    EmptyList => "policy.empty_list", Error;
    /// The same decision is declared twice.
    DuplicateDecision => "policy.duplicate_decision", Error;
    /// Two rules share an id.
    DuplicateRuleId => "policy.duplicate_rule_id", Error;
    /// A rule is called `default`, which names the default outcome.
    ReservedRuleId => "policy.reserved_rule_id", Error;
    /// An outcome names a decision that is not in `decisions`.
    UndeclaredDecision => "policy.undeclared_decision", Error;
    /// A signal declaration has a `type` other than `boolean`, `number`, `integer`, `string`.
    UnknownSignalType => "policy.unknown_signal_type", Error;
    /// A signal constraint does not fit its type or contradicts another (`minimum` above `maximum`, ...).
    InvalidConstraint => "policy.invalid_constraint", Error;
    /// `additional_signals` is neither `"reject"` nor `"ignore"`.
    InvalidAdditionalSignals => "policy.invalid_additional_signals", Error;
    /// A condition object is neither `all`, `any`, `not` nor a leaf, or mixes them.
    InvalidCondition => "policy.invalid_condition", Error;
    /// A leaf has no `signal`.
    MissingSignal => "policy.missing_signal", Error;
    /// A leaf reads a signal that `signals` does not declare.
    UndeclaredSignal => "policy.undeclared_signal", Error;
    /// A leaf key that is not an operator of this schema.
    UnknownOperator => "policy.unknown_operator", Error;
    /// A leaf has no operator.
    MissingOperator => "policy.missing_operator", Error;
    /// A leaf has more than one operator.
    MultipleOperators => "policy.multiple_operators", Error;
    /// An operator that does not apply to the signal's declared type (for example `gt` on a boolean).
    OperatorTypeMismatch => "policy.operator_type_mismatch", Error;
    /// An operand of the wrong type for the signal (for example `"eq": "1"` on a number).
    OperandTypeMismatch => "policy.operand_type_mismatch", Error;
    /// `present` or `absent` with a value other than `true`.
    InvalidPresence => "policy.invalid_presence", Error;
    /// A leaf reads an optional signal without an earlier `{"signal": S, "present": true}` in an enclosing `all`.
    UnguardedOptionalSignal => "policy.unguarded_optional_signal", Error;
    /// Conditions nest deeper than [`MAX_CONDITION_DEPTH`](crate::limits::MAX_CONDITION_DEPTH).
    TooDeep => "policy.too_deep", Error;
    /// More rules than [`MAX_RULES`](crate::limits::MAX_RULES), signals than
    /// [`MAX_SIGNALS`](crate::limits::MAX_SIGNALS), decisions than
    /// [`MAX_DECISIONS`](crate::limits::MAX_DECISIONS) or condition nodes than
    /// [`MAX_CONDITION_NODES`](crate::limits::MAX_CONDITION_NODES).
    TooMany => "policy.too_many", Error;
    /// A list longer than [`MAX_LIST_LEN`](crate::limits::MAX_LIST_LEN).
    ListTooLong => "policy.list_too_long", Error;
    /// A string longer than [`MAX_STRING_LEN`](crate::limits::MAX_STRING_LEN) Unicode scalar values.
    StringTooLong => "policy.string_too_long", Error;
    /// A rule whose condition can never be true: it never decides anything.
    RuleNeverMatches => "policy.rule_never_matches", Warning;
    /// A rule that can never be reached because an earlier rule always matches first.
    RuleShadowed => "policy.rule_shadowed", Warning;
    /// A declared decision that neither a rule nor the default produces.
    DecisionUnused => "policy.decision_unused", Warning;
    /// The warnings are incomplete: analysing the policy's conditions would cost more than the
    /// analysis's work budget, and the conditions left unanalysed get no warning.
    AnalysisIncomplete => "policy.analysis_incomplete", Warning;
}

impl fmt::Display for DiagnosticCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl serde::Serialize for DiagnosticCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

/// One finding of static validation.
///
/// Renders in a terminal as
///
/// ```text
/// error[policy.undeclared_signal]: signal "amount" is not declared in "signals"
///   --> /rules/2/when/all/0
///    | {"signal":"amount","gt":10}
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Diagnostic {
    /// What was found.
    pub code: DiagnosticCode,
    /// Whether it refuses the policy.
    pub severity: Severity,
    /// JSON pointer (RFC 6901) of the offending node, `""` for the whole document.
    pub path: String,
    /// A human explanation naming the offending signal, rule, operator or field.
    pub message: String,
    /// The offending node as compact JSON, shortened to about 100 characters, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with the severity of its code and no snippet.
    pub fn new(code: DiagnosticCode, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: code.severity(),
            path: path.into(),
            message: message.into(),
            snippet: None,
        }
    }

    /// Attaches the offending node, rendered compactly and shortened.
    pub(crate) fn with_snippet(mut self, node: &serde_json::Value) -> Self {
        self.snippet = Some(snippet_of(node));
        self
    }

    /// Whether this diagnostic refuses the policy.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Longest snippet, in characters, before it is shortened with `…`.
const SNIPPET_CHARS: usize = 100;

/// Compact JSON text with numbers written as RFC 8785 writes them (`50000`, not `50000.0`).
pub(crate) fn json_text(value: &serde_json::Value) -> String {
    parmana_canon::to_canonical_vec(value)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| value.to_string())
}

/// `node` as compact canonical JSON (members sorted, whatever serde_json's features), shortened
/// to about [`SNIPPET_CHARS`] characters: how a diagnostic's snippet, and a message naming a
/// value it refuses, show the node.
pub(crate) fn snippet_of(node: &serde_json::Value) -> String {
    // Only the start of the node's text is shown, so only the start is written: a node of
    // megabytes costs no more than a small one.
    let mut text = String::new();
    write_start(node, &mut text);
    if text.chars().count() <= SNIPPET_CHARS {
        text
    } else {
        let mut short: String = text.chars().take(SNIPPET_CHARS).collect();
        short.push('…');
        short
    }
}

/// Appends `value`'s canonical text to `out` (as [`json_text`] writes it) until `out` holds more
/// than [`SNIPPET_CHARS`] characters: what is written is the start of that text, and is longer
/// than `SNIPPET_CHARS` exactly when the whole text is.
fn write_start(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    let room = |out: &String| (SNIPPET_CHARS + 1).saturating_sub(out.chars().count());
    match value {
        // A string's text starts with the text of its start (escapes are per character).
        Value::String(s) => {
            let start: String = s.chars().take(room(out)).collect();
            out.push_str(&json_text(&Value::String(start)));
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if room(out) == 0 {
                    return;
                }
                if i > 0 {
                    out.push(',');
                }
                write_start(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            // Each member takes at least one character: only the first `room` in canonical
            // order can show.
            let mut keys: Vec<&String> = members.keys().collect();
            let first = room(out).min(keys.len());
            if first < keys.len() {
                keys.select_nth_unstable_by(first, |a, b| utf16_order(a, b));
                keys.truncate(first);
            }
            keys.sort_by(|a, b| utf16_order(a, b));
            for (i, key) in keys.into_iter().enumerate() {
                if room(out) == 0 {
                    return;
                }
                if i > 0 {
                    out.push(',');
                }
                write_start(&Value::String(key.clone()), out);
                out.push(':');
                if let Some(member) = members.get(key) {
                    write_start(member, out);
                }
            }
            // Members left out: the text goes on past what is written.
            if first == members.len() {
                out.push('}');
            }
        }
        scalar => out.push_str(&json_text(scalar)),
    }
}

/// RFC 8785's order of object keys: by UTF-16 code units.
fn utf16_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]: {}", self.severity, self.code, self.message)?;
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            &self.path
        };
        write!(f, "\n  --> {path}")?;
        if let Some(snippet) = &self.snippet {
            write!(f, "\n   | {snippet}")?;
        }
        Ok(())
    }
}

/// Renders diagnostics for a terminal, errors before warnings, each in the order reported,
/// followed by a one-line summary such as `2 errors, 1 warning`.
pub fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    let mut sorted: Vec<&Diagnostic> = diagnostics.iter().collect();
    sorted.sort_by_key(|d| d.severity);
    let mut out = String::new();
    for diagnostic in &sorted {
        out.push_str(&diagnostic.to_string());
        out.push_str("\n\n");
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    out.push_str(&format!(
        "{errors} error{}, {warnings} warning{}\n",
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" }
    ));
    out
}

/// Appends one JSON-pointer segment (escaping `~` and `/` as RFC 6901 requires).
pub(crate) fn join_path(base: &str, segment: &str) -> String {
    let escaped = segment.replace('~', "~0").replace('/', "~1");
    format!("{base}/{escaped}")
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{SNIPPET_CHARS, json_text, snippet_of};

    /// The snippet as it reads from the whole node's text.
    fn from_whole_text(node: &Value) -> String {
        let text = json_text(node);
        if text.chars().count() <= SNIPPET_CHARS {
            text
        } else {
            text.chars().take(SNIPPET_CHARS).chain(['…']).collect()
        }
    }

    #[test]
    fn a_snippet_reads_as_the_start_of_the_whole_nodes_text() {
        let long = "x".repeat(5_000);
        let mut many = serde_json::Map::new();
        for i in 0..2_000 {
            many.insert(format!("u{i}"), json!(i));
        }
        many.insert("signal".into(), json!("claim_amount"));
        many.insert("\u{e9}t\u{e9}".into(), json!([1.5, "\n\u{1}", null]));
        many.insert("\u{1f600}".into(), json!(true));
        many.insert("\u{ff61}".into(), json!(false));
        let nodes = [
            json!({"signal": "a", "eq": 50000.0}),
            json!(long),
            json!({"signal": "a", "big": long, "u1": 0}),
            json!((0..1_000).collect::<Vec<_>>()),
            json!([[[[[[[[{"deep": long}]]]]]]]]),
            json!({"\u{1f600}": 1, "\u{ff61}": 2, "z": "\u{7f}\u{2028}\"\\"}),
            json!(["\n".repeat(60), "tail"]),
            Value::Object(many),
            json!({}),
            json!([]),
            json!(-0.0),
        ];
        for node in &nodes {
            assert_eq!(snippet_of(node), from_whole_text(node));
        }
        // Exactly at the boundary: 100 characters stay whole, 101 are shortened.
        for length in [SNIPPET_CHARS - 2, SNIPPET_CHARS - 1] {
            let node = json!("y".repeat(length));
            assert_eq!(snippet_of(&node), from_whole_text(&node), "{length}");
        }
    }
}
