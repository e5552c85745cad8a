//! Redis store. A link is one key, `<prefix>link:{<id>}` (the braces are a Redis Cluster hash
//! tag), holding the compact JSON of [`LinkRecord`]; the small primitives ([`KvStore`]) use
//! keys named by their callers (rate limits, idempotency, queues). Every key is written with an
//! expiry.
//!
//! Every operation that decides something is a Lua script run with `EVALSHA` (the scripts are
//! loaded at start-up; on `NOSCRIPT`, e.g. after a Redis restart, the client loads them again
//! and retries): each reads the Redis clock (`TIME`) where it needs one, decides and writes in
//! one atomic step, so replicas with skewed clocks agree and a count-based link opens at most
//! once. Never GET-then-SET.

use super::redis_conn::{Conn, RedisTarget};
use async_trait::async_trait;
use redis::Script;
use std::future::Future;
use std::time::Duration;

use super::{
    Claim, ClaimedJob, DeadJob, KvStore, LinkStore, OpenResult, QueuePolicy, ResultWrite,
    RevokeResult, Settle, Settled, Snapshot, StoreError, WindowCount,
};
use crate::links::{LinkId, LinkPolicy, LinkRecord, LinkResult, LinkState, NewLink};

/// Shared Lua: the Redis clock in Unix milliseconds.
const NOW_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"#;

/// Shared Lua: the first open of record `r` at `now` (mirrors `LinkRecord::apply_open` for an
/// issued record); sets `px` to the new key expiry.
const FIRST_OPEN_LUA: &str = r#"
local function first_open(r, now, retention)
  r.oa = now
  if r.k == 'c' or r.k == 'count' then
    r.st = 'u'
    return retention
  end
  r.st = 'o'
  r.ea = now + r.w
  return r.w + retention
end
"#;

/// KEYS[1] link key; ARGV[1] issued record JSON; ARGV[2] unopened TTL ms; ARGV[3] retention ms;
/// ARGV[4] "1" to apply the first open at once. Returns the stored JSON, or nil if the key exists.
const CREATE_BODY: &str = r#"
local r = cjson.decode(ARGV[1])
local ttl = tonumber(ARGV[2])
local retention = tonumber(ARGV[3])
r.ca = now
r.ea = now + ttl
local px = ttl + retention
if ARGV[4] == '1' then
  px = first_open(r, now, retention)
end
local v = cjson.encode(r)
if not redis.call('SET', KEYS[1], v, 'NX', 'PX', px) then
  return false
end
return v
"#;

/// KEYS[1] link key; ARGV[1] retention ms; ARGV[2] "1" for the confirming POST.
/// Returns {'ok', json} | {'confirm'} | {'used'} | {'expired'} | {'revoked'} | {'none'}.
const OPEN_BODY: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return {'none'} end
local r = cjson.decode(v)
if r.st == 'u' then return {'used'} end
if r.st == 'r' then return {'revoked'} end
if now >= r.ea then return {'expired'} end
if r.cs and ARGV[2] ~= '1' then return {'confirm'} end
if r.st == 'o' then return {'ok', v} end
local px = first_open(r, now, tonumber(ARGV[1]))
v = cjson.encode(r)
redis.call('SET', KEYS[1], v, 'PX', px)
return {'ok', v}
"#;

/// KEYS[1] link key; ARGV[1] owner ('' = any); ARGV[2] "1" = only an issued, unexpired link;
/// ARGV[3] retention ms. Returns 'revoked' | 'unchanged' | 'none'. A used or expired link
/// stays as it is (mirrors `LinkRecord::revoke`).
const REVOKE_BODY: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return 'none' end
local r = cjson.decode(v)
if ARGV[1] ~= '' and r.u ~= ARGV[1] then return 'none' end
if r.st == 'r' or r.st == 'u' or now >= r.ea then return 'unchanged' end
if ARGV[2] == '1' and r.st ~= 'i' then return 'unchanged' end
r.st = 'r'
redis.call('SET', KEYS[1], cjson.encode(r), 'PX', tonumber(ARGV[3]))
return 'revoked'
"#;

/// KEYS[1] counter; ARGV[1] window ms. Returns {count, ms until reset}.
const INCR_WINDOW_LUA: &str = r#"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"#;

/// KEYS[1]; ARGV[1] value; ARGV[2] ttl ms. Returns the existing value, or nil after writing.
const PUT_IF_ABSENT_LUA: &str = r#"
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"#;

