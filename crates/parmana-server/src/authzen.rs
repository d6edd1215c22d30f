//! AuthZEN 1.0 (OpenID Authorization API): the evaluation and evaluations endpoints, the metadata document, and the mapping — subject, action, resource and context flattened into dotted signal names, the answering policy chosen by `resource.type`, its permitting decisions from the server configuration.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parmana_runtime::canon::{PolicyRef, RawCanonical};
use parmana_runtime::policy::AdditionalSignals;
use parmana_runtime::{
    ExecutionError, ExecutionRequest, MAX_SIGNALS_JSON_BYTES, Runtime, RuntimeEnvironment, Signals,
    parse_execution_id,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::api::{execution_error, execution_location, parse_body, read_body};
use crate::auth::Scope;
use crate::body::array_exceeds;
use crate::error::{ApiError, MAX_BATCH_ITEMS, ServerError};
use crate::observe::Outcome;
use crate::settings::AuthzenSettings;
use crate::state::AppState;
use crate::wire::{ErrorBody, json_response};

/// The context member that turns an evaluation into an execution.
const EXECUTION_ID_KEY: &str = "execution_id";

/// Whether a request's `context` asks for an execution (it names `execution_id`).
fn names_execution(context: Option<&Map<String, Value>>) -> bool {
    context.is_some_and(|context| context.contains_key(EXECUTION_ID_KEY))
}

/// The user or machine principal (AuthZEN §5.1).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct Subject {
    /// The subject's type.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// The subject's id, scoped to its type.
    pub(crate) id: String,
    /// More attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) properties: Option<Map<String, Value>>,
}

/// The target of the request (AuthZEN §5.2).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct Resource {
    /// The resource's type; it chooses the answering policy.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// The resource's id, scoped to its type.
    pub(crate) id: String,
    /// More attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) properties: Option<Map<String, Value>>,
}

/// What the subject wants to do (AuthZEN §5.3).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct Action {
    /// The action's name.
    pub(crate) name: String,
    /// More attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) properties: Option<Map<String, Value>>,
}

/// `POST /access/v1/evaluation` (AuthZEN §6.1). Unknown members are ignored, as AuthZEN requires.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct EvaluationRequest {
    pub(crate) subject: Subject,
    pub(crate) action: Action,
    pub(crate) resource: Resource,
    /// The environment; `context.execution_id` makes the evaluation an execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) context: Option<Map<String, Value>>,
}

/// One entry of `evaluations`: each member overrides the top-level default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub(crate) struct EvaluationItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subject: Option<Subject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) action: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resource: Option<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) context: Option<Map<String, Value>>,
}

/// How a boxcar is evaluated (AuthZEN §7.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Semantic {
    /// Every evaluation, every result.
    #[default]
    ExecuteAll,
    /// Stop after the first `false` (a refused evaluation is `false`).
    DenyOnFirstDeny,
    /// Stop after the first `true`.
    PermitOnFirstPermit,
}

/// `options` of an evaluations request; unknown options are ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub(crate) struct EvaluationsOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) evaluations_semantic: Option<Semantic>,
}

/// `POST /access/v1/evaluations` (AuthZEN §7.1): top-level defaults and the evaluations.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub(crate) struct EvaluationsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subject: Option<Subject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) action: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resource: Option<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) context: Option<Map<String, Value>>,
    /// Each entry is read on its own: one that is not a valid evaluation is refused alone
    /// (`false`, with its error), not the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<EvaluationItem>>)]
    pub(crate) evaluations: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) options: Option<EvaluationsOptions>,
}

/// An AuthZEN decision (§5.5): `true` only when the policy's decision is one the
/// configuration lists as permitting.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Decision {
    pub(crate) decision: bool,
    /// `policy`, `outcome` (the policy's decision), `rule_id`, `reason`; with an execution,
    /// `execution_id` and `attestation`; on a refused evaluation, `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) context: Option<DecisionContext>,
}

/// The `context` of a [`Decision`].
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum DecisionContext {
    /// What the policy decided (`reason` is absent when its rule gives none: AuthZEN omits
    /// null members).
    Decided {
        policy: String,
        outcome: String,
        rule_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// With an execution: its id and the signed attestation, embedded as its canonical
        /// bytes are (nothing is parsed or encoded again after the id is consumed).
        #[serde(skip_serializing_if = "Option::is_none")]
        execution_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        attestation: Option<RawCanonical>,
    },
    /// A refused evaluation inside a boxcar (AuthZEN §7.2.1).
    Refused { error: RefusalDetail },
}

