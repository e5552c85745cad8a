//! `Idempotency-Key` for `POST /v1/links` (draft-ietf-httpapi-idempotency-key-header): the
//! same user and key within 24 h get the first response again without a second mint; the same
//! key with another body is refused; concurrent requests with one key mint once.
//!
//! State per (user, key) in the store, always with an expiry: a short-lived `pending` marker
//! while the first request runs (so a crashed replica does not block the key for a day), then
//! the stored response for 24 h. Only successful (`201`) responses are stored; a failed first
//! attempt releases the key so the client can retry.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::{user_tag, Store, StoreError};

/// How long a stored response is replayed, milliseconds (24 h).
pub const REPLAY_TTL_MS: u64 = 24 * 3600 * 1000;
/// How long a `pending` marker lives, milliseconds.
pub const PENDING_TTL_MS: u64 = 30_000;
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
    hex::encode(Sha256::digest(canonical))
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

/// A claim on a key by the first request.
#[derive(Debug)]
pub struct Claim {
    key: String,
    pending: String,
    fp: String,
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
}

impl Idempotency {
    /// Records in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Idempotency { store }
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
        let store_key = format!(
            "idem:{{{}}}:{}",
            user_tag(user_id),
            hex::encode(&Sha256::digest(key.as_bytes())[..16])
        );
        let fp = fingerprint(body);
        let pending = serde_json::to_string(&Entry {
            fp: fp.clone(),
            nonce: uuid::Uuid::new_v4().to_string(),
            response: None,
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let started = Instant::now();
        loop {
            let existing = self
                .store
                .put_if_absent(&store_key, &pending, PENDING_TTL_MS)
                .await?;
            let Some(existing) = existing else {
                return Ok(Begin::Proceed(Claim {
                    key: store_key,
                    pending,
                    fp,
                }));
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

    /// Stores the response of a claimed request for 24 h.
    /// Errors: [`StoreError`] (the response was still sent; a retry would mint again).
    pub async fn complete(&self, claim: Claim, response: StoredResponse) -> Result<(), StoreError> {
        let done = serde_json::to_string(&Entry {
            fp: claim.fp,
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
        self.store.put(&claim.key, &done, REPLAY_TTL_MS).await
    }

    /// Releases a claim whose request failed, so a retry can run.
    pub async fn release(&self, claim: Claim) {
        if let Err(e) = self
            .store
            .delete_if_equals(&claim.key, &claim.pending)
            .await
        {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
    }
}
