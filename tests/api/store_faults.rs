//! Fail closed: with Redis gone no link is issued, answers come fast, readiness says so.

use crate::helpers::*;
use secrecy::SecretString;
use std::time::{Duration, Instant};

#[tokio::test]
async fn redis_stopped_gives_503_fast_and_readyz_says_so() {
    let Some(mut redis) = RedisServer::start() else {
        panic!("redis-server is needed for this test (apt-get install redis-server)");
    };
    let url = redis.url();
    let app = spawn_app_with(|s| {
        s.store.redis_url = Some(SecretString::from(url));
        s.store.timeout_ms = 500;
    })
    .await;
    let jwt = user_jwt("ivy");
    let id = app.mint_id(&jwt).await;
    assert_eq!(app.send(app.get("/readyz")).await.status, 200);

    redis.stop();

    for _ in 0..3 {
        let started = Instant::now();
        let r = app.mint(&jwt).await;
        r.assert_problem(503, "store_unavailable");
        assert_eq!(r.header("retry-after").as_deref(), Some("1"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );

        let started = Instant::now();
        let r = app.open(&id).await;
        r.assert_problem(503, "store_unavailable");
        assert!(r.header("location").is_none(), "fail closed: no redirect");
        assert!(started.elapsed() < Duration::from_secs(2));

        let r = app.start(&jwt).await;
        r.assert_problem(503, "store_unavailable");
        assert!(r.header("location").is_none());

        let started = Instant::now();
        let r = app.send(app.get("/readyz")).await;
        r.assert_problem(503, "store_unavailable");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // Liveness is not readiness.
    assert_eq!(app.send(app.get("/healthz")).await.status, 200);
}

#[tokio::test]
async fn a_paused_redis_gives_503_within_the_timeout() {
    let Some(redis) = RedisServer::start() else {
        panic!("redis-server is needed for this test");
    };
    let url = redis.url();
    let app = spawn_app_with(|s| {
        s.store.redis_url = Some(SecretString::from(url.clone()));
        s.store.timeout_ms = 300;
    })
    .await;
    let jwt = user_jwt("jack");
    app.mint_id(&jwt).await;
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    let started = Instant::now();
    app.mint(&jwt)
        .await
        .assert_problem(503, "store_unavailable");
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    // Recovers by itself once Redis answers again (the pause ends 1.5 s after it began).
    let statuses = mint_until_created(&app, &jwt, Duration::from_secs(15)).await;
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 503),
        "{statuses:?}"
    );
    drop(redis);
}

#[tokio::test]
async fn recovers_after_a_redis_restart_without_500s() {
    let port = free_port();
    let mut redis = RedisServer::start_on(port).expect("redis-server is needed");
    let url = redis.url();
    let app = spawn_app_with(|s| {
        s.store.redis_url = Some(SecretString::from(url));
        s.store.timeout_ms = 400;
    })
    .await;
    let jwt = user_jwt("kai");
    let before = app.mint_id(&jwt).await;
    redis.stop();
    app.mint(&jwt)
        .await
        .assert_problem(503, "store_unavailable");
    // Same port, empty script cache, every connection dropped.
    let _redis = RedisServer::start_on(port).expect("restart");
    let mut statuses = Vec::new();
    let mut recovered = false;
    for _ in 0..40 {
        let r = app.mint(&jwt).await;
        statuses.push(r.status.as_u16());
        if r.status == 201 {
            recovered = true;
            let id = r.json()["id"].as_str().unwrap().to_string();
            assert_eq!(
                app.open(&id).await.status,
                302,
                "open script reloaded after NOSCRIPT"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "no recovery: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 503),
        "{statuses:?}"
    );
    // The restarted Redis kept nothing: the old link is gone, not double-usable.
    app.open(&before)
        .await
        .assert_problem(404, "link_not_found");
}

#[tokio::test]
async fn start_up_refuses_a_redis_without_scripting() {
    let port = free_port();
    let _redis = RedisServer::start_with(port, &["--rename-command", "SCRIPT", ""])
        .expect("redis-server is needed");
    let mut s = test_settings();
    s.store.redis_url = Some(SecretString::from(format!("redis://127.0.0.1:{port}/0")));
    match faceauth_gateway::Application::build(s).await {
        Err(faceauth_gateway::StartupError::Store(e)) => {
            let msg = e.to_string();
            assert!(msg.contains("SCRIPT LOAD"), "{msg}");
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("started against a Redis without SCRIPT"),
    }
}

/// One command on a fresh connection to the Redis on `port` that has password `pw`.
fn admin(port: u16, pw: &str, args: &[&str]) {
    let client = redis::Client::open(format!("redis://:{pw}@127.0.0.1:{port}/0")).unwrap();
    let mut c = client.get_connection().unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = cmd.query(&mut c).unwrap();
}

#[tokio::test]
async fn recovers_after_redis_refused_the_password_once() {
    let redis = RedisServer::start().expect("redis-server is needed");
    let port = redis.port;
    redis_cmd(port, &["CONFIG", "SET", "requirepass", "first-pw"]).expect("set requirepass");
    let app = spawn_app_with(|s| {
        s.store.redis_url = Some(SecretString::from(format!(
            "redis://:first-pw@127.0.0.1:{port}/0"
        )));
        s.store.timeout_ms = 400;
    })
    .await;
    let jwt = user_jwt("lea");
    app.mint_id(&jwt).await;

    // Another password, and every connection dropped: reconnecting is refused.
    admin(
        port,
        "first-pw",
        &["CONFIG", "SET", "requirepass", "other-pw"],
    );
    admin(port, "other-pw", &["CLIENT", "KILL", "TYPE", "normal"]);
    // Several requests, so every connection (shared and per worker) meets the refusal.
    for _ in 0..6 {
        assert_eq!(app.mint(&jwt).await.status, 503, "fail closed");
    }
    assert_eq!(app.send(app.get("/readyz")).await.status, 503);

    // The password is back: the gateway recovers by itself (no restart).
    admin(
        port,
        "other-pw",
        &["CONFIG", "SET", "requirepass", "first-pw"],
    );
    let started = Instant::now();
    let statuses = mint_until_created(&app, &jwt, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?} {statuses:?}",
        started.elapsed()
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 503),
        "{statuses:?}"
    );
    // Every connection (shared and per worker) recovers, not just one: once the backoff has
    // passed, readiness (not rate-limited) answers 200 every time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..8 {
        assert_eq!(app.send(app.get("/readyz")).await.status, 200);
    }
    drop(redis);
}

/// Mints every 100 ms until one answers `201`; the statuses seen, the last one `201`. Panics
/// when none did within `within` (the gateway did not recover by itself).
async fn mint_until_created(app: &TestApp, jwt: &str, within: Duration) -> Vec<u16> {
    let started = Instant::now();
    let mut statuses = Vec::new();
    loop {
        let status = app.mint(jwt).await.status.as_u16();
        statuses.push(status);
        if status == 201 {
            return statuses;
        }
        assert!(
            started.elapsed() < within,
            "the gateway did not recover: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
