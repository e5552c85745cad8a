//! Request middleware: one span per request with the route *template* (never the path, which
//! holds link ids), a request id from `X-Request-Id` (or a new UUID) echoed in the response,
//! and one log line with status and latency.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use std::time::Instant;
use tracing::Instrument;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn acceptable_request_id(v: &HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())).then_some(s)
}

/// The middleware: one span per request with the route *template* (never the path, which holds
/// link ids), a request id from `X-Request-Id` (or a new UUID) echoed in the response, and one
/// log line with status and latency.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(acceptable_request_id)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    // A fixed vocabulary: any other method name would create a new metric series.
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        _ => "OTHER",
    };
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = %route,
        request_id = %request_id
    );
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    let status = res.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    let elapsed_ms = elapsed * 1000.0;
    let status_label = status.to_string();
    let labels = [method, route.as_str(), status_label.as_str()];
    let m = &crate::metrics::METRICS;
    m.http_requests.with_label_values(&labels).inc();
    m.http_duration.with_label_values(&labels).observe(elapsed);
    span.in_scope(|| tracing::info!(status, elapsed_ms, "request finished"));
    Ok(res)
}
