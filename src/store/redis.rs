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
//!
//! A request that fails leaves no effect, or its retry gets the same outcome:
//!
//! * Every script that changes state gets a **deadline in Redis time** (`ARGV[1]`, from
//!   [`super::clock::ClockOffset`], half of `store.timeout_ms` ahead). Past it the script writes
//!   nothing and answers the error `FAGLATE`: a script that Redis runs after the gateway gave up
//!   on it (`CLIENT PAUSE`, a stalled server, a queued re-send) changes nothing.
//! * Creates and opens carry a **request nonce**, recorded in the link (`rq`): a re-sent script
//!   (a Cluster retry after a network error) answers what the first one did, `ok` instead of
//!   `used`. When a create or an open fails without a clear answer (timeout, connection lost,
//!   replicas did not confirm), the gateway undoes it in the background, fenced by that nonce:
//!   the link is deleted (create) or made `issued` again (open), since its URL never left the
//!   gateway.
//! * With `store.min_replica_acks`, `WAIT` is pipelined right after the create or open script
//!   on the same connection; fewer confirmations than asked is a failure (503 and undo).
//!
//! Round trips: a mint or `face-auth/start` is one script (`create_guarded.lua`: the per-user
//! mint limit, the erasure index, the record and `single_active`'s swap and revoke) and an
//! open is one script (`open_guarded.lua`: the per-IP limit and the open). In a Cluster the
//! user's keys and the link's key live in different slots: the mint's user-slot script
//! (`mint_guard.lua`) runs concurrently with the create, the replaced link is revoked after
//! it, and an open counts its limit first, then opens (two round trips).

mod erasure;

use super::clock::{local_now_us, ClockOffset};
use super::redis_conn::{Conn, Conns, RedisTarget, NOT_SENT};
use async_trait::async_trait;
use redis::Script;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{
    Claim, ClaimedJob, DeadJob, Guarded, Guards, KvStore, LinkStore, OpenResult, QueuePolicy,
    ResultWrite, RevokeResult, Settle, Settled, Snapshot, StoreError, StoreRisk, WindowCount,
    WindowLimit,
};
use crate::lifecycle::{LinkId, LinkPolicy, LinkRecord, LinkResult, LinkState, NewLink};

// The Lua scripts live in `src/store/lua/`, one file each with a header giving KEYS, ARGV and
// the reply. A script runs as the shared preludes it needs (`now.lua`: the Redis clock as
// `now`; `gate.lua`: the deadline check; `first_open.lua`; `queue_expire.lua`) followed by
// its body.
const NOW_LUA: &str = include_str!("lua/now.lua");
const FIRST_OPEN_LUA: &str = include_str!("lua/first_open.lua");
const GATE_LUA: &str = include_str!("lua/gate.lua");
const CREATE_RECORD_LUA: &str = include_str!("lua/create_record.lua");
const CREATE_BODY: &str = include_str!("lua/create.lua");
const UNCREATE_LUA: &str = include_str!("lua/uncreate.lua");
const OPEN_RECORD_LUA: &str = include_str!("lua/open_record.lua");
const OPEN_BODY: &str = include_str!("lua/open.lua");
const UNOPEN_LUA: &str = include_str!("lua/unopen.lua");
const REVOKE_BODY: &str = include_str!("lua/revoke.lua");
const INCR_WINDOW_BODY: &str = include_str!("lua/incr_window.lua");
const PUT_IF_ABSENT_BODY: &str = include_str!("lua/put_if_absent.lua");
const DELETE_IF_EQUALS_LUA: &str = include_str!("lua/delete_if_equals.lua");
const REPLACE_IF_EQUALS_BODY: &str = include_str!("lua/replace_if_equals.lua");
const SET_RESULT_LUA: &str = include_str!("lua/set_result.lua");
const PUT_IF_LATER_LUA: &str = include_str!("lua/put_if_later.lua");
const READ_LATER_BODY: &str = include_str!("lua/read_later.lua");
const QUEUE_EXPIRE_LUA: &str = include_str!("lua/queue_expire.lua");
const QUEUE_PUSH_BODY: &str = include_str!("lua/queue_push.lua");
const QUEUE_CLAIM_BODY: &str = include_str!("lua/queue_claim.lua");
const QUEUE_SETTLE_BODY: &str = include_str!("lua/queue_settle.lua");
const QUEUE_DEAD_LUA: &str = include_str!("lua/queue_dead.lua");
const QUEUE_REVIVE_BODY: &str = include_str!("lua/queue_revive.lua");
const SWAP_BODY: &str = include_str!("lua/swap.lua");
const GET_BODY: &str = include_str!("lua/get.lua");
const LIMIT_LUA: &str = include_str!("lua/limit.lua");
const INDEX_LUA: &str = include_str!("lua/index.lua");
const CREATE_GUARDED_BODY: &str = include_str!("lua/create_guarded.lua");
const OPEN_GUARDED_BODY: &str = include_str!("lua/open_guarded.lua");
const MINT_GUARD_BODY: &str = include_str!("lua/mint_guard.lua");