/// The error of a refused evaluation inside a boxcar.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RefusalDetail {
    status: u16,
    code: String,
    message: String,
}

/// The response of `POST /access/v1/evaluations` with an `evaluations` array.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct EvaluationsResponse {
    pub(crate) evaluations: Vec<Decision>,
}

/// What `POST /access/v1/evaluations` answers: the decisions of `evaluations`, or one decision
/// when the request has none.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum EvaluationsOutcome {
    /// With `evaluations`: one decision each.
    Many(EvaluationsResponse),
    /// Without: the single evaluation's decision.
    One(Decision),
}

/// `GET /.well-known/authzen-configuration` (AuthZEN §9).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct Configuration {
    pub(crate) policy_decision_point: String,
    pub(crate) access_evaluation_endpoint: String,
    pub(crate) access_evaluations_endpoint: String,
}

/// A policy that answers, with the decisions that mean `true`.
#[derive(Debug)]
struct Answering {
    policy: PolicyRef,
    /// The deployment's `permit` for it, if it gives one.
    configured: Option<Vec<String>>,
    permit: Vec<String>,
}

/// The verified AuthZEN mapping: which policy answers which `resource.type`.
#[derive(Debug, Default)]
pub(crate) struct AuthzenMapping {
    by_type: Vec<(String, Arc<Answering>)>,
    default: Option<Arc<Answering>>,
    /// Every policy that answers, once.
    all: Vec<Arc<Answering>>,
    /// The Policy Decision Point identifier the metadata names (`pdp_url`, checked, without a
    /// trailing `/`); `None`: the scheme and `Host` of each request.
    pdp_url: Option<String>,
    /// The answering policies that refuse undeclared signals (warned of at start).
    strict: Vec<String>,
}

