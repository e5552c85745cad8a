//! Reading and shaping bodies: size- and time-limited body reading, optional JSON objects, the
//! `Idempotency-Key` header, and the `201` answer of a minted link (stored for replays).

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::error::add_rate_headers;
use super::state::AppState;
use super::ApiError;
use crate::idempotency::{self, StoredResponse};
use crate::limits::RateStatus;
use crate::links::{utc_from_ms, Expiry, MintedLink};

/// Largest accepted request body, in bytes (16 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

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
    // `Content-Length: 0` (a bodiless POST, the common mint) has nothing to wait for.
    if declared == Some(0) && !req.headers().contains_key(header::TRANSFER_ENCODING) {
        return Ok(web::Bytes::new());
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

/// The answer for a stored `201` (a fresh mint, or its replay with `Idempotent-Replayed`), with
/// the rate-limit fields of a fresh one.
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
        add_rate_headers(&rate, res.headers_mut());
    }
    res
}
