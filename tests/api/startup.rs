//! Start-up that waits for its store (`store.startup_wait_secs`): the gateway may start before
//! Redis; meanwhile `/healthz` answers and `/readyz` says `503 store_unavailable`; past the
//! bound `serve` exits 1 naming the setting. `check-config` never waits.

use crate::helpers::*;
use faceauth_gateway::{Application, StartupError};
use secrecy::SecretString;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_started_before_its_redis_becomes_ready_once_redis_starts() {
    let redis_port = free_port();
    let port = free_port();
    let mut settings = test_settings();
    settings.server.bind = format!("127.0.0.1:{port}").parse().unwrap();
    settings.store.redis_url = Some(SecretString::from(format!(
        "redis://127.0.0.1:{redis_port}/0"
    )));
    settings.store.timeout_ms = 300;
    settings.store.startup_wait_secs = 60;
    let building = tokio::spawn(Application::build(settings.clone()));

    // Waiting: alive, not ready, nothing served.
    let client = test_client();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let healthz = loop {
        match client.get(format!("{base}/healthz")).send().await {
            Ok(r) => break r,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("no /healthz while waiting for Redis: {e}"),
        }
    };
    assert_eq!(healthz.status(), 200);
    assert_eq!(healthz.headers().get("cache-control").unwrap(), "no-store");
    for path in [
        "/readyz",
        "/v1/links",
        "/l/00000000-0000-4000-8000-000000000000",
    ] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
        assert_eq!(
            r.headers().get("content-type").unwrap(),
            "application/problem+json"
        );
        assert_eq!(r.headers().get("retry-after").unwrap(), "1");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "store_unavailable", "{path}");
    }
    let r = client
        .post(format!("{base}/v1/links"))
        .bearer_auth(user_jwt("early"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "no link without a store");
    assert!(!building.is_finished(), "build waits for the store");

    // Redis comes up: the build finishes and the gateway serves on the same port.
    let _redis = RedisServer::start_on(redis_port).expect("redis-server is needed");
    let app = tokio::time::timeout(Duration::from_secs(30), building)
        .await
        .expect("build finished once Redis answered")
        .unwrap()
        .expect("gateway built");
    assert_eq!(app.port(), port);
    let stop = app.stop_handle();
    tokio::spawn(app.run_until_stopped());
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let minted = client
        .post(format!("{base}/v1/links"))
        .bearer_auth(user_jwt("early"))
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), 201);
    let id = minted.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let no_redirects = test_client();
    let opened = no_redirects
        .get(format!("{base}/l/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 302);
    stop.stop().await;
}

#[tokio::test]
async fn build_gives_up_after_the_wait_naming_the_setting() {
    let mut s = test_settings();
    s.store.redis_url = Some(SecretString::from(format!(
        "redis://127.0.0.1:{}/0",
        free_port()
    )));
    s.store.timeout_ms = 200;
    s.store.startup_wait_secs = 1;
    let started = Instant::now();
    match Application::build(s).await {
        Err(e @ StartupError::StoreWait { .. }) => {
            assert!(e.to_string().starts_with("store.startup_wait_secs:"), "{e}")
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("started without a store"),
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(1), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}

#[tokio::test]
async fn a_bad_config_is_reported_at_once_even_without_a_store() {
    let mut s = test_settings();
    s.store.redis_url = Some(SecretString::from(format!(
        "redis://127.0.0.1:{}/0",
        free_port()
    )));
    s.store.startup_wait_secs = 30;
    s.argos.project_id = None;
    let started = Instant::now();
    match Application::build(s).await {
        Err(StartupError::Config(e)) => assert_eq!(e.key, "argos.project_id"),
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("started with a bad config"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

fn gateway_env(cmd: &mut Command, port: u16, redis_url: &str) {
    cmd.env("RUST_LOG", "info")
        .env("FACEAUTH__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env(
            "FACEAUTH__SERVER__METRICS_BIND",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("FACEAUTH__STORE__REDIS_URL", redis_url)
        .env("FACEAUTH__STORE__TIMEOUT_MS", "200")
        .env("FACEAUTH__STORE__KEY_PREFIX", random_prefix())
        .env("FACEAUTH__ARGOS__PROJECT_ID", PROJECT_ID)
        .env("FACEAUTH__ARGOS__FORM_URL", FORM_URL)
        .env("FACEAUTH__ARGOS__API_KEY", "ak_startup_test_key_0123456789")
        .env("FACEAUTH__AUTH__ALGORITHMS", "[\"HS256\"]")
        .env("FACEAUTH__AUTH__HS256_SECRET", HS_SECRET)
        .env("FACEAUTH__AUTH__ISSUER", ISSUER)
        .env("FACEAUTH__AUTH__AUDIENCE", AUDIENCE)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
}

#[test]
fn serve_waits_answering_health_then_exits_1_naming_the_setting() {
    let port = free_port();
    // A password in the URL: it must not reach the attempt log lines.
    let redis_url = format!("redis://:pw-not-for-logs@127.0.0.1:{}/0", free_port());
    let mut cmd = Command::new(BIN);
    cmd.arg("serve");
    gateway_env(&mut cmd, port, &redis_url);
    cmd.env("FACEAUTH__STORE__STARTUP_WAIT_SECS", "4");
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    assert!(
        poll_until(Duration::from_secs(10), || http_status(port, "/healthz")
            == Some(200)),
        "/healthz answers while waiting"
    );
    assert_eq!(http_status(port, "/readyz"), Some(503));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("serve did not give up");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert!(err.contains("store.startup_wait_secs"), "{err}");
    assert!(
        err.matches("store not ready at start-up").count() >= 2,
        "each attempt is logged: {err}"
    );
    assert!(
        !err.contains("pw-not-for-logs"),
        "password in the logs: {err}"
    );
}

#[test]
fn check_config_does_not_wait() {
    let port = free_port();
    let redis_url = format!("redis://127.0.0.1:{}/0", free_port());
    let mut cmd = Command::new(BIN);
    cmd.arg("check-config");
    gateway_env(&mut cmd, port, &redis_url);
    cmd.env("FACEAUTH__STORE__STARTUP_WAIT_SECS", "60");
    let started = Instant::now();
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("store.redis_url"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_while_a_first_attempt_hangs() {
    // A "Redis" that accepts connections (the kernel completes the handshake) and never
    // answers: the first attempt hangs for up to 4 × store.timeout_ms.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let port = free_port();
    let mut settings = test_settings();
    settings.server.bind = format!("127.0.0.1:{port}").parse().unwrap();
    settings.store.redis_url = Some(SecretString::from(format!(
        "redis://127.0.0.1:{silent_port}/0"
    )));
    settings.store.timeout_ms = 3000;
    settings.store.startup_wait_secs = 60;
    let building = tokio::spawn(Application::build(settings));
    let started = Instant::now();
    let healthz = tokio::task::spawn_blocking(move || {
        poll_until(Duration::from_secs(3), || {
            http_status(port, "/healthz") == Some(200)
        })
    })
    .await
    .unwrap();
    assert!(healthz, "/healthz answers while the first attempt hangs");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        tokio::task::spawn_blocking(move || http_status(port, "/readyz"))
            .await
            .unwrap(),
        Some(503)
    );
    building.abort();
    drop(silent);
}

#[tokio::test]
async fn a_refused_password_fails_at_once() {
    let port = free_port();
    let _redis = RedisServer::start_with(port, &["--requirepass", "the-right-password"])
        .expect("redis-server is needed");
    let mut s = test_settings();
    s.store.redis_url = Some(SecretString::from(format!(
        "redis://:a-wrong-password@127.0.0.1:{port}/0"
    )));
    s.store.startup_wait_secs = 30;
    let started = Instant::now();
    match Application::build(s).await {
        Err(StartupError::Store(e)) => {
            let msg = e.to_string();
            assert!(msg.contains("credentials"), "{msg}");
            assert!(!msg.contains("a-wrong-password"), "{msg}");
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("started with a wrong password"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "not retried");
}

#[test]
fn sigterm_while_waiting_exits_zero() {
    let port = free_port();
    let redis_url = format!("redis://127.0.0.1:{}/0", free_port());
    let mut cmd = Command::new(BIN);
    cmd.arg("serve");
    gateway_env(&mut cmd, port, &redis_url);
    cmd.env("FACEAUTH__STORE__STARTUP_WAIT_SECS", "60");
    let mut child = cmd.spawn().unwrap();
    assert!(
        poll_until(Duration::from_secs(10), || http_status(port, "/healthz")
            == Some(200)),
        "waiting"
    );
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("serve did not stop on SIGTERM while waiting");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}