/// The Lua source of the open script, as the store runs it (for load tests with
/// `redis-benchmark`).
pub fn open_script_source() -> String {
    format!("{NOW_LUA}{FIRST_OPEN_LUA}{OPEN_RECORD_LUA}{OPEN_BODY}")
}

/// The Lua source of the mint script on one Redis (the create behind the rate limit, the
/// erasure index and the live link), as the store runs it (for `redis-benchmark` in
/// bench/run).
pub fn mint_script_source() -> String {
    format!(
        "{NOW_LUA}{FIRST_OPEN_LUA}{LIMIT_LUA}{INDEX_LUA}{CREATE_RECORD_LUA}{CREATE_GUARDED_BODY}"
    )
}

/// The oldest Redis the scripts support: 5.0 replicates script effects by default, so a
/// script may read `TIME` before writing.
pub const MIN_REDIS_VERSION: (u32, u32) = (5, 0);

/// Store behaviour beyond the connection (from `[store]` and `auth.leeway_secs`).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `store.min_replica_acks`: replicas that must confirm each create and open (`WAIT`).
    pub min_replica_acks: u32,
    /// `store.replica_ack_timeout_ms`.
    pub replica_ack_timeout: Duration,
    /// `store.sentinel_poll_ms`.
    pub sentinel_poll: Duration,
    /// Warn when the clock offset to Redis exceeds this (`auth.leeway_secs`).
    pub clock_warn: Option<Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            min_replica_acks: 0,
            replica_ack_timeout: Duration::from_millis(100),
            sentinel_poll: Duration::from_millis(100),
            clock_warn: None,
        }
    }
}

/// Links in Redis (standalone). Cheap to clone: multiplexed connections that reconnect by
/// themselves, one per HTTP worker thread and one shared by everything else ([`Conns`]).
#[derive(Clone)]
pub struct RedisStore {
    conn: Conns,
    prefix: String,
    timeout: Duration,
    options: StoreOptions,
    sentinel: bool,
    /// A Redis Cluster: keys of different hash tags live on different nodes.
    cluster: bool,
    clock: Arc<ClockOffset>,
    create: Script,
    create_guarded: Script,
    mint_guard: Script,
    open_guarded: Script,
    uncreate: Script,
    open: Script,
    unopen: Script,
    revoke: Script,
    get: Script,
    incr_window: Script,
    put_if_absent: Script,
    delete_if_equals: Script,
    replace_if_equals: Script,
    swap: Script,
    set_result: Script,
    put_if_later: Script,
    read_later: Script,
    queue_push: Script,
    queue_claim: Script,
    queue_settle: Script,
    queue_dead: Script,
    queue_revive: Script,
    erasure: erasure::Scripts,
}

/// Why a script gave no usable answer.
enum Failure {
    /// Redis ran it after its deadline: nothing was written.
    Late,
    /// It did not run: never sent, or refused by the server.
    NotRun(StoreError),
    /// It may or may not have taken effect (timeout, connection lost, replicas did not
    /// confirm).
    Unknown(StoreError),
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Late => StoreError::Unavailable(
                "Redis ran the command after its deadline; nothing was written".into(),
            ),
            Failure::NotRun(e) | Failure::Unknown(e) => e,
        }
    }
}

impl RedisStore {
    /// Connects to `target` (standalone, Sentinel, Cluster); every key gets `key_prefix`;
    /// every command is bounded by `timeout` (connect, response and the whole call).
    ///
    /// Errors: [`StoreError::Unavailable`] if nothing answers within `timeout` (a few times
    /// that for a cluster, which asks every seed node), [`StoreError::Unsupported`] if the
    /// server is too old or refuses the scripts.
    pub async fn connect_to(
        target: &RedisTarget,
        key_prefix: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        Self::connect_with(target, key_prefix, timeout, StoreOptions::default()).await
    }

