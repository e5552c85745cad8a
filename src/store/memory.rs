//! In-process store: mutex-guarded maps with per-entry expiry. Single process only.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::now_ms;

use super::{
    Claim, ClaimedJob, DeadJob, ErasedUser, ErasureStore, Guarded, Guards, KvStore, LinkStore,
    OpenResult, QueuePolicy, ResultWrite, RevokeResult, Settle, Settled, Snapshot, StoreError,
    UserKeys, WindowCount, WindowLimit,
};
use crate::lifecycle::{LinkId, LinkPolicy, LinkRecord, LinkResult, NewLink, OpenStep};

/// Entries are purged lazily: on access, and by a sweep every this many writes.
const SWEEP_EVERY: u64 = 1024;

enum Value {
    Text(String),
    Count(u64),
    /// Written by `put_if_later`: (order, tiebreak, value).
    Later(i64, String, String),
    /// Written by `index_add`: members and their expiry (ms).
    Index(std::collections::BTreeMap<String, i64>),
}

/// One job of a work queue (mirrors the envelope of the Redis scripts).
#[derive(Clone)]
struct Envelope {
    body: String,
    created: i64,
    tries: u32,
    failures: u32,
    token: String,
    reason: String,
}

/// A work queue: due times, jobs, dead letters (dead-lettered at ms).
#[derive(Default)]
struct MemQueue {
    due: Vec<(i64, String)>,
    jobs: HashMap<String, Envelope>,
    dead: Vec<(i64, String)>,
    evict_at: i64,
}

impl MemQueue {
    fn set_due(&mut self, member: &str, at: i64) {
        self.due.retain(|(_, m)| m != member);
        self.due.push((at, member.to_string()));
        self.due.sort();
    }

    fn bury(&mut self, member: &str, now: i64) {
        self.due.retain(|(_, m)| m != member);
        self.dead.retain(|(_, m)| m != member);
        self.dead.push((now, member.to_string()));
    }
}

#[derive(Default)]
struct Inner {
    /// Record and the Unix millisecond at which the entry disappears (the key expiry).
    links: HashMap<LinkId, (LinkRecord, i64)>,
    kv: HashMap<String, (Value, i64)>,
    queues: HashMap<String, MemQueue>,
    writes: u64,
}

impl Inner {
    fn live_link(&mut self, id: &LinkId, now: i64) -> Option<LinkRecord> {
        match self.links.get(id) {
            Some((record, evict_at)) if *evict_at > now => Some(record.clone()),
            Some(_) => {
                self.links.remove(id);
                None
            }
            None => None,
        }
    }

    fn live_kv(&mut self, key: &str, now: i64) -> Option<&mut (Value, i64)> {
        if self
            .kv
            .get(key)
            .is_some_and(|(_, evict_at)| *evict_at <= now)
        {
            self.kv.remove(key);
        }
        self.kv.get_mut(key)
    }

    fn queue(&mut self, name: &str, now: i64) -> &mut MemQueue {
        if self.queues.get(name).is_some_and(|q| q.evict_at <= now) {
            self.queues.remove(name);
        }
        self.queues.entry(name.to_string()).or_default()
    }

    fn wrote(&mut self, now: i64) {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            self.links.retain(|_, (_, evict_at)| *evict_at > now);
            self.kv.retain(|_, (_, evict_at)| *evict_at > now);
        }
    }
}

/// Links kept in this process's memory. Used by `demo` and tests; never shared by replicas.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
    }
}

impl MemoryStore {
    /// Counts one hit against `limit` (the limit step of the guarded writes).
    async fn hit(&self, limit: &WindowLimit) -> Result<Guarded<()>, StoreError> {
        let window = self.incr_window(&limit.key, limit.window_ms).await?;
        if window.count > limit.limit {
            return Ok(Guarded::Limited(window));
        }
        Ok(Guarded::Done((), Some(window)))
    }
}

fn at(now: i64, ttl_ms: u64) -> i64 {
    now.saturating_add(ttl_ms as i64)
}

