//! Request extractors: the edge between actix requests and [`crate::auth`]. They read the
//! credentials a request carries (bearer header, session cookie, `X-Api-Key`) and the user id
//! of `/v1/users/{user_id}/…`, hand them to the verifiers, and answer failures as
//! [`ApiError`]s.

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use secrecy::SecretString;
use std::future::Future;
use std::pin::Pin;

use super::ApiError;
use crate::auth::cookie::CookiePolicy;
use crate::auth::service::{Caller, ServicePrincipal, ServiceVerifier, API_KEY_HEADER};
use crate::auth::{AuthError, JwtVerifier, Principal};

/// Reads `Authorization: Bearer <token>`.
///
/// Errors: [`AuthError::Missing`] when the header is absent or not a bearer token,
/// [`AuthError::Invalid`] when it is not visible ASCII.
pub fn bearer_token(req: &HttpRequest) -> Result<SecretString, AuthError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Invalid("malformed authorization header"))?;
    let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(SecretString::from(token.to_string()))
}

/// A user's token: the bearer header, else (if `auth.cookie_name` is set) the cookie, which
/// must pass the cross-site check of [`CookiePolicy::check`].
///
/// Errors: [`AuthError::Missing`], [`AuthError::Invalid`] (malformed header),
/// [`AuthError::CrossSite`].
pub fn user_token(req: &HttpRequest) -> Result<SecretString, AuthError> {
    if req.headers().contains_key(AUTHORIZATION) {
        return bearer_token(req);
    }
    let policy = req.app_data::<web::Data<CookiePolicy>>();
    match policy.and_then(|p| Some((p, p.token(req)?))) {
        Some((policy, token)) => {
            policy
                .check(req.headers())
                .map_err(|_| AuthError::CrossSite)?;
            Ok(token)
        }
        None => Err(AuthError::Missing),
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<JwtVerifier>>().cloned();
        let token = user_token(req);
        Box::pin(async move {
            let verifier =
                verifier.ok_or(AuthError::NotConfigured("JWT verifier not configured"))?;
            let principal = verifier.verify(&token?).await;
            if let Err(AuthError::Invalid(reason)) = &principal {
                tracing::info!(reason, "rejected bearer token");
            }
            Ok(principal?)
        })
    }
}

/// The `X-Api-Key` header, if sent as text.
fn api_key(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl FromRequest for ServicePrincipal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req
            .app_data::<web::Data<Option<ServiceVerifier>>>()
            .cloned();
        let key = api_key(req);
        let token = bearer_token(req);
        Box::pin(async move {
            let verifier = verifier.ok_or(AuthError::NotConfigured("service verifier missing"))?;
            let verifier = verifier
                .as_ref()
                .as_ref()
                .ok_or(AuthError::ServiceCredentialsOff)?;
            Ok(verifier.authenticate(key, token).await?)
        })
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let users = req.app_data::<web::Data<JwtVerifier>>().cloned();
        let services = req
            .app_data::<web::Data<Option<ServiceVerifier>>>()
            .cloned();
        let key = api_key(req);
        let bearer = req.headers().contains_key(AUTHORIZATION);
        let token = user_token(req);
        Box::pin(async move {
            let services = services.as_ref().and_then(|s| s.as_ref().as_ref());
            if let (Some(key), Some(services)) = (key, services) {
                return Ok(Caller::Service(services.verify_api_key(&key)?));
            }
            let token = token?;
            let users = users.ok_or(AuthError::NotConfigured("JWT verifier missing"))?;
            let user_error = match users.verify(&token).await {
                Ok(p) => return Ok(Caller::User(p)),
                Err(e) => e,
            };
            // Service tokens come only in the Authorization header, never from a cookie.
            if let (true, Some(services)) = (bearer, services) {
                if let Ok(s) = services.verify_jwt(&token).await {
                    return Ok(Caller::Service(s));
                }
            }
            Err(user_error.into())
        })
    }
}

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
