//! The AuthZEN 1.0 wire types: the evaluation and evaluations requests and answers, and the metadata document, as the OpenAPI document describes them.

use parmana_runtime::canon::RawCanonical;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

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
    /// (`false`, with its error), not the request. At most 1,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<EvaluationItem>>, max_items = 1000)]
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
    pub(crate) context: Option<DecisionContext>,
}

/// The `context` of a [`Decision`].
#[derive(Debug, Clone, Serialize, ToSchema)]
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
        #[schema(value_type = Option<Object>)]
        attestation: Option<RawCanonical>,
    },
    /// A refused evaluation inside a boxcar (AuthZEN §7.2.1).
    Refused { error: RefusalDetail },
}

/// The error of a refused evaluation inside a boxcar.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct RefusalDetail {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) message: String,
    /// Where the execution's outcome reads back, when the refusal came after its id may have
    /// been consumed (a replay, a store failure after the claim): the `Location` the request
    /// would have carried alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) location: Option<String>,
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
