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

use super::{KvStore, LinkStore, OpenResult, RevokeResult, Snapshot, StoreError, WindowCount};
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
/// expiry. Returns the updated JSON or nil.
const SET_RESULT_LUA: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return false end
local r = cjson.decode(v)
r.res = ARGV[1]
r.aid = ARGV[2]
r.va = tonumber(ARGV[3])
v = cjson.encode(r)
redis.call('SET', KEYS[1], v, 'PX', ttl)
return v
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
    let result = match tokio::time::timeout(timeout, fut).await {
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
    ) -> Result<Option<LinkRecord>, StoreError> {
        let stored: Option<String> = self
            .script(
                "set_result",
                self.set_result
                    .key(self.key(id))
                    .arg(&result.result)
                    .arg(&result.auth_id)
                    .arg(result.verified_at_ms),
            )
            .await?;
        stored.map(|json| decode(&json)).transpose()
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
}