/// Checks `server.authzen.pdp_url`: an absolute `https` URL with a host and no query or
/// fragment (AuthZEN §9.1, `policy_decision_point`); returned without a trailing `/`.
fn checked_pdp_url(url: &str) -> Result<String, String> {
    let refuse = |why: &str| format!("pdp_url {url:?}: {why}");
    if url.contains(['?', '#']) {
        return Err(refuse("it may have no query or fragment"));
    }
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| refuse(&format!("not a URL ({e})")))?;
    if uri.scheme_str() != Some("https") {
        return Err(refuse(
            "AuthZEN names a Policy Decision Point by an https URL (the public one, where TLS is \
             terminated in front of the server)",
        ));
    }
    match uri.authority() {
        Some(authority) if !authority.as_str().contains('@') && !authority.host().is_empty() => {}
        _ => return Err(refuse("it needs a host (and no user information)")),
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The decisions of `policy` (the policy `reference` names) that mean `"decision": true`: those
/// its signed `permit` declares, or the deployment's `configured` list when it declares none. A
/// configured list must name decisions of the policy, at least one; beside a declared one it
/// must name the same decisions — a deployment never widens or narrows what the policy's
/// author signed.
fn permitting(
    reference: &str,
    configured: Option<&[String]>,
    policy: &parmana_runtime::policy::CompiledPolicy,
) -> Result<Vec<String>, String> {
    let Some(configured) = configured else {
        return policy.permit().map(<[String]>::to_vec).ok_or_else(|| {
            format!(
                "{reference}: neither the policy (a signed `permit`) nor the deployment \
                 (`permit` in its entry) says which decisions mean true"
            )
        });
    };
    if configured.is_empty() {
        return Err(format!("{reference}: `permit` lists no decision"));
    }
    if let Some(decision) = configured.iter().find(|d| !policy.decisions().contains(d)) {
        return Err(format!(
            "{reference}: `permit` names {decision:?}, which is not one of its decisions"
        ));
    }
    if let Some(declared) = policy.permit() {
        let same = configured.iter().all(|d| declared.contains(d))
            && declared.iter().all(|d| configured.contains(d));
        if !same {
            return Err(format!(
                "{reference}: `permit` [{}] differs from the policy's signed `permit` [{}]: \
                 drop it from the deployment, or release a policy that says it",
                configured.join(", "),
                declared.join(", ")
            ));
        }
    }
    Ok(configured.to_vec())
}

impl AuthzenMapping {
    /// Checks the configuration against the environment: every policy is released and
    /// compiles, every permitting decision is one of its decisions, no resource type is
    /// answered twice, and the default policy is one of those configured.
    pub(crate) fn new(settings: &AuthzenSettings, runtime: &Runtime) -> Result<Self, ServerError> {
        let refuse = |message: String| ServerError::AuthzenConfig(message);
        let environment = runtime.environment();
        let mut mapping = Self::default();
        let mut all: Vec<Arc<Answering>> = Vec::new();
        for entry in &settings.policies {
            let policy = parmana_runtime::parse_policy_ref(&entry.policy)
                .map_err(|e| refuse(e.to_string()))?;
            let loaded = environment
                .policy(&policy)
                .map_err(|e| refuse(format!("{}: {e}", entry.policy)))?;
            let permit = permitting(&entry.policy, entry.permit.as_deref(), loaded.policy())
                .map_err(refuse)?;
            let answering = Arc::new(Answering {
                policy,
                configured: entry.permit.clone(),
                permit,
            });
            for kind in &entry.resource_types {
                if mapping.by_type.iter().any(|(k, _)| k == kind) {
                    return Err(refuse(format!("resource type {kind:?} is answered twice")));
                }
                mapping.by_type.push((kind.clone(), Arc::clone(&answering)));
            }
            all.push(answering);
        }
        if let Some(default) = &settings.default_policy {
            let found = all
                .iter()
                .find(|a| a.policy.to_string() == *default)
                .ok_or_else(|| {
                    refuse(format!(
                        "default_policy {default} is not one of the configured policies"
                    ))
                })?;
            mapping.default = Some(Arc::clone(found));
        }
        mapping.all = all;
        mapping.pdp_url = settings
            .pdp_url
            .as_deref()
            .map(checked_pdp_url)
            .transpose()
            .map_err(refuse)?;
        for answering in &mapping.all {
            let loaded = environment
                .policy(&answering.policy)
                .map_err(|e| refuse(format!("{}: {e}", answering.policy)))?;
            if loaded.policy().additional_signals() == AdditionalSignals::Reject {
                mapping.strict.push(answering.policy.to_string());
            }
        }
        Ok(mapping)
    }

    /// Warns, once logging is set up, of each answering policy that refuses undeclared signals
    /// (`"additional_signals": "reject"`): AuthZEN clients may send properties and context it
    /// does not declare, and each such request is refused.
    pub(crate) fn warn_of_strict_policies(&self) {
        for policy in &self.strict {
            tracing::warn!(
                target: "parmana::server",
                policy = %policy,
                "an AuthZEN policy refuses undeclared signals (\"additional_signals\": \
                 \"reject\"): a request with a property or context member it does not declare \
                 is refused with 400 policy.signal_undeclared; AuthZEN clients may send more, so \
                 such a policy usually declares \"ignore\""
            );
        }
    }

    /// Whether any policy answers (a default, or one for some `resource.type`).
    fn answers_anything(&self) -> bool {
        !self.all.is_empty()
    }

    /// Checks that `environment` (a reload's, before it is swapped in) still fits the mapping
    /// the server answers with: every answering policy is released, and what `true` means for
    /// it is what it meant at start — the mapping is fixed for the process's life, so a release
    /// that changes a policy's signed `permit`, or drops the policy, is refused (restart the
    /// server to take it).
    pub(crate) fn check_environment(&self, environment: &RuntimeEnvironment) -> Result<(), String> {
        for answering in &self.all {
            let reference = answering.policy.to_string();
            let loaded = environment
                .policy(&answering.policy)
                .map_err(|e| format!("{reference}, which answers AuthZEN requests: {e}"))?;
            let permit = permitting(&reference, answering.configured.as_deref(), loaded.policy())?;
            let same = permit.iter().all(|d| answering.permit.contains(d))
                && answering.permit.iter().all(|d| permit.contains(d));
            if !same {
                return Err(format!(
                    "{reference}: the new release permits [{}] where the server answers true for \
                     [{}]; restart the server to take it",
                    permit.join(", "),
                    answering.permit.join(", ")
                ));
            }
        }
        Ok(())
    }

    fn answering(&self, resource_type: &str) -> Option<&Arc<Answering>> {
        self.by_type
            .iter()
            .find(|(kind, _)| kind == resource_type)
            .map(|(_, answering)| answering)
            .or(self.default.as_ref())
    }
}

/// One evaluation, every member resolved, borrowed from the request: an evaluation of a boxcar
/// takes the top-level defaults by reference, never by copy.
struct Resolved<'a> {
    subject: &'a Subject,
    action: &'a Action,
    resource: &'a Resource,
    /// The evaluation's own context, or the top-level default when it has none (AuthZEN §7.1.1:
    /// a member given overrides the default whole; nothing is merged).
    context: Option<&'a Map<String, Value>>,
}

