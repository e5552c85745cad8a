//! Routes for the app's session layer (service credentials, see [`crate::auth::service`]).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::body::{created_response, mint_response, parse_optional_object, read_body};
use super::extract::user_id_from_path;
use super::params::UserIdPath;
use super::responses::{
    BadRequest400, BodyErrors, NoSubmission422, RateLimited429, ServiceAuthErrors,
    StoreUnavailable503,
};
use super::state::AppState;
use super::ApiError;
use crate::assertions::{Assertion, AssertionFacts};
use crate::auth::service::{ServicePrincipal, SCOPE_LINKS_WRITE, SCOPE_STATUS_READ};
use crate::links::{utc_from_ms, IssueOptions, Requester};

/// Longest `reference`, in bytes.
pub const MAX_REFERENCE_BYTES: usize = 256;
/// Body of `POST /v1/users/{user_id}/links`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceMintRequest {
    #[serde(rename = "authCf1", default)]
    auth_cf1: Option<String>,
    #[serde(rename = "authCf2", default)]
    auth_cf2: Option<String>,
    #[serde(rename = "authCf3", default)]
    auth_cf3: Option<String>,
    /// Defaults to `true` here: these links travel by message.
    #[serde(default)]
    confirm_step: Option<bool>,
    /// Opaque, at most 256 bytes; echoed in results and callbacks.
    #[serde(default)]
    #[schema(max_length = 256)]
    reference: Option<String>,
}

/// `POST /v1/users/{user_id}/links`: mint a link for a user, for delivery by push, SMS or
/// e-mail (`faceauth:links:write`).
#[utoipa::path(post, path = "/v1/users/{user_id}/links", tag = "service",
    params(UserIdPath),
    request_body(content = Option<ServiceMintRequest>),
    responses((status = 201, description = "Minted", body = super::body::MintResponse),
        ServiceAuthErrors, BodyErrors, NoSubmission422, RateLimited429, StoreUnavailable503),
    security(("service_bearer" = []), ("api_key" = [])))]
pub async fn mint_for_user(
    req: HttpRequest,
    service: ServicePrincipal,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    service.require(SCOPE_LINKS_WRITE)?;
    let user_id = user_id_from_path(&req)?;
    let body = read_body(&req, payload).await?;
    let request: ServiceMintRequest = parse_optional_object(&body)?;
    if request
        .reference
        .as_ref()
        .is_some_and(|r| r.len() > MAX_REFERENCE_BYTES)
    {
        return Err(ApiError::BadRequest(format!(
            "reference must be at most {MAX_REFERENCE_BYTES} bytes"
        )));
    }
    let requester = Requester {
        user_id,
        sid_claim: None,
        cf: [request.auth_cf1, request.auth_cf2, request.auth_cf3],
    };
    let options = IssueOptions {
        confirm_step: request.confirm_step.unwrap_or(true),
        reference: request.reference,
        open_now: false,
        service: Some(service.subject.clone()),
    };
    let issued = state.issuer().issue(requester, options, None).await?;
    Ok(created_response(
        &mint_response(&state, &issued.link)?,
        false,
        issued.rate,
    ))
}

/// Body of `PUT /v1/users/{user_id}/submission`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmissionRequest {
    /// The user's approved ID Check submission id, 1–1024 bytes.
    #[schema(min_length = 1, max_length = 1024)]
    sid: String,
}

/// `PUT /v1/users/{user_id}/submission`: record the user's approved ID Check submission id
/// (`faceauth:links:write`). `204`.
#[utoipa::path(put, path = "/v1/users/{user_id}/submission", tag = "service",
    params(UserIdPath),
    request_body(content = SubmissionRequest),
    responses((status = 204, description = "Recorded"),
        ServiceAuthErrors, BodyErrors, StoreUnavailable503),
    security(("service_bearer" = []), ("api_key" = [])))]
