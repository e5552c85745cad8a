//! Keys from a local JWKS server (wiremock) that rotates keys, goes down and hangs.

use crate::helpers::*;
use jsonwebtoken::Algorithm;
use serde_json::json;
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn serve_jwks(server: &MockServer, body: serde_json::Value, max_age: u64) {
    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(body)
                .insert_header(
                    "cache-control",
                    format!("public, max-age={max_age}").as_str(),
                ),
        )
        .mount(server)
        .await;
}

async fn jwks_fetches(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/jwks")
        .count()
}

async fn jwks_app(
    server: &MockServer,
    algs: Vec<Algorithm>,
    tweak: impl FnOnce(&mut faceauth_gateway::Settings),
) -> TestApp {
    let url = format!("{}/jwks", server.uri());
    spawn_app_with(move |s| {
        s.auth.algorithms = algs;
        s.auth.hs256_secret = None;
        s.auth.jwks_url = Some(url.parse().unwrap());
        s.auth.jwks_min_refresh_secs = 30;
        tweak(s);
    })
    .await
}

#[tokio::test]
async fn every_asymmetric_algorithm_works_through_the_jwks() {
    let algs = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    let keys: Vec<TestKey> = algs
        .iter()
        .enumerate()
        .map(|(i, a)| TestKey::generate(*a, &format!("k{i}")))
        .collect();
    let server = MockServer::start().await;
    serve_jwks(&server, jwks(&keys.iter().collect::<Vec<_>>()), 300).await;
    let app = jwks_app(&server, algs.to_vec(), |_| {}).await;
    for key in &keys {
        let r = app
            .mint(&key.sign(&claims(&format!("user-{}", key.kid))))
            .await;
        assert_eq!(r.status, 201, "{:?}: {}", key.alg, r.text());
    }
    // A token whose alg does not fit the key named by its kid.
    let rsa = &keys[0];
    let mut forged = keys[3].sign(&claims("x"));
    let mut parts: Vec<&str> = forged.split('.').collect();
    let header = base64_url(&json!({"alg": "ES256", "kid": rsa.kid}).to_string());
    parts[0] = &header;
    forged = parts.join(".");
    app.mint(&forged).await.assert_problem(401, "invalid_token");
    // HS256 is outside this allow-list, whatever the key.
    app.mint(&user_jwt("hs"))
        .await
        .assert_problem(401, "invalid_token");
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[tokio::test]
async fn rotation_refetches_once_per_min_refresh_for_unknown_kids() {
    let old = TestKey::generate(Algorithm::RS256, "old");
    let new = TestKey::generate(Algorithm::RS256, "new");
    let server = MockServer::start().await;
    serve_jwks(&server, jwks(&[&old]), 300).await;
    let app = jwks_app(&server, vec![Algorithm::RS256], |s| {
        s.auth.jwks_min_refresh_secs = 2
    })
    .await;
    assert_eq!(app.mint(&old.sign(&claims("a"))).await.status, 201);
    let fetched = jwks_fetches(&server).await;

    // The IdP rotates: the new key appears. Within min_refresh of the last fetch an unknown kid
    // is refused without hammering the IdP...
    serve_jwks(&server, jwks(&[&old, &new]), 300).await;
    app.mint(&new.sign(&claims("b")))
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(
        jwks_fetches(&server).await,
        0,
        "no refetch inside min_refresh"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // ...after it, one refetch finds the new key.
    assert_eq!(app.mint(&new.sign(&claims("b"))).await.status, 201);
    assert_eq!(
        jwks_fetches(&server).await,
        1,
        "exactly one refetch (mocks were reset)"
    );
    assert!(fetched >= 1);

    // Unknown kids in a burst: at most one more fetch per min_refresh, all 401.
    let stranger = TestKey::generate(Algorithm::RS256, "stranger");
    for _ in 0..5 {
        app.mint(&stranger.sign(&claims("c")))
            .await
            .assert_problem(401, "invalid_token");
    }
    assert!(
        jwks_fetches(&server).await <= 2,
        "unknown kids do not hammer the IdP"
    );
}

#[tokio::test]
async fn unusable_keys_are_skipped() {
    let good = TestKey::generate(Algorithm::ES256, "good");
    let mut enc = TestKey::generate(Algorithm::RS256, "enc");
    enc.jwk["use"] = "enc".into();
    let mut no_alg = TestKey::generate(Algorithm::RS256, "no-alg");
    no_alg.jwk.as_object_mut().unwrap().remove("alg");
    let doc = json!({"keys": [
        enc.jwk, no_alg.jwk,
        {"kty": "oct", "alg": "HS256", "kid": "sym", "k": "c2VjcmV0"},
        {"kty": "XYZ", "alg": "RS256", "kid": "odd"},
        {"kty": "RSA", "alg": "RS256", "kid": "broken", "n": "!!", "e": "AQAB"},
        good.jwk
    ]});
    let server = MockServer::start().await;
    serve_jwks(&server, doc, 300).await;
    let app = jwks_app(&server, vec![Algorithm::RS256, Algorithm::ES256], |_| {}).await;
    assert_eq!(app.mint(&good.sign(&claims("g"))).await.status, 201);
    app.mint(&enc.sign(&claims("e")))
        .await
        .assert_problem(401, "invalid_token");
    // A key without `alg` serves what its type allows (here RS256): see `edges.rs`.
    assert_eq!(app.mint(&no_alg.sign(&claims("n"))).await.status, 201);
}

#[tokio::test]
async fn idp_down_uses_cached_keys_until_max_stale_then_503() {
    let key = TestKey::generate(Algorithm::EdDSA, "ed");
    let server = MockServer::start().await;
    serve_jwks(&server, jwks(&[&key]), 1).await;
    let app = jwks_app(&server, vec![Algorithm::EdDSA], |s| {
        s.auth.jwks_min_ttl_secs = 1;
        s.auth.jwks_max_stale_secs = 2;
        s.auth.jwks_min_refresh_secs = 0;
    })
    .await;
    assert_eq!(app.mint(&key.sign(&claims("a"))).await.status, 201);
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        app.mint(&key.sign(&claims("b"))).await.status,
        201,
        "stale but within jwks_max_stale_secs"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let r = app.mint(&key.sign(&claims("c"))).await;
    r.assert_problem(503, "jwks_unavailable");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));

    // The IdP comes back.
    serve_jwks(&server, jwks(&[&key]), 300).await;
    assert_eq!(app.mint(&key.sign(&claims("d"))).await.status, 201);
}

