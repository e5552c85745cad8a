//! The one error type of the HTTP layer, mapped in one place to status, headers and an
//! RFC 9457 problem body (`application/problem+json`) with a stable `code`.

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::AuthError;
use crate::limits::RateStatus;
use crate::links::LinkError;
use crate::metrics::OpenOutcome;
use crate::store::StoreError;

/// `RateLimit-Policy` field name.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` field name.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

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

/// Declares [`ProblemCode`] from one table: each code's wire name, HTTP status and title are
/// written once, here, and everything else (problem body, HTML page, metric label, OpenAPI
/// enum) derives from them.
macro_rules! problem_codes {
    ($($variant:ident = ($code:tt, $status:ident, $title:tt),)+) => {
        /// Every `code` a problem body can carry (the OpenAPI schema of `Problem.code`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
        pub enum ProblemCode {
            $(
                #[doc = $code]
                #[serde(rename = $code)]
                $variant,
            )+
        }

        impl ProblemCode {
            /// Every code, in the order of the OpenAPI enum.
            pub const ALL: &'static [ProblemCode] = &[$(ProblemCode::$variant),+];

            /// The stable `code` string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ProblemCode::$variant => $code,)+
                }
            }

            /// The HTTP status.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(ProblemCode::$variant => StatusCode::$status,)+
                }
            }

            /// The short title, fixed per code.
            pub const fn title(self) -> &'static str {
                match self {
                    $(ProblemCode::$variant => $title,)+
                }
            }
        }
    };
}

problem_codes! {
    MissingCredentials = ("missing_credentials", UNAUTHORIZED, "Authentication required"),
    InvalidToken = ("invalid_token", UNAUTHORIZED, "Invalid token"),
    InsufficientScope = ("insufficient_scope", FORBIDDEN, "Insufficient scope"),
    CrossSiteRequest = ("cross_site_request", FORBIDDEN, "Cross-site request"),
    NoSubmission = ("no_submission", UNPROCESSABLE_ENTITY, "No approved submission"),
    LinkNotFound = ("link_not_found", NOT_FOUND, "Link not found"),
    ErasureNotFound = ("erasure_not_found", NOT_FOUND, "Erasure not found"),
    LinkUsed = ("link_used", GONE, "Link already used"),
    LinkExpired = ("link_expired", GONE, "Link expired"),
    LinkRevoked = ("link_revoked", GONE, "Link revoked"),
    FieldTooLong = ("field_too_long", UNPROCESSABLE_ENTITY, "Field too long"),
    RateLimited = ("rate_limited", TOO_MANY_REQUESTS, "Too many requests"),
    IdempotencyKeyReused = ("idempotency_key_reused", UNPROCESSABLE_ENTITY, "Idempotency key reused"),
    IdempotencyKeyInUse = ("idempotency_key_in_use", CONFLICT, "Idempotency key in use"),
    PayloadTooLarge = ("payload_too_large", PAYLOAD_TOO_LARGE, "Payload too large"),
    RequestTimeout = ("request_timeout", REQUEST_TIMEOUT, "Request timeout"),
    RequestHeaderFieldsTooLarge = (
        "request_header_fields_too_large",
        REQUEST_HEADER_FIELDS_TOO_LARGE,
        "Request header fields too large"
    ),
    UriTooLong = ("uri_too_long", URI_TOO_LONG, "URI too long"),
    BadRequest = ("bad_request", BAD_REQUEST, "Bad request"),
    NotFound = ("not_found", NOT_FOUND, "Not found"),
    MethodNotAllowed = ("method_not_allowed", METHOD_NOT_ALLOWED, "Method not allowed"),
    StoreUnavailable = ("store_unavailable", SERVICE_UNAVAILABLE, "Service unavailable"),
    JwksUnavailable = ("jwks_unavailable", SERVICE_UNAVAILABLE, "Identity provider unavailable"),
    ArgosUnavailable = ("argos_unavailable", SERVICE_UNAVAILABLE, "ARGOS unavailable"),
    ShuttingDown = ("shutting_down", SERVICE_UNAVAILABLE, "Shutting down"),
    Internal = ("internal", INTERNAL_SERVER_ERROR, "Internal error"),
}

impl ProblemCode {
    /// Problem type URI: `urn:faceauth-gateway:problem:<code>`.
    pub fn type_uri(self) -> String {
        format!("urn:faceauth-gateway:problem:{}", self.as_str())
    }

