//! Erasure of a user's FaceAuth data, at ARGOS and in the gateway (issue 19). The gateway holds
//! the Add-on key, so it is the one that can call `DELETE /v3/faceauth?authId=…` (reference
//! §3.5: one record per call; ARGOS deletes the selfie and personal data and keeps `auth_id`,
//! `auth_status` and the time).
//!
//! * **Indexes.** What the gateway writes about a user is found through per-user indexes (sorted
//!   sets scored by each member's expiry) under the user's hash tag: `ux:{<tag>}:links` (link
//!   ids, written before each link is created, kept as long as a link record can live),
//!   `ux:{<tag>}:auths` (ARGOS authentication ids seen for the user, ids only, each kept
//!   `erasure.auth_ids_ttl_secs` after it was last seen) and `ux:{<tag>}:idem` (idempotency
//!   records, 24 h). Every write drops expired members and renews the key's expiry.
//! * **Start** ([`Erasures::start`]): the job is queued first (work queue `erasure`), then one
//!   atomic script on the user's slot reads the indexes, deletes every key of the user (step-up
//!   record, `sid` mapping and cache, live link, mint counter, idempotency records, the
//!   indexes), writes a tombstone (`erased:{<tag>}`, the store's clock) and the erasure record
//!   (`erasure:{<tag>}:<id>`, with the link ids and the authentication ids to delete). The link
//!   records (other slots) are deleted right after. A request that fails before the script
//!   leaves a queued job that finds no record and ends; with `Idempotency-Key` the erasure id
//!   is derived from the user and the key, so a retry answers the same erasure.
//! * **Job** ([`Erasures::run_due`]): deletes the link records again (idempotent) and the
//!   user's queued verification and callback jobs, then calls ARGOS for every pending
//!   authentication id, recording `deleted`, `not_found` or `failed` (ARGOS's error code).
//!   ARGOS unavailable (or a failure ARGOS names as its own) is retried with backoff until
//!   `erasure.deadline_secs`; then the id is `failed`. When every id is final, the record
//!   becomes `completed` (or `failed`) and an optional signed `user.erased` callback is queued.
//! * **Late results** ([`note_auth_id`]): a FaceAuth for a link created at or before the
//!   user's tombstone is not attached (logged, counted as `erased`).
//!
//! Logs and metrics carry the erasure id and counts, never the user id.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

use crate::argos::client::{ArgosClient, ArgosError, Deletion};
use crate::callbacks::Callbacks;
use crate::digest::short_hex;
use crate::lifecycle::{LinkId, LinkPolicy};
use crate::queue::{Handler, JobLimits, QueueName, Step, WorkQueue};
use crate::store::{user_tag, ClaimedJob, Store, StoreError, UserKeys};

/// How erasures are kept and retried (`[erasure]`), ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErasurePolicy {
    /// How long an erasure record and the user's tombstone are kept.
    pub record_ttl_ms: u64,
    /// ARGOS deletions are retried this long after the request.
    pub deadline_ms: u64,
    /// Send a signed `user.erased` callback when an erasure is done.
    pub callback: bool,
}

/// Most authentication ids a request body may list.
pub const MAX_EXTRA_AUTH_IDS: usize = 100;
/// Longest authentication id accepted in a request body, bytes.
pub const MAX_AUTH_ID_BYTES: usize = 256;
/// A job that finds no record this long after it was queued belongs to a request that failed.
const NO_RECORD_GRACE_MS: i64 = 60_000;

/// The status of one authentication id in an erasure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Not deleted yet (queued, or ARGOS did not answer yet).
    Pending,
    /// ARGOS deleted the selfie and personal data.
    Deleted,
    /// ARGOS does not know the record.
    NotFound,
    /// ARGOS refused (see the error code), or did not answer before `erasure.deadline_secs`.
    Failed,
}

impl ItemStatus {
    fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Pending => "pending",
            ItemStatus::Deleted => "deleted",
            ItemStatus::NotFound => "not_found",
            ItemStatus::Failed => "failed",
        }
    }
}

/// The state of an erasure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErasureState {
    /// The gateway's records are gone; ARGOS deletions are still running.
    Pending,
    /// Every authentication id is `deleted` or `not_found`.
    Completed,
    /// Done, but at least one authentication id is `failed`.
    Failed,
}

