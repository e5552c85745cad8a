//! At most once through faults (issue 12): a request that failed leaves no effect or its retry
//! gets the same outcome; one Idempotency-Key yields one link; the gateway refuses a Redis that
//! can lose or resurrect link state. Every test runs its own `redis-server`.

use crate::helpers::*;
use secrecy::SecretString;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn admin(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// `CLIENT PAUSE ms ALL`, then returns; the pause is over once [`until_unpaused`] returns.
async fn pause(conn: &mut redis::aio::MultiplexedConnection, ms: u64) {
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(ms)
        .arg("ALL")
        .query_async(conn)
        .await
        .unwrap();
}

/// Waits for a `PING` to come back: Redis answers it only once the pause is over.
async fn until_unpaused(conn: &mut redis::aio::MultiplexedConnection) {
    let pong: String = tokio::time::timeout(
        Duration::from_secs(15),
        redis::cmd("PING").query_async(conn),
    )
    .await
    .expect("the pause ends")
    .unwrap();
    assert_eq!(pong, "PONG");
}

fn link_keys(keys: &[String]) -> Vec<&String> {
    keys.iter().filter(|k| k.contains("link:")).collect()
}

#[tokio::test]
async fn an_open_during_a_pause_answers_503_and_the_retry_redirects() {
    let redis = RedisServer::start().expect("redis-server is needed");
    let url = redis.url();
    let app = spawn_app_with(|s| {
        s.store.redis_url = Some(SecretString::from(url.clone()));
        s.store.timeout_ms = 500;
    })
    .await;
    let jwt = user_jwt("pia");
    let id = app.mint_id(&jwt).await;
    let mut admin = admin(&url).await;
    pause(&mut admin, 3000).await;
    let started = Instant::now();
    let r = app.open(&id).await;
    r.assert_problem(503, "store_unavailable");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert!(r.header("location").is_none());
    assert!(started.elapsed() < Duration::from_millis(1500));
    until_unpaused(&mut admin).await;
    // The open script Redis ran after the pause was past its deadline: it wrote nothing.
    let retry = app.open(&id).await;
    assert_eq!(retry.status, 302, "{}", retry.text());
    app.open(&id).await.assert_problem(410, "link_used");
    app.assert_every_key_expires().await;
}

#[tokio::test]
async fn a_mint_during_a_pause_answers_503_and_leaves_no_record() {
    let redis = RedisServer::start().expect("redis-server is needed");
    let url = redis.url();
    let app = spawn_app_with(|s| {
        s.store.redis_url = Some(SecretString::from(url.clone()));
        s.store.timeout_ms = 500;
    })
    .await;
    let jwt = user_jwt("quinn");
    let mut admin = admin(&url).await;
    pause(&mut admin, 3000).await;
    app.mint(&jwt)
        .await
        .assert_problem(503, "store_unavailable");
    let r = app.start(&jwt).await;
    r.assert_problem(503, "store_unavailable");
    assert!(r.header("location").is_none());
    let keyed = app
        .send(
            app.mint_request(&jwt)
                .header("idempotency-key", "pause-1")
                .json(&json!({})),
        )
        .await;
    keyed.assert_problem(503, "store_unavailable");
    until_unpaused(&mut admin).await;
    // A request on the gateway's own connection runs after everything queued before it.
    assert_eq!(app.send(app.get("/readyz")).await.status, 200);
    let keys = app.keys().await;
    assert!(link_keys(&keys).is_empty(), "no record left: {keys:?}");
    assert!(
        !keys.iter().any(|k| k.contains("idem:")),
        "no claim left: {keys:?}"
    );
    // The retry with the same key runs normally and mints one link.
    let retry = app
        .send(
            app.mint_request(&jwt)
                .header("idempotency-key", "pause-1")
                .json(&json!({})),
        )
        .await;
    assert_eq!(retry.status, 201, "{}", retry.text());
    assert_eq!(link_keys(&app.keys().await).len(), 1);
    app.assert_every_key_expires().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sid_lookup_past_the_claim_lifetime_still_mints_once() {
    let argos = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/submission"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"Items": [
                    {"submission_id": "sub-slow", "created_at": "2026-01-01T00:00:00Z",
                     "kyc": {"result": "approved"}}
                ]}))
                .set_delay(Duration::from_millis(2500)),
        )
        .mount(&argos)
        .await;
    let argos_uri = argos.uri();
    let app = spawn_app_with(|s| {
        s.argos.api_base_url = argos_uri.parse().unwrap();
        s.argos.api_retries = 0;
        s.argos.api_timeout_ms = 5000;
        s.argos.idcheck_api_key = Some(SecretString::from("idcheck-key-for-tests"));
        s.sid.sources = vec![faceauth_gateway::config::SidSource::Argos];
        s.store.idempotency_claim_ms = 1000;
    })
    .await;
    let mut c = claims("rosa");
    c.as_object_mut().unwrap().remove("argos_sid");
    let jwt = sign_hs256(&c);
    let send = |delay: u64| {
        let app = &app;
        let jwt = jwt.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            app.send(
                app.mint_request(&jwt)
                    .header("idempotency-key", "slow-sid")
                    .json(&json!({})),
            )
            .await
        }
    };
    // The retry comes when the first request's claim would have expired without renewal.
    let (first, retry) = tokio::join!(send(0), send(1500));
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!(retry.status, 201, "{}", retry.text());
    assert_eq!(first.json()["id"], retry.json()["id"], "one key, one link");
    assert_eq!(retry.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(link_keys(&app.keys().await).len(), 1);
    app.assert_every_key_expires().await;
}

