//! Operations: metrics on their own listener, secret-free logs of a real process, graceful
//! shutdown of a real process, and check-config's live checks.

use crate::helpers::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn metrics_are_on_their_own_port_without_ids_or_secrets() {
    let app = spawn_app().await;
    let jwt = user_jwt("mia");
    let id = app.mint_id(&jwt).await;
    assert_eq!(app.open(&id).await.status, 302);
    app.open(&id).await.assert_problem(410, "link_used");
    app.mint("garbage")
        .await
        .assert_problem(401, "invalid_token");
    app.send(app.get("/metrics"))
        .await
        .assert_problem(404, "not_found");
    let text = app.metrics().await;
    for needle in [
        r#"faceauth_http_requests_total{method="POST",route="/v1/links",status="201"}"#,
        r#"faceauth_http_requests_total{method="GET",route="/l/{id}",status="302"}"#,
        r#"faceauth_links_minted_total{expiry="count"}"#,
        r#"faceauth_link_opens_total{outcome="redirected"}"#,
        r#"faceauth_link_opens_total{outcome="used"}"#,
        "faceauth_http_request_duration_seconds_bucket",
        r#"faceauth_store_command_duration_seconds_count{op="open"}"#,
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
    assert!(!text.contains(&id), "no link ids as labels");
    assert!(!text.contains("mia"), "no user ids as labels");
    assert!(!text.contains(&app.api_key));
}

#[tokio::test]
async fn logs_of_a_full_flow_hold_no_secrets() {
    let (gw, api_key, _) = Gateway::start(&[]);
    let client = test_client();
    let jwt = user_jwt("lena");
    let id = gw.mint_id(&client, &jwt).await;
    let res = gw.open(&client, &id).await;
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let encrypted_pct = location.split("encrypted=").nth(1).unwrap().to_string();
    let encrypted = percent_encoding::percent_decode_str(&encrypted_pct)
        .decode_utf8()
        .unwrap()
        .into_owned();
    // Failures too.
    assert_eq!(
        client
            .get(gw.url(&format!("/l/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
    assert_eq!(
        client
            .post(gw.url("/v1/links"))
            .bearer_auth("x.y.z")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let mut expired = claims("lena");
    expired["exp"] = serde_json::json!(now_secs() - 1000);
    let expired_jwt = sign_hs256(&expired);
    assert_eq!(
        client
            .post(gw.url("/v1/links"))
            .bearer_auth(&expired_jwt)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client
            .post(gw.url("/v1/webhooks/argos/wrong-secret"))
            .body("{}")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let hook = client
        .post(gw.url("/v1/webhooks/argos/webhook_path_secret_0123456789_abcdef"))
        .body(format!(r#"{{"webhook_trigger":"faceAuth","data":{{"Authentication_id":"a","Token_id":"{id}"}}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 200);
    gw.signal("TERM");
    let (code, logs) = gw.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    assert!(logs.contains("link minted"), "the flow was logged");
    assert!(
        logs.contains("\"route\":\"/l/{id}\""),
        "route templates are logged"
    );
    for (what, secret) in [
        ("API key", api_key.as_str()),
        ("JWT", jwt.as_str()),
        ("expired JWT", expired_jwt.as_str()),
        ("encrypted value", encrypted.as_str()),
        ("encrypted value (percent-encoded)", encrypted_pct.as_str()),
        ("FaceAuth URL", location.as_str()),
        ("link id", id.as_str()),
        (
            "webhook path secret",
            "webhook_path_secret_0123456789_abcdef",
        ),
        ("HMAC secret", HS_SECRET),
    ] {
        assert!(!logs.contains(secret), "{what} leaked into the logs");
    }
}

#[tokio::test]
async fn sigterm_drains_readiness_finishes_in_flight_and_exits_zero() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (gw, _, _) = Gateway::start(&[
        ("FACEAUTH__SERVER__DRAIN_SECS", "2".into()),
        ("FACEAUTH__SERVER__SHUTDOWN_TIMEOUT_SECS", "10".into()),
    ]);
    let client = test_client();
    assert_eq!(
        client.get(gw.url("/readyz")).send().await.unwrap().status(),
        200
    );
    // An in-flight request whose body is still arriving when the signal comes.
    let jwt = user_jwt("otto");
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    slow.write_all(
        format!(
            "POST /v1/links HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {jwt}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.signal("TERM");
    // Poll: the signal is handled asynchronously; "at once" means well inside the drain.
    let signalled = Instant::now();
    let ready = loop {
        let ready = client.get(gw.url("/readyz")).send().await.unwrap();
        if ready.status() == 503 || signalled.elapsed() > Duration::from_secs(1) {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready.status(), 503, "readiness turns 503 at once");
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["code"], "shutting_down");
    assert_eq!(
        client
            .get(gw.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Finish the in-flight request after the signal: it completes.
    slow.write_all(b"}").await.unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let port = gw.port;
    let (code, _) = gw.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0), "exit 0 after a graceful stop");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "listener closed"
    );
}

#[test]
fn check_config_checks_redis_and_the_jwks() {
    let base = |extra: &[(&str, String)]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("check-config")
            .env("FACEAUTH__ARGOS__PROJECT_ID", "p")
            .env("FACEAUTH__ARGOS__API_KEY", "k")
            .env("FACEAUTH__AUTH__ISSUER", ISSUER)
            .env("FACEAUTH__AUTH__AUDIENCE", AUDIENCE)
            .env("FACEAUTH__STORE__REDIS_URL", redis_url())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let hs = [
        ("FACEAUTH__AUTH__ALGORITHMS", "[\"HS256\"]".to_string()),
        ("FACEAUTH__AUTH__HS256_SECRET", HS_SECRET.to_string()),
    ];
    let (code, err) = base(&hs);
    assert_eq!(code, Some(0), "{err}");
    let mut no_redis = hs.to_vec();
    no_redis.push((
        "FACEAUTH__STORE__REDIS_URL",
        format!("redis://127.0.0.1:{}/0", free_port()),
    ));
    let (code, err) = base(&no_redis);
    assert_eq!(code, Some(1));
    assert!(err.contains("store.redis_url"), "{err}");
    let jwks = [
        ("FACEAUTH__AUTH__ALGORITHMS", "[\"RS256\"]".to_string()),
        (
            "FACEAUTH__AUTH__JWKS_URL",
            format!("http://127.0.0.1:{}/jwks", free_port()),
        ),
    ];
    let (code, err) = base(&jwks);
    assert_eq!(code, Some(1));
    assert!(err.contains("auth.jwks_url"), "{err}");
}

#[tokio::test]
async fn openapi_is_served_and_matches_the_committed_copy() {
    let app = spawn_app().await;
    let served = app.send(app.get("/openapi.json")).await;
    assert_eq!(served.status, 200);
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json"),
    )
    .unwrap();
    assert_eq!(
        served.text().trim_end(),
        committed.trim_end(),
        "docs/openapi.json is stale: run `cargo run -- openapi > docs/openapi.json`"
    );
    let doc = served.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/links", "post"),
        ("/v1/links/{id}", "get"),
        ("/v1/links/{id}", "delete"),
        ("/v1/face-auth/start", "get"),
        ("/l/{id}", "get"),
        ("/l/{id}", "post"),
        ("/l/{id}", "head"),
        ("/l/{id}", "options"),
        ("/v1/users/{user_id}/links", "post"),
        ("/v1/users/{user_id}/submission", "put"),
        ("/v1/users/{user_id}/step-up", "get"),
        ("/v1/webhooks/argos/{path_secret}", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} undocumented"
        );
    }
    let codes = doc["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .unwrap();
    for code in [
        "link_used",
        "rate_limited",
        "insufficient_scope",
        "request_timeout",
        "shutting_down",
    ] {
        assert!(codes.iter().any(|c| c == code), "{code}");
    }
}

/// `SIGHUP` on the real binary: the webhook path secret and the service API key hashes are
/// read from files (`…__FILE`); both files change (a rotation of each), `SIGHUP` applies them
/// while requests keep flowing (none fails), a reload with a missing file is refused and
/// changes nothing, and the log names no secret.
#[tokio::test]
async fn sighup_rereads_secret_files_without_dropping_requests() {
    let dir = std::env::temp_dir().join(format!("fag-hup-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (p1, p2) = (
        "hup_path_secret_one_0123456789abcdefghij",
        "hup_path_secret_two_0123456789abcdefghij",
    );
    let (key_a, key_b) = ("service-key-a-0123456789", "service-key-b-0123456789");
    let sha = |k: &str| hex::encode(openssl::sha::sha256(k.as_bytes()));
    let path_file = dir.join("webhook_path_secret");
    let keys_file = dir.join("service_api_key_sha256");
    std::fs::write(&path_file, format!("{p1}\n")).unwrap();
    std::fs::write(&keys_file, format!("{}\n{}\n", sha(key_a), sha(key_b))).unwrap();
    let (gw, api_key, _) = Gateway::start(&[
        (
            "FACEAUTH__WEBHOOKS__PATH_SECRET__FILE",
            path_file.display().to_string(),
        ),
        (
            "FACEAUTH__AUTH__SERVICE__API_KEY_SHA256__FILE",
            keys_file.display().to_string(),
        ),
    ]);
    let client = test_client();
    let webhook = |secret: &str| {
        let req = client
            .post(gw.url(&format!("/v1/webhooks/argos/{secret}")))
            .header("content-type", "application/json")
            .body("{}");
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let service = |key: &str| {
        let req = client
            .put(gw.url("/v1/users/hup-user/submission"))
            .header("x-api-key", key)
            .json(&serde_json::json!({"sid": "sid-hup"}));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_ne!(webhook(p1).await, 404);
    assert_eq!(webhook(p2).await, 404);
    assert_eq!(service(key_a).await, 204);
    assert_eq!(service(key_b).await, 204);

    // Requests keep flowing with key B throughout the reload.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, url, stop) = (
            client.clone(),
            gw.url("/v1/users/hup-user/submission"),
            stop.clone(),
        );
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = client
                    .put(&url)
                    .header("x-api-key", key_b)
                    .json(&serde_json::json!({"sid": "sid-hup"}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 204 => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    std::fs::write(&path_file, format!("{p2}\n")).unwrap();
    std::fs::write(&keys_file, format!("{}\n", sha(key_b))).unwrap();
    gw.signal("HUP");
    let started = Instant::now();
    while webhook(p2).await == 404 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "SIGHUP not applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed) = load.await.unwrap();
    assert!(ok > 0);
    assert_eq!(failed, 0, "no request failed during the reload");
    assert_eq!(webhook(p1).await, 404, "the old path secret is gone");
    assert_eq!(service(key_a).await, 401, "the old service key is gone");
    assert_eq!(service(key_b).await, 204);

    // A reload that cannot read a file is refused as a whole: nothing changes.
    std::fs::remove_file(&path_file).unwrap();
    std::fs::write(&keys_file, format!("{}\n", sha(key_a))).unwrap();
    gw.signal("HUP");
    let metrics_url = format!("http://127.0.0.1:{}/metrics", gw.metrics_port);
    let started = Instant::now();
    loop {
        let text = client
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(r#"faceauth_config_reloads_total{outcome="error"} 1"#) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "reload not refused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(webhook(p2).await, 404, "the applied path secret stays");
    assert_eq!(service(key_b).await, 204, "the applied service keys stay");
    assert_eq!(service(key_a).await, 401);

    gw.signal("TERM");
    let (code, stderr) = gw.wait(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("configuration reloaded"), "{stderr}");
    assert!(stderr.contains("configuration reload refused"), "{stderr}");
    assert!(stderr.contains("webhooks.path_secret_file"), "{stderr}");
    for secret in [p1, p2, key_a, key_b, api_key.as_str()] {
        assert!(!stderr.contains(secret), "secret in the log");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// OpenTelemetry on the real binary (`telemetry.otlp_endpoint`): a request with a W3C
/// `traceparent` makes an outgoing ARGOS call (`sid` source `argos`) that carries the same
/// trace id with another span id; at shutdown the spans reach a local OTLP/HTTP receiver
/// (protobuf): the request's, the ARGOS call's and the Redis scripts', in the caller's trace,
/// without the user id, the link id or any key.
#[tokio::test]
async fn traces_join_the_callers_trace_and_reach_the_otlp_receiver() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let argos = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/submission"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "items": [{"submission_id": "sid-otel", "created_at": "2026-01-01T00:00:00Z",
                       "userid": "otel-user", "kyc": {"result": "approved"}}]
        })))
        .mount(&argos)
        .await;
    let collector = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&collector)
        .await;
    let idcheck_key = format!("idcheck_{}", uuid::Uuid::new_v4().simple());
    let (gw, api_key, _) = Gateway::start(&[
        ("FACEAUTH__ARGOS__API_BASE_URL", argos.uri()),
        ("FACEAUTH__ARGOS__IDCHECK_API_KEY", idcheck_key.clone()),
        ("FACEAUTH__SID__SOURCES", "[\"argos\"]".to_string()),
        ("FACEAUTH__TELEMETRY__OTLP_ENDPOINT", collector.uri()),
    ]);
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let parent_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let client = test_client();
    let minted = client
        .post(gw.url("/v1/links"))
        .bearer_auth(user_jwt("otel-user"))
        .header("traceparent", format!("00-{trace_id}-{parent_span}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), 201);
    let link_id = minted.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let calls = argos.received_requests().await.unwrap();
    assert_eq!(calls.len(), 1);
    let sent = calls[0]
        .headers
        .get("traceparent")
        .expect("traceparent to ARGOS");
    let parts: Vec<&str> = sent.to_str().unwrap().split('-').collect();
    assert_eq!(parts.len(), 4, "{sent:?}");
    assert_eq!(parts[1], trace_id, "the caller's trace");
    assert_ne!(parts[2], parent_span, "a span of the gateway's own");

    gw.signal("TERM");
    let (code, stderr) = gw.wait(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{stderr}");
    let exported: Vec<u8> = collector
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/v1/traces")
        .inspect(|r| {
            assert_eq!(
                r.headers.get("content-type").unwrap(),
                "application/x-protobuf"
            )
        })
        .flat_map(|r| r.body.clone())
        .collect();
    let contains = |needle: &[u8]| exported.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(&hex::decode(&trace_id).unwrap()),
        "spans in the caller's trace"
    );
    for name in [
        &b"POST /v1/links"[..],
        b"GET /v3/submission",
        b"faceauth-gateway",
        b"redis",
    ] {
        assert!(contains(name), "{}", String::from_utf8_lossy(name));
    }
    for secret in [
        "otel-user",
        link_id.as_str(),
        api_key.as_str(),
        idcheck_key.as_str(),
        HS_SECRET,
    ] {
        assert!(!contains(secret.as_bytes()), "{secret} exported");
    }
}
