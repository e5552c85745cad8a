//! Where link records live: the [`LinkStore`] trait and its two backends.
//!
//! * [`memory::MemoryStore`]: one process only; for `demo` and tests.
//! * [`redis::RedisStore`]: production; any number of gateway replicas share one Redis.
//!
//! Both implement the state machine of [`crate::links::LinkRecord::apply_open`] as one atomic
//! step, and both are held to one contract test suite (`tests/api/store_contract.rs`).

pub mod memory;
pub mod redis;

use async_trait::async_trait;

use crate::links::{LinkId, LinkPolicy, LinkRecord, LinkState, NewLink};

/// Errors from a store. None of them carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer (connection refused, timeout, failover, Redis error).
    #[error("link store unavailable: {0}")]
    Unavailable(String),
    /// A record with this id already exists (a 122-bit collision: practically never).
    #[error("a link with this id already exists")]
    Conflict,
    /// A stored record could not be read back (corrupt or written by an incompatible version).
    #[error("stored link record is unreadable: {0}")]
    Corrupt(String),
}

/// The result of one atomic open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenResult {
    /// Allowed: the record after the open (state `used` or `opened`).
    Opened(LinkRecord),
    /// Refused: the link is `Used` or `Expired`.
    Refused(LinkState),
    /// No record: never minted, or deleted after its retention.
    NotFound,
}

/// A record read with the store's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The record as stored.
    pub record: LinkRecord,
    /// The store's clock at the read, Unix milliseconds.
    pub now_ms: i64,
}

/// Storage of link records. Every write sets a key expiry; every state change is one atomic
/// step, so a count-based link is opened at most once whatever the concurrency or the number of
/// gateway replicas.
#[async_trait]
pub trait LinkStore: Send + Sync + 'static {
    /// Creates the record of a new link (`issued`, expiring after `policy.unopened_ttl_ms`,
    /// kept `policy.retention_ms` more as a tombstone) with one `SET NX` and expiry. With
    /// `open_now`, the first open is applied in the same write (for `face-auth/start`).
    ///
    /// Returns the stored record (times from the store's clock).
    /// Errors: [`StoreError::Conflict`] if the id exists, [`StoreError::Unavailable`].
    async fn create(
        &self,
        id: &LinkId,
        link: &NewLink,
        policy: &LinkPolicy,
        open_now: bool,
    ) -> Result<LinkRecord, StoreError>;

    /// Atomically checks and applies one open (see [`LinkRecord::apply_open`]).
    /// `retention_ms` is how long a used or expired record stays afterwards.
    async fn open(&self, id: &LinkId, retention_ms: u64) -> Result<OpenResult, StoreError>;

    /// Reads a record without changing it (status, `HEAD`). `None` if there is none.
    async fn get(&self, id: &LinkId) -> Result<Option<Snapshot>, StoreError>;

    /// Checks that the store answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;
}
