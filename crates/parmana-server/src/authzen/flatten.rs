//! Flattening an AuthZEN evaluation into signals: subject, action, resource and context become dotted signal names, bounded by the runtime's signals limit as they are built.

use axum::http::StatusCode;
use parmana_runtime::MAX_SIGNALS_JSON_BYTES;
use serde_json::{Map, Value};

use super::wire::{Action, EvaluationRequest, Resource, Subject};
use super::{EXECUTION_ID_KEY, names_execution};
use crate::error::ApiError;

/// One evaluation, every member resolved, borrowed from the request: an evaluation of a boxcar
/// takes the top-level defaults by reference, never by copy.
pub(super) struct Resolved<'a> {
    pub(super) subject: &'a Subject,
    pub(super) action: &'a Action,
    pub(super) resource: &'a Resource,
    /// The evaluation's own context, or the top-level default when it has none (AuthZEN §7.1.1:
    /// a member given overrides the default whole; nothing is merged).
    pub(super) context: Option<&'a Map<String, Value>>,
}

impl Resolved<'_> {
    /// Whether the context names an execution id.
    pub(super) fn names_execution(&self) -> bool {
        names_execution(self.context)
    }
}

impl EvaluationRequest {
    /// The request as the one evaluation it is.
    pub(super) fn resolved(&self) -> Resolved<'_> {
        Resolved {
            subject: &self.subject,
            action: &self.action,
            resource: &self.resource,
            context: self.context.as_ref(),
        }
    }
}

/// The signals an evaluation flattens to, counted as they are built: their compact JSON text
/// (each member `"name":value,`) may not pass the runtime's signals limit. Names repeat their
/// whole path, so a long key over many leaves would otherwise make far more than the body; the
/// name of each nested object passed through is counted too (it is made, though no signal bears
/// it), so that what flattening makes stays within the limit.
pub(crate) struct Flat {
    out: Map<String, Value>,
    size: usize,
    /// The names of the nested objects passed through (each charged as a name): a name the
    /// policy declares as a signal, sent as an object, is refused rather than left absent.
    objects: Vec<String>,
}

/// Why flattening stopped: a name reached twice or an execution id that is not a string (400),
/// or the signals past the limit (413).
pub(crate) enum FlatError {
    Invalid(String),
    TooLarge,
}

impl Flat {
    /// Nothing flattened yet (the object's braces counted).
    pub(crate) fn new() -> Self {
        Self {
            out: Map::new(),
            size: 2,
            objects: Vec::new(),
        }
    }

    /// How many signals are flattened.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.out.len()
    }
    /// Charges `bytes` against the limit, before what they measure is made.
    fn charge(&mut self, bytes: usize) -> Result<(), FlatError> {
        self.size = self.size.saturating_add(bytes);
        if self.size > MAX_SIGNALS_JSON_BYTES {
            return Err(FlatError::TooLarge);
        }
        Ok(())
    }

    /// Flattens `value` under `prefix` (`a.b.c` for nested objects); refuses a name reached
    /// twice.
    fn add(&mut self, prefix: String, value: &Value) -> Result<(), FlatError> {
        match value {
            Value::Object(members) => {
                self.add_members(&prefix, members)?;
                self.objects.push(prefix);
                Ok(())
            }
            other => {
                // The name's quotes, colon and comma, and the value as compact JSON.
                self.charge(compact_len(other).saturating_add(4))?;
                if self.out.insert(prefix.clone(), other.clone()).is_some() {
                    return Err(FlatError::Invalid(format!(
                        "the signal name {:?} is reached twice",
                        parmana_runtime::canon::excerpt(&prefix)
                    )));
                }
                Ok(())
            }
        }
    }

    /// Flattens each of `members` under `prefix.<key>`.
    pub(crate) fn add_members(
        &mut self,
        prefix: &str,
        members: &Map<String, Value>,
    ) -> Result<(), FlatError> {
        for (key, member) in members {
            // The name is charged before it is made (its leaves charge their values).
            self.charge(prefix.len() + 1 + key.len())?;
            self.add(format!("{prefix}.{key}"), member)?;
        }
        Ok(())
    }
}

/// The length of `value` as compact JSON (a leaf of the request's body, so bounded by it).
fn compact_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |text| text.len())
}

/// The signal names a policy declares, sorted: whether a name is one, and whether one lies under
/// a name (`name.…`), each found by a binary search.
pub(super) struct Declared<'a>(Vec<&'a str>);

impl<'a> Declared<'a> {
    /// The names of `declarations`.
    pub(super) fn of(declarations: &'a [parmana_runtime::policy::SignalDecl]) -> Self {
        let mut names: Vec<&str> = declarations.iter().map(|d| d.name()).collect();
        names.sort_unstable();
        Self(names)
    }

    /// Whether `name` is declared.
    fn contains(&self, name: &str) -> bool {
        self.0.binary_search(&name).is_ok()
    }