    /// The header every answer with this code carries, whatever the occurrence
    /// (`WWW-Authenticate` challenges, `Retry-After: 1` on retryable outages).
    pub fn fixed_header(self) -> Option<(HeaderName, HeaderValue)> {
        const RETRY_SOON: &str = "1";
        let (name, value) = match self {
            ProblemCode::MissingCredentials => (
                header::WWW_AUTHENTICATE,
                r#"Bearer realm="faceauth-gateway""#,
            ),
            ProblemCode::InvalidToken => (
                header::WWW_AUTHENTICATE,
                r#"Bearer realm="faceauth-gateway", error="invalid_token""#,
            ),
            ProblemCode::StoreUnavailable
            | ProblemCode::ArgosUnavailable
            | ProblemCode::JwksUnavailable
            | ProblemCode::IdempotencyKeyInUse => (header::RETRY_AFTER, RETRY_SOON),
            _ => return None,
        };
        Some((name, HeaderValue::from_static(value)))
    }

    /// Heading and text of the short HTML page a browser gets instead of a problem body.
    pub fn page_text(self) -> (&'static str, &'static str) {
        match self {
            ProblemCode::LinkUsed => (
                "This link has already been used",
                "For your security each verification link works once. Go back to the app and \
                 start the verification again.",
            ),
            ProblemCode::LinkExpired => (
                "This link has expired",
                "Go back to the app and start the verification again.",
            ),
            ProblemCode::LinkRevoked => (
                "This link is no longer valid",
                "A newer link was requested, or this one was cancelled. Use the newest link or \
                 start again from the app.",
            ),
            ProblemCode::RateLimited => {
                ("Too many attempts", "Please wait a moment and try again.")
            }
            ProblemCode::LinkNotFound | ProblemCode::NotFound => (
                "Link not found",
                "Check that you opened the whole link, or start the verification again from the \
                 app.",
            ),
            ProblemCode::StoreUnavailable => {
                ("Temporarily unavailable", "Please try again in a moment.")
            }
            _ => (
                "Something went wrong",
                "Please start the verification again from the app.",
            ),
        }
    }

    /// The `/l/{id}` metric outcome of an open refused with this code.
    pub fn open_outcome(self) -> OpenOutcome {
        match self {
            ProblemCode::LinkUsed => OpenOutcome::Used,
            ProblemCode::LinkExpired => OpenOutcome::Expired,
            ProblemCode::LinkRevoked => OpenOutcome::Revoked,
            ProblemCode::LinkNotFound => OpenOutcome::NotFound,
            ProblemCode::RateLimited => OpenOutcome::RateLimited,
            ProblemCode::StoreUnavailable => OpenOutcome::StoreUnavailable,
            _ => OpenOutcome::Other,
        }
    }
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
    pub code: ProblemCode,
    /// For `field_too_long`: the longest field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

impl ApiError {
    /// The stable `code`; status, title and fixed headers come from it.
    pub fn code(&self) -> ProblemCode {
        match self {
            ApiError::MissingCredentials => ProblemCode::MissingCredentials,
            ApiError::InvalidToken(_) => ProblemCode::InvalidToken,
            ApiError::NoSubmission => ProblemCode::NoSubmission,
            ApiError::LinkNotFound => ProblemCode::LinkNotFound,
            ApiError::ErasureNotFound => ProblemCode::ErasureNotFound,
            ApiError::LinkUsed => ProblemCode::LinkUsed,
            ApiError::LinkExpired => ProblemCode::LinkExpired,
            ApiError::LinkRevoked => ProblemCode::LinkRevoked,
            ApiError::FieldTooLong { .. } => ProblemCode::FieldTooLong,
            ApiError::RateLimited(_) => ProblemCode::RateLimited,
            ApiError::IdempotencyKeyReused => ProblemCode::IdempotencyKeyReused,
            ApiError::IdempotencyKeyInUse => ProblemCode::IdempotencyKeyInUse,
            ApiError::JwksUnavailable => ProblemCode::JwksUnavailable,
            ApiError::InsufficientScope(_) => ProblemCode::InsufficientScope,
            ApiError::ShuttingDown => ProblemCode::ShuttingDown,
            ApiError::CrossSiteRequest => ProblemCode::CrossSiteRequest,
            ApiError::ArgosUnavailable => ProblemCode::ArgosUnavailable,
            ApiError::PayloadTooLarge(_) => ProblemCode::PayloadTooLarge,
            ApiError::BadRequest(_) => ProblemCode::BadRequest,
            ApiError::RequestTimeout => ProblemCode::RequestTimeout,
            ApiError::HeaderFieldsTooLarge(_) => ProblemCode::RequestHeaderFieldsTooLarge,
            ApiError::UriTooLong(_) => ProblemCode::UriTooLong,
            ApiError::RouteNotFound => ProblemCode::NotFound,
            ApiError::MethodNotAllowed(_) => ProblemCode::MethodNotAllowed,
            ApiError::StoreUnavailable(_) => ProblemCode::StoreUnavailable,
            ApiError::Internal(_) => ProblemCode::Internal,
        }
    }

