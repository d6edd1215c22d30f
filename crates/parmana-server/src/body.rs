//! The request bodies of `POST /v1/executions` and `POST /v1/evaluations`, read without building a JSON tree: a structural scan finds the top-level members, canon's strict parser reads each scalar member, and `signals` (and each `batch` entry) is kept as its exact text for the runtime's own strict parser (`Signals::from_json`), the one the CLI's `--signals` goes through.
//!
//! The scan checks only the body's own structure (one object, keys once each, `,` and `:` where
//! the grammar puts them, nothing after it); it finds where a member's value ends by matching
//! brackets and skipping strings, without judging what is inside. What is inside is judged by
//! the reader of that value: canon's [`parse_strict`] for `policy`, `execution_id` and
//! `include_signals`, the runtime for the signals. So the signals of a request are refused or
//! accepted, with the same code, exactly as the same text given to `parmana execute --signals`
//! (duplicate keys, lone surrogates, integers beyond ±(2^53−1), nesting depth all included).

use std::collections::HashSet;

use parmana_runtime::canon::{CanonError, parse_strict};
use serde_json::Value;

use crate::error::{ApiError, MAX_BATCH_ITEMS};
use crate::wire::{EvaluationRequestBody, ExecutionRequestBody};

/// One member of the body's top-level object: its decoded key, its value's text, and where
/// that text starts in the body (for error offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member<'a> {
    key: String,
    value: &'a str,
    offset: usize,
}

/// JSON's whitespace (RFC 8259 §2).
fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).copied().is_some_and(is_whitespace) {
        at += 1;
    }
    at
}

fn syntax(message: &'static str, offset: usize) -> CanonError {
    CanonError::Syntax { message, offset }
}

/// Where the string that opens at `start` (a `"`) ends, just past its closing quote. Escapes
/// are skipped, not decoded: the string's reader decodes (and judges) them.
fn string_end(bytes: &[u8], start: usize) -> Result<usize, CanonError> {
    let mut at = start + 1;
    loop {
        match bytes.get(at) {
            None => {
                return Err(CanonError::UnexpectedEnd {
                    offset: bytes.len(),
                });
            }
            Some(b'"') => return Ok(at + 1),
            Some(b'\\') => at += 2,
            Some(_) => at += 1,
        }
    }
}

/// The brackets open in a scan, innermost last, one bit each (an object's `{` or an array's
/// `[`): a body nested as deep as it is long keeps an eighth of its size here.
#[derive(Debug, Default)]
struct Brackets {
    bits: Vec<u64>,
    depth: usize,
}

impl Brackets {
    /// Opens a bracket (`true`: an object's).
    fn push(&mut self, object: bool) {
        let (word, bit) = (self.depth / 64, self.depth % 64);
        if word == self.bits.len() {
            self.bits.push(0);
        }
        if let Some(bits) = self.bits.get_mut(word) {
            *bits = (*bits & !(1 << bit)) | (u64::from(object) << bit);
        }
        self.depth += 1;
    }

    /// Closes the innermost bracket: whether it was an object's; `None` when none is open.
    fn pop(&mut self) -> Option<bool> {
        self.depth = self.depth.checked_sub(1)?;
        let (word, bit) = (self.depth / 64, self.depth % 64);
        self.bits.get(word).map(|bits| bits & (1 << bit) != 0)
    }

    fn is_empty(&self) -> bool {
        self.depth == 0
    }
}

