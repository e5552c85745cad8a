//! Sentinel failover: the master a link lives on dies; the gateway answers 503 while the
//! sentinel promotes the replica, then works again, and the used link is never used twice.

use crate::helpers::*;
use faceauth_gateway::config::RedisMode;
use secrecy::SecretString;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_cmd(port: u16, args: &[&str]) -> Option<redis::Value> {
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

fn info_has(port: u16, section: &str, needle: &str) -> bool {
    match redis_cmd(port, &["INFO", section]) {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).contains(needle),
        Some(redis::Value::VerbatimString { text, .. }) => text.contains(needle),
        _ => false,
    }
}

/// The master's port as `SENTINEL get-master-addr-by-name mymaster` names it.
fn sentinel_master_port(sentinel_port: u16) -> Option<u16> {
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

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < within, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_gives_503_then_recovers_without_double_use() {
    let master_port = free_port();
    let mut master = RedisServer::start_on(master_port).expect("redis-server is needed");
    let replica_port = free_port();
    let _replica = RedisServer::start_with(
        replica_port,
        &["--replicaof", "127.0.0.1", &master_port.to_string()],
    )
    .unwrap();
    wait_until("replica linked", Duration::from_secs(10), || {
        info_has(replica_port, "replication", "master_link_status:up")
    });
    let sentinel_port = free_port();
    let dir = std::env::temp_dir().join(format!("fag-sentinel-{}", uuid::Uuid::new_v4().simple()));
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
    let _sentinel = Proc(
        Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Ready means: the sentinel names the master, the master says it is one, and the
    // sentinel knows the replica it would promote.
    wait_until("sentinel names the master", Duration::from_secs(15), || {
        sentinel_master_port(sentinel_port) == Some(master_port)
    });
    wait_until(
        "master answers ROLE master",
        Duration::from_secs(15),
        || {
            matches!(redis_cmd(master_port, &["ROLE"]),
            Some(redis::Value::Array(v)) if v.first() == Some(&redis::Value::BulkString(b"master".to_vec())))
        },
    );
    wait_until("sentinel sees the replica", Duration::from_secs(15), || {
        matches!(redis_cmd(sentinel_port, &["SENTINEL", "REPLICAS", "mymaster"]),
            Some(redis::Value::Array(v)) if !v.is_empty())
    });

    let sentinel_url = format!("redis://127.0.0.1:{sentinel_port}");
    let app = spawn_app_with(|s| {
        s.store.redis_mode = RedisMode::Sentinel;
        s.store.sentinel_master = "mymaster".into();
        s.store.sentinel_nodes = vec![sentinel_url];
        s.store.redis_url = Some(SecretString::from(format!(
            "redis://127.0.0.1:{master_port}/0"
        )));
        s.store.timeout_ms = 300;
    })
    .await;
    let jwt = user_jwt("failover");
    let used = app.mint_id(&jwt).await;
    assert_eq!(app.open(&used).await.status, 302);
    // Replication is asynchronous: make sure the replica has the "used" state before the kill
    // (without this, Redis itself could lose the last write in a failover).
    let acked = redis_cmd(master_port, &["WAIT", "1", "2000"]);
    assert_eq!(acked, Some(redis::Value::Int(1)));

    master.stop();
    let started = Instant::now();
    let mut statuses = Vec::new();
    let mut saw_503 = false;
    loop {
        let r = app.open(&used).await;
        let status = r.status.as_u16();
        statuses.push(status);
        assert_ne!(status, 302, "a used link opened again: {statuses:?}");
        assert!(status == 503 || status == 410, "{statuses:?}");
        if status == 503 {
            saw_503 = true;
            r.assert_problem(503, "store_unavailable");
        }
        if status == 410 && saw_503 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no recovery: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Working again on the promoted replica.
    let fresh = app.mint_id(&jwt).await;
    assert_eq!(app.open(&fresh).await.status, 302);
    app.open(&used).await.assert_problem(410, "link_used");
    assert_eq!(
        app.send(app.client.get(app.url("/readyz"))).await.status,
        200
    );
    std::fs::remove_dir_all(&dir).ok();
}
