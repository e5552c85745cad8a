//! `Idempotency-Key` for `POST /v1/links` (draft-ietf-httpapi-idempotency-key-header): the
//! same user and key within 24 h get the first response again without a second mint; the same
//! key with another body is refused; concurrent requests with one key mint once.
//!
//! State per (user, key) in the store, always with an expiry: a short-lived `pending` marker
//! while the first request runs (so a crashed replica does not block the key for a day), then
//! the stored response for 24 h. Only successful (`201`) responses are stored; a failed first
//! attempt releases the key so the client can retry.
//!
//! One key yields one link under any timing:
//!
//! * The claim is **fenced by its token** (the unique `pending` value): only its owner renews,
//!   completes or releases it (`replace_if_equals`, `delete_if_equals`).
//! * It is **kept alive** while the request runs: a heartbeat renews it every third of
//!   `store.idempotency_claim_ms`; a slow `sid` lookup does not let it expire.
//! * The request mints only while the claim is **provably held**: the gateway tracks until when
//!   the last confirmed renewal keeps it (from the time the renewal was *sent*), and refuses to
//!   mint (`409 idempotency_key_in_use`) unless that is later than the store's write deadline.
//!   A store write that misses its deadline writes nothing, so a mint either lands while the
//!   claim is held or not at all.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::digest::{sha256_hex, short_hex};
use crate::store::{user_tag, Store, StoreError};

/// How long a stored response is replayed, milliseconds (24 h).
pub const REPLAY_TTL_MS: u64 = 24 * 3600 * 1000;
/// How long a concurrent request waits for the first one before `409`.
pub const WAIT: Duration = Duration::from_secs(5);

/// SHA-256 (hex) of the body's meaning: an empty body counts as `{}`, and a JSON body is
/// re-serialised (object keys sorted, no white space), so `{ }` and `{}` are the same request.
fn fingerprint(body: &[u8]) -> String {
    let canonical = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".to_vec()
    } else {
        serde_json::from_slice::<serde_json::Value>(body)
            .and_then(|v| serde_json::to_vec(&v))
            .unwrap_or_else(|_| body.to_vec())
    };
    sha256_hex(canonical)
}

/// The header value is 1–255 visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
    /// `Location` header, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    /// SHA-256 of the request body, hex.
    fp: String,
    /// Unique per attempt: only the claimant releases or completes it.
    nonce: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response: Option<StoredResponse>,
}

/// A claim on a key by the first request; renewed in the background until it is completed,
/// released or dropped.
#[derive(Debug)]
pub struct Claim {
    key: String,
    pending: String,
    fp: String,
    /// Until when the claim is certainly ours (local clock); `None` once it is lost.
    held_until: Arc<Mutex<Option<Instant>>>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    /// How long a store write may take before it can no longer land (its deadline).
    guard: Duration,
}

impl Claim {
    /// Checks that the claim will still be held when a store write sent now can last land.
    /// Errors: [`IdempotencyError::InUse`] when it may have expired (another request with the
    /// same key may run now).
    pub fn ensure_held(&self) -> Result<(), IdempotencyError> {
        let held = self
            .held_until
            .lock()
            .map(|h| *h)
            .unwrap_or(None)
            .is_some_and(|until| Instant::now() + self.guard < until);
        if held {
            Ok(())
        } else {
            tracing::warn!("idempotency claim no longer certainly held; not minting");
            Err(IdempotencyError::InUse)
        }
    }

    fn stop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What to do with a request carrying an `Idempotency-Key`.
#[derive(Debug)]
pub enum Begin {
    /// First use: run the request, then [`Idempotency::complete`] or [`Idempotency::release`].
    Proceed(Claim),
    /// Seen before with the same body: answer this again.
    Replay(StoredResponse),
}

/// Why the request cannot go ahead.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// Same key, different body (`422`).
    #[error("idempotency key reused with a different body")]
    Reused,
    /// The first request with this key is still running after [`WAIT`] (`409`).
    #[error("idempotency key in use")]
    InUse,
    /// The store failed (fail closed).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Idempotency records over a store.
#[derive(Clone)]
pub struct Idempotency {
    store: Arc<dyn Store>,
    claim_ttl: Duration,
    guard: Duration,
}

impl Idempotency {
    /// Records in `store`; a claim lives `claim_ttl_ms` without renewal; `store_timeout`
    /// bounds how long a store write can take (`store.timeout_ms`).
    pub fn with_claim(store: Arc<dyn Store>, claim_ttl_ms: u64, store_timeout: Duration) -> Self {
        Idempotency {
            store,
            claim_ttl: Duration::from_millis(claim_ttl_ms.max(1)),
            guard: store_timeout,
        }
    }

