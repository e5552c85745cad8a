//! Independent oracles: OpenSSL decrypts the FaceAuth URL, reference libraries verify signed
//! callbacks, a fake ARGOS and callback receiver stand in for the real ones.

use super::{spawn_app_with, TestApp, PROJECT_ID, SERVICE_AUDIENCE};
use faceauth_gateway::Settings;
use openssl::symm::{decrypt, decrypt_aead, Cipher};
use percent_encoding::percent_decode_str;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

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

// ---- A fake ARGOS and callback receiver (wiremock) ----

/// The webhook path secret of a gateway spawned with [`argos_env_with`].
pub const PATH_SECRET: &str = "wh_0123456789abcdefghijklmnopqrstuvwxyz";
/// The callback signing secret of a gateway spawned with [`argos_env_with`].
pub const CALLBACK_SECRET: &str = "cb-secret-0123456789-0123456789-0123456789";
/// The static service API key (`x-api-key`) of a gateway spawned with [`argos_env_with`]; the
/// gateway stores only its SHA-256.
pub const SERVICE_KEY: &str = "static-service-key";

/// A gateway wired to a fake ARGOS and to a callback receiver.
pub struct ArgosEnv {
    pub app: TestApp,
    pub argos: MockServer,
    pub receiver: MockServer,
}

/// A fake ARGOS (nothing mounted yet) and a callback receiver that answers `200` to
/// `POST /hook`.
pub async fn argos_servers() -> (MockServer, MockServer) {
    let argos = MockServer::start().await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    (argos, receiver)
}

/// Points `s` at `argos` (no retries) with results on: webhooks under [`PATH_SECRET`] from
/// 127.0.0.1, pull-verification every 100 ms, callbacks to `receiver`'s `/hook` signed with
/// [`CALLBACK_SECRET`], service credentials for [`SERVICE_AUDIENCE`] and [`SERVICE_KEY`].
pub fn use_fake_argos(s: &mut Settings, argos: &MockServer, receiver: &MockServer) {
    s.argos.api_base_url = argos.uri().parse().unwrap();
    s.argos.api_retries = 0;
    s.webhooks.path_secret = Some(SecretString::from(PATH_SECRET));
    s.webhooks.allowed_ips = vec!["127.0.0.1/32".parse().unwrap()];
    s.verify.poll_interval_ms = 100;
    s.callbacks.url = Some(format!("{}/hook", receiver.uri()));
    s.callbacks.secret = Some(SecretString::from(CALLBACK_SECRET));
    s.auth.service.audience = SERVICE_AUDIENCE.into();
    s.auth.service.api_key_sha256 = vec![hex::encode(openssl::sha::sha256(SERVICE_KEY.as_bytes()))];
}

/// A gateway on [`use_fake_argos`] settings, then `tweak`.
pub async fn argos_env_with(tweak: impl FnOnce(&mut Settings)) -> ArgosEnv {
    let (argos, receiver) = argos_servers().await;
    let app = spawn_app_with(|s| {
        use_fake_argos(s, &argos, &receiver);
        tweak(s);
    })
    .await;
    ArgosEnv {
        app,
        argos,
        receiver,
    }
}

pub async fn argos_env() -> ArgosEnv {
    argos_env_with(|_| {}).await
}

/// ARGOS answers `GET /v3/faceauth?authId=<auth_id>` (the newer wrapped shape) with one record:
/// `status`, `create_time` (RFC 3339, e.g. [`super::rfc3339_ago`]) and submission `sid`.
pub async fn argos_says(
    argos: &MockServer,
    auth_id: &str,
    status: &str,
    sid: &str,
    create_time: &str,
) {
    Mock::given(method("GET"))
        .and(path("/v3/faceauth"))
        .and(query_param("authId", auth_id))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
            "faceAuth_projectId": PROJECT_ID,
            "data": [{
                "auth_id": auth_id, "auth_status": status, "create_time": create_time,
                "submit_type": "form", "kyc_submission_id": sid, "policy": {}, "delete_check": false
            }]
        }])))
        .mount(argos)
        .await;
}

/// An ARGOS `faceAuth` webhook (approved, every field of the documented shape) for `auth_id`
/// on the link `token`.
pub fn webhook_body(auth_id: &str, token: &str) -> Vec<u8> {
    format!(
        r#"{{"webhook_trigger":"faceAuth","data":{{"Submission_id":"x","Auth_Status":"approved","Create_Time":"2026-11-29T00:00:00Z","Auth_User_id":"u","Token_id":"{token}","reference":{{"userid":"u"}},"Authentication_id":"{auth_id}"}}}}"#
    )
    .into_bytes()
}
