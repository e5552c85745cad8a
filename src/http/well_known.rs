//! `GET /.well-known/jwks.json`: the public keys of step-up assertions
//! ([`crate::assertions`]).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::responses::AssertionsOff404;
use super::state::AppState;
use super::ApiError;

/// `GET /.well-known/jwks.json`: the keys that sign step-up assertions (the signing key, then
/// the previous keys of a rotation), each with `kid` (RFC 7638 thumbprint), `alg` and
/// `use: sig`. Cacheable: `Cache-Control: public, max-age=<assertions.jwks_max_age_secs>`.
/// `404 not_found` while `[assertions]` is off.
#[utoipa::path(method(get, head), path = "/.well-known/jwks.json", tag = "assertions",
    responses(
        (status = 200, description = "The key set", body = crate::assertions::JwkSet,
            headers(("Cache-Control" = String, description = "`public, max-age=<assertions.jwks_max_age_secs>`"))),
        AssertionsOff404))]
pub async fn jwks(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let assertions = state.assertions.as_ref().ok_or(ApiError::RouteNotFound)?;
    // Set here, so the app-wide `Cache-Control: no-store` default leaves it alone.
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", assertions.jwks_max_age_secs()),
        ))
        .json(assertions.jwks()))
}
