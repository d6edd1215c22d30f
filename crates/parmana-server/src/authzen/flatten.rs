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

/// The signals of an evaluation (`docs/server.md`, "AuthZEN"), and the execution id in its
/// context, if any. A member sent as an object whose name the policy declares as a signal
/// (`declared`) is refused (`policy.signal_type`, 400), as `null` or an array there is:
/// flattened away, the declared signal would be absent — and a rule denying on it silent.
pub(super) fn signals_of(
    request: &Resolved<'_>,
    declared: &dyn Fn(&str) -> bool,
) -> Result<(Map<String, Value>, Option<String>), ApiError> {
    let mut flat = Flat::new();
    let flattened = flatten_request(request, &mut flat);
    if flattened.is_ok()
        && let Some(name) = flat.objects.iter().find(|name| declared(name))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "policy.signal_type",
            format!(
                "signal {:?} is declared by the policy as a value, and was sent as an object",
                parmana_runtime::canon::excerpt(name)
            ),
        ));
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