    /// Like [`RedisStore::connect_to`] with [`StoreOptions`].
    ///
    /// Errors: as [`RedisStore::connect_to`].
    pub async fn connect_with(
        target: &RedisTarget,
        key_prefix: &str,
        timeout: Duration,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let conn = bounded(
            "connect",
            timeout * 4,
            Conn::connect_with(target, timeout, options.sentinel_poll),
        )
        .await?;
        let conn = Conns::new(conn, target, timeout, options.sentinel_poll);
        let clock = Arc::new(ClockOffset::default());
        if let Some(limit) = options.clock_warn {
            clock.set_warn_threshold(limit);
        }
        let gated = |body: &str| Script::new(&format!("{NOW_LUA}{GATE_LUA}{body}"));
        let store = RedisStore {
            conn,
            prefix: key_prefix.to_string(),
            timeout,
            options,
            sentinel: matches!(target, RedisTarget::Sentinel { .. }),
            cluster: matches!(target, RedisTarget::Cluster(_)),
            clock,
            create: Script::new(&format!(
                "{NOW_LUA}{FIRST_OPEN_LUA}{CREATE_RECORD_LUA}{CREATE_BODY}"
            )),
            create_guarded: Script::new(&mint_script_source()),
            mint_guard: Script::new(&format!("{NOW_LUA}{LIMIT_LUA}{INDEX_LUA}{MINT_GUARD_BODY}")),
            open_guarded: Script::new(&format!(
                "{NOW_LUA}{FIRST_OPEN_LUA}{LIMIT_LUA}{OPEN_RECORD_LUA}{OPEN_GUARDED_BODY}"
            )),
            uncreate: Script::new(UNCREATE_LUA),
            open: Script::new(&open_script_source()),
            unopen: Script::new(&format!("{NOW_LUA}{UNOPEN_LUA}")),
            revoke: Script::new(&format!("{NOW_LUA}{REVOKE_BODY}")),
            get: Script::new(&format!("{NOW_LUA}{GET_BODY}")),
            incr_window: gated(&format!("{LIMIT_LUA}{INCR_WINDOW_BODY}")),
            put_if_absent: Script::new(&format!("{NOW_LUA}{PUT_IF_ABSENT_BODY}")),
            delete_if_equals: Script::new(DELETE_IF_EQUALS_LUA),
            replace_if_equals: Script::new(&format!("{NOW_LUA}{REPLACE_IF_EQUALS_BODY}")),
            swap: gated(SWAP_BODY),
            set_result: Script::new(SET_RESULT_LUA),
            put_if_later: Script::new(PUT_IF_LATER_LUA),
            read_later: Script::new(&format!("{NOW_LUA}{READ_LATER_BODY}")),
            queue_push: Script::new(&format!("{NOW_LUA}{QUEUE_PUSH_BODY}")),
            queue_claim: Script::new(&format!("{NOW_LUA}{QUEUE_EXPIRE_LUA}{QUEUE_CLAIM_BODY}")),
            queue_settle: Script::new(&format!("{NOW_LUA}{QUEUE_EXPIRE_LUA}{QUEUE_SETTLE_BODY}")),
            queue_dead: Script::new(&format!("{QUEUE_EXPIRE_LUA}{QUEUE_DEAD_LUA}")),
            queue_revive: Script::new(&format!("{NOW_LUA}{QUEUE_EXPIRE_LUA}{QUEUE_REVIVE_BODY}")),
            erasure: erasure::Scripts::new(),
        };
        store.ping().await?;
        store.check_server().await?;
        store.measure_clock().await?;
        Ok(store)
    }

    /// Periodic upkeep (the `store` worker): measures the clock offset to Redis.
    ///
    /// Errors: [`StoreError::Unavailable`].
    pub async fn maintain(&self) -> Result<usize, StoreError> {
        self.measure_clock().await.map(|_| 0)
    }

    /// One `TIME` round trip: updates the clock offset (and its metric and warning).
    ///
    /// Errors: [`StoreError::Unavailable`].
    pub async fn measure_clock(&self) -> Result<(), StoreError> {
        let sent = local_now_us();
        let (secs, micros): (i64, i64) = self.command("time", &redis::cmd("TIME")).await?;
        let received = local_now_us();
        self.clock.record(sent, secs * 1_000_000 + micros, received);
        Ok(())
    }