pub async fn put_submission(
    req: HttpRequest,
    service: ServicePrincipal,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    service.require(SCOPE_LINKS_WRITE)?;
    let user_id = user_id_from_path(&req)?;
    let user_id = user_id.as_str();
    let body = read_body(&req, payload).await?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let request: SubmissionRequest = serde_json::from_value(value)
        .map_err(|e| ApiError::BadRequest(format!("invalid body: {e}")))?;
    if request.sid.is_empty()
        || request.sid.len() > crate::auth::MAX_CLAIM_BYTES
        || request.sid.chars().any(char::is_control)
    {
        return Err(ApiError::BadRequest(
            "sid must be 1 to 1024 bytes without control characters".into(),
        ));
    }
    state.sid.remember(user_id, &request.sid).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Query of `GET /v1/users/{user_id}/step-up`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StepUpQuery {
    /// Oldest acceptable verification, seconds (0 to 34560000, 400 days).
    #[param(minimum = 0, maximum = 34_560_000)]
    max_age_secs: u64,
}

/// Answer of `GET /v1/users/{user_id}/step-up`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepUpAnswer {
    /// An approved, pull-verified FaceAuth at most `max_age_secs` old.
    verified: bool,
    /// When the user did that FaceAuth (ARGOS `create_time`), RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339::option")]
    verified_at: Option<time::OffsetDateTime>,
    /// Its link.
    link_id: Option<String>,
    /// ARGOS authentication id.
    auth_id: Option<String>,
    /// With `verified` and `[assertions]` on: a signed step-up assertion for that FaceAuth
    /// (see `docs/step-up-assertions.md`); absent once its `exp` has passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    assertion: Option<Assertion>,
}

/// `GET /v1/users/{user_id}/step-up?max_age_secs=N` (`faceauth:status:read`): `verified` is
/// true only for an approved, pull-verified FaceAuth at most N seconds old (like OIDC
/// `max_age` / `auth_time`).
#[utoipa::path(method(get, head), path = "/v1/users/{user_id}/step-up", tag = "service",
    params(UserIdPath, StepUpQuery),
    responses((status = 200, description = "Latest step-up", body = StepUpAnswer),
        ServiceAuthErrors, BadRequest400, StoreUnavailable503),
    security(("service_bearer" = []), ("api_key" = [])))]
pub async fn step_up(
    req: HttpRequest,
    service: ServicePrincipal,
    query: web::Query<StepUpQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    service.require(SCOPE_STATUS_READ)?;
    let user_id = user_id_from_path(&req)?;
    let user_id = user_id.as_str();
    if query.max_age_secs > 400 * 24 * 3600 {
        return Err(ApiError::BadRequest("max_age_secs is too large".into()));
    }
    // The age is measured on the store's clock (Redis TIME), like every time the record holds,
    // so every replica gives the same answer whatever its own clock says.
    let latest = state.results.latest_step_up(user_id).await?;
    let now_ms = latest.now_ms;
    let answer = match latest.record {
        Some(r) => {
            // verified_at is never after the store's clock when written; a store clock that
            // stepped back does not make it count.
            let verified = (0..=query.max_age_secs as i64 * 1000)
                .contains(&now_ms.saturating_sub(r.verified_at_ms));
            let assertion = match &state.assertions {
                Some(assertions) if verified => assertions.issue(
                    &AssertionFacts {
                        user_id,
                        link_id: &r.link_id,
                        auth_id: &r.auth_id,
                        verified_at_ms: r.verified_at_ms,
                        reference: r.reference.as_deref(),
                    },
                    now_ms,
                    "step_up",
                )?,
                _ => None,
            };
            StepUpAnswer {
                verified,
                verified_at: Some(utc_from_ms(r.verified_at_ms)),
                link_id: Some(r.link_id),
                auth_id: Some(r.auth_id),
                assertion,
            }
        }
        None => StepUpAnswer {
            verified: false,
            verified_at: None,
            link_id: None,
            auth_id: None,
            assertion: None,
        },
    };
    Ok(HttpResponse::Ok().json(answer))
}
