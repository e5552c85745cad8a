//! Where link records live: the [`LinkStore`] trait and its two backends.
//!
//! * [`memory::MemoryStore`]: one process only; for `demo` and tests.
//! * [`redis::RedisStore`]: production; any number of gateway replicas share one Redis.
//!
//! Both implement the state machine of [`crate::lifecycle::LinkRecord::apply_open`] as one atomic
//! step, and both are held to one contract test suite (`tests/api/store_contract.rs`).

pub mod clock;
pub mod memory;
pub mod redis;
pub mod redis_conn;

use async_trait::async_trait;

use crate::lifecycle::{LinkId, LinkPolicy, LinkRecord, LinkResult, LinkState, NewLink};

/// A short, fixed-length tag for a user id in store keys: the first 16 bytes of SHA-256 of
/// the id, lowercase hex (32 characters). Keeps keys short whatever the id holds.
pub fn user_tag(user_id: &str) -> String {
    crate::digest::short_hex(user_id)
}

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
    /// The server lacks a version or command the gateway needs (start-up check).
    #[error("{0}")]
    Unsupported(String),
}

/// The result of one atomic open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenResult {
    /// Allowed: the record after the open (state `used` or `opened`).
    Opened(Box<LinkRecord>),
    /// The link has the confirm step and this was not the confirming `POST`; nothing changed.
    NeedsConfirmation,
    /// Refused: the link is `Used`, `Expired` or `Revoked`.
    Refused(LinkState),
    /// No record: never minted, or deleted after its retention.
    NotFound,
}

/// The result of one atomic revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeResult {
    /// The record is now `revoked`.
    Revoked,
    /// Nothing changed (already revoked, or not `issued` when only unopened links may go).
    Unchanged,
    /// No record, or not this owner's.
    NotFound,
}

/// A fixed-window counter after one hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    /// Hits in the current window, this one included.
    pub count: u64,
    /// Milliseconds until the window resets.
    pub reset_ms: u64,
}

/// A fixed-window rate limit counted in the same store step as a link write (`INCR` with an
/// expiry of `window_ms` on the window's first hit). A hit over `limit` writes nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowLimit {
    /// The counter's key (unprefixed). In a Redis Cluster it must share its hash tag with the
    /// [`IndexEntry`] written with it (both are tagged by [`user_tag`]).
    pub key: String,
    /// Hits allowed per window.
    pub limit: u64,
    /// Window length, ms.
    pub window_ms: u64,
}

/// A per-user index (issue 19's erasure index) that a create adds the new link's id to, with
/// `ttl_ms` (see [`ErasureStore::index_add`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The index key (unprefixed).
    pub key: String,
    /// How long the member (and the index) lives, ms.
    pub ttl_ms: u64,
}

/// The user's one live link (`links.single_active`): a create makes its id the value at `key`
/// (kept `ttl_ms`) and revokes the link it replaces if that one is the same user's and still
/// `issued` (never opened), keeping it `retention_ms` more (see [`LinkStore::revoke`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLink {
    /// The key holding the user's live link id (unprefixed; the user's hash tag).
    pub key: String,
    /// Its expiry, ms.
    pub ttl_ms: u64,
    /// How long a revoked record stays, ms.
    pub retention_ms: u64,
}

/// What a create does besides writing the record ([`LinkStore::create_guarded`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guards {
    /// Counted first; over it, nothing else is written.
    pub limit: Option<WindowLimit>,
    /// The user's erasure index, written before the record.
    pub index: Option<IndexEntry>,
    /// `links.single_active`, applied after the record.
    pub live: Option<LiveLink>,
}

/// The outcome of a link write guarded by an optional [`WindowLimit`].
#[derive(Debug)]
pub enum Guarded<T> {
    /// Within the limit (or no limit): the write's outcome, and the window after this hit when
    /// one was counted.
    Done(T, Option<WindowCount>),
    /// Over the limit: the window after this hit; nothing else was written.
    Limited(WindowCount),
}

