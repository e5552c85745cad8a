//! The one error type of the HTTP layer, mapped in one place to status, headers and an
//! RFC 9457 problem body (`application/problem+json`) with a stable `code`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::AuthError;
use crate::limits::RateStatus;
use crate::links::LinkError;
use crate::store::StoreError;

/// Media type of problem details (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every error a route can answer with. `code()` values are a stable contract.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 `missing_credentials`: no bearer token.
    #[error("missing credentials")]
    MissingCredentials,
    /// 401 `invalid_token`: the bearer token failed verification (reason for logs only).
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// 422 `no_submission`: no approved ARGOS submission id for this user.
    #[error("no approved submission for this user")]
    NoSubmission,
    /// 404 `link_not_found`.
    #[error("link not found")]
    LinkNotFound,
    /// 404 `erasure_not_found`: no such erasure, or its record is no longer kept.
    #[error("erasure not found")]
    ErasureNotFound,
    /// 410 `link_used`.
    #[error("link already used")]
    LinkUsed,
    /// 410 `link_expired`.
    #[error("link expired")]
    LinkExpired,
    /// 410 `link_revoked`.
    #[error("link revoked")]
    LinkRevoked,
    /// 422 `field_too_long`: the FaceAuth URL would exceed `argos.max_url_bytes`.
    #[error("field too long")]
    FieldTooLong {
        /// Longest field, e.g. `authCf1`.
        field: &'static str,
        /// Its length in bytes.
        field_bytes: usize,
        /// Bytes the URL would have.
        url_bytes: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// 429 `rate_limited`, with `Retry-After`, `RateLimit-Policy` and `RateLimit`.
    #[error("rate limited")]
    RateLimited(RateStatus),
    /// 422 `idempotency_key_reused`: the key was used with a different body.
    #[error("idempotency key reused with a different body")]
    IdempotencyKeyReused,
    /// 409 `idempotency_key_in_use`: a request with this key is still being processed.
    #[error("idempotency key in use")]
    IdempotencyKeyInUse,
    /// 503 `jwks_unavailable`: the identity provider's keys cannot be fetched.
    #[error("JWKS unavailable")]
    JwksUnavailable,
    /// 403 `cross_site_request`: cookie credentials from a foreign site.
    #[error("cross-site request")]
    CrossSiteRequest,
    /// 503 `shutting_down`: this instance is draining (readiness only).
    #[error("shutting down")]
    ShuttingDown,
    /// 403 `insufficient_scope`: the service credential lacks this scope.
    #[error("insufficient scope")]
    InsufficientScope(&'static str),
    /// 503 `argos_unavailable`: ARGOS could not be asked (sid lookup).
    #[error("ARGOS unavailable")]
    ArgosUnavailable,
    /// 413 `payload_too_large`: body over the limit (bytes).
    #[error("payload too large")]
    PayloadTooLarge(usize),
    /// 408 `request_timeout`: the body did not arrive in time.
    #[error("request timeout")]
    RequestTimeout,
    /// 431 `request_header_fields_too_large`: over `server.max_headers` or
    /// `server.max_header_bytes` (the detail says which).
    #[error("request header fields too large")]
    HeaderFieldsTooLarge(String),
    /// 414 `uri_too_long`: the request target is over `server.max_uri_bytes`.
    #[error("URI too long")]
    UriTooLong(usize),
    /// 400 `bad_request` with a client-facing detail.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 404 `not_found`: no such route.
    #[error("no such route")]
    RouteNotFound,
    /// 405 `method_not_allowed`; carries the `Allow` header value.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// 503 `store_unavailable`: the link store did not answer; nothing was issued.
    #[error("link store unavailable")]
    StoreUnavailable(#[source] StoreError),
    /// 500 `internal`: a bug or broken invariant (detail logged, never sent).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// Every `code` a problem body can carry (the OpenAPI schema of `Problem.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// 401
    MissingCredentials,
    /// 401
    InvalidToken,
    /// 403
    InsufficientScope,
    /// 403
    CrossSiteRequest,
    /// 422
    NoSubmission,
    /// 404
    LinkNotFound,
    /// 404
    ErasureNotFound,
    /// 410
    LinkUsed,
    /// 410
    LinkExpired,
    /// 410
    LinkRevoked,
    /// 422
    FieldTooLong,
    /// 429
    RateLimited,
    /// 422
    IdempotencyKeyReused,
    /// 409
    IdempotencyKeyInUse,
    /// 413
    PayloadTooLarge,
    /// 408
    RequestTimeout,
    /// 431
    RequestHeaderFieldsTooLarge,
    /// 414
    UriTooLong,
    /// 400
    BadRequest,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 503
    StoreUnavailable,
    /// 503
    JwksUnavailable,
    /// 503
    ArgosUnavailable,
    /// 503
    ShuttingDown,
    /// 500
    Internal,
}

/// The RFC 9457 body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Problem type URI: `urn:faceauth-gateway:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary, fixed per code.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// Explanation for this occurrence (never a secret).
    pub detail: String,
    /// Stable machine-readable code.
    #[schema(value_type = ProblemCode)]
    pub code: &'static str,
    /// For `field_too_long`: the longest field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

impl ApiError {
    /// The stable `code`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingCredentials => "missing_credentials",
            ApiError::InvalidToken(_) => "invalid_token",
            ApiError::NoSubmission => "no_submission",
            ApiError::LinkNotFound => "link_not_found",
            ApiError::ErasureNotFound => "erasure_not_found",
            ApiError::LinkUsed => "link_used",
            ApiError::LinkExpired => "link_expired",
            ApiError::LinkRevoked => "link_revoked",
            ApiError::FieldTooLong { .. } => "field_too_long",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::IdempotencyKeyInUse => "idempotency_key_in_use",
            ApiError::JwksUnavailable => "jwks_unavailable",
            ApiError::InsufficientScope(_) => "insufficient_scope",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::CrossSiteRequest => "cross_site_request",
            ApiError::ArgosUnavailable => "argos_unavailable",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::HeaderFieldsTooLarge(_) => "request_header_fields_too_large",
            ApiError::UriTooLong(_) => "uri_too_long",
            ApiError::RouteNotFound => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// Short human title.
    pub fn title(&self) -> &'static str {
        match self {
            ApiError::MissingCredentials => "Authentication required",
            ApiError::InvalidToken(_) => "Invalid token",
            ApiError::NoSubmission => "No approved submission",
            ApiError::LinkNotFound => "Link not found",
            ApiError::ErasureNotFound => "Erasure not found",
            ApiError::LinkUsed => "Link already used",
            ApiError::LinkExpired => "Link expired",
            ApiError::LinkRevoked => "Link revoked",
            ApiError::FieldTooLong { .. } => "Field too long",
            ApiError::RateLimited(_) => "Too many requests",
            ApiError::IdempotencyKeyReused => "Idempotency key reused",
            ApiError::IdempotencyKeyInUse => "Idempotency key in use",
            ApiError::JwksUnavailable => "Identity provider unavailable",
            ApiError::InsufficientScope(_) => "Insufficient scope",
            ApiError::ShuttingDown => "Shutting down",
            ApiError::CrossSiteRequest => "Cross-site request",
            ApiError::ArgosUnavailable => "ARGOS unavailable",
            ApiError::PayloadTooLarge(_) => "Payload too large",
            ApiError::BadRequest(_) => "Bad request",
            ApiError::RequestTimeout => "Request timeout",
            ApiError::HeaderFieldsTooLarge(_) => "Request header fields too large",
            ApiError::UriTooLong(_) => "URI too long",
            ApiError::RouteNotFound => "Not found",
            ApiError::MethodNotAllowed(_) => "Method not allowed",
            ApiError::StoreUnavailable(_) => "Service unavailable",
            ApiError::Internal(_) => "Internal error",
        }
    }

    /// Client-facing detail (no internals, no secrets).
    pub fn detail(&self) -> String {
        match self {
            ApiError::MissingCredentials => {
                "Send `Authorization: Bearer <JWT>` from your identity provider (browsers: the \
                 configured session cookie)."
                    .into()
            }
            ApiError::InvalidToken(reason) => format!("The bearer token was rejected: {reason}."),
            ApiError::NoSubmission => {
                "This user has no approved ARGOS ID Check submission to verify against.".into()
            }
            ApiError::LinkNotFound => "No such link.".into(),
            ApiError::ErasureNotFound => "No such erasure, or its record is no longer kept.".into(),
            ApiError::LinkUsed => "This link has already been used. Request a new one.".into(),
            ApiError::LinkExpired => "This link has expired. Request a new one.".into(),
            ApiError::LinkRevoked => "This link was revoked. Request a new one.".into(),
            ApiError::FieldTooLong {
                field,
                field_bytes,
                url_bytes,
                limit,
            } => format!(
                "The FaceAuth URL would be {url_bytes} bytes, over the limit of {limit}; \
                 the longest field is `{field}` ({field_bytes} bytes)."
            ),
            ApiError::RateLimited(status) => {
                format!("Too many requests; retry in {} seconds.", status.reset_secs)
            }
            ApiError::IdempotencyKeyReused => {
                "This Idempotency-Key was used with a different request body.".into()
            }
            ApiError::IdempotencyKeyInUse => {
                "A request with this Idempotency-Key is still in progress; retry shortly.".into()
            }
            ApiError::JwksUnavailable => {
                "The identity provider's keys cannot be fetched right now. Retry shortly.".into()
            }
            ApiError::InsufficientScope(scope) => {
                format!("This credential lacks the scope `{scope}`.")
            }
            ApiError::ShuttingDown => "This instance is shutting down.".into(),
            ApiError::CrossSiteRequest => {
                "Cookie credentials are accepted only from this site and the allowed origins."
                    .into()
            }
            ApiError::ArgosUnavailable => {
                "ARGOS could not be asked for the user's submission. Retry shortly.".into()
            }
            ApiError::PayloadTooLarge(limit) => {
                format!("The request body is larger than {limit} bytes.")
            }
            ApiError::BadRequest(detail) => detail.clone(),
            ApiError::RequestTimeout => "The request body did not arrive in time.".into(),
            ApiError::HeaderFieldsTooLarge(detail) => detail.clone(),
            ApiError::UriTooLong(limit) => {
                format!("The request target (path and query) is longer than {limit} bytes.")
            }
            ApiError::RouteNotFound => "No such route.".into(),
            ApiError::MethodNotAllowed(_) => "This method is not allowed on this route.".into(),
            ApiError::StoreUnavailable(_) => {
                "The link store is unavailable; no link was issued. Retry shortly.".into()
            }
            ApiError::Internal(_) => "An internal error occurred.".into(),
        }
    }

    /// The problem body.
    pub fn problem(&self) -> Problem {
        Problem {
            type_uri: format!("urn:faceauth-gateway:problem:{}", self.code()),
            title: self.title(),
            status: self.status_code().as_u16(),
            detail: self.detail(),
            code: self.code(),
            field: match self {
                ApiError::FieldTooLong { field, .. } => Some(field),
                _ => None,
            },
        }
    }

    /// The response headers this error adds (`WWW-Authenticate`, `Retry-After`, `Allow`,
    /// rate-limit fields).
    fn add_headers(&self, res: &mut HttpResponse) {
        if let ApiError::RateLimited(status) = self {
            status.add_headers(res.headers_mut());
            if let Ok(v) = HeaderValue::from_str(&status.reset_secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return;
        }
        let value = match self {
            ApiError::MissingCredentials => Some((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="faceauth-gateway""#),
            )),
            ApiError::InvalidToken(_) => Some((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    r#"Bearer realm="faceauth-gateway", error="invalid_token""#,
                ),
            )),
            ApiError::InsufficientScope(scope) => Some((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&format!(
                    r#"Bearer realm="faceauth-gateway", error="insufficient_scope", scope="{scope}""#
                ))
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer")),
            )),
            ApiError::StoreUnavailable(_)
            | ApiError::ArgosUnavailable
            | ApiError::JwksUnavailable
            | ApiError::IdempotencyKeyInUse => {
                Some((header::RETRY_AFTER, HeaderValue::from_static("1")))
            }
            ApiError::MethodNotAllowed(methods) => {
                Some((header::ALLOW, HeaderValue::from_static(methods)))
            }
            _ => None,
        };
        if let Some((name, value)) = value {
            res.headers_mut().insert(name, value);
        }
    }

    /// A short HTML page with the same status, for browsers opening `/l/{id}`.
    pub fn html_response(&self) -> HttpResponse {
        let (heading, text) = match self {
            ApiError::LinkUsed => (
                "This link has already been used",
                "For your security each verification link works once. Go back to the app and start the verification again.",
            ),
            ApiError::LinkExpired => (
                "This link has expired",
                "Go back to the app and start the verification again.",
            ),
            ApiError::LinkRevoked => (
                "This link is no longer valid",
                "A newer link was requested, or this one was cancelled. Use the newest link or start again from the app.",
            ),
            ApiError::RateLimited(_) => (
                "Too many attempts",
                "Please wait a moment and try again.",
            ),
            ApiError::LinkNotFound | ApiError::RouteNotFound => (
                "Link not found",
                "Check that you opened the whole link, or start the verification again from the app.",
            ),
            ApiError::StoreUnavailable(_) => (
                "Temporarily unavailable",
                "Please try again in a moment.",
            ),
            _ => ("Something went wrong", "Please start the verification again from the app."),
        };
        let mut res = HttpResponse::build(self.status_code())
            .content_type("text/html; charset=utf-8")
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ))
            .body(super::html::page(heading, &format!("<p>{text}</p>")));
        self.add_headers(&mut res);
        res
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MissingCredentials | ApiError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::NoSubmission
            | ApiError::FieldTooLong { .. }
            | ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::IdempotencyKeyInUse => StatusCode::CONFLICT,
            ApiError::JwksUnavailable | ApiError::ArgosUnavailable | ApiError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::InsufficientScope(_) | ApiError::CrossSiteRequest => StatusCode::FORBIDDEN,
            ApiError::LinkNotFound | ApiError::RouteNotFound | ApiError::ErasureNotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::LinkUsed | ApiError::LinkExpired | ApiError::LinkRevoked => StatusCode::GONE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::HeaderFieldsTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::StoreUnavailable(e) => tracing::warn!(error = %e, "link store unavailable"),
            ApiError::Internal(what) => tracing::error!(what, "internal error"),
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code())
            .content_type(PROBLEM_JSON)
            .json(self.problem());
        self.add_headers(&mut res);
        res
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => ApiError::MissingCredentials,
            AuthError::Invalid(reason) => ApiError::InvalidToken(reason),
            AuthError::KeysUnavailable => ApiError::JwksUnavailable,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // Retrying will not help with an unreadable record: a bug, not an outage.
            StoreError::Corrupt(_) => {
                tracing::error!(error = %e, "unreadable store record");
                ApiError::Internal("unreadable store record")
            }
            e => ApiError::StoreUnavailable(e),
        }
    }
}