impl Resolved<'_> {
    /// Whether the context names an execution id.
    fn names_execution(&self) -> bool {
        names_execution(self.context)
    }
}

impl EvaluationRequest {
    /// The request as the one evaluation it is.
    fn resolved(&self) -> Resolved<'_> {
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
/// whole path, so a long key over many leaves would otherwise make far more than the body.
pub(crate) struct Flat {
    out: Map<String, Value>,
    size: usize,
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
            Value::Object(members) => self.add_members(&prefix, members),
            other => {
                // The name's quotes, colon and comma, and the value as compact JSON.
                self.charge(4 + compact_len(other))?;
                if self.out.insert(prefix.clone(), other.clone()).is_some() {
                    return Err(FlatError::Invalid(format!(
                        "the signal name {prefix:?} is reached twice"
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
/// context, if any.
fn signals_of(request: &Resolved<'_>) -> Result<(Map<String, Value>, Option<String>), ApiError> {
    let mut flat = Flat::new();
    let flattened = flatten_request(request, &mut flat);
    match flattened {
        Ok(execution_id) => Ok((flat.out, execution_id)),
        Err(FlatError::Invalid(message)) => Err(refusal(
            StatusCode::BAD_REQUEST,
            "server.invalid_request",
            message,
        )),
        Err(FlatError::TooLarge) => Err(refusal(
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
    let text = |s: &str| Value::String(s.to_owned());
    flat.charge("subject.type".len() + request.subject.kind.len())?;
    flat.add("subject.type".to_owned(), &text(&request.subject.kind))?;
    flat.charge("subject.id".len() + request.subject.id.len())?;
    flat.add("subject.id".to_owned(), &text(&request.subject.id))?;
    if let Some(properties) = &request.subject.properties {
        flat.add_members("subject.properties", properties)?;
    }
    flat.charge("action.name".len() + request.action.name.len())?;
    flat.add("action.name".to_owned(), &text(&request.action.name))?;
    if let Some(properties) = &request.action.properties {
        flat.add_members("action.properties", properties)?;
    }
    flat.charge("resource.type".len() + request.resource.kind.len())?;
    flat.add("resource.type".to_owned(), &text(&request.resource.kind))?;
    flat.charge("resource.id".len() + request.resource.id.len())?;
    flat.add("resource.id".to_owned(), &text(&request.resource.id))?;
    if let Some(properties) = &request.resource.properties {
        flat.add_members("resource.properties", properties)?;
    }
    let mut execution_id = None;
    for (key, value) in request.context.into_iter().flatten() {
        if key == EXECUTION_ID_KEY {
            match value {
                Value::String(id) => execution_id = Some(id.clone()),
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

/// A refused evaluation: the HTTP status and the typed error.
fn refusal(status: StatusCode, code: &str, message: String) -> ApiError {
    ApiError::new(status, code, message)
}

/// Decides one evaluation (executes it when its context names an execution id), and what the
/// request's log line says of it: the policy, the execution id, the policy's decision or the
/// error code. An execution is counted in the metrics as on `POST /v1/executions`.
fn decide(
    state: &AppState,
    runtime: &Runtime,
    request: &Resolved<'_>,
    may_execute: bool,
) -> (Result<Decision, ApiError>, Outcome) {
    let mut outcome = Outcome::default();
    let decided = decide_noting(state, runtime, request, may_execute, &mut outcome);
    if let Err(error) = &decided {
        outcome.code = Some(error.code.clone());
    }
    (decided, outcome)
}

fn decide_noting(
    state: &AppState,
    runtime: &Runtime,
    request: &Resolved<'_>,
    may_execute: bool,
    outcome: &mut Outcome,
) -> Result<Decision, ApiError> {
    // The scope first: a token that may not execute learns nothing about the policy or the
    // signals from a request that asks for an execution.
    if request.names_execution() && !may_execute {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "server.forbidden",
            "context.execution_id asks for an execution: the token lacks the `execute` scope"
                .to_owned(),
        ));
    }
    let answering = state
        .authzen
        .answering(&request.resource.kind)
        .ok_or_else(|| {
            refusal(
                StatusCode::BAD_REQUEST,
                "server.authzen_no_policy",
                format!(
                    "no policy answers resource type {:?}",
                    request.resource.kind
                ),
            )
        })?;
    let policy = answering.policy.to_string();
    outcome.policy = Some(policy.clone());
    let (signals, execution_id) = signals_of(request)?;
    let signals = Value::Object(signals);
    if state.logging.signals {
        outcome.signals = Some(signals.to_string());
    }
    let signals = Signals::from_value(signals);
    let fail = |e: &ExecutionError| {
        let mut api = execution_error(e);
        // AuthZEN's transport knows 400 for a request it cannot decide.
        if api.status == StatusCode::UNPROCESSABLE_ENTITY {
            api.status = StatusCode::BAD_REQUEST;
        }
        api
    };
    match execution_id {
        None => {
            let evaluation = runtime
                .evaluate(&answering.policy, &signals)
                .map_err(|e| fail(&e))?;
            outcome.decision = Some(evaluation.decision.clone());
            Ok(Decision {
                decision: answering.permit.contains(&evaluation.decision),
                context: Some(DecisionContext::Decided {
                    policy,
                    outcome: evaluation.decision,
                    rule_id: evaluation.rule_id,
                    reason: evaluation.reason,
                    execution_id: None,
                    attestation: None,
                }),
            })
        }
        Some(id) => {
            let execution_id = parse_execution_id(&id).map_err(|e| {
                state.metrics.execution_error(e.code());
                fail(&e)
            })?;
            outcome.execution_id = Some(execution_id.as_str().to_owned());
            let location = execution_location(execution_id.as_str());
            let request = ExecutionRequest::new(execution_id, answering.policy.clone(), signals);
            let attestation = match runtime.execute(&request) {
                Ok(attestation) => attestation,
                Err(error) => {
                    state.metrics.execution_error(error.code());
                    let mut api = fail(&error);
                    if matches!(error, ExecutionError::ReplayDetected { .. }) {
                        api = api.with_header(header::LOCATION, &location);
                    }
                    return Err(api);
                }
            };
            let predicate = attestation.predicate();
            state.metrics.execution(&predicate.decision);
            outcome.decision = Some(predicate.decision.clone());
            // Nothing after the id is consumed can fail: the attestation is embedded as its
            // canonical bytes are, as on `POST /v1/executions`.
            Ok(Decision {
                decision: answering.permit.contains(&predicate.decision),
                context: Some(DecisionContext::Decided {
                    policy,
                    outcome: predicate.decision.clone(),
                    rule_id: predicate.rule_id.clone(),
                    reason: predicate.reason.clone(),
                    execution_id: Some(id),
                    attestation: Some(attestation.envelope_canonical().clone()),
                }),
            })
        }
    }
}

/// The log line of a boxcar: one evaluation's own; for more, the execution ids, decisions and
/// error codes as JSON arrays with one entry per evaluation, in order (`null` where it has
/// none: an id may hold a comma, and a list of only the values present would not say whose
/// they are), and the policies that answered, each once, comma-separated (the signals are not
/// logged).
fn boxcar_outcome(outcomes: Vec<Outcome>) -> Outcome {
    if outcomes.len() <= 1 {
        return outcomes.into_iter().next().unwrap_or_default();
    }
    let each = |field: fn(&Outcome) -> &Option<String>| {
        outcomes.iter().any(|o| field(o).is_some()).then(|| {
            Value::from(outcomes.iter().map(field).cloned().collect::<Vec<_>>()).to_string()
        })
    };
    let mut policies: Vec<&str> = Vec::new();
    for policy in outcomes.iter().filter_map(|o| o.policy.as_deref()) {
        if !policies.contains(&policy) {
            policies.push(policy);
        }
    }
    Outcome {
        execution_id: each(|o| &o.execution_id),
        policy: (!policies.is_empty()).then(|| policies.join(",")),
        decision: each(|o| &o.decision),
        code: each(|o| &o.code),
        signals: None,
    }
}

/// A response carrying the outcome its log line and metrics read.
fn answer(result: Result<Response, ApiError>, outcome: Outcome) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(outcome);
    response
}

/// A refused evaluation inside a boxcar: `false`, with the error in its context (AuthZEN §7.2.1).
fn refused_decision(error: &ApiError) -> Decision {
    Decision {
        decision: false,
        context: Some(DecisionContext::Refused {
            error: RefusalDetail {
                status: error.status.as_u16(),
                code: error.code.clone(),
                message: error.message.clone(),
            },
        }),
    }
}

/// The evaluations of a request, taken out of it: each entry of `evaluations` read on its own
/// (one that is not an evaluation object is refused alone: AuthZEN certification c-3-4-1), or —
/// without any (AuthZEN §7.1) — one that takes every member from the top level.
fn items_of(request: &mut EvaluationsRequest) -> Vec<Result<EvaluationItem, ApiError>> {
    match request.evaluations.take() {
        Some(entries) if !entries.is_empty() => entries
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                serde_json::from_value(entry)
                    .map_err(|e| ApiError::invalid_request(format!("evaluation {index}: {e}")))
            })
            .collect(),
        _ => vec![Ok(EvaluationItem::default())],
    }
}

/// Evaluation `index` of `request`, each member its own or the top-level default (borrowed).
fn resolve<'a>(
    request: &'a EvaluationsRequest,
    item: &'a EvaluationItem,
    index: usize,
) -> Result<Resolved<'a>, ApiError> {
    let missing = |member: &str| {
        ApiError::invalid_request(format!(
            "evaluation {index}: `{member}` is missing and has no top-level default"
        ))
    };
    Ok(Resolved {
        subject: item
            .subject
            .as_ref()
            .or(request.subject.as_ref())
            .ok_or_else(|| missing("subject"))?,
        action: item
            .action
            .as_ref()
            .or(request.action.as_ref())
            .ok_or_else(|| missing("action"))?,
        resource: item
            .resource
            .as_ref()
            .or(request.resource.as_ref())
            .ok_or_else(|| missing("resource"))?,
        context: item.context.as_ref().or(request.context.as_ref()),
    })
}

/// The length of `value`'s compact JSON text, counted, not kept.
fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(bytes.len());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        // Every member read from JSON has a JSON form; were one not to, it counts as unbounded.
        Err(_) => usize::MAX,
    }
}

/// How many bytes of JSON the evaluations of `request` add up to once each takes the
/// top-level defaults it lacks: every evaluation's own members, plus each default's size times
/// the number of evaluations that take it (an entry refused as it was read takes none).
/// Computed from the parsed request without copying anything.
fn expanded_size(
    request: &EvaluationsRequest,
    items: &[Result<EvaluationItem, ApiError>],
) -> usize {
    let default = |size: usize, present: bool| if present { 0 } else { size };
    let subject = request.subject.as_ref().map_or(0, json_len);
    let action = request.action.as_ref().map_or(0, json_len);
    let resource = request.resource.as_ref().map_or(0, json_len);
    let context = request.context.as_ref().map_or(0, json_len);
    items.iter().flatten().fold(0usize, |total, item| {
        total
            .saturating_add(json_len(item))
            .saturating_add(default(subject, item.subject.is_some()))
            .saturating_add(default(action, item.action.is_some()))
            .saturating_add(default(resource, item.resource.is_some()))
            .saturating_add(default(context, item.context.is_some()))
    })
}

/// Decide one access request.
#[utoipa::path(
    post, path = "/access/v1/evaluation", tag = "authzen",
    request_body = EvaluationRequest,
    responses(
        (status = 200, description = "The decision", body = Decision),
        (status = 400, description = "Malformed request, no answering policy, or signals the policy refuses", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `evaluate` scope (or `execute`, with context.execution_id)", body = ErrorBody),
        (status = 409, description = "context.execution_id was already used; `Location` names the stored attestation", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 500, description = "The environment refused (trust) or a defect", body = ErrorBody),
(status = 503, description = "Store unavailable (`replay.*`), starting (`server.not_ready`), overloaded (`server.overloaded`) or timed out (`server.timeout`)", body = ErrorBody),
    ),
    security(("bearer" = ["evaluate"]))
)]
pub(crate) async fn evaluation(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Scope::Evaluate)?;
    let may_execute = state.authorize(&headers, Scope::Execute).is_ok();
    require_json(&headers)?;
    let request: EvaluationRequest = parse_body(&read_body(request).await?)?;
    let executes = names_execution(request.context.as_ref());
    if executes && may_execute {
        // Named on any answer, one on the request's timeout included; only an id that passed
        // its check (a refused one may be a megabyte).
        let id = request
            .context
            .as_ref()
            .and_then(|context| context.get(EXECUTION_ID_KEY))
            .and_then(Value::as_str)
            .filter(|id| parse_execution_id(id).is_ok());
        crate::state::note_request(None, id);
    }
    let (decided, outcome) = if executes {
        // An execution may block on the store: the blocking pool.
        let shared = Arc::clone(&state);
        state
            .blocking("execute", move |runtime| {
                decide(&shared, runtime, &request.resolved(), may_execute)
            })
            .await?
    } else {
        // One evaluation is pure and bounded by the policy limits: decided here, on the async
        // worker, as `POST /v1/evaluations` does.
        let started = std::time::Instant::now();
        let decided = decide(&state, &state.runtime, &request.resolved(), may_execute);
        state.metrics.runtime_call("evaluate", started.elapsed());
        decided
    };
    Ok(answer(
        decided.map(|decision| json_response(StatusCode::OK, &decision)),
        outcome,
    ))
}

/// Decide many access requests (boxcarring), with the three evaluation semantics.
#[utoipa::path(
    post, path = "/access/v1/evaluations", tag = "authzen",
    request_body = EvaluationsRequest,
    responses(
        (status = 200, description = "One decision per evaluation, in order (fewer when a short-circuiting semantic stopped early); without `evaluations`, one decision", body = EvaluationsOutcome),
        (status = 400, description = "Malformed request, or an evaluation missing a member with no default; without `evaluations`, as /access/v1/evaluation (no answering policy, signals the policy refuses)", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `evaluate` scope; without `evaluations`, or `execute` with context.execution_id (in a boxcar, that evaluation is refused: `false`)", body = ErrorBody),
        (status = 409, description = "Without `evaluations`: context.execution_id was already used; `Location` names the stored attestation", body = ErrorBody),
        (status = 413, description = "The body is too large, or more than 1,000 evaluations (`server.batch_too_large`)", body = ErrorBody),
        (status = 500, description = "Without `evaluations`: the environment refused (trust); or a defect", body = ErrorBody),
        (status = 503, description = "Starting (`server.not_ready`), overloaded (`server.overloaded`) or timed out (`server.timeout`); without `evaluations`, store unavailable (`replay.*`)", body = ErrorBody),
    ),
    security(("bearer" = ["evaluate"]))
)]
pub(crate) async fn evaluations(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Scope::Evaluate)?;
    let may_execute = state.authorize(&headers, Scope::Execute).is_ok();
    require_json(&headers)?;
    let body = read_body(request).await?;
    // Counted before the body is parsed: the scan stops at evaluation 1,001.
    if array_exceeds(&body, "evaluations", MAX_BATCH_ITEMS) {
        return Err(ApiError::batch_too_large());
    }
    let mut request: EvaluationsRequest = parse_body(&body)?;
    drop(body);
    // Counted again once parsed: the limit never rests on the scan agreeing with the parser.
    if request
        .evaluations
        .as_ref()
        .is_some_and(|evaluations| evaluations.len() > MAX_BATCH_ITEMS)
    {
        return Err(ApiError::batch_too_large());
    }
    let semantic = request
        .options
        .as_ref()
        .and_then(|o| o.evaluations_semantic)
        .unwrap_or_default();
    // An empty `evaluations` is no boxcar: AuthZEN §7.1 ("If an evaluations array is NOT
    // present or is empty, the Access Evaluations Request behaves in a backwards-compatible
    // manner with the (single) Access Evaluation API Request"), so it is decided once, as the
    // top-level request, and answered with one decision.
    let boxcar = request.evaluations.as_ref().is_some_and(|e| !e.is_empty());
    let items = items_of(&mut request);
    // One execution id names one execution: as a default it would be tried by every evaluation
    // (the first executes, the others are replays), so a boxcar takes it only per evaluation.
    if boxcar && names_execution(request.context.as_ref()) {
        return Err(ApiError::invalid_request(
            "context.execution_id at the top of a boxcar would be every evaluation's: give it \
             in the context of the one evaluation it names",
        ));
    }
    // The work a boxcar asks for is what it expands to: bounded like a body, before anything is
    // resolved or decided.
    let expanded = expanded_size(&request, &items);
    if expanded > state.limits.max_body_bytes {
        return Err(ApiError::batch_expands_too_far(
            expanded,
            state.limits.max_body_bytes,
        ));
    }
    // Timed as an execution when any evaluation asks for one (it may wait on the store).
    let executes = names_execution(request.context.as_ref())
        || items
            .iter()
            .flatten()
            .any(|item| names_execution(item.context.as_ref()));
    let operation = if executes { "execute" } else { "evaluate" };
    let shared = Arc::clone(&state);
    let decided = state
        .blocking(operation, move |runtime| {
            // Each evaluation borrows the defaults it takes, and its signals are built when it
            // is decided: one evaluation's signals are held at once, whatever the boxcar's size.
            // One that is not complete (a member missing with no default) or could not be read
            // is refused alone (AuthZEN certification c-3-4-1), as `false`, like any refusal.
            let mut out = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let resolved = item
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|item| resolve(&request, item, index));
                let (decision, outcome) = match resolved {
                    Ok(resolved) => decide(&shared, runtime, &resolved, may_execute),
                    Err(error) => {
                        let outcome = Outcome {
                            code: Some(error.code.clone()),
                            ..Outcome::default()
                        };
                        (Err(error), outcome)
                    }
                };
                let permitted = decision.as_ref().is_ok_and(|d| d.decision);
                let stop = match semantic {
                    Semantic::ExecuteAll => false,
                    Semantic::DenyOnFirstDeny => !permitted,
                    Semantic::PermitOnFirstPermit => permitted,
                };
                out.push((decision, outcome));
                if stop {
                    break;
                }
            }
            out
        })
        .await?;
    let (decisions, outcomes): (Vec<_>, Vec<_>) = decided.into_iter().unzip();
    let outcome = boxcar_outcome(outcomes);
    if boxcar {
        let evaluations = decisions
            .into_iter()
            .map(|decided| decided.unwrap_or_else(|error| refused_decision(&error)))
            .collect();
        Ok(answer(
            Ok(json_response(
                StatusCode::OK,
                &EvaluationsOutcome::Many(EvaluationsResponse { evaluations }),
            )),
            outcome,
        ))
    } else {
        // Without `evaluations`, the request is a single evaluation (AuthZEN §7.1): a refusal
        // is a transport-level error, as on /access/v1/evaluation.
        let decision = decisions
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::invalid_request("the request holds no evaluation"))?;
        Ok(answer(
            decision
                .map(|decision| json_response(StatusCode::OK, &EvaluationsOutcome::One(decision))),
            outcome,
        ))
    }
}

