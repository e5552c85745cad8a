//! Signed callbacks to the app (ARGOS itself offers none): after a verified result the gateway
//! POSTs a `step_up.completed` event to `callbacks.url` with
//!
//! ```text
//! Faceauth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
//! ```
//!
//! or, with `callbacks.format = "standard"` (or `"both"`), the [Standard Webhooks] headers
//!
//! ```text
//! webhook-id: <event id>
//! webhook-timestamp: <unix seconds>
//! webhook-signature: v1,<base64 HMAC-SHA256(base64-decoded whsec_ secret, "<id>.<t>.<raw body>")>
//! ```
//!
//! During a rotation (`callbacks.previous_secrets`) every attempt carries one signature per
//! secret: several `v1=` entries, or space-separated `v1,…` entries, as Stripe and Standard
//! Webhooks do; receivers accept any that matches. The secrets are reloaded on `SIGHUP`.
//!
//! [Standard Webhooks]: https://www.standardwebhooks.com/
//!
//! Delivery is at least once: events wait in a work queue in the store ([`crate::queue`],
//! surviving restarts), one per FaceAuth (queuing the same event again changes nothing), and
//! are retried with exponential backoff for `callbacks.max_age_secs`, then dead-lettered.
//! Receivers verify with
//! [`verify_signature`]: recompute the HMAC over the raw body bytes, compare in constant time,
//! and refuse timestamps more than the tolerance (300 s is a good value) away from their clock.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::lifecycle::Outcome;
use crate::queue::{Handler, JobLimits, QueueName, Step, WorkQueue};
use crate::store::{ClaimedJob, Store, StoreError};

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Faceauth-Signature";
/// Standard Webhooks: the event id (stable across retries).
pub const STANDARD_ID_HEADER: &str = "webhook-id";
/// Standard Webhooks: the attempt's Unix seconds.
pub const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Standard Webhooks: space-separated `v1,<base64>` signatures.
pub const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";

const WHSEC_RULE: &str = "must be whsec_ followed by standard base64 of 24 to 64 bytes";

/// The HMAC key of a Standard Webhooks secret: the base64-decoded part after `whsec_`.
///
/// Errors: a description of the rule (never the value).
pub fn standard_key(secret: &str) -> Result<Vec<u8>, &'static str> {
    let encoded = secret.strip_prefix("whsec_").ok_or(WHSEC_RULE)?;
    let key = BASE64.decode(encoded).map_err(|_| WHSEC_RULE)?;
    if !(24..=64).contains(&key.len()) {
        return Err(WHSEC_RULE);
    }
    Ok(key)
}

/// One Standard Webhooks signature, `v1,<base64>`, over `<id>.<t>.<body>` with the decoded key.
pub fn sign_standard(key: &[u8], id: &str, t: u64, body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(id.as_bytes());
    m.update(b".");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    format!("v1,{}", BASE64.encode(m.finalize().into_bytes()))
}

/// The `Faceauth-Signature` value with one `v1` per secret (Stripe's rotation form).
pub fn sign_all<'a>(secrets: impl IntoIterator<Item = &'a [u8]>, t: u64, body: &[u8]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&hex::encode(mac(secret, t, body).finalize().into_bytes()));
    }
    header
}

