//! Issue 13, "strict at every edge": JWKS keys without `alg` (Entra ID's shape), https-only key
//! URLs, no ambient proxies, the user-id grammar in paths, CORS on refused and doubled origins,
//! IPv6 buckets, header limits, the maximum token lifetime, and the configuration/OpenAPI fixes.

use crate::helpers::*;
use jsonwebtoken::{Algorithm, Header};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SERVICE_KEY: &str = "edge-service-key";

async fn serve(server: &MockServer, at: &str, body: Value) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

/// Polls `cond` every 20 ms for up to `within`.
async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

// ---- 1. JWKS keys without `alg` ----------------------------------------------------------

fn without_alg(mut key: TestKey) -> TestKey {
    key.jwk.as_object_mut().unwrap().remove("alg");
    key
}

fn sign_as(key: &TestKey, alg: Algorithm, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

#[tokio::test]
async fn entra_shaped_keys_without_alg_verify_the_algorithms_their_type_allows() {
    // Entra ID publishes `kty`, `use`, `kid`, `x5t`, `n`, `e`, `x5c` (and `issuer`), no `alg`.
    let mut entra = without_alg(TestKey::generate(Algorithm::RS256, "entra-rsa"));
    entra.jwk["x5t"] = "nOo3ZDrODXEK1jKWhXslHR_KXEg".into();
    entra.jwk["x5c"] = json!(["MIIDBTCCAe2gAwIBAgIQN33ROaIJ6bJBWDCxtmJEbjANBgkqhkiG9w0BAQsFADAt"]);
    entra.jwk["issuer"] = "https://login.microsoftonline.com/tenant/v2.0".into();
    let ed = without_alg(TestKey::generate(Algorithm::EdDSA, "ed-no-alg"));
    let ec = without_alg(TestKey::generate(Algorithm::ES256, "ec-no-alg"));
    let mut enc = without_alg(TestKey::generate(Algorithm::RS256, "enc-no-alg"));
    enc.jwk["use"] = "enc".into();
    // A key that names its alg still serves only that one.
    let pinned = TestKey::generate(Algorithm::RS256, "pinned");
    let server = MockServer::start().await;
    serve(&server, "/jwks", jwks(&[&entra, &ed, &ec, &enc, &pinned])).await;
    let url = format!("{}/jwks", server.uri());
    let app = spawn_app_with(|s| {
        s.auth.algorithms = vec![
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::EdDSA,
            Algorithm::ES256,
        ];
        s.auth.hs256_secret = None;
        s.auth.jwks_url = Some(url.parse().unwrap());
    })
    .await;
    for (key, alg) in [
        (&entra, Algorithm::RS256),
        (&entra, Algorithm::PS256),
        (&ed, Algorithm::EdDSA),
        (&ec, Algorithm::ES256),
        (&pinned, Algorithm::RS256),
    ] {
        let r = app
            .mint(&sign_as(key, alg, &claims(&format!("u-{}", key.kid))))
            .await;
        assert_eq!(r.status, 201, "{} {alg:?}: {}", key.kid, r.text());
    }
    // RS384 is not in auth.algorithms, even though the RSA key could do it.
    app.mint(&sign_as(&entra, Algorithm::RS384, &claims("x")))
        .await
        .assert_problem(401, "invalid_token");
    // The pinned key does not serve PS256; `use: enc` keys serve nothing.
    app.mint(&sign_as(&pinned, Algorithm::PS256, &claims("x")))
        .await
        .assert_problem(401, "invalid_token");
    app.mint(&sign_as(&enc, Algorithm::RS256, &claims("x")))
        .await
        .assert_problem(401, "invalid_token");
    // A token without kid: the only key serving EdDSA.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = None;
    let no_kid = jsonwebtoken::encode(&header, &claims("nokid"), &ed.encoding).unwrap();
    assert_eq!(app.mint(&no_kid).await.status, 201);
}

// ---- 2. https-only key URLs; no redirects ------------------------------------------------

#[tokio::test]
async fn jwks_and_discovery_must_be_https_except_on_loopback() {
    use faceauth_gateway::startup::{Components, StartupError};
    let key_of = |r: Result<Components, StartupError>| match r {
        Err(StartupError::Config(e)) => e.key,
        Err(other) => panic!("unexpected {other}"),
        Ok(_) => "(built)".into(),
    };
    let jwks_at = |url: &str, insecure: bool| {
        let mut s = test_settings();
        s.auth.algorithms = vec![Algorithm::RS256];
        s.auth.hs256_secret = None;
        s.auth.jwks_url = Some(url.parse().unwrap());
        s.auth.allow_insecure_http = insecure;
        s
    };
    assert_eq!(
        key_of(Components::build(&jwks_at("http://idp.example/jwks", false)).await),
        "auth.jwks_url"
    );
    assert_eq!(
        key_of(Components::build(&jwks_at("http://idp.example/jwks", true)).await),
        "(built)",
        "auth.allow_insecure_http allows it"
    );
    for ok in [
        "https://idp.example/jwks",
        "http://127.0.0.1:1/jwks",
        "http://localhost:1/jwks",
    ] {
        assert_eq!(
            key_of(Components::build(&jwks_at(ok, false)).await),
            "(built)"
        );
    }
    let mut discovery = test_settings();
    discovery.auth.algorithms = vec![Algorithm::RS256];
    discovery.auth.hs256_secret = None;
    discovery.auth.discovery = true;
    discovery.auth.issuer = Some("http://idp.example/".into());
    assert_eq!(key_of(Components::build(&discovery).await), "auth.issuer");
    // The service profile's own JWKS follows the same rule.
    let mut service = test_settings();
    service.auth.service.audience = "svc".into();
    service.auth.service.algorithms = vec![Algorithm::RS256];
    service.auth.service.jwks_url = Some("http://idp.example/jwks".parse().unwrap());
    assert_eq!(
        key_of(Components::build(&service).await),
        "auth.service.jwks_url"
    );
}

async fn discovery_app(server: &MockServer, jwks_uri: &str) -> TestApp {
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": server.uri(),
            "jwks_uri": jwks_uri,
        })))
        .mount(server)
        .await;
    let issuer = server.uri();
    spawn_app_with(|s| {
        s.auth.algorithms = vec![Algorithm::RS256];
        s.auth.hs256_secret = None;
        s.auth.discovery = true;
        s.auth.issuer = Some(issuer);
        s.auth.jwks_min_refresh_secs = 0;
    })
    .await
}