/// What [`LinkStore::set_result`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultWrite {
    /// The result is now the link's (there was none, or an earlier one).
    Applied,
    /// The link already holds this very FaceAuth (same `auth_id`, a re-verification):
    /// nothing changed.
    Same,
    /// The link holds a later FaceAuth: nothing changed.
    Stale,
}

/// How a work queue treats its jobs (see [`crate::queue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePolicy {
    /// A claimed job is leased to one worker this long (renewed while it works).
    pub lease_ms: u64,
    /// A job whose attempts ended this many times in a row in an error, a panic or a lost
    /// lease moves to the dead-letter set.
    pub max_failures: u32,
    /// Expiry of the queue's keys after their last change.
    pub ttl_ms: u64,
    /// Dead-lettered jobs are kept this long.
    pub dead_ttl_ms: u64,
}

/// A job leased to this worker by [`KvStore::queue_claim`]. `Debug` leaves the body out (a
/// verification job holds a link id, which is a capability).
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// The job's id in its queue.
    pub member: String,
    /// What the producer stored.
    pub body: String,
    /// The lease token: settling needs it (a job whose lease passed to another worker cannot
    /// be settled by this one).
    pub token: String,
    /// Attempts so far, this one included.
    pub tries: u32,
    /// Attempts in a row that did not end cleanly, this one included.
    pub failures: u32,
    /// When the job was queued (or revived), store clock, Unix ms.
    pub created_ms: i64,
}

impl std::fmt::Debug for ClaimedJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedJob")
            .field("member", &self.member)
            .field("body", &"[REDACTED]")
            .field("tries", &self.tries)
            .field("failures", &self.failures)
            .field("created_ms", &self.created_ms)
            .finish()
    }
}

/// The answer of one claim.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claim {
    /// The store's clock, Unix ms.
    pub now_ms: i64,
    /// Leased jobs, oldest due first.
    pub jobs: Vec<ClaimedJob>,
    /// Jobs moved to the dead-letter set by this claim, with the reason: their failures
    /// reached the limit without being settled (e.g. the worker died each time), or the
    /// stored entry is unreadable.
    pub buried: Vec<(String, String)>,
}

/// How a worker settles a claimed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Finished: the job is removed.
    Done,
    /// Cleanly not finished (e.g. ARGOS has no final answer yet): due again after `delay_ms`;
    /// the failure count is reset.
    Retry {
        /// Delay, ms.
        delay_ms: u64,
    },
    /// The attempt failed (error, panic, timeout): due again after `delay_ms`, or dead-lettered
    /// when the failures reach [`QueuePolicy::max_failures`].
    Fail {
        /// Delay, ms.
        delay_ms: u64,
        /// Fixed-vocabulary reason, kept with the job.
        reason: &'static str,
    },
    /// Moves the job to the dead-letter set at once (it cannot succeed as it is).
    Bury {
        /// Fixed-vocabulary reason, kept with the job.
        reason: &'static str,
    },
    /// Extends the lease by [`QueuePolicy::lease_ms`] from now.
    Renew,
}

/// The result of [`KvStore::queue_settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Done as asked.
    Ok,
    /// The job is now in the dead-letter set.
    Buried,
    /// This worker no longer holds the lease (it expired and another worker claimed the job,
    /// or the job is gone): nothing changed.
    Lost,
}

