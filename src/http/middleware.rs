//! Request middleware: one span per request with the route *template* (never the path, which
//! holds link ids), a request id from `X-Request-Id` (or a new UUID) echoed in the response,
//! and one log line with status and latency.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use std::time::Instant;
use tracing::Instrument;

use super::ApiError;

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
        request_id = %request_id,
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    // The caller's W3C trace context (`traceparent`) is this span's parent (traces on only).
    crate::telemetry::extract(&span, req.headers());
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    let status = res.status().as_u16();
    span.record("http.response.status_code", status);
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

/// Limits on the request head (`server.max_headers`, `server.max_header_bytes`,
/// `server.max_uri_bytes`), enforced by [`head_limits`] before any handler runs.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Most header fields.
    pub max_headers: usize,
    /// Most bytes of all header fields, counted as `name: value\r\n`.
    pub max_header_bytes: usize,
    /// Longest request target (path and query), bytes.
    pub max_uri_bytes: usize,
}

impl HeadLimits {
    /// Checks a request head. Errors: [`ApiError::UriTooLong`] (`414`),
    /// [`ApiError::HeaderFieldsTooLarge`] (`431`).
    pub fn check(&self, req: &actix_web::HttpRequest) -> Result<(), ApiError> {
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().len())
            .unwrap_or_else(|| req.uri().path().len());
        if target > self.max_uri_bytes {
            return Err(ApiError::UriTooLong(self.max_uri_bytes));
        }
        let headers = req.headers();
        let count = headers.len();
        if count > self.max_headers {
            return Err(ApiError::HeaderFieldsTooLarge(format!(
                "The request has {count} header fields; at most {} are accepted.",
                self.max_headers
            )));
        }
        let bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if bytes > self.max_header_bytes {
            return Err(ApiError::HeaderFieldsTooLarge(format!(
                "The request header fields are {bytes} bytes together; at most {} are accepted.",
                self.max_header_bytes
            )));
        }
        Ok(())
    }
}

/// The middleware: refuses an over-long request target (`414 uri_too_long`) and too many or
/// too large header fields (`431 request_header_fields_too_large`) before routing to a handler.
/// actix-http's own hard limits (96 fields, 128 KiB for the whole head) lie above every value
/// the configuration allows; beyond those it closes the connection after a bare `431`.
pub async fn head_limits(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limits = req
        .app_data::<actix_web::web::Data<HeadLimits>>()
        .map(|l| *l.get_ref());
    if let Some(Err(e)) = limits.map(|l| l.check(req.request())) {
        let res = actix_web::ResponseError::error_response(&e);
        return Ok(req.into_response(res).map_into_boxed_body());
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}
