//! Input limits: URL length before anything is stored, and no open redirect on any route.

use crate::helpers::*;

#[tokio::test]
async fn a_too_long_faceauth_url_is_refused_before_minting() {
    let app = spawn_app_with(|s| s.argos.max_url_bytes = 600).await;
    let mut c = claims("yan");
    c["email"] = format!("{}@example.test", "a".repeat(300)).into();
    let jwt = sign_hs256(&c);
    let r = app.mint(&jwt).await;
    r.assert_problem(422, "field_too_long");
    assert_eq!(r.json()["field"], "authCf1");
    assert!(r.json()["detail"].as_str().unwrap().contains("600"));
    let r = app.start(&jwt).await;
    r.assert_problem(422, "field_too_long");
    assert!(r.header("location").is_none());
    assert!(app.keys().await.is_empty(), "nothing minted");

    // Just under the limit works, and the URL it produces respects it.
    let ok = app.mint_id(&user_jwt("yan")).await;
    let loc = app.open(&ok).await.location();
    assert!(loc.len() <= 600, "{}", loc.len());
}

#[tokio::test]
async fn redirects_only_ever_target_the_form_url() {
    let app = spawn_app().await;
    let jwt = user_jwt("zed");
    let hostile = [
        "//evil.example/",
        "/\\evil.example",
        "https://vendor.example@evil.example",
        "%2F%2Fevil.example",
        "%5Cevil.example",
        "https:%2F%2Fevil.example",
    ];
    let prefixes = ["/l/", "/v1/links/", "/v1/face-auth/start/", "/", "/demo/"];
    for prefix in prefixes {
        for h in hostile {
            for method in [
                reqwest::Method::GET,
                reqwest::Method::POST,
                reqwest::Method::HEAD,
            ] {
                let url = format!("{}{prefix}{h}", app.address);
                let r = app
                    .send(app.client.request(method.clone(), &url).bearer_auth(&jwt))
                    .await;
                if let Some(loc) = r.header("location") {
                    assert!(loc.starts_with(FORM_URL), "{method} {url} -> {loc}");
                }
                assert!(r.status.as_u16() < 500, "{method} {url}: {}", r.status);
            }
        }
    }
    // Query parameters cannot steer a redirect either.
    for h in hostile {
        let r = app
            .send(
                app.get(&format!(
                    "/v1/face-auth/start?next={h}&redirect_uri={h}&form_url={h}"
                ))
                .bearer_auth(&jwt),
            )
            .await;
        assert_eq!(r.status, 302);
        assert!(r.location().starts_with(&format!("{FORM_URL}?pid=")));
        let id = app.mint_id(&jwt).await;
        let r = app
            .send(app.get(&format!("/l/{id}?next={h}&url={h}")))
            .await;
        assert_eq!(r.status, 302);
        assert!(r.location().starts_with(&format!("{FORM_URL}?pid=")));
    }
}

#[tokio::test]
async fn oversized_and_malformed_bodies() {
    let app = spawn_app().await;
    let jwt = user_jwt("amy");
    // Chunked, no Content-Length, over the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b' '; 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    app.send(app.mint_request(&jwt).body(body))
        .await
        .assert_problem(413, "payload_too_large");
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    app.send(app.mint_request(&jwt).body(deep))
        .await
        .assert_problem(400, "bad_request");
    let r = app
        .send(
            app.mint_request(&jwt)
                .body(r#"{"confirm_step": true, "sid": "x"}"#),
        )
        .await;
    r.assert_problem(400, "bad_request");
    assert!(
        r.json()["detail"].as_str().unwrap().contains("sid"),
        "names the field"
    );
    assert!(app.keys().await.is_empty());
}

#[tokio::test]
async fn declared_oversize_is_refused_at_once_and_slow_bodies_time_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let jwt = user_jwt("bea");
    let addr = app.address.trim_start_matches("http://").to_string();
    let ask = |content_length: &str, body: &str| {
        format!(
            "POST /v1/links HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {jwt}\r\nContent-Length: {content_length}\r\nConnection: close\r\n\r\n{body}"
        )
    };
    // Declared 100 GB: 413 without waiting for a byte of it.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(ask("100000000000", "").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    let started = std::time::Instant::now();
    tokio::time::timeout(
        std::time::Duration::from_secs(3),
        s.read_to_string(&mut answer),
    )
    .await
    .expect("answered at once")
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // Declared 100 bytes, 2 sent, then silence: 408 after the body timeout, not a hang.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(ask("100", "{}").as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(15),
        s.read_to_string(&mut answer),
    )
    .await
    .expect("no hang")
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"));
    assert!(app.keys().await.is_empty());
}

#[tokio::test]
async fn head_works_wherever_get_does_except_start() {
    let app = spawn_app().await;
    let jwt = user_jwt("cid");
    let id = app.mint_id(&jwt).await;
    for path in ["/healthz", "/readyz"] {
        let r = app.send(app.client.head(app.url(path))).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body.is_empty());
    }
    let r = app
        .send(
            app.client
                .head(app.url(&format!("/v1/links/{id}")))
                .bearer_auth(&jwt),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .send(
            app.client
                .head(app.url("/v1/face-auth/start"))
                .bearer_auth(&jwt),
        )
        .await;
    assert_eq!(r.status, 405, "HEAD never mints");
    assert!(r.header("location").is_none());
    assert_eq!(
        app.keys()
            .await
            .iter()
            .filter(|k| k.contains("link:"))
            .count(),
        1
    );
}