    /// The first declared name under `name` (`name.` and more) that `made` lacks, if any: a
    /// value sent as `name` hides it. (One `made` holds — sent as a dotted key beside the value
    /// — is not hidden.)
    fn hidden_under(&self, name: &str, made: &Map<String, Value>) -> Option<&'a str> {
        let prefix = format!("{name}.");
        let first = self
            .0
            .partition_point(|declared| *declared < prefix.as_str());
        self.0[first..]
            .iter()
            .take_while(|declared| declared.starts_with(&prefix))
            .copied()
            .find(|declared| !made.contains_key(*declared))
    }
}

/// The signals of an evaluation (`docs/server.md`, "AuthZEN"), and the execution id in its
/// context, if any. A member whose shape hides a name the policy declares is refused
/// (`policy.signal_type`, 400), as `null` or an array there is: an object sent under a declared
/// name, or a value (an array, `null`) sent where the policy declares names under it
/// (`owner` given where `owner.id` is declared) — flattened, the declared signal would be absent,
/// and a rule denying on it silent.
pub(super) fn signals_of(
    request: &Resolved<'_>,
    declared: &Declared<'_>,
) -> Result<(Map<String, Value>, Option<String>), ApiError> {
    let mut flat = Flat::new();
    let flattened = flatten_request(request, &mut flat);
    if flattened.is_ok() {
        let refused = |message: String| {
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "policy.signal_type",
                message,
            ))
        };
        if let Some(name) = flat.objects.iter().find(|name| declared.contains(name)) {
            return refused(format!(
                "signal {:?} is declared by the policy as a value, and was sent as an object",
                parmana_runtime::canon::excerpt(name)
            ));
        }
        if let Some((name, under)) = flat.out.keys().find_map(|name| {
            declared
                .hidden_under(name, &flat.out)
                .map(|under| (name, under))
        }) {
            return refused(format!(
                "signal {:?} is declared by the policy, and {:?} was sent as a value, not an \
                 object holding it",
                parmana_runtime::canon::excerpt(under),
                parmana_runtime::canon::excerpt(name)
            ));
        }
    }
    match flattened {
        Ok(execution_id) => Ok((flat.out, execution_id)),
        Err(FlatError::Invalid(message)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "server.invalid_request",
            message,
        )),
        Err(FlatError::TooLarge) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "runtime.request_too_large",
            format!(
                "the signals this evaluation flattens to are larger than the \
                 {MAX_SIGNALS_JSON_BYTES} bytes allowed"
            ),
        )),
    }
}

/// Flattens subject, action, resource and context into `flat`; the execution id in the context.
fn flatten_request(request: &Resolved<'_>, flat: &mut Flat) -> Result<Option<String>, FlatError> {
    // (the member's signal name, its text) and (the prefix, the properties) of each member
    let texts = [
        ("subject.type", &request.subject.kind),
        ("subject.id", &request.subject.id),
        ("action.name", &request.action.name),
        ("resource.type", &request.resource.kind),
        ("resource.id", &request.resource.id),
    ];
    for (name, value) in texts {
        // The name here; `add` charges the value, as the JSON string it is.
        flat.charge(name.len())?;
        flat.add(name.to_owned(), &Value::String(value.clone()))?;
    }
    let properties = [
        ("subject.properties", &request.subject.properties),
        ("action.properties", &request.action.properties),
        ("resource.properties", &request.resource.properties),
    ];
    for (prefix, members) in properties {
        if let Some(members) = members {
            flat.add_members(prefix, members)?;
        }
    }
    let mut execution_id = None;
    for (key, value) in request.context.into_iter().flatten() {
        if key == EXECUTION_ID_KEY {
            match value {
                Value::String(id) => execution_id = Some(id.clone()),
                // Absent (`names_execution`); no signal either.
                Value::Null => {}
                _ => {
                    return Err(FlatError::Invalid(
                        "context.execution_id must be a string".to_owned(),
                    ));
                }
            }
        } else {
            flat.charge("context.".len() + key.len())?;
            flat.add(format!("context.{key}"), value)?;
        }
    }
    Ok(execution_id)
}

