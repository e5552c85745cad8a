//! One connection type for every Redis topology: a standalone server (multiplexed connection
//! that reconnects by itself), a Sentinel-managed master (re-resolved through the sentinels
//! after a connection error or a `READONLY` answer, i.e. after a failover), or a Redis Cluster
//! (slot-aware, follows `MOVED`/`ASK` and failovers). Every script of the store touches one
//! key, so it runs on one slot in a cluster.
//!
//! In Sentinel mode the connection follows the master, not the socket: see `SentinelConn`'s
//! watcher, which drops the connection as soon as the sentinels name another master.

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline,
    RedisFuture, RedisResult, Value,
};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where Redis is (`store.redis_mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server: `redis://[:password@]host:port/db`.
    Standalone(String),
    /// A master found through sentinels. `node_url` carries the master's password and db.
    Sentinel {
        /// `store.sentinel_master`.
        master: String,
        /// `store.sentinel_nodes`: `redis://host:port` of each sentinel.
        sentinels: Vec<String>,
        /// `store.redis_url`, for the master's credentials and db.
        node_url: String,
    },
    /// A cluster, from seed nodes (`store.cluster_nodes`).
    Cluster(Vec<String>),
}

/// In the error of a command that was never sent (no usable node): it cannot have run.
pub const NOT_SENT: &str = "command not sent: no usable Redis node";

fn not_sent(e: redis::RedisError) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::ClientError, NOT_SENT, e.to_string()))
}

/// The master a replica list belongs to, and each replica with its connection.
type Replicas = (
    Option<ConnectionAddr>,
    Vec<(ConnectionAddr, Option<MultiplexedConnection>)>,
);

/// The master of a Sentinel-managed group, followed as it moves.
///
/// * Resolution asks the sentinels (`SENTINEL get-master-addr-by-name`) and then checks `ROLE`
///   on the node they name: only a node that says `master` is used.
/// * A watcher task asks the sentinels again every `poll`, checks `ROLE` on the node in use
///   and on each of its replicas (from its `INFO replication`). When the sentinels name another
///   node (a failover, `+switch-master`), the node is no longer a master, or one of its
///   replicas says it is a master (a promotion the sentinels have not announced yet), the
///   connection is dropped at once, so no further command reaches it; in the last case the
///   node stays fenced until the sentinels name another one.
/// * A connection error, a timeout, or a `READONLY`, `LOADING` or `MASTERDOWN` answer drops it
///   too; that request answers `503` and the next one resolves again.
struct SentinelConn {
    master: String,
    sentinels: Vec<ConnectionInfo>,
    node: redis::RedisConnectionInfo,
    current: tokio::sync::RwLock<Option<(ConnectionAddr, MultiplexedConnection)>>,
    resolving: tokio::sync::Mutex<()>,
    sentinel_conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    config: AsyncConnectionConfig,
    timeout: Duration,
    /// A master one of whose replicas now says it is a master (a failover under way that the
    /// sentinels have not announced yet): not used while that lasts.
    fenced: tokio::sync::Mutex<Option<(ConnectionAddr, ConnectionAddr)>>,
    /// Replicas of the master at the first address (from its `INFO replication`), with a
    /// connection each.
    replicas: tokio::sync::Mutex<Replicas>,
    /// When Redis last refused the gateway's credentials while connecting (see [`refused`]):
    /// no new attempt before [`REBUILD_BACKOFF`] has passed.
    refused_at: std::sync::Mutex<Option<Instant>>,
}

fn same_addr(a: &ConnectionAddr, b: &ConnectionAddr) -> bool {
    match (a, b) {
        (ConnectionAddr::Tcp(h1, p1), ConnectionAddr::Tcp(h2, p2)) => h1 == h2 && p1 == p2,
        _ => false,
    }
}