#[async_trait]
impl LinkStore for MemoryStore {
    async fn create(
        &self,
        id: &LinkId,
        link: &NewLink,
        policy: &LinkPolicy,
        open_now: bool,
    ) -> Result<LinkRecord, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        inner.wrote(now);
        if inner.live_link(id, now).is_some() {
            return Err(StoreError::Conflict);
        }
        let mut record = link.issued_record(policy, now);
        let mut ttl = policy.unopened_ttl_ms.saturating_add(policy.retention_ms);
        if open_now {
            if let OpenStep::Write(new_ttl) = record.apply_open(now, policy.retention_ms, true) {
                ttl = new_ttl;
            }
        }
        inner.links.insert(*id, (record.clone(), at(now, ttl)));
        Ok(record)
    }

    async fn create_guarded(
        &self,
        id: &LinkId,
        link: &NewLink,
        policy: &LinkPolicy,
        open_now: bool,
        guards: &Guards,
    ) -> Result<Guarded<LinkRecord>, StoreError> {
        let window = match &guards.limit {
            Some(limit) => match self.hit(limit).await? {
                Guarded::Limited(w) => return Ok(Guarded::Limited(w)),
                Guarded::Done((), w) => w,
            },
            None => None,
        };
        if let Some(index) = &guards.index {
            self.index_add(&index.key, &id.to_string(), index.ttl_ms, None)
                .await?;
        }
        let record = self.create(id, link, policy, open_now).await?;
        if let Some(live) = &guards.live {
            let previous = self.swap(&live.key, &id.to_string(), live.ttl_ms).await?;
            if let Some(previous) = previous.and_then(|p| p.parse::<LinkId>().ok()) {
                if previous != *id {
                    self.revoke(&previous, Some(&link.user_id), true, live.retention_ms)
                        .await?;
                }
            }
        }
        Ok(Guarded::Done(record, window))
    }

    async fn open_guarded(
        &self,
        id: &LinkId,
        retention_ms: u64,
        confirmed: bool,
        limit: Option<&WindowLimit>,
    ) -> Result<Guarded<OpenResult>, StoreError> {
        let window = match limit {
            Some(limit) => match self.hit(limit).await? {
                Guarded::Limited(w) => return Ok(Guarded::Limited(w)),
                Guarded::Done((), w) => w,
            },
            None => None,
        };
        let opened = self.open(id, retention_ms, confirmed).await?;
        Ok(Guarded::Done(opened, window))
    }

    async fn open(
        &self,
        id: &LinkId,
        retention_ms: u64,
        confirmed: bool,
    ) -> Result<OpenResult, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        let Some(mut record) = inner.live_link(id, now) else {
            return Ok(OpenResult::NotFound);
        };
        Ok(match record.apply_open(now, retention_ms, confirmed) {
            OpenStep::Write(ttl) => {
                inner.links.insert(*id, (record.clone(), at(now, ttl)));
                OpenResult::Opened(Box::new(record))
            }
            OpenStep::Unchanged => OpenResult::Opened(Box::new(record)),
            OpenStep::NeedsConfirmation => OpenResult::NeedsConfirmation,
            OpenStep::Refused(state) => OpenResult::Refused(state),
        })
    }

    async fn revoke(
        &self,
        id: &LinkId,
        owner: Option<&str>,
        only_unopened: bool,
        retention_ms: u64,
    ) -> Result<RevokeResult, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        let Some(mut record) = inner.live_link(id, now) else {
            return Ok(RevokeResult::NotFound);
        };
        if owner.is_some_and(|o| o != record.user_id) {
            return Ok(RevokeResult::NotFound);
        }
        if !record.revoke(now, only_unopened) {
            return Ok(RevokeResult::Unchanged);
        }
        inner.links.insert(*id, (record, at(now, retention_ms)));
        Ok(RevokeResult::Revoked)
    }

    async fn set_result(
        &self,
        id: &LinkId,
        result: &LinkResult,
    ) -> Result<Option<(ResultWrite, LinkRecord)>, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        let Some((record, _)) = inner
            .links
            .get_mut(id)
            .filter(|(_, evict_at)| *evict_at > now)
        else {
            return Ok(None);
        };
        if record.result.is_some() {
            let current = (
                record.verified_at_ms.unwrap_or(0),
                record.auth_id.as_deref().unwrap_or(""),
            );
            let new = (result.verified_at_ms, result.auth_id.as_str());
            if current.1 == new.1 {
                return Ok(Some((ResultWrite::Same, record.clone())));
            }
            if current > new {
                return Ok(Some((ResultWrite::Stale, record.clone())));
            }
        }
        record.result = Some(result.result);
        record.auth_id = Some(result.auth_id.clone());
        record.verified_at_ms = Some(result.verified_at_ms);
        Ok(Some((ResultWrite::Applied, record.clone())))
    }

    async fn get(&self, id: &LinkId) -> Result<Option<Snapshot>, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        Ok(inner.live_link(id, now).map(|record| Snapshot {
            record,
            now_ms: now,
        }))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }

    async fn discard(&self, id: &LinkId) -> Result<(), StoreError> {
        self.lock()?.links.remove(id);
        Ok(())
    }
}

