//! Route table of the public listener, with its CORS and error-handler wiring.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `POST /v1/links` | user JWT (bearer or cookie) | `201` `{"id","url","expiry","expires_at","confirm_step"}` |
//! | `GET /v1/links/{id}` | user JWT (owner) or service | `200` link status |
//! | `DELETE /v1/links/{id}` | user JWT (owner) | `204`; the link then answers `410` |
//! | `GET /v1/face-auth/start` | user JWT (bearer or cookie) | `302` to the FaceAuth URL |
//! | `GET /l/{id}` | the id itself | `302` to FaceAuth, the confirm page, or `404`/`410` |
//! | `POST /l/{id}` | the id itself | `303` to FaceAuth (the confirm page's button) |
//! | `HEAD`, `OPTIONS /l/{id}` | none | consume nothing, never a `Location` |
//! | `POST /v1/users/{user_id}/links` | service, `faceauth:links:write` | `201` link for delivery by message |
//! | `PUT /v1/users/{user_id}/submission` | service, `faceauth:links:write` | `204` records the user's `sid` |
//! | `GET /v1/users/{user_id}/step-up` | service, `faceauth:status:read` | `200` `{"verified", …}` |
//! | `DELETE /v1/users/{user_id}/faceauth` | service, `faceauth:data:delete` | `202` erasure (issue 19) |
//! | `GET /v1/erasures/{id}` | service, `faceauth:data:delete` | `200` erasure status |
//! | `POST /v1/webhooks/argos/{path_secret}` | path secret + source IP | `200` after recording |
//! | `GET /.well-known/jwks.json` | none | `200` step-up assertion keys (`404` while off) |
//! | `GET /healthz`, `GET /readyz` | none | liveness, store readiness |

use actix_cors::Cors;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::ResponseError;
use actix_web::{web, HttpResponse};

use super::{api, erasure_api, health, open, service_api, webhooks, well_known, ApiError};
use crate::config::CorsSettings;

pub use super::health::{healthz, readyz};
pub use super::state::AppState;

/// CORS for `/v1/*` (Fetch standard, via actix-cors): exact allowed origins, credentials only
/// when configured, and only the headers a client needs exposed. `/l/*` is a navigation target
/// and gets no CORS.
fn cors(settings: &CorsSettings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "HEAD", "POST", "PUT", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::LOCATION,
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(Some(settings.max_age_secs as usize));
    for origin in &settings.allowed_origins {
        cors = if origin == "*" {
            cors.allow_any_origin().send_wildcard()
        } else {
            cors.allowed_origin(origin)
        };
    }
    if settings.allow_credentials {
        cors = cors.supports_credentials();
    }
    cors
}

/// actix-cors answers a refused preflight with a plain-text 400; give it a problem body like
/// every other error (the gateway's own 400s already have one and pass unchanged).
fn as_problem<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(super::PROBLEM_JSON.as_bytes()));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let (req, _) = res.into_parts();
    let problem = ApiError::BadRequest(
        "CORS request refused: this origin, method or header is not allowed".into(),
    )
    .error_response();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, problem).map_into_right_body(),
    ))
}

/// Runs outside actix-cors on `/v1/*`. actix-cors adds `Access-Control-Allow-Credentials`,
/// `-Expose-Headers` and friends to every answer, also to refused origins, and judges a request
/// with two `Origin` fields by the first. Here: an answer that does not grant an origin
/// (`Access-Control-Allow-Origin` absent) carries no `Access-Control-*` field at all, a request
/// with several origins is never granted one, and such a preflight is refused (`400`).
async fn cors_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let several = crate::auth::cookie::several_origins(req.headers());
    let preflight = req.method() == actix_web::http::Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if several && preflight {
        let problem = ApiError::BadRequest(
            "CORS request refused: send exactly one origin in one Origin field".into(),
        )
        .error_response();
        return Ok(req.into_response(problem).map_into_boxed_body());
    }
    // Handlers and extractors answer errors as responses; an `Err` here would come from a
    // middleware and is passed on as it is. (The request must not be cloned before routing.)
    let mut res = next.call(req).await?.map_into_boxed_body();
    let headers = res.headers_mut();
    if several || !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        let cors_fields: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in cors_fields {
            headers.remove(name);
        }
    }
    Ok(res)
}