/// The AuthZEN metadata: where the evaluation endpoints are.
#[utoipa::path(
    get, path = "/.well-known/authzen-configuration", tag = "authzen",
    responses(
        (status = 200, description = "The Policy Decision Point metadata", body = Configuration),
        (status = 400, description = "No `pdp_url` configured and the request's `Host` is absent or not a host (`server.invalid_request`)", body = ErrorBody),
        (status = 404, description = "No policy answers AuthZEN requests here (`server.not_found`)", body = ErrorBody),
        (status = 503, description = "Overloaded (`server.overloaded`) or timed out (`server.timeout`)", body = ErrorBody),
    )
)]
pub(crate) async fn configuration(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A server no policy answers for is no Policy Decision Point: no metadata (AuthZEN §9:
    // the absence of an endpoint tells the PEP the PDP cannot answer).
    if !state.authzen.answers_anything() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "server.not_found",
            "no policy answers AuthZEN requests here ([server.authzen] names none)",
        ));
    }
    let base = match &state.authzen.pdp_url {
        Some(url) => url.clone(),
        None => format!("{}://{}", state.scheme, request_host(&headers)?),
    };
    Ok(json_response(
        StatusCode::OK,
        &Configuration {
            access_evaluation_endpoint: format!("{base}/access/v1/evaluation"),
            access_evaluations_endpoint: format!("{base}/access/v1/evaluations"),
            policy_decision_point: base,
        },
    ))
}