#[tokio::test]
async fn a_hanging_jwks_endpoint_does_not_hold_requests() {
    let key = TestKey::generate(Algorithm::RS256, "r");
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(jwks(&[&key]))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    let started = Instant::now();
    let app = jwks_app(&server, vec![Algorithm::RS256], |s| {
        s.auth.jwks_timeout_ms = 400;
        s.auth.jwks_min_refresh_secs = 0;
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "start-up is bounded too"
    );
    let started = Instant::now();
    app.mint(&key.sign(&claims("a")))
        .await
        .assert_problem(503, "jwks_unavailable");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn discovery_reads_jwks_uri_from_the_issuer() {
    let key = TestKey::generate(Algorithm::ES384, "d");
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": server.uri(),
            "jwks_uri": format!("{}/keys", server.uri()),
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/keys"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[&key])))
        .mount(&server)
        .await;
    let issuer = server.uri();
    let app = spawn_app_with(|s| {
        s.auth.algorithms = vec![Algorithm::ES384];
        s.auth.hs256_secret = None;
        s.auth.discovery = true;
        s.auth.issuer = Some(issuer.clone());
    })
    .await;
    let mut c = claims("disc");
    c["iss"] = issuer.clone().into();
    assert_eq!(app.mint(&key.sign(&c)).await.status, 201);
}

/// `SIGHUP` (the reloader) refetches the JWKS at once, inside `auth.jwks_min_refresh_secs`.
#[tokio::test]
async fn a_reload_refetches_the_jwks() {
    let server = MockServer::start().await;
    serve_jwks(&server, json!({"keys": []}), 3600).await;
    let app = jwks_app(&server, vec![Algorithm::RS256], |_| {}).await;
    assert_eq!(jwks_fetches(&server).await, 1, "fetched once at start-up");
    let restart = app.reloader.apply(app.settings.clone()).await.unwrap();
    assert!(restart.is_empty(), "{restart:?}");
    assert_eq!(jwks_fetches(&server).await, 2, "fetched again on reload");
}
