//! `faceauth-gateway demo`: the whole flow with no outside setup.
//!
//! In-memory store, random keys and secrets made at start, and only loopback calls:
//!
//! * `/demo`: the app's page. It mints with a demo JWT, follows the link and, back on the page,
//!   polls the link's status, the step-up answer and the signed callback.
//! * `/demo/form`: a stand-in for ARGOS's FaceAuth form. It decrypts `encrypted` with the demo
//!   Add-on key, shows what it received and offers "Pass", "Fail" and "Pass, but an old
//!   FaceAuth" (`POST /demo/form/verdict`): the verdict is stored in a stand-in for ARGOS's REST
//!   API (`GET /demo/argos/v3/faceauth`, where `argos.api_base_url` points) and a `faceAuth`
//!   webhook goes to the gateway's own receiver, so the real results loop runs unchanged.
//! * `/demo/callbacks`: receives the signed `step_up.completed` callbacks (`callbacks.url`) and
//!   checks their signature; `GET` lists what arrived.
//! * `/demo/step-up`: the app's backend asking `GET /v1/users/demo-user/step-up` with the demo
//!   service API key, relayed to the page.
//!
//! The `/demo*` routes exist only here.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use jsonwebtoken::{EncodingKey, Header};
use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq;

use crate::argos::crypto::QueryCipher;
use crate::argos::url::PlaintextFormat;
use crate::auth::service::API_KEY_HEADER;
use crate::callbacks::{verify_signature, SIGNATURE_HEADER};
use crate::clock::now_secs;
use crate::config::{ConfigError, Settings, StoreBackend};
use crate::digest::sha256_hex;
use crate::http::html::{escape, page};
use crate::http::ApiError;
use crate::startup::{Application, Extension, StartupError};

/// Issuer and audience of demo tokens.
pub const DEMO_ISSUER: &str = "faceauth-gateway-demo";
/// FaceAuth project id used in demo mode.
pub const DEMO_PROJECT_ID: &str = "demo-project";

/// The demo user.
pub const DEMO_USER: &str = "demo-user";
/// The demo user's approved ID Check submission (`argos_sid` claim of the demo JWT).
pub const DEMO_SID: &str = "demo-submission-0001";
/// The step-up window the demo page asks about (`max_age_secs`).
pub const DEMO_MAX_AGE_SECS: u64 = 300;
/// Stand-in FaceAuth records and received callbacks kept in memory (oldest dropped).
const KEEP: usize = 200;
/// Tolerance of the demo receiver for the signature timestamp, seconds.
const SIGNATURE_TOLERANCE_SECS: u64 = 300;

/// State of the demo routes.
pub struct DemoState {
    cipher: QueryCipher,
    format: PlaintextFormat,
    jwt: SecretString,
    /// `http://<loopback>:<port>`: where the loop's own calls go.
    loopback: String,
    addon_key: SecretString,
    webhook_secret: SecretString,
    callback_secret: SecretString,
    service_key: SecretString,
    http: reqwest::Client,
    /// The stand-in ARGOS's FaceAuth records (`GET /v3/faceauth` items), oldest first.
    faceauths: Mutex<VecDeque<Value>>,
    /// Callbacks received at `/demo/callbacks`, oldest first.
    received: Mutex<VecDeque<Value>>,
}

/// Appends to a bounded in-memory log (a poisoned lock is taken over: the data is plain JSON).
fn remember(log: &Mutex<VecDeque<Value>>, item: Value) {
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    if log.len() >= KEEP {
        log.pop_front();
    }
    log.push_back(item);
}

fn snapshot(log: &Mutex<VecDeque<Value>>) -> Vec<Value> {
    log.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect()
}