    /// Start-up check: the server is recent enough and accepts every script (this also loads
    /// them into its script cache). Errors name what is missing.
    async fn check_server(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.get();
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
            &self.create_guarded,
            &self.mint_guard,
            &self.open_guarded,
            &self.uncreate,
            &self.open,
            &self.unopen,
            &self.revoke,
            &self.get,
            &self.incr_window,
            &self.put_if_absent,
            &self.delete_if_equals,
            &self.replace_if_equals,
            &self.swap,
            &self.set_result,
            &self.put_if_later,
            &self.read_later,
            &self.queue_push,
            &self.queue_claim,
            &self.queue_settle,
            &self.queue_dead,
            &self.queue_revive,
        ]
        .into_iter()
        .chain(self.erasure.all())
        {
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

    /// The deadline (Redis time, ms) for a state-changing script sent now: half the timeout
    /// ahead, so that a script Redis runs in time has the other half to answer.
    fn deadline(&self) -> String {
        self.clock.deadline_ms(self.timeout / 2).to_string()
    }

    /// Runs a state-changing script whose `ARGV[1]` is its deadline, optionally followed by
    /// `WAIT` for `store.min_replica_acks` replicas on the same connection.
    async fn run_gated(
        &self,
        op: &'static str,
        script: &Script,
        key: String,
        args: Vec<String>,
        confirm: bool,
    ) -> Result<redis::Value, Failure> {
        self.run_gated_keys(op, script, &[key], args, confirm).await
    }

    /// [`Self::run_gated`] with several keys (one hash slot in a cluster).
    async fn run_gated_keys(
        &self,
        op: &'static str,
        script: &Script,
        keys: &[String],
        args: Vec<String>,
        confirm: bool,
    ) -> Result<redis::Value, Failure> {
        let acks = if confirm {
            self.options.min_replica_acks
        } else {
            0
        };
        let mut full = Vec::with_capacity(args.len() + 1);
        full.push(self.deadline());
        full.extend(args);
        let mut conn = self.conn.get();
        let wait_ms = self.options.replica_ack_timeout.as_millis() as u64;
        let attempt = async {
            for first in [true, false] {
                let mut evalsha = redis::cmd("EVALSHA");
                evalsha.arg(script.get_hash()).arg(keys.len()).arg(keys);
                for a in &full {
                    evalsha.arg(a);
                }
                let result: redis::RedisResult<(redis::Value, Option<i64>)> = if acks > 0 {
                    let mut pipe = redis::pipe();
                    pipe.add_command(evalsha).cmd("WAIT").arg(acks).arg(wait_ms);
                    pipe.query_async::<(redis::Value, i64)>(&mut conn)
                        .await
                        .map(|(v, n)| (v, Some(n)))
                } else {
                    evalsha
                        .query_async::<redis::Value>(&mut conn)
                        .await
                        .map(|v| (v, None))
                };
                match result {
                    Err(e) if first && e.kind() == redis::ErrorKind::NoScriptError => {
                        script.prepare_invoke().load_async(&mut conn).await?;
                    }
                    other => return other,
                }
            }
            Err(redis::RedisError::from((
                redis::ErrorKind::NoScriptError,
                "script missing after loading it",
            )))
        };
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, attempt).await;
        let m = &crate::metrics::METRICS;
        m.store_duration
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        let outcome = match result {
            Err(_) => Err(Failure::Unknown(StoreError::Unavailable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            )))),
            Ok(Err(e)) if e.code() == Some("FAGLATE") => Err(Failure::Late),
            // Never sent (no usable node), or refused by the server before the script ran
            // (READONLY, LOADING, NOSCRIPT, ACL): nothing to undo. With WAIT in the pipeline
            // an error may be WAIT's, after the script ran: undo then.
            Ok(Err(e)) if e.to_string().contains(NOT_SENT) || (acks == 0 && e.code().is_some()) => {
                Err(Failure::NotRun(unavailable(e)))
            }
            // Whether or not the script ran (a lost connection, a timeout): the caller undoes
            // it, fenced by its nonce, which is harmless if it never ran.
            Ok(Err(e)) => Err(Failure::Unknown(unavailable(e))),
            // Only a write needs confirming: a refusal (`used`, `none`, a conflict) wrote
            // nothing and stands on state that was confirmed when it was written.
            Ok(Ok((v, Some(n)))) if n < i64::from(acks) && wrote(&v) => {
                Err(Failure::Unknown(StoreError::Unavailable(format!(
                    "{n} of the {acks} replicas required by store.min_replica_acks confirmed \
                     within {wait_ms} ms"
                ))))
            }
            Ok(Ok((v, _))) => Ok(v),
        };
        match &outcome {
            Err(Failure::Late) => {
                m.store_errors.with_label_values(&[op]).inc();
                m.store_late.with_label_values(&[op, "late"]).inc();
            }
            Err(_) => m.store_errors.with_label_values(&[op]).inc(),
            Ok(_) => {}
        }
        outcome
    }

    /// [`LinkStore::create_guarded`] in a Cluster: the record's slot is not the user's, so
    /// the guard (limit, index and live link, the user's slot) and the record are written at
    /// once (one round trip of wall time); a refused or failed guard deletes the record nobody
    /// got the id of. With `single_active` (a live-link guard) the record is created first and
    /// the guard runs after it (two round trips), so a link is never made live before it
    /// exists. The link the new one replaces is revoked afterwards (one more round trip, only
    /// when there is one).
    async fn create_guarded_cluster(
        &self,
        id: &LinkId,
        link: &NewLink,
        policy: &LinkPolicy,
        open_now: bool,
        guards: &Guards,
    ) -> Result<Guarded<LinkRecord>, StoreError> {
        let nonce = nonce();
        let key = self.key(id);
        let member = id.to_string();
        let (limit, index, live) = (&guards.limit, &guards.index, &guards.live);
        let create = self.run_gated(
            "create",
            &self.create,
            key.clone(),
            create_args(link, policy, open_now, &nonce)?,
            true,
        );
        let user_keys = [
            limit.as_ref().map(|l| &l.key),
            index.as_ref().map(|i| &i.key),
            live.as_ref().map(|l| &l.key),
        ];
        // A missing key is one of the others (same slot; the script does not touch it).
        let Some(any) = user_keys.iter().flatten().next().map(|k| self.prefixed(k)) else {
            let record = self.created(create.await, key, nonce)?;
            return Ok(Guarded::Done(record, None));
        };
        let guard_keys = user_keys.map(|k| k.map_or_else(|| any.clone(), |k| self.prefixed(k)));
        let guard_args = guard_args(guards, member.clone());
        let guard = self.run_gated_keys(
            "mint_guard",
            &self.mint_guard,
            &guard_keys,
            guard_args,
            false,
        );
        let (guard, created) = if live.is_some() {
            // `single_active`: the record exists before it can become the live link. Run side
            // by side, a concurrent mint could swap this id in and fail to revoke it before
            // its create lands, leaving two live links.
            let created = self.created(create.await, key.clone(), nonce.clone())?;
            (guard.await, Ok(created))
        } else {
            let (guard, reply) = tokio::join!(guard, create);
            (guard, self.created(reply, key.clone(), nonce.clone()))
        };
        let guard: Result<Vec<String>, StoreError> = guard
            .map_err(StoreError::from)
            .and_then(from_value::<Vec<String>>);
        let undo = |created: &Result<LinkRecord, StoreError>| {
            if created.is_ok() {
                self.undo(
                    "uncreate",
                    self.uncreate.clone(),
                    key.clone(),
                    vec![nonce.clone()],
                );
            }
        };
        let g = match guard {
            Ok(g) => g,
            Err(e) => {
                undo(&created);
                if let Some(live) = live {
                    // The guard may have run: the live link must not name a deleted record.
                    let _ = self.delete_if_equals(&live.key, &member).await;
                }
                return Err(e);
            }
        };
        let window = window_count(g.get(1), g.get(2));
        match g.first().map(String::as_str) {
            Some("ok") => {}
            Some("limited") => {
                undo(&created);
                return Ok(Guarded::Limited(window));
            }
            _ => {
                undo(&created);
                return Err(StoreError::Corrupt("unexpected mint guard reply".into()));
            }
        }
        let previous = g.get(3).filter(|p| !p.is_empty() && **p != member);
        let record = match created {
            Ok(record) => record,
            Err(e) => {
                if let Some(live) = live {
                    // Nothing was issued: the user's live link is the one it was.
                    let _ = match previous {
                        Some(p) => {
                            self.replace_if_equals(&live.key, &member, p, live.ttl_ms)
                                .await
                        }
                        None => self.delete_if_equals(&live.key, &member).await,
                    };
                }
                return Err(e);
            }
        };
        if let (Some(live), Some(previous)) = (live, previous) {
            if let Ok(previous) = previous.parse::<LinkId>() {
                let revoked = self
                    .revoke(&previous, Some(&link.user_id), true, live.retention_ms)
                    .await;
                if let Err(e) = revoked {
                    // The mint answers 503: leave no record behind (nobody has its id).
                    self.undo("uncreate", self.uncreate.clone(), key, vec![nonce]);
                    return Err(e);
                }
            }
        }
        Ok(Guarded::Done(record, limit.as_ref().map(|_| window)))
    }

    /// The record `create.lua` answered; a create whose outcome is unknown is undone.
    fn created(
        &self,
        reply: Result<redis::Value, Failure>,
        key: String,
        nonce: String,
    ) -> Result<LinkRecord, StoreError> {
        let stored: Option<String> = match reply {
            Ok(v) => from_value(v)?,
            Err(Failure::Unknown(e)) => {
                self.undo("uncreate", self.uncreate.clone(), key, vec![nonce]);
                return Err(e);
            }
            Err(f) => return Err(f.into()),
        };
        match stored {
            Some(json) => decode(&json),
            None => Err(StoreError::Conflict),
        }
    }

    /// Undoes a create or open whose outcome is unknown, in the background, fenced by the
    /// request nonce (a few attempts; the store may be slow right now).
    fn undo(&self, op: &'static str, script: Script, key: String, args: Vec<String>) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            for _ in 0..6 {
                let mut conn = store.conn.get();
                let mut invocation = script.key(&key);
                for a in &args {
                    invocation.arg(a);
                }
                let result: Result<i64, StoreError> =
                    bounded(op, store.timeout, invocation.invoke_async(&mut conn)).await;
                match result {
                    Ok(n) => {
                        if n == 1 {
                            crate::metrics::METRICS
                                .store_late
                                .with_label_values(&[op, "undone"])
                                .inc();
                            tracing::info!(op, "store: undid a write whose answer was lost");
                        }
                        return;
                    }
                    Err(_) => {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            tracing::warn!(op, "store: could not undo a write whose answer was lost");
        });
    }

    /// Runs a command with the store's timeout, latency and error metrics under `op`.
    async fn command<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.get();
        bounded(op, self.timeout, cmd.query_async(&mut conn)).await
    }

    /// Runs a read-only (or idempotent) script with the store's timeout and metrics.
    async fn script<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.get();
        bounded(op, self.timeout, invocation.invoke_async(&mut conn)).await
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

    /// Reads the settings that decide whether link state can vanish or come back.
    async fn read_durability(&self) -> Result<Vec<StoreRisk>, StoreError> {
        let mut risks = Vec::new();
        let memory: redis::Value = self
            .command("check_server", redis::cmd("INFO").arg("memory"))
            .await?;
        let mut policies = Vec::new();
        collect_field(&memory, "maxmemory_policy:", &mut policies);
        if let Some(policy) = policies.iter().find(|p| p.as_str() != "noeviction") {
            risks.push(StoreRisk {
                name: "eviction",
                setting: format!("maxmemory-policy {policy}"),
                consequence: "Redis may evict link records, idempotency records and rate-limit \
                              counters under memory pressure (links then answer 404, a retried \
                              Idempotency-Key mints again, limits reset)",
                fix: "CONFIG SET maxmemory-policy noeviction (and in redis.conf), with enough \
                      maxmemory for the links",
            });
        }
        let replication: redis::Value = self
            .command("check_server", redis::cmd("INFO").arg("replication"))
            .await?;
        let mut replicas = Vec::new();
        collect_field(&replication, "connected_slaves:", &mut replicas);
        let has_replicas = replicas
            .iter()
            .any(|n| n.parse::<u32>().is_ok_and(|n| n > 0));
        if (has_replicas || self.sentinel) && self.options.min_replica_acks == 0 {
            risks.push(StoreRisk {
                name: "async-replication",
                setting: format!(
                    "replication ({} replica(s) connected{})",
                    replicas
                        .iter()
                        .filter_map(|n| n.parse::<u32>().ok())
                        .sum::<u32>(),
                    if self.sentinel { ", sentinel mode" } else { "" }
                ),
                consequence: "a failover can lose acknowledged writes: a used link can open a \
                              second time, an acknowledged mint can vanish",
                fix: "set store.min_replica_acks = 1 (Redis WAIT before answering)",
            });
        }
        let save = self.config_get("save").await;
        let aof = self.config_get("appendonly").await;
        let fsync = self.config_get("appendfsync").await;
        match (save, aof, fsync) {
            (Ok(save), Ok(aof), Ok(fsync)) => {
                let aof_on = aof.iter().any(|v| v == "yes");
                if let Some(rules) = save.iter().find(|s| !s.trim().is_empty()) {
                    if !aof.iter().all(|v| v == "yes") {
                        risks.push(StoreRisk {
                            name: "rdb-snapshots",
                            setting: format!("save \"{rules}\" with appendonly no"),
                            consequence: "after a restart Redis loads its last snapshot: links \
                                          used since then are issued again and open a second \
                                          time, revoked links come back",
                            fix: "either appendonly yes (appendfsync everysec or always), or no \
                                  persistence at all: save \"\" (a restart then forgets every \
                                  link: they answer 404 and never open)",
                        });
                    }
                }
                if aof_on {
                    if let Some(policy) = fsync.iter().find(|f| f.as_str() == "no") {
                        risks.push(StoreRisk {
                            name: "aof-fsync-no",
                            setting: format!("appendfsync {policy}"),
                            consequence: "a host crash can lose tens of seconds of writes that \
                                          a restart then misses: used links open again",
                            fix: "CONFIG SET appendfsync everysec (or always)",
                        });
                    }
                }
            }
            _ => risks.push(StoreRisk {
                name: "unverifiable",
                setting: "CONFIG GET save/appendonly/appendfsync (refused)".into(),
                consequence: "the gateway cannot tell whether a restart resurrects old link \
                              state",
                fix: "allow CONFIG GET for the gateway's user, or check the persistence \
                      settings yourself",
            }),
        }
        Ok(risks)
    }

    async fn config_get(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let value: redis::Value = self
            .command("check_server", redis::cmd("CONFIG").arg("GET").arg(name))
            .await?;
        let mut out = Vec::new();
        collect_config(&value, name, &mut out);
        if out.is_empty() {
            return Err(StoreError::Unsupported(format!(
                "CONFIG GET {name}: no value"
            )));
        }
        Ok(out)
    }
}

