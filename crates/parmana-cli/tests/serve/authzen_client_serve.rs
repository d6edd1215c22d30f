//! Interoperability: an AuthZEN client we did not write (`openidauthzen`, a PEP SDK from crates.io) discovers `parmana serve` over HTTPS and evaluates through it unchanged.

use std::time::Duration;

use openidauthzen::http::{HttpClient, HttpResponse, Method};
use openidauthzen::{
    Action, AuthZenClient, Error, EvaluationItem, EvaluationRequest, EvaluationSemantic,
    EvaluationsOptions, EvaluationsRequest, Resource, Subject,
};
use serde_json::json;

use crate::authzen_serve::{authzen_deployment, root};
use crate::harness::Served;
use crate::tls_serve::{Authority, client, server_files};

/// The SDK's transport trait over the tests' `ureq` agent (which trusts the test CA): the client
/// itself builds every URL, header and body.
struct UreqTransport(ureq::Agent);

#[async_trait::async_trait]
impl HttpClient for UreqTransport {
    async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, Error> {
        let transport = |e: ureq::Error| Error::Http(Box::new(e));
        let response = match method {
            Method::Post => {
                let mut request = self.0.post(url).header("content-type", "application/json");
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.send(body.unwrap_or_default())
            }
            _ => {
                let mut request = self.0.get(url);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                request.call()
            }
        };
        let mut response = response.map_err(transport)?;
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = response.body_mut().read_to_vec().map_err(transport)?;
        // What the SDK receives is what /openapi.json says, as for every other client here.
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|slash| &rest[slash..]))
            .unwrap_or("/");
        let reply = crate::harness::Reply {
            status,
            headers: headers.clone(),
            text: String::from_utf8_lossy(&body).into_owned(),
            bytes: body.clone(),
        };
        let method_name = match method {
            Method::Post => "POST",
            _ => "GET",
        };
        crate::harness::check_against_openapi(url, method_name, path, &reply);
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

fn subject(role: &str) -> Subject {
    Subject {
        subject_type: "user".to_owned(),
        id: Some("alice@example.com".to_owned()),
        properties: Some(json!({ "role": role })),
    }
}

fn action(name: &str) -> Action {
    Action {
        name: name.to_owned(),
        properties: None,
    }
}

fn document() -> Resource {
    Resource {
        resource_type: "document".to_owned(),
        id: Some("boxcarring.md".to_owned()),
        properties: None,
    }
}

fn evaluation(role: &str, verb: &str) -> EvaluationRequest {
    EvaluationRequest {
        subject: subject(role),
        action: action(verb),
        resource: document(),
        context: None,
    }
}

#[test]
fn a_third_party_authzen_client_discovers_and_evaluates_unchanged() {
    let temp = authzen_deployment();
    let ca = Authority::new("server CA");
    let (certificate, key) = server_files(&root(&temp), &ca);
    let (certificate, key) = (certificate.to_string_lossy(), key.to_string_lossy());
    let served = Served::start_with_agent(
        &root(&temp),
        &["--dev-token", "--tls-cert", &certificate, "--tls-key", &key],
        &[],
        client(&ca, None),
    );
    let token = served.token.clone().unwrap();
    // The PDP identifier is the server's HTTPS origin; the SDK refuses anything else.
    let pdp = served.base.clone();
    assert!(pdp.starts_with("https://"), "{pdp}");
    let sdk = AuthZenClient::new(UreqTransport(client(&ca, None)), Duration::from_secs(60));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Discovery: the metadata names this PDP and its endpoints (the SDK checks the match).
        let configuration = sdk.discover(&pdp).await.unwrap();
        assert_eq!(
            configuration.access_evaluation_endpoint,
            format!("{pdp}/access/v1/evaluation")
        );

        // Single evaluations, as the policy decides them.
        for (role, verb, expected) in [
            ("viewer", "read", true),
            ("viewer", "edit", false),
            ("editor", "edit", true),
        ] {
            let answer = sdk
                .evaluate(&pdp, &token, &evaluation(role, verb))
                .await
                .unwrap();
            assert_eq!(answer.decision, expected, "{role} {verb}");
        }

        // A boxcar with request-level defaults and each semantic.
        let boxcar = |semantic: Option<EvaluationSemantic>| EvaluationsRequest {
            subject: Some(subject("viewer")),
            action: None,
            resource: Some(document()),
            context: None,
            evaluations: ["read", "edit", "read"]
                .into_iter()
                .map(|verb| EvaluationItem {
                    subject: None,
                    action: Some(action(verb)),
                    resource: None,
                    context: None,
                })
                .collect(),
            options: semantic.map(|semantic| EvaluationsOptions {
                evaluations_semantic: Some(semantic),
                extra: None,
            }),
        };
        for (semantic, expected) in [
            (None, vec![true, false, true]),
            (
                Some(EvaluationSemantic::ExecuteAll),
                vec![true, false, true],
            ),
            (Some(EvaluationSemantic::DenyOnFirstDeny), vec![true, false]),
            (Some(EvaluationSemantic::PermitOnFirstPermit), vec![true]),
        ] {
            let answers = sdk
                .evaluate_batch(&pdp, &token, &boxcar(semantic.clone()))
                .await
                .unwrap();
            let decisions: Vec<bool> = answers.evaluations.iter().map(|a| a.decision).collect();
            assert_eq!(decisions, expected, "{semantic:?}");
        }

        // An execution id in the context makes the evaluation an execution: the attestation
        // comes back in the response context, and the id cannot be used twice.
        let mut execution = evaluation("editor", "edit");
        execution.context = Some(
            json!({ "execution_id": "sdk-0001" })
                .as_object()
                .cloned()
                .unwrap(),
        );
        let executed = sdk.evaluate(&pdp, &token, &execution).await.unwrap();
        assert!(executed.decision);
        let context = executed.context.unwrap();
        assert!(context["attestation"]["signatures"].is_array(), "{context}");
        let replay = sdk.evaluate(&pdp, &token, &execution).await;
        assert!(
            matches!(replay, Err(Error::HttpStatus { status: 409, .. })),
            "{replay:?}"
        );

        // A wrong token is refused as an HTTP status the SDK reports, not as a decision.
        let refused = sdk
            .evaluate(&pdp, "not-a-token", &evaluation("viewer", "read"))
            .await;
        assert!(
            matches!(refused, Err(Error::HttpStatus { status: 401, .. })),
            "{refused:?}"
        );
    });
}