fn now_rfc3339(offset: time::Duration) -> String {
    (time::OffsetDateTime::now_utc() - offset)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `bytes` random bytes' worth of hex: UUID v4s (122 random bits each, from a CSPRNG),
/// concatenated and cut to length.
fn random_hex(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes * 2 + 32);
    while out.len() < bytes * 2 {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(bytes * 2);
    out
}

/// Signs a demo token (HS256, 24 h) for `sub` with a submission id and an e-mail claim.
fn demo_jwt(secret: &SecretString, sub: &str) -> Result<SecretString, jsonwebtoken::errors::Error> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({
        "iss": DEMO_ISSUER,
        "aud": DEMO_ISSUER,
        "sub": sub,
        "iat": now,
        "exp": now + 24 * 3600,
        "argos_sid": DEMO_SID,
        "email": "demo.user@example.test",
    });
    jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .map(SecretString::from)
}

/// Registers the `/demo*` routes (demo mode only).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/demo", web::get().to(demo_page))
        .route("/demo/form", web::get().to(demo_form))
        .route("/demo/form/verdict", web::post().to(verdict))
        .route("/demo/argos/v3/faceauth", web::get().to(argos_faceauth))
        .route("/demo/callbacks", web::post().to(receive_callback))
        .route("/demo/callbacks", web::get().to(received_callbacks))
        .route("/demo/step-up", web::get().to(step_up));
}

