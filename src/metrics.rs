//! Prometheus metrics, served on their own listener (`server.metrics_bind`), never on the
//! public port. Label values are fixed vocabularies (route templates, outcomes, kinds): never
//! ids, user ids or secrets.

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::LazyLock;

/// Every metric of the gateway.
pub struct Metrics {
    registry: Registry,
    /// `faceauth_http_requests_total{method, route, status}`.
    pub http_requests: IntCounterVec,
    /// `faceauth_http_request_duration_seconds{method, route, status}`.
    pub http_duration: HistogramVec,
    /// `faceauth_links_minted_total{expiry}`.
    pub links_minted: IntCounterVec,
    /// `faceauth_link_opens_total{outcome}`: redirected, confirm_page, used, expired, revoked,
    /// not_found, rate_limited, store_unavailable, other.
    pub link_opens: IntCounterVec,
    /// `faceauth_webhook_events_total{type, outcome}`.
    pub webhook_events: IntCounterVec,
    /// `faceauth_store_command_duration_seconds{op}`.
    pub store_duration: HistogramVec,
    /// `faceauth_store_errors_total{op}`.
    pub store_errors: IntCounterVec,
    /// `faceauth_jwks_refreshes_total{outcome}`: ok, error.
    pub jwks_refreshes: IntCounterVec,
    /// `faceauth_verifications_total{outcome}`: approved, rejected, retry, gave_up, orphan,
    /// erased.
    pub verifications: IntCounterVec,
    /// `faceauth_callbacks_total{outcome}`: delivered, retry, gave_up.
    pub callbacks: IntCounterVec,
    /// `faceauth_config_reloads_total{outcome}`: ok, error (`SIGHUP`).
    pub config_reloads: IntCounterVec,
    /// `faceauth_verification_rejections_total{reason}`: see `verdict::RejectReason`.
    pub rejections: IntCounterVec,
    /// `faceauth_worker_restarts_total{worker}`: verify, callbacks.
    pub worker_restarts: IntCounterVec,
    /// `faceauth_worker_last_round_timestamp_seconds{worker}`.
    pub worker_last_round: GaugeVec,
    /// `faceauth_jobs_dead_lettered_total{queue}`: verify, callbacks.
    pub dead_lettered: IntCounterVec,
    /// `faceauth_store_clock_offset_seconds`: Redis clock minus this process's clock.
    pub store_clock_offset: Gauge,
    /// `faceauth_store_risk{risk, accepted}`: 1 for each Redis setting that can lose or
    /// resurrect link state (see `store.accept_risks`).
    pub store_risks: IntGaugeVec,
    /// `faceauth_store_late_total{op}`: writes refused by Redis because they arrived after their
    /// deadline (nothing written), and unconfirmed writes undone.
    pub store_late: IntCounterVec,
    /// `faceauth_assertions_issued_total{via}`: link_status, step_up, callback.
    pub assertions_issued: IntCounterVec,
    /// `faceauth_erasures_total{outcome}`: started, completed, failed.
    pub erasures: IntCounterVec,
    /// `faceauth_erasure_deletions_total{status}`: ARGOS deletions by outcome: deleted,
    /// not_found, failed, retry.
    pub erasure_deletions: IntCounterVec,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::new(name, help)
        .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
    registry
        .register(Box::new(g.clone()))
        .unwrap_or_else(|e| unreachable!("metric {name} registered twice: {e}"));
    g
}

fn int_gauges(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
    registry
        .register(Box::new(g.clone()))
        .unwrap_or_else(|e| unreachable!("metric {name} registered twice: {e}"));
    g
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| unreachable!("metric {name} registered twice: {e}"));
    c
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
    registry
        .register(Box::new(h.clone()))
        .unwrap_or_else(|e| unreachable!("metric {name} registered twice: {e}"));
    h
}

