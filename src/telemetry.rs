//! Logging and traces: `tracing` to stderr, text or JSON, level from `RUST_LOG` (default
//! `info`); and, with `telemetry.otlp_endpoint` set, OpenTelemetry spans exported over
//! OTLP/HTTP (protobuf), with W3C trace context (`traceparent`) read from incoming requests
//! ([`extract`]) and written on outgoing ones ([`inject`]).
//!
//! Span attributes are route templates, operation names and outcomes: never link ids, user
//! ids, URLs with queries or secrets.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::OnceLock;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// `log.format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where spans go (`[telemetry]`); an empty `otlp_endpoint`: nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traces {
    /// OTLP/HTTP base URL of a collector; empty = no traces.
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl Default for Traces {
    fn default() -> Self {
        Traces {
            otlp_endpoint: String::new(),
            service_name: "faceauth-gateway".into(),
        }
    }
}

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber once, without traces; later calls are no-ops (tests call it
/// repeatedly).
pub fn init(format: LogFormat) {
    let _ = init_with(format, Traces::default());
}

/// Installs the global subscriber once, with the OpenTelemetry layer when
/// `telemetry.otlp_endpoint` is set.
///
/// Errors: a description when the exporter cannot be built (never a secret).
pub fn init_with(format: LogFormat, telemetry: impl Into<Traces>) -> Result<(), String> {
    let telemetry = telemetry.into();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    type Inner = tracing_subscriber::layer::Layered<EnvFilter, tracing_subscriber::Registry>;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let mut layers: Vec<Box<dyn Layer<Inner> + Send + Sync>> = vec![match format {
        LogFormat::Json => fmt.json().boxed(),
        LogFormat::Text => fmt.boxed(),
    }];
    if !telemetry.otlp_endpoint.is_empty() && PROVIDER.get().is_none() {
        let provider = build_provider(&telemetry)?;
        let tracer = provider.tracer("faceauth-gateway");
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let _ = PROVIDER.set(provider);
        layers.push(tracing_opentelemetry::layer().with_tracer(tracer).boxed());
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .try_init();
    Ok(())
}

/// The exporter's HTTP client is a blocking `reqwest` client: the SDK's batch processor
/// exports from its own thread, outside any async runtime. It is built (and would be dropped)
/// on a thread of its own, as blocking clients must not be inside a runtime.
fn build_provider(telemetry: &Traces) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    let endpoint = format!(
        "{}/v1/traces",
        telemetry.otlp_endpoint.trim_end_matches('/')
    );
    let service_name = telemetry.service_name.clone();
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(2))
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("telemetry.otlp_endpoint: HTTP client: {e}"))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(OtlpClient(client))
            .with_endpoint(endpoint)
            .with_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("telemetry.otlp_endpoint: {e}"))?;
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(service_name)
                    .build(),
            )
            .build())
    })
    .join()
    .map_err(|_| "telemetry: the exporter set-up panicked".to_string())?
}

/// OTLP/HTTP transport over the crate's `reqwest` (blocking).
#[derive(Debug)]
struct OtlpClient(reqwest::blocking::Client);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let (parts, body) = request.into_parts();
        let sent = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body.to_vec())
            .send()?;
        let mut response = opentelemetry_http::Response::builder().status(sent.status());
        for (name, value) in sent.headers() {
            response = response.header(name, value);
        }
        Ok(response.body(sent.bytes()?)?)
    }
}

/// Flushes and stops the exporter (end of `serve`).
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let provider = provider.clone();
        // Shutting down blocks until the last batch is exported: off the runtime's threads.
        let _ = std::thread::spawn(move || provider.shutdown()).join();
    }
}

/// Whether traces are on in this process.
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

struct HeaderExtractor<'a>(&'a actix_web::http::header::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes the caller's W3C trace context (`traceparent`, `tracestate`) the parent of `span`
/// (a no-op when traces are off or the headers are absent or malformed).
pub fn extract(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
    if !enabled() {
        return;
    }
    let cx =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(cx);
}

/// Adds the current span's W3C trace context to an outgoing request (nothing when traces are
/// off).
pub fn inject(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    if !enabled() {
        return request;
    }
    let cx = tracing::Span::current().context();
    let mut headers = std::collections::HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut headers));
    headers
        .into_iter()
        .fold(request, |r, (name, value)| r.header(name, value))
}

/// A client span for one outgoing call: `peer` (`argos`, `jwks`, `callback`) and the
/// operation's template (`GET /v3/faceauth`), never a URL with ids or a query.
pub fn client_span(peer: &'static str, operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        "outgoing",
        otel.name = operation,
        otel.kind = "client",
        peer.service = peer,
        http.response.status_code = tracing::field::Empty,
    )
}