async fn demo_page(demo: web::Data<DemoState>) -> HttpResponse {
    let body = format!(
        r#"<style>body{{max-width:56rem}}section{{border:1px solid #ccc;border-radius:6px;padding:0 1rem .5rem;margin:1rem 0}}
h2{{font-size:1.15rem;margin:.7rem 0 .2rem}}.call{{margin:.2rem 0;color:#444}}.reads{{font-size:1.15rem;margin:.3rem 0}}
pre{{margin:.3rem 0;padding:.4rem .6rem;font-size:.85rem}}</style>
<p>This page plays the app: it holds a demo JWT for <code>{user}</code>, asks the gateway for a
single-use FaceAuth link and follows it. On the stand-in FaceAuth form, press Pass or Fail: the
stand-in ARGOS keeps that verdict and sends the gateway its webhook, the gateway pull-verifies it,
records the result and sends a signed callback. Back here, the panels below poll what the app
sees. Press the back button and open the same link again to see it refused.</p>
<p><button id="go" type="button">Verify with FaceAuth</button></p>
<p id="status" role="status"></p>
<section id="panel-link"><h2>Link status</h2>
<p class="call"><code id="link-call">GET /v1/links/{{id}}</code> → <code id="link-http">–</code>
· asked by this page with the user's JWT</p>
<p class="reads">Reads: <strong id="link-summary">no link yet: press the button</strong></p>
<pre id="link-body"></pre></section>
<section id="panel-stepup"><h2>Step-up answer</h2>
<p class="call"><code id="stepup-call">GET /v1/users/{user}/step-up?max_age_secs={max_age}</code> →
<code id="stepup-http">–</code> · asked by the app's backend (here: the demo server, relayed by
<code>GET /demo/step-up</code>) with a service credential (<code>X-Api-Key</code>, the demo's
random key)</p>
<p class="reads">Reads: <strong id="stepup-summary">…</strong></p>
<pre id="stepup-body"></pre></section>
<section id="panel-callback"><h2>Signed callback</h2>
<p class="call"><code id="callback-call">POST /demo/callbacks</code> → <code id="callback-http">–</code>
· sent by the gateway's callback worker to <code>callbacks.url</code>; the demo receiver checks
<code>{sig_header}</code> with <code>callbacks::verify_signature</code></p>
<p class="reads">Reads: <strong id="callback-summary">none received for this link yet</strong></p>
<p class="call"><code id="callback-header"></code></p>
<pre id="callback-body"></pre></section>
<section id="panel-assertion" hidden><h2>Step-up assertion</h2>
<p class="call">from the <span id="assertion-source"></span></p>
<pre id="assertion-body"></pre></section>
<script>
const token = "{jwt}";
const auth = {{Authorization: "Bearer " + token}};
const $ = (id) => document.getElementById(id);
const linkId = sessionStorage.getItem("faceauth-demo-link");
function show(name, call, status, body, summary) {{
  $(name + "-call").textContent = call;
  $(name + "-http").textContent = status === null || status === undefined ? "no answer" : String(status);
  $(name + "-summary").textContent = summary;
  $(name + "-body").textContent = body === undefined ? "" : JSON.stringify(body, null, 2);
}}
// A step-up assertion, where an answer carries one (`assertion`): shown, never required.
const assertions = {{}};
function decoded(a) {{
  const parts = typeof a === "string" ? a.split(".") : [];
  if (parts.length !== 3) return "";
  try {{
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    return "\n\npayload: " + JSON.stringify(JSON.parse(json), null, 2);
  }} catch (e) {{ return ""; }}
}}
function noteAssertion(source, body) {{
  if (body && body.assertion !== undefined && body.assertion !== null) assertions[source] = body.assertion;
  else delete assertions[source];
  const sources = Object.keys(assertions);
  $("panel-assertion").hidden = sources.length === 0;
  if (sources.length === 0) return;
  const a = assertions[sources[0]];
  $("assertion-source").textContent = sources.join(", ");
  $("assertion-body").textContent = (typeof a === "string" ? a : JSON.stringify(a, null, 2)) + decoded(a);
}}
// The SPA pattern: mint with fetch, navigate to the link, and after coming back poll the
// link's status (GET /v1/links/{{id}}).
async function pollLink() {{
  if (!linkId) return;
  const path = "/v1/links/" + linkId;
  const res = await fetch(path, {{headers: auth}});
  const body = await res.json().catch(() => null);
  const summary = res.ok && body
    ? body.state + (body.result ? " · FaceAuth " + body.result : " · no result yet")
    : (body && body.title) || "error";
  show("link", "GET " + path, res.status, body, summary);
  if (res.ok && body) {{
    $("status").textContent = "Last link " + linkId.slice(0, 8) + "…: " + body.state +
      (body.result ? " (FaceAuth " + body.result + ")" : "");
  }}
  noteAssertion("link status", body);
}}
async function pollStepUp() {{
  const relay = await (await fetch("/demo/step-up")).json();
  const b = relay.body;
  const summary = relay.status === 200 && b ? (b.verified ? "verified" : "not verified") : "no answer";
  show("stepup", relay.method + " " + relay.path, relay.status, b, summary);
  noteAssertion("step-up answer", b);
}}
async function pollCallback() {{
  if (!linkId) return;
  const log = await (await fetch("/demo/callbacks")).json();
  const mine = log.received.find((r) => r.body && r.body.link_id === linkId);
  if (!mine) return;
  const sig = mine.verified ? "signature verified" : "signature NOT verified (" + mine.error + ")";
  show("callback", "POST /demo/callbacks", mine.answer, mine.body, sig + " · " + mine.body.result);
  $("callback-header").textContent = log.header + ": " + mine.signature;
  noteAssertion("callback", mine.body);
}}
async function refresh() {{
  await Promise.allSettled([pollLink(), pollStepUp(), pollCallback()]);
}}
refresh();
setInterval(refresh, 2000);
$("go").addEventListener("click", async () => {{
  $("status").textContent = "Requesting a link…";
  const res = await fetch("/v1/links", {{method: "POST", headers: auth}});
  const body = await res.json();
  if (!res.ok) {{ $("status").textContent = body.detail; return; }}
  sessionStorage.setItem("faceauth-demo-link", body.id);
  $("status").textContent = "Opening " + body.url;
  window.location.assign(body.url);
}});
</script>"#,
        jwt = demo.jwt.expose_secret(),
        user = DEMO_USER,
        max_age = DEMO_MAX_AGE_SECS,
        sig_header = SIGNATURE_HEADER,
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page("FaceAuth step-up demo", &body))
}

/// The decrypted values as (key, value) pairs, in order.
fn parse_plaintext(plaintext: &str, format: PlaintextFormat) -> Vec<(String, String)> {
    match format {
        PlaintextFormat::Query => plaintext
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (
                    percent_decode_str(k).decode_utf8_lossy().into_owned(),
                    percent_decode_str(v).decode_utf8_lossy().into_owned(),
                )
            })
            .collect(),
        PlaintextFormat::Json => {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(plaintext)
                .map(|m| {
                    m.into_iter()
                        .map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or(v.to_string())))
                        .collect()
                })
                .unwrap_or_default()
        }
    }
}