fn value_text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) | redis::Value::VerbatimString { text: s, .. } => {
            Some(s.clone())
        }
        _ => None,
    }
}

/// Every value of `name` in a `CONFIG GET` answer, whatever its shape (a flat name/value
/// array, a map, or one answer per cluster node).
fn collect_config(value: &redis::Value, name: &str, out: &mut Vec<String>) {
    match value {
        redis::Value::Array(items) | redis::Value::Set(items) => {
            if items.len() % 2 == 0 && items.iter().all(|v| value_text(v).is_some()) {
                for pair in items.chunks(2) {
                    if value_text(&pair[0]).as_deref() == Some(name) {
                        out.extend(value_text(&pair[1]));
                    }
                }
            } else {
                items.iter().for_each(|v| collect_config(v, name, out));
            }
        }
        redis::Value::Map(pairs) => {
            for (k, v) in pairs {
                if value_text(k).as_deref() == Some(name) {
                    out.extend(value_text(v));
                } else {
                    collect_config(v, name, out);
                }
            }
        }
        _ => {}
    }
}

/// Every value of the `INFO` field `prefix` (e.g. `maxmemory_policy:`), whatever the shape.
fn collect_field(value: &redis::Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().for_each(|v| collect_field(v, prefix, out))
        }
        redis::Value::Map(pairs) => pairs
            .iter()
            .for_each(|(_, v)| collect_field(v, prefix, out)),
        other => {
            if let Some(text) = value_text(other) {
                out.extend(
                    text.lines()
                        .filter_map(|l| l.strip_prefix(prefix))
                        .map(|v| v.trim().to_string()),
                );
            }
        }
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
    // Redis answered and refused who we are: not something waiting cures.
    if e.kind() == redis::ErrorKind::AuthenticationFailed || e.code() == Some("NOPERM") {
        return StoreError::Unsupported(format!(
            "Redis refused the gateway's credentials or permissions ({:?}); check the password \
             and ACL user in store.redis_url",
            e.kind()
        ));
    }
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

