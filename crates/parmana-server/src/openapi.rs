//! The OpenAPI 3.1 document, generated from the handlers' and wire types' annotations by `utoipa` (so `/openapi.json` cannot drift from the code).

use std::sync::OnceLock;

use axum::body::Bytes;
use parmana_runtime::canon::{CanonError, to_canonical_vec};
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

/// The headers the server sends with a status on every route, declared once here instead of in
/// each handler's annotation: `WWW-Authenticate` with every `401` and with a `403` for a scope
/// the token lacks (RFC 6750 §3), `Location` with every `201`
/// and `409` (an execution, and the replay that names it), `Retry-After` with every `423` and
/// every `503` but `/readyz`'s (which sends none), and `Location` with a `503` on a request's
/// timeout when the request named an execution (where its outcome is read back).
struct StandardHeaders;

/// (status, header, description) for [`StandardHeaders`].
const STANDARD_HEADERS: [(&str, &str, &str); 7] = [
    (
        "401",
        "WWW-Authenticate",
        "`Bearer realm=\"parmana\"`: the scheme the route takes; with `error=\"invalid_token\"` \
         when a token was presented and refused (RFC 6750 §3)",
    ),
    (
        "403",
        "WWW-Authenticate",
        "With a token that lacks the route's scope (`server.forbidden`): `Bearer \
         realm=\"parmana\", error=\"insufficient_scope\", scope=\"<the scope>\"` (RFC 6750 §3)",
    ),
    (
        "201",
        "Location",
        "Where the stored attestation is read back",
    ),
    (
        "409",
        "Location",
        "Where the stored attestation is read back",
    ),
    ("423", "Retry-After", "Seconds to wait before asking again"),
    ("503", "Retry-After", "Seconds to wait before asking again"),
    (
        "503",
        "Location",
        "On a timeout (`server.timeout`) of a request naming an execution, the end of the \
         shutdown grace before its answer (`server.shutting_down`), or the store failing where \
         its id may have been claimed (an id the server made included): where its outcome is \
         read back",
    ),
];

impl Modify for StandardHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::header::Header;
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = operations_mut(item);
            for operation in operations {
                for (status, name, description) in STANDARD_HEADERS {
                    if path == "/readyz" && status == "503" {
                        continue;
                    }
                    if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status)
                    {
                        response.headers.entry(name.to_owned()).or_insert_with(|| {
                            let mut header = Header::default();
                            header.description = Some(description.to_owned());
                            header
                        });
                    }
                }
            }
        }
    }
}

/// Every operation of a path item, to be changed.
fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// `X-Request-ID` on every operation: a client may send one, and every answer — of every route
/// and status but a `431` that HTTP/1.1's read buffer sent unparsed — carries it back (AuthZEN §10.1.3 asks it of the AuthZEN routes; the server does
/// it everywhere). Declared here so that a generated client knows it.
struct RequestId;

impl Modify for RequestId {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, RefOr, Required, Type, header::Header};
        const NAME: &str = "X-Request-ID";
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                operation.parameters.get_or_insert_with(Vec::new).push(
                    ParameterBuilder::new()
                        .name(NAME)
                        .parameter_in(ParameterIn::Header)
                        .required(Required::False)
                        .description(Some(
                            "Any identifier of the request: the answer carries it back",
                        ))
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build(),
                );
                for (status, response) in &mut operation.responses.responses {
                    // A 431 may come from HTTP/1.1's read buffer, before any header was read.
                    if status == "431" {
                        continue;
                    }
                    if let RefOr::T(response) = response {
                        response.headers.entry(NAME.to_owned()).or_insert_with(|| {
                            let mut header = Header::default();
                            header.description = Some(
                                "The request's own `X-Request-ID`, when it sent one".to_owned(),
                            );
                            header
                        });
                    }
                }
            }
        }
    }
}

/// `431` on every operation: any request's head can be too large. Its body is the error body
/// (`server.header_too_large`) when the head arrived whole and was measured, and empty when
/// HTTP/1.1's read buffer refused it unparsed.
struct HeadTooLarge;