impl ErasureState {
    /// The label / JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureState::Pending => "pending",
            ErasureState::Completed => "completed",
            ErasureState::Failed => "failed",
        }
    }
}

/// One authentication id of an erasure (stored with short names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// ARGOS authentication id.
    #[serde(rename = "a")]
    pub auth_id: String,
    /// Where its deletion stands.
    #[serde(rename = "s")]
    pub status: ItemStatus,
    /// ARGOS's error code of the last refusal (`failed`, or a retried failure).
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// The erasure record, `erasure:{<user tag>}:<id>` (written first by the store's erase step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The erasure id.
    pub id: String,
    /// When the gateway's records were erased (store clock, Unix ms).
    pub at: i64,
    /// The state.
    #[serde(rename = "st")]
    pub state: ErasureState,
    /// Link records still to delete (cleared by the job).
    #[serde(default)]
    pub links: Vec<String>,
    /// Link records the erasure deleted.
    #[serde(rename = "nl", default)]
    pub links_erased: u64,
    /// The gateway's part (links, queued jobs) is done.
    #[serde(rename = "g", default)]
    pub gateway_done: bool,
    /// The authentication ids deleted at ARGOS.
    #[serde(default)]
    pub items: Vec<Item>,
    /// When the erasure finished (store clock, Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<i64>,
}

/// Authentication ids per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    /// `deleted`.
    pub deleted: u64,
    /// `not_found`.
    pub not_found: u64,
    /// `failed`.
    pub failed: u64,
    /// `pending`.
    pub pending: u64,
}

impl Record {
    /// Authentication ids per status.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for item in &self.items {
            match item.status {
                ItemStatus::Deleted => c.deleted += 1,
                ItemStatus::NotFound => c.not_found += 1,
                ItemStatus::Failed => c.failed += 1,
                ItemStatus::Pending => c.pending += 1,
            }
        }
        c
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    /// Erasure id.
    id: String,
    /// User tag.
    t: String,
}