async fn demo_form(
    query: web::Query<HashMap<String, String>>,
    demo: web::Data<DemoState>,
) -> HttpResponse {
    let pid = query.get("pid").map(String::as_str).unwrap_or("");
    let decrypted = demo.plaintext(query.get("encrypted").map(String::as_str));
    let html = match decrypted {
        Ok(plaintext) => {
            let rows: String = parse_plaintext(&plaintext, demo.format)
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<tr><th>{}</th><td id=\"param-{}\">{}</td></tr>",
                        escape(k),
                        escape(k),
                        escape(v)
                    )
                })
                .collect();
            format!(
                "<p>This stand-in for ARGOS's FaceAuth form received <code>pid</code> = \
<code id=\"pid\">{pid}</code> and decrypted <code>encrypted</code> ({mode}, {format}) with the demo \
Add-on API key:</p><table>{rows}</table><p>Real ARGOS would now take a selfie and compare it with \
the ID Check submission <code>sid</code>. Here, you decide how that ends:</p>\
<form method=\"post\" action=\"/demo/form/verdict\">\
<input type=\"hidden\" name=\"encrypted\" value=\"{encrypted}\">\
<p><button id=\"pass\" name=\"verdict\" value=\"pass\">Pass</button> \
<button id=\"fail\" name=\"verdict\" value=\"fail\">Fail</button> \
<button id=\"old\" name=\"verdict\" value=\"old\">Pass, but an old FaceAuth</button></p></form>\
<p>Pressing one stores that FaceAuth record (<code>auth_status</code>, <code>kyc_submission_id</code> \
= <code>sid</code>, <code>create_time</code> now, or years ago for the old one) in the stand-in \
ARGOS REST API (<code>GET /demo/argos/v3/faceauth?authId=…</code>, where \
<code>argos.api_base_url</code> points) and sends the <code>faceAuth</code> webhook with \
<code>Token_id</code> to the gateway's receiver. The gateway pull-verifies it as it would with \
ARGOS; you go back to <a href=\"/demo\">/demo</a>.</p>",
                pid = escape(pid),
                mode = demo.cipher.mode(),
                format = demo.format,
                encrypted = escape(query.get("encrypted").map(String::as_str).unwrap_or("")),
            )
        }
        Err(why) => format!("<p>Could not read the request: {}.</p>", escape(why)),
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(page("Stand-in FaceAuth form", &html))
}

impl DemoState {
    /// The plaintext of an `encrypted` value, or why there is none.
    fn plaintext(&self, encrypted: Option<&str>) -> Result<String, &'static str> {
        let encrypted = encrypted.ok_or("no `encrypted` parameter")?;
        let bytes = self
            .cipher
            .decrypt(encrypted)
            .map_err(|_| "`encrypted` does not decrypt")?;
        String::from_utf8(bytes).map_err(|_| "plaintext is not UTF-8")
    }
}

fn form_error(status: actix_web::http::StatusCode, why: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page(
            "Stand-in FaceAuth form",
            &format!(
                "<p>{}</p><p><a href=\"/demo\">Back to /demo</a></p>",
                escape(why)
            ),
        ))
}

