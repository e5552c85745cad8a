//! The `/v1` API for apps and their frontends (bearer JWT).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::body::{
    created_response, idempotency_key, mint_response, parse_optional_object, read_body,
    MintResponse,
};
use super::params::{LinkIdPath, MintIdempotencyKey};
use super::responses::{
    AuthErrors401, BodyErrors, CrossSite403, IdempotencyKeyInUse409, InsufficientScope403,
    LinkNotFound404, MintRefused422, NoSubmission422, RateLimited429, StoreUnavailable503,
};
use super::state::AppState;
use super::ApiError;
use crate::auth::service::{Caller, SCOPE_STATUS_READ};
use crate::auth::Principal;
use crate::idempotency::{self, Begin, StoredResponse};
use crate::limits::RateStatus;
use crate::links::{IssueOptions, LinkId, Requester};

/// Body of `POST /v1/links`: empty, `{}`, or `{"confirm_step": bool}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    /// Overrides `links.confirm_step` for this link.
    #[serde(default)]
    confirm_step: Option<bool>,
}

/// The requester of a user's link: the `sid` is resolved server-side (`sid.sources`: the
/// verified token's claim, the store, ARGOS), never from the request.
fn requester(principal: Principal) -> Requester {
    Requester {
        user_id: principal.user_id,
        sid_claim: principal.sid,
        cf: principal.cf,
    }
}

/// `POST /v1/links`: mint a link for the caller.
#[utoipa::path(post, path = "/v1/links", tag = "links",
    request_body(content = Option<MintRequest>, description = "Empty, `{}` or `{\"confirm_step\": bool}`"),
    params(MintIdempotencyKey),
    responses(
        (status = 201, description = "Minted", body = MintResponse,
            headers(("Location" = String, description = "`/v1/links/{id}`"),
                    ("RateLimit-Policy" = String), ("RateLimit" = String))),
        AuthErrors401, CrossSite403, BodyErrors, IdempotencyKeyInUse409, MintRefused422,
        RateLimited429, StoreUnavailable503),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn create_link(
    req: HttpRequest,
    principal: Principal,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload).await?;
    let key = idempotency_key(&req)?;
    let request: MintRequest = parse_optional_object(&body)?;
    let claim = match key {
        Some(key) => match state
            .idempotency
            .begin(&principal.user_id, &key, &body)
            .await?
        {
            Begin::Replay(stored) => return Ok(created_response(&stored, true, None)),
            Begin::Proceed(claim) => Some(claim),
        },
        None => None,
    };
    let result = mint(&state, principal, request, claim.as_ref()).await;
    match (claim, &result) {
        (Some(claim), Ok((stored, _))) => {
            if let Err(e) = state.idempotency.complete(claim, stored.clone()).await {
                tracing::warn!(error = %e, "idempotent response not stored");
            }
        }
        (Some(claim), Err(_)) => state.idempotency.release(claim).await,
        (None, _) => {}
    }
    let (stored, rate) = result?;
    Ok(created_response(&stored, false, rate))
}

async fn mint(
    state: &AppState,
    principal: Principal,
    request: MintRequest,
    claim: Option<&idempotency::Claim>,
) -> Result<(StoredResponse, Option<RateStatus>), ApiError> {
    let options = IssueOptions {
        confirm_step: request
            .confirm_step
            .unwrap_or(state.links.options().confirm_step),
        ..IssueOptions::default()
    };
    let issued = state
        .issuer()
        .issue(requester(principal), options, claim)
        .await?;
    Ok((mint_response(state, &issued.link)?, issued.rate))
}

fn link_id(path: &str) -> Result<LinkId, ApiError> {
    path.parse().map_err(|_| ApiError::LinkNotFound)
}

/// `GET /v1/links/{id}`: a link's status for its owner, or for a service with
/// `faceauth:status:read`.
#[utoipa::path(method(get, head), path = "/v1/links/{id}", tag = "links",
    params(LinkIdPath),
    responses((status = 200, description = "Status", body = crate::links::LinkStatus),
        AuthErrors401, InsufficientScope403, LinkNotFound404, StoreUnavailable503),
    security(("bearer" = []), ("cookie" = []), ("service_bearer" = []), ("api_key" = [])))]
pub async fn link_status(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let owner = match &caller {
        Caller::User(p) => Some(p.user_id.as_str()),
        Caller::Service(s) => {
            s.require(SCOPE_STATUS_READ)?;
            None
        }
    };
    let status = state.links.status(&link_id(&path)?, owner).await?;
    Ok(HttpResponse::Ok().json(status))
}

/// `DELETE /v1/links/{id}`: the owner revokes a link; it then answers `410 link_revoked`.
#[utoipa::path(delete, path = "/v1/links/{id}", tag = "links",
    params(LinkIdPath),
    responses((status = 204, description = "Revoked (a used or expired link keeps its state)"),
        AuthErrors401, LinkNotFound404, StoreUnavailable503),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn revoke_link(
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .links
        .revoke(&link_id(&path)?, &principal.user_id)
        .await?;
    tracing::info!("link revoked by its owner");
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/face-auth/start`: mint and open in one step, `302` to FaceAuth. The browser is
/// already on its way, so there is no confirm step here.
#[utoipa::path(get, path = "/v1/face-auth/start", tag = "links",
    responses((status = 302, description = "To the FaceAuth URL (a secret)", headers(("Location" = String))),
        AuthErrors401, NoSubmission422, RateLimited429, StoreUnavailable503),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn start(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let options = IssueOptions {
        open_now: true,
        ..IssueOptions::default()
    };
    let issued = state
        .issuer()
        .issue(requester(principal), options, None)
        .await?;
    let url = issued
        .url
        .ok_or(ApiError::Internal("start minted no FaceAuth URL"))?;
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, url.expose_secret()))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish())
}