/// KEYS[1]; ARGV[1] expected value. Returns 1 if deleted.
const DELETE_IF_EQUALS_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// KEYS[1] link key; ARGV[1] result; ARGV[2] auth id; ARGV[3] verified-at ms. Keeps the key's
/// expiry. The later (verified-at, auth id) wins; the first verdict on an auth id stays.
/// Returns {'applied'|'same'|'stale', json} or nil when there is no link.
const SET_RESULT_LUA: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return false end
local r = cjson.decode(v)
local va = tonumber(ARGV[3])
if r.res then
  local cva = tonumber(r.va) or 0
  local caid = r.aid or ''
  if caid == ARGV[2] then return {'same', v} end
  if cva > va or (cva == va and caid > ARGV[2]) then return {'stale', v} end
end
r.res = ARGV[1]
r.aid = ARGV[2]
r.va = va
v = cjson.encode(r)
redis.call('SET', KEYS[1], v, 'PX', ttl)
return {'applied', v}
"#;

/// KEYS[1] hash {o, i, v}; ARGV[1] order; ARGV[2] tiebreak; ARGV[3] value; ARGV[4] ttl ms.
/// Returns 1 if written.
const PUT_IF_LATER_LUA: &str = r#"
local cur = redis.call('HMGET', KEYS[1], 'o', 'i')
if cur[1] then
  local o = tonumber(cur[1])
  local n = tonumber(ARGV[1])
  if o > n or (o == n and (cur[2] or '') >= ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'i', ARGV[2], 'v', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"#;

/// KEYS[1] hash written by PUT_IF_LATER. Returns {now} or {now, value}.
const READ_LATER_BODY: &str = r#"
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {tostring(now)} end
return {tostring(now), v}
"#;

/// Work queues. KEYS[1] due (sorted set, score = due ms, Redis clock), KEYS[2] jobs (hash
/// member -> envelope JSON {b body, c created, t tries, f failures, k lease token, r reason}),
/// KEYS[3] dead letters (sorted set, score = dead-lettered ms). All three share the hash tag
/// `{q:<name>}`, so every script runs on one slot in a cluster.
const QUEUE_EXPIRE_LUA: &str = r#"
local function expire_all(ttl)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], ttl) end
end
-- An envelope, or nil if it is unreadable (a poisoned entry must not stop the queue).
local function envelope(v)
  local ok, e = pcall(cjson.decode, v)
  if not ok or type(e) ~= 'table' then return nil end
  if type(e.b) ~= 'string' then return nil end
  e.c = tonumber(e.c) or 0
  e.t = tonumber(e.t) or 0
  e.f = tonumber(e.f) or 0
  if type(e.k) ~= 'string' then e.k = '' end
  if type(e.r) ~= 'string' then e.r = '' end
  return e
end
"#;

/// KEYS[1] due, KEYS[2] jobs, KEYS[3] marker key (or the jobs key when there is none);
/// ARGV[1] member, ARGV[2] body, ARGV[3] "1" with a marker, ARGV[4] marker ttl, ARGV[5] queue
/// ttl. Returns 1 if added.
const QUEUE_PUSH_BODY: &str = r#"
if ARGV[3] == '1' then
  if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[4])
end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({b = ARGV[2], c = now, t = 0, f = 0, k = '', r = ''}))
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
"#;

/// ARGV[1] limit, ARGV[2] lease ms, ARGV[3] max failures, ARGV[4] queue ttl, ARGV[5] dead
/// ttl, ARGV[6] token prefix. Returns {now, n buried, per buried job: member, reason; then per
/// claimed job: member, body, token, tries, failures, created}.
const QUEUE_CLAIM_BODY: &str = r#"
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[5]), 'LIMIT', 0, 100)
for _, m in ipairs(old) do
  redis.call('ZREM', KEYS[3], m)
  redis.call('HDEL', KEYS[2], m)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local buried = {}
