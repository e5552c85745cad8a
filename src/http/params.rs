//! Request parameters shared by several routes, described once for the OpenAPI document
//! (`params(LinkIdPath)` in a route's annotation). The handlers read them themselves.

#![allow(dead_code)] // The fields exist only to describe the parameters.

use utoipa::IntoParams;

/// `{id}` of `/v1/links/{id}`, `/l/{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LinkIdPath {
    /// Link id, a canonical lowercase UUID v4
    #[param(format = "uuid")]
    #[param(pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")]
    id: String,
}

/// `{id}` of `GET /l/{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OpenLinkIdPath {
    /// Link id, a canonical lowercase UUID v4: the capability
    #[param(format = "uuid")]
    #[param(pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")]
    id: String,
}

/// `{user_id}` of `/v1/users/{user_id}/…`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserIdPath {
    /// The app's user id: percent-encoded UTF-8, 1–1024 bytes once decoded, no control characters
    #[param(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"
    )]
    user_id: String,
}

/// `Idempotency-Key` of `POST /v1/links`.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct MintIdempotencyKey {
    /// 1–255 visible ASCII; replays the first response for 24 h
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    key: Option<String>,
}

/// `Idempotency-Key` of `DELETE /v1/users/{user_id}/faceauth`.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct EraseIdempotencyKey {
    /// 1–255 visible ASCII; a repeat with the same key answers the same erasure
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    key: Option<String>,
}