/// A dead-lettered job, as listed (without its body, which may hold link ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadJob {
    /// The job's id in its queue.
    pub member: String,
    /// When it was dead-lettered, store clock, Unix ms.
    pub dead_at_ms: i64,
    /// Attempts made.
    pub tries: u32,
    /// Why (fixed vocabulary).
    pub reason: String,
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

    /// [`LinkStore::create`] with its [`Guards`]: the limit is counted first and a refusal
    /// writes nothing else; then the user's index, the record, and the user's live link.
    /// On one Redis (standalone, Sentinel) this is one script; in a Cluster the guard (limit,
    /// index and live link: the user's slot) and the record (another slot) are written
    /// concurrently, or the record first when there is a live-link guard (a link never becomes
    /// live before it exists); a refused or failed guard deletes the record again (nobody ever
    /// got its id), and the replaced live link is revoked as its own step.
    ///
    /// Errors: as [`LinkStore::create`].
    async fn create_guarded(
        &self,
        id: &LinkId,
        link: &NewLink,
        policy: &LinkPolicy,
        open_now: bool,
        guards: &Guards,
    ) -> Result<Guarded<LinkRecord>, StoreError>;

    /// [`LinkStore::open`] behind a rate limit: the limit is counted first (a re-sent open of
    /// this request answers as the first one did, without counting again) and a refusal
    /// changes nothing else. One script on one Redis; in a Cluster the limit is counted
    /// first, then the open (two round trips: an open that a concurrent limit refused would
    /// have to be undone, and another opener could see the link `used` meanwhile).
    ///
    /// Errors: as [`LinkStore::open`].
    async fn open_guarded(
        &self,
        id: &LinkId,
        retention_ms: u64,
        confirmed: bool,
        limit: Option<&WindowLimit>,
    ) -> Result<Guarded<OpenResult>, StoreError>;

    /// Atomically checks and applies one open (see [`LinkRecord::apply_open`]).
    /// `retention_ms` is how long a used or expired record stays afterwards; `confirmed` is
    /// true for the confirm page's `POST`.
    async fn open(
        &self,
        id: &LinkId,
        retention_ms: u64,
        confirmed: bool,
    ) -> Result<OpenResult, StoreError>;

    /// Atomically revokes a link (see [`LinkRecord::revoke`]); `owner`, when given, must match
    /// the record's user id (else [`RevokeResult::NotFound`]). The record is kept
    /// `retention_ms` more.
    async fn revoke(
        &self,
        id: &LinkId,
        owner: Option<&str>,
        only_unopened: bool,
        retention_ms: u64,
    ) -> Result<RevokeResult, StoreError>;

    /// Attaches a pull-verified result to a link, keeping its key expiry, under the ordering
    /// rule: the result with the later (`verified_at`, `auth_id`) wins, so the order of calls
    /// does not matter; the first result written for an `auth_id` stays (re-verification
    /// changes nothing). Returns what happened and the record as stored afterwards, or `None`
    /// if the link no longer exists.
    async fn set_result(
        &self,
        id: &LinkId,
        result: &LinkResult,
    ) -> Result<Option<(ResultWrite, LinkRecord)>, StoreError>;

    /// Reads a record without changing it (status, `HEAD`). `None` if there is none.
    async fn get(&self, id: &LinkId) -> Result<Option<Snapshot>, StoreError>;

    /// Checks that the store answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Deletes the record of a link that was never handed out (a mint that failed after its
    /// create, e.g. in the `single_active` step), so that a failed mint leaves no record.
    async fn discard(&self, id: &LinkId) -> Result<(), StoreError>;

    /// The store's settings that can lose or resurrect link state (memory policy, persistence,
    /// replication), read from the server now. A store that keeps nothing across restarts and
    /// never evicts (like the memory backend) has none.
    async fn durability_risks(&self) -> Result<Vec<StoreRisk>, StoreError> {
        Ok(Vec::new())
    }
}

/// The names `store.accept_risks` accepts: each names a start-up check of what Redis keeps.
pub const STORE_RISKS: [&str; 5] = [
    "eviction",
    "rdb-snapshots",
    "aof-fsync-no",
    "async-replication",
    "unverifiable",
];

/// A store setting that can make link state vanish or come back (start-up check, `/readyz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRisk {
    /// Stable name, as in `store.accept_risks` (see [`STORE_RISKS`]).
    pub name: &'static str,
    /// The server setting and its value, e.g. `maxmemory-policy allkeys-lru`.
    pub setting: String,
    /// What can go wrong.
    pub consequence: &'static str,
    /// How to fix it.
    pub fix: &'static str,
}