/// `callbacks.format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CallbackFormat {
    /// `Faceauth-Signature: t=<unix>,v1=<hex>` (Stripe's scheme).
    #[default]
    Stripe,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`.
    Standard,
    /// Both header sets.
    Both,
}

impl CallbackFormat {
    /// Whether the `Faceauth-Signature` header is sent.
    pub fn stripe(self) -> bool {
        matches!(self, CallbackFormat::Stripe | CallbackFormat::Both)
    }

    /// Whether the Standard Webhooks headers are sent.
    pub fn standard(self) -> bool {
        matches!(self, CallbackFormat::Standard | CallbackFormat::Both)
    }
}

/// The signing keys, swapped as a whole on reload.
#[derive(Clone)]
pub struct CallbackKeys {
    /// Which header sets are sent.
    pub format: CallbackFormat,
    /// Current secret first, then the previous ones.
    pub secrets: Vec<SecretString>,
}

/// Where and how callbacks are delivered (`[callbacks]`).
#[derive(Clone)]
pub struct CallbackTarget {
    /// Receiver URL.
    pub url: String,
    /// Signing keys.
    pub keys: CallbackKeys,
    /// Retry horizon, milliseconds.
    pub max_age_ms: u64,
    /// Per-attempt timeout, milliseconds.
    pub timeout_ms: u64,
}

/// Why a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The header is not `t=<digits>,v1=<hex>`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is outside the tolerance.
    #[error("timestamp outside the tolerance")]
    Stale,
    /// No `v1` value matches.
    #[error("signature mismatch")]
    Mismatch,
}

fn mac(secret: &[u8], t: u64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The header value for `body` signed at Unix second `t`.
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hex::encode(mac(secret, t, body).finalize().into_bytes())
    )
}

/// Verifies a `Faceauth-Signature` header over the raw `body`: the timestamp must be within
/// `tolerance_secs` of `now_secs`, and one `v1` must match (constant-time comparison).
///
/// Errors: [`SignatureError`].
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    tolerance_secs: u64,
    now_secs: u64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<u64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => {
                candidates.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?)
            }
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if t.abs_diff(now_secs) > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    let expected = mac(secret, t, body);
    if candidates
        .iter()
        .any(|c| expected.clone().verify_slice(c).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The event the app receives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepUpCompleted {
    /// Event id (`evt_…`), stable across retries: receivers deduplicate on it.
    pub id: String,
    /// Always `step_up.completed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds when the gateway verified the result (store clock).
    pub created: i64,
    /// The user.
    pub user_id: String,
    /// The link (the FaceAuth token).
    pub link_id: String,
    /// `approved` or `rejected`.
    pub result: Outcome,
    /// ARGOS authentication id.
    pub auth_id: String,
    /// When the user did the FaceAuth (the link's `verified_at`), RFC 3339 UTC: receivers
    /// keep the event with the later (`verified_at`, `auth_id`) per link, whatever order
    /// events arrive in.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub verified_at: Option<time::OffsetDateTime>,
    /// The session layer's reference, if any.
    pub reference: Option<String>,
    /// A signed step-up assertion (`[assertions]` on, `approved` results whose assertion has
    /// not expired yet); see `docs/step-up-assertions.md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion: Option<crate::assertions::Assertion>,
}

/// Callback delivery over a store.
#[derive(Clone)]
pub struct Callbacks {
    queue: WorkQueue,
    http: reqwest::Client,
    url: String,
    keys: Arc<RwLock<Arc<CallbackKeys>>>,
    max_age_ms: u64,
}

