//! `POST /v1/webhooks/argos/{path_secret}`: the ARGOS webhook receiver.
//!
//! ARGOS signs nothing (reference §4.4), so a request is processed only when the path secret
//! matches (constant-time) and the source IP is in `webhooks.allowed_ips` (peer, or the
//! trusted-proxy header). Anything else is a plain `404`, as for an unknown route. The `200` is
//! sent only after the event is recorded in the store; results are pull-verified later.

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::body::read_body_limited;
use super::client_ip::client_ip;
use super::responses::{BodyErrors, StoreUnavailable503, WebhookRefused404};
use super::state::AppState;
pub use super::state::{WebhookKeys, WebhookReceiver};
use super::ApiError;
use crate::argos::crypto::QueryCipher;
use crate::argos::webhook;

/// Largest webhook body, in bytes (1 MiB).
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

fn authorised(req: &HttpRequest, path: &str, state: &AppState, keys: &WebhookKeys) -> bool {
    let hooks = &state.webhooks;
    // Every accepted secret is compared, in constant time each.
    let mut path_ok = subtle::Choice::from(0u8);
    for secret in &keys.path_secrets {
        let expected = secret.expose_secret().as_bytes();
        if !expected.is_empty() && path.len() == expected.len() {
            path_ok |= path.as_bytes().ct_eq(expected);
        }
    }
    let ip_ok = client_ip(req, &state.trusted_proxies, state.client_ip_header)
        .is_some_and(|ip| hooks.allowed_ips.iter().any(|n| n.contains(&ip)));
    bool::from(path_ok) && ip_ok
}

/// The receiver.
#[utoipa::path(post, path = "/v1/webhooks/argos/{path_secret}", tag = "webhooks",
    params(("path_secret" = String, Path,
        description = "`webhooks.path_secret`: at least 32 of A-Z a-z 0-9 - _",
        min_length = 32, pattern = "^[A-Za-z0-9_-]+$")),
    request_body(content = Object,
        description = "ARGOS webhook body (any documented shape, optionally an encrypted envelope)"),
    responses((status = 200, description = "Recorded: `{\"status\": \"accepted\"|\"duplicate\"|\"ignored\"}`"),
        BodyErrors, WebhookRefused404, StoreUnavailable503))]
pub async fn receive(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let keys = state.webhooks.keys();
    if !authorised(&req, &path, &state, &keys) {
        tracing::warn!("webhook refused (path secret or source address)");
        return Err(ApiError::RouteNotFound);
    }
    let body = read_body_limited(&req, payload, MAX_WEBHOOK_BYTES).await?;
    let ciphers: Vec<&QueryCipher> = keys.ciphers.iter().collect();
    let event = webhook::parse(&body, &ciphers).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let kind = match &event {
        webhook::WebhookEvent::FaceAuth { .. } => "faceauth",
        webhook::WebhookEvent::TokenExpired { .. } => "token_expired",
        webhook::WebhookEvent::Approved { .. } => "approved",
        webhook::WebhookEvent::Other { .. } => "other",
    };
    let outcome = state.results.accept(event).await;
    let label = match &outcome {
        Ok(crate::results::Accepted::Accepted) => "accepted",
        Ok(crate::results::Accepted::Duplicate) => "duplicate",
        Ok(crate::results::Accepted::Ignored) => "ignored",
        Err(_) => "store_unavailable",
    };
    crate::metrics::METRICS
        .webhook_events
        .with_label_values(&[kind, label])
        .inc();
    let outcome = outcome?;
    tracing::info!(kind, outcome = label, "webhook");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": outcome })))
}