impl SentinelConn {
    async fn get(&self) -> RedisResult<MultiplexedConnection> {
        if let Some((_, c)) = self.current.read().await.clone() {
            return Ok(c);
        }
        let _guard = self.resolving.lock().await;
        if let Some((_, c)) = self.current.read().await.clone() {
            return Ok(c);
        }
        if lock(&self.refused_at).is_some_and(|at| at.elapsed() < REBUILD_BACKOFF) {
            return Err(redis::RedisError::from((
                redis::ErrorKind::AuthenticationFailed,
                "Redis refused the credentials a moment ago; not trying again yet",
            )));
        }
        let resolved = self.resolve().await;
        *lock(&self.refused_at) = match &resolved {
            Err(e) if refused(e) => Some(Instant::now()),
            _ => None,
        };
        let (addr, c) = resolved?;
        *self.current.write().await = Some((addr, c.clone()));
        Ok(c)
    }

    async fn resolve(&self) -> RedisResult<(ConnectionAddr, MultiplexedConnection)> {
        let addr = self.master_addr().await?;
        if let Some((old, promoted)) = self.fenced.lock().await.clone() {
            if same_addr(&old, &addr) && self.says_master(&promoted).await {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::ReadOnly,
                    "failover under way: a replica of the master was promoted",
                )));
            }
        }
        let c = self.connect_master(&addr).await?;
        Ok((addr, c))
    }

    /// The master's address according to the first sentinel that answers.
    async fn master_addr(&self) -> RedisResult<ConnectionAddr> {
        let mut cached = self.sentinel_conn.lock().await;
        if let Some(c) = cached.as_mut() {
            match self.ask(c).await {
                Ok(addr) => return Ok(addr),
                Err(_) => *cached = None,
            }
        }
        let mut last = None;
        for info in &self.sentinels {
            let attempt = async {
                let client = redis::Client::open(info.clone())?;
                let mut c = client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?;
                let addr = self.ask(&mut c).await?;
                Ok::<_, redis::RedisError>((c, addr))
            };
            match attempt.await {
                Ok((c, addr)) => {
                    *cached = Some(c);
                    return Ok(addr);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::ClientError, "no sentinel configured"))
        }))
    }

    async fn ask(&self, c: &mut MultiplexedConnection) -> RedisResult<ConnectionAddr> {
        let reply: Option<(String, u16)> = tokio::time::timeout(
            self.timeout,
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master)
                .query_async(c),
        )
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
        })??;
        match reply {
            Some((host, port)) => Ok(ConnectionAddr::Tcp(host, port)),
            None => Err(redis::RedisError::from((
                redis::ErrorKind::ClientError,
                "the sentinels know no master by the name store.sentinel_master",
            ))),
        }
    }

    async fn connect_master(&self, addr: &ConnectionAddr) -> RedisResult<MultiplexedConnection> {
        let client = redis::Client::open(ConnectionInfo {
            addr: addr.clone(),
            redis: self.node.clone(),
        })?;
        let mut c = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        if !is_master(&mut c).await? {
            return Err(redis::RedisError::from((
                redis::ErrorKind::ReadOnly,
                "the node the sentinels name is not a master (yet)",
            )));
        }
        Ok(c)
    }

    async fn forget(&self, why: &'static str) {
        let mut current = self.current.write().await;
        if current.take().is_some() {
            tracing::warn!(
                reason = why,
                "store: leaving the Redis node (sentinel mode)"
            );
        }
    }

    async fn forget_if_failed<T>(&self, result: &RedisResult<T>) {
        if let Err(e) = result {
            if e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                || matches!(e.code(), Some("READONLY" | "LOADING" | "MASTERDOWN"))
            {
                self.forget("error from the master").await;
            }
        }
    }

    /// Whether the node at `addr` says it is a master (a short-lived connection).
    async fn says_master(&self, addr: &ConnectionAddr) -> bool {
        let attempt = async {
            let client = redis::Client::open(ConnectionInfo {
                addr: addr.clone(),
                redis: self.node.clone(),
            })?;
            let mut c = client
                .get_multiplexed_async_connection_with_config(&self.config)
                .await?;
            is_master(&mut c).await
        };
        matches!(
            tokio::time::timeout(self.timeout, attempt).await,
            Ok(Ok(true))
        )
    }

    /// Whether a replica of the master in use was promoted (the first step of a failover,
    /// before the sentinels announce it): asks `ROLE` of each replica the master listed.
    async fn promoted_replica(
        &self,
        master: &ConnectionAddr,
        c: &mut MultiplexedConnection,
    ) -> Option<ConnectionAddr> {
        let listed = tokio::time::timeout(
            self.timeout,
            redis::cmd("INFO")
                .arg("replication")
                .query_async::<String>(c),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|info| replica_addrs(&info));
        let mut guard = self.replicas.lock().await;
        if !guard.0.as_ref().is_some_and(|m| same_addr(m, master)) {
            *guard = (Some(master.clone()), Vec::new());
        }
        let replicas = &mut guard.1;
        // Keep replicas that vanished from the list: a promoted replica leaves it.
        for addr in listed.unwrap_or_default() {
            if !replicas.iter().any(|(a, _)| same_addr(a, &addr)) {
                replicas.push((addr, None));
            }
        }
        for (addr, conn) in replicas.iter_mut() {
            if conn.is_none() {
                let client = redis::Client::open(ConnectionInfo {
                    addr: addr.clone(),
                    redis: self.node.clone(),
                })
                .ok()?;
                *conn = tokio::time::timeout(
                    self.timeout,
                    client.get_multiplexed_async_connection_with_config(&self.config),
                )
                .await
                .ok()
                .and_then(Result::ok);
            }
            if let Some(rc) = conn.as_mut() {
                match tokio::time::timeout(self.timeout, is_master(rc)).await {
                    Ok(Ok(true)) => return Some(addr.clone()),
                    Ok(Ok(false)) => {}
                    _ => *conn = None,
                }
            }
        }
        None
    }

    /// One watcher round: the sentinels still name the node in use, it is still a master, and
    /// none of its replicas has been promoted.
    async fn watch_once(&self) {
        let Some((addr, mut c)) = self.current.read().await.clone() else {
            return;
        };
        match self.master_addr().await {
            Ok(named) if !same_addr(&named, &addr) => {
                self.forget("the sentinels name another master (failover)")
                    .await;
                return;
            }
            // Sentinels unreachable: keep the node; its ROLE still decides.
            _ => {}
        }
        match tokio::time::timeout(self.timeout, is_master(&mut c)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                self.forget("the node is no longer a master").await;
                return;
            }
            Ok(Err(_)) | Err(_) => {
                self.forget("ROLE check failed").await;
                return;
            }
        }
        if let Some(promoted) = self.promoted_replica(&addr, &mut c).await {
            *self.fenced.lock().await = Some((addr, promoted));
            *self.replicas.lock().await = (None, Vec::new());
            self.forget("a replica of the master was promoted (failover under way)")
                .await;
        }
    }
}

