//! In-process store: a mutex-guarded map with per-entry expiry. Single process only.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{LinkStore, OpenResult, Snapshot, StoreError};
use crate::links::{LinkId, LinkPolicy, LinkRecord, NewLink};

/// Entries are purged lazily: on access, and by a sweep every this many creations.
const SWEEP_EVERY: u64 = 1024;

#[derive(Default)]
struct Inner {
    /// Record and the Unix millisecond at which the entry disappears (the key expiry).
    links: HashMap<LinkId, (LinkRecord, i64)>,
    creations: u64,
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

fn live(inner: &mut Inner, id: &LinkId, now: i64) -> Option<LinkRecord> {
    match inner.links.get(id) {
        Some((record, evict_at)) if *evict_at > now => Some(record.clone()),
        Some(_) => {
            inner.links.remove(id);
            None
        }
        None => None,
    }
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
        inner.creations += 1;
        if inner.creations % SWEEP_EVERY == 0 {
            inner.links.retain(|_, (_, evict_at)| *evict_at > now);
        }
        if live(&mut inner, id, now).is_some() {
            return Err(StoreError::Conflict);
        }
        let mut record = link.issued_record(policy, now);
        let mut ttl = policy.unopened_ttl_ms.saturating_add(policy.retention_ms);
        if open_now {
            if let Ok(Some(new_ttl)) = record.apply_open(now, policy.retention_ms) {
                ttl = new_ttl;
            }
        }
        inner
            .links
            .insert(*id, (record.clone(), now.saturating_add(ttl as i64)));
        Ok(record)
    }

    async fn open(&self, id: &LinkId, retention_ms: u64) -> Result<OpenResult, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        let Some(mut record) = live(&mut inner, id, now) else {
            return Ok(OpenResult::NotFound);
        };
        match record.apply_open(now, retention_ms) {
            Ok(Some(ttl)) => {
                inner
                    .links
                    .insert(*id, (record.clone(), now.saturating_add(ttl as i64)));
                Ok(OpenResult::Opened(record))
            }
            Ok(None) => Ok(OpenResult::Opened(record)),
            Err(state) => Ok(OpenResult::Refused(state)),
        }
    }

    async fn get(&self, id: &LinkId) -> Result<Option<Snapshot>, StoreError> {
        let now = now_ms();
        let mut inner = self.lock()?;
        Ok(live(&mut inner, id, now).map(|record| Snapshot {
            record,
            now_ms: now,
        }))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }
}
