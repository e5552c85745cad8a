//! Redis for the suite: the shared server (or cluster), private servers started per test, key
//! prefixes and the keys' TTLs.

use super::{free_port, poll_until};
use faceauth_gateway::store::memory::MemoryStore;
use faceauth_gateway::store::redis::RedisStore;
use faceauth_gateway::store::Store;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

/// A private `redis-server` on a free loopback port, killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Child,
}

impl RedisServer {
    /// Starts one; `None` if `redis-server` is not installed.
    pub fn start() -> Option<RedisServer> {
        let port = free_port();
        Self::start_on(port)
    }

    pub fn start_on(port: u16) -> Option<RedisServer> {
        Self::start_with(port, &[])
    }

    /// Starts one on `port` with extra command-line settings (e.g. `--rename-command`).
    pub fn start_with(port: u16, extra: &[&str]) -> Option<RedisServer> {
        // A replica's full sync writes an RDB file even with --save "": keep it out of the repo.
        let dir = std::env::temp_dir().join(format!("fag-redis-{port}"));
        std::fs::create_dir_all(&dir).ok()?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                dir.to_str()?,
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut server = RedisServer { port, child };
        // Ready means it answers PING (not just accepts TCP: it may still be loading).
        let url = server.url();
        let ready = poll_until(Duration::from_secs(20), || redis_answers(&url));
        if !ready {
            let exited = server.child.try_wait().ok().flatten();
            panic!(
                "redis-server on port {port} did not answer PING within 20 s (exited: {exited:?})"
            );
        }
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether the Redis at `url` answers `PING` with `PONG` (or, for a server with a password
/// the URL lacks, with `NOAUTH`: it is up and serving).
pub fn redis_answers(url: &str) -> bool {
    let pong = redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
    match pong {
        Ok(pong) => pong == "PONG",
        Err(e) => e.code() == Some("NOAUTH"),
    }
}

/// The Redis the suite uses: `REDIS_URL`, else 127.0.0.1:6379, else a private server started
/// once for the whole test binary (a watchdog shell stops it when the test process exits).
pub fn redis_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return url;
        }
        let local = "redis://127.0.0.1:6379/0".to_string();
        if redis_answers(&local) {
            return local;
        }
        let port = free_port();
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no & r=$!; \
             while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $r",
            parent = std::process::id()
        );
        // The watchdog outlives this call on purpose; it exits with the test process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("no Redis at REDIS_URL or 127.0.0.1:6379, and no shell to start one");
        let url = format!("redis://127.0.0.1:{port}/0");
        if poll_until(Duration::from_secs(20), || redis_answers(&url)) {
            return url;
        }
        panic!("no Redis at REDIS_URL or 127.0.0.1:6379, and redis-server did not start");
    })
    .clone()
}

/// `REDIS_CLUSTER_NODES` (comma-separated `redis://` URLs): run the suite against a cluster.
pub fn cluster_nodes() -> Option<Vec<String>> {
    std::env::var("REDIS_CLUSTER_NODES")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.split(',').map(|n| n.trim().to_string()).collect())
}

/// Where the store tests' Redis is.
pub fn test_target() -> faceauth_gateway::store::redis_conn::RedisTarget {
    use faceauth_gateway::store::redis_conn::RedisTarget;
    match cluster_nodes() {
        Some(nodes) => RedisTarget::Cluster(nodes),
        None => RedisTarget::Standalone(redis_url()),
    }
}

pub fn random_prefix() -> String {
    format!("fagtest:{}:", uuid::Uuid::new_v4().simple())
}

/// (key, PTTL) of every key under `prefix` on `nodes` (each node scanned and asked itself, so
/// this works on a cluster too). `None` if a node does not answer.
pub fn key_ttls(nodes: &[String], prefix: &str) -> Option<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for node in nodes {
        let mut conn = redis::Client::open(node.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
            .ok()?;
        let keys: Vec<String> =
            redis::Commands::scan_match::<_, String>(&mut conn, format!("{prefix}*"))
                .map(|iter| iter.collect())
                .ok()?;
        for key in keys {
            let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).ok()?;
            if !out.iter().any(|(k, _)| k == &key) {
                out.push((key, pttl));
            }
        }
    }
    Some(out)
}

/// A child process, killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One command to the Redis (or sentinel) on 127.0.0.1:`port`; `None` if it does not answer.
pub fn redis_cmd(port: u16, args: &[&str]) -> Option<redis::Value> {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .ok()?
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut c).ok()
}