local jobs = {}
local lease = tonumber(ARGV[2])
for i, m in ipairs(due) do
  local v = redis.call('HGET', KEYS[2], m)
  local e = v and envelope(v)
  if not v then
    redis.call('ZREM', KEYS[1], m)
  elseif not e then
    redis.call('ZREM', KEYS[1], m)
    redis.call('ZADD', KEYS[3], now, m)
    redis.call('HSET', KEYS[2], m, cjson.encode({b = '', c = now, t = 0, f = 0, k = '', r = 'unreadable'}))
    table.insert(buried, m)
    table.insert(buried, 'unreadable')
  else
    if e.f >= tonumber(ARGV[3]) then
      e.k = ''
      if e.r == '' then e.r = 'lease_lost' end
      redis.call('ZREM', KEYS[1], m)
      redis.call('ZADD', KEYS[3], now, m)
      redis.call('HSET', KEYS[2], m, cjson.encode(e))
      table.insert(buried, m)
      table.insert(buried, e.r)
    else
      e.t = e.t + 1
      e.f = e.f + 1
      e.k = ARGV[6] .. ':' .. i
      redis.call('HSET', KEYS[2], m, cjson.encode(e))
      redis.call('ZADD', KEYS[1], now + lease, m)
      for _, x in ipairs({m, e.b, e.k, tostring(e.t), tostring(e.f), tostring(e.c)}) do
        table.insert(jobs, x)
      end
    end
  end
end
if #due > 0 then expire_all(ARGV[4]) end
local out = {tostring(now), tostring(#buried / 2)}
for _, m in ipairs(buried) do table.insert(out, m) end
for _, x in ipairs(jobs) do table.insert(out, x) end
return out
"#;

/// ARGV[1] member, ARGV[2] token, ARGV[3] op (done|renew|retry|fail|bury), ARGV[4] delay ms,
/// ARGV[5] reason, ARGV[6] lease ms, ARGV[7] queue ttl, ARGV[8] max failures.
/// Returns 'ok' | 'buried' | 'lost'.
const QUEUE_SETTLE_BODY: &str = r#"
local m = ARGV[1]
local v = redis.call('HGET', KEYS[2], m)
if not v then return 'lost' end
local e = envelope(v)
if not e or e.k ~= ARGV[2] then return 'lost' end
local op = ARGV[3]
if op == 'done' then
  redis.call('HDEL', KEYS[2], m)
  redis.call('ZREM', KEYS[1], m)
  return 'ok'
end
if op == 'renew' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]), m)
  expire_all(ARGV[7])
  return 'ok'
end
e.k = ''
local result = 'ok'
if op == 'retry' then e.f = 0 end
if op == 'fail' or op == 'bury' then e.r = ARGV[5] end
if op == 'bury' or (op == 'fail' and e.f >= tonumber(ARGV[8])) then
  redis.call('ZREM', KEYS[1], m)
  redis.call('ZADD', KEYS[3], now, m)
  result = 'buried'
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), m)
end
redis.call('HSET', KEYS[2], m, cjson.encode(e))
expire_all(ARGV[7])
return result
"#;

/// ARGV[1] limit. Returns per job: member, dead-at ms, tries, reason.
const QUEUE_DEAD_LUA: &str = r#"
local ms = redis.call('ZRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #ms, 2 do
  local v = redis.call('HGET', KEYS[2], ms[i])
  local e = v and envelope(v)
  local t, r = '0', 'unreadable'
  if e then
    t = tostring(e.t)
    r = e.r
  end
  for _, x in ipairs({ms[i], ms[i + 1], t, r}) do table.insert(out, x) end
end
return out
"#;

/// ARGV[1] member, ARGV[2] queue ttl. Returns 1 if the job was dead-lettered and is due again.
const QUEUE_REVIVE_BODY: &str = r#"
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
local v = redis.call('HGET', KEYS[2], ARGV[1])
local e = v and envelope(v)
if not e then return 0 end
e.f = 0
e.k = ''
e.r = ''
e.c = now
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(e))
redis.call('ZADD', KEYS[1], now, ARGV[1])
expire_all(ARGV[2])
return 1
"#;

/// KEYS[1] queue (sorted set scored by due time, Redis clock); ARGV[1] member; ARGV[2] delay
/// ms; ARGV[3] queue ttl ms.
const SCHEDULE_BODY: &str = r#"
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// KEYS[1] queue; ARGV[1] limit. Members due now.
const DUE_BODY: &str = r#"
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
"#;

/// KEYS[1]; ARGV[1] value; ARGV[2] ttl ms. Returns the replaced value or nil.
const SWAP_LUA: &str = r#"
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return old
"#;

/// KEYS[1] link key. Returns {now} or {now, json}.
const GET_BODY: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return {tostring(now)} end
return {tostring(now), v}
"#;

