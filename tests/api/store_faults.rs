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
    assert_eq!(
        app.send(app.client.get(app.url("/readyz"))).await.status,
        200
    );

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

        let r = app
            .send(
                app.client
                    .get(app.url("/v1/face-auth/start"))
                    .bearer_auth(&jwt),
            )
            .await;
        r.assert_problem(503, "store_unavailable");
        assert!(r.header("location").is_none());

        let started = Instant::now();
        let r = app.send(app.client.get(app.url("/readyz"))).await;
        r.assert_problem(503, "store_unavailable");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // Liveness is not readiness.
    assert_eq!(
        app.send(app.client.get(app.url("/healthz"))).await.status,
        200
    );
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
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Recovers by itself once Redis answers again.
    let mut ok = false;
    for _ in 0..20 {
        if app.mint(&jwt).await.status == 201 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "gateway recovered after the pause");
    drop(redis);
}
