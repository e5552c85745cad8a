//! `/l/{id}`: the link a user opens. No credentials: the unguessable id is the capability.
//!
//! * `GET` consumes a plain link and answers `302` to FaceAuth. On a confirm-step link it only
//!   shows a page whose button `POST`s back here (link scanners and chat previews send `GET`).
//! * `POST` consumes and answers `303` to FaceAuth.
//! * `HEAD` and `OPTIONS` never consume, never start a time window, never send a `Location`.
//!
//! Every method counts against `limits.open_per_ip`. Browsers (`Accept: text/html`) get errors
//! as short pages with the same status.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use secrecy::{ExposeSecret, SecretString};

use super::client_ip::client_ip;
use super::params::{LinkIdPath, OpenLinkIdPath};
use super::responses::{OpenRateLimited429, OpenRefusals, OpenStoreUnavailable503};
use super::state::AppState;
use super::{html, ApiError};
use crate::limits::RateLimiter;
use crate::links::{LinkId, LinkState, Opened};
use crate::metrics::OpenOutcome;

/// Methods `/l/{id}` answers.
pub const ALLOW: &str = "GET, HEAD, POST, OPTIONS";

fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

async fn limit(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    if let Some(ip) = client_ip(req, &state.trusted_proxies, state.client_ip_header) {
        state.limiter.open(ip).await?;
    }
    Ok(())
}

async fn open(
    req: &HttpRequest,
    path: &str,
    state: &AppState,
    confirmed: bool,
) -> Result<Opened, ApiError> {
    let Ok(id) = path.parse::<LinkId>() else {
        limit(req, state).await?;
        return Err(ApiError::LinkNotFound);
    };
    // The per-IP limit is counted in the open's own store step.
    let window = client_ip(req, &state.trusted_proxies, state.client_ip_header)
        .and_then(|ip| state.limiter.open_window(ip));
    let guarded = state
        .links
        .open_guarded(&id, confirmed, window.as_ref())
        .await?;
    let (opened, _) = RateLimiter::judge(window.as_ref(), guarded)?;
    Ok(opened)
}

/// A redirect to a FaceAuth URL built by [`crate::argos::url::FaceAuthUrlBuilder`] (so always
/// the configured form URL), with no referrer leaking to ARGOS.
fn redirect(status: StatusCode, url: &SecretString) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::LOCATION, url.expose_secret()))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish()
}

fn confirm_page(state: &AppState) -> HttpResponse {
    let body = "<p>You are about to verify your identity with a selfie. Continue when you are \
ready.</p>\n<form method=\"post\"><button type=\"submit\">Continue to \
face verification</button></form>";
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            format!(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {}; \
                 frame-ancestors 'none'; base-uri 'none'",
                state.faceauth_origin
            ),
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(html::page("Verify your identity", body))
}

fn answer(
    req: &HttpRequest,
    state: &AppState,
    result: Result<Opened, ApiError>,
    confirmed: bool,
) -> HttpResponse {
    match result {
        Ok(Opened::Redirect(url)) => {
            OpenOutcome::Redirected.count();
            tracing::info!(outcome = "redirected", "link opened");
            let status = if confirmed {
                StatusCode::SEE_OTHER
            } else {
                StatusCode::FOUND
            };
            redirect(status, &url)
        }
        Ok(Opened::NeedsConfirmation) => {
            OpenOutcome::ConfirmPage.count();
            tracing::info!(outcome = "confirm_page", "link shown");
            confirm_page(state)
        }
        Err(e) => {
            e.code().open_outcome().count();
            tracing::info!(outcome = e.code().as_str(), "link open refused");
            if wants_html(req) {
                e.html_response()
            } else {
                e.error_response()
            }
        }
    }
}

/// `GET /l/{id}`.
#[utoipa::path(get, path = "/l/{id}", tag = "open",
    params(OpenLinkIdPath),
    responses(
        (status = 302, description = "Consumed: to the FaceAuth URL",
            headers(("Location" = String), ("Referrer-Policy" = String))),
        (status = 200, description = "Confirm-step link: the confirm page (text/html), nothing consumed",
            content_type = "text/html"),
        OpenRefusals))]
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let result = open(&req, &path, &state, false).await;
    answer(&req, &state, result, false)
}

/// `POST /l/{id}`: the confirm page's button (works on any link).
#[utoipa::path(post, path = "/l/{id}", tag = "open",
    params(LinkIdPath),
    responses((status = 303, description = "Consumed: to the FaceAuth URL", headers(("Location" = String))),
        OpenRefusals))]
pub async fn post(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let result = open(&req, &path, &state, true).await;
    answer(&req, &state, result, true)
}

/// `HEAD /l/{id}`: whether the link would open; consumes nothing.
#[utoipa::path(head, path = "/l/{id}", tag = "open",
    params(LinkIdPath),
    responses((status = 200, description = "Would open; never a Location"),
        OpenRefusals))]
pub async fn head(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    limit(&req, &state).await?;
    let id: LinkId = path.parse().map_err(|_| ApiError::LinkNotFound)?;
    match state.links.peek(&id).await? {
        LinkState::Issued | LinkState::Opened => Ok(HttpResponse::Ok().finish()),
        LinkState::Used => Err(ApiError::LinkUsed),
        LinkState::Expired => Err(ApiError::LinkExpired),
        LinkState::Revoked => Err(ApiError::LinkRevoked),
    }
}

/// `OPTIONS /l/{id}`: `204` with `Allow`; consumes nothing.
#[utoipa::path(options, path = "/l/{id}", tag = "open",
    params(LinkIdPath),
    responses((status = 204, description = "Allowed methods", headers(("Allow" = String))),
        OpenRateLimited429, OpenStoreUnavailable503))]
pub async fn options(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    limit(&req, &state).await?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::ALLOW, HeaderValue::from_static(ALLOW)))
        .finish())
}
