//! Test harness: a real gateway on a random port, a real Redis, JWTs signed by the test, and an
//! independent decryption oracle (OpenSSL through the `openssl` crate).

use faceauth_gateway::config::StoreBackend;
use faceauth_gateway::{Application, Settings};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openssl::symm::{decrypt, decrypt_aead, Cipher};
use percent_encoding::percent_decode_str;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const ISSUER: &str = "https://idp.test/";
pub const AUDIENCE: &str = "faceauth-gateway-tests";
pub const HS_SECRET: &str = "test-hs256-secret-0123456789abcdef-0123456789";
pub const PROJECT_ID: &str = "pid-test-001";
pub const FORM_URL: &str = "https://form.argos.test/face-auth";

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A private `redis-server` on a free loopback port, killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Child,
}

impl RedisServer {
    /// Starts one; `None` if `redis-server` is not installed.
    pub fn start() -> Option<RedisServer> {
        let port = free_port();
        Self::start_on(port)
    }

    pub fn start_on(port: u16) -> Option<RedisServer> {
        Self::start_with(port, &[])
    }

    /// Starts one on `port` with extra command-line settings (e.g. `--rename-command`).
    pub fn start_with(port: u16, extra: &[&str]) -> Option<RedisServer> {
        // A replica's full sync writes an RDB file even with --save "": keep it out of the repo.
        let dir = std::env::temp_dir().join(format!("fag-redis-{port}"));
        std::fs::create_dir_all(&dir).ok()?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                dir.to_str()?,
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut server = RedisServer { port, child };
        // Ready means it answers PING (not just accepts TCP: it may still be loading).
        let url = server.url();
        let ready = poll_until(Duration::from_secs(20), || redis_answers(&url));
        if !ready {
            let exited = server.child.try_wait().ok().flatten();
            panic!(
                "redis-server on port {port} did not answer PING within 20 s (exited: {exited:?})"
            );
        }
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the Redis at `url` answers `PING` with `PONG` (or, for a server with a password
/// the URL lacks, with `NOAUTH`: it is up and serving).
pub fn redis_answers(url: &str) -> bool {
    let pong = redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
    match pong {
        Ok(pong) => pong == "PONG",
        Err(e) => e.code() == Some("NOAUTH"),
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

/// Polls `ready` every 50 ms until it holds (true) or `within` has passed (false). For
/// fixtures: wait on a condition, never on a guessed delay.
pub fn poll_until(within: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let started = std::time::Instant::now();
    loop {
        if ready() {
            return true;
        }
        if started.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The Redis the suite uses: `REDIS_URL`, else 127.0.0.1:6379, else a private server started
/// once for the whole test binary (a watchdog shell stops it when the test process exits).
pub fn redis_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return url;
        }
        let local = "redis://127.0.0.1:6379/0".to_string();
        if redis_answers(&local) {
            return local;
        }
        let port = free_port();
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no & r=$!; \
             while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $r",
            parent = std::process::id()
        );
        // The watchdog outlives this call on purpose; it exits with the test process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("no Redis at REDIS_URL or 127.0.0.1:6379, and no shell to start one");
        let url = format!("redis://127.0.0.1:{port}/0");
        if poll_until(Duration::from_secs(20), || redis_answers(&url)) {
            return url;
        }
        panic!("no Redis at REDIS_URL or 127.0.0.1:6379, and redis-server did not start");
    })
    .clone()
}

/// `REDIS_CLUSTER_NODES` (comma-separated `redis://` URLs): run the suite against a cluster.
pub fn cluster_nodes() -> Option<Vec<String>> {
    std::env::var("REDIS_CLUSTER_NODES")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.split(',').map(|n| n.trim().to_string()).collect())
}

/// Where the store tests' Redis is.
pub fn test_target() -> faceauth_gateway::store::redis_conn::RedisTarget {
    use faceauth_gateway::store::redis_conn::RedisTarget;
    match cluster_nodes() {
        Some(nodes) => RedisTarget::Cluster(nodes),
        None => RedisTarget::Standalone(redis_url()),
    }
}

pub fn random_prefix() -> String {
    format!("fagtest:{}:", uuid::Uuid::new_v4().simple())
}

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

    pub async fn mint(&self, jwt: &str) -> Resp {
        self.send(self.client.post(self.url("/v1/links")).bearer_auth(jwt))
            .await
    }

    /// Mints and returns the link id, asserting `201`.
    pub async fn mint_id(&self, jwt: &str) -> String {
        let r = self.mint(jwt).await;
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    }