/// `POST /demo/form/verdict`: what the stand-in ARGOS decided. Stores the FaceAuth record in the
/// stand-in REST API, sends the `faceAuth` webhook (reference §4.2 c) to the gateway's receiver
/// and goes back to `/demo`.
async fn verdict(body: web::Bytes, demo: web::Data<DemoState>) -> HttpResponse {
    use actix_web::http::StatusCode;
    let fields: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let (auth_status, age) = match fields.get("verdict").map(String::as_str) {
        Some("pass") => ("approved", time::Duration::ZERO),
        Some("fail") => ("rejected", time::Duration::ZERO),
        // Three years before now: older than any link's first open.
        Some("old") => ("approved", time::Duration::days(3 * 365)),
        _ => return form_error(StatusCode::BAD_REQUEST, "Unknown verdict."),
    };
    let plaintext = match demo.plaintext(fields.get("encrypted").map(String::as_str)) {
        Ok(p) => p,
        Err(why) => return form_error(StatusCode::BAD_REQUEST, why),
    };
    let values: HashMap<String, String> = parse_plaintext(&plaintext, demo.format)
        .into_iter()
        .collect();
    let value = |k: &str| values.get(k).cloned().unwrap_or_default();
    let auth_id = format!("demo-auth-{}", random_hex(12));
    let create_time = now_rfc3339(age);
    remember(
        &demo.faceauths,
        json!({
            "auth_id": auth_id,
            "auth_status": auth_status,
            "create_time": create_time,
            "submit_type": "form",
            "kyc_submission_id": value("sid"),
            "auth_user_id": value("authUserId"),
            "token": value("token"),
        }),
    );
    let webhook = json!({
        "webhook_trigger": "faceAuth",
        "data": {
            "Submission_id": value("sid"),
            "Auth_Status": auth_status,
            "Create_Time": create_time,
            "Auth_User_id": value("authUserId"),
            "Token_id": value("token"),
            "Authentication_id": auth_id,
        }
    });
    // The URL holds the path secret: neither it nor a reqwest error (which names the URL) is
    // logged or shown.
    let sent = demo
        .http
        .post(format!(
            "{}/v1/webhooks/argos/{}",
            demo.loopback,
            demo.webhook_secret.expose_secret()
        ))
        .json(&webhook)
        .send()
        .await;
    match sent {
        Ok(res) if res.status().is_success() => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/demo"))
            .finish(),
        Ok(res) => form_error(
            StatusCode::BAD_GATEWAY,
            &format!(
                "The gateway's webhook receiver answered {}.",
                res.status().as_u16()
            ),
        ),
        Err(_) => form_error(
            StatusCode::BAD_GATEWAY,
            "The gateway's webhook receiver did not answer.",
        ),
    }
}

/// `GET /demo/argos/v3/faceauth?authId=…`: the stand-in for ARGOS's REST API (reference §3.3:
/// the newer `[{faceAuth_projectId, data: [...]}]` answer; a wrong `x-api-key` is a `400`).
async fn argos_faceauth(
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    demo: web::Data<DemoState>,
) -> HttpResponse {
    let key_ok = req.headers().get("x-api-key").is_some_and(|k| {
        bool::from(
            k.as_bytes()
                .ct_eq(demo.addon_key.expose_secret().as_bytes()),
        )
    });
    if !key_ok {
        return HttpResponse::BadRequest()
            .json(json!({"errorCode": "NOT_FOUND", "message": "faceAuth_project not found"}));
    }
    let Some(auth_id) = query.get("authId") else {
        return HttpResponse::BadRequest()
            .json(json!({"errorCode": "BAD_REQUEST", "message": "authId is required"}));
    };
    let data: Vec<Value> = snapshot(&demo.faceauths)
        .into_iter()
        .filter(|r| r.get("auth_id").and_then(Value::as_str) == Some(auth_id.as_str()))
        .collect();
    HttpResponse::Ok().json(json!([{"faceAuth_projectId": DEMO_PROJECT_ID, "data": data}]))
}