/// The Lua source of the open script, as the store runs it (for load tests with
/// `redis-benchmark`).
pub fn open_script_source() -> String {
    format!("{NOW_LUA}{FIRST_OPEN_LUA}{OPEN_BODY}")
}

/// The oldest Redis the scripts support: 5.0 replicates script effects by default, so a
/// script may read `TIME` before writing.
pub const MIN_REDIS_VERSION: (u32, u32) = (5, 0);

/// Links in Redis (standalone). Cheap to clone: one multiplexed connection shared by all
/// requests, reconnecting by itself.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: String,
    timeout: Duration,
    create: Script,
    open: Script,
    revoke: Script,
    get: Script,
    incr_window: Script,
    put_if_absent: Script,
    delete_if_equals: Script,
    swap: Script,
    set_result: Script,
    schedule: Script,
    due: Script,
    put_if_later: Script,
    read_later: Script,
    queue_push: Script,
    queue_claim: Script,
    queue_settle: Script,
    queue_dead: Script,
    queue_revive: Script,
}

impl RedisStore {
    /// Connects to `redis_url` (e.g. `redis://127.0.0.1:6379/0`); every key gets `key_prefix`;
    /// every command is bounded by `timeout` (connect, response and the whole call).
    ///
    /// Errors: [`StoreError::Unavailable`] if Redis does not answer `PING` within `timeout`.
    pub async fn connect(
        redis_url: &str,
        key_prefix: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        Self::connect_to(
            &RedisTarget::Standalone(redis_url.to_string()),
            key_prefix,
            timeout,
        )
        .await
    }

    /// Like [`RedisStore::connect`] for any topology (standalone, Sentinel, Cluster).
    ///
    /// Errors: [`StoreError::Unavailable`] if nothing answers within `timeout` (a few times
    /// that for a cluster, which asks every seed node), [`StoreError::Unsupported`] if the
    /// server is too old or refuses the scripts.
    pub async fn connect_to(
        target: &RedisTarget,
        key_prefix: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let conn = bounded("connect", timeout * 4, Conn::connect(target, timeout)).await?;
        let store = RedisStore {
            conn,
            prefix: key_prefix.to_string(),
            timeout,
            create: Script::new(&format!("{NOW_LUA}{FIRST_OPEN_LUA}{CREATE_BODY}")),
            open: Script::new(&open_script_source()),
            revoke: Script::new(&format!("{NOW_LUA}{REVOKE_BODY}")),
            get: Script::new(&format!("{NOW_LUA}{GET_BODY}")),
            incr_window: Script::new(INCR_WINDOW_LUA),
            put_if_absent: Script::new(PUT_IF_ABSENT_LUA),
            delete_if_equals: Script::new(DELETE_IF_EQUALS_LUA),
            swap: Script::new(SWAP_LUA),
            set_result: Script::new(SET_RESULT_LUA),
            schedule: Script::new(&format!("{NOW_LUA}{SCHEDULE_BODY}")),
            due: Script::new(&format!("{NOW_LUA}{DUE_BODY}")),
            put_if_later: Script::new(PUT_IF_LATER_LUA),
            read_later: Script::new(&format!("{NOW_LUA}{READ_LATER_BODY}")),
            queue_push: Script::new(&format!("{NOW_LUA}{QUEUE_PUSH_BODY}")),
            queue_claim: Script::new(&format!("{NOW_LUA}{QUEUE_EXPIRE_LUA}{QUEUE_CLAIM_BODY}")),
            queue_settle: Script::new(&format!("{NOW_LUA}{QUEUE_EXPIRE_LUA}{QUEUE_SETTLE_BODY}")),
            queue_dead: Script::new(&format!("{QUEUE_EXPIRE_LUA}{QUEUE_DEAD_LUA}")),
            queue_revive: Script::new(&format!("{NOW_LUA}{QUEUE_EXPIRE_LUA}{QUEUE_REVIVE_BODY}")),
        };
        store.ping().await?;
        store.check_server().await?;
        Ok(store)
    }

