//! Signed callbacks to the app (ARGOS itself offers none): after a verified result the gateway
//! POSTs a `step_up.completed` event to `callbacks.url` with
//!
//! ```text
//! Faceauth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
//! ```
//!
//! Delivery is at least once: events wait in the store (surviving restarts) and are retried
//! with exponential backoff for `callbacks.max_age_secs`. Receivers verify with
//! [`verify_signature`]: recompute the HMAC over the raw body bytes, compare in constant time,
//! and refuse timestamps more than the tolerance (300 s is a good value) away from their clock.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::CallbackSettings;
use crate::store::{Store, StoreError};

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Faceauth-Signature";
const QUEUE: &str = "q:callbacks";
const LOCK_TTL_MS: u64 = 60_000;

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
    /// Unix seconds when the gateway verified the result.
    pub created: i64,
    /// The user.
    pub user_id: String,
    /// The link (the FaceAuth token).
    pub link_id: String,
    /// `approved` or `rejected`.
    pub result: String,
    /// ARGOS authentication id.
    pub auth_id: String,
    /// The session layer's reference, if any.
    pub reference: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    body: String,
    created_ms: i64,
    attempts: u32,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Callback delivery over a store.
#[derive(Clone)]
pub struct Callbacks {
    store: Arc<dyn Store>,
    http: reqwest::Client,
    url: String,
    secret: SecretString,
    max_age_ms: u64,
}

impl Callbacks {
    /// `None` when `callbacks.url` is empty. Errors: a description if the client fails to build.
    pub fn from_settings(
        s: &CallbackSettings,
        outbound: &crate::outbound::Outbound,
        store: Arc<dyn Store>,
    ) -> Result<Option<Self>, String> {
        let (Some(url), Some(secret)) = (s.url.clone().filter(|u| !u.is_empty()), s.secret.clone())
        else {
            return Ok(None);
        };
        let http = outbound
            .builder()
            .connect_timeout(Duration::from_millis(s.timeout_ms.min(2_000)))
            .timeout(Duration::from_millis(s.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Some(Callbacks {
            store,
            http,
            url,
            secret,
            max_age_ms: s.max_age_secs * 1000,
        }))
    }

    /// Queues an event for delivery (durably, before returning).
    /// Errors: [`StoreError`].
    pub async fn enqueue(&self, event: &StepUpCompleted) -> Result<(), StoreError> {
        let job = Job {
            body: serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            created_ms: now_ms(),
            attempts: 0,
        };
        let ttl = self.max_age_ms + 3_600_000;
        let json = serde_json::to_string(&job).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The job first, then the queue entry: a crash in between leaves a job that expires.
        self.store
            .put(&format!("cb:{}", event.id), &json, ttl)
            .await?;
        self.store.schedule(QUEUE, &event.id, 0, ttl).await
    }

    /// Delivers what is due; returns how many were attempted.
    pub async fn run_due(&self) -> Result<usize, StoreError> {
        let due = self.store.due(QUEUE, 20).await?;
        for id in &due {
            let lock = format!("cbl:{id}");
            let nonce = uuid::Uuid::new_v4().to_string();
            if self
                .store
                .put_if_absent(&lock, &nonce, LOCK_TTL_MS)
                .await?
                .is_some()
            {
                continue;
            }
            let outcome = self.deliver(id).await;
            self.store.delete_if_equals(&lock, &nonce).await?;
            outcome?;
        }
        Ok(due.len())
    }

    async fn deliver(&self, id: &str) -> Result<(), StoreError> {
        let key = format!("cb:{id}");
        let Some(json) = self.store.read(&key).await? else {
            return self.store.unschedule(QUEUE, id).await;
        };
        let mut job: Job =
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if now_ms() - job.created_ms > self.max_age_ms as i64 {
            tracing::warn!(event = id, attempts = job.attempts, "callback given up");
            count("gave_up");
            self.store.unschedule(QUEUE, id).await?;
            return self.store.delete(&key).await;
        }
        let t = (now_ms() / 1000) as u64;
        let signature = sign(
            self.secret.expose_secret().as_bytes(),
            t,
            job.body.as_bytes(),
        );
        let sent = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(job.body.clone())
            .send()
            .await;
        match sent {
            Ok(res) if res.status().is_success() => {
                tracing::info!(event = id, "callback delivered");
                count("delivered");
                self.store.unschedule(QUEUE, id).await?;
                self.store.delete(&key).await
            }
            other => {
                job.attempts += 1;
                let status = other.map(|r| r.status().as_u16()).unwrap_or(0);
                let delay = 1_000u64 << job.attempts.min(12);
                tracing::info!(
                    event = id,
                    status,
                    attempts = job.attempts,
                    delay_ms = delay,
                    "callback retry"
                );
                count("retry");
                let json =
                    serde_json::to_string(&job).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let ttl = self.max_age_ms + 3_600_000;
                self.store.put(&key, &json, ttl).await?;
                self.store
                    .schedule(QUEUE, id, delay.min(3_600_000), ttl)
                    .await
            }
        }
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
}
