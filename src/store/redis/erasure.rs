//! The erasure scripts of the Redis store (issue 19), kept apart from the link scripts: the
//! per-user indexes (`index_add`), the atomic erasure of a user's slot (`erase_user`), link
//! deletion and the removal of a user's queued jobs (`queue_remove`).

use async_trait::async_trait;
use redis::Script;

use super::{RedisStore, NOW_LUA};
use crate::lifecycle::LinkId;
use crate::store::{ErasedUser, ErasureStore, StoreError, UserKeys};

const INDEX_ADD_BODY: &str = include_str!("../lua/index_add.lua");
const ERASE_USER_BODY: &str = include_str!("../lua/erase_user.lua");
const QUEUE_REMOVE_LUA: &str = include_str!("../lua/queue_remove.lua");

/// The loaded erasure scripts.
#[derive(Clone)]
pub(super) struct Scripts {
    index_add: Script,
    erase_user: Script,
    queue_remove: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Scripts {
            index_add: Script::new(&format!("{NOW_LUA}{INDEX_ADD_BODY}")),
            erase_user: Script::new(&format!("{NOW_LUA}{ERASE_USER_BODY}")),
            queue_remove: Script::new(QUEUE_REMOVE_LUA),
        }
    }

    /// Every script, for the start-up check.
    pub(super) fn all(&self) -> [&Script; 3] {
        [&self.index_add, &self.erase_user, &self.queue_remove]
    }
}

#[async_trait]
impl ErasureStore for RedisStore {
    async fn index_add(
        &self,
        key: &str,
        member: &str,
        ttl_ms: u64,
        unless_erased: Option<(&str, i64)>,
    ) -> Result<bool, StoreError> {
        let set = self.prefixed(key);
        let (tombstone, check, before) = match unless_erased {
            Some((t, before)) => (self.prefixed(t), "1", before),
            None => (set.clone(), "0", 0),
        };
        let added: i64 = self
            .script(
                "index_add",
                self.erasure
                    .index_add
                    .key(set)
                    .key(tombstone)
                    .arg(member)
                    .arg(ttl_ms.max(1))
                    .arg(check)
                    .arg(before),
            )
            .await?;
        Ok(added == 1)
    }

    async fn erase_user(
        &self,
        keys: &UserKeys,
        erasure_id: &str,
        extra_auth_ids: &[String],
        ttl_ms: u64,
    ) -> Result<ErasedUser, StoreError> {
        let extra = serde_json::to_string(extra_auth_ids)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut invocation = self.erasure.erase_user.prepare_invoke();
        for key in [
            &keys.links,
            &keys.auth_ids,
            &keys.idempotency,
            &keys.tombstone,
            &keys.record,
        ]
        .into_iter()
        .chain(&keys.others)
        {
            invocation.key(self.prefixed(key));
        }
        invocation
            .arg(erasure_id)
            .arg(ttl_ms.max(1))
            .arg(extra)
            .arg(&self.prefix);
        let (what, record): (String, String) = self.script("erase_user", &invocation).await?;
        Ok(ErasedUser {
            created: what == "new",
            record,
        })
    }

    async fn erase_link(&self, id: &LinkId) -> Result<(), StoreError> {
        self.command::<i64>("erase_link", redis::cmd("DEL").arg(self.key(id)))
            .await
            .map(|_| ())
    }

    async fn queue_remove(
        &self,
        queue: &str,
        member: &str,
        marker: Option<&str>,
    ) -> Result<(), StoreError> {
        let [due, jobs, dead] = self.queue_keys(queue);
        let marker_key = match marker {
            Some(m) => format!("{}{{{queue}}}:seen:{m}", self.prefix),
            None => jobs.clone(),
        };
        self.script::<i64>(
            "queue_remove",
            self.erasure
                .queue_remove
                .key(due)
                .key(jobs)
                .key(dead)
                .key(marker_key)
                .arg(member)
                .arg(if marker.is_some() { "1" } else { "0" }),
        )
        .await
        .map(|_| ())
    }
}