/// Registers the public routes; `/v1/*` behind CORS from `settings`.
pub fn configure(settings: CorsSettings) -> impl Fn(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.service(
            web::scope("/v1")
                .wrap(cors(&settings))
                .wrap(ErrorHandlers::new().handler(StatusCode::BAD_REQUEST, as_problem))
                .wrap(from_fn(cors_guard))
                .configure(user_routes)
                .configure(service_routes)
                .default_service(web::to(not_found)),
        )
        .configure(open_routes);
    }
}

/// `/v1` routes a user's app calls: links and the start redirect.
fn user_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/links")
            .route(web::post().to(api::create_link))
            .default_service(allow("POST")),
    )
    .service(
        web::resource("/links/{id}")
            .route(web::get().to(api::link_status))
            .route(web::head().to(api::link_status))
            .route(web::delete().to(api::revoke_link))
            .default_service(allow("GET, HEAD, DELETE")),
    )
    .service(
        // No HEAD: a HEAD must not mint and open a link.
        web::resource("/face-auth/start")
            .route(web::get().to(api::start))
            .default_service(allow("GET")),
    );
}

/// `/v1` routes a backend service and ARGOS call: per-user routes, erasures, webhooks.
fn service_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/users/{user_id}/links")
            .route(web::post().to(service_api::mint_for_user))
            .default_service(allow("POST")),
    )
    .service(
        web::resource("/users/{user_id}/submission")
            .route(web::put().to(service_api::put_submission))
            .default_service(allow("PUT")),
    )
    .service(
        web::resource("/users/{user_id}/step-up")
            .route(web::get().to(service_api::step_up))
            .route(web::head().to(service_api::step_up))
            .default_service(allow("GET, HEAD")),
    )
    .service(
        web::resource("/users/{user_id}/faceauth")
            .route(web::delete().to(erasure_api::erase_user))
            .default_service(allow("DELETE")),
    )
    .service(
        web::resource("/erasures/{id}")
            .route(web::get().to(erasure_api::erasure_status))
            .default_service(allow("GET")),
    )
    .service(
        web::resource("/webhooks/argos/{path_secret}")
            .route(web::post().to(webhooks::receive))
            .default_service(web::to(not_found)),
    );
}

/// Routes outside `/v1` (no CORS): the links, the API description, keys and health.
fn open_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/l/{id}")
            .route(web::get().to(open::get))
            .route(web::post().to(open::post))
            .route(web::head().to(open::head))
            .route(web::method(actix_web::http::Method::OPTIONS).to(open::options))
            .default_service(allow(open::ALLOW)),
    )
    .service(
        web::resource("/openapi.json")
            .route(web::get().to(super::openapi::handler))
            .default_service(allow("GET")),
    )
    .service(
        web::resource("/.well-known/jwks.json")
            .route(web::get().to(well_known::jwks))
            .route(web::head().to(well_known::jwks))
            .default_service(allow("GET, HEAD")),
    )
    .service(
        web::resource("/healthz")
            .route(web::get().to(health::healthz))
            .route(web::head().to(health::healthz))
            .default_service(allow("GET, HEAD")),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(health::readyz))
            .route(web::head().to(health::readyz))
            .default_service(allow("GET, HEAD")),
    );
}

/// A resource's fallback: `405 method_not_allowed` with `Allow: <methods>`.
pub fn allow(methods: &'static str) -> actix_web::Route {
    web::to(move || async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed(methods)) })
}

/// Default service: unknown routes get a problem body too.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}
