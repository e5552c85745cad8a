//! The gateway under test: settings, [`spawn_app`], [`TestApp`] with the requests tests send,
//! and [`Resp`], a response checked on the way in.

use super::{
    cluster_nodes, free_port, key_ttls, poll_until, random_prefix, redis_url, AUDIENCE, HS_SECRET,
    ISSUER,
};
use faceauth_gateway::config::StoreBackend;
use faceauth_gateway::{Application, Settings};
use jsonwebtoken::Algorithm;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PROJECT_ID: &str = "pid-test-001";
pub const FORM_URL: &str = "https://form.argos.test/face-auth";

/// Settings for a test gateway: Redis store with a fresh prefix, HS256 JWTs, a random API key.
pub fn test_settings() -> Settings {
    let mut s = Settings::load_from(None, std::iter::empty()).unwrap();
    s.server.bind = "127.0.0.1:0".parse().unwrap();
    s.server.workers = 2;
    s.server.metrics_bind = "127.0.0.1:0".into();
    s.server.public_base_url = "https://gw.test/base/".parse().unwrap();
    s.store.backend = StoreBackend::Redis;
    s.store.redis_url = Some(SecretString::from(redis_url()));
    if let Some(nodes) = cluster_nodes() {
        s.store.redis_mode = faceauth_gateway::config::RedisMode::Cluster;
        s.store.cluster_nodes = nodes;
    }
    s.store.key_prefix = random_prefix();
    s.argos.form_url = FORM_URL.parse().unwrap();
    s.argos.project_id = Some(PROJECT_ID.into());
    s.argos.api_key = Some(SecretString::from(format!(
        "ak_test_{}",
        uuid::Uuid::new_v4().simple()
    )));
    s.auth.algorithms = vec![Algorithm::HS256];
    s.auth.hs256_secret = Some(SecretString::from(HS_SECRET));
    s.auth.issuer = Some(ISSUER.into());
    s.auth.audience = Some(AUDIENCE.into());
    s.auth.cf_claims.insert("authCf1".into(), "email".into());
    s.auth.cf_claims.insert("authCf3".into(), "dept".into());
    // Limits are off unless a test turns them on.
    s.limits.mint_per_user.limit = 0;
    s.limits.open_per_ip.limit = 0;
    s
}

pub struct TestApp {
    pub stop: faceauth_gateway::startup::StopHandle,
    pub reloader: faceauth_gateway::startup::Reloader,
    pub metrics_port: Option<u16>,
    pub address: String,
    pub api_key: String,
    pub prefix: String,
    pub redis_url: String,
    pub settings: Settings,
    pub client: reqwest::Client,
}

/// A response, checked on the way in: the API key never appears in a header or the body.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("body is not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
    pub fn location(&self) -> String {
        let all: Vec<_> = self.headers.get_all("location").iter().collect();
        assert_eq!(all.len(), 1, "exactly one Location header");
        all[0].to_str().unwrap().to_string()
    }
    /// Asserts an RFC 9457 problem with `code` and `status`.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        let p = self.json();
        assert_eq!(p["code"], code);
        assert_eq!(p["status"], status);
        assert!(p["type"].as_str().unwrap().ends_with(code));
        assert!(p["title"].is_string() && p["detail"].is_string());
    }
}

/// The suite's HTTP client: no redirects followed, and pooled connections dropped after 1 s
/// idle. The gateway (actix-web) closes idle keep-alive connections after 5 s; a client that
/// reuses one just as the server closes it gets `IncompleteMessage`, which on a loaded machine
/// (a test sleeping "2 s" for 5) is a real race. Dropping them well before avoids it.
pub fn test_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings();
    customise(&mut settings);
    spawn_settings(settings).await
}

pub async fn spawn_settings(settings: Settings) -> TestApp {
    let app = Application::build(settings.clone())
        .await
        .expect("gateway failed to build");
    let port = app.port();
    let stop = app.stop_handle();
    let reloader = app.reloader();
    let metrics_port = app.metrics_port();
    tokio::spawn(app.run_until_stopped());
    let address = format!("http://127.0.0.1:{port}");
    let client = test_client();
    use secrecy::ExposeSecret;
    TestApp {
        stop,
        reloader,
        metrics_port,
        address,
        api_key: settings
            .argos
            .api_key
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_string(),
        prefix: settings.store.key_prefix.clone(),
        redis_url: settings
            .store
            .redis_url
            .as_ref()
            .map(|u| u.expose_secret().to_string())
            .unwrap_or_default(),
        settings,
        client,
    }
}