    pub async fn open(&self, id: &str) -> Resp {
        self.send(self.client.get(self.url(&format!("/l/{id}"))))
            .await
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

/// (key, PTTL) of every key under `prefix` on `nodes` (each node scanned and asked itself, so
/// this works on a cluster too). `None` if a node does not answer.
pub fn key_ttls(nodes: &[String], prefix: &str) -> Option<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for node in nodes {
        let mut conn = redis::Client::open(node.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
            .ok()?;
        let keys: Vec<String> =
            redis::Commands::scan_match::<_, String>(&mut conn, format!("{prefix}*"))
                .map(|iter| iter.collect())
                .ok()?;
        for key in keys {
            let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).ok()?;
            if !out.iter().any(|(k, _)| k == &key) {
                out.push((key, pttl));
            }
        }
    }
    Some(out)
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

/// Claims of a valid user token, to be altered by tests.
pub fn claims(sub: &str) -> Value {
    let now = now_secs();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
        "argos_sid": format!("sid-of-{sub}"),
        "email": format!("{sub}@example.test"),
    })
}

pub fn sign_hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .unwrap()
}

pub fn user_jwt(sub: &str) -> String {
    sign_hs256(&claims(sub))
}

/// Splits `<form_url>?pid=…&encrypted=…` independently of the gateway's code.
pub fn split_faceauth_url(location: &str) -> (String, Vec<(String, String)>) {
    let (base, query) = location.split_once('?').expect("Location has a query");
    assert!(!query.contains('+'), "no raw '+' in the query: {query}");
    let pairs = query
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (
                k.to_string(),
                percent_decode_str(v).decode_utf8().unwrap().into_owned(),
            )
        })
        .collect();
    (base.to_string(), pairs)
}

/// The independent oracle: decrypts an `encrypted` value with OpenSSL.
pub fn oracle_decrypt(mode: &str, api_key: &str, encrypted: &str) -> Vec<u8> {
    let key = openssl::sha::sha256(api_key.as_bytes());
    match mode {
        "aes-256-ecb" => decrypt(
            Cipher::aes_256_ecb(),
            &key,
            None,
            &openssl::base64::decode_block(encrypted).unwrap(),
        )
        .unwrap(),
        "aes-256-cbc" => decrypt(
            Cipher::aes_256_cbc(),
            &key,
            Some(&[0u8; 16]),
            &openssl::base64::decode_block(encrypted).unwrap(),
        )
        .unwrap(),
        "aes-256-gcm" => {
            assert!(
                encrypted
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "GCM output is lowercase hex"
            );
            let raw = hex::decode(encrypted).unwrap();
            let (nonce, rest) = raw.split_at(12);
            let (ct, tag) = rest.split_at(rest.len() - 16);
            decrypt_aead(Cipher::aes_256_gcm(), &key, Some(nonce), &[], ct, tag).unwrap()
        }
        other => panic!("unknown mode {other}"),
    }
}

/// Decrypts the `encrypted` value of a FaceAuth URL with the oracle and parses the plaintext
/// (`query` or `json`) into key → value pairs, in order.
pub fn decrypt_location(app: &TestApp, location: &str) -> Vec<(String, String)> {
    let (base, params) = split_faceauth_url(location);
    assert_eq!(base, app.settings.argos.form_url.as_str());
    assert_eq!(params.len(), 2, "only pid and encrypted: {params:?}");
    assert_eq!(params[0], ("pid".into(), PROJECT_ID.into()));
    assert_eq!(params[1].0, "encrypted");
    let mode = app.settings.argos.encryption.as_str();
    let plain = String::from_utf8(oracle_decrypt(mode, &app.api_key, &params[1].1)).unwrap();
    match app.settings.argos.plaintext.to_string().as_str() {
        "query" => plain
            .split('&')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                assert!(
                    v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
                    "value is percent-encoded: {v}"
                );
                (
                    k.to_string(),
                    percent_decode_str(v).decode_utf8().unwrap().into_owned(),
                )
            })
            .collect(),
        _ => {
            let v: serde_json::Map<String, Value> = serde_json::from_str(&plain).unwrap();
            v.into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap().to_string()))
                .collect()
        }
    }
}

pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A signing key of any supported family with its public JWK.
pub struct TestKey {
    pub alg: jsonwebtoken::Algorithm,
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    pub fn generate(alg: Algorithm, kid: &str) -> TestKey {
        use openssl::bn::BigNumContext;
        use openssl::ec::{EcGroup, EcKey};
        use openssl::nid::Nid;
        use openssl::pkey::PKey;
        let (encoding, mut jwk) = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => {
                let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
                let jwk = json!({"kty": "RSA", "n": b64url(&rsa.n().to_vec()), "e": b64url(&rsa.e().to_vec())});
                (
                    EncodingKey::from_rsa_pem(&rsa.private_key_to_pem().unwrap()).unwrap(),
                    jwk,
                )
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let (nid, crv, size) = if alg == Algorithm::ES256 {
                    (Nid::X9_62_PRIME256V1, "P-256", 32)
                } else {
                    (Nid::SECP384R1, "P-384", 48)
                };
                let group = EcGroup::from_curve_name(nid).unwrap();
                let ec = EcKey::generate(&group).unwrap();
                let mut ctx = BigNumContext::new().unwrap();
                let mut x = openssl::bn::BigNum::new().unwrap();
                let mut y = openssl::bn::BigNum::new().unwrap();
                ec.public_key()
                    .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
                    .unwrap();
                let jwk = json!({"kty": "EC", "crv": crv,
                    "x": b64url(&x.to_vec_padded(size).unwrap()),
                    "y": b64url(&y.to_vec_padded(size).unwrap())});
                let pkey = PKey::from_ec_key(ec).unwrap();
                (
                    EncodingKey::from_ec_pem(&pkey.private_key_to_pem_pkcs8().unwrap()).unwrap(),
                    jwk,
                )
            }
            Algorithm::EdDSA => {
                let pkey = PKey::generate_ed25519().unwrap();
                let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(&pkey.raw_public_key().unwrap())});
                (
                    EncodingKey::from_ed_pem(&pkey.private_key_to_pem_pkcs8().unwrap()).unwrap(),
                    jwk,
                )
            }
            other => panic!("no test key for {other:?}"),
        };
        jwk["kid"] = kid.into();
        jwk["alg"] = serde_json::to_value(alg).unwrap();
        jwk["use"] = "sig".into();
        TestKey {
            alg,
            kid: kid.into(),
            encoding,
            jwk,
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

/// Whether the reference webhook libraries (`pip install standardwebhooks stripe`) can be
/// imported. Missing: the caller skips, unless `FACEAUTH_E2E_REQUIRED` is set (then it fails).
pub fn webhook_libraries() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import standardwebhooks, stripe"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("FACEAUTH_E2E_REQUIRED").is_err(),
            "the standardwebhooks and stripe Python packages are not installed, and \
             FACEAUTH_E2E_REQUIRED is set"
        );
        eprintln!("skipped: pip install standardwebhooks stripe");
    }
    ok
}

const VERIFY_PY: &str = r#"
import json, os, sys
body = open(sys.argv[2], "rb").read()
headers = json.loads(os.environ["FAG_HEADERS"])
secret = os.environ["FAG_SECRET"]
if sys.argv[1] == "standard":
    from standardwebhooks.webhooks import Webhook
    Webhook(secret).verify(body, headers)
else:
    import stripe
    stripe.WebhookSignature.verify_header(
        body.decode(), headers["faceauth-signature"], secret, tolerance=300
    )
print("verified")
"#;

/// Verifies a delivered callback with a reference library run as a separate process:
/// `scheme` `standard` (the `standardwebhooks` package, `Webhook(secret).verify`) or `stripe`
/// (the official `stripe` package, `WebhookSignature.verify_header`). Ok, or the library's
/// refusal.
pub fn reference_verify(
    scheme: &str,
    secret: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), String> {
    let file = std::env::temp_dir().join(format!("fag-cb-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, body).unwrap();
    let map: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let out = Command::new("python3")
        .args(["-c", VERIFY_PY, scheme, file.to_str().unwrap()])
        .env("FAG_HEADERS", Value::Object(map).to_string())
        .env("FAG_SECRET", secret)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("verified") {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The service-credential audience of the results and erasure tests.
pub const SERVICE_AUDIENCE: &str = "faceauth-service";

/// A service JWT (HS256, [`SERVICE_AUDIENCE`]) with `scopes`.
pub fn service_jwt(scopes: &str) -> String {
    let mut c = claims("session-layer");
    c["aud"] = SERVICE_AUDIENCE.into();
    c["scope"] = scopes.into();
    c.as_object_mut().unwrap().remove("argos_sid");
    sign_hs256(&c)
}

/// RFC 3339 time `secs` seconds ago (ARGOS's `create_time` in fake records).
pub fn rfc3339_ago(secs: i64) -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::seconds(secs))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Polls the async `check` every 100 ms until it holds; panics naming `what` after 10 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}