/// An erasure just started (or found again by its `Idempotency-Key`).
#[derive(Debug, Clone)]
pub struct Started {
    /// The record as stored.
    pub record: Record,
    /// `false`: this was a retry of an earlier request; nothing changed.
    pub created: bool,
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// The index of a user's link ids.
pub fn links_index_key(user_id: &str) -> String {
    format!("ux:{{{}}}:links", user_tag(user_id))
}

/// The index of the ARGOS authentication ids seen for a user.
pub fn auth_ids_key(user_id: &str) -> String {
    format!("ux:{{{}}}:auths", user_tag(user_id))
}

/// The user's erasure tombstone.
pub fn tombstone_key(user_id: &str) -> String {
    format!("erased:{{{}}}", user_tag(user_id))
}

/// The index of the idempotency records of the user an idempotency store key
/// (`idem:{<tag>}:<hash>`) belongs to.
pub fn idempotency_index_key(store_key: &str) -> Option<String> {
    let (_, rest) = store_key.split_once('{')?;
    let (tag, _) = rest.split_once('}')?;
    Some(format!("ux:{{{tag}}}:idem"))
}

fn record_key(tag: &str, id: &str) -> String {
    format!("erasure:{{{tag}}}:{id}")
}

/// The pointer from an erasure id to its user's tag (the record lives on the user's slot).
fn pointer_key(id: &str) -> String {
    format!("erasure:{{{id}}}")
}

/// Every key of the user an erasure deletes in one step. The names mirror the modules that
/// write them (`results`, `sid`, `links::service`, `limits`, `idempotency`).
fn user_keys(tag: &str, id: &str) -> UserKeys {
    UserKeys {
        links: format!("ux:{{{tag}}}:links"),
        auth_ids: format!("ux:{{{tag}}}:auths"),
        idempotency: format!("ux:{{{tag}}}:idem"),
        tombstone: format!("erased:{{{tag}}}"),
        record: record_key(tag, id),
        others: vec![
            format!("stepup:{{{tag}}}"),
            format!("sid:{{{tag}}}"),
            format!("sidc:{{{tag}}}"),
            format!("u:{{{tag}}}:live"),
            format!("rl:m:{{{tag}}}"),
        ],
    }
}

/// An erasure id: `er_` and 32 hex characters.
pub fn valid_id(id: &str) -> bool {
    id.len() == 35
        && id.starts_with("er_")
        && id[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// How long a user's link-id index must live: the longest a link record can (unopened TTL or
/// window, plus retention).
pub fn link_index_ttl_ms(policy: &LinkPolicy) -> u64 {
    policy
        .unopened_ttl_ms
        .max(policy.window_ms)
        .saturating_add(policy.retention_ms)
        .saturating_add(60_000)
}

/// Records that the gateway saw authentication id `auth_id` for `user_id`'s link created at
/// `link_created_ms`, unless the user was erased since: then returns `false` and the result
/// must not be attached. Errors: [`StoreError`].
pub async fn note_auth_id(
    store: &dyn Store,
    user_id: &str,
    auth_id: &str,
    link_created_ms: i64,
    ttl_ms: u64,
) -> Result<bool, StoreError> {
    store
        .index_add(
            &auth_ids_key(user_id),
            auth_id,
            ttl_ms,
            Some((&tombstone_key(user_id), link_created_ms)),
        )
        .await
}

/// Erasures over a store, the ARGOS client and (optionally) callbacks.
#[derive(Clone)]
pub struct Erasures {
    store: Arc<dyn Store>,
    argos: ArgosClient,
    callbacks: Option<Callbacks>,
    queue: WorkQueue,
    record_ttl_ms: u64,
    deadline_ms: i64,
}

impl Erasures {
    /// Erasures under `policy`; leases and dead letters from `jobs`.
    pub fn new(
        store: Arc<dyn Store>,
        argos: ArgosClient,
        callbacks: Option<Callbacks>,
        policy: ErasurePolicy,
        jobs: JobLimits,
    ) -> Self {
        let deadline_ms = policy.deadline_ms;
        Erasures {
            queue: WorkQueue::new(store.clone(), QueueName::Erasure, deadline_ms, jobs),
            store,
            argos,
            callbacks: callbacks.filter(|_| policy.callback),
            record_ttl_ms: policy.record_ttl_ms,
            deadline_ms: i64::try_from(deadline_ms).unwrap_or(i64::MAX),
        }
    }

    /// Erases `user_id`'s records in the gateway and queues the ARGOS deletions of every
    /// authentication id seen for the user plus `extra_auth_ids`. With `idempotency_key`, the
    /// same user and key give the same erasure (a retry changes nothing).
    /// Errors: [`StoreError`] (nothing was erased; a queued job ends by itself).
    pub async fn start(
        &self,
        user_id: &str,
        extra_auth_ids: &[String],
        idempotency_key: Option<&str>,
    ) -> Result<Started, StoreError> {
        let tag = user_tag(user_id);
        let id = match idempotency_key {
            Some(key) => format!("er_{}", short_hex(format!("{tag}\n{key}"))),
            None => format!("er_{}", uuid::Uuid::new_v4().simple()),
        };
        let job = serde_json::to_string(&Job {
            id: id.clone(),
            t: tag.clone(),
        })
        .map_err(corrupt)?;
        // The job first: whatever fails later, nothing the script erases is left without one.
        self.queue.push(&id, &job, None).await?;
        self.store
            .put(&pointer_key(&id), &tag, self.record_ttl_ms)
            .await?;
        let erased = self
            .store
            .erase_user(
                &user_keys(&tag, &id),
                &id,
                extra_auth_ids,
                self.record_ttl_ms,
            )
            .await?;
        let record: Record = serde_json::from_str(&erased.record).map_err(corrupt)?;
        if erased.created {
            // So that the links answer 404 at once; the job deletes them again if this fails.
            for link in record.links.iter().filter_map(|l| l.parse::<LinkId>().ok()) {
                if let Err(e) = self.store.erase_link(&link).await {
                    tracing::warn!(erasure = id.as_str(), error = %e, "link not erased yet; the erasure job retries");
                }
            }
            tracing::info!(
                erasure = id.as_str(),
                links = record.links.len(),
                auth_ids = record.items.len(),
                "erasure started: the user's records in the gateway are erased"
            );
            count("started");
        } else {
            tracing::info!(
                erasure = id.as_str(),
                "erasure requested again: same erasure"
            );
        }
        Ok(Started {
            record,
            created: erased.created,
        })
    }

    /// The record of erasure `id`, if it is kept. Errors: [`StoreError`].
    pub async fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let Some(tag) = self.store.read(&pointer_key(id)).await? else {
            return Ok(None);
        };
        match self.store.read(&record_key(&tag, id)).await? {
            Some(json) => Ok(Some(serde_json::from_str(&json).map_err(corrupt)?)),
            None => Ok(None),
        }
    }

    /// One round of the erasure worker; returns how many jobs it looked at.
    /// Errors: [`StoreError`].
    pub async fn run_due(&self) -> Result<usize, StoreError> {
        self.queue.run_round(self).await
    }

    async fn save(&self, tag: &str, record: &Record) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(corrupt)?;
        self.store
            .put(&record_key(tag, &record.id), &json, self.record_ttl_ms)
            .await
    }

    async fn work(&self, job: &ClaimedJob, now_ms: i64) -> Result<Step, StoreError> {
        let started = Instant::now();
        let (id, tag, mut record) = match self.load(job, now_ms).await? {
            Ok(loaded) => loaded,
            Err(step) => return Ok(step),
        };
        if !record.gateway_done {
            self.erase_in_gateway(&tag, &mut record).await?;
        }
        let (retry, out_of_time) = self
            .delete_at_argos(&id, &tag, &mut record, started, now_ms)
            .await?;
        if out_of_time && !retry {
            return Ok(Step::Retry(100));
        }
        if retry {
            let delay = (1_000u64 << job.tries.min(12)).min(600_000);
            return Ok(Step::Retry(delay));
        }
        self.finish(&id, &tag, record, now_ms).await?;
        Ok(Step::Done)
    }

    /// The job's erasure id, user tag and pending record; or the step to take when there is
    /// nothing (more) to work on.
    async fn load(
        &self,
        job: &ClaimedJob,
        now_ms: i64,
    ) -> Result<Result<(String, String, Record), Step>, StoreError> {
        let Ok(Job { id, t: tag }) = serde_json::from_str::<Job>(&job.body) else {
            tracing::error!("unreadable erasure job");
            return Ok(Err(Step::Bury("unreadable")));
        };
        let Some(json) = self.store.read(&record_key(&tag, &id)).await? else {
            if now_ms.saturating_sub(job.created_ms) < NO_RECORD_GRACE_MS {
                return Ok(Err(Step::Retry(1_000)));
            }
            tracing::info!(
                erasure = id.as_str(),
                "erasure request did not complete: nothing to do"
            );
            return Ok(Err(Step::Done));
        };
        let Ok(record) = serde_json::from_str::<Record>(&json) else {
            tracing::error!(erasure = id.as_str(), "unreadable erasure record");
            return Ok(Err(Step::Bury("unreadable")));
        };
        if record.state != ErasureState::Pending {
            return Ok(Err(Step::Done));
        }
        Ok(Ok((id, tag, record)))
    }

    /// Erases the user's links and their queued verifications and callbacks, once.
    async fn erase_in_gateway(&self, tag: &str, record: &mut Record) -> Result<(), StoreError> {
        for link in record.links.iter().filter_map(|l| l.parse::<LinkId>().ok()) {
            self.store.erase_link(&link).await?;
        }
        for item in &record.items {
            self.store
                .queue_remove(
                    QueueName::Verify.key(),
                    &item.auth_id,
                    Some(&short_hex(&item.auth_id)),
                )
                .await?;
            let event = format!("evt_{}", short_hex(&item.auth_id));
            self.store
                .queue_remove(QueueName::Callbacks.key(), &event, Some(&event))
                .await?;
        }
        record.links_erased = record.links.len() as u64;
        record.links.clear();
        record.gateway_done = true;
        self.save(tag, record).await
    }

    /// Deletes the pending items at ARGOS within half the lease, saving after each; returns
    /// (some item is to be retried, the time ran out).
    async fn delete_at_argos(
        &self,
        id: &str,
        tag: &str,
        record: &mut Record,
        started: Instant,
        now_ms: i64,
    ) -> Result<(bool, bool), StoreError> {
        let past_deadline = now_ms.saturating_sub(record.at) > self.deadline_ms;
        let budget = self.queue.lease() / 2;
        let mut retry = false;
        for i in 0..record.items.len() {
            if record.items[i].status != ItemStatus::Pending {
                continue;
            }
            if started.elapsed() > budget {
                // Go on in a fresh attempt rather than outlive the lease.
                return Ok((retry, true));
            }
            let outcome = self.argos.delete_faceauth(&record.items[i].auth_id).await;
            let (status, code) = deletion_status(id, outcome, past_deadline);
            let item = &mut record.items[i];
            item.status = status;
            item.code = code;
            if status == ItemStatus::Pending {
                retry = true;
                count_deletion("retry");
            } else {
                count_deletion(status.as_str());
            }
            self.save(tag, record).await?;
        }
        Ok((retry, false))
    }

    /// Completes the erasure: its final state, the `user.erased` callback, the log line.
    async fn finish(
        &self,
        id: &str,
        tag: &str,
        mut record: Record,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let counts = record.counts();
        record.state = if counts.failed > 0 {
            ErasureState::Failed
        } else {
            ErasureState::Completed
        };
        record.done = Some(now_ms);
        if let Some(callbacks) = &self.callbacks {
            let event = serde_json::json!({
                "id": format!("evt_{}", short_hex(id)),
                "type": "user.erased",
                "created": now_ms / 1000,
                "erasure_id": id,
                "state": record.state.as_str(),
                "deleted": counts.deleted,
                "not_found": counts.not_found,
                "failed": counts.failed,
            });
            callbacks
                .enqueue_event(&format!("evt_{}", short_hex(id)), &event.to_string())
                .await?;
        }
        self.save(tag, &record).await?;
        tracing::info!(
            erasure = id,
            state = record.state.as_str(),
            links = record.links_erased,
            deleted = counts.deleted,
            not_found = counts.not_found,
            failed = counts.failed,
            "erasure finished"
        );
        count(record.state.as_str());
        Ok(())
    }
}

/// An item's status and error code after one ARGOS deletion attempt.
fn deletion_status(
    id: &str,
    outcome: Result<Deletion, ArgosError>,
    past_deadline: bool,
) -> (ItemStatus, Option<String>) {
    match outcome {
        Ok(Deletion::Deleted) => (ItemStatus::Deleted, None),
        Ok(Deletion::NotFound) => (ItemStatus::NotFound, None),
        Ok(Deletion::Failed { code, retryable }) if retryable && !past_deadline => {
            (ItemStatus::Pending, Some(code))
        }
        Ok(Deletion::Failed { code, .. }) => (ItemStatus::Failed, Some(code)),
        Err(ArgosError::NoKey(_)) => (ItemStatus::Failed, Some("no_api_key".into())),
        Err(e) if past_deadline => {
            tracing::warn!(erasure = id, error = %e, "ARGOS deletion given up at erasure.deadline_secs");
            (ItemStatus::Failed, Some("unavailable".into()))
        }
        Err(e) => {
            tracing::info!(erasure = id, error = %e, "ARGOS deletion retried later");
            (ItemStatus::Pending, Some("unavailable".into()))
        }
    }
}

#[async_trait::async_trait]
impl Handler for Erasures {
    async fn handle(&self, job: &ClaimedJob, now_ms: i64) -> Result<Step, StoreError> {
        self.work(job, now_ms).await
    }
}

fn count(outcome: &str) {
    crate::metrics::METRICS
        .erasures
        .with_label_values(&[outcome])
        .inc();
}

fn count_deletion(status: &str) {
    crate::metrics::METRICS
        .erasure_deletions
        .with_label_values(&[status])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_keys() {
        assert!(valid_id("er_0123456789abcdef0123456789abcdef"));
        assert!(!valid_id("er_0123456789ABCDEF0123456789abcdef"));
        assert!(!valid_id("er_0123"));
        assert_eq!(
            idempotency_index_key("idem:{abc}:123").as_deref(),
            Some("ux:{abc}:idem")
        );
        let keys = user_keys("abc", "er_1");
        for key in [&keys.links, &keys.auth_ids, &keys.tombstone, &keys.record]
            .into_iter()
            .chain(&keys.others)
        {
            assert!(key.contains("{abc}"), "{key}: one slot");
        }
    }

    #[test]
    fn records_written_by_the_store_script_parse() {
        let json = r#"{"id":"er_1","at":1700000000000,"st":"pending","links":[],"items":[{"a":"x","s":"pending"}]}"#;
        let r: Record = serde_json::from_str(json).unwrap();
        assert_eq!(r.items[0].status, ItemStatus::Pending);
        assert_eq!(r.counts().pending, 1);
        assert!(!r.gateway_done);
    }
}
