//! Sentinel failover: the master a link lives on dies; the gateway answers 503 while the
//! sentinel promotes the replica, then works again, and the used link is never used twice.

use crate::helpers::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_gives_503_then_recovers_without_double_use() {
    let mut set = SentinelSet::start();
    let master_port = set.master_port;
    let app = spawn_app_with(|s| {
        set.configure(s);
        s.store.timeout_ms = 300;
        // One replica only: once it is promoted nothing could confirm a write.
        s.store.accept_risks = vec!["async-replication".into()];
    })
    .await;
    let jwt = user_jwt("failover");
    let used = app.mint_id(&jwt).await;
    assert_eq!(app.open(&used).await.status, 302);
    // Replication is asynchronous: make sure the replica has the "used" state before the kill
    // (without this, Redis itself could lose the last write in a failover).
    let acked = redis_cmd(master_port, &["WAIT", "1", "2000"]);
    assert_eq!(acked, Some(redis::Value::Int(1)));

    set.master.stop();
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
    assert_eq!(app.send(app.get("/readyz")).await.status, 200);
}

/// `SENTINEL FAILOVER` with the old master alive, links minted and opened in a loop the whole
/// time: no link redirects twice, and no acknowledged mint (`201`) is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_with_the_old_master_alive_opens_no_link_twice() {
    let stats = failover_loop(1).await;
    assert_eq!(stats.reopened, 0, "links redirected twice");
    assert_eq!(stats.lost, 0, "acknowledged mints lost");
}

/// The same without `min_replica_acks` (the sentinel watcher alone): reported, not asserted
/// beyond "never a second redirect after the switch"; see docs/operations.md (Redis topologies)
/// for the window left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_without_replica_acks_follows_the_master() {
    let stats = failover_loop(0).await;
    assert!(stats.acknowledged > 0, "{}", stats.report());
}

#[derive(Default)]
struct LoopStats {
    acknowledged: usize,
    acknowledged_in_window: usize,
    window_iterations: usize,
    mint_503: usize,
    open_503: usize,
    reopened: usize,
    lost: usize,
}

impl LoopStats {
    fn report(&self) -> String {
        format!(
            "{} links acknowledged, {} of them before the failover settled ({} rounds); \
             {} mints and {} opens answered 503; {} links redirected twice; {} acknowledged \
             mints lost",
            self.acknowledged,
            self.acknowledged_in_window,
            self.window_iterations,
            self.mint_503,
            self.open_503,
            self.reopened,
            self.lost
        )
    }
}

async fn failover_loop(acks: u32) -> LoopStats {
    let set = SentinelSet::start();
    let (master_port, replica_port, sentinel_port) =
        (set.master_port, set.replica_port, set.sentinel_port);
    let app = spawn_app_with(|s| {
        set.configure(s);
        s.store.timeout_ms = 500;
        s.store.min_replica_acks = acks;
        s.store.replica_ack_timeout_ms = 100;
        if acks == 0 {
            s.store.accept_risks = vec!["async-replication".into()];
        }
    })
    .await;
    let warm = app.mint_id(&user_jwt("failover-warm-up")).await;
    assert_eq!(app.open(&warm).await.status, 302);
    // Links minted before the failover, on both nodes: opened during it, one per round.
    let mut pool = Vec::new();
    for i in 0..300 {
        // One user each: `links.single_active` would revoke a user's earlier unopened link.
        pool.push(app.mint_id(&user_jwt(&format!("pool-{i}"))).await);
    }
    let wait = redis_cmd(master_port, &["WAIT", "1", "2000"]);
    assert_eq!(wait, Some(redis::Value::Int(1)));
    let mut pool = pool.into_iter();

    // (id, redirects seen) of every link whose mint was acknowledged.
    let mut links: Vec<(String, u32)> = Vec::new();
    let mut mint_503 = 0;
    let mut open_503 = 0;
    let mut in_window = 0;
    let ok = redis_cmd(sentinel_port, &["SENTINEL", "FAILOVER", "mymaster"]);
    assert!(ok.is_some(), "SENTINEL FAILOVER accepted");
    let started = Instant::now();
    let mut settled_at = None;
    let mut window_links = 0;
    let (mut clean_rounds, mut failures_before) = (0, 0);
    let (mut round, mut lost_in_loop) = (0, 0);
    loop {
        let switched = sentinel_master_port(sentinel_port) == Some(replica_port);
        let demoted = role(master_port).as_deref() == Some("slave");
        if settled_at.is_none() {
            in_window += 1;
            window_links = links.len();
            if switched && demoted {
                settled_at = Some(links.len());
            }
        }
        // A user per round: `links.single_active` would revoke a link whose open answered 503.
        round += 1;
        let r = app.mint(&user_jwt(&format!("loop-{round}"))).await;
        match r.status.as_u16() {
            201 => {
                let id = r.json()["id"].as_str().unwrap().to_string();
                let o = app.open(&id).await;
                match o.status.as_u16() {
                    302 => links.push((id, 1)),
                    503 => {
                        open_503 += 1;
                        links.push((id, 0));
                    }
                    // Minted on the old master, opened on the new one: the mint was lost.
                    404 => lost_in_loop += 1,
                    other => panic!("open answered {other}: {}", o.text()),
                }
            }
            503 => mint_503 += 1,
            other => panic!("mint answered {other}: {}", r.text()),
        }
        if let Some(id) = pool.next() {
            let o = app.open(&id).await;
            match o.status.as_u16() {
                302 => links.push((id, 1)),
                503 => {
                    open_503 += 1;
                    links.push((id, 0));
                }
                other => panic!("open answered {other}: {}", o.text()),
            }
        }
        // Settled: the sentinels switched, the old master is a replica, and five rounds in a
        // row worked end to end.
        let failures = mint_503 + open_503;
        if settled_at.is_some() {
            clean_rounds = if failures == failures_before {
                clean_rounds + 1
            } else {
                0
            };
            if clean_rounds >= 5 {
                break;
            }
        }
        failures_before = failures;
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the failover did not settle: switched={switched} demoted={demoted}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every acknowledged mint is on the new master, and none redirects a second time.
    let mut stats = LoopStats {
        acknowledged: links.len(),
        acknowledged_in_window: window_links,
        window_iterations: in_window,
        mint_503,
        open_503,
        lost: lost_in_loop,
        ..LoopStats::default()
    };
    for (id, redirects) in &mut links {
        let r = app.open(id).await;
        match r.status.as_u16() {
            302 => *redirects += 1,
            410 => r.assert_problem(410, "link_used"),
            404 => stats.lost += 1,
            other => panic!("acknowledged link failing after the failover: {other}"),
        }
        if *redirects == 2 {
            stats.reopened += 1;
        }
    }
    eprintln!(
        "failover loop (min_replica_acks = {acks}): {}",
        stats.report()
    );
    stats
}