    /// Short human title (of the code).
    pub fn title(&self) -> &'static str {
        self.code().title()
    }

    /// Client-facing detail (no internals, no secrets).
    pub fn detail(&self) -> String {
        match self {
            ApiError::MissingCredentials => {
                "Send `Authorization: Bearer <JWT>` from your identity provider (browsers: the \
                 configured session cookie; services: a service JWT or `X-Api-Key`)."
                    .into()
            }
            ApiError::InvalidToken(reason) => format!("The credential was rejected: {reason}."),
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
                "The link store is unavailable; the request changed nothing. Retry shortly.".into()
            }
            ApiError::Internal(_) => "An internal error occurred.".into(),
        }
    }

    /// The problem body.
    pub fn problem(&self) -> Problem {
        let code = self.code();
        Problem {
            type_uri: code.type_uri(),
            title: code.title(),
            status: code.status().as_u16(),
            detail: self.detail(),
            code,
            field: match self {
                ApiError::FieldTooLong { field, .. } => Some(field),
                _ => None,
            },
        }
    }

    /// The response headers this error adds: the code's fixed header, or the ones that depend
    /// on the occurrence (rate-limit fields, a scope challenge, `Allow`).
    fn add_headers(&self, headers: &mut HeaderMap) {
        match self {
            ApiError::RateLimited(status) => {
                add_rate_headers(status, headers);
                if let Ok(v) = HeaderValue::from_str(&status.reset_secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            ApiError::InsufficientScope(scope) => {
                let challenge = format!(
                    r#"Bearer realm="faceauth-gateway", error="insufficient_scope", scope="{scope}""#
                );
                let value = HeaderValue::from_str(&challenge)
                    .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
            ApiError::MethodNotAllowed(methods) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(methods));
            }
            other => {
                if let Some((name, value)) = other.code().fixed_header() {
                    headers.insert(name, value);
                }
            }
        }
    }

    /// A short HTML page with the same status, for browsers opening `/l/{id}`.
    pub fn html_response(&self) -> HttpResponse {
        let (heading, text) = self.code().page_text();
        let mut res = HttpResponse::build(self.status_code())
            .content_type("text/html; charset=utf-8")
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ))
            .body(super::html::page(heading, &format!("<p>{text}</p>")));
        self.add_headers(res.headers_mut());
        res
    }
}

/// Adds `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers) for `status`.
pub fn add_rate_headers(status: &RateStatus, headers: &mut HeaderMap) {
    let policy = format!("{};w={}", status.limit, status.window_secs);
    let state = format!(
        "limit={}, remaining={}, reset={}",
        status.limit, status.remaining, status.reset_secs
    );
    for (name, value) in [(RATELIMIT_POLICY, policy), (RATELIMIT, state)] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code().status()
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
        self.add_headers(res.headers_mut());
        res
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => ApiError::MissingCredentials,
            AuthError::Invalid(reason) => ApiError::InvalidToken(reason),
            AuthError::KeysUnavailable => ApiError::JwksUnavailable,
            AuthError::CrossSite => ApiError::CrossSiteRequest,
            AuthError::InsufficientScope(scope) => ApiError::InsufficientScope(scope),
            AuthError::ServiceCredentialsOff => ApiError::RouteNotFound,
            AuthError::NotConfigured(what) => ApiError::Internal(what),
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
            let code = e.code().as_str();
            assert!(listed.iter().any(|c| c == code), "{code} missing");
            let body = serde_json::to_value(e.problem()).unwrap();
            assert_eq!(body["status"], e.status_code().as_u16());
        }
    }
}