/// The `ip=…,port=…` of each `slaveN:` line of `INFO replication`.
fn replica_addrs(info: &str) -> Vec<ConnectionAddr> {
    info.lines()
        .filter(|l| l.starts_with("slave") && l.contains(":ip="))
        .filter_map(|l| {
            let fields = l.split_once(':')?.1;
            let mut ip = None;
            let mut port = None;
            for kv in fields.split(',') {
                match kv.split_once('=') {
                    Some(("ip", v)) => ip = Some(v.to_string()),
                    Some(("port", v)) => port = v.parse::<u16>().ok(),
                    _ => {}
                }
            }
            Some(ConnectionAddr::Tcp(ip?, port?))
        })
        .collect()
}

async fn is_master(c: &mut MultiplexedConnection) -> RedisResult<bool> {
    let role: Value = redis::cmd("ROLE").query_async(c).await?;
    let first = match &role {
        Value::Array(items) => items.first(),
        _ => None,
    };
    Ok(match first {
        Some(Value::BulkString(b)) => b.as_slice() == b"master",
        Some(Value::SimpleString(s)) => s == "master",
        _ => false,
    })
}

/// How long a connection Redis refused (credentials or permissions) waits before it is
/// rebuilt again: a wrong password costs one connection attempt per this, not one per request.
const REBUILD_BACKOFF: Duration = Duration::from_millis(500);