#[tokio::test]
async fn a_discovered_plain_http_jwks_uri_is_refused_and_redirects_are_not_followed() {
    let key = TestKey::generate(Algorithm::RS256, "k");
    // Plain http on a host that is not loopback: never fetched.
    let server = MockServer::start().await;
    let app = discovery_app(&server, "http://idp.example/keys").await;
    let mut c = claims("d1");
    c["iss"] = server.uri().into();
    app.mint(&key.sign(&c))
        .await
        .assert_problem(503, "jwks_unavailable");

    // Another host than the issuer (loopback by name here), fetched as usual.
    let other = MockServer::start().await;
    serve(&other, "/keys", jwks(&[&key])).await;
    let port = other.address().port();
    let server = MockServer::start().await;
    let app = discovery_app(&server, &format!("http://localhost:{port}/keys")).await;
    let mut c = claims("d2");
    c["iss"] = server.uri().into();
    assert_eq!(app.mint(&key.sign(&c)).await.status, 201);

    // A JWKS URL that redirects (here to a good key set): the redirect is not followed.
    let server = MockServer::start().await;
    serve(&server, "/real", jwks(&[&key])).await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("{}/real", server.uri())),
        )
        .mount(&server)
        .await;
    let url = format!("{}/jwks", server.uri());
    let app = spawn_app_with(|s| {
        s.auth.algorithms = vec![Algorithm::RS256];
        s.auth.hs256_secret = None;
        s.auth.jwks_url = Some(url.parse().unwrap());
    })
    .await;
    app.mint(&key.sign(&claims("r")))
        .await
        .assert_problem(503, "jwks_unavailable");
    let followed = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .any(|r| r.url.path() == "/real");
    assert!(!followed, "the redirect was followed");
}

// ---- 3. No ambient proxies ---------------------------------------------------------------

