//! `GET /healthz` (liveness) and `GET /readyz` (store readiness, draining).

use actix_web::{web, HttpResponse};

use super::responses::NotReady503;
use super::state::AppState;
use super::ApiError;

/// Liveness.
#[utoipa::path(method(get, head), path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the store answers and the instance is not draining.
#[utoipa::path(method(get, head), path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready"),
        NotReady503))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ApiError::ShuttingDown);
    }
    state.links.ready().await?;
    // What Redis keeps: a setting changed at run time that can lose or resurrect link state
    // makes the replica unready, naming it.
    let risks = state.links.durability().await?;
    if let Some(refused) = risks.refused.first() {
        return Err(ApiError::from(crate::store::StoreError::Unsupported(
            refused.to_string(),
        )));
    }
    let accepted: Vec<&str> = risks.accepted.iter().map(|r| r.name).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready", "store_risks": accepted})))
}
