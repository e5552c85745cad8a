//! The `/v1` API for apps and their frontends (bearer JWT).

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::routes::AppState;
use super::ApiError;
use crate::auth::service::{Caller, SCOPE_STATUS_READ};
use crate::auth::Principal;
use crate::http::Problem;
use crate::idempotency::{self, Begin, StoredResponse};
use crate::limits::RateStatus;
use crate::links::{utc_from_ms, Expiry, IssueOptions, Issuer, LinkId, MintedLink, Requester};

/// Largest accepted request body, in bytes (16 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Body of `POST /v1/links`: empty, `{}`, or `{"confirm_step": bool}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    /// Overrides `links.confirm_step` for this link.
    #[serde(default)]
    confirm_step: Option<bool>,
}

/// Answer of `POST /v1/links` and `POST /v1/users/{user_id}/links`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MintResponse<'a> {
    /// Link id (UUID v4), also the FaceAuth `token`.
    id: String,
    /// `<public_base_url>/l/<id>`.
    url: String,
    /// `count` or `time`.
    expiry: Expiry,
    /// End of the unopened TTL, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    expires_at: time::OffsetDateTime,
    /// Whether only the confirm page's POST consumes the link.
    confirm_step: bool,
    /// The session layer's reference (service-minted links).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    reference: Option<&'a str>,
}

/// The `201` body of a minted link, as stored for idempotent replays.
pub(crate) fn mint_response(
    state: &AppState,
    minted: &MintedLink,
) -> Result<StoredResponse, ApiError> {
    let id = minted.id.to_string();
    let body = serde_json::to_string(&MintResponse {
        url: format!("{}/l/{id}", state.public_base_url),
        id: id.clone(),
        expiry: minted.record.expiry,
        expires_at: utc_from_ms(minted.record.expires_at_ms),
        confirm_step: minted.record.confirm_step,
        reference: minted.record.reference.as_deref(),
    })
    .map_err(|_| ApiError::Internal("serialising the mint response"))?;
    Ok(StoredResponse {
        status: 201,
        body,
        location: Some(format!("/v1/links/{id}")),
    })
}

/// The issuing pipeline over the app's parts.
pub(crate) fn issuer(state: &AppState) -> Issuer<'_> {
    Issuer::new(&state.links, &state.limiter, &state.sid)
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

/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a body of at most `limit` bytes within [`BODY_TIMEOUT`]. A declared
/// `Content-Length` over the limit is refused before reading.
///
/// Errors: [`ApiError::PayloadTooLarge`], [`ApiError::RequestTimeout`], [`ApiError::BadRequest`].
pub(crate) async fn read_body_limited(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    match tokio::time::timeout(BODY_TIMEOUT, payload.to_bytes_limited(limit)).await {
        Err(_) => Err(ApiError::RequestTimeout),
        Ok(Ok(Ok(bytes))) => Ok(bytes),
        Ok(Ok(Err(_))) => Err(ApiError::BadRequest(
            "the request body could not be read".into(),
        )),
        Ok(Err(_)) => Err(ApiError::PayloadTooLarge(limit)),
    }
}

/// [`read_body_limited`] with [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<web::Bytes, ApiError> {
    read_body_limited(req, payload, MAX_BODY_BYTES).await
}

/// An empty body means "no options"; otherwise the body must be one JSON object of type `T`.
/// Errors: [`ApiError::BadRequest`] naming the offending field or position.
pub(crate) fn parse_optional_object<T: serde::de::DeserializeOwned + Default>(
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

/// The `Idempotency-Key` header, if sent. Errors: [`ApiError::BadRequest`] if malformed.
pub(crate) fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let mut values = req.headers().get_all(IDEMPOTENCY_KEY);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(
            "send one Idempotency-Key header, not several".into(),
        ));
    }
    value
        .to_str()
        .ok()
        .filter(|k| idempotency::valid_key(k))
        .map(|k| Some(k.to_string()))
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters".into())
        })
}

pub(crate) fn created_response(
    stored: &StoredResponse,
    replayed: bool,
    rate: Option<RateStatus>,
) -> HttpResponse {
    let mut res = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(stored.status)
            .unwrap_or(actix_web::http::StatusCode::CREATED),
    )
    .content_type("application/json")
    .body(stored.body.clone());
    if let Some(location) = stored
        .location
        .as_deref()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        res.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        res.headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    if let Some(rate) = rate {
        rate.add_headers(res.headers_mut());
    }
    res
}

/// `POST /v1/links`: mint a link for the caller.
#[utoipa::path(post, path = "/v1/links", tag = "links",
    request_body(content = Option<MintRequest>, description = "Empty, `{}` or `{\"confirm_step\": bool}`"),
    params(("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII; replays the first response for 24 h", min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    responses(
        (status = 201, description = "Minted", body = MintResponse,
            headers(("Location" = String, description = "`/v1/links/{id}`"),
                    ("RateLimit-Policy" = String), ("RateLimit" = String))),
        (status = 400, description = "Malformed body or header (`bad_request`)", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid bearer token (`missing_credentials`, `invalid_token`)", body = Problem, content_type = "application/problem+json"), (status = 408, description = "The body did not arrive in time (`request_timeout`)", body = Problem, content_type = "application/problem+json"), (status = 413, description = "Body over the limit (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`no_submission`, `field_too_long` or `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`cross_site_request`: cookie credentials from another site", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency_key_in_use`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`, with `Retry-After`, `RateLimit-Policy`, `RateLimit`", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store, JWKS or ARGOS unavailable (`store_unavailable`, `jwks_unavailable`, `argos_unavailable`); nothing was issued", body = Problem, content_type = "application/problem+json")),
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
    let issued = issuer(state)
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
    params(("id" = String, Path, description = "Link id, a canonical lowercase UUID v4", format = "uuid", pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")),
    responses((status = 200, description = "Status", body = crate::links::LinkStatus), (status = 401, description = "Missing or invalid bearer token (`missing_credentials`, `invalid_token`)", body = Problem, content_type = "application/problem+json"), (status = 403, description = "`insufficient_scope`", body = Problem, content_type = "application/problem+json"), (status = 404, description = "`link_not_found`", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store, JWKS or ARGOS unavailable (`store_unavailable`, `jwks_unavailable`, `argos_unavailable`); nothing was issued", body = Problem, content_type = "application/problem+json")),
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
    params(("id" = String, Path, description = "Link id, a canonical lowercase UUID v4", format = "uuid", pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")),
    responses((status = 204, description = "Revoked (a used or expired link keeps its state)"), (status = 401, description = "Missing or invalid bearer token (`missing_credentials`, `invalid_token`)", body = Problem, content_type = "application/problem+json"), (status = 404, description = "`link_not_found`", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store, JWKS or ARGOS unavailable (`store_unavailable`, `jwks_unavailable`, `argos_unavailable`); nothing was issued", body = Problem, content_type = "application/problem+json")),
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
        (status = 401, description = "Missing or invalid bearer token (`missing_credentials`, `invalid_token`)", body = Problem, content_type = "application/problem+json"), (status = 422, description = "`no_submission` or `field_too_long`", body = Problem, content_type = "application/problem+json"), (status = 429, description = "`rate_limited`, with `Retry-After`, `RateLimit-Policy`, `RateLimit`", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store, JWKS or ARGOS unavailable (`store_unavailable`, `jwks_unavailable`, `argos_unavailable`); nothing was issued", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []), ("cookie" = [])))]
pub async fn start(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let options = IssueOptions {
        open_now: true,
        ..IssueOptions::default()
    };
    let issued = issuer(&state)
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
