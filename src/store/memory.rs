//! In-process store: mutex-guarded maps with per-entry expiry. Single process only.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{KvStore, LinkStore, OpenResult, RevokeResult, Snapshot, StoreError, WindowCount};
use crate::links::{LinkId, LinkPolicy, LinkRecord, LinkResult, NewLink, OpenStep};

/// Entries are purged lazily: on access, and by a sweep every this many writes.
const SWEEP_EVERY: u64 = 1024;

enum Value {
    Text(String),
    Count(u64),
    /// Work queue: (due at ms, member), kept sorted.
    Queue(Vec<(i64, String)>),
}

#[derive(Default)]
struct Inner {
    /// Record and the Unix millisecond at which the entry disappears (the key expiry).
    links: HashMap<LinkId, (LinkRecord, i64)>,
    kv: HashMap<String, (Value, i64)>,
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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
    ) -> Result<Option<LinkRecord>, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        let Some((record, _)) = inner
            .links
            .get_mut(id)
            .filter(|(_, evict_at)| *evict_at > now)
        else {
            return Ok(None);
        };
        record.result = Some(result.result.clone());
        record.auth_id = Some(result.auth_id.clone());
        record.verified_at_ms = Some(result.verified_at_ms);
        Ok(Some(record.clone()))
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

    async fn schedule(
        &self,
        queue: &str,
        member: &str,
        delay_ms: u64,
        ttl_ms: u64,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        inner.wrote(now);
        let mut entries = match inner.live_kv(queue, now) {
            Some((Value::Queue(entries), _)) => std::mem::take(entries),
            _ => Vec::new(),
        };
        entries.retain(|(_, m)| m != member);
        entries.push((at(now, delay_ms), member.to_string()));
        entries.sort();
        inner
            .kv
            .insert(queue.to_string(), (Value::Queue(entries), at(now, ttl_ms)));
        Ok(())
    }

    async fn due(&self, queue: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        Ok(match inner.live_kv(queue, now) {
            Some((Value::Queue(entries), _)) => entries
                .iter()
                .take_while(|(due, _)| *due <= now)
                .take(limit)
                .map(|(_, m)| m.clone())
                .collect(),
            _ => Vec::new(),
        })
    }

    async fn unschedule(&self, queue: &str, member: &str) -> Result<(), StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        if let Some((Value::Queue(entries), _)) = inner.live_kv(queue, now) {
            entries.retain(|(_, m)| m != member);
        }
        Ok(())
    }
}