impl Modify for HeadTooLarge {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        on_every_operation(
            openapi,
            "431",
            "The request head is larger than `max_header_bytes` (`server.header_too_large`; an \
             empty body when HTTP/1.1's read buffer refused it unparsed)",
        );
    }
}

/// Every operation may answer `403 server.untrusted_origin` without authentication
/// (`--insecure-no-auth`): a browser's request for another site's page, on every route — those
/// that need no token included. Declared where the operation declares no `403` of its own.
struct UntrustedOrigin;

impl Modify for UntrustedOrigin {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        on_every_operation(
            openapi,
            "403",
            "Without authentication (`--insecure-no-auth`) only: a browser's request for another \
             site's page — a `Host` or `Origin` that is not loopback, or `Sec-Fetch-Site: \
             cross-site` (`server.untrusted_origin`)",
        );
    }
}

/// Declares `status`, an [`ErrorBody`](crate::wire::ErrorBody) described by `description`, on
/// every operation: where an operation declares it already, `description` is added to its own.
fn on_every_operation(openapi: &mut utoipa::openapi::OpenApi, status: &str, description: &str) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    for item in openapi.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            let response = operation.responses.responses.entry(status.to_owned());
            if let std::collections::btree_map::Entry::Occupied(mut declared) = response {
                if let RefOr::T(declared) = declared.get_mut() {
                    declared.description = format!("{}; or: {description}", declared.description);
                }
                continue;
            }
            operation
                .responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| {
                    RefOr::T(
                        ResponseBuilder::new()
                            .description(description)
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                                    .build(),
                            )
                            .build(),
                    )
                });
        }
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
        authzen::configuration_under_path,
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
        authzen::DecisionContext,
        authzen::RefusalDetail,
        authzen::EvaluationsResponse,
        authzen::EvaluationsOutcome,
        authzen::Configuration,
    )),
    modifiers(&Bearer, &StandardHeaders, &HeadTooLarge, &UntrustedOrigin, &RequestId),
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

