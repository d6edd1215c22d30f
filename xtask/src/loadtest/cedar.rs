//! The side-by-side rows: the released claims policy written as Cedar and served by `cedar-agent` (a binary the operator installs, `--cedar-agent PATH`), started on loopback and loaded through its policy API; its Allow/Deny answer is turned back into the first-matching rule's decision and checked against ours before timing.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// The rules of `policies/claims-approval/1.0.0` in order, as Cedar (the `peers` bench's
/// rendering, with `has` for the optional `fraud_score` as the policy's `present` test), and the
/// decision each gives. Cedar has no rule order: the first rule, in this order, among those
/// satisfied decides; none satisfied is the default, `escalate`.
const RULES: [(&str, &str, &str); 6] = [
    (
        "fraud",
        "deny",
        "context has fraud_score && context.fraud_score > 80",
    ),
    (
        "embargo",
        "deny",
        r#"["IR", "KP"].contains(context.country)"#,
    ),
    ("ceiling", "deny", "context.claim_amount > 50000"),
    (
        "new-policy",
        "deny",
        "context.policy_age_days < 30 && context.claim_amount > 1000",
    ),
    ("small", "approve", "context.claim_amount <= 1000"),
    (
        "vip",
        "approve",
        "context.vip_customer == true && context.claim_amount <= 10000",
    ),
];
const DEFAULT: (&str, &str) = ("default", "escalate");

/// The authorization call for `signals` (a JSON object).
pub(crate) fn request_body(signals: &str) -> Result<String, String> {
    let context: Value = serde_json::from_str(signals).map_err(|e| e.to_string())?;
    Ok(json!({
        "principal": "User::\"claims-agent\"",
        "action": "Action::\"decide\"",
        "resource": "Claim::\"claim\"",
        "context": context,
    })
    .to_string())
}

/// The `(decision, rule_id)` a `cedar-agent` answer means under first-match.
pub(crate) fn decision_of(answer: &str) -> Result<(String, String), String> {
    let answer: Value =
        serde_json::from_str(answer).map_err(|e| format!("cedar-agent answer: {e}: {answer}"))?;
    let reasons: Vec<&str> = answer["diagnostics"]["reason"]
        .as_array()
        .ok_or_else(|| format!("cedar-agent answer without reasons: {answer}"))?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if let Some(errors) = answer["diagnostics"]["errors"].as_array()
        && !errors.is_empty()
    {
        return Err(format!("cedar-agent evaluation errors: {answer}"));
    }
    let (rule, decision) = RULES
        .iter()
        .find(|(id, _, _)| reasons.contains(id))
        .map_or(DEFAULT, |(id, decision, _)| (*id, *decision));
    Ok((decision.to_owned(), rule.to_owned()))
}

/// A `cedar-agent` on a loopback port with the claims rules loaded; stopped when dropped.
pub(crate) struct CedarAgent {
    child: Child,
    pub(crate) base: String,
    agent: ureq::Agent,
}

impl CedarAgent {
    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn start(binary: &Path) -> Result<Self, String> {
        // A free port: cedar-agent takes a port, not a listener (the gap is loopback-only).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let child = Command::new(binary)
            .args(["--addr", "127.0.0.1", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let served = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            agent,
        };
        served.wait_ready()?;
        served.load_rules()?;
        Ok(served)
    }

    fn wait_ready(&self) -> Result<(), String> {
        for _ in 0..400 {
            if let Ok(response) = self.agent.get(format!("{}/v1/", self.base)).call()
                && response.status().is_success()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err("cedar-agent never answered GET /v1/".to_owned())
    }

    fn load_rules(&self) -> Result<(), String> {
        let policies: Vec<Value> = RULES
            .iter()
            .map(|(id, _, condition)| {
                json!({
                    "id": id,
                    "content": format!(
                        "permit (principal, action == Action::\"decide\", resource) when {{ {condition} }};"
                    ),
                })
            })
            .collect();
        let mut response = self
            .agent
            .put(format!("{}/v1/policies", self.base))
            .header("Content-Type", "application/json")
            .send(Value::Array(policies).to_string().as_str())
            .map_err(|e| format!("PUT /v1/policies: {e}"))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        if status == 200 {
            Ok(())
        } else {
            Err(format!("cedar-agent refused the rules ({status}): {text}"))
        }
    }

    /// Its decision for `signals`, for the check before timing.
    pub(crate) fn decide(&self, signals: &str) -> Result<(String, String), String> {
        let mut response = self
            .agent
            .post(format!("{}/v1/is_authorized", self.base))
            .header("Content-Type", "application/json")
            .send(request_body(signals)?.as_str())
            .map_err(|e| format!("POST /v1/is_authorized: {e}"))?;
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("POST /v1/is_authorized: {e}"))?;
        decision_of(&text)
    }
}

impl Drop for CedarAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_back_to_the_first_matching_rule() {
        // (answer, expected decision and rule)
        let cases = [
            (
                r#"{"decision":"Allow","diagnostics":{"reason":["vip","small"],"errors":[]}}"#,
                Ok(("approve", "small")),
            ),
            (
                r#"{"decision":"Allow","diagnostics":{"reason":["small","embargo"],"errors":[]}}"#,
                Ok(("deny", "embargo")),
            ),
            (
                r#"{"decision":"Deny","diagnostics":{"reason":[],"errors":[]}}"#,
                Ok(("escalate", "default")),
            ),
            (
                r#"{"decision":"Deny","diagnostics":{"reason":[],"errors":["attribute missing"]}}"#,
                Err(()),
            ),
            (r#"{"decision":"Deny"}"#, Err(())),
        ];
        for (answer, expected) in cases {
            let got = decision_of(answer);
            match expected {
                Ok((decision, rule)) => {
                    assert_eq!(got, Ok((decision.to_owned(), rule.to_owned())), "{answer}");
                }
                Err(()) => assert!(got.is_err(), "{answer}"),
            }
        }
    }

    #[test]
    fn the_request_carries_the_signals_as_context() {
        let body: Value =
            serde_json::from_str(&request_body(r#"{"claim_amount":1200,"country":"DE"}"#).unwrap())
                .unwrap();
        assert_eq!(body["context"]["claim_amount"], 1200);
        assert_eq!(body["action"], "Action::\"decide\"");
        assert!(request_body("not json").is_err());
    }
}
