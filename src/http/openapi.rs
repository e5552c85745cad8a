//! The OpenAPI 3.1 description, generated from the handlers' annotations (utoipa), served at
//! `GET /openapi.json`; a committed copy lives in `docs/openapi.json` (a test keeps the two
//! identical; regenerate with `cargo run -- openapi > docs/openapi.json`).

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{api, erasure_api, health, open, service_api, webhooks, well_known};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A user's JWT from the app's identity provider"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "service_bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A service JWT (audience auth.service.audience, scopes)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "session",
                "The user's JWT in the cookie named by auth.cookie_name (\"session\" is an example); \
                 accepted only from this site and cors.allowed_origins, else 403 cross_site_request",
            ))),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "A static service key (configured as its SHA-256)",
            ))),
        );
    }
}

/// Makes the generated document exact:
/// * `HEAD` operations share their handler (and so their name) with `GET`: they get their own
///   `operationId` (ids must be unique) and no response bodies (a `HEAD` answer has none).
/// * An optional JSON body (`Option<T>`) is generated as "`null` or `T`", but the API takes an
///   empty body or `T`, never the JSON value `null`: the body becomes `T`, not required.
struct Exact;

impl Modify for Exact {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::Schema;
        use utoipa::openapi::{RefOr, Required};
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.post, &mut item.put, &mut item.delete]
                .into_iter()
                .flatten()
            {
                let Some(body) = op.request_body.as_mut() else {
                    continue;
                };
                for content in body.content.values_mut() {
                    let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
                        continue;
                    };
                    let reference = one_of
                        .items
                        .iter()
                        .find(|i| matches!(i, RefOr::Ref(_)))
                        .cloned();
                    if let (2, Some(reference)) = (one_of.items.len(), reference) {
                        content.schema = Some(reference);
                        body.required = Some(Required::False);
                    }
                }
            }
            let Some(head) = item.head.as_mut() else {
                continue;
            };
            head.operation_id = head.operation_id.as_ref().map(|id| format!("{id}_head"));
            for response in head.responses.responses.values_mut() {
                if let utoipa::openapi::RefOr::T(response) = response {
                    response.content.clear();
                }
            }
        }
    }
}

/// The gateway's API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "faceauth-gateway",
        description = "Issues single-use ARGOS FaceAuth step-up links. Errors are RFC 9457 problem \
                       details (application/problem+json) with a stable `code`."
    ),
    paths(
        api::create_link,
        api::link_status,
        api::revoke_link,
        api::start,
        open::get,
        open::post,
        open::head,
        open::options,
        service_api::mint_for_user,
        service_api::put_submission,
        service_api::step_up,
        erasure_api::erase_user,
        erasure_api::erasure_status,
        webhooks::receive,
        well_known::jwks,
        health::healthz,
        health::readyz,
        handler,
    ),
    components(schemas(super::error::Problem, super::error::ProblemCode)),
    modifiers(&Security, &Exact),
    tags(
        (name = "links", description = "Minting and managing links (user JWT)"),
        (name = "open", description = "The link a user opens (the id is the capability)"),
        (name = "service", description = "The app's session layer (service credentials)"),
        (name = "webhooks", description = "ARGOS webhooks"),
        (name = "assertions",
            description = "Public keys of signed step-up assertions (docs/step-up-assertions.md)"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

/// The description as pretty JSON (what `docs/openapi.json` holds).
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn handler() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}