impl From<crate::assertions::AssertionError> for ApiError {
    fn from(_: crate::assertions::AssertionError) -> Self {
        ApiError::Internal("signing a step-up assertion")
    }
}

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::NotFound => ApiError::LinkNotFound,
            LinkError::Used => ApiError::LinkUsed,
            LinkError::Expired => ApiError::LinkExpired,
            LinkError::Revoked => ApiError::LinkRevoked,
            LinkError::TooLong {
                field,
                field_bytes,
                url_bytes,
                limit,
            } => ApiError::FieldTooLong {
                field,
                field_bytes,
                url_bytes,
                limit,
            },
            LinkError::Store(StoreError::Conflict) => ApiError::Internal("link id collision"),
            LinkError::Store(e) => e.into(),
            LinkError::Assertion(_) => ApiError::Internal("signing a step-up assertion"),
        }
    }
}

impl From<crate::limits::LimitError> for ApiError {
    fn from(e: crate::limits::LimitError) -> Self {
        match e {
            crate::limits::LimitError::Exceeded(status) => ApiError::RateLimited(status),
            crate::limits::LimitError::Store(e) => e.into(),
        }
    }
}

impl From<crate::idempotency::IdempotencyError> for ApiError {
    fn from(e: crate::idempotency::IdempotencyError) -> Self {
        match e {
            crate::idempotency::IdempotencyError::Reused => ApiError::IdempotencyKeyReused,
            crate::idempotency::IdempotencyError::InUse => ApiError::IdempotencyKeyInUse,
            crate::idempotency::IdempotencyError::Store(e) => e.into(),
        }
    }
}