/// `POST /demo/callbacks`: the app's callback receiver (`callbacks.url`). Checks the signature
/// over the raw body as a receiver should, keeps what arrived for the page, and answers `200`
/// (or a `400` problem for a bad signature, which the gateway retries).
async fn receive_callback(
    req: HttpRequest,
    body: web::Bytes,
    demo: web::Data<DemoState>,
) -> Result<HttpResponse, ApiError> {
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let checked = verify_signature(
        demo.callback_secret.expose_secret().as_bytes(),
        signature,
        &body,
        SIGNATURE_TOLERANCE_SECS,
        now_secs(),
    );
    let answer = if checked.is_ok() { 200 } else { 400 };
    remember(
        &demo.received,
        json!({
            "received_at": now_rfc3339(time::Duration::ZERO),
            "signature": signature,
            "verified": checked.is_ok(),
            "error": checked.as_ref().err().map(ToString::to_string),
            "answer": answer,
            "body": serde_json::from_slice::<Value>(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
        }),
    );
    match checked {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({"received": true}))),
        Err(e) => Err(ApiError::BadRequest(format!("{SIGNATURE_HEADER}: {e}"))),
    }
}

/// `GET /demo/callbacks`: what the demo receiver got, newest first.
async fn received_callbacks(demo: web::Data<DemoState>) -> HttpResponse {
    let mut received = snapshot(&demo.received);
    received.reverse();
    HttpResponse::Ok().json(json!({"header": SIGNATURE_HEADER, "received": received}))
}