    /// Start-up check: the server is recent enough and accepts every script (this also loads
    /// them into its script cache). Errors name what is missing.
    async fn check_server(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        // A cluster answers per node (a map); a single server with one string.
        let info: redis::Value = bounded(
            "check_server",
            self.timeout,
            redis::cmd("INFO").arg("server").query_async(&mut conn),
        )
        .await
        .map_err(|e| StoreError::Unavailable(format!("INFO server failed ({e})")))?;
        let mut versions = Vec::new();
        collect_versions(&info, &mut versions);
        if versions.is_empty() {
            return Err(StoreError::Unsupported(
                "INFO server named no redis_version".into(),
            ));
        }
        for version in versions {
            let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            if found < MIN_REDIS_VERSION {
                return Err(StoreError::Unsupported(format!(
                    "Redis {version} is too old; {}.{} or newer is needed",
                    MIN_REDIS_VERSION.0, MIN_REDIS_VERSION.1
                )));
            }
        }
        for script in [
            &self.create,
            &self.open,
            &self.revoke,
            &self.get,
            &self.incr_window,
            &self.put_if_absent,
            &self.delete_if_equals,
            &self.swap,
            &self.set_result,
            &self.schedule,
            &self.due,
            &self.put_if_later,
            &self.read_later,
            &self.queue_push,
            &self.queue_claim,
            &self.queue_settle,
            &self.queue_dead,
            &self.queue_revive,
        ] {
            let loaded =
                tokio::time::timeout(self.timeout, script.prepare_invoke().load_async(&mut conn))
                    .await;
            match loaded {
                Ok(Ok(_)) => {}
                Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "SCRIPT LOAD: no answer within {} ms",
                        self.timeout.as_millis()
                    )))
                }
                // Still loading its data set, failing over, or the connection broke: try again.
                Ok(Err(e)) if is_transient(&e) => return Err(unavailable(e)),
                Ok(Err(e)) => {
                    return Err(StoreError::Unsupported(format!(
                        "Redis refused to load the gateway's Lua scripts (SCRIPT LOAD / EVALSHA \
                         must be allowed): {}",
                        unavailable(e)
                    )))
                }
            }
        }
        Ok(())
    }

    /// Runs a script with the store's timeout, latency and error metrics under `op`.
    async fn script<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        bounded(op, self.timeout, invocation.invoke_async(&mut conn)).await
    }

    /// Runs a command with the store's timeout, latency and error metrics under `op`.
    async fn command<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        bounded(op, self.timeout, cmd.query_async(&mut conn)).await
    }

    fn prefixed(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The three keys of work queue `queue`: due, jobs, dead letters (one hash tag).
    fn queue_keys(&self, queue: &str) -> [String; 3] {
        let base = format!("{}{{{queue}}}", self.prefix);
        [
            format!("{base}:due"),
            format!("{base}:jobs"),
            format!("{base}:dead"),
        ]
    }

    /// The Redis key of a link: `<prefix>link:{<id>}`.
    pub fn key(&self, id: &LinkId) -> String {
        format!("{}link:{{{}}}", self.prefix, id)
    }
}

/// Every `redis_version:` in an `INFO` answer, whatever its shape.
fn collect_versions(value: &redis::Value, out: &mut Vec<String>) {
    match value {
        redis::Value::BulkString(bytes) => collect_from_text(&String::from_utf8_lossy(bytes), out),
        redis::Value::SimpleString(s) | redis::Value::VerbatimString { text: s, .. } => {
            collect_from_text(s, out)
        }
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().for_each(|v| collect_versions(v, out))
        }
        redis::Value::Map(pairs) => pairs.iter().for_each(|(_, v)| collect_versions(v, out)),
        _ => {}
    }
}

fn collect_from_text(text: &str, out: &mut Vec<String>) {
    out.extend(
        text.lines()
            .filter_map(|l| l.strip_prefix("redis_version:"))
            .map(|v| v.trim().to_string()),
    );
}

/// Errors that say "not now" rather than "never": the connection, a timeout, a server still
/// loading its data or between masters.
fn is_transient(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            redis::ErrorKind::BusyLoadingError
                | redis::ErrorKind::TryAgain
                | redis::ErrorKind::ClusterDown
                | redis::ErrorKind::MasterDown
        )
}

fn unavailable(e: redis::RedisError) -> StoreError {
    // The kind and the server's error code only: a Redis error message may echo arguments.
    StoreError::Unavailable(match e.code() {
        Some(code) => format!("{:?}: {code}", e.kind()),
        None => format!("{:?}", e.kind()),
    })
}