/// The document's canonical JSON, rendered on first use and shared by every answer after (it
/// is fixed when the server is built).
pub(crate) fn rendered() -> Result<&'static Bytes, &'static CanonError> {
    static RENDERED: OnceLock<Result<Bytes, CanonError>> = OnceLock::new();
    RENDERED
        .get_or_init(|| to_canonical_vec(&document()).map(Bytes::from))
        .as_ref()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::{BTreeMap, BTreeSet};

    /// The methods an OpenAPI path item may hold.
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    /// The rows of `docs/server.md`'s route table (the table under "## API" whose header is
    /// `| route | scope | what |`), each as its cells.
    fn route_table_rows(markdown: &str) -> Vec<Vec<&str>> {
        let table = markdown
            .split_once("| route | scope | what |")
            .map(|(_, rest)| rest)
            .expect("docs/server.md has the route table");
        table
            .lines()
            .skip(2)
            .map_while(|line| line.strip_prefix('|'))
            .map(|row| row.split('|').collect())
            .collect()
    }

    /// The quoted `METHOD /path`s of a route table cell.
    fn quoted(cell: &str) -> impl Iterator<Item = &str> {
        cell.split('`').skip(1).step_by(2)
    }

    /// Every `METHOD /path` in the first column of `docs/server.md`'s route table.
    fn documented_routes(markdown: &str) -> BTreeSet<String> {
        let mut routes = BTreeSet::new();
        for row in route_table_rows(markdown) {
            for quoted in quoted(row.first().copied().unwrap_or_default()) {
                let (method, path) = quoted
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("not `METHOD /path`: {quoted:?}"));
                routes.insert(format!("{method} {path}"));
            }
        }
        routes
    }

    /// The scope column of `docs/server.md`'s route table, for each `METHOD /path`: the scope a
    /// route needs (the first quoted scope name of the cell; `None` for "none"), and whether it
    /// may also be called without a token (the cell says "none").
    fn documented_scopes(markdown: &str) -> BTreeMap<String, (Option<String>, bool)> {
        const SCOPES: [&str; 5] = ["execute", "evaluate", "read", "verify", "admin"];
        let mut scopes = BTreeMap::new();
        for row in route_table_rows(markdown) {
            let (routes, scope) = (
                row.first().copied().unwrap_or_default(),
                row.get(1).copied().unwrap_or_default(),
            );
            let named = quoted(scope)
                .find(|word| SCOPES.contains(word))
                .map(str::to_owned);
            let open = scope.split_whitespace().any(|word| word == "none");
            for route in quoted(routes) {
                scopes.insert(route.to_owned(), (named.clone(), open));
            }
        }
        scopes
    }

    /// The same of the generated document: each operation's bearer scope, and whether one of its
    /// security requirements is empty (or it has none: no token needed).
    fn openapi_scopes() -> BTreeMap<String, (Option<String>, bool)> {
        let document = serde_json::to_value(super::document()).unwrap();
        let mut scopes = BTreeMap::new();
        for route in openapi_routes() {
            let (method, path) = route.split_once(' ').unwrap();
            let security = &document["paths"][path][method.to_ascii_lowercase()]["security"];
            let requirements = security.as_array().cloned().unwrap_or_default();
            let named = requirements
                .iter()
                .find_map(|r| r["bearer"].as_array()?.first()?.as_str().map(str::to_owned));
            let open = requirements.is_empty()
                || requirements
                    .iter()
                    .any(|r| r.as_object().is_some_and(serde_json::Map::is_empty));
            scopes.insert(route, (named, open));
        }
        scopes
    }

    #[test]
    fn the_docs_scope_column_is_the_openapi_security() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/server.md");
        let documented = documented_scopes(&std::fs::read_to_string(path).unwrap());
        let generated = openapi_scopes();
        assert_eq!(documented, generated);
        // Both sides say something: scoped routes and open ones.
        assert!(
            generated
                .values()
                .any(|(scope, _)| scope.as_deref() == Some("admin"))
        );
        assert!(
            generated
                .values()
                .any(|(scope, open)| scope.is_none() && *open)
        );
        assert!(
            generated
                .values()
                .any(|(scope, open)| scope.is_some() && *open)
        );
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

    /// The request bodies' schemas carry the limits the server enforces, from the constants
    /// that enforce them: a generated client can check a request before sending it.
    #[test]
    fn request_schemas_state_the_enforced_limits() {
        use parmana_runtime::canon::{
            MAX_EXECUTION_ID_LEN, MAX_POLICY_ID_LEN, MAX_POLICY_VERSION_LEN,
        };
        let document = serde_json::to_value(super::document()).unwrap();
        let schemas = &document["components"]["schemas"];
        let policy_len = MAX_POLICY_ID_LEN + 1 + MAX_POLICY_VERSION_LEN;
        let batch = crate::error::MAX_BATCH_ITEMS;
        // (schema, member, keyword, value)
        for (schema, member, keyword, value) in [
            ("ExecutionRequestBody", "policy", "maxLength", policy_len),
            (
                "ExecutionRequestBody",
                "execution_id",
                "maxLength",
                MAX_EXECUTION_ID_LEN,
            ),
            ("ExecutionRequestBody", "execution_id", "minLength", 1),
            ("EvaluationRequestBody", "policy", "maxLength", policy_len),
            ("EvaluationRequestBody", "batch", "maxItems", batch),
            ("EvaluationRequestBody", "batch", "minItems", 1),
            ("EvaluationsRequest", "evaluations", "maxItems", batch),
        ] {
            let stated = &schemas[schema]["properties"][member][keyword];
            assert_eq!(
                stated.as_u64(),
                u64::try_from(value).ok(),
                "{schema}.{member} {keyword}: {}",
                schemas[schema]
            );
        }
        // The execution id's characters: the bytes 0x21 to 0x7E, as `ExecutionId::parse` takes.
        assert_eq!(
            schemas["ExecutionRequestBody"]["properties"]["execution_id"]["pattern"],
            "^[!-~]+$"
        );
        assert!(parmana_runtime::canon::ExecutionId::parse("!~").is_ok());
        assert!(parmana_runtime::canon::ExecutionId::parse("a b").is_err());
        assert!(parmana_runtime::canon::ExecutionId::parse("é").is_err());
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

    /// The response headers the document declares for an operation's status, lowercased.
    fn declared_headers(document: &serde_json::Value, route: &str, status: &str) -> Vec<String> {
        let (method, path) = route.split_once(' ').unwrap();
        let response = &document["paths"][path][method.to_ascii_lowercase()]["responses"][status];
        assert!(response.is_object(), "{route} declares no {status}");
        response["headers"]
            .as_object()
            .map(|headers| headers.keys().map(|k| k.to_ascii_lowercase()).collect())
            .unwrap_or_default()
    }

    /// Every header the handlers send on a status is declared for it: `Location` with the
    /// stored attestation (201, and a replay's 409 on every route that executes), `Retry-After`
    /// on every 503 (shed, timed out, store unavailable: the readiness probe's excepted, it
    /// sends none), on 423 (claimed, pending) and on the proof's 404 (not yet sequenced), and
    /// `WWW-Authenticate` on every 401.
    #[test]
    fn the_headers_the_server_sends_are_declared() {
        let document = serde_json::to_value(super::document()).unwrap();
        let cases = [
            ("POST /v1/executions", "201", "location"),
            ("POST /v1/executions", "409", "location"),
            ("POST /access/v1/evaluation", "409", "location"),
            ("POST /access/v1/evaluations", "409", "location"),
            ("GET /v1/executions/{id}", "423", "retry-after"),
            ("GET /v1/executions/{id}/proof", "404", "retry-after"),
            ("POST /v1/executions", "503", "location"),
            ("POST /access/v1/evaluation", "503", "location"),
        ];
        for (route, status, header) in cases {
            let declared = declared_headers(&document, route, status);
            assert!(
                declared.iter().any(|h| h == header),
                "{route} {status}: {declared:?}"
            );
        }
        let mut checked = 0;
        for route in openapi_routes() {
            for (status, header) in [("503", "retry-after"), ("401", "www-authenticate")] {
                let (method, path) = route.split_once(' ').unwrap();
                let declared = &document["paths"][path][method.to_ascii_lowercase()]["responses"];
                if declared[status].is_null() || route == "GET /readyz" {
                    continue;
                }
                checked += 1;
                let headers = declared_headers(&document, &route, status);
                assert!(
                    headers.iter().any(|h| h == header),
                    "{route} {status}: {headers:?}"
                );
            }
        }
        assert!(checked > 10, "{checked}");
        // `X-Request-ID`: taken by every operation, carried back on every answer.
        for route in openapi_routes() {
            let (method, path) = route.split_once(' ').unwrap();
            let operation = &document["paths"][path][method.to_ascii_lowercase()];
            let parameters = operation["parameters"].as_array().unwrap();
            assert!(
                parameters
                    .iter()
                    .any(|p| p["name"] == "X-Request-ID" && p["in"] == "header"),
                "{route}: {parameters:?}"
            );
            // Any head can be too large, and without authentication any route refuses a
            // browser's cross-site request.
            for status in ["403", "431"] {
                assert!(
                    operation["responses"].get(status).is_some(),
                    "{route} declares no {status}"
                );
            }
            let forbidden = operation["responses"]["403"]["description"]
                .as_str()
                .unwrap();
            assert!(
                forbidden.contains("server.untrusted_origin"),
                "{route}: {forbidden}"
            );
            for status in operation["responses"].as_object().unwrap().keys() {
                if status == "431" {
                    continue;
                }
                let headers = declared_headers(&document, &route, status);
                assert!(
                    headers.iter().any(|h| h == "x-request-id"),
                    "{route} {status}: {headers:?}"
                );
            }
        }
    }

    /// The document is rendered once: every answer shares the same bytes, which are the
    /// canonical JSON of the generated document.
    #[test]
    fn the_rendered_document_is_built_once() {
        let first = super::rendered().unwrap();
        let again = super::rendered().unwrap();
        assert!(std::ptr::eq(first, again));
        assert_eq!(
            first.as_ref(),
            super::to_canonical_vec(&super::document()).unwrap()
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