/// `GET /demo/step-up`: the app's backend asks the gateway with the demo service API key
/// (kept server-side) and relays the call and its answer to the page.
async fn step_up(demo: web::Data<DemoState>) -> HttpResponse {
    let path = format!("/v1/users/{DEMO_USER}/step-up?max_age_secs={DEMO_MAX_AGE_SECS}");
    let sent = demo
        .http
        .get(format!("{}{path}", demo.loopback))
        .header(API_KEY_HEADER, demo.service_key.expose_secret())
        .send()
        .await;
    let (status, body) = match sent {
        Ok(res) => {
            let status = res.status().as_u16();
            (
                Some(status),
                res.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
        Err(_) => (None, Value::Null),
    };
    HttpResponse::Ok().json(json!({"method": "GET", "path": path, "status": status, "body": body}))
}

/// The address the loop's own calls go to: the listener's, loopback when it listens on all
/// addresses.
fn loopback_base(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// The demo's settings and route state for a listener at `addr`: memory store, random keys
/// and secrets, the webhook receiver (random path secret, loopback sources only), callbacks to
/// the demo receiver, a random service API key, and the ARGOS API at the stand-in. Every URL
/// the gateway calls is on the listener's own (loopback) address.
///
/// Errors: [`ConfigError`] if the built-in configuration does not load.
pub fn prepare(addr: SocketAddr) -> Result<(Settings, DemoState), ConfigError> {
    let base = format!("http://{addr}");
    let loopback = loopback_base(addr);
    let api_key = SecretString::from(random_hex(32));
    let hs_secret = SecretString::from(random_hex(32));
    let webhook_secret = SecretString::from(random_hex(24));
    let callback_secret = SecretString::from(random_hex(32));
    let service_key = SecretString::from(random_hex(32));
    let mut settings = Settings::load_from(None, std::iter::empty())?;
    settings.server.bind = addr;
    settings.server.public_base_url = parse_url(&base)?;
    settings.store.backend = StoreBackend::Memory;
    settings.server.metrics_bind = String::new();
    // Generous limits: one person presses the button many times.
    settings.limits.mint_per_user.limit = 100;
    settings.argos.form_url = parse_url(&format!("{base}/demo/form"))?;
    settings.argos.project_id = Some(DEMO_PROJECT_ID.into());
    settings.argos.api_key = Some(api_key.clone());
    settings.argos.api_base_url = parse_url(&format!("{loopback}/demo/argos"))?;
    settings.auth.algorithms = vec![jsonwebtoken::Algorithm::HS256];
    settings.auth.hs256_secret = Some(hs_secret.clone());
    settings.auth.issuer = Some(DEMO_ISSUER.into());
    settings.auth.audience = Some(DEMO_ISSUER.into());
    settings
        .auth
        .cf_claims
        .insert("authCf1".into(), "email".into());
    // The results loop, on loopback only.
    settings.webhooks.path_secret = Some(webhook_secret.clone());
    let mut allowed = Vec::new();
    for net in ["127.0.0.0/8", "::1/128"] {
        allowed.push(
            net.parse::<ipnet::IpNet>()
                .map_err(|e| ConfigError::new("webhooks.allowed_ips", e.to_string()))?,
        );
    }
    if !addr.ip().is_loopback() && !addr.ip().is_unspecified() {
        // Bound to one outside address: the loop's calls come from it.
        allowed.push(addr.ip().into());
    }
    settings.webhooks.allowed_ips = allowed;
    settings.callbacks.url = Some(format!("{loopback}/demo/callbacks"));
    settings.callbacks.secret = Some(callback_secret.clone());
    settings.callbacks.timeout_ms = 2_000;
    settings.auth.service.api_key_sha256 = vec![sha256_hex(service_key.expose_secret())];
    // Results show up within a second.
    settings.verify.poll_interval_ms = 250;
    // Step-up assertions, signed with a random Ed25519 key (a temporary file, read at start-up
    // and removed by `run` once the gateway is built).
    settings.assertions.signing_key_file = demo_signing_key_file()?;
    settings.assertions.audience = DEMO_ASSERTION_AUDIENCE.into();

    let cipher = QueryCipher::new(settings.argos.encryption, &api_key)
        .map_err(|e| ConfigError::new("argos.api_key", e.to_string()))?;
    let jwt = demo_jwt(&hs_secret, DEMO_USER)
        .map_err(|e| ConfigError::new("auth.hs256_secret", e.to_string()))?;
    let http = crate::outbound::Outbound::default()
        .builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ConfigError::new("(demo)", e.to_string()))?;
    let demo = DemoState {
        cipher,
        format: settings.argos.plaintext,
        jwt,
        loopback,
        addon_key: api_key,
        webhook_secret,
        callback_secret,
        service_key,
        http,
        faceauths: Mutex::new(VecDeque::new()),
        received: Mutex::new(VecDeque::new()),
    };
    Ok((settings, demo))
}

/// The demo's routes and state, plugged into the gateway's public server.
pub fn extension(demo: DemoState) -> Extension {
    let demo = web::Data::new(demo);
    Arc::new(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(demo.clone());
        configure(cfg);
    })
}

/// Runs the demo on `bind` (falling back to a free port if it is taken) until stopped.
///
/// Prints the address, a ready-to-run curl command with a valid demo JWT, and the `/demo` URL.
/// Errors: [`StartupError`] if nothing can be bound or the built-in config is invalid.
pub async fn run(bind: SocketAddr) -> Result<(), StartupError> {
    let listener = match TcpListener::bind(bind) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{bind} is not free ({e}); using a free port instead");
            TcpListener::bind(SocketAddr::new(bind.ip(), 0))?
        }
    };
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let (settings, demo) = prepare(addr)?;
    println!("faceauth-gateway demo listening on {base}");
    println!(
        "  store: memory   encryption: {}   plaintext: {}   expiry: {}",
        settings.argos.encryption,
        settings.argos.plaintext,
        settings.links.expiry.as_str()
    );
    println!(
        "  results loop: stand-in ARGOS API at {}, webhooks to the gateway's receiver \
(random path secret), callbacks to {}",
        settings.argos.api_base_url,
        settings.callbacks.url.as_deref().unwrap_or_default()
    );
    println!();
    println!("Open the demo page:   {base}/demo");
    println!();
    println!("Or mint a link with curl (demo JWT for {DEMO_USER}, valid 24 h):");
    println!(
        "  curl -i -X POST {base}/v1/links -H 'Authorization: Bearer {}'",
        demo.jwt.expose_secret()
    );
    println!();
    println!("Stop with Ctrl-C.");
    let key_file = settings.assertions.signing_key_file.clone();
    let app = Application::build_with_listener(settings, listener, Some(extension(demo))).await;
    // The key is in memory now; the file is not needed any more.
    let _ = std::fs::remove_file(&key_file);
    app?.run_until_stopped().await?;
    Ok(())
}