/// Runs one store command with the timeout, recording its latency and errors under `op`.
async fn bounded<T>(
    op: &'static str,
    timeout: Duration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    let started = std::time::Instant::now();
    // One span per store command or script when traces are on (op is a fixed name, never a
    // key); none otherwise, keeping the hot path as it was.
    let span = if crate::telemetry::enabled() {
        tracing::info_span!(
            "redis",
            otel.name = op,
            otel.kind = "client",
            db.system = "redis"
        )
    } else {
        tracing::Span::none()
    };
    let result =
        match tracing::Instrument::instrument(tokio::time::timeout(timeout, fut), span).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
        };
    let m = &crate::metrics::METRICS;
    m.store_duration
        .with_label_values(&[op])
        .observe(started.elapsed().as_secs_f64());
    if result.is_err() {
        m.store_errors.with_label_values(&[op]).inc();
    }
    result
}

fn decode(json: &str) -> Result<LinkRecord, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait]
impl LinkStore for RedisStore {
    async fn create(
        &self,
        id: &LinkId,
        link: &NewLink,
        policy: &LinkPolicy,
        open_now: bool,
    ) -> Result<LinkRecord, StoreError> {
        let template = serde_json::to_string(&link.issued_record(policy, 0))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let stored: Option<String> = self
            .script(
                "create",
                self.create
                    .key(self.key(id))
                    .arg(template)
                    .arg(policy.unopened_ttl_ms)
                    .arg(policy.retention_ms)
                    .arg(if open_now { "1" } else { "0" }),
            )
            .await?;
        match stored {
            Some(json) => decode(&json),
            None => Err(StoreError::Conflict),
        }
    }

    async fn open(
        &self,
        id: &LinkId,
        retention_ms: u64,
        confirmed: bool,
    ) -> Result<OpenResult, StoreError> {
        let reply: Vec<String> = self
            .script(
                "open",
                self.open
                    .key(self.key(id))
                    .arg(retention_ms)
                    .arg(if confirmed { "1" } else { "0" }),
            )
            .await?;
        match reply.first().map(String::as_str) {
            Some("ok") => match reply.get(1) {
                Some(json) => Ok(OpenResult::Opened(Box::new(decode(json)?))),
                None => Err(StoreError::Corrupt("open script returned no record".into())),
            },
            Some("confirm") => Ok(OpenResult::NeedsConfirmation),
            Some("used") => Ok(OpenResult::Refused(LinkState::Used)),
            Some("expired") => Ok(OpenResult::Refused(LinkState::Expired)),
            Some("revoked") => Ok(OpenResult::Refused(LinkState::Revoked)),
            Some("none") => Ok(OpenResult::NotFound),
            _ => Err(StoreError::Corrupt("unexpected open script reply".into())),
        }
    }

    async fn revoke(
        &self,
        id: &LinkId,
        owner: Option<&str>,
        only_unopened: bool,
        retention_ms: u64,
    ) -> Result<RevokeResult, StoreError> {
        let reply: String = self
            .script(
                "revoke",
                self.revoke
                    .key(self.key(id))
                    .arg(owner.unwrap_or(""))
                    .arg(if only_unopened { "1" } else { "0" })
                    .arg(retention_ms),
            )
            .await?;
        match reply.as_str() {
            "revoked" => Ok(RevokeResult::Revoked),
            "unchanged" => Ok(RevokeResult::Unchanged),
            "none" => Ok(RevokeResult::NotFound),
            _ => Err(StoreError::Corrupt("unexpected revoke script reply".into())),
        }
    }

    async fn set_result(
        &self,
        id: &LinkId,
        result: &LinkResult,
    ) -> Result<Option<(ResultWrite, LinkRecord)>, StoreError> {
        let reply: Option<(String, String)> = self
            .script(
                "set_result",
                self.set_result
                    .key(self.key(id))
                    .arg(result.result.as_str())
                    .arg(&result.auth_id)
                    .arg(result.verified_at_ms),
            )
            .await?;
        let Some((what, json)) = reply else {
            return Ok(None);
        };
        let write = match what.as_str() {
            "applied" => ResultWrite::Applied,
            "same" => ResultWrite::Same,
            "stale" => ResultWrite::Stale,
            _ => {
                return Err(StoreError::Corrupt(
                    "unexpected set_result script reply".into(),
                ))
            }
        };
        Ok(Some((write, decode(&json)?)))
    }

    async fn get(&self, id: &LinkId) -> Result<Option<Snapshot>, StoreError> {
        let reply: Vec<String> = self.script("get", &self.get.key(self.key(id))).await?;
        let now_ms = reply
            .first()
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(|| StoreError::Corrupt("get script returned no clock".into()))?;
        match reply.get(1) {
            Some(json) => Ok(Some(Snapshot {
                record: decode(json)?,
                now_ms,
            })),
            None => Ok(None),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.command("ping", &redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable("unexpected PING reply".into()))
        }
    }
}

