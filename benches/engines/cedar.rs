//! Cedar (`cedar-policy` 4) behind the benchmark's calls: typed request, JSON text, first match.
//!
//! Each rule is a `permit` annotated `@id("<rule id>")` (see `parmana_benches::render`). The
//! policy set is parsed and strictly validated against the schema once; every decision is one
//! `Authorizer::is_authorized` over it with `Entities::empty()`. Cedar has no rule order, so the
//! deciding rule is the satisfied policy that comes first in text order (Cedar names parsed
//! policies `policy0`, `policy1`, … in that order; construction checks each name against its
//! `@id`), and the default when none is satisfied.

use std::collections::HashMap;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Entities, EntityUid, PolicyId, PolicySet, Request, RestrictedExpression,
    Schema, ValidationMode, Validator,
};
use parmana_benches::render;
use parmana_benches::spec::{DEFAULT_RULE_ID, Outcome, PolicySpec, SignalSet, SignalValue};

/// A pre-parsed, validated Cedar policy set with everything a decision needs.
pub(crate) struct CedarEngine {
    schema: Schema,
    policies: PolicySet,
    authorizer: Authorizer,
    entities: Entities,
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    order: HashMap<PolicyId, usize>,
    outcomes: Vec<(String, String)>,
    default: (String, String),
}

impl CedarEngine {
    /// Parses the rendered schema and policies and validates the policies strictly.
    pub(crate) fn new(spec: &PolicySpec) -> Result<Self, String> {
        let (schema, _warnings) = Schema::from_cedarschema_str(&render::cedar_schema(spec))
            .map_err(|e| format!("cedar schema: {e}"))?;
        let policies = PolicySet::from_str(&render::cedar_policies(spec))
            .map_err(|e| format!("cedar policies: {e}"))?;
        let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !validation.validation_passed() {
            let errors: Vec<String> = validation
                .validation_errors()
                .map(ToString::to_string)
                .collect();
            return Err(format!("cedar validation: {}", errors.join("; ")));
        }
        let mut order = HashMap::new();
        let mut outcomes = Vec::new();
        for (index, rule) in spec.rules().iter().enumerate() {
            let id = PolicyId::new(format!("policy{index}"));
            let annotated = policies.annotation(&id, "id");
            if annotated != Some(rule.id.as_str()) {
                return Err(format!(
                    "cedar policy {id} is annotated {annotated:?}, expected rule {:?}",
                    rule.id
                ));
            }
            order.insert(id, index);
            outcomes.push((rule.verdict.decision.clone(), rule.id.clone()));
        }
        let uid =
            |text: &str| EntityUid::from_str(text).map_err(|e| format!("cedar uid {text}: {e}"));
        Ok(Self {
            principal: uid(render::CEDAR_PRINCIPAL)?,
            action: uid(render::CEDAR_ACTION)?,
            resource: uid(render::CEDAR_RESOURCE)?,
            schema,
            policies,
            authorizer: Authorizer::new(),
            entities: Entities::empty(),
            order,
            outcomes,
            default: (
                spec.default_verdict().decision.clone(),
                DEFAULT_RULE_ID.to_owned(),
            ),
        })
    }

    /// A typed request: the signals as a Cedar context (built once, outside the timed loop).
    pub(crate) fn typed_request(&self, signals: &SignalSet) -> Result<Request, String> {
        let pairs = signals.iter().map(|(name, value)| {
            let expression = match value {
                SignalValue::Integer(n) => RestrictedExpression::new_long(*n),
                SignalValue::Boolean(b) => RestrictedExpression::new_bool(*b),
                SignalValue::String(s) => RestrictedExpression::new_string(s.clone()),
            };
            (name.clone(), expression)
        });
        let context = Context::from_pairs(pairs).map_err(|e| format!("cedar context: {e}"))?;
        Request::new(
            self.principal.clone(),
            self.action.clone(),
            self.resource.clone(),
            context,
            Some(&self.schema),
        )
        .map_err(|e| format!("cedar request: {e}"))
    }

    /// One decision from a pre-built request.
    pub(crate) fn decide(&self, request: &Request) -> Result<Outcome<'_>, String> {
        let response = self
            .authorizer
            .is_authorized(request, &self.policies, &self.entities);
        let diagnostics = response.diagnostics();
        if let Some(error) = diagnostics.errors().next() {
            return Err(format!("cedar evaluation error: {error}"));
        }
        let first = diagnostics
            .reason()
            .filter_map(|id| self.order.get(id).copied())
            .min();
        let (decision, rule_id) = match first.and_then(|index| self.outcomes.get(index)) {
            Some(outcome) => outcome,
            None => &self.default,
        };
        Ok(Outcome { decision, rule_id })
    }

    /// One decision from JSON text: the context is parsed and type-checked against the schema,
    /// the request validated against it, then decided.
    pub(crate) fn decide_json(&self, json: &str) -> Result<Outcome<'_>, String> {
        let context = Context::from_json_str(json, Some((&self.schema, &self.action)))
            .map_err(|e| format!("cedar context: {e}"))?;
        let request = Request::new(
            self.principal.clone(),
            self.action.clone(),
            self.resource.clone(),
            context,
            Some(&self.schema),
        )
        .map_err(|e| format!("cedar request: {e}"))?;
        self.decide(&request)
    }
}