/// `aud` of the demo's step-up assertions.
const DEMO_ASSERTION_AUDIENCE: &str = "faceauth-demo-app";

/// Writes a random Ed25519 PKCS#8 key (PEM, mode 0600) to a new file in the temporary
/// directory and returns its path. Errors name `assertions.signing_key_file`.
fn demo_signing_key_file() -> Result<String, ConfigError> {
    let fail = |e: String| ConfigError::new("assertions.signing_key_file", e);
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .map_err(|_| fail("cannot generate a demo key".into()))?;
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
    let path = std::env::temp_dir().join(format!(
        "faceauth-demo-assertions-{}.pem",
        uuid::Uuid::new_v4().simple()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(|e| fail(e.to_string()))?;
    std::io::Write::write_all(&mut file, pem.as_bytes()).map_err(|e| fail(e.to_string()))?;
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| fail("temporary directory path is not UTF-8".into()))
}

fn parse_url(s: &str) -> Result<url::Url, ConfigError> {
    url::Url::parse(s).map_err(|e| ConfigError::new("server.public_base_url", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::startup::{Components, StoreHandle};

    #[test]
    fn parses_query_plaintext() {
        assert_eq!(
            parse_plaintext("sid=a%20b&token=t", PlaintextFormat::Query),
            vec![("sid".into(), "a b".into()), ("token".into(), "t".into())]
        );
    }

    fn loopback_host(url: &url::Url) -> bool {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            _ => false,
        }
    }

    /// Demo mode needs nothing outside: every URL the gateway (or the demo) calls is loopback,
    /// and the loop is on: receiver, callbacks, service credentials.
    #[tokio::test]
    async fn demo_mode_calls_only_loopback() {
        for bind in ["127.0.0.1:8080", "0.0.0.0:8080", "[::1]:8080"] {
            let (s, demo) = prepare(bind.parse().unwrap()).unwrap();
            s.validate().unwrap();
            let callbacks = url::Url::parse(s.callbacks.url.as_deref().unwrap()).unwrap();
            let loopback = url::Url::parse(&demo.loopback).unwrap();
            for url in [&s.argos.api_base_url, &callbacks, &loopback] {
                assert!(loopback_host(url), "{bind}: {url}");
            }
            if bind != "0.0.0.0:8080" {
                assert!(loopback_host(&s.server.public_base_url), "{bind}");
                assert!(loopback_host(&s.argos.form_url), "{bind}");
            }
            assert!(s.auth.jwks_url.is_none() && s.auth.service.jwks_url.is_none());
            assert!(!s.auth.discovery);
            assert!(!s.outbound.use_env_proxy);
            assert!(s
                .outbound
                .proxy
                .as_ref()
                .is_none_or(|p| p.expose_secret().is_empty()));
            assert!(s.server.metrics_bind.is_empty());
            assert!(matches!(s.store.backend, StoreBackend::Memory));
            assert!(!s.sid.sources.contains(&crate::config::SidSource::Argos));
            assert!(!s.webhooks.allowed_ips.is_empty());
            assert!(s
                .webhooks
                .allowed_ips
                .iter()
                .all(|n| n.addr().is_loopback()));
            let c = Components::with_store(&s, StoreHandle::memory()).unwrap();
            assert!(c.callbacks.is_some() && c.services.is_some());
            assert!(!c.webhooks.keys().path_secrets.is_empty());
        }
    }
}