const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    Metrics {
        http_requests: counter(
            &registry,
            "faceauth_http_requests_total",
            "HTTP requests",
            &["method", "route", "status"],
        ),
        http_duration: histogram(
            &registry,
            "faceauth_http_request_duration_seconds",
            "HTTP request latency",
            &["method", "route", "status"],
            LATENCY_BUCKETS.to_vec(),
        ),
        links_minted: counter(
            &registry,
            "faceauth_links_minted_total",
            "Links minted",
            &["expiry"],
        ),
        link_opens: counter(
            &registry,
            "faceauth_link_opens_total",
            "Link opens by outcome",
            &["outcome"],
        ),
        webhook_events: counter(
            &registry,
            "faceauth_webhook_events_total",
            "ARGOS webhook events",
            &["type", "outcome"],
        ),
        store_duration: histogram(
            &registry,
            "faceauth_store_command_duration_seconds",
            "Store command latency",
            &["op"],
            LATENCY_BUCKETS.to_vec(),
        ),
        store_errors: counter(
            &registry,
            "faceauth_store_errors_total",
            "Store command errors",
            &["op"],
        ),
        jwks_refreshes: counter(
            &registry,
            "faceauth_jwks_refreshes_total",
            "JWKS fetches",
            &["outcome"],
        ),
        verifications: counter(
            &registry,
            "faceauth_verifications_total",
            "Pull-verification outcomes",
            &["outcome"],
        ),
        callbacks: counter(
            &registry,
            "faceauth_callbacks_total",
            "Callback delivery outcomes",
            &["outcome"],
        ),
        config_reloads: counter(
            &registry,
            "faceauth_config_reloads_total",
            "Configuration reloads on SIGHUP",
            &["outcome"],
        ),
        rejections: counter(
            &registry,
            "faceauth_verification_rejections_total",
            "FaceAuth results judged rejected, by reason",
            &["reason"],
        ),
        worker_restarts: counter(
            &registry,
            "faceauth_worker_restarts_total",
            "Worker rounds or jobs that panicked, failed or timed out (the worker goes on)",
            &["worker"],
        ),
        worker_last_round: {
            let g = GaugeVec::new(
                Opts::new(
                    "faceauth_worker_last_round_timestamp_seconds",
                    "Unix time of the worker's last completed round",
                ),
                &["worker"],
            )
            .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
            registry
                .register(Box::new(g.clone()))
                .unwrap_or_else(|e| unreachable!("metric registered twice: {e}"));
            g
        },
        dead_lettered: counter(
            &registry,
            "faceauth_jobs_dead_lettered_total",
            "Jobs moved to a dead-letter set",
            &["queue"],
        ),
        store_clock_offset: gauge(
            &registry,
            "faceauth_store_clock_offset_seconds",
            "Redis clock minus this gateway's clock, seconds",
        ),
        store_risks: int_gauges(
            &registry,
            "faceauth_store_risk",
            "Redis settings that can lose or resurrect link state (1 = present)",
            &["risk", "accepted"],
        ),
        store_late: counter(
            &registry,
            "faceauth_store_late_total",
            "Store writes refused after their deadline or undone after no confirmation",
            &["op", "what"],
        ),
        assertions_issued: counter(
            &registry,
            "faceauth_assertions_issued_total",
            "Signed step-up assertions handed out, by where",
            &["via"],
        ),
        erasures: counter(
            &registry,
            "faceauth_erasures_total",
            "User erasures started and finished",
            &["outcome"],
        ),
        erasure_deletions: counter(
            &registry,
            "faceauth_erasure_deletions_total",
            "ARGOS FaceAuth deletions of erasures, by outcome",
            &["status"],
        ),
        registry,
    }
});

/// The text exposition (Prometheus format 0.0.4).
pub fn render() -> String {
    let mut out = Vec::new();
    if TextEncoder::new()
        .encode(&METRICS.registry.gather(), &mut out)
        .is_err()
    {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Outcome of opening a link (`faceauth_link_opens_total{outcome}`); the HTTP edge maps each
/// refusal's problem code to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenOutcome {
    /// `302`/`303` to FaceAuth.
    Redirected,
    /// The confirm page was shown; nothing consumed.
    ConfirmPage,
    /// `link_used`.
    Used,
    /// `link_expired`.
    Expired,
    /// `link_revoked`.
    Revoked,
    /// `link_not_found`.
    NotFound,
    /// `rate_limited`.
    RateLimited,
    /// `store_unavailable`.
    StoreUnavailable,
    /// Any other refusal.
    Other,
}

impl OpenOutcome {
    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            OpenOutcome::Redirected => "redirected",
            OpenOutcome::ConfirmPage => "confirm_page",
            OpenOutcome::Used => "used",
            OpenOutcome::Expired => "expired",
            OpenOutcome::Revoked => "revoked",
            OpenOutcome::NotFound => "not_found",
            OpenOutcome::RateLimited => "rate_limited",
            OpenOutcome::StoreUnavailable => "store_unavailable",
            OpenOutcome::Other => "other",
        }
    }

    /// Every outcome, in declaration order (the index of [`OPEN_COUNTERS`]).
    const ALL: [OpenOutcome; 9] = [
        OpenOutcome::Redirected,
        OpenOutcome::ConfirmPage,
        OpenOutcome::Used,
        OpenOutcome::Expired,
        OpenOutcome::Revoked,
        OpenOutcome::NotFound,
        OpenOutcome::RateLimited,
        OpenOutcome::StoreUnavailable,
        OpenOutcome::Other,
    ];

    /// Counts one open with this outcome (a counter looked up once per process, not per open).
    pub fn count(self) {
        OPEN_COUNTERS[self as usize].inc();
    }
}

/// `faceauth_link_opens_total`'s counter per outcome, indexed by [`OpenOutcome`].
static OPEN_COUNTERS: LazyLock<[prometheus::IntCounter; 9]> =
    LazyLock::new(|| OpenOutcome::ALL.map(|o| METRICS.link_opens.with_label_values(&[o.as_str()])));

/// The metrics listener's only route.
pub async fn metrics_handler() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_outcomes_index_their_own_counter() {
        for (i, outcome) in OpenOutcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, i, "{outcome:?}");
            let before = METRICS
                .link_opens
                .with_label_values(&[outcome.as_str()])
                .get();
            outcome.count();
            let after = METRICS
                .link_opens
                .with_label_values(&[outcome.as_str()])
                .get();
            assert_eq!(after, before + 1, "{outcome:?}");
        }
    }
}