#[async_trait]
impl KvStore for RedisStore {
    async fn incr_window(&self, key: &str, window_ms: u64) -> Result<WindowCount, StoreError> {
        let (count, reset_ms): (u64, i64) = self
            .script(
                "incr_window",
                self.incr_window.key(self.prefixed(key)).arg(window_ms),
            )
            .await?;
        Ok(WindowCount {
            count,
            reset_ms: reset_ms.max(0) as u64,
        })
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        self.script(
            "put_if_absent",
            self.put_if_absent
                .key(self.prefixed(key))
                .arg(value)
                .arg(ttl_ms),
        )
        .await
    }

    async fn read(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.command("read", redis::cmd("GET").arg(self.prefixed(key)))
            .await
    }

    async fn put(&self, key: &str, value: &str, ttl_ms: u64) -> Result<(), StoreError> {
        self.command(
            "put",
            redis::cmd("SET")
                .arg(self.prefixed(key))
                .arg(value)
                .arg("PX")
                .arg(ttl_ms),
        )
        .await
    }

    async fn delete_if_equals(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let deleted: i64 = self
            .script(
                "delete_if_equals",
                self.delete_if_equals.key(self.prefixed(key)).arg(value),
            )
            .await?;
        Ok(deleted == 1)
    }

    async fn swap(
        &self,
        key: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        self.script(
            "swap",
            self.swap.key(self.prefixed(key)).arg(value).arg(ttl_ms),
        )
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.command::<i64>("delete", redis::cmd("DEL").arg(self.prefixed(key)))
            .await
            .map(|_| ())
    }

    async fn schedule(
        &self,
        queue: &str,
        member: &str,
        delay_ms: u64,
        ttl_ms: u64,
    ) -> Result<(), StoreError> {
        self.script::<i64>(
            "schedule",
            self.schedule
                .key(self.prefixed(queue))
                .arg(member)
                .arg(delay_ms)
                .arg(ttl_ms),
        )
        .await
        .map(|_| ())
    }

    async fn due(&self, queue: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.script("due", self.due.key(self.prefixed(queue)).arg(limit))
            .await
    }

    async fn unschedule(&self, queue: &str, member: &str) -> Result<(), StoreError> {
        self.command::<i64>(
            "unschedule",
            redis::cmd("ZREM").arg(self.prefixed(queue)).arg(member),
        )
        .await
        .map(|_| ())
    }

    async fn put_if_later(
        &self,
        key: &str,
        order: i64,
        tiebreak: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let written: i64 = self
            .script(
                "put_if_later",
                self.put_if_later
                    .key(self.prefixed(key))
                    .arg(order)
                    .arg(tiebreak)
                    .arg(value)
                    .arg(ttl_ms),
            )
            .await?;
        Ok(written == 1)
    }

    async fn read_later(&self, key: &str) -> Result<(Option<String>, i64), StoreError> {
        let reply: Vec<String> = self
            .script("read_later", &self.read_later.key(self.prefixed(key)))
            .await?;
        let now_ms = store_clock(reply.first())?;
        Ok((reply.get(1).cloned(), now_ms))
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
        let [due, jobs, _] = self.queue_keys(queue);
        let marker_key = match marker {
            Some(m) => format!("{}{{{queue}}}:seen:{m}", self.prefix),
            None => jobs.clone(),
        };
        let added: i64 = self
            .script(
                "queue_push",
                self.queue_push
                    .key(due)
                    .key(jobs)
                    .key(marker_key)
                    .arg(member)
                    .arg(body)
                    .arg(if marker.is_some() { "1" } else { "0" })
                    .arg(marker_ttl_ms.max(1))
                    .arg(policy.ttl_ms),
            )
            .await?;
        Ok(added == 1)
    }