#[async_trait]
impl KvStore for MemoryStore {
    async fn incr_window(&self, key: &str, window_ms: u64) -> Result<WindowCount, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        inner.wrote(now);
        let (value, evict_at) = match inner.live_kv(key, now) {
            Some((Value::Count(n), evict_at)) => {
                *n += 1;
                (*n, *evict_at)
            }
            _ => {
                let evict_at = at(now, window_ms);
                inner
                    .kv
                    .insert(key.to_string(), (Value::Count(1), evict_at));
                (1, evict_at)
            }
        };
        Ok(WindowCount {
            count: value,
            reset_ms: (evict_at - now).max(0) as u64,
        })
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        inner.wrote(now);
        if let Some((Value::Text(existing), _)) = inner.live_kv(key, now) {
            return Ok(Some(existing.clone()));
        }
        inner.kv.insert(
            key.to_string(),
            (Value::Text(value.to_string()), at(now, ttl_ms)),
        );
        Ok(None)
    }

    async fn read(&self, key: &str) -> Result<Option<String>, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        Ok(match inner.live_kv(key, now) {
            Some((Value::Text(v), _)) => Some(v.clone()),
            // As Redis's GET of an INCR counter.
            Some((Value::Count(n), _)) => Some(n.to_string()),
            _ => None,
        })
    }

    async fn put(&self, key: &str, value: &str, ttl_ms: u64) -> Result<(), StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        inner.wrote(now);
        inner.kv.insert(
            key.to_string(),
            (Value::Text(value.to_string()), at(now, ttl_ms)),
        );
        Ok(())
    }

    async fn delete_if_equals(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        if matches!(inner.live_kv(key, now), Some((Value::Text(v), _)) if v == value) {
            inner.kv.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn replace_if_equals(
        &self,
        key: &str,
        expected: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        if !matches!(inner.live_kv(key, now), Some((Value::Text(v), _)) if v == expected) {
            return Ok(false);
        }
        inner.wrote(now);
        inner.kv.insert(
            key.to_string(),
            (Value::Text(value.to_string()), at(now, ttl_ms)),
        );
        Ok(true)
    }

    async fn swap(
        &self,
        key: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        inner.wrote(now);
        let previous = match inner.live_kv(key, now) {
            Some((Value::Text(v), _)) => Some(v.clone()),
            _ => None,
        };
        inner.kv.insert(
            key.to_string(),
            (Value::Text(value.to_string()), at(now, ttl_ms)),
        );
        Ok(previous)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock()?.kv.remove(key);
        Ok(())
    }

    async fn put_if_later(
        &self,
        key: &str,
        order: i64,
        tiebreak: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        inner.wrote(now);
        if let Some((Value::Later(o, t, _), _)) = inner.live_kv(key, now) {
            if (*o, t.as_str()) >= (order, tiebreak) {
                return Ok(false);
            }
        }
        inner.kv.insert(
            key.to_string(),
            (
                Value::Later(order, tiebreak.to_string(), value.to_string()),
                at(now, ttl_ms),
            ),
        );
        Ok(true)
    }

    async fn read_later(&self, key: &str) -> Result<(Option<String>, i64), StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        Ok(match inner.live_kv(key, now) {
            Some((Value::Later(_, _, v), _)) => (Some(v.clone()), now),
            _ => (None, now),
        })
    }

    async fn queue_push(
        &self,
        queue: &str,
        member: &str,
        body: &str,
        marker: Option<&str>,
        marker_ttl_ms: u64,
        policy: &QueuePolicy,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        inner.wrote(now);
        if let Some(m) = marker {
            let key = format!("{{{queue}}}:seen:{m}");
            if inner.live_kv(&key, now).is_some() {
                return Ok(false);
            }
            inner.kv.insert(
                key,
                (Value::Text("1".into()), at(now, marker_ttl_ms.max(1))),
            );
        }
        let q = inner.queue(queue, now);
        if q.jobs.contains_key(member) {
            return Ok(false);
        }
        q.jobs.insert(
            member.to_string(),
            Envelope {
                body: body.to_string(),
                created: now,
                tries: 0,
                failures: 0,
                token: String::new(),
                reason: String::new(),
            },
        );
        q.set_due(member, now);
        q.evict_at = at(now, policy.ttl_ms);
        Ok(true)
    }

    async fn queue_claim(
        &self,
        queue: &str,
        limit: usize,
        policy: &QueuePolicy,
    ) -> Result<Claim, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        let q = inner.queue(queue, now);
        let horizon = now.saturating_sub(policy.dead_ttl_ms as i64);
        let old: Vec<String> = q
            .dead
            .iter()
            .filter(|(t, _)| *t <= horizon)
            .map(|(_, m)| m.clone())
            .collect();
        for m in &old {
            q.jobs.remove(m);
        }
        q.dead.retain(|(t, _)| *t > horizon);
        let due: Vec<String> = q
            .due
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|(_, m)| m.clone())
            .collect();
        let prefix = uuid::Uuid::new_v4().simple().to_string();
        let mut claim = Claim {
            now_ms: now,
            ..Claim::default()
        };
        for (i, m) in due.iter().enumerate() {
            let Some(e) = q.jobs.get_mut(m) else {
                q.due.retain(|(_, x)| x != m);
                continue;
            };
            if e.failures >= policy.max_failures {
                e.token.clear();
                if e.reason.is_empty() {
                    e.reason = "lease_lost".into();
                }
                let reason = e.reason.clone();
                q.bury(m, now);
                claim.buried.push((m.clone(), reason));
                continue;
            }
            e.tries += 1;
            e.failures += 1;
            e.token = format!("{prefix}:{}", i + 1);
            claim.jobs.push(ClaimedJob {
                member: m.clone(),
                body: e.body.clone(),
                token: e.token.clone(),
                tries: e.tries,
                failures: e.failures,
                created_ms: e.created,
            });
            q.set_due(m, at(now, policy.lease_ms));
        }
        if !due.is_empty() {
            q.evict_at = at(now, policy.ttl_ms);
        }
        Ok(claim)
    }

    async fn queue_settle(
        &self,
        queue: &str,
        member: &str,
        token: &str,
        settle: Settle,
        policy: &QueuePolicy,
    ) -> Result<Settled, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        let q = inner.queue(queue, now);
        let Some(e) = q.jobs.get_mut(member).filter(|e| e.token == token) else {
            return Ok(Settled::Lost);
        };
        let mut result = Settled::Ok;
        match settle {
            Settle::Done => {
                q.jobs.remove(member);
                q.due.retain(|(_, m)| m != member);
                return Ok(Settled::Ok);
            }
            Settle::Renew => q.set_due(member, at(now, policy.lease_ms)),
            Settle::Retry { delay_ms } => {
                e.token.clear();
                e.failures = 0;
                q.set_due(member, at(now, delay_ms));
            }
            Settle::Fail { delay_ms, reason } => {
                e.token.clear();
                e.reason = reason.to_string();
                if e.failures >= policy.max_failures {
                    q.bury(member, now);
                    result = Settled::Buried;
                } else {
                    q.set_due(member, at(now, delay_ms));
                }
            }
            Settle::Bury { reason } => {
                e.token.clear();
                e.reason = reason.to_string();
                q.bury(member, now);
                result = Settled::Buried;
            }
        }
        q.evict_at = at(now, policy.ttl_ms);
        Ok(result)
    }

    async fn queue_dead(&self, queue: &str, limit: usize) -> Result<Vec<DeadJob>, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        let q = inner.queue(queue, now);
        Ok(q.dead
            .iter()
            .take(limit)
            .map(|(t, m)| {
                let e = q.jobs.get(m);
                DeadJob {
                    member: m.clone(),
                    dead_at_ms: *t,
                    tries: e.map_or(0, |e| e.tries),
                    reason: e.map(|e| e.reason.clone()).unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn queue_revive(
        &self,
        queue: &str,
        member: &str,
        policy: &QueuePolicy,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        let q = inner.queue(queue, now);
        if !q.dead.iter().any(|(_, m)| m == member) {
            return Ok(false);
        }
        q.dead.retain(|(_, m)| m != member);
        let Some(e) = q.jobs.get_mut(member) else {
            return Ok(false);
        };
        e.failures = 0;
        e.token.clear();
        e.reason.clear();
        e.created = now;
        q.set_due(member, now);
        q.evict_at = at(now, policy.ttl_ms);
        Ok(true)
    }
}

#[async_trait]
impl ErasureStore for MemoryStore {
    async fn index_add(
        &self,
        key: &str,
        member: &str,
        ttl_ms: u64,
        unless_erased: Option<(&str, i64)>,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        inner.wrote(now);
        if let Some((tombstone, before)) = unless_erased {
            if let Some((Value::Text(t), _)) = inner.live_kv(tombstone, now) {
                if t.parse::<i64>().is_ok_and(|t| t >= before) {
                    return Ok(false);
                }
            }
        }
        let mut index = match inner.live_kv(key, now) {
            Some((Value::Index(index), _)) => std::mem::take(index),
            _ => Default::default(),
        };
        let expires = at(now, ttl_ms.max(1));
        index.insert(member.to_string(), expires);
        index.retain(|_, until| *until > now);
        inner
            .kv
            .insert(key.to_string(), (Value::Index(index), expires));
        Ok(true)
    }

    async fn erase_user(
        &self,
        keys: &UserKeys,
        erasure_id: &str,
        extra_auth_ids: &[String],
        ttl_ms: u64,
    ) -> Result<ErasedUser, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        inner.wrote(now);
        if let Some((Value::Text(old), _)) = inner.live_kv(&keys.record, now) {
            return Ok(ErasedUser {
                created: false,
                record: old.clone(),
            });
        }
        let mut members = |key: &str| match inner.live_kv(key, now) {
            Some((Value::Index(index), _)) => index
                .iter()
                .filter(|(_, until)| **until > now)
                .map(|(m, _)| m.clone())
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        let links = members(&keys.links);
        let auth_ids = members(&keys.auth_ids);
        let idempotency = members(&keys.idempotency);
        for key in idempotency
            .iter()
            .chain([&keys.links, &keys.auth_ids, &keys.idempotency])
            .chain(&keys.others)
        {
            inner.kv.remove(key);
        }
        let mut seen = std::collections::HashSet::new();
        let items: Vec<serde_json::Value> = auth_ids
            .iter()
            .chain(extra_auth_ids)
            .filter(|a| !a.is_empty() && seen.insert(a.as_str()))
            .map(|a| serde_json::json!({"a": a, "s": "pending"}))
            .collect();
        let record = serde_json::json!({
            "id": erasure_id, "at": now, "st": "pending", "links": links, "items": items,
        })
        .to_string();
        let evict_at = at(now, ttl_ms.max(1));
        inner.kv.insert(
            keys.tombstone.clone(),
            (Value::Text(now.to_string()), evict_at),
        );
        inner
            .kv
            .insert(keys.record.clone(), (Value::Text(record.clone()), evict_at));
        Ok(ErasedUser {
            created: true,
            record,
        })
    }

    async fn erase_link(&self, id: &LinkId) -> Result<(), StoreError> {
        self.lock()?.links.remove(id);
        Ok(())
    }

    async fn queue_remove(
        &self,
        queue: &str,
        member: &str,
        marker: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        let q = inner.queue(queue, now);
        q.jobs.remove(member);
        q.due.retain(|(_, m)| m != member);
        q.dead.retain(|(_, m)| m != member);
        if let Some(m) = marker {
            inner.kv.remove(&format!("{{{queue}}}:seen:{m}"));
        }
        Ok(())
    }
}
