//! One connection type for every Redis topology: a standalone server (multiplexed connection
//! that reconnects by itself), a Sentinel-managed master (re-resolved through the sentinels
//! after a connection error or a `READONLY` answer, i.e. after a failover), or a Redis Cluster
//! (slot-aware, follows `MOVED`/`ASK` and failovers). Every script of the store touches one
//! key, so it runs on one slot in a cluster.

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value,
};
use std::sync::Arc;
use std::time::Duration;

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

struct SentinelConn {
    client: tokio::sync::Mutex<SentinelClient>,
    current: tokio::sync::RwLock<Option<MultiplexedConnection>>,
    config: AsyncConnectionConfig,
}

impl SentinelConn {
    async fn get(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(c) = self.current.read().await.clone() {
            return Ok(c);
        }
        let mut client = self.client.lock().await;
        if let Some(c) = self.current.read().await.clone() {
            return Ok(c);
        }
        let c = client
            .get_async_connection_with_config(&self.config)
            .await?;
        *self.current.write().await = Some(c.clone());
        Ok(c)
    }

    async fn forget_if_failed<T>(&self, result: &RedisResult<T>) {
        if let Err(e) = result {
            if e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                || e.code() == Some("READONLY")
            {
                *self.current.write().await = None;
            }
        }
    }
}

/// A connection to any topology; cheap to clone.
#[derive(Clone)]
pub enum Conn {
    /// Standalone.
    Single(ConnectionManager),
    /// Sentinel-managed master.
    Sentinel(Arc<SentinelConnHandle>),
    /// Cluster.
    Cluster(ClusterConnection),
}

/// Opaque handle of a Sentinel connection.
pub struct SentinelConnHandle(SentinelConn);

impl Conn {
    /// Connects to `target` with `timeout` for connecting and for each answer.
    ///
    /// Errors: the Redis error (bad URL, nothing reachable).
    pub async fn connect(target: &RedisTarget, timeout: Duration) -> RedisResult<Conn> {
        match target {
            RedisTarget::Standalone(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout)
                    .set_number_of_retries(1)
                    .set_max_delay(timeout.as_millis() as u64);
                Ok(Conn::Single(
                    ConnectionManager::new_with_config(client, config).await?,
                ))
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
                let info = SentinelNodeConnectionInfo {
                    tls_mode: None,
                    redis_connection_info: Some(node.redis.clone()),
                };
                let client = SentinelClient::build(
                    sentinels.clone(),
                    master.clone(),
                    Some(info),
                    SentinelServerType::Master,
                )?;
                let conn = SentinelConn {
                    client: tokio::sync::Mutex::new(client),
                    current: tokio::sync::RwLock::new(None),
                    config: AsyncConnectionConfig::new()
                        .set_connection_timeout(timeout)
                        .set_response_timeout(timeout),
                };
                conn.get().await?;
                Ok(Conn::Sentinel(Arc::new(SentinelConnHandle(conn))))
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move {
                    let mut c = s.0.get().await?;
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
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move {
                    let mut c = s.0.get().await?;
                    let result = c.req_packed_commands(cmd, offset, count).await;
                    s.0.forget_if_failed(&result).await;
                    result
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            _ => 0,
        }
    }
}