/// Where the value that starts at `start` (no whitespace before it) ends: a string at its
/// closing quote, an object or array at its matching bracket (strings inside skipped), any
/// other token at the next delimiter. Nothing inside is judged here.
fn value_end(bytes: &[u8], start: usize) -> Result<usize, CanonError> {
    match bytes.get(start) {
        None => Err(CanonError::UnexpectedEnd {
            offset: bytes.len(),
        }),
        Some(b'"') => string_end(bytes, start),
        Some(b'{' | b'[') => {
            // The brackets open, innermost last: each must close with its own kind (a value
            // the parser would refuse is refused here too). No depth is judged here: the scan
            // holds no stack but this one (a bit a level), and each member's own
            // reader bounds its depth — so a signal text gets the code the CLI gives it (an
            // earlier error in it before one past the depth), and a batch entry too deep is
            // refused alone.
            let mut open = Brackets::default();
            let mut at = start;
            loop {
                match bytes.get(at) {
                    None => {
                        return Err(CanonError::UnexpectedEnd {
                            offset: bytes.len(),
                        });
                    }
                    Some(b'"') => {
                        at = string_end(bytes, at)?;
                        continue;
                    }
                    Some(&opener @ (b'{' | b'[')) => open.push(opener == b'{'),
                    Some(&closer @ (b'}' | b']')) => {
                        if open.pop() != Some(closer == b'}') {
                            return Err(syntax("a bracket closed by another kind", at));
                        }
                        if open.is_empty() {
                            return Ok(at + 1);
                        }
                    }
                    Some(_) => {}
                }
                at += 1;
            }
        }
        Some(b'}' | b']' | b',' | b':') => Err(syntax("expected a value", start)),
        Some(_) => {
            let mut at = start;
            while bytes
                .get(at)
                .is_some_and(|b| !is_whitespace(*b) && !b",:{}[]\"".contains(b))
            {
                at += 1;
            }
            Ok(at)
        }
    }
}

/// `error`, whose offsets count from the start of a member's value, with offsets counting
/// from the start of the body.
fn rebase(error: CanonError, base: usize) -> CanonError {
    match error {
        CanonError::InvalidUtf8 { offset } => CanonError::InvalidUtf8 {
            offset: offset + base,
        },
        CanonError::DuplicateKey { key, offset } => CanonError::DuplicateKey {
            key,
            offset: offset + base,
        },
        CanonError::LoneSurrogate { offset } => CanonError::LoneSurrogate {
            offset: offset + base,
        },
        CanonError::IntegerOutOfRange { offset } => CanonError::IntegerOutOfRange {
            offset: offset + base,
        },
        CanonError::NumberOutOfRange { offset } => CanonError::NumberOutOfRange {
            offset: offset + base,
        },
        CanonError::TooDeep { limit, offset } => CanonError::TooDeep {
            limit,
            offset: offset + base,
        },
        CanonError::TrailingData { offset } => CanonError::TrailingData {
            offset: offset + base,
        },
        CanonError::UnexpectedEnd { offset } => CanonError::UnexpectedEnd {
            offset: offset + base,
        },
        CanonError::Syntax { message, offset } => CanonError::Syntax {
            message,
            offset: offset + base,
        },
        other => other,
    }
}

/// Reads `text` (which starts at `base` in the body) with canon's strict parser.
fn strict_value(text: &str, base: usize) -> Result<Value, CanonError> {
    parse_strict(text.as_bytes()).map_err(|e| rebase(e, base))
}

/// The members of the body's one top-level object, in order; a key given twice, anything
/// after the object, and every slip of the object's own grammar are refused with canon's codes.
fn members(body: &[u8]) -> Result<Vec<Member<'_>>, CanonError> {
    let text = std::str::from_utf8(body).map_err(|e| CanonError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let bytes = text.as_bytes();
    let mut at = skip_whitespace(bytes, 0);
    match bytes.get(at) {
        None => {
            return Err(CanonError::UnexpectedEnd {
                offset: bytes.len(),
            });
        }
        Some(b'{') => at += 1,
        Some(_) => return Err(syntax("expected a JSON object", at)),
    }
    let mut out: Vec<Member<'_>> = Vec::with_capacity(4);
    // The keys seen, for the duplicate check: a body may carry any number of members (an
    // AuthZEN request ignores those it does not know), and comparing each key with every earlier
    // one would make a 1 MiB body of short keys cost billions of comparisons.
    let mut seen: HashSet<String> = HashSet::new();
    at = skip_whitespace(bytes, at);
    if bytes.get(at) == Some(&b'}') {
        at += 1;
    } else {
        loop {
            if bytes.get(at).is_none() {
                return Err(CanonError::UnexpectedEnd {
                    offset: bytes.len(),
                });
            }
            if bytes.get(at) != Some(&b'"') {
                return Err(syntax("expected an object key", at));
            }
            let key_end = string_end(bytes, at)?;
            let key_offset = at;
            let key = match strict_value(&text[at..key_end], at)? {
                Value::String(key) => key,
                // A string token always reads as a string.
                _ => return Err(syntax("expected an object key", at)),
            };
            at = skip_whitespace(bytes, key_end);
            match bytes.get(at) {
                Some(b':') => at = skip_whitespace(bytes, at + 1),
                None => {
                    return Err(CanonError::UnexpectedEnd {
                        offset: bytes.len(),
                    });
                }
                Some(_) => return Err(syntax("expected ':' after an object key", at)),
            }
            let value_start = at;
            let end = value_end(bytes, value_start)?;
            // Compared decoded: two spellings of one key (an escape) are the same key.
            if !seen.insert(key.clone()) {
                return Err(CanonError::DuplicateKey {
                    key: parmana_runtime::canon::excerpt(&key),
                    offset: key_offset,
                });
            }
            out.push(Member {
                key,
                value: &text[value_start..end],
                offset: value_start,
            });
            at = skip_whitespace(bytes, end);
            match bytes.get(at) {
                Some(b',') => at = skip_whitespace(bytes, at + 1),
                Some(b'}') => {
                    at += 1;
                    break;
                }
                None => {
                    return Err(CanonError::UnexpectedEnd {
                        offset: bytes.len(),
                    });
                }
                Some(_) => return Err(syntax("expected ',' or '}' in an object", at)),
            }
        }
    }
    let after = skip_whitespace(bytes, at);
    if after < bytes.len() {
        return Err(CanonError::TrailingData { offset: after });
    }
    Ok(out)
}