    fn claim(&self, key: String, pending: String, fp: String, sent: Instant) -> Claim {
        let held_until = Arc::new(Mutex::new(Some(sent + self.claim_ttl)));
        let ttl_ms = self.claim_ttl.as_millis() as u64;
        let every = self.claim_ttl / 3;
        let (store, k, p, held) = (
            self.store.clone(),
            key.clone(),
            pending.clone(),
            held_until.clone(),
        );
        let ttl = self.claim_ttl;
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let sent = Instant::now();
                match store.replace_if_equals(&k, &p, &p, ttl_ms).await {
                    Ok(true) => {
                        if let Ok(mut h) = held.lock() {
                            *h = Some(sent + ttl);
                        }
                    }
                    Ok(false) => {
                        if let Ok(mut h) = held.lock() {
                            *h = None;
                        }
                        tracing::warn!("idempotency claim lost (expired or taken over)");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "could not renew an idempotency claim"),
                }
            }
        });
        Claim {
            key,
            pending,
            fp,
            held_until,
            heartbeat: Some(heartbeat),
            guard: self.guard,
        }
    }

    /// Claims `key` for `user_id`'s request with `body`, or finds its earlier response.
    /// Errors: [`IdempotencyError::Reused`], [`IdempotencyError::InUse`],
    /// [`IdempotencyError::Store`].
    pub async fn begin(
        &self,
        user_id: &str,
        key: &str,
        body: &[u8],
    ) -> Result<Begin, IdempotencyError> {
        let store_key = format!("idem:{{{}}}:{}", user_tag(user_id), short_hex(key));
        let fp = fingerprint(body);
        let pending = serde_json::to_string(&Entry {
            fp: fp.clone(),
            nonce: uuid::Uuid::new_v4().to_string(),
            response: None,
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let started = Instant::now();
        let ttl_ms = self.claim_ttl.as_millis() as u64;
        loop {
            let sent = Instant::now();
            let existing = match self.store.put_if_absent(&store_key, &pending, ttl_ms).await {
                Ok(existing) => existing,
                Err(e) => {
                    // The claim may have been written although the answer was lost: take it
                    // back (fenced by its unique value) so that a retry is not blocked.
                    let store = self.store.clone();
                    let (k, p) = (store_key.clone(), pending.clone());
                    tokio::spawn(async move {
                        let _ = store.delete_if_equals(&k, &p).await;
                    });
                    return Err(e.into());
                }
            };
            let existing = existing.filter(|e| *e != pending);
            let Some(existing) = existing else {
                return Ok(Begin::Proceed(self.claim(store_key, pending, fp, sent)));
            };
            let entry: Entry =
                serde_json::from_str(&existing).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if entry.fp != fp {
                return Err(IdempotencyError::Reused);
            }
            if let Some(response) = entry.response {
                return Ok(Begin::Replay(response));
            }
            if started.elapsed() >= WAIT {
                return Err(IdempotencyError::InUse);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stores the response of a claimed request for 24 h, if the claim is still this
    /// request's (fenced by its token).
    /// Errors: [`StoreError`] (the response was still sent; a retry would mint again).
    pub async fn complete(
        &self,
        mut claim: Claim,
        response: StoredResponse,
    ) -> Result<(), StoreError> {
        claim.stop();
        let done = serde_json::to_string(&Entry {
            fp: claim.fp.clone(),
            nonce: String::new(),
            response: Some(response),
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // Indexed for the user's erasure (issue 19) before the response is kept.
        if let Some(index) = crate::erasure::idempotency_index_key(&claim.key) {
            self.store
                .index_add(&index, &claim.key, REPLAY_TTL_MS, None)
                .await?;
        }
        match self
            .store
            .replace_if_equals(&claim.key, &claim.pending, &done, REPLAY_TTL_MS)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::warn!("idempotency claim was lost before completion; response not stored");
                Ok(())
            }
            Err(e) => {
                // Try again in the background (fenced, so harmless if it already landed): a
                // retry with this key must replay, not mint again.
                let store = self.store.clone();
                let (key, pending) = (claim.key.clone(), claim.pending.clone());
                tokio::spawn(async move {
                    for attempt in 1..=5u32 {
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                        match store
                            .replace_if_equals(&key, &pending, &done, REPLAY_TTL_MS)
                            .await
                        {
                            Ok(_) => return,
                            Err(_) => continue,
                        }
                    }
                });
                Err(e)
            }
        }
    }

    /// Releases a claim whose request failed, so a retry can run (only if it is still this
    /// request's).
    pub async fn release(&self, mut claim: Claim) {
        claim.stop();
        if let Err(e) = self
            .store
            .delete_if_equals(&claim.key, &claim.pending)
            .await
        {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
    }
}
