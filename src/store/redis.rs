//! Redis store: one key per link, `<prefix>link:{<id>}` (the braces are a Redis Cluster hash
//! tag), holding the compact JSON of [`LinkRecord`]. Every key is written with `PX`.
//!
//! Create and open are Lua scripts run with `EVALSHA` (falling back to `EVAL` on `NOSCRIPT`):
//! each reads the Redis clock (`TIME`), decides and writes in one atomic step, so replicas with
//! skewed clocks agree and a count-based link opens at most once. Never GET-then-SET.

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use std::future::Future;
use std::time::Duration;

use super::{LinkStore, OpenResult, Snapshot, StoreError};
use crate::links::{LinkId, LinkPolicy, LinkRecord, LinkState, NewLink};

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
  if r.k == 'count' then
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

/// KEYS[1] link key; ARGV[1] retention ms. Returns {'ok', json} | {'used'} | {'expired'} |
/// {'none'}.
const OPEN_BODY: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return {'none'} end
local r = cjson.decode(v)
if r.st == 'u' then return {'used'} end
if now >= r.ea then return {'expired'} end
if r.st == 'o' then return {'ok', v} end
local px = first_open(r, now, tonumber(ARGV[1]))
v = cjson.encode(r)
redis.call('SET', KEYS[1], v, 'PX', px)
return {'ok', v}
"#;

/// KEYS[1] link key. Returns {now} or {now, json}.
const GET_BODY: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return {tostring(now)} end
return {tostring(now), v}
"#;

/// The Lua source of the open script, as the store runs it (for `redis-benchmark` in `bench/`).
pub fn open_script_source() -> String {
    format!("{NOW_LUA}{FIRST_OPEN_LUA}{OPEN_BODY}")
}

/// Links in Redis (standalone). Cheap to clone: one multiplexed connection shared by all
/// requests, reconnecting by itself.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    create: Script,
    open: Script,
    get: Script,
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
        let client = redis::Client::open(redis_url)
            .map_err(|e| StoreError::Unavailable(format!("bad redis url: {:?}", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(1)
            .set_max_delay(timeout.as_millis() as u64);
        let conn = bounded(timeout, async {
            ConnectionManager::new_with_config(client, config).await
        })
        .await?;
        let store = RedisStore {
            conn,
            prefix: key_prefix.to_string(),
            timeout,
            create: Script::new(&format!("{NOW_LUA}{FIRST_OPEN_LUA}{CREATE_BODY}")),
            open: Script::new(&open_script_source()),
            get: Script::new(&format!("{NOW_LUA}{GET_BODY}")),
        };
        store.ping().await?;
        Ok(store)
    }

    /// The Redis key of a link: `<prefix>link:{<id>}`.
    pub fn key(&self, id: &LinkId) -> String {
        format!("{}link:{{{}}}", self.prefix, id)
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    // The kind and the server's error code only: a Redis error message may echo arguments.
    StoreError::Unavailable(match e.code() {
        Some(code) => format!("{:?}: {code}", e.kind()),
        None => format!("{:?}", e.kind()),
    })
}

async fn bounded<T>(
    timeout: Duration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    }
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
        let mut conn = self.conn.clone();
        let stored: Option<String> = bounded(
            self.timeout,
            self.create
                .key(self.key(id))
                .arg(template)
                .arg(policy.unopened_ttl_ms)
                .arg(policy.retention_ms)
                .arg(if open_now { "1" } else { "0" })
                .invoke_async(&mut conn),
        )
        .await?;
        match stored {
            Some(json) => decode(&json),
            None => Err(StoreError::Conflict),
        }
    }

    async fn open(&self, id: &LinkId, retention_ms: u64) -> Result<OpenResult, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = bounded(
            self.timeout,
            self.open
                .key(self.key(id))
                .arg(retention_ms)
                .invoke_async(&mut conn),
        )
        .await?;
        match reply.first().map(String::as_str) {
            Some("ok") => match reply.get(1) {
                Some(json) => Ok(OpenResult::Opened(decode(json)?)),
                None => Err(StoreError::Corrupt("open script returned no record".into())),
            },
            Some("used") => Ok(OpenResult::Refused(LinkState::Used)),
            Some("expired") => Ok(OpenResult::Refused(LinkState::Expired)),
            Some("none") => Ok(OpenResult::NotFound),
            _ => Err(StoreError::Corrupt("unexpected open script reply".into())),
        }
    }

    async fn get(&self, id: &LinkId) -> Result<Option<Snapshot>, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = bounded(
            self.timeout,
            self.get.key(self.key(id)).invoke_async(&mut conn),
        )
        .await?;
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
        let mut conn = self.conn.clone();
        let pong: String = bounded(self.timeout, redis::cmd("PING").query_async(&mut conn)).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable("unexpected PING reply".into()))
        }
    }
}