/// A TCP listener standing in for a proxy: counts the connections it is offered.
fn fake_proxy() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        }
    });
    (port, seen)
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real gateway process whose environment names `proxy_port` in every proxy variable.
fn gateway_behind_env_proxy(
    proxy_port: u16,
    upstream: &str,
    use_env_proxy: bool,
) -> (Process, u16) {
    let port = free_port();
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env("HTTP_PROXY", &proxy)
        .env("http_proxy", &proxy)
        .env("HTTPS_PROXY", &proxy)
        .env("https_proxy", &proxy)
        .env("ALL_PROXY", &proxy)
        .env("all_proxy", &proxy)
        .env("RUST_LOG", "warn")
        .env("FACEAUTH__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("FACEAUTH__SERVER__METRICS_BIND", "")
        .env("FACEAUTH__STORE__REDIS_URL", redis_url())
        .env("FACEAUTH__STORE__KEY_PREFIX", random_prefix())
        .env("FACEAUTH__ARGOS__PROJECT_ID", PROJECT_ID)
        .env("FACEAUTH__ARGOS__API_KEY", "ak_proxy_test")
        .env("FACEAUTH__ARGOS__API_BASE_URL", upstream)
        .env("FACEAUTH__ARGOS__API_RETRIES", "0")
        .env("FACEAUTH__ARGOS__IDCHECK_API_KEY", "idcheck-proxy-test")
        .env("FACEAUTH__SID__SOURCES", "[\"argos\"]")
        .env("FACEAUTH__AUTH__ALGORITHMS", "[\"RS256\"]")
        .env("FACEAUTH__AUTH__JWKS_URL", format!("{upstream}/jwks"))
        .env("FACEAUTH__AUTH__ISSUER", ISSUER)
        .env("FACEAUTH__AUTH__AUDIENCE", AUDIENCE)
        .env(
            "FACEAUTH__OUTBOUND__USE_ENV_PROXY",
            if use_env_proxy { "true" } else { "false" },
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = Process(cmd.spawn().unwrap());
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "gateway did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

#[tokio::test]
async fn proxy_environment_variables_are_ignored_unless_asked_for() {
    let key = TestKey::generate(Algorithm::RS256, "p");
    let upstream = MockServer::start().await;
    serve(&upstream, "/jwks", jwks(&[&key])).await;
    serve(&upstream, "/v3/submission", json!({"Items": []})).await;

    // Default: HTTP_PROXY & co. are set, but neither the JWKS fetch nor the ARGOS call (which
    // carries x-api-key) goes through the proxy.
    let (proxy_port, seen) = fake_proxy();
    let (_gw, port) = gateway_behind_env_proxy(proxy_port, &upstream.uri(), false);
    let mut c = claims("proxied");
    c.as_object_mut().unwrap().remove("argos_sid");
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/links"))
        .bearer_auth(key.sign(&c))
        .send()
        .await
        .unwrap();
    // ARGOS knows no submission for this user: 422, after asking it directly.
    assert_eq!(r.status(), 422, "{}", r.text().await.unwrap());
    let paths: Vec<String> = upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert!(paths.iter().any(|p| p == "/jwks"), "{paths:?}");
    assert!(paths.iter().any(|p| p == "/v3/submission"), "{paths:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 0, "the proxy saw a request");

    // The control: with outbound.use_env_proxy = true the same environment is honoured.
    let (proxy_port, seen) = fake_proxy();
    let (_gw, _) = gateway_behind_env_proxy(proxy_port, &upstream.uri(), true);
    assert!(
        eventually(Duration::from_secs(10), || seen.load(Ordering::SeqCst) > 0).await,
        "with use_env_proxy the start-up JWKS fetch goes through the proxy"
    );
}

#[test]
fn an_explicit_proxy_is_checked_and_kept_secret() {
    let mut s = test_settings();
    s.outbound.proxy = Some(SecretString::from(
        "http://user:hunter2@proxy.internal:3128",
    ));
    assert!(s.validate().is_ok());
    assert!(!s.redacted_toml().contains("hunter2"));
    s.outbound.use_env_proxy = true;
    assert_eq!(s.validate().unwrap_err().key, "outbound.proxy");
    s.outbound.use_env_proxy = false;
    s.outbound.proxy = Some(SecretString::from("not a url"));
    assert_eq!(s.validate().unwrap_err().key, "outbound.proxy");
}

// ---- 4. The user-id grammar --------------------------------------------------------------

/// Sends `head` (request line and fields, without the final blank line) plus `body` on a raw
/// connection, so the path reaches the gateway byte for byte. Returns (status, body).
async fn raw(app: &TestApp, head: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{head}\r\nHost: gw.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn service_app() -> TestApp {
    spawn_app_with(|s| {
        s.auth.service.api_key_sha256 =
            vec![hex::encode(openssl::sha::sha256(SERVICE_KEY.as_bytes()))];
        s.limits.mint_per_user.limit = 10;
    })
    .await
}

#[tokio::test]
async fn user_ids_in_paths_follow_the_documented_grammar() {
    let app = service_app().await;
    let auth = format!("X-Api-Key: {SERVICE_KEY}\r\nContent-Type: application/json");
    let long = "a".repeat(1025);
    for bad in [
        "%FE", "%FF", "%C0%AF", "%ZZ", "%00", "u%00x", "%1B", "%7F", "%C2%85", "%E2%82", "%", &long,
    ] {
        for (verb, suffix, body) in [
            ("PUT", "submission", r#"{"sid":"sub-1"}"#),
            ("POST", "links", ""),
            ("GET", "step-up?max_age_secs=60", ""),
        ] {
            let (status, answer) = raw(
                &app,
                &format!("{verb} /v1/users/{bad}/{suffix} HTTP/1.1\r\n{auth}"),
                body,
            )
            .await;
            assert_eq!(status, 400, "{verb} {bad}: {answer}");
            let p: Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(p["code"], "bad_request", "{bad}");
            assert!(p["detail"].as_str().unwrap().contains("user id"));
        }
    }
    assert!(app.keys().await.is_empty(), "nothing was written");

    // Valid ids, percent-encoded: one user per decoded value.
    for (encoded, plain) in [("J%C3%BCrgen", "Jürgen"), ("auth0%7Cabc", "auth0|abc")] {
        let (status, answer) = raw(
            &app,
            &format!("PUT /v1/users/{encoded}/submission HTTP/1.1\r\n{auth}"),
            &format!(r#"{{"sid":"sid-of-{plain}"}}"#),
        )
        .await;
        assert_eq!(status, 204, "{encoded}: {answer}");
        let (status, answer) = raw(
            &app,
            &format!("POST /v1/users/{encoded}/links HTTP/1.1\r\n{auth}"),
            "",
        )
        .await;
        assert_eq!(status, 201, "{encoded}: {answer}");
    }
    app.assert_every_key_expires().await;
}

// ---- 5. CORS and the cookie check --------------------------------------------------------

const APP_ORIGIN: &str = "https://app.example";

fn cors_headers(r: &Resp) -> Vec<String> {
    r.headers
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn refused_and_doubled_origins_get_no_cors_headers_and_no_cookie_mint() {
    let app = spawn_app_with(|s| {
        s.auth.cookie_name = "session".into();
        s.cors.allowed_origins = vec![APP_ORIGIN.into()];
        s.cors.allow_credentials = true;
    })
    .await;
    let jwt = user_jwt("cors-user");
    // A refused origin: the request is served (bearer), but without any CORS field.
    let r = app
        .send(
            app.mint_request(&jwt)
                .header("origin", "https://evil.example"),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(cors_headers(&r), Vec::<String>::new());
    // No Origin at all: no CORS fields either.
    let r = app.mint(&jwt).await;
    assert_eq!(cors_headers(&r), Vec::<String>::new());
    // Errors from a refused origin too.
    let r = app
        .send(
            app.post("/v1/links")
                .header("origin", "https://evil.example"),
        )
        .await;
    r.assert_problem(401, "missing_credentials");
    assert_eq!(cors_headers(&r), Vec::<String>::new());
    // The allowed origin still gets its grant.
    let r = app
        .send(app.mint_request(&jwt).header("origin", APP_ORIGIN))
        .await;
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(APP_ORIGIN)
    );
    assert_eq!(
        r.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );

    // Two Origin fields, the allowed one first, with the cookie: refused, nothing minted.
    let doubled = [
        vec![APP_ORIGIN, "https://evil.example"],
        vec!["https://app.example https://evil.example"],
        vec!["https://app.example, https://evil.example"],
    ];
    let before = app.keys().await;
    for origins in &doubled {
        let mut req = app
            .post("/v1/links")
            .header("cookie", format!("session={jwt}"));
        for o in origins {
            req = req.header("origin", *o);
        }
        let r = app.send(req).await;
        r.assert_problem(403, "cross_site_request");
        assert_eq!(cors_headers(&r), Vec::<String>::new(), "{origins:?}");
    }
    assert_eq!(app.keys().await.len(), before.len(), "nothing was minted");
    // With a bearer token such a request is served, but no origin is granted.
    for origins in &doubled {
        let mut req = app.post("/v1/links").bearer_auth(&jwt);
        for o in origins {
            req = req.header("origin", *o);
        }
        let r = app.send(req).await;
        assert_eq!(r.status, 201);
        assert_eq!(cors_headers(&r), Vec::<String>::new(), "{origins:?}");
    }
    // A preflight with two origins is refused like any refused preflight.
    let r = app
        .send(
            app.client
                .request(reqwest::Method::OPTIONS, app.url("/v1/links"))
                .header("origin", APP_ORIGIN)
                .header("origin", "https://evil.example")
                .header("access-control-request-method", "POST"),
        )
        .await;
    r.assert_problem(400, "bad_request");
    assert_eq!(cors_headers(&r), Vec::<String>::new());
}

// ---- 6. IPv6 buckets ---------------------------------------------------------------------

#[tokio::test]
async fn ipv6_clients_are_limited_per_prefix_and_mapped_ipv4_counts_as_ipv4() {
    let app = spawn_app_with(|s| {
        s.limits.open_per_ip.limit = 2;
        s.limits.open_per_ip.window_secs = 60;
        s.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let url = app.url(&format!("/l/{}", uuid::Uuid::new_v4()));
    let from = |ip: &str| app.send(app.client.head(&url).header("x-forwarded-for", ip));
    // A client rotating addresses inside its /64.
    assert_eq!(from("2001:db8:1:2::1").await.status, 404);
    assert_eq!(from("2001:db8:1:2:ffff:ffff:ffff:fffe").await.status, 404);
    assert_eq!(from("2001:db8:1:2:abcd::42").await.status, 429);
    // The next /64 is another client.
    assert_eq!(from("2001:db8:1:3::1").await.status, 404);
    // IPv4-mapped IPv6 is the IPv4 address.
    assert_eq!(from("::ffff:198.51.100.9").await.status, 404);
    assert_eq!(from("198.51.100.9").await.status, 404);
    assert_eq!(from("::ffff:198.51.100.9").await.status, 429);
    let buckets: Vec<String> = app
        .keys()
        .await
        .into_iter()
        .filter(|k| k.contains("rl:o:"))
        .collect();
    assert_eq!(buckets.len(), 3, "{buckets:?}");
    assert!(buckets.iter().any(|k| k.ends_with("{2001:db8:1:2::/64}")));
    assert!(buckets.iter().any(|k| k.ends_with("{198.51.100.9}")));

    // A narrower setting: /128 counts every address.
    let app = spawn_app_with(|s| {
        s.limits.open_per_ip.limit = 1;
        s.limits.ipv6_prefix_len = 128;
        s.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let url = app.url(&format!("/l/{}", uuid::Uuid::new_v4()));
    for ip in ["2001:db8::1", "2001:db8::2"] {
        let r = app
            .send(app.client.head(&url).header("x-forwarded-for", ip))
            .await;
        assert_eq!(r.status, 404, "{ip}");
    }
    let mut s = test_settings();
    s.limits.ipv6_prefix_len = 0;
    assert_eq!(s.validate().unwrap_err().key, "limits.ipv6_prefix_len");
}

// ---- 7. Header and request-line limits ---------------------------------------------------

#[tokio::test]
async fn header_and_request_line_limits_answer_problems() {
    let app = spawn_app().await;
    let jwt = user_jwt("heads");
    let keys_before = app.keys().await.len();
    // Within the limits.
    let r = app
        .send(
            app.mint_request(&jwt)
                .header("x-padding", "p".repeat(8 * 1024)),
        )
        .await;
    assert_eq!(r.status, 201);
    let keys_after_mint = app.keys().await.len();
    assert!(keys_after_mint > keys_before);
    // One 20 KiB field, and the 64 KiB field that used to pass.
    for size in [20 * 1024, 64 * 1024] {
        let r = app
            .send(app.mint_request(&jwt).header("x-padding", "p".repeat(size)))
            .await;
        r.assert_problem(431, "request_header_fields_too_large");
    }
    // Too many fields.
    let mut req = app.get("/healthz");
    for i in 0..70 {
        req = req.header(format!("x-field-{i}"), "1");
    }
    app.send(req)
        .await
        .assert_problem(431, "request_header_fields_too_large");
    // A request target over 8 KiB.
    let r = app
        .send(app.get(&format!("/healthz?q={}", "q".repeat(9 * 1024))))
        .await;
    r.assert_problem(414, "uri_too_long");
    // Nothing was minted by the refused requests.
    assert_eq!(
        app.keys().await.len(),
        keys_after_mint,
        "only the first mint wrote"
    );
    // The limits are settings, validated.
    let mut s = test_settings();
    s.server.max_headers = 200;
    assert_eq!(s.validate().unwrap_err().key, "server.max_headers");
    let mut s = test_settings();
    s.server.max_header_bytes = 10;
    assert_eq!(s.validate().unwrap_err().key, "server.max_header_bytes");
}

// ---- 8. Maximum token lifetime -----------------------------------------------------------

#[tokio::test]
async fn tokens_living_longer_than_the_maximum_are_refused() {
    let app = spawn_app_with(|s| s.auth.max_token_lifetime_secs = 3600).await;
    let mut c = claims("longlived");
    c["exp"] = json!(now_secs() + 3500);
    assert_eq!(app.mint(&sign_hs256(&c)).await.status, 201);
    c["exp"] = json!(now_secs() + 30 * 24 * 3600);
    let r = app.mint(&sign_hs256(&c)).await;
    r.assert_problem(401, "invalid_token");
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("max_token_lifetime_secs"),
        "{}",
        r.text()
    );
    // Off by default.
    let app = spawn_app().await;
    assert_eq!(app.mint(&sign_hs256(&c)).await.status, 201);
}

// ---- 9. Small ones -----------------------------------------------------------------------

#[test]
fn an_unknown_setting_is_named_once() {
    use faceauth_gateway::config::Settings;
    let e = Settings::load_from(
        None,
        vec![("FACEAUTH__STORE__KEY_PREFX".to_string(), "x:".to_string())],
    )
    .unwrap_err();
    assert_eq!(e.key, "store.key_prefx");
    let dir = std::env::temp_dir().join(format!("fag-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gw.toml");
    std::fs::write(&file, "[store]\nkey_prefx = \"x:\"\n").unwrap();
    let e = Settings::load_from(Some(&file), Vec::new()).unwrap_err();
    assert_eq!(e.key, "store.key_prefx");
    let e = Settings::load_from(
        None,
        vec![(
            "FACEAUTH__LIMITS__MINT_PER_USER__LIMT".to_string(),
            "1".to_string(),
        )],
    )
    .unwrap_err();
    assert_eq!(e.key, "limits.mint_per_user.limt");
}

#[tokio::test]
async fn openapi_documents_every_readme_route_with_exact_parameters() {
    let app = spawn_app().await;
    let doc = app.send(app.get("/openapi.json")).await.json();
    let paths = doc["paths"].as_object().unwrap();
    // The route table lives in the HTTP API guide.
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/http-api.md"),
    )
    .unwrap();
    let mut routes = 0;
    for line in guide.lines() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let Some((route, _)) = rest.split_once('`') else {
            continue;
        };
        let Some((verb, path)) = route.split_once(' ') else {
            continue;
        };
        if !["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"].contains(&verb)
            || !path.starts_with('/')
        {
            continue;
        }
        let path = path.split('?').next().unwrap();
        routes += 1;
        assert!(
            paths
                .get(path)
                .and_then(|p| p.get(verb.to_ascii_lowercase()))
                .is_some(),
            "{verb} {path} is in docs/http-api.md but not in the OpenAPI document"
        );
    }
    assert!(
        routes >= 15,
        "found only {routes} routes in docs/http-api.md"
    );
    let mut ids = std::collections::HashSet::new();
    for item in paths.values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op.get("operationId") {
                assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
            }
        }
    }
    let param = |path: &str, verb: &str, name: &str| -> Value {
        paths[path][verb]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"]
            .clone()
    };
    for verb in ["get", "head", "delete"] {
        let id = param("/v1/links/{id}", verb, "id");
        assert_eq!(id["format"], "uuid");
        assert!(id["pattern"].as_str().unwrap().contains("-4[0-9a-f]{3}-"));
    }
    let user = param("/v1/users/{user_id}/links", "post", "user_id");
    assert_eq!(
        (user["minLength"].clone(), user["maxLength"].clone()),
        (json!(1), json!(1024))
    );
    assert!(user["pattern"].is_string());
    let age = param("/v1/users/{user_id}/step-up", "get", "max_age_secs");
    assert_eq!(
        (age["minimum"].clone(), age["maximum"].clone()),
        (json!(0), json!(34_560_000))
    );
    let codes = doc["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .unwrap();
    for code in ["request_header_fields_too_large", "uri_too_long"] {
        assert!(codes.iter().any(|c| c == code), "{code}");
    }
}

#[tokio::test]
async fn the_start_up_log_names_a_foreign_jwks_host_once_and_warns_about_plain_http() {
    let key = TestKey::generate(Algorithm::RS256, "logged");
    let keys = MockServer::start().await;
    serve(&keys, "/keys", jwks(&[&key])).await;
    let issuer = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": issuer.uri(),
            "jwks_uri": format!("http://localhost:{}/keys", keys.address().port()),
        })))
        .mount(&issuer)
        .await;
    let port = free_port();
    let mut child = Command::new(BIN)
        .arg("serve")
        .env("RUST_LOG", "info")
        .env("FACEAUTH__LOG__FORMAT", "json")
        .env("FACEAUTH__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("FACEAUTH__SERVER__METRICS_BIND", "")
        .env("FACEAUTH__STORE__REDIS_URL", redis_url())
        .env("FACEAUTH__STORE__KEY_PREFIX", random_prefix())
        .env("FACEAUTH__ARGOS__PROJECT_ID", PROJECT_ID)
        .env("FACEAUTH__ARGOS__API_KEY", "ak_log_test")
        .env("FACEAUTH__AUTH__ALGORITHMS", "[\"RS256\"]")
        .env("FACEAUTH__AUTH__DISCOVERY", "true")
        .env("FACEAUTH__AUTH__JWKS_MIN_REFRESH_SECS", "0")
        .env("FACEAUTH__AUTH__ALLOW_INSECURE_HTTP", "true")
        .env("FACEAUTH__AUTH__ISSUER", issuer.uri())
        .env("FACEAUTH__AUTH__AUDIENCE", AUDIENCE)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(15), "no start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Unknown kids make the gateway read the discovery document again, twice.
    let stranger = TestKey::generate(Algorithm::RS256, "stranger");
    let mut c = claims("logs");
    c["iss"] = issuer.uri().into();
    for _ in 0..2 {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/v1/links"))
            .bearer_auth(stranger.sign(&c))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let discoveries = issuer.received_requests().await.unwrap().len();
    assert!(discoveries >= 3, "{discoveries} discovery fetches");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let _ = child.wait();
    let named = logs
        .lines()
        .filter(|l| l.contains("jwks_uri on another host than the issuer"))
        .collect::<Vec<_>>();
    assert_eq!(named.len(), 1, "{logs}");
    assert!(
        named[0].contains("\"jwks_host\":\"localhost\""),
        "{}",
        named[0]
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("WARN") && l.contains("allow_insecure_http")),
        "{logs}"
    );
}
