//! Routes of the public listener.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `POST /v1/links` | bearer JWT | `201` `{"id","url","expiry","expires_at"}` |
//! | `GET /v1/links/{id}` | bearer JWT (owner) | `200` link status |
//! | `GET /v1/face-auth/start` | bearer JWT | `302` to the FaceAuth URL |
//! | `GET /l/{id}` | the id itself | `302` to the FaceAuth URL, or `404`/`410` |
//! | `HEAD /l/{id}` | none | `200`/`404`/`410`, consumes nothing, never a `Location` |
//! | `GET /healthz`, `GET /readyz` | none | liveness, store readiness |

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tracing::Instrument;

use super::ApiError;
use crate::auth::Principal;
use crate::links::{Expiry, LinkId, LinkService, LinkState, NewLink};

/// Largest accepted request body, in bytes (16 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Shared state of the public routes.
pub struct AppState {
    /// The link service.
    pub links: LinkService,
    /// `server.public_base_url` without a trailing `/`.
    pub public_base_url: String,
}

/// Registers the public routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/links")
            .route(web::post().to(create_link))
            .default_service(allow("POST")),
    )
    .service(
        web::resource("/v1/links/{id}")
            .route(web::get().to(link_status))
            .default_service(allow("GET")),
    )
    .service(
        web::resource("/v1/face-auth/start")
            .route(web::get().to(start))
            .default_service(allow("GET")),
    )
    .service(
        web::resource("/l/{id}")
            .route(web::get().to(open_link))
            .route(web::head().to(head_link))
            .default_service(allow("GET, HEAD")),
    )
    .service(
        web::resource("/healthz")
            .route(web::get().to(healthz))
            .default_service(allow("GET")),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(readyz))
            .default_service(allow("GET")),
    );
}

/// A resource's fallback: `405 method_not_allowed` with `Allow: <methods>`.
pub fn allow(methods: &'static str) -> actix_web::Route {
    web::to(move || async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed(methods)) })
}

/// Body of `POST /v1/links`: currently no fields; an empty body or `{}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MintRequest {}

/// Answer of `POST /v1/links`.
#[derive(Debug, Serialize)]
struct MintResponse {
    id: String,
    url: String,
    expiry: Expiry,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: time::OffsetDateTime,
}

/// The link to mint for an authenticated caller: the `sid` comes from the verified token,
/// never from the request body.
fn new_link(principal: Principal) -> Result<NewLink, ApiError> {
    Ok(NewLink {
        sid: principal.sid.ok_or(ApiError::NoSubmission)?,
        user_id: principal.user_id,
        cf: principal.cf,
    })
}

async fn read_body(payload: web::Payload) -> Result<web::Bytes, ApiError> {
    match payload.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiError::BadRequest(
            "the request body could not be read".into(),
        )),
        Err(_) => Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES)),
    }
}

/// An empty body means "no options"; otherwise the body must be one JSON object of type `T`.
/// Errors: [`ApiError::BadRequest`] naming the offending field or position.
fn parse_optional_object<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    serde_json::from_value(value).map_err(|e| ApiError::BadRequest(format!("invalid body: {e}")))
}

async fn create_link(
    principal: Principal,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload).await?;
    parse_optional_object::<MintRequest>(&body)?;
    let minted = state.links.mint(&new_link(principal)?).await?;
    let id = minted.id.to_string();
    tracing::info!(expiry = minted.record.expiry.as_str(), "link minted");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/links/{id}")))
        .json(MintResponse {
            url: format!("{}/l/{id}", state.public_base_url),
            id,
            expiry: minted.record.expiry,
            expires_at: crate::links::utc_from_ms(minted.record.expires_at_ms),
        }))
}

async fn link_status(
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id: LinkId = path.parse().map_err(|_| ApiError::LinkNotFound)?;
    let status = state.links.status(&id, &principal.user_id).await?;
    Ok(HttpResponse::Ok().json(status))
}

async fn start(principal: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let url = state.links.mint_and_open(&new_link(principal)?).await?;
    tracing::info!("link minted and opened (start)");
    Ok(redirect(&url))
}

/// `302` to a FaceAuth URL built by [`crate::argos::url::FaceAuthUrlBuilder`] (so always the
/// configured form URL), with no referrer leaking to ARGOS.
fn redirect(url: &SecretString) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, url.expose_secret()))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish()
}

fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

async fn open_link(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let result = match path.parse::<LinkId>() {
        Ok(id) => state.links.open(&id).await.map_err(ApiError::from),
        Err(_) => Err(ApiError::LinkNotFound),
    };
    match result {
        Ok(url) => {
            tracing::info!(outcome = "redirected", "link opened");
            redirect(&url)
        }
        Err(e) => {
            tracing::info!(outcome = e.code(), "link open refused");
            if wants_html(&req) {
                e.html_response()
            } else {
                e.error_response()
            }
        }
    }
}

/// `HEAD /l/{id}`: reports whether the link would open, without consuming it, starting a time
/// window, or revealing the FaceAuth URL (link scanners send HEAD).
async fn head_link(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id: LinkId = path.parse().map_err(|_| ApiError::LinkNotFound)?;
    match state.links.peek(&id).await? {
        LinkState::Issued | LinkState::Opened => Ok(HttpResponse::Ok().finish()),
        LinkState::Used => Err(ApiError::LinkUsed),
        LinkState::Expired => Err(ApiError::LinkExpired),
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.links.ready().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
}

/// Default service: unknown routes get a problem body too.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn acceptable_request_id(v: &HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())).then_some(s)
}

/// Middleware: one span per request with the route *template* (never the path, which holds
/// link ids), a request id from `X-Request-Id` (or a new UUID) echoed in the response, and one
/// log line with status and latency.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(acceptable_request_id)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = %route,
        request_id = %request_id
    );
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    let status = res.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status, elapsed_ms, "request finished"));
    Ok(res)
}