fn from_value<T: redis::FromRedisValue>(value: redis::Value) -> Result<T, StoreError> {
    redis::from_owned_redis_value(value)
        .map_err(|e| StoreError::Corrupt(format!("unexpected script reply ({:?})", e.kind())))
}

/// Whether a create or open reply reports a write: a stored record, or `{'ok', json}`.
fn wrote(reply: &redis::Value) -> bool {
    match reply {
        redis::Value::Nil => false,
        redis::Value::Array(items) => matches!(
            items.first(),
            Some(redis::Value::BulkString(b)) if b.as_slice() == b"ok"
        ),
        _ => true,
    }
}

/// The guard part of ARGV shared by `mint_guard.lua` and `create_guarded.lua`: limit, window
/// (ms), index TTL (ms), the index member (the link id), live-link TTL (ms); `""` for a guard
/// that is off.
fn guard_args(guards: &Guards, member: String) -> Vec<String> {
    let (limit, index, live) = (&guards.limit, &guards.index, &guards.live);
    vec![
        limit
            .as_ref()
            .map(|l| l.limit.to_string())
            .unwrap_or_default(),
        limit
            .as_ref()
            .map(|l| l.window_ms.to_string())
            .unwrap_or_default(),
        index
            .as_ref()
            .map(|i| i.ttl_ms.max(1).to_string())
            .unwrap_or_default(),
        member,
        live.as_ref()
            .map(|l| l.ttl_ms.max(1).to_string())
            .unwrap_or_default(),
    ]
}