#[tokio::test]
async fn a_re_sent_open_script_gets_its_original_answer() {
    // What a Redis Cluster client does after a network error: the same script, same
    // arguments, again. The consuming request must not turn into `410`.
    let redis = RedisServer::start().expect("redis-server is needed");
    let mut conn = admin(&redis.url()).await;
    let source = faceauth_gateway::store::redis::open_script_source();
    let script = redis::Script::new(&source);
    let key = "t:link:{00000000-0000-4000-8000-000000000001}";
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(r#"{"u":"u1","s":"s1","k":"c","st":"i","ca":1,"ea":99999999999999}"#)
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let far = "99999999999999";
    let run = |nonce: &'static str| {
        let mut conn = conn.clone();
        let script = script.clone();
        async move {
            let reply: Vec<String> = script
                .key(key)
                .arg(far)
                .arg(nonce)
                .arg(60_000)
                .arg("0")
                .invoke_async(&mut conn)
                .await
                .unwrap();
            reply[0].clone()
        }
    };
    assert_eq!(run("nonce-a").await, "ok");
    assert_eq!(
        run("nonce-a").await,
        "ok",
        "the re-send answers what the first did"
    );
    assert_eq!(run("nonce-b").await, "used", "another request is refused");
    // Past its deadline the script writes nothing.
    let key2 = "t:link:{00000000-0000-4000-8000-000000000002}";
    let _: () = redis::cmd("SET")
        .arg(key2)
        .arg(r#"{"u":"u1","s":"s1","k":"c","st":"i","ca":1,"ea":99999999999999}"#)
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let late: redis::RedisResult<Vec<String>> = script
        .key(key2)
        .arg("1")
        .arg("nonce-c")
        .arg(60_000)
        .arg("0")
        .invoke_async(&mut conn)
        .await;
    assert_eq!(late.unwrap_err().code(), Some("FAGLATE"));
    let stored: String = redis::cmd("GET")
        .arg(key2)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(stored.contains(r#""st":"i""#), "{stored}");
}

/// Runs the binary with a valid configuration against `redis_url`; returns exit code and
/// stderr. `serve` is stopped after `wait` if it is still running.
fn run_gateway(command: &str, redis_url: &str, extra: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("FACEAUTH__") {
            cmd.env_remove(k);
        }
    }
    let prefix = random_prefix();
    let env = [
        ("FACEAUTH__STORE__REDIS_URL", redis_url),
        ("FACEAUTH__STORE__KEY_PREFIX", prefix.as_str()),
        ("FACEAUTH__SERVER__BIND", "127.0.0.1:0"),
        ("FACEAUTH__SERVER__METRICS_BIND", ""),
        ("FACEAUTH__ARGOS__PROJECT_ID", "p1"),
        ("FACEAUTH__ARGOS__API_KEY", "an-add-on-key-for-tests"),
        ("FACEAUTH__AUTH__ALGORITHMS", "[\"HS256\"]"),
        (
            "FACEAUTH__AUTH__HS256_SECRET",
            "hs-secret-0123456789abcdef0123456789",
        ),
        ("FACEAUTH__AUTH__ISSUER", "https://idp.test/"),
        ("FACEAUTH__AUTH__AUDIENCE", "gw"),
    ];
    for (k, v) in env.iter().chain(extra) {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            return (None, String::from_utf8_lossy(&out.stderr).into_owned());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_refuses_a_redis_that_can_lose_or_resurrect_links() {
    let evicting = RedisServer::start_with(free_port(), &["--maxmemory-policy", "allkeys-lru"])
        .expect("redis-server is needed");
    let (code, err) = run_gateway("serve", &evicting.url(), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("maxmemory-policy allkeys-lru"), "{err}");
    assert!(err.contains("noeviction"), "names the fix: {err}");
    assert!(
        err.contains("store.accept_risks"),
        "names the override: {err}"
    );
    assert!(!err.contains("an-add-on-key"), "{err}");
    let (code, err) = run_gateway("check-config", &evicting.url(), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("maxmemory-policy"), "{err}");
    // The documented override.
    let (code, err) = run_gateway(
        "check-config",
        &evicting.url(),
        &[("FACEAUTH__STORE__ACCEPT_RISKS", "[\"eviction\"]")],
    );
    assert_eq!(code, Some(0), "{err}");

    let snapshots = RedisServer::start_with(free_port(), &["--save", "3600 1"])
        .expect("redis-server is needed");
    let (code, err) = run_gateway("serve", &snapshots.url(), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("save \"3600 1\""), "{err}");
    assert!(err.contains("rdb-snapshots"), "{err}");

    // The default setup (no persistence, noeviction) starts: serve keeps running.
    let plain = RedisServer::start().expect("redis-server is needed");
    let (code, err) = run_gateway("check-config", &plain.url(), &[]);
    assert_eq!(code, Some(0), "{err}");
}

#[tokio::test]
async fn readyz_and_the_metric_report_store_risks() {
    let redis = RedisServer::start_with(free_port(), &["--maxmemory-policy", "volatile-lru"])
        .expect("redis-server is needed");
    let url = redis.url();
    let mut s = test_settings();
    s.store.redis_url = Some(SecretString::from(url.clone()));
    match faceauth_gateway::Application::build(s.clone()).await {
        Err(faceauth_gateway::StartupError::Store(e)) => {
            assert!(
                e.to_string().contains("maxmemory-policy volatile-lru"),
                "{e}"
            )
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("started on an evicting Redis"),
    }
    s.store.accept_risks = vec!["eviction".into()];
    let app = spawn_settings(s).await;
    let r = app.send(app.get("/readyz")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["store_risks"], json!(["eviction"]));
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("faceauth_store_risk{accepted=\"true\",risk=\"eviction\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("faceauth_store_clock_offset_seconds"));
    // Changed at run time to something not accepted: the replica is no longer ready.
    let mut conn = admin(&url).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("save")
        .arg("3600 1")
        .query_async(&mut conn)
        .await
        .unwrap();
    app.send(app.get("/readyz"))
        .await
        .assert_problem(503, "store_unavailable");
}