/// The bytes of the signal names `request` flattens to — each leaf's and each nested object's
/// whole dotted path, as [`signals_of`] makes them — counted without making any: what a boxcar's
/// evaluations would build, bounded before any of them is decided. (A long key over many leaves
/// is repeated in every leaf's name: without this bound, a boxcar a few kilobytes each would
/// have its evaluations build a megabyte of names each.)
pub(super) fn flattened_names_len(request: &Resolved<'_>) -> usize {
    /// The names under an object whose own name is `prefix_len` bytes long, of its `members`.
    fn under<'a>(
        prefix_len: usize,
        members: impl Iterator<Item = (&'a String, &'a Value)>,
    ) -> usize {
        members
            .map(|(key, member)| {
                let name = prefix_len.saturating_add(1).saturating_add(key.len());
                let inner = match member {
                    Value::Object(inner) => under(name, inner.iter()),
                    _ => 0,
                };
                name.saturating_add(inner)
            })
            .fold(0, usize::saturating_add)
    }
    let texts = [
        "subject.type",
        "subject.id",
        "action.name",
        "resource.type",
        "resource.id",
    ]
    .map(str::len)
    .iter()
    .sum::<usize>();
    let properties = [
        ("subject.properties", &request.subject.properties),
        ("action.properties", &request.action.properties),
        ("resource.properties", &request.resource.properties),
    ]
    .iter()
    .filter_map(|(prefix, members)| members.as_ref().map(|m| under(prefix.len(), m.iter())))
    .fold(0, usize::saturating_add);
    // The execution id is no signal.
    let context = request.context.map_or(0, |members| {
        let signals = members
            .iter()
            .filter(|(key, _)| key.as_str() != EXECUTION_ID_KEY);
        under("context".len(), signals)
    });
    texts.saturating_add(properties).saturating_add(context)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
mod shape_tests {
    use super::*;

    /// The code and message `signals_of` refuses `request` with (`None`: flattened), under a
    /// policy declaring `names`.
    fn refusal(names: &[&str], request: Value) -> Option<(String, String)> {
        let declarations: Vec<parmana_runtime::policy::SignalDecl> = {
            let signals: Map<String, Value> = names
                .iter()
                .map(|name| {
                    (
                        (*name).to_owned(),
                        serde_json::json!({"type": "string", "required": false}),
                    )
                })
                .collect();
            let policy = serde_json::json!({
                "schema_version": "2.0.0",
                "policy_id": "shapes",
                "policy_version": "1.0.0",
                "decisions": ["allow", "deny"],
                "signals": signals,
                "additional_signals": "ignore",
                "rules": [],
                "default": {"decision": "allow"}
            });
            let compiled = parmana_runtime::policy::compile(policy.to_string().as_bytes());
            compiled.unwrap().signals().to_vec()
        };
        let declared = Declared::of(&declarations);
        let request: EvaluationRequest = serde_json::from_value(request).unwrap();
        signals_of(&request.resolved(), &declared)
            .err()
            .map(|e| (e.code, e.message))
    }

    fn request(properties: Value) -> Value {
        serde_json::json!({
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "read"},
            "resource": {"type": "record", "id": "r-1", "properties": properties}
        })
    }

    /// A member whose shape hides a declared name is refused: an object under a declared name,
    /// a value (or `null`, or an array) where names are declared under it. Other shapes, and
    /// undeclared names, flatten.
    #[test]
    fn a_shape_that_hides_a_declared_name_is_refused() {
        let names = ["resource.properties.owner.id", "resource.properties.level"];
        let cases = [
            (
                serde_json::json!({"owner": {"id": "bob"}, "level": "2"}),
                None,
            ),
            (serde_json::json!({"other": {"x": 1}, "list": [1]}), None),
            (
                serde_json::json!({"level": {"value": "2"}}),
                Some("\"resource.properties.level\" is declared by the policy as a value"),
            ),
            (
                serde_json::json!({"level": {}}),
                Some("\"resource.properties.level\" is declared by the policy as a value"),
            ),
            (
                serde_json::json!({"owner": "bob"}),
                Some(
                    "signal \"resource.properties.owner.id\" is declared by the policy, and \
                     \"resource.properties.owner\" was sent as a value",
                ),
            ),
            (
                serde_json::json!({"owner": ["bob"]}),
                Some("\"resource.properties.owner\" was sent as a value"),
            ),
            (
                serde_json::json!({"owner": null}),
                Some("\"resource.properties.owner\" was sent as a value"),
            ),
        ];
        for (properties, expected) in cases {
            let refused = refusal(&names, request(properties.clone()));
            match expected {
                None => assert_eq!(refused, None, "{properties}"),
                Some(message) => {
                    let (code, said) = refused.unwrap_or_default();
                    assert_eq!(code, "policy.signal_type", "{properties}");
                    assert!(said.contains(message), "{properties}: {said}");
                }
            }
        }
        // A name that merely starts like a declared one is not under it.
        assert_eq!(
            refusal(
                &["resource.properties.owner.id"],
                request(serde_json::json!({"own": "x", "owner2": "y"}))
            ),
            None
        );
        // Every declared name under a value counts, not only the first.
        let refused = refusal(
            &[
                "resource.properties.owner.id",
                "resource.properties.owner.name",
            ],
            request(serde_json::json!({"owner": "alice", "owner.id": "a-1"})),
        );
        assert!(
            refused
                .as_ref()
                .is_some_and(|(_, said)| said.contains("\"resource.properties.owner.name\"")),
            "{refused:?}"
        );
        // A value beside the declared name under it, sent as a dotted key, hides nothing.
        assert_eq!(
            refusal(
                &["resource.properties.owner", "resource.properties.owner.id"],
                request(serde_json::json!({"owner": "alice", "owner.id": "a-1"}))
            ),
            None
        );
    }
}