    async fn queue_claim(
        &self,
        queue: &str,
        limit: usize,
        policy: &QueuePolicy,
    ) -> Result<Claim, StoreError> {
        let [due, jobs, dead] = self.queue_keys(queue);
        let reply: Vec<String> = self
            .script(
                "queue_claim",
                self.queue_claim
                    .key(due)
                    .key(jobs)
                    .key(dead)
                    .arg(limit)
                    .arg(policy.lease_ms)
                    .arg(policy.max_failures)
                    .arg(policy.ttl_ms)
                    .arg(policy.dead_ttl_ms)
                    .arg(uuid::Uuid::new_v4().simple().to_string()),
            )
            .await?;
        let bad = || StoreError::Corrupt("unexpected queue_claim script reply".into());
        let now_ms = store_clock(reply.first())?;
        let n_buried: usize = reply.get(1).and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        let buried = reply
            .get(2..2 + 2 * n_buried)
            .ok_or_else(bad)?
            .chunks(2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect();
        let rest = reply.get(2 + 2 * n_buried..).ok_or_else(bad)?;
        if !rest.len().is_multiple_of(6) {
            return Err(bad());
        }
        let jobs = rest
            .chunks(6)
            .map(|c| ClaimedJob {
                member: c[0].clone(),
                body: c[1].clone(),
                token: c[2].clone(),
                tries: lua_u32(&c[3]),
                failures: lua_u32(&c[4]),
                created_ms: lua_i64(&c[5]),
            })
            .collect();
        Ok(Claim {
            now_ms,
            jobs,
            buried,
        })
    }

    async fn queue_settle(
        &self,
        queue: &str,
        member: &str,
        token: &str,
        settle: Settle,
        policy: &QueuePolicy,
    ) -> Result<Settled, StoreError> {
        let [due, jobs, dead] = self.queue_keys(queue);
        let (op, delay_ms, reason) = match settle {
            Settle::Done => ("done", 0, ""),
            Settle::Retry { delay_ms } => ("retry", delay_ms, ""),
            Settle::Fail { delay_ms, reason } => ("fail", delay_ms, reason),
            Settle::Bury { reason } => ("bury", 0, reason),
            Settle::Renew => ("renew", 0, ""),
        };
        let reply: String = self
            .script(
                "queue_settle",
                self.queue_settle
                    .key(due)
                    .key(jobs)
                    .key(dead)
                    .arg(member)
                    .arg(token)
                    .arg(op)
                    .arg(delay_ms)
                    .arg(reason)
                    .arg(policy.lease_ms)
                    .arg(policy.ttl_ms)
                    .arg(policy.max_failures),
            )
            .await?;
        match reply.as_str() {
            "ok" => Ok(Settled::Ok),
            "buried" => Ok(Settled::Buried),
            "lost" => Ok(Settled::Lost),
            _ => Err(StoreError::Corrupt(
                "unexpected queue_settle script reply".into(),
            )),
        }
    }

    async fn queue_dead(&self, queue: &str, limit: usize) -> Result<Vec<DeadJob>, StoreError> {
        let [due, jobs, dead] = self.queue_keys(queue);
        let reply: Vec<String> = self
            .script(
                "queue_dead",
                self.queue_dead.key(due).key(jobs).key(dead).arg(limit),
            )
            .await?;
        if !reply.len().is_multiple_of(4) {
            return Err(StoreError::Corrupt(
                "unexpected queue_dead script reply".into(),
            ));
        }
        Ok(reply
            .chunks(4)
            .map(|c| DeadJob {
                member: c[0].clone(),
                dead_at_ms: lua_i64(&c[1]),
                tries: lua_u32(&c[2]),
                reason: c[3].clone(),
            })
            .collect())
    }

    async fn queue_revive(
        &self,
        queue: &str,
        member: &str,
        policy: &QueuePolicy,
    ) -> Result<bool, StoreError> {
        let [due, jobs, dead] = self.queue_keys(queue);
        let revived: i64 = self
            .script(
                "queue_revive",
                self.queue_revive
                    .key(due)
                    .key(jobs)
                    .key(dead)
                    .arg(member)
                    .arg(policy.ttl_ms),
            )
            .await?;
        Ok(revived == 1)
    }
}

/// The store clock a script returned as its first value.
fn store_clock(value: Option<&String>) -> Result<i64, StoreError> {
    value
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| StoreError::Corrupt("script returned no clock".into()))
}

/// A number written by Lua's `tostring` (possibly in exponent form).
fn lua_i64(s: &str) -> i64 {
    s.parse::<i64>()
        .ok()
        .or_else(|| s.parse::<f64>().ok().map(|f| f as i64))
        .unwrap_or(0)
}

fn lua_u32(s: &str) -> u32 {
    u32::try_from(lua_i64(s).max(0)).unwrap_or(u32::MAX)
}
