//! The OpenAPI 3.1 document, generated from the handlers' and wire types' annotations by `utoipa` (so `/openapi.json` cannot drift from the code).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{api, authzen, tlog, wire};

/// The bearer-token security scheme.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Parmana",
        description = "The Parmana runtime as a service: execute signals under signed policy exactly once and get a signed attestation back; pure evaluations; verification; AuthZEN 1.0. See docs/server.md.",
        license(name = "Apache-2.0")
    ),
    paths(
        api::create_execution,
        api::read_execution,
        api::evaluate,
        api::verify,
        api::healthz,
        api::readyz,
        api::status,
        api::metrics,
        api::reload,
        api::openapi,
        authzen::evaluation,
        authzen::evaluations,
        authzen::configuration,
        tlog::checkpoint,
        tlog::tile,
        tlog::proof,
    ),
    components(schemas(
        wire::ErrorBody,
        wire::ErrorDetail,
        wire::ExecutionRequestBody,
        wire::ExecutionResponse,
        wire::EvaluationRequestBody,
        wire::EvaluationBody,
        wire::EvaluationOutcome,
        wire::BatchItem,
        wire::BatchEvaluationResponse,
        wire::VerifyRequestBody,
        wire::VerifyResponse,
        wire::HealthBody,
        wire::DocumentStatus,
        wire::ReloadStatus,
        wire::StatusBody,
        wire::ReloadResponse,
        authzen::Subject,
        authzen::Resource,
        authzen::Action,
        authzen::EvaluationRequest,
        authzen::EvaluationsRequest,
        authzen::EvaluationsOptions,
        authzen::Decision,
        authzen::EvaluationsResponse,
        authzen::EvaluationsOutcome,
        authzen::Configuration,
    )),
    modifiers(&Bearer),
    tags(
        (name = "native", description = "The native API"),
        (name = "authzen", description = "OpenID AuthZEN Authorization API 1.0"),
        (name = "log", description = "The transparency log: C2SP tlog-tiles read API and execution proofs (docs/transparency-log.md)"),
        (name = "operations", description = "Health, readiness, status, metrics, reload, this document"),
    )
)]
struct ApiDoc;

/// The document served at `/openapi.json`.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeSet;

    /// The methods an OpenAPI path item may hold.
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    /// Every `METHOD /path` in the first column of `docs/server.md`'s route table (the table
    /// under "## API" whose header is `| route | scope | what |`).
    fn documented_routes(markdown: &str) -> BTreeSet<String> {
        let table = markdown
            .split_once("| route | scope | what |")
            .map(|(_, rest)| rest)
            .expect("docs/server.md has the route table");
        let mut routes = BTreeSet::new();
        for line in table.lines().skip(2) {
            let Some(row) = line.strip_prefix('|') else {
                break;
            };
            let first = row.split('|').next().unwrap_or_default();
            for quoted in first.split('`').skip(1).step_by(2) {
                let (method, path) = quoted
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("not `METHOD /path`: {quoted:?}"));
                routes.insert(format!("{method} {path}"));
            }
        }
        routes
    }

    /// Every `METHOD /path` of the generated document.
    fn openapi_routes() -> BTreeSet<String> {
        let document = serde_json::to_value(super::document()).unwrap();
        let mut routes = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in METHODS {
                if !item[method].is_null() {
                    routes.insert(format!("{} {path}", method.to_ascii_uppercase()));
                }
            }
        }
        routes
    }

    #[test]
    fn the_route_table_of_the_docs_is_the_openapi_document() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/server.md");
        let documented = documented_routes(&std::fs::read_to_string(path).unwrap());
        let generated = openapi_routes();
        assert!(documented.len() > 10, "{documented:?}");
        let missing: Vec<_> = generated.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&generated).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "in /openapi.json, not in docs/server.md's route table: {missing:?}; \
             in the table, not in /openapi.json: {extra:?}"
        );
    }

    #[test]
    fn the_route_table_reader_reads_every_quoted_route_of_a_row() {
        for (markdown, expected) in [
            (
                "| route | scope | what |\n|---|---|---|\n| `GET /a`, `POST /b/{id}` | x | y |\n\nafter",
                &["GET /a", "POST /b/{id}"][..],
            ),
            (
                "| route | scope | what |\n|---|---|---|\n| `GET /a` | `read` | `POST /not/a/route` |\n| `PUT /c` | | |\n",
                &["GET /a", "PUT /c"][..],
            ),
        ] {
            let got: Vec<String> = documented_routes(markdown).into_iter().collect();
            assert_eq!(got, expected, "{markdown}");
        }
    }
}