impl std::fmt::Display for StoreRisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Redis setting {}: {}; fix: {} (or accept it with store.accept_risks = [\"{}\"])",
            self.setting, self.consequence, self.fix, self.name
        )
    }
}

/// Small atomic primitives for rate limits, idempotency and per-user link indexes. Keys are
/// given without the store's prefix; every key written gets an expiry.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// Counts one hit in a fixed window of `window_ms` that starts at the first hit.
    async fn incr_window(&self, key: &str, window_ms: u64) -> Result<WindowCount, StoreError>;

    /// Writes `value` for `ttl_ms` unless the key exists; returns the existing value if it does.
    async fn put_if_absent(
        &self,
        key: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<Option<String>, StoreError>;

    /// Reads a value.
    async fn read(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Overwrites `key` with `value` for `ttl_ms`.
    async fn put(&self, key: &str, value: &str, ttl_ms: u64) -> Result<(), StoreError>;

    /// Deletes `key` if it still holds `value`; returns whether it did.
    async fn delete_if_equals(&self, key: &str, value: &str) -> Result<bool, StoreError>;

    /// Overwrites `key` with `value` for `ttl_ms` only if it still holds `expected` (a fenced
    /// write: only the owner of a claim completes or renews it); returns whether it did.
    async fn replace_if_equals(
        &self,
        key: &str,
        expected: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Writes `value` for `ttl_ms` and returns the value it replaced, in one step.
    async fn swap(&self, key: &str, value: &str, ttl_ms: u64)
        -> Result<Option<String>, StoreError>;

    /// Deletes `key`.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Writes `value` for `ttl_ms` unless the key holds a value with a later or equal
    /// (`order`, `tiebreak`); returns whether it wrote. One atomic step.
    async fn put_if_later(
        &self,
        key: &str,
        order: i64,
        tiebreak: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Reads a value written by [`KvStore::put_if_later`], with the store's clock (Unix ms).
    async fn read_later(&self, key: &str) -> Result<(Option<String>, i64), StoreError>;

    /// Work queues ([`crate::queue`]): queues job `member` with `body`, due now, unless it is
    /// queued already; with `marker`, also unless that marker was set within `marker_ttl_ms`
    /// (and sets it). One atomic step; returns whether the job was added.
    #[allow(clippy::too_many_arguments)]
    async fn queue_push(
        &self,
        queue: &str,
        member: &str,
        body: &str,
        marker: Option<&str>,
        marker_ttl_ms: u64,
        policy: &QueuePolicy,
    ) -> Result<bool, StoreError>;

    /// Leases up to `limit` due jobs of `queue` to the caller (each job to one caller at a
    /// time) and dead-letters due jobs whose failures reached the limit. One atomic step.
    async fn queue_claim(
        &self,
        queue: &str,
        limit: usize,
        policy: &QueuePolicy,
    ) -> Result<Claim, StoreError>;

    /// Settles a claimed job, only if `token` still holds its lease. One atomic step.
    async fn queue_settle(
        &self,
        queue: &str,
        member: &str,
        token: &str,
        settle: Settle,
        policy: &QueuePolicy,
    ) -> Result<Settled, StoreError>;

    /// Up to `limit` dead-lettered jobs of `queue`, oldest first.
    async fn queue_dead(&self, queue: &str, limit: usize) -> Result<Vec<DeadJob>, StoreError>;

    /// Moves a dead-lettered job back into `queue`, due now, with its failures and its age
    /// reset; returns whether it was dead-lettered.
    async fn queue_revive(
        &self,
        queue: &str,
        member: &str,
        policy: &QueuePolicy,
    ) -> Result<bool, StoreError>;
}

/// The keys of one user that an erasure deletes in one atomic step. All of them carry the
/// user's hash tag (`{<user tag>}`), so the step runs on one slot of a cluster. Keys are given
/// without the store's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserKeys {
    /// Index of the user's link ids (the link keys themselves live in other slots).
    pub links: String,
    /// Index of the ARGOS authentication ids seen for the user.
    pub auth_ids: String,
    /// Index of the user's idempotency record keys (unprefixed); the records are deleted too.
    pub idempotency: String,
    /// The erasure tombstone: the store's clock at the erasure, Unix ms.
    pub tombstone: String,
    /// The erasure record written by this erasure.
    pub record: String,
    /// Every other key of the user, deleted as they are (step-up, `sid` mapping and cache,
    /// live link, mint counter).
    pub others: Vec<String>,
}

/// The store's risky settings, split by `store.accept_risks`.
#[derive(Debug, Clone, Default)]
pub struct RiskAssessment {
    /// Present and not accepted: the gateway refuses to start, `/readyz` answers `503`.
    pub refused: Vec<StoreRisk>,
    /// Present and accepted by the operator.
    pub accepted: Vec<StoreRisk>,
}

/// Reads the store's risky settings and splits them by `accept`; also sets the
/// `faceauth_store_risk` metric.
///
/// Errors: [`StoreError::Unavailable`] if the store does not answer.
pub async fn assess_risks(
    store: &dyn LinkStore,
    accept: &[String],
) -> Result<RiskAssessment, StoreError> {
    let risks = store.durability_risks().await?;
    let gauge = &crate::metrics::METRICS.store_risks;
    for name in STORE_RISKS {
        let present = risks.iter().any(|r| r.name == name);
        let accepted = accept.iter().any(|a| a == name);
        gauge
            .with_label_values(&[name, if accepted { "true" } else { "false" }])
            .set(i64::from(present));
    }
    let (accepted, refused) = risks
        .into_iter()
        .partition(|r| accept.iter().any(|a| a == r.name));
    Ok(RiskAssessment { refused, accepted })
}

/// What [`ErasureStore::erase_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedUser {
    /// `false`: the record already existed (a retry of the same erasure); nothing changed.
    pub created: bool,
    /// The erasure record as stored (JSON, see `crate::erasure::Record`).
    pub record: String,
}

/// Per-user indexes and the atomic steps of an erasure (see `crate::erasure`).
#[async_trait]
pub trait ErasureStore: Send + Sync + 'static {
    /// Adds `member` to the index `key` (a sorted set of members scored by their own expiry,
    /// `ttl_ms` from now), drops expired members and sets the key's expiry to `ttl_ms`, in one
    /// step. With `unless_erased = (tombstone key, t)`, does nothing and returns `false` when
    /// the tombstone holds an erasure time at or after `t`.
    async fn index_add(
        &self,
        key: &str,
        member: &str,
        ttl_ms: u64,
        unless_erased: Option<(&str, i64)>,
    ) -> Result<bool, StoreError>;

    /// One atomic step on the user's slot: unless `keys.record` exists already (then it is
    /// returned unchanged), reads the link and authentication-id sets, deletes every key in
    /// `keys` (the idempotency records the index names included), sets the tombstone to the
    /// store's clock and writes the erasure record `erasure_id` (pending, with the unexpired
    /// link ids, and the unexpired authentication ids seen plus `extra_auth_ids`,
    /// deduplicated), both for `ttl_ms`.
    async fn erase_user(
        &self,
        keys: &UserKeys,
        erasure_id: &str,
        extra_auth_ids: &[String],
        ttl_ms: u64,
    ) -> Result<ErasedUser, StoreError>;

    /// Deletes a link record, whatever its state.
    async fn erase_link(&self, id: &LinkId) -> Result<(), StoreError>;

    /// Removes job `member` from work queue `queue` (due, leased or dead-lettered), and its
    /// redelivery marker if given. One atomic step.
    async fn queue_remove(
        &self,
        queue: &str,
        member: &str,
        marker: Option<&str>,
    ) -> Result<(), StoreError>;
}

/// Everything the gateway keeps: links plus the small primitives.
pub trait Store: LinkStore + KvStore + ErasureStore {}

impl<T: LinkStore + KvStore + ErasureStore> Store for T {}
