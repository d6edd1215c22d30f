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