/// The arguments of `create.lua` after its deadline.
fn create_args(
    link: &NewLink,
    policy: &LinkPolicy,
    open_now: bool,
    nonce: &str,
) -> Result<Vec<String>, StoreError> {
    let template = serde_json::to_string(&link.issued_record(policy, 0))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(vec![
        nonce.to_string(),
        template,
        policy.unopened_ttl_ms.to_string(),
        policy.retention_ms.to_string(),
        if open_now { "1" } else { "0" }.to_string(),
    ])
}

/// The window of a guarded script's reply (`count`, `ms until reset`).
fn window_count(count: Option<&String>, reset_ms: Option<&String>) -> WindowCount {
    let parse = |v: Option<&String>| v.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    WindowCount {
        count: parse(count).max(0) as u64,
        reset_ms: parse(reset_ms).max(0) as u64,
    }
}

/// An open script's answer: status and, for `ok`, the record's JSON.
fn open_result(status: Option<&str>, json: Option<&String>) -> Result<OpenResult, StoreError> {
    match status {
        Some("ok") => match json {
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

fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
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
        let nonce = nonce();
        let key = self.key(id);
        let args = create_args(link, policy, open_now, &nonce)?;
        let reply = self
            .run_gated("create", &self.create, key.clone(), args, true)
            .await;
        self.created(reply, key, nonce)
    }

    async fn create_guarded(
        &self,
        id: &LinkId,
        link: &NewLink,
        policy: &LinkPolicy,
        open_now: bool,
        guards: &Guards,
    ) -> Result<Guarded<LinkRecord>, StoreError> {
        if self.cluster {
            return self
                .create_guarded_cluster(id, link, policy, open_now, guards)
                .await;
        }
        let nonce = nonce();
        let key = self.key(id);
        let (limit, index, live) = (&guards.limit, &guards.index, &guards.live);
        let mut args = create_args(link, policy, open_now, &nonce)?;
        args.extend(guard_args(guards, id.to_string()));
        args.extend([
            format!("{}link:{{", self.prefix),
            live.as_ref()
                .map(|l| l.retention_ms.max(1))
                .unwrap_or(1)
                .to_string(),
            link.user_id.clone(),
        ]);
        // A missing key is the link key again (the script does not touch it then).
        let or_link = |k: Option<&String>| k.map_or_else(|| key.clone(), |k| self.prefixed(k));
        let keys = [
            key.clone(),
            or_link(limit.as_ref().map(|l| &l.key)),
            or_link(index.as_ref().map(|i| &i.key)),
            or_link(live.as_ref().map(|l| &l.key)),
        ];
        let reply = self
            .run_gated_keys("create", &self.create_guarded, &keys, args, true)
            .await;
        let reply: Vec<String> = match reply {
            Ok(v) => from_value(v)?,
            Err(Failure::Unknown(e)) => {
                self.undo("uncreate", self.uncreate.clone(), key, vec![nonce]);
                return Err(e);
            }
            Err(f) => return Err(f.into()),
        };
        let window = limit
            .as_ref()
            .map(|_| window_count(reply.get(2), reply.get(3)));
        match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("ok"), Some(json)) => Ok(Guarded::Done(decode(json)?, window)),
            (Some("conflict"), _) => Err(StoreError::Conflict),
            (Some("limited"), _) => Ok(Guarded::Limited(window_count(reply.get(2), reply.get(3)))),
            _ => Err(StoreError::Corrupt("unexpected create script reply".into())),
        }
    }

    async fn open_guarded(
        &self,
        id: &LinkId,
        retention_ms: u64,
        confirmed: bool,
        limit: Option<&WindowLimit>,
    ) -> Result<Guarded<OpenResult>, StoreError> {
        let Some(limit) = limit else {
            return Ok(Guarded::Done(
                self.open(id, retention_ms, confirmed).await?,
                None,
            ));
        };
        if self.cluster {
            // Different slots; the limit goes first (see the trait).
            let window = self.incr_window(&limit.key, limit.window_ms).await?;
            if window.count > limit.limit {
                return Ok(Guarded::Limited(window));
            }
            let opened = self.open(id, retention_ms, confirmed).await?;
            return Ok(Guarded::Done(opened, Some(window)));
        }
        let nonce = nonce();
        let key = self.key(id);
        let keys = [key.clone(), self.prefixed(&limit.key)];
        let reply = self
            .run_gated_keys(
                "open",
                &self.open_guarded,
                &keys,
                vec![
                    nonce.clone(),
                    retention_ms.to_string(),
                    if confirmed { "1" } else { "0" }.to_string(),
                    limit.limit.to_string(),
                    limit.window_ms.to_string(),
                ],
                true,
            )
            .await;
        let reply: Vec<String> = match reply {
            Ok(v) => from_value(v)?,
            Err(Failure::Unknown(e)) => {
                self.undo(
                    "unopen",
                    self.unopen.clone(),
                    key,
                    vec![nonce, retention_ms.to_string()],
                );
                return Err(e);
            }
            Err(f) => return Err(f.into()),
        };
        let window = window_count(reply.get(2), reply.get(3));
        match reply.first().map(String::as_str) {
            Some("limited") => Ok(Guarded::Limited(window)),
            status => Ok(Guarded::Done(
                open_result(status, reply.get(1))?,
                Some(window),
            )),
        }
    }

    async fn open(
        &self,
        id: &LinkId,
        retention_ms: u64,
        confirmed: bool,
    ) -> Result<OpenResult, StoreError> {
        let nonce = nonce();
        let key = self.key(id);
        let reply = self
            .run_gated(
                "open",
                &self.open,
                key.clone(),
                vec![
                    nonce.clone(),
                    retention_ms.to_string(),
                    if confirmed { "1" } else { "0" }.to_string(),
                ],
                true,
            )
            .await;
        let reply: Vec<String> = match reply {
            Ok(v) => from_value(v)?,
            Err(Failure::Unknown(e)) => {
                self.undo(
                    "unopen",
                    self.unopen.clone(),
                    key,
                    vec![nonce, retention_ms.to_string()],
                );
                return Err(e);
            }
            Err(f) => return Err(f.into()),
        };
        open_result(reply.first().map(String::as_str), reply.get(1))
    }

    async fn revoke(
        &self,
        id: &LinkId,
        owner: Option<&str>,
        only_unopened: bool,
        retention_ms: u64,
    ) -> Result<RevokeResult, StoreError> {
        let reply: String = from_value(
            self.run_gated(
                "revoke",
                &self.revoke,
                self.key(id),
                vec![
                    owner.unwrap_or("").to_string(),
                    if only_unopened { "1" } else { "0" }.to_string(),
                    retention_ms.to_string(),
                ],
                false,
            )
            .await?,
        )?;
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

    async fn discard(&self, id: &LinkId) -> Result<(), StoreError> {
        self.command::<i64>("discard", redis::cmd("DEL").arg(self.key(id)))
            .await
            .map(|_| ())
    }

    async fn durability_risks(&self) -> Result<Vec<StoreRisk>, StoreError> {
        self.read_durability().await
    }
}

