//! Routes for the app's session layer (service credentials, see [`crate::auth::service`]).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::api::{created_response, issuer, mint_response, parse_optional_object, read_body};
use super::routes::AppState;
use super::{ApiError, Problem};
use crate::assertions::{Assertion, AssertionFacts};
use crate::auth::service::{ServicePrincipal, SCOPE_LINKS_WRITE, SCOPE_STATUS_READ};
use crate::links::{utc_from_ms, IssueOptions, Requester};

/// Longest `reference`, in bytes.
pub const MAX_REFERENCE_BYTES: usize = 256;
/// Longest user id in a path, in bytes.
pub const MAX_USER_ID_BYTES: usize = 1024;

/// The `{user_id}` of `/v1/users/{user_id}/…`, by the documented grammar: the raw path segment
/// is percent-decoded strictly (every `%` starts an escape of two hex digits), the result must
/// be UTF-8 (no overlong or lone bytes: `%FE`, `%C0%AF`), 1 to [`MAX_USER_ID_BYTES`] bytes, with
/// no control characters (`%00`, C0, DEL, C1). Anything else is `400`, so two different paths
/// never name one user.
///
/// The raw segment is read from the request URI: actix's own path decoding is lossy (invalid
/// UTF-8 becomes U+FFFD).
///
/// Errors: [`ApiError::BadRequest`] naming the rule that failed (never echoing the value).
pub fn user_id_from_path(req: &HttpRequest) -> Result<String, ApiError> {
    let raw = req
        .uri()
        .path()
        .strip_prefix("/v1/users/")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| ApiError::BadRequest("the path has no user id".into()))?;
    decode_user_id(raw)
}

/// See [`user_id_from_path`]. Errors: [`ApiError::BadRequest`].
pub fn decode_user_id(raw: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::BadRequest(format!("invalid user id in the path: {why}"));
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("a `%` must be followed by two hex digits"))?;
            decoded.push(hex);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(decoded).map_err(|_| bad("it does not decode to valid UTF-8"))?;
    if text.is_empty() || text.len() > MAX_USER_ID_BYTES {
        return Err(bad(&format!("it must be 1 to {MAX_USER_ID_BYTES} bytes")));
    }
    if text.chars().any(char::is_control) {
        return Err(bad("control characters are not allowed"));
    }
    Ok(text)
}

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
    params(("user_id" = String, Path, description = "The app's user id: percent-encoded UTF-8, 1–1024 bytes once decoded, no control characters", min_length = 1, max_length = 1024, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")),
    request_body(content = Option<ServiceMintRequest>),
    responses((status = 201, description = "Minted", body = crate::http::api::MintResponse),
        (status = 400, description = "Malformed body or header (`bad_request`)", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid bearer token (`missing_credentials`, `invalid_token`)", body = Problem, content_type = "application/problem+json"), (status = 403, description = "`insufficient_scope`", body = Problem, content_type = "application/problem+json"), (status = 404, description = "`not_found`: no service credentials are configured", body = Problem, content_type = "application/problem+json"), (status = 408, description = "The body did not arrive in time (`request_timeout`)", body = Problem, content_type = "application/problem+json"), (status = 413, description = "Body over the limit (`payload_too_large`)", body = Problem, content_type = "application/problem+json"), (status = 422, description = "`no_submission` or `field_too_long`", body = Problem, content_type = "application/problem+json"), (status = 429, description = "`rate_limited`, with `Retry-After`, `RateLimit-Policy`, `RateLimit`", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store, JWKS or ARGOS unavailable (`store_unavailable`, `jwks_unavailable`, `argos_unavailable`); nothing was issued", body = Problem, content_type = "application/problem+json")),
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
    let issued = issuer(&state).issue(requester, options, None).await?;
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
    params(("user_id" = String, Path, description = "The app's user id: percent-encoded UTF-8, 1–1024 bytes once decoded, no control characters", min_length = 1, max_length = 1024, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$")),
    request_body(content = SubmissionRequest),
    responses((status = 204, description = "Recorded"), (status = 400, description = "Malformed body or header (`bad_request`)", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid bearer token (`missing_credentials`, `invalid_token`)", body = Problem, content_type = "application/problem+json"), (status = 403, description = "`insufficient_scope`", body = Problem, content_type = "application/problem+json"), (status = 404, description = "`not_found`: no service credentials are configured", body = Problem, content_type = "application/problem+json"), (status = 408, description = "The body did not arrive in time (`request_timeout`)", body = Problem, content_type = "application/problem+json"), (status = 413, description = "Body over the limit (`payload_too_large`)", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store, JWKS or ARGOS unavailable (`store_unavailable`, `jwks_unavailable`, `argos_unavailable`); nothing was issued", body = Problem, content_type = "application/problem+json")),
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
    params(("user_id" = String, Path, description = "The app's user id: percent-encoded UTF-8, 1–1024 bytes once decoded, no control characters", min_length = 1, max_length = 1024, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"), StepUpQuery),
    responses((status = 200, description = "Latest step-up", body = StepUpAnswer), (status = 400, description = "Malformed body or header (`bad_request`)", body = Problem, content_type = "application/problem+json"), (status = 401, description = "Missing or invalid bearer token (`missing_credentials`, `invalid_token`)", body = Problem, content_type = "application/problem+json"), (status = 403, description = "`insufficient_scope`", body = Problem, content_type = "application/problem+json"), (status = 404, description = "`not_found`: no service credentials are configured", body = Problem, content_type = "application/problem+json"), (status = 503, description = "Store, JWKS or ARGOS unavailable (`store_unavailable`, `jwks_unavailable`, `argos_unavailable`); nothing was issued", body = Problem, content_type = "application/problem+json")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_grammar() {
        assert_eq!(decode_user_id("u-123").unwrap(), "u-123");
        assert_eq!(decode_user_id("auth0%7Cabc").unwrap(), "auth0|abc");
        assert_eq!(decode_user_id("J%C3%BCrgen").unwrap(), "Jürgen");
        assert_eq!(decode_user_id("a%2Fb").unwrap(), "a/b");
        assert_eq!(decode_user_id("a+b").unwrap(), "a+b");
        for bad in [
            "",
            "%FE",
            "%FF",
            "%C0%AF",
            "%ZZ",
            "%0",
            "%",
            "a%00b",
            "%1F",
            "%7F",
            "%C2%85",
            "%E2%82",
            "%ED%A0%80",
        ] {
            assert!(decode_user_id(bad).is_err(), "{bad:?}");
        }
        assert!(decode_user_id(&"a".repeat(MAX_USER_ID_BYTES)).is_ok());
        assert!(decode_user_id(&"a".repeat(MAX_USER_ID_BYTES + 1)).is_err());
        assert!(
            decode_user_id(&"%C3%BC".repeat(513)).is_err(),
            "bytes, not characters"
        );
    }
}
