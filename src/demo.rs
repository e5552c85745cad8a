//! `faceauth-gateway demo`: the whole flow with no outside setup.
//!
//! In-memory store, a random Add-on API key and HS256 secret made at start, a stand-in FaceAuth
//! form at `/demo/form` (decrypts `encrypted` with the demo key and shows what it received) and
//! a page at `/demo` with a "Verify with FaceAuth" button. The `/demo*` routes exist only here.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use jsonwebtoken::{EncodingKey, Header};
use percent_encoding::percent_decode_str;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use crate::argos::crypto::QueryCipher;
use crate::argos::url::PlaintextFormat;
use crate::config::{Settings, StoreBackend};
use crate::http::html::{escape, page};
use crate::startup::{Application, StartupError};

/// Issuer and audience of demo tokens.
pub const DEMO_ISSUER: &str = "faceauth-gateway-demo";
/// FaceAuth project id used in demo mode.
pub const DEMO_PROJECT_ID: &str = "demo-project";

/// State of the demo routes.
pub struct DemoState {
    cipher: QueryCipher,
    format: PlaintextFormat,
    jwt: SecretString,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
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
        "argos_sid": "demo-submission-0001",
        "email": "demo.user@example.test",
    });
    jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .map(SecretString::from)
}

/// Registers `/demo` and `/demo/form`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/demo", web::get().to(demo_page))
        .route("/demo/form", web::get().to(demo_form));
}

async fn demo_page(demo: web::Data<DemoState>) -> HttpResponse {
    let body = format!(
        r#"<p>This page plays the app: it holds a demo JWT for <code>demo-user</code> and asks the
gateway for a single-use FaceAuth link, then follows it. The stand-in FaceAuth form shows what
it decrypted. Press the back button and open the same link again to see it refused.</p>
<p><button id="go" type="button">Verify with FaceAuth</button></p>
<p id="status" role="status"></p>
<script>
const token = "{jwt}";
const status = document.getElementById("status");
const auth = {{Authorization: "Bearer " + token}};
// The SPA pattern: mint with fetch, navigate to the link, and after coming back poll the
// link's status (GET /v1/links/{{id}}).
async function poll(id) {{
  const res = await fetch("/v1/links/" + id, {{headers: auth}});
  if (!res.ok) return;
  const link = await res.json();
  status.textContent = "Last link " + id.slice(0, 8) + "…: " + link.state +
    (link.result ? " (FaceAuth " + link.result + ")" : "");
}}
const last = sessionStorage.getItem("faceauth-demo-link");
if (last) {{
  poll(last);
  setInterval(() => poll(last), 2000);
}}
document.getElementById("go").addEventListener("click", async () => {{
  status.textContent = "Requesting a link…";
  const res = await fetch("/v1/links", {{method: "POST", headers: auth}});
  const body = await res.json();
  if (!res.ok) {{ status.textContent = body.detail; return; }}
  sessionStorage.setItem("faceauth-demo-link", body.id);
  status.textContent = "Opening " + body.url;
  window.location.assign(body.url);
}});
</script>"#,
        jwt = demo.jwt.expose_secret()
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
    let decrypted = query
        .get("encrypted")
        .ok_or("no `encrypted` parameter")
        .and_then(|e| {
            demo.cipher
                .decrypt(e)
                .map_err(|_| "`encrypted` does not decrypt")
        })
        .and_then(|b| String::from_utf8(b).map_err(|_| "plaintext is not UTF-8"));
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
the ID Check submission <code>sid</code>.</p>",
                pid = escape(pid),
                mode = demo.cipher.mode(),
                format = demo.format,
            )
        }
        Err(why) => format!("<p>Could not read the request: {}.</p>", escape(why)),
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(page("Stand-in FaceAuth form", &html))
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

    let api_key = SecretString::from(random_hex(32));
    let hs_secret = SecretString::from(random_hex(32));
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
    settings.auth.algorithms = vec![jsonwebtoken::Algorithm::HS256];
    settings.auth.hs256_secret = Some(hs_secret.clone());
    settings.auth.issuer = Some(DEMO_ISSUER.into());
    settings.auth.audience = Some(DEMO_ISSUER.into());
    settings
        .auth
        .cf_claims
        .insert("authCf1".into(), "email".into());

    let cipher = QueryCipher::new(settings.argos.encryption, &api_key)
        .map_err(|e| crate::config::ConfigError::new("argos.api_key", e.to_string()))?;
    let jwt = demo_jwt(&hs_secret, "demo-user")
        .map_err(|e| crate::config::ConfigError::new("auth.hs256_secret", e.to_string()))?;
    println!("faceauth-gateway demo listening on {base}");
    println!(
        "  store: memory   encryption: {}   plaintext: {}   expiry: {}",
        settings.argos.encryption,
        settings.argos.plaintext,
        settings.links.expiry.as_str()
    );
    println!();
    println!("Open the demo page:   {base}/demo");
    println!();
    println!("Or mint a link with curl (demo JWT for demo-user, valid 24 h):");
    println!(
        "  curl -i -X POST {base}/v1/links -H 'Authorization: Bearer {}'",
        jwt.expose_secret()
    );
    println!();
    println!("Stop with Ctrl-C.");
    let demo = DemoState {
        cipher,
        format: settings.argos.plaintext,
        jwt,
    };
    let app = Application::build_with_listener(settings, listener, Some(demo)).await?;
    app.run_until_stopped().await?;
    Ok(())
}

fn parse_url(s: &str) -> Result<url::Url, crate::config::ConfigError> {
    url::Url::parse(s)
        .map_err(|e| crate::config::ConfigError::new("server.public_base_url", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_query_plaintext() {
        assert_eq!(
            parse_plaintext("sid=a%20b&token=t", PlaintextFormat::Query),
            vec![("sid".into(), "a b".into()), ("token".into(), "t".into())]
        );
    }
}