/// The texts of the elements of the array `text` (which starts at `base` in the body), or
/// `None` when it has more than `limit`: the scan stops at element `limit + 1`, so a refused
/// array costs no more than an accepted one.
fn elements(text: &str, base: usize, limit: usize) -> Result<Option<Vec<&str>>, CanonError> {
    let bytes = text.as_bytes();
    let fail = |e: CanonError| rebase(e, base);
    if bytes.first() != Some(&b'[') {
        return Err(fail(syntax("expected an array", 0)));
    }
    let mut out = Vec::new();
    let mut at = skip_whitespace(bytes, 1);
    if bytes.get(at) == Some(&b']') {
        at += 1;
    } else {
        loop {
            if out.len() == limit {
                return Ok(None);
            }
            let end = value_end(bytes, at).map_err(fail)?;
            out.push(&text[at..end]);
            at = skip_whitespace(bytes, end);
            match bytes.get(at) {
                Some(b',') => at = skip_whitespace(bytes, at + 1),
                Some(b']') => {
                    at += 1;
                    break;
                }
                _ => return Err(fail(syntax("expected ',' or ']' in an array", at))),
            }
        }
    }
    if at != bytes.len() {
        return Err(fail(CanonError::TrailingData { offset: at }));
    }
    Ok(Some(out))
}

/// Whether the body is an object whose member `key` is an array of more than `limit` elements,
/// told by the structural scan alone (nothing is parsed or copied, and counting stops at
/// element `limit + 1`): a route checks its count before it parses the body. `false` for a
/// body the scan refuses — its parser refuses it with the right code.
pub(crate) fn array_exceeds(body: &[u8], key: &str, limit: usize) -> bool {
    let Ok(members) = members(body) else {
        return false;
    };
    members
        .iter()
        .find(|member| member.key == key)
        .is_some_and(|member| matches!(elements(member.value, member.offset, limit), Ok(None)))
}

/// A canon refusal of the body: 400 with its code.
fn malformed(error: &CanonError) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        error.code(),
        format!("request body: {}", crate::error::bounded_message(error)),
    )
}

fn shape(message: String) -> ApiError {
    ApiError::invalid_request(format!("request body: {message}"))
}

/// The JSON kind of a value, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string_member(member: &Member<'_>) -> Result<String, ApiError> {
    match strict_value(member.value, member.offset).map_err(|e| malformed(&e))? {
        Value::String(text) => Ok(text),
        other => Err(shape(format!(
            "`{}` must be a string, not {}",
            member.key,
            kind(&other)
        ))),
    }
}

/// A member that may be `null` (read as absent).
fn is_null(member: &Member<'_>) -> bool {
    member.value == "null"
}