/// Whether Redis refused who the gateway is (a wrong password, an ACL user without the
/// permission). A `ConnectionManager` that meets this while reconnecting keeps that failure
/// for good (it only reconnects after I/O errors), and a Sentinel master connection would be
/// retried on every request: both wait [`REBUILD_BACKOFF`] and then build a new connection.
fn refused(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed || e.code() == Some("NOPERM")
}

/// A standalone server: a `ConnectionManager` (which reconnects by itself after I/O errors),
/// replaced by a new one after Redis refused the gateway's credentials (see [`refused`]): the
/// next request at least [`REBUILD_BACKOFF`] after the last attempt builds it first. Until
/// then requests keep failing (fail closed).
pub struct SingleConn {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// The runtime the connection was opened on (a worker's own, or the shared one's): the
    /// rebuilt connection's driver runs there too.
    runtime: tokio::runtime::Handle,
    current: std::sync::Mutex<ConnectionManager>,
    rebuild: std::sync::Mutex<Rebuild>,
}

/// Whether a [`SingleConn`] needs rebuilding, and when it may next be tried.
struct Rebuild {
    refused: bool,
    running: bool,
    not_before: Instant,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SingleConn {
    /// The connection to send a command on: after a refusal, once the backoff has passed, a
    /// new one (built in a task of the connection's runtime, so a request that gives up
    /// waiting does not cancel it); meanwhile, or if that fails, the current one.
    async fn manager(self: &Arc<Self>) -> ConnectionManager {
        let due = {
            let mut r = lock(&self.rebuild);
            let due = r.refused && !r.running && Instant::now() >= r.not_before;
            if due {
                r.running = true;
            }
            due
        };
        if due {
            let this = self.clone();
            let task = self.runtime.spawn(async move {
                let fresh =
                    ConnectionManager::new_with_config(this.client.clone(), this.config.clone())
                        .await;
                let ok = fresh.is_ok();
                match fresh {
                    Ok(m) => {
                        *lock(&this.current) = m;
                        tracing::info!("store: Redis connection rebuilt after a refusal");
                    }
                    Err(e) => tracing::debug!(
                        kind = ?e.kind(),
                        "store: rebuilding the Redis connection failed; trying again later"
                    ),
                }
                let mut r = lock(&this.rebuild);
                r.refused = !ok;
                r.running = false;
                r.not_before = Instant::now() + REBUILD_BACKOFF;
            });
            let _ = task.await;
        }
        lock(&self.current).clone()
    }

    /// After an answer: a refusal marks the connection for rebuilding.
    fn after<T>(&self, result: &RedisResult<T>) {
        if let Err(e) = result {
            if refused(e) {
                lock(&self.rebuild).refused = true;
            }
        }
    }
}

/// A connection to any topology; cheap to clone.
#[derive(Clone)]
pub enum Conn {
    /// Standalone.
    Single(Arc<SingleConn>),
    /// Sentinel-managed master.
    Sentinel(Arc<SentinelConnHandle>),
    /// Cluster.
    Cluster(ClusterConnection),
}

/// Opaque handle of a Sentinel connection.
pub struct SentinelConnHandle(SentinelConn);

impl Conn {
    /// Connects to `target` with `timeout` for connecting and for each answer; in Sentinel mode the sentinels are asked every `sentinel_poll`
    /// which node is the master (the watcher stops when the last clone is dropped).
    pub async fn connect_with(
        target: &RedisTarget,
        timeout: Duration,
        sentinel_poll: Duration,
    ) -> RedisResult<Conn> {
        match target {
            RedisTarget::Standalone(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout)
                    .set_number_of_retries(1)
                    .set_max_delay(timeout.as_millis() as u64);
                let manager =
                    ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
                Ok(Conn::Single(Arc::new(SingleConn {
                    client,
                    config,
                    runtime: tokio::runtime::Handle::current(),
                    current: std::sync::Mutex::new(manager),
                    rebuild: std::sync::Mutex::new(Rebuild {
                        refused: false,
                        running: false,
                        not_before: Instant::now(),
                    }),
                })))
            }
            RedisTarget::Cluster(nodes) => {
                let client = redis::cluster::ClusterClient::builder(nodes.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2)
                    .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
            RedisTarget::Sentinel {
                master,
                sentinels,
                node_url,
            } => {
                let node = node_url.as_str().into_connection_info()?;
                let sentinels = sentinels
                    .iter()
                    .map(|s| s.as_str().into_connection_info())
                    .collect::<RedisResult<Vec<_>>>()?;
                let conn = SentinelConn {
                    master: master.clone(),
                    sentinels,
                    node: node.redis,
                    current: tokio::sync::RwLock::new(None),
                    resolving: tokio::sync::Mutex::new(()),
                    sentinel_conn: tokio::sync::Mutex::new(None),
                    config: AsyncConnectionConfig::new()
                        .set_connection_timeout(timeout)
                        .set_response_timeout(timeout),
                    timeout,
                    fenced: tokio::sync::Mutex::new(None),
                    replicas: tokio::sync::Mutex::new((None, Vec::new())),
                    refused_at: std::sync::Mutex::new(None),
                };
                conn.get().await?;
                let handle = Arc::new(SentinelConnHandle(conn));
                let weak = Arc::downgrade(&handle);
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(sentinel_poll).await;
                        let Some(handle) = weak.upgrade() else {
                            return;
                        };
                        handle.0.watch_once().await;
                    }
                });
                Ok(Conn::Sentinel(handle))
            }
        }
    }
}