#[async_trait]
impl KvStore for RedisStore {
    async fn incr_window(&self, key: &str, window_ms: u64) -> Result<WindowCount, StoreError> {
        let (count, reset_ms): (u64, i64) = from_value(
            self.run_gated(
                "incr_window",
                &self.incr_window,
                self.prefixed(key),
                vec![window_ms.to_string()],
                false,
            )
            .await?,
        )?;
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
        // On an unknown outcome the value may be written; callers that need it gone (an
        // idempotency claim) take it back with `delete_if_equals`, their value being unique.
        from_value(
            self.run_gated(
                "put_if_absent",
                &self.put_if_absent,
                self.prefixed(key),
                vec![value.to_string(), ttl_ms.to_string()],
                false,
            )
            .await?,
        )
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

    async fn replace_if_equals(
        &self,
        key: &str,
        expected: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let replaced: i64 = from_value(
            self.run_gated(
                "replace_if_equals",
                &self.replace_if_equals,
                self.prefixed(key),
                vec![expected.to_string(), value.to_string(), ttl_ms.to_string()],
                false,
            )
            .await?,
        )?;
        Ok(replaced == 1)
    }

    async fn swap(
        &self,
        key: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        from_value(
            self.run_gated(
                "swap",
                &self.swap,
                self.prefixed(key),
                vec![value.to_string(), ttl_ms.to_string()],
                false,
            )
            .await?,
        )
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.command::<i64>("delete", redis::cmd("DEL").arg(self.prefixed(key)))
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