fn unknown(key: &str, expected: &str) -> ApiError {
    shape(format!(
        "unknown member {:?}, expected one of {expected}",
        parmana_runtime::canon::excerpt(key)
    ))
}

fn missing(key: &str) -> ApiError {
    shape(format!("missing member `{key}`"))
}

impl ExecutionRequestBody {
    /// Reads `POST /v1/executions`'s body (see the module's documentation).
    pub(crate) fn read(body: &[u8]) -> Result<Self, ApiError> {
        let mut policy = None;
        let mut signals = None;
        let mut execution_id = None;
        let mut include_signals = false;
        for member in members(body).map_err(|e| malformed(&e))? {
            match member.key.as_str() {
                "policy" => policy = Some(string_member(&member)?),
                "signals" => signals = Some(member.value.to_owned()),
                "execution_id" if is_null(&member) => {}
                "execution_id" => execution_id = Some(string_member(&member)?),
                "include_signals" => {
                    match strict_value(member.value, member.offset).map_err(|e| malformed(&e))? {
                        Value::Bool(include) => include_signals = include,
                        other => {
                            return Err(shape(format!(
                                "`include_signals` must be a boolean, not {}",
                                kind(&other)
                            )));
                        }
                    }
                }
                other => {
                    return Err(unknown(
                        other,
                        "`policy`, `signals`, `execution_id`, `include_signals`",
                    ));
                }
            }
        }
        Ok(Self {
            policy: policy.ok_or_else(|| missing("policy"))?,
            signals: signals.ok_or_else(|| missing("signals"))?,
            execution_id,
            include_signals,
        })
    }
}