/// Whether `INFO section` of the Redis on `port` contains `needle`.
pub fn info_has(port: u16, section: &str, needle: &str) -> bool {
    match redis_cmd(port, &["INFO", section]) {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).contains(needle),
        Some(redis::Value::VerbatimString { text, .. }) => text.contains(needle),
        _ => false,
    }
}

/// The master's port as `SENTINEL get-master-addr-by-name mymaster` names it.
pub fn sentinel_master_port(sentinel_port: u16) -> Option<u16> {
    match redis_cmd(
        sentinel_port,
        &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"],
    )? {
        redis::Value::Array(v) => match v.get(1)? {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// Polls `f` until it holds; panics naming `what` after `within`.
pub fn wait_until(what: &str, within: Duration, f: impl FnMut() -> bool) {
    assert!(poll_until(within, f), "timed out: {what}");
}

/// The first word of `ROLE` (`master`, `slave`, `sentinel`) of the Redis on `port`.
pub fn role(port: u16) -> Option<String> {
    match redis_cmd(port, &["ROLE"]) {
        Some(redis::Value::Array(v)) => match v.first() {
            Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// The suite's Sentinel set: a master, its replica and one sentinel monitoring `mymaster`
/// (quorum 1, down after 1 s), each on a free port; ready when the sentinel names the master,
/// the master says it is one, and the sentinel knows the replica it would promote. Everything
/// is stopped and the sentinel's directory removed on drop.
pub struct SentinelSet {
    pub master: RedisServer,
    pub master_port: u16,
    pub replica_port: u16,
    pub sentinel_port: u16,
    dir: std::path::PathBuf,
    _replica: RedisServer,
    _sentinel: Proc,
}

impl SentinelSet {
    pub fn start() -> SentinelSet {
        let master_port = free_port();
        let master = RedisServer::start_on(master_port).expect("redis-server is needed");
        let replica_port = free_port();
        let replica = RedisServer::start_with(
            replica_port,
            &["--replicaof", "127.0.0.1", &master_port.to_string()],
        )
        .unwrap();
        wait_until("replica linked", Duration::from_secs(10), || {
            info_has(replica_port, "replication", "master_link_status:up")
        });
        let sentinel_port = free_port();
        let dir =
            std::env::temp_dir().join(format!("fag-sentinel-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor mymaster 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds mymaster 1000\n\
                 sentinel failover-timeout mymaster 4000\n",
                dir.display()
            ),
        )
        .unwrap();
        let sentinel = Proc(
            Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_until("sentinel names the master", Duration::from_secs(15), || {
            sentinel_master_port(sentinel_port) == Some(master_port)
        });
        wait_until(
            "master answers ROLE master",
            Duration::from_secs(15),
            || role(master_port).as_deref() == Some("master"),
        );
        wait_until("sentinel sees the replica", Duration::from_secs(15), || {
            matches!(redis_cmd(sentinel_port, &["SENTINEL", "REPLICAS", "mymaster"]),
                Some(redis::Value::Array(v)) if !v.is_empty())
        });
        SentinelSet {
            master,
            master_port,
            replica_port,
            sentinel_port,
            dir,
            _replica: replica,
            _sentinel: sentinel,
        }
    }

    /// Points a gateway's store at this set (Sentinel mode, master `mymaster`).
    pub fn configure(&self, s: &mut faceauth_gateway::Settings) {
        s.store.redis_mode = faceauth_gateway::config::RedisMode::Sentinel;
        s.store.sentinel_master = "mymaster".into();
        s.store.sentinel_nodes = vec![format!("redis://127.0.0.1:{}", self.sentinel_port)];
        s.store.redis_url = Some(secrecy::SecretString::from(format!(
            "redis://127.0.0.1:{}/0",
            self.master_port
        )));
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// Both store backends, fresh: the memory store and a Redis store on the suite's Redis (or
/// cluster) under a new prefix, each named.
pub async fn store_backends() -> Vec<(&'static str, Arc<dyn Store>)> {
    let redis = RedisStore::connect_to(&test_target(), &random_prefix(), Duration::from_secs(2))
        .await
        .unwrap();
    vec![
        ("memory", Arc::new(MemoryStore::new())),
        ("redis", Arc::new(redis)),
    ]
}