/// The request's `Host`, when it is a host and port and nothing else (no path, query,
/// fragment or user information can enter the identifier the metadata names).
fn request_host(headers: &HeaderMap) -> Result<String, ApiError> {
    let refuse = |why: &str| {
        ApiError::invalid_request(format!(
            "{why}: the metadata names the endpoints under the request's Host (or configure \
             server.authzen.pdp_url)"
        ))
    };
    let host = headers
        .get(header::HOST)
        .ok_or_else(|| refuse("no Host header"))?
        .to_str()
        .map_err(|_| refuse("a Host header that is not text"))?;
    match host.parse::<axum::http::uri::Authority>() {
        Ok(authority) if !host.contains('@') && !authority.host().is_empty() => {
            Ok(authority.as_str().to_owned())
        }
        _ => Err(refuse(&format!("the Host header {host:?} is not a host"))),
    }
}

/// AuthZEN requests are JSON and say so: `Content-Type: application/json` (parameters such as
/// `charset` allowed); any other type, or none, is `400` (AuthZEN §10.1, certification c-2-4-3).
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or_default().trim());
    match media_type {
        Some(media_type) if media_type.eq_ignore_ascii_case("application/json") => Ok(()),
        Some(media_type) => Err(ApiError::invalid_request(format!(
            "Content-Type {media_type:?}: AuthZEN requests are application/json"
        ))),
        None => Err(ApiError::invalid_request(
            "no Content-Type: AuthZEN requests are application/json",
        )),
    }
}