impl From<crate::links::IssueError> for ApiError {
    fn from(e: crate::links::IssueError) -> Self {
        use crate::links::IssueError;
        match e {
            IssueError::Limit(e) => e.into(),
            IssueError::NoSubmission => ApiError::NoSubmission,
            IssueError::Sid(e) => e.into(),
            IssueError::Idempotency(e) => e.into(),
            IssueError::Link(e) => e.into(),
        }
    }
}

impl From<crate::sid::SidError> for ApiError {
    fn from(e: crate::sid::SidError) -> Self {
        match e {
            crate::sid::SidError::Store(e) => e.into(),
            crate::sid::SidError::Argos(e) => {
                tracing::warn!(error = %e, "sid lookup at ARGOS failed");
                ApiError::ArgosUnavailable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_in_the_openapi_enum() {
        let status = crate::limits::RateStatus {
            limit: 1,
            remaining: 0,
            reset_secs: 1,
            window_secs: 1,
        };
        let all = [
            ApiError::MissingCredentials,
            ApiError::InvalidToken("x"),
            ApiError::InsufficientScope("s"),
            ApiError::CrossSiteRequest,
            ApiError::NoSubmission,
            ApiError::LinkNotFound,
            ApiError::ErasureNotFound,
            ApiError::LinkUsed,
            ApiError::LinkExpired,
            ApiError::LinkRevoked,
            ApiError::FieldTooLong {
                field: "sid",
                field_bytes: 1,
                url_bytes: 2,
                limit: 1,
            },
            ApiError::RateLimited(status),
            ApiError::IdempotencyKeyReused,
            ApiError::IdempotencyKeyInUse,
            ApiError::PayloadTooLarge(1),
            ApiError::RequestTimeout,
            ApiError::HeaderFieldsTooLarge("x".into()),
            ApiError::UriTooLong(1),
            ApiError::BadRequest("x".into()),
            ApiError::RouteNotFound,
            ApiError::MethodNotAllowed("GET"),
            ApiError::StoreUnavailable(StoreError::Conflict),
            ApiError::JwksUnavailable,
            ApiError::ArgosUnavailable,
            ApiError::ShuttingDown,
            ApiError::Internal("x"),
        ];
        let schema =
            serde_json::to_value(<ProblemCode as utoipa::PartialSchema>::schema()).unwrap();
        let listed = schema["enum"].as_array().unwrap();
        assert_eq!(listed.len(), all.len());
        for e in &all {
            assert!(listed.iter().any(|c| c == e.code()), "{} missing", e.code());
            let body = serde_json::to_value(e.problem()).unwrap();
            assert_eq!(body["status"], e.status_code().as_u16());
        }
    }
}
