//! Erasure routes (issue 19), for the app's backend with a service credential carrying
//! `faceauth:data:delete`: `DELETE /v1/users/{user_id}/faceauth` and `GET /v1/erasures/{id}`.
//! The work happens in [`crate::erasure`].

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::body::{idempotency_key, parse_optional_object, read_body};
use super::extract::user_id_from_path;
use super::params::{EraseIdempotencyKey, UserIdPath};
use super::responses::{
    AuthErrors401, BodyErrors, EraseUnavailable503, ErasureStatusErrors, InsufficientScope403,
    ServiceAuthErrors,
};
use super::state::AppState;
use super::ApiError;
use crate::auth::service::{ServicePrincipal, SCOPE_DATA_DELETE};
use crate::erasure::{
    valid_id, Counts, ErasureState, ItemStatus, Record, MAX_AUTH_ID_BYTES, MAX_EXTRA_AUTH_IDS,
};
use crate::links::utc_from_ms;

/// Body of `DELETE /v1/users/{user_id}/faceauth` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// Further ARGOS authentication ids of this user to delete at ARGOS (besides those the
    /// gateway saw): at most 100, each 1–256 bytes without control characters.
    #[serde(default)]
    #[schema(max_items = 100)]
    auth_ids: Option<Vec<String>>,
}

/// One authentication id of an erasure.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErasureItem {
    /// ARGOS authentication id.
    auth_id: String,
    /// `pending`, `deleted`, `not_found` or `failed`.
    status: ItemStatus,
    /// ARGOS's error code for `failed` (`unavailable` when ARGOS did not answer before
    /// `erasure.deadline_secs`), or of the last retried failure while `pending`.
    error_code: Option<String>,
}

/// An erasure and where it stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErasureAnswer {
    /// The erasure id (`er_` and 32 hex characters).
    erasure_id: String,
    /// `pending` (ARGOS deletions running), `completed` or `failed` (some id `failed`).
    state: ErasureState,
    /// When the gateway's records of the user were erased, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
    /// When the erasure finished, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339::option")]
    completed_at: Option<time::OffsetDateTime>,
    /// Link records erased in the gateway.
    links_erased: u64,
    /// Authentication ids per status.
    counts: Counts,
    /// Every authentication id deleted at ARGOS.
    auth_ids: Vec<ErasureItem>,
}

fn answer(record: Record) -> ErasureAnswer {
    ErasureAnswer {
        erasure_id: record.id.clone(),
        state: record.state,
        created_at: utc_from_ms(record.at),
        completed_at: record.done.map(utc_from_ms),
        links_erased: record.links_erased.max(record.links.len() as u64),
        counts: record.counts(),
        auth_ids: record
            .items
            .into_iter()
            .map(|i| ErasureItem {
                auth_id: i.auth_id,
                status: i.status,
                error_code: i.code,
            })
            .collect(),
    }
}

/// `DELETE /v1/users/{user_id}/faceauth` (`faceauth:data:delete`): erases the user's records
/// in the gateway at once and deletes their FaceAuth data at ARGOS in a durable job. `202`.
#[utoipa::path(delete, path = "/v1/users/{user_id}/faceauth", tag = "service",
    params(UserIdPath,
        EraseIdempotencyKey),
    request_body(content = Option<EraseRequest>, description = "Empty, `{}` or `{\"auth_ids\": [\"…\"]}`"),
    responses((status = 202,
            description = "Erasure accepted: the gateway's records are gone, ARGOS deletions run",
            body = ErasureAnswer,
            headers(("Location" = String, description = "`/v1/erasures/{id}`"))),
        ServiceAuthErrors, BodyErrors, EraseUnavailable503),
    security(("service_bearer" = []), ("api_key" = [])))]
pub async fn erase_user(
    req: HttpRequest,
    service: ServicePrincipal,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    service.require(SCOPE_DATA_DELETE)?;
    let user_id = user_id_from_path(&req)?;
    let key = idempotency_key(&req)?;
    let body = read_body(&req, payload).await?;
    let request: EraseRequest = parse_optional_object(&body)?;
    let extra = request.auth_ids.unwrap_or_default();
    if extra.len() > MAX_EXTRA_AUTH_IDS {
        return Err(ApiError::BadRequest(format!(
            "auth_ids may list at most {MAX_EXTRA_AUTH_IDS} ids"
        )));
    }
    if extra
        .iter()
        .any(|a| a.is_empty() || a.len() > MAX_AUTH_ID_BYTES || a.chars().any(char::is_control))
    {
        return Err(ApiError::BadRequest(format!(
            "each of auth_ids must be 1 to {MAX_AUTH_ID_BYTES} bytes without control characters"
        )));
    }
    let started = state
        .erasures
        .start(&user_id, &extra, key.as_deref())
        .await?;
    tracing::info!(
        service = service.subject.as_str(),
        erasure = started.record.id.as_str(),
        "user erasure accepted"
    );
    let location = format!("/v1/erasures/{}", started.record.id);
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, location))
        .json(answer(started.record)))
}

/// `GET /v1/erasures/{id}` (`faceauth:data:delete`): an erasure's state and the outcome per
/// ARGOS authentication id.
#[utoipa::path(get, path = "/v1/erasures/{id}", tag = "service",
    params(("id" = String, Path, description = "Erasure id, `er_` and 32 lowercase hex characters",
        pattern = "^er_[0-9a-f]{32}$")),
    responses((status = 200, description = "The erasure", body = ErasureAnswer),
        AuthErrors401, InsufficientScope403, ErasureStatusErrors),
    security(("service_bearer" = []), ("api_key" = [])))]
pub async fn erasure_status(
    service: ServicePrincipal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    service.require(SCOPE_DATA_DELETE)?;
    let id = path.into_inner();
    if !valid_id(&id) {
        return Err(ApiError::BadRequest(
            "an erasure id is `er_` and 32 lowercase hex characters".into(),
        ));
    }
    let record = state
        .erasures
        .get(&id)
        .await?
        .ok_or(ApiError::ErasureNotFound)?;
    Ok(HttpResponse::Ok().json(answer(record)))
}