impl EvaluationRequestBody {
    /// Reads `POST /v1/evaluations`'s body (see the module's documentation).
    pub(crate) fn read(body: &[u8]) -> Result<Self, ApiError> {
        let mut policy = None;
        let mut signals = None;
        let mut batch = None;
        for member in members(body).map_err(|e| malformed(&e))? {
            match member.key.as_str() {
                "policy" => policy = Some(string_member(&member)?),
                "signals" if is_null(&member) => {}
                "signals" => signals = Some(member.value.to_owned()),
                "batch" if is_null(&member) => {}
                "batch" => {
                    if !member.value.starts_with('[') {
                        // Read it strictly first: malformed text keeps canon's code.
                        let value =
                            strict_value(member.value, member.offset).map_err(|e| malformed(&e))?;
                        return Err(shape(format!(
                            "`batch` must be an array, not {}",
                            kind(&value)
                        )));
                    }
                    let sets = elements(member.value, member.offset, MAX_BATCH_ITEMS)
                        .map_err(|e| malformed(&e))?
                        .ok_or_else(ApiError::batch_too_large)?;
                    if sets.is_empty() {
                        // A 200 must carry a decision: an empty batch decides nothing.
                        return Err(shape(
                            "`batch` holds no signal set: give at least one (or `signals` for \
                             one)"
                                .to_owned(),
                        ));
                    }
                    batch = Some(sets.into_iter().map(str::to_owned).collect());
                }
                other => return Err(unknown(other, "`policy`, `signals`, `batch`")),
            }
        }
        Ok(Self {
            policy: policy.ok_or_else(|| missing("policy"))?,
            signals,
            batch,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// The members found, as (key, value text), or the canon code refusing the body.
    type Found = Result<&'static [(&'static str, &'static str)], &'static str>;

    /// (body, what is found)
    const CASES: &[(&str, Found)] = &[
        (r#"{}"#, Ok(&[])),
        (
            " {\"a\" : 1 ,\"b\":[1,{\"c\":\"]}\"}], \"d\":\"x\\\"y\"}\n",
            Ok(&[("a", "1"), ("b", "[1,{\"c\":\"]}\"}]"), ("d", "\"x\\\"y\"")]),
        ),
        (
            r#"{"\u0073ignals":{"a":1,"a":2}}"#,
            Ok(&[("signals", r#"{"a":1,"a":2}"#)]),
        ),
        (r#"{"s":{"x":"\ud800"}}"#, Ok(&[("s", r#"{"x":"\ud800"}"#)])),
        (r#"{"a":1,"a":2}"#, Err("canon.duplicate_key")),
        (r#"{"a":1,"\u0061":2}"#, Err("canon.duplicate_key")),
        (r#"{"\ud800":1}"#, Err("canon.lone_surrogate")),
        (r#"{"a":1} x"#, Err("canon.trailing_data")),
        (r#"{"a":1}}"#, Err("canon.trailing_data")),
        (r#"{"a" 1}"#, Err("canon.syntax")),
        (r#"{"a":1 "b":2}"#, Err("canon.syntax")),
        (r#"{"a":}"#, Err("canon.syntax")),
        (r#"{a:1}"#, Err("canon.syntax")),
        (r#"[1]"#, Err("canon.syntax")),
        // A bracket closed by the other kind, at any depth (a batch of such values is not
        // split into entries).
        (r#"{"batch":[{"a":1]]}"#, Err("canon.syntax")),
        (r#"{"a":{"b":[1}}"#, Err("canon.syntax")),
        (r#"{"a":[1}"#, Err("canon.syntax")),
        (r#"{"a":{"b":1}"#, Err("canon.unexpected_end")),
        (r#"{"a":"x"#, Err("canon.unexpected_end")),
        (r#"{"a":1,"#, Err("canon.unexpected_end")),
        (r#"{"#, Err("canon.unexpected_end")),
        ("", Err("canon.unexpected_end")),
    ];

    #[test]
    fn members_are_found_by_structure_and_the_body_itself_is_strict() {
        for (body, expected) in CASES {
            let got = members(body.as_bytes());
            match (got, expected) {
                (Ok(found), Ok(expected)) => {
                    let found: Vec<(&str, &str)> =
                        found.iter().map(|m| (m.key.as_str(), m.value)).collect();
                    assert_eq!(found, *expected, "{body}");
                }
                (Err(error), Err(code)) => assert_eq!(error.code(), *code, "{body}"),
                (got, expected) => panic!("{body}: {got:?}, expected {expected:?}"),
            }
        }
        assert_eq!(
            members(b"{\"a\":\xff}").unwrap_err().code(),
            "canon.invalid_utf8"
        );
        // Nesting is not judged by the scan (each member's reader bounds its own): a deep
        // member is found whole.
        let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let deep = format!("{{\"a\":{nested}}}");
        let found = members(deep.as_bytes()).unwrap();
        assert_eq!(
            found
                .iter()
                .map(|m| (m.key.as_str(), m.value))
                .collect::<Vec<_>>(),
            [("a", nested.as_str())]
        );
    }

    /// The scan's brackets, a bit a level, past a word's 64 levels: each closes with its own
    /// kind, and a body nested as deep as it is long is found whole.
    #[test]
    fn brackets_keep_their_kinds_a_bit_a_level() {
        let mut brackets = Brackets::default();
        let kinds: Vec<bool> = (0..200).map(|level| level % 3 == 0).collect();
        for kind in &kinds {
            brackets.push(*kind);
        }
        assert_eq!(brackets.bits.len(), 4);
        for kind in kinds.iter().rev() {
            assert_eq!(brackets.pop(), Some(*kind));
        }
        assert!(brackets.is_empty());
        assert_eq!(brackets.pop(), None);
        let deep = format!(
            "{{\"a\":{}{}}}",
            "[{\"b\":".repeat(5_000),
            "}]".repeat(5_000)
        );
        assert_eq!(members(deep.as_bytes()).unwrap().len(), 1);
        let crossed = format!("{{\"a\":{}{}]}}", "[".repeat(100), "]".repeat(99));
        assert_eq!(members(crossed.as_bytes()).unwrap().len(), 1);
        let wrong = format!("{{\"a\":{}}}}}", "[".repeat(70));
        assert_eq!(
            members(wrong.as_bytes()).unwrap_err().code(),
            "canon.syntax"
        );
    }

    /// A batch entry too deep is the entry's own refusal, not the request's: the scan finds
    /// the entries whatever their depth, and each is read on its own.
    #[test]
    fn a_batch_entry_too_deep_is_its_own() {
        let deep = format!("{{\"b\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        let body = format!(
            r#"{{"policy":"claims-approval@1.0.0","batch":[{{"claim_amount":1}},{deep}]}}"#
        );
        let read = EvaluationRequestBody::read(body.as_bytes()).unwrap();
        assert_eq!(read.batch.map(|batch| batch.len()), Some(2));
    }

    /// The bodies are read here, not by serde: their documented schema must still say what
    /// `read` takes (required members, nothing else).
    #[test]
    fn the_documented_request_schemas_match_what_is_read() {
        let document = crate::openapi_json();
        let schemas = &document["components"]["schemas"];
        // (schema, required members, every member)
        for (name, required, members) in [
            (
                "ExecutionRequestBody",
                &["policy", "signals"][..],
                &["execution_id", "include_signals", "policy", "signals"][..],
            ),
            (
                "EvaluationRequestBody",
                &["policy"],
                &["batch", "policy", "signals"],
            ),
        ] {
            let schema = &schemas[name];
            assert_eq!(schema["additionalProperties"], false, "{name}");
            assert_eq!(schema["required"], serde_json::json!(required), "{name}");
            let mut found: Vec<&str> = schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            found.sort_unstable();
            assert_eq!(found, members, "{name}");
            assert!(!schema["description"].as_str().unwrap().contains("body.rs"));
        }
    }

    #[test]
    fn offsets_of_refusals_count_from_the_start_of_the_body() {
        let body = r#"{"policy":"\ud800"}"#;
        let error = ExecutionRequestBody::read(body.as_bytes()).unwrap_err();
        assert_eq!(error.code, "canon.lone_surrogate");
        assert!(error.message.contains("at byte 11"), "{}", error.message);
    }

    /// (body, `(policy, signals, execution_id, include_signals)` or the refusing code)
    type ExecutionCase = (
        &'static str,
        Result<(&'static str, &'static str, Option<&'static str>, bool), &'static str>,
    );

    #[test]
    fn execution_bodies_keep_the_signals_text_and_type_the_rest() {
        let cases: &[ExecutionCase] = &[
            (
                r#"{"policy":"p@1.0.0","signals": {"a" : 1} ,"execution_id":"x","include_signals":true}"#,
                Ok(("p@1.0.0", r#"{"a" : 1}"#, Some("x"), true)),
            ),
            (
                r#"{"signals":null,"policy":"p@1.0.0","execution_id":null}"#,
                Ok(("p@1.0.0", "null", None, false)),
            ),
            (r#"{"policy":"p@1.0.0"}"#, Err("server.invalid_request")),
            (r#"{"signals":{}}"#, Err("server.invalid_request")),
            (
                r#"{"policy":1,"signals":{}}"#,
                Err("server.invalid_request"),
            ),
            (
                r#"{"policy":"p@1.0.0","signals":{},"include_signals":"yes"}"#,
                Err("server.invalid_request"),
            ),
            (
                r#"{"policy":"p@1.0.0","signals":{},"extra":1}"#,
                Err("server.invalid_request"),
            ),
            (
                r#"{"policy":"p@1.0.0","signals":{},"execution_id":12345678901234567890}"#,
                Err("canon.integer_out_of_range"),
            ),
        ];
        for (body, expected) in cases {
            let got = ExecutionRequestBody::read(body.as_bytes())
                .map(|b| (b.policy, b.signals, b.execution_id, b.include_signals))
                .map_err(|e| e.code);
            let expected = expected
                .map(|(p, s, id, include)| {
                    (p.to_owned(), s.to_owned(), id.map(str::to_owned), include)
                })
                .map_err(str::to_owned);
            assert_eq!(got, expected, "{body}");
        }
    }

    #[test]
    fn evaluation_bodies_split_a_batch_into_signal_texts() {
        // (body, (signals, batch) or the refusing code)
        type Read = Result<(Option<&'static str>, Option<&'static [&'static str]>), &'static str>;
        let cases: &[(&str, Read)] = &[
            (
                r#"{"policy":"p@1.0.0","signals":{"a":[1,2]}}"#,
                Ok((Some(r#"{"a":[1,2]}"#), None)),
            ),
            (
                r#"{"policy":"p@1.0.0","batch":[ {"a":1} , {"b":"]"},[] ,3]}"#,
                Ok((None, Some(&[r#"{"a":1}"#, r#"{"b":"]"}"#, "[]", "3"]))),
            ),
            (
                r#"{"policy":"p@1.0.0","batch":[{}],"signals":null}"#,
                Ok((None, Some(&["{}"]))),
            ),
            // An empty batch decides nothing: refused, never a 200 without a decision.
            (
                r#"{"policy":"p@1.0.0","batch":[]}"#,
                Err("server.invalid_request"),
            ),
            (
                r#"{"policy":"p@1.0.0","batch":[ ] ,"signals":null}"#,
                Err("server.invalid_request"),
            ),
            (
                r#"{"policy":"p@1.0.0","batch":{}}"#,
                Err("server.invalid_request"),
            ),
            (r#"{"policy":"p@1.0.0","batch":[1 2]}"#, Err("canon.syntax")),
            // A member's text is judged alone, as the CLI judges a file holding it.
            (
                r#"{"policy":"p@1.0.0","batch":tru}"#,
                Err("canon.unexpected_end"),
            ),
            (
                r#"{"policy":"p@1.0.0","signals":{},"explain":true}"#,
                Err("server.invalid_request"),
            ),
        ];
        for (body, expected) in cases {
            let got = EvaluationRequestBody::read(body.as_bytes())
                .map(|b| (b.signals, b.batch))
                .map_err(|e| e.code);
            let expected = expected
                .map(|(s, batch)| {
                    (
                        s.map(str::to_owned),
                        batch.map(|b| b.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>()),
                    )
                })
                .map_err(str::to_owned);
            assert_eq!(got, expected, "{body}");
        }
    }

    /// A batch is counted while it is split, and the split stops at entry 1,001: what comes
    /// after it is never looked at (here, text that does not even scan), and nothing past the
    /// limit is copied.
    #[test]
    fn a_batch_is_refused_at_its_first_entry_past_the_limit() {
        let batch = |count: usize, tail: &str| {
            format!(
                r#"{{"policy":"p@1.0.0","batch":[{}{tail}]}}"#,
                vec!["{}"; count].join(",")
            )
        };
        // (body, number of signal sets read, or the refusing code)
        let cases: Vec<(String, Result<usize, &str>)> = vec![
            (batch(MAX_BATCH_ITEMS, ""), Ok(MAX_BATCH_ITEMS)),
            (
                batch(MAX_BATCH_ITEMS + 1, ""),
                Err("server.batch_too_large"),
            ),
            // Entry 1,000 does not scan: refused as such; as entry 1,001, it is never read.
            (batch(MAX_BATCH_ITEMS - 1, ",1 2"), Err("canon.syntax")),
            (
                batch(MAX_BATCH_ITEMS, ",1 2"),
                Err("server.batch_too_large"),
            ),
            (batch(500_000, ""), Err("server.batch_too_large")),
        ];
        for (body, expected) in cases {
            let got = EvaluationRequestBody::read(body.as_bytes())
                .map(|b| b.batch.map_or(0, |batch| batch.len()))
                .map_err(|e| e.code);
            assert_eq!(got, expected.map_err(str::to_owned), "{}", &body[..60]);
        }
    }

    /// `array_exceeds` tells an over-long array from the scan alone; a body that does not scan,
    /// a member that is not an array, or an absent member is not over the limit.
    #[test]
    fn array_exceeds_counts_one_member_without_parsing() {
        let cases: &[(&str, bool)] = &[
            (r#"{"evaluations":[{},{},{}]}"#, true),
            (r#"{"evaluations":[{},{}]}"#, false),
            (r#"{"evaluations":[]}"#, false),
            (r#"{"evaluations":[{"a":[1,2,3,4]},{"b":"],[,"},3]}"#, true),
            // Entries are not judged: a duplicate key inside one is its parser's to refuse.
            (r#"{"evaluations":[{"a":1,"a":2},{},{}]}"#, true),
            (r#"{"other":[1,2,3],"evaluations":{}}"#, false),
            (r#"{"other":[1,2,3]}"#, false),
            (r#"{"evaluations":[1,2,3]"#, false),
            (r#"{"evaluations":[1,2,3]} x"#, false),
        ];
        for (body, expected) in cases {
            assert_eq!(
                array_exceeds(body.as_bytes(), "evaluations", 2),
                *expected,
                "{body}"
            );
        }
    }
}
