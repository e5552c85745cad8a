//! The erasure scripts of the Redis store (issue 19), kept apart from the link scripts: the
//! per-user indexes (`index_add`), the atomic erasure of a user's slot (`erase_user`), link
//! deletion and the removal of a user's queued jobs (`queue_remove`).

use async_trait::async_trait;
use redis::Script;

use super::{RedisStore, NOW_LUA};
use crate::links::LinkId;
use crate::store::{ErasedUser, ErasureStore, StoreError, UserKeys};

/// KEYS[1] index (sorted set, score = the member's expiry, Redis clock), KEYS[2] tombstone
/// (the index again when there is none); ARGV[1] member, ARGV[2] ttl ms, ARGV[3] "1" to check
/// the tombstone, ARGV[4] the time it must be before. Expired members are dropped. Returns 1
/// if added.
const INDEX_ADD_BODY: &str = r#"
if ARGV[3] == '1' then
  local t = tonumber(redis.call('GET', KEYS[2]) or '')
  if t and t >= tonumber(ARGV[4]) then return 0 end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"#;

/// KEYS[1] link-id set, KEYS[2] auth-id set, KEYS[3] idempotency-key set, KEYS[4] tombstone,
/// KEYS[5] erasure record, KEYS[6..] other keys of the user. ARGV[1] erasure id, ARGV[2] ttl ms,
/// ARGV[3] extra auth ids (JSON array), ARGV[4] key prefix (the idempotency set holds
/// unprefixed keys of this slot). Returns {'new'|'old', record JSON}.
const ERASE_USER_BODY: &str = r#"
local old = redis.call('GET', KEYS[5])
if old then return {'old', old} end
local links = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
local auths = redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')
local idem = redis.call('ZRANGEBYSCORE', KEYS[3], now, '+inf')
for _, k in ipairs(idem) do redis.call('DEL', ARGV[4] .. k) end
for i = 1, 3 do redis.call('DEL', KEYS[i]) end
for i = 6, #KEYS do redis.call('DEL', KEYS[i]) end
local function arr(t)
  if #t == 0 then return '[]' end
  return cjson.encode(t)
end
local seen, items = {}, {}
local function add(a)
  if type(a) == 'string' and a ~= '' and not seen[a] then
    seen[a] = true
    table.insert(items, {a = a, s = 'pending'})
  end
end
for _, a in ipairs(auths) do add(a) end
local ok, extra = pcall(cjson.decode, ARGV[3])
if ok and type(extra) == 'table' then
  for _, a in ipairs(extra) do add(a) end
end
local at = string.format('%d', now)
local rec = '{"id":' .. cjson.encode(ARGV[1]) .. ',"at":' .. at .. ',"st":"pending","links":'
  .. arr(links) .. ',"items":' .. arr(items) .. '}'
redis.call('SET', KEYS[4], at, 'PX', ARGV[2])
redis.call('SET', KEYS[5], rec, 'PX', ARGV[2])
return {'new', rec}
"#;

/// KEYS[1] due, KEYS[2] jobs, KEYS[3] dead, KEYS[4] marker (the jobs key when there is none);
/// ARGV[1] member, ARGV[2] "1" with a marker.
const QUEUE_REMOVE_LUA: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[2] == '1' then redis.call('DEL', KEYS[4]) end
return 1
"#;

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