impl TestApp {
    /// Stops the server and its background workers.
    pub async fn stop(&self) {
        self.stop.stop().await;
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let res = req.send().await.expect("request failed");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.bytes().await.unwrap().to_vec();
        for (name, value) in &headers {
            assert!(
                !String::from_utf8_lossy(value.as_bytes()).contains(&self.api_key),
                "API key leaked in header {name}"
            );
        }
        assert!(
            !String::from_utf8_lossy(&body).contains(&self.api_key),
            "API key leaked in body"
        );
        assert_eq!(
            headers.get("cache-control").map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "every response carries Cache-Control: no-store"
        );
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// `GET path` on this gateway, to be sent with [`TestApp::send`].
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path))
    }

    /// `POST path` on this gateway, to be sent with [`TestApp::send`].
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path))
    }

    /// `DELETE path` on this gateway, to be sent with [`TestApp::send`].
    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path))
    }

    /// `POST /v1/links` as the user of `jwt`, for a test to add headers or a body.
    pub fn mint_request(&self, jwt: &str) -> reqwest::RequestBuilder {
        self.post("/v1/links").bearer_auth(jwt)
    }

    /// `POST /v1/links` as the user of `jwt`, no body.
    pub async fn mint(&self, jwt: &str) -> Resp {
        self.send(self.mint_request(jwt)).await
    }

    /// Mints and returns the link id, asserting `201`.
    pub async fn mint_id(&self, jwt: &str) -> String {
        let r = self.mint(jwt).await;
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    }

    /// `GET /l/{id}` (redirects are never followed).
    pub async fn open(&self, id: &str) -> Resp {
        self.send(self.get(&format!("/l/{id}"))).await
    }

    /// `GET /v1/links/{id}` as the user of `jwt`.
    pub async fn link_status(&self, jwt: &str, id: &str) -> Resp {
        self.send(self.get(&format!("/v1/links/{id}")).bearer_auth(jwt))
            .await
    }

    /// `DELETE /v1/links/{id}` as the user of `jwt`.
    pub async fn revoke(&self, jwt: &str, id: &str) -> Resp {
        self.send(self.delete(&format!("/v1/links/{id}")).bearer_auth(jwt))
            .await
    }

    /// `GET /v1/face-auth/start` as the user of `jwt`.
    pub async fn start(&self, jwt: &str) -> Resp {
        self.send(self.get("/v1/face-auth/start").bearer_auth(jwt))
            .await
    }

    /// `POST /v1/users/{user}/links` (the service mint) with the service token `jwt`, no body.
    pub async fn service_mint(&self, jwt: &str, user: &str) -> Resp {
        self.send(
            self.post(&format!("/v1/users/{user}/links"))
                .bearer_auth(jwt),
        )
        .await
    }

    /// `GET /v1/users/{user}/step-up?max_age_secs=…` with a `faceauth:status:read` service JWT;
    /// asserts `200` and returns the body.
    pub async fn step_up(&self, user: &str, max_age_secs: u64) -> Value {
        let r = self
            .send(
                self.get(&format!(
                    "/v1/users/{user}/step-up?max_age_secs={max_age_secs}"
                ))
                .bearer_auth(super::service_jwt("faceauth:status:read")),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// `POST`s an ARGOS webhook `body` (JSON) to this gateway's webhook route (its configured
    /// path secret).
    pub async fn post_webhook(&self, body: impl AsRef<[u8]>) -> Resp {
        use secrecy::ExposeSecret;
        let secret = self
            .settings
            .webhooks
            .path_secret
            .as_ref()
            .expect("webhooks.path_secret is set")
            .expose_secret()
            .to_string();
        self.send(
            self.post(&format!("/v1/webhooks/argos/{secret}"))
                .header("content-type", "application/json")
                .body(body.as_ref().to_vec()),
        )
        .await
    }

    /// The text of `GET /metrics` on the metrics listener.
    pub async fn metrics(&self) -> String {
        let port = self.metrics_port.expect("metrics listener on");
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The Redis nodes holding this test's keys: every cluster node, or the one server.
    fn nodes(&self) -> Vec<String> {
        if self.settings.store.redis_mode == faceauth_gateway::config::RedisMode::Cluster {
            self.settings.store.cluster_nodes.clone()
        } else {
            vec![self.redis_url.clone()]
        }
    }

    /// All keys under this test's prefix.
    pub async fn keys(&self) -> Vec<String> {
        key_ttls(&self.nodes(), &self.prefix)
            .expect("Redis answers")
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    /// Every key the gateway wrote has an expiry.
    pub async fn assert_every_key_expires(&self) {
        for (key, pttl) in key_ttls(&self.nodes(), &self.prefix).expect("Redis answers") {
            assert!(pttl > 0, "key {key} has no expiry (PTTL {pttl})");
        }
    }
}

/// After every test that spawned a gateway: every key under its prefix has an expiry. Skipped
/// when the test already failed or its (private) Redis is gone.
impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() || self.redis_url.is_empty() {
            return;
        }
        let Some(ttls) = key_ttls(&self.nodes(), &self.prefix) else {
            return;
        };
        for (key, pttl) in ttls {
            assert!(pttl > 0, "key {key} has no expiry (PTTL {pttl})");
        }
    }
}

/// The status code of `GET path` on 127.0.0.1:`port` (plain HTTP/1.0, blocking), or `None` if
/// nothing answers. For polling real processes until they are ready.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The gateway's binary, built by Cargo for the integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_faceauth-gateway");

/// The real binary (`faceauth-gateway serve`) as a child process on free ports, configured by
/// environment variables like [`test_settings`] (Redis store, fresh prefix, HS256 JWTs, a
/// random API key), JSON debug logs on stderr.
pub struct Gateway {
    child: Child,
    pub port: u16,
    pub metrics_port: u16,
}

impl Gateway {
    pub fn start(extra: &[(&str, String)]) -> (Gateway, String, String) {
        let port = free_port();
        let metrics_port = free_port();
        let api_key = format!("ak_proc_{}", uuid::Uuid::new_v4().simple());
        let prefix = random_prefix();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .env("RUST_LOG", "debug")
            .env("FACEAUTH__LOG__FORMAT", "json")
            .env("FACEAUTH__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env(
                "FACEAUTH__SERVER__METRICS_BIND",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("FACEAUTH__STORE__REDIS_URL", redis_url())
            .env("FACEAUTH__STORE__KEY_PREFIX", &prefix)
            .env("FACEAUTH__ARGOS__PROJECT_ID", PROJECT_ID)
            .env("FACEAUTH__ARGOS__FORM_URL", FORM_URL)
            .env("FACEAUTH__ARGOS__API_KEY", &api_key)
            .env("FACEAUTH__AUTH__ALGORITHMS", "[\"HS256\"]")
            .env("FACEAUTH__AUTH__HS256_SECRET", HS_SECRET)
            .env("FACEAUTH__AUTH__ISSUER", ISSUER)
            .env("FACEAUTH__AUTH__AUDIENCE", AUDIENCE)
            .env(
                "FACEAUTH__WEBHOOKS__PATH_SECRET",
                "webhook_path_secret_0123456789_abcdef",
            )
            .env("FACEAUTH__WEBHOOKS__ALLOWED_IPS", "[\"127.0.0.1/32\"]")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            // A secret read from a file replaces the value variable set above.
            if let Some(value_var) = k.strip_suffix("__FILE") {
                cmd.env_remove(value_var);
            }
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        // Ready, not merely listening: /readyz answers 200 once the store is connected.
        assert!(
            poll_until(Duration::from_secs(30), || http_status(port, "/readyz")
                == Some(200)),
            "gateway did not become ready"
        );
        (
            Gateway {
                child,
                port,
                metrics_port,
            },
            api_key,
            prefix,
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `POST /v1/links` for the user of `jwt` (no body); the new link's id.
    pub async fn mint_id(&self, client: &reqwest::Client, jwt: &str) -> String {
        let minted: Value = client
            .post(self.url("/v1/links"))
            .bearer_auth(jwt)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        minted["id"].as_str().unwrap().to_string()
    }

    /// `GET /l/{id}` (the client decides about redirects).
    pub async fn open(&self, client: &reqwest::Client, id: &str) -> reqwest::Response {
        client
            .get(self.url(&format!("/l/{id}")))
            .send()
            .await
            .unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits for exit; returns (exit code, stderr).
    pub fn wait(mut self, within: Duration) -> (Option<i32>, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (status.code(), err);
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                panic!("gateway did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