/// How long a worker waits before it tries again to open its own connection after a failure
/// (meanwhile it uses the shared one).
const WORKER_RETRY: Duration = Duration::from_secs(1);

thread_local! {
    /// Whether this thread is an HTTP worker (see [`mark_worker_thread`]).
    static WORKER: Cell<bool> = const { Cell::new(false) };
    /// This worker's own connection of each store (by [`Conns`] id).
    static LOCAL: RefCell<Vec<(u64, Local)>> = const { RefCell::new(Vec::new()) };
}

/// A worker's own connection of one store.
enum Local {
    Connecting,
    Ready(Conn),
    Failed(Instant),
}

/// Marks the calling thread as an HTTP worker: a single-threaded runtime that lives as long
/// as the thread. From then on [`Conns::get`] on this thread answers with a connection of
/// this thread, whose driver task runs here too (no request wakes another thread). Called
/// from the `HttpServer` app factory, which actix runs on each worker thread.
pub fn mark_worker_thread() {
    WORKER.with(|w| w.set(true));
}

/// The store's connections: one shared by the background workers (and every thread not
/// marked as an HTTP worker), and one per HTTP worker thread, opened lazily on that thread.
/// Each is a [`Conn`] of the same topology with the same settings, so it keeps every fault
/// behaviour (reconnecting, Sentinel re-resolution and its watcher, Cluster redirections).
/// Until a worker's own connection is ready (or while it cannot be opened) the worker uses
/// the shared one: opening never delays a request.
#[derive(Clone)]
pub struct Conns(Arc<ConnsInner>);

struct ConnsInner {
    id: u64,
    shared: Conn,
    target: RedisTarget,
    timeout: Duration,
    sentinel_poll: Duration,
}

impl Conns {
    /// `shared`, connected to `target` with these settings (see [`Conn::connect_with`]).
    pub fn new(
        shared: Conn,
        target: &RedisTarget,
        timeout: Duration,
        sentinel_poll: Duration,
    ) -> Conns {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Conns(Arc::new(ConnsInner {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            shared,
            target: target.clone(),
            timeout,
            sentinel_poll,
        }))
    }

