//! The AuthZEN mapping a deployment configures: which policy answers which `resource.type`, and which of its decisions mean `true`, checked against the verified environment.

use std::sync::Arc;

use parmana_runtime::RuntimeEnvironment;
use parmana_runtime::canon::PolicyRef;
use parmana_runtime::policy::AdditionalSignals;

use crate::error::ServerError;
use crate::settings::AuthzenSettings;

/// A policy that answers, with the decisions that mean `true`.
#[derive(Debug)]
pub(super) struct Answering {
    pub(super) policy: PolicyRef,
    /// The deployment's `permit` for it, if it gives one.
    configured: Option<Vec<String>>,
    pub(super) permit: Vec<String>,
}

/// The verified AuthZEN mapping: which policy answers which `resource.type`.
#[derive(Debug, Default)]
pub(crate) struct AuthzenMapping {
    by_type: Vec<(String, Arc<Answering>)>,
    default: Option<Arc<Answering>>,
    /// Every policy that answers, once.
    all: Vec<Arc<Answering>>,
    /// The Policy Decision Point identifier the metadata names (`pdp_url`, checked, exactly as
    /// configured: AuthZEN §9.2.3 has clients discard metadata whose identifier is not the
    /// one they were given); `None`: the scheme and `Host` of each request.
    pub(super) pdp_url: Option<String>,
    /// The answering policies that refuse undeclared signals (warned of at start).
    strict: Vec<String>,
}

/// Checks `server.authzen.pdp_url`: an absolute `https` URL with a host and no query or
/// fragment (AuthZEN §9.1, `policy_decision_point`); returned as it is.
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
    Ok(url.to_owned())
}

/// Refuses a policy answering AuthZEN requests that declares a signal no request can give a
/// value. A request flattens into `subject.type`, `subject.id`, `action.name`, `resource.type`,
/// `resource.id` and names under `subject.properties.`, `action.properties.`,
/// `resource.properties.` and `context.` (but `context.execution_id`, the execution id, never a
/// signal): any other name — a member's container (`resource.properties`), a name beside the
/// members (`subject.role`, `resource.owner`, `claim_amount`), one under a member that is a
/// string (`subject.id.x`) — is never made, so the signal would always be absent (a rule denying
/// on it silent) or, required, every request refused.
fn check_declarable(
    reference: &str,
    policy: &parmana_runtime::policy::CompiledPolicy,
) -> Result<(), String> {
    const STRINGS: [&str; 5] = [
        "subject.type",
        "subject.id",
        "action.name",
        "resource.type",
        "resource.id",
    ];
    const UNDER: [&str; 4] = [
        "subject.properties.",
        "action.properties.",
        "resource.properties.",
        "context.",
    ];
    let execution_id = format!("context.{}", super::EXECUTION_ID_KEY);
    for declaration in policy.signals() {
        let name = declaration.name();
        let makeable =
            STRINGS.contains(&name) || UNDER.iter().any(|prefix| name.starts_with(prefix));
        if !makeable || name == execution_id {
            return Err(format!(
                "{reference} declares the signal {name:?}, which no AuthZEN request can give a \
                 value (docs/server.md, \"Signals\"): it would always be absent"
            ));
        }
    }
    Ok(())
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
    /// Where an AuthZEN client reads an execution back (the `Location` of a replay, or of a
    /// failure after the claim): `/v1/executions/{id}` under the path of `pdp_url`, where the
    /// Policy Decision Point is served under a path prefix — resolved against the AuthZEN
    /// endpoint, it stays under the prefix a proxy forwards.
    pub(crate) fn execution_location(&self, execution_id: &str) -> String {
        format!(
            "{}{}",
            self.path_prefix(),
            crate::api::execution_location(execution_id)
        )
    }

    /// The path of `pdp_url` without its trailing `/` (empty where it has none, or no
    /// `pdp_url` is configured): what AuthZEN clients' read-back paths go under.
    pub(crate) fn path_prefix(&self) -> String {
        self.pdp_url
            .as_deref()
            .and_then(|url| url.parse::<axum::http::Uri>().ok())
            .map(|url| url.path().trim_end_matches('/').to_owned())
            .unwrap_or_default()
    }

    /// Checks the configuration against the environment: every policy is released and
    /// compiles, every permitting decision is one of its decisions, no resource type is
    /// answered twice, and the default policy is one of those configured.
    pub(crate) fn new(
        settings: &AuthzenSettings,
        environment: &RuntimeEnvironment,
    ) -> Result<Self, ServerError> {
        let refuse = |message: String| ServerError::AuthzenConfig(message);
        let mut mapping = Self::default();
        let mut all: Vec<Arc<Answering>> = Vec::new();
        for entry in &settings.policies {
            let policy = parmana_runtime::parse_policy_ref(&entry.policy)
                .map_err(|e| refuse(e.to_string()))?;
            // One entry per policy: two would say two things of what `true` means for it, and
            // which of them `default_policy` names.
            if all.iter().any(|answering| answering.policy == policy) {
                return Err(refuse(format!(
                    "{policy} has two entries: give it one, naming every resource type it answers"
                )));
            }
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
        // An entry with no resource type answers only as the default: one that is not would
        // answer nothing, yet the metadata would announce a Policy Decision Point.
        if let Some(idle) = all.iter().find(|answering| {
            !mapping
                .by_type
                .iter()
                .any(|(_, a)| Arc::ptr_eq(a, answering))
                && !mapping
                    .default
                    .as_ref()
                    .is_some_and(|d| Arc::ptr_eq(d, answering))
        }) {
            return Err(refuse(format!(
                "{}: it names no resource type and is not the default_policy, so it would \
                 answer nothing",
                idle.policy
            )));
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
            check_declarable(&answering.policy.to_string(), loaded.policy()).map_err(refuse)?;
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
    pub(super) fn answers_anything(&self) -> bool {
        !self.by_type.is_empty() || self.default.is_some()
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
            check_declarable(&reference, loaded.policy())?;
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

    pub(super) fn answering(&self, resource_type: &str) -> Option<&Arc<Answering>> {
        self.by_type
            .iter()
            .find(|(kind, _)| kind == resource_type)
            .map(|(_, answering)| answering)
            .or(self.default.as_ref())
    }
}