impl Callbacks {
    /// Delivery to `target`. Errors: a description if the client fails to build.
    pub fn new(
        target: CallbackTarget,
        jobs: JobLimits,
        outbound: &crate::outbound::Outbound,
        store: Arc<dyn Store>,
    ) -> Result<Self, String> {
        let CallbackTarget {
            url,
            keys,
            max_age_ms,
            timeout_ms,
        } = target;
        let http = outbound
            .builder()
            .connect_timeout(Duration::from_millis(timeout_ms.min(2_000)))
            .timeout(Duration::from_millis(timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Callbacks {
            queue: WorkQueue::new(store, QueueName::Callbacks, max_age_ms, jobs),
            http,
            url,
            keys: Arc::new(RwLock::new(Arc::new(keys))),
            max_age_ms,
        })
    }

    /// Replaces the signing secrets and format (`SIGHUP`); `s` must be validated. Attempts
    /// under way keep the keys they started with.
    pub fn set_keys(&self, keys: CallbackKeys) {
        let keys = Arc::new(keys);
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    fn keys(&self) -> Arc<CallbackKeys> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Queues an event for delivery (durably, before returning), once per event id: queuing
    /// the same event again within `callbacks.max_age_secs` changes nothing.
    /// Errors: [`StoreError`].
    pub async fn enqueue(&self, event: &StepUpCompleted) -> Result<(), StoreError> {
        let body = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let marker_ttl = self.max_age_ms.saturating_add(3_600_000);
        self.queue
            .push(&event.id, &body, Some((&event.id, marker_ttl)))
            .await
            .map(|_| ())
    }

    /// Queues any event (a JSON `body` with event id `id`, e.g. `user.erased`) like
    /// [`Callbacks::enqueue`]: durably, once per event id. Errors: [`StoreError`].
    pub async fn enqueue_event(&self, id: &str, body: &str) -> Result<(), StoreError> {
        let marker_ttl = self.max_age_ms.saturating_add(3_600_000);
        self.queue
            .push(id, body, Some((id, marker_ttl)))
            .await
            .map(|_| ())
    }

    /// One round of the callback worker; returns how many events it attempted.
    /// Errors: [`StoreError`].
    pub async fn run_due(&self) -> Result<usize, StoreError> {
        self.queue.run_round(self).await
    }

    async fn deliver(&self, job: &ClaimedJob, now_ms: i64) -> Result<Step, StoreError> {
        if serde_json::from_str::<serde_json::Value>(&job.body).is_err() {
            tracing::error!("unreadable callback job");
            return Ok(Step::Bury("unreadable"));
        }
        if now_ms.saturating_sub(job.created_ms) > self.max_age_ms as i64 {
            tracing::warn!(
                attempts = job.tries,
                "callback given up at callbacks.max_age_secs"
            );
            count("gave_up");
            return Ok(Step::Bury("max_age"));
        }
        let keys = self.keys();
        // The signature timestamp `t`: this replica's clock, like a JWT's `iat` (receivers
        // compare it with their own clock, with a tolerance).
        let t = crate::clock::now_secs();
        let body = job.body.as_bytes();
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json");
        if keys.format.stripe() {
            let signature = sign_all(
                keys.secrets.iter().map(|s| s.expose_secret().as_bytes()),
                t,
                body,
            );
            request = request.header(SIGNATURE_HEADER, signature);
        }
        if keys.format.standard() {
            let signatures: Vec<String> = keys
                .secrets
                .iter()
                .filter_map(|s| standard_key(s.expose_secret()).ok())
                .map(|key| sign_standard(&key, &job.member, t, body))
                .collect();
            request = request
                .header(STANDARD_ID_HEADER, job.member.as_str())
                .header(STANDARD_TIMESTAMP_HEADER, t.to_string())
                .header(STANDARD_SIGNATURE_HEADER, signatures.join(" "));
        }
        let span = crate::telemetry::client_span("callback", "POST callback");
        let sent = tracing::Instrument::instrument(
            async {
                crate::telemetry::inject(request)
                    .body(job.body.clone())
                    .send()
                    .await
            },
            span.clone(),
        )
        .await;
        if let Ok(res) = &sent {
            span.record("http.response.status_code", res.status().as_u16());
        }
        match sent {
            Ok(res) if res.status().is_success() => {
                tracing::info!(event = job.member.as_str(), "callback delivered");
                count("delivered");
                Ok(Step::Done)
            }
            other => {
                let status = other.map(|r| r.status().as_u16()).unwrap_or(0);
                let delay = (1_000u64 << job.tries.min(12)).min(3_600_000);
                tracing::info!(
                    event = job.member.as_str(),
                    status,
                    attempts = job.tries,
                    delay_ms = delay,
                    "callback retry"
                );
                count("retry");
                Ok(Step::Retry(delay))
            }
        }
    }
}

#[async_trait::async_trait]
impl Handler for Callbacks {
    async fn handle(&self, job: &ClaimedJob, now_ms: i64) -> Result<Step, StoreError> {
        self.deliver(job, now_ms).await
    }
}

fn count(outcome: &str) {
    crate::metrics::METRICS
        .callbacks
        .with_label_values(&[outcome])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let header = sign(b"secret", 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify_signature(b"secret", &header, b"{\"a\":1}", 300, 1_700_000_100),
            Ok(())
        );
        assert_eq!(
            verify_signature(b"secret", &header, b"{\"a\":2}", 300, 1_700_000_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"other", &header, b"{\"a\":1}", 300, 1_700_000_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"secret", &header, b"{\"a\":1}", 300, 1_700_000_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(b"secret", "v1=00", b"", 300, 0),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(b"secret", "t=1,v1=zz", b"", 300, 1),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn rotation_signs_with_every_secret() {
        let header = sign_all([&b"new"[..], &b"old"[..]], 7, b"{}");
        assert_eq!(header.matches(",v1=").count(), 2);
        for secret in [&b"new"[..], &b"old"[..]] {
            assert_eq!(verify_signature(secret, &header, b"{}", 300, 7), Ok(()));
        }
    }

    /// The example of the Standard Webhooks specification (and its reference libraries'
    /// tests): secret, id, timestamp, payload and the expected signature.
    #[test]
    fn standard_webhooks_spec_example() {
        let key = standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign_standard(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(standard_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(standard_key("whsec_c2hvcnQ=").is_err(), "too short");
        assert!(standard_key("whsec_***").is_err());
    }
}