    /// The connection for a command sent from this thread.
    pub fn get(&self) -> Conn {
        if !WORKER.with(Cell::get) {
            return self.0.shared.clone();
        }
        let id = self.0.id;
        let open = LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            match local.iter_mut().find(|(i, _)| *i == id) {
                Some((_, Local::Ready(c))) => return Err(c.clone()),
                Some((_, Local::Connecting)) => return Ok(false),
                Some((_, state @ Local::Failed(_))) => {
                    if matches!(state, Local::Failed(at) if at.elapsed() < WORKER_RETRY) {
                        return Ok(false);
                    }
                    *state = Local::Connecting;
                }
                None => local.push((id, Local::Connecting)),
            }
            Ok(true)
        });
        match open {
            Err(own) => own,
            Ok(start) => {
                if start {
                    self.open_own();
                }
                self.0.shared.clone()
            }
        }
    }

    /// Opens this worker's connection in a task of this thread's runtime.
    fn open_own(&self) {
        let current_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
        if !current_thread {
            set_local(self.0.id, Local::Failed(Instant::now()));
            return;
        }
        let inner = self.0.clone();
        tokio::spawn(async move {
            let attempt = async {
                let conn =
                    Conn::connect_with(&inner.target, inner.timeout, inner.sentinel_poll).await?;
                // A Sentinel connection checks the master's replicas once before use, as the
                // shared one's watcher does, so a worker that connects during a failover
                // fences the old master like the others.
                if let Conn::Sentinel(s) = &conn {
                    s.0.watch_once().await;
                }
                Ok::<_, redis::RedisError>(conn)
            };
            let state = match tokio::time::timeout(inner.timeout * 4, attempt).await {
                Ok(Ok(conn)) => Local::Ready(conn),
                _ => Local::Failed(Instant::now()),
            };
            // The task runs on the worker's single-threaded runtime: the same thread.
            set_local(inner.id, state);
        });
    }
}

fn set_local(id: u64, state: Local) {
    LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        match local.iter_mut().find(|(i, _)| *i == id) {
            Some((_, s)) => *s = state,
            None => local.push((id, state)),
        }
    });
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(s) => {
                let s = s.clone();
                Box::pin(async move {
                    let result = s.manager().await.req_packed_command(cmd).await;
                    s.after(&result);
                    result
                })
            }
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move {
                    let mut c = s.0.get().await.map_err(not_sent)?;
                    let result = c.req_packed_command(cmd).await;
                    s.0.forget_if_failed(&result).await;
                    result
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(s) => {
                let s = s.clone();
                Box::pin(async move {
                    let result = s
                        .manager()
                        .await
                        .req_packed_commands(cmd, offset, count)
                        .await;
                    s.after(&result);
                    result
                })
            }
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move {
                    let mut c = s.0.get().await.map_err(not_sent)?;
                    let result = c.req_packed_commands(cmd, offset, count).await;
                    s.0.forget_if_failed(&result).await;
                    result
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(s) => lock(&s.current).get_db(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_addresses_from_info_replication() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                    slave0:ip=10.0.0.2,port=6380,state=online,offset=42,lag=0\r\n\
                    slave1:ip=10.0.0.3,port=6381,state=wait_bgsave,offset=0,lag=1\r\n\
                    master_replid:abc\r\n";
        let addrs = replica_addrs(info);
        assert_eq!(addrs.len(), 2);
        assert!(same_addr(
            &addrs[0],
            &ConnectionAddr::Tcp("10.0.0.2".into(), 6380)
        ));
        assert!(same_addr(
            &addrs[1],
            &ConnectionAddr::Tcp("10.0.0.3".into(), 6381)
        ));
        assert!(replica_addrs("role:master\r\nconnected_slaves:0\r\n").is_empty());
    }

    #[test]
    fn an_unsent_command_says_so() {
        let e = not_sent(redis::RedisError::from(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(e.to_string().contains(NOT_SENT), "{e}");
        assert_eq!(e.code(), None);
    }
}
