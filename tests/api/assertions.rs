//! Issue 17: signed step-up assertions, checked by an independent JWT implementation. Python's
//! PyJWT (with `cryptography`) fetches the gateway's `GET /.well-known/jwks.json` through
//! `PyJWKClient` and verifies signature, `iss`, `aud`, `exp` and `sub`; the claims it returns
//! are then compared with ARGOS's record. Runs the PyJWT part when `python3 -c "import jwt,
//! cryptography"` works; `.ci/run` installs PyJWT and sets `FACEAUTH_E2E_REQUIRED=1`, which
//! turns a missing verifier into a failure. A second one, Node's `jose`, runs the guide's Node
//! function (`tests/node/verify.mjs`, installed with `npm ci --prefix tests/node`, likewise
//! required under `FACEAUTH_E2E_REQUIRED`). The guide's Rust function (`jsonwebtoken`) runs too.
//! The rest (JWKS, thumbprints, claims decoded by hand, rejected and expired results) always
//! runs.

use crate::helpers::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use faceauth_gateway::Settings;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use wiremock::MockServer;

const AUDIENCE_APP: &str = "https://app.example.test/api";
const ISS: &str = "https://gw.test/base";
const ACR: &str = "urn:example:acr:face-step-up";

/// A key pair in PEM files: the PKCS#8 private key and its SubjectPublicKeyInfo.
struct KeyFiles {
    private: PathBuf,
    public: PathBuf,
    /// The RFC 7638 thumbprint, computed here with OpenSSL and SHA-256 (not the gateway's code).
    kid: String,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn key_files(kind: &str) -> KeyFiles {
    use openssl::pkey::PKey;
    let (pkey, canonical) = match kind {
        "ed25519" => {
            let pkey = PKey::generate_ed25519().unwrap();
            let x = b64(&pkey.raw_public_key().unwrap());
            (
                pkey,
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
            )
        }
        "p256" => {
            use openssl::ec::{EcGroup, EcKey};
            let group = EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
            let ec = EcKey::generate(&group).unwrap();
            let mut ctx = openssl::bn::BigNumContext::new().unwrap();
            let mut x = openssl::bn::BigNum::new().unwrap();
            let mut y = openssl::bn::BigNum::new().unwrap();
            ec.public_key()
                .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
                .unwrap();
            let canonical = format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64(&x.to_vec_padded(32).unwrap()),
                b64(&y.to_vec_padded(32).unwrap())
            );
            (PKey::from_ec_key(ec).unwrap(), canonical)
        }
        other => panic!("no key kind {other}"),
    };
    let dir = std::env::temp_dir().join(format!("fag-keys-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let private = dir.join("signing.pem");
    let public = dir.join("public.pem");
    std::fs::write(&private, pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::write(&public, pkey.public_key_to_pem().unwrap()).unwrap();
    KeyFiles {
        private,
        public,
        kid: b64(&openssl::sha::sha256(canonical.as_bytes())),
    }
}

fn path_str(p: &std::path::Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Gateway settings against a fake ARGOS and a callback receiver, signing with `key`.
fn settings_with(argos: &MockServer, receiver: &MockServer, key: &KeyFiles) -> Settings {
    let mut s = test_settings();
    use_fake_argos(&mut s, argos, receiver);
    s.assertions.signing_key_file = path_str(&key.private);
    s.assertions.audience = AUDIENCE_APP.into();
    s.assertions.acr = ACR.into();
    s
}

/// ARGOS's `create_time` `ago_secs` seconds ago, in whole seconds: (RFC 3339, Unix seconds).
fn argos_time(ago_secs: i64) -> (String, i64) {
    let t = now_secs() - ago_secs;
    let text = time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    (text, t)
}

async fn webhook(app: &TestApp, auth_id: &str, token: &str) {
    let r = app.post_webhook(webhook_body(auth_id, token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn link_status(app: &TestApp, jwt: &str, id: &str) -> Value {
    let r = app.link_status(jwt, id).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn step_up(app: &TestApp, user: &str, max_age: u64) -> Value {
    let r = app
        .send(
            app.get(&format!("/v1/users/{user}/step-up?max_age_secs={max_age}"))
                .header("x-api-key", SERVICE_KEY),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// A user's link, opened, judged by ARGOS as `status` at `at`; waits for the verdict.
async fn faceauth(
    app: &TestApp,
    argos: &MockServer,
    user: &str,
    auth_id: &str,
    status: &str,
    at: &str,
) -> String {
    let jwt = user_jwt(user);
    let id = app.mint_id(&jwt).await;
    assert_eq!(app.open(&id).await.status, 302);
    argos_says(argos, auth_id, status, &format!("sid-of-{user}"), at).await;
    webhook(app, auth_id, &id).await;
    eventually("the result is verified", || async {
        !link_status(app, &jwt, &id).await["result"].is_null()
    })
    .await;
    id
}

/// The callback event the receiver got for `link_id`.
async fn callback_for(receiver: &MockServer, link_id: &str) -> Value {
    let find = || async {
        receiver
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .find(|e| e["link_id"] == link_id)
    };
    eventually("the callback arrives", || async { find().await.is_some() }).await;
    find().await.unwrap()
}

/// The JWT's header and payload, decoded by hand (no signature check).
fn decode_parts(jwt: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    let part = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (part(parts[0]), part(parts[1]))
}

/// The JWKS, read without the suite's `no-store` check: this answer is meant to be cached.
async fn fetch_jwks(app: &TestApp) -> (Option<String>, Value) {
    let r = app.get("/.well-known/jwks.json").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cc = r
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string());
    (cc, r.json().await.unwrap())
}

// ---- The independent verifier: PyJWT ----

const VERIFIER: &str = r#"
import json, sys
import jwt
req = json.load(sys.stdin)
client = jwt.PyJWKClient(req["jwks_url"])
out = []
for case in req["cases"]:
    try:
        key = client.get_signing_key_from_jwt(case["token"])
        claims = jwt.decode(
            case["token"], key.key, algorithms=["EdDSA", "ES256"],
            audience=req["audience"], issuer=req["issuer"],
            options={"require": ["exp", "iat", "iss", "aud", "sub", "auth_time", "jti"]},
        )
        if claims["sub"] != case["sub"]:
            raise jwt.InvalidTokenError("sub is not the user this session is for")
        out.append({"ok": True, "claims": claims, "header": jwt.get_unverified_header(case["token"])})
    except Exception as e:
        out.append({"ok": False, "error": type(e).__name__ + ": " + str(e)})
print(json.dumps(out))
"#;

/// Whether PyJWT (with `cryptography`) can run; a missing one fails under
/// `FACEAUTH_E2E_REQUIRED`.
fn pyjwt_available() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("FACEAUTH_E2E_REQUIRED").is_err(),
            "PyJWT is not installed, and FACEAUTH_E2E_REQUIRED is set"
        );
        eprintln!("skipped the PyJWT checks: pip install 'pyjwt[crypto]'");
    }
    ok
}

/// Verifies `(token, expected sub)` pairs with PyJWT against `app`'s JWKS; one result each:
/// `Ok(claims and header)` or `Err(reason)`.
async fn pyjwt_verify(
    app: &TestApp,
    cases: &[(&str, &str)],
) -> Vec<Result<(Value, Value), String>> {
    let request = json!({
        "jwks_url": app.url("/.well-known/jwks.json"),
        "issuer": ISS,
        "audience": AUDIENCE_APP,
        "cases": cases.iter().map(|(t, s)| json!({"token": t, "sub": s})).collect::<Vec<_>>(),
    });
    let mut verifier = std::process::Command::new("python3");
    verifier.args(["-c", VERIFIER]);
    run_verifier(verifier, request, "the verifier")
        .await
        .into_iter()
        .map(|r| r.map(|r| (r["claims"].clone(), r["header"].clone())))
        .collect()
}

/// Runs a verifier process with `request` (JSON) on its stdin, asserting that it exits 0 (the
/// failure names it `who`); its stdout is one `{"ok": …}` object a case: `Ok(object)` or
/// `Err(its "error")`.
async fn run_verifier(
    mut command: std::process::Command,
    request: Value,
    who: &'static str,
) -> Vec<Result<Value, String>> {
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{who} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .into_iter()
        .map(|r| {
            if r["ok"] == true {
                Ok(r)
            } else {
                Err(r["error"].as_str().unwrap().to_string())
            }
        })
        .collect()
}

// ---- A second independent verifier: Node's jose, running the guide's function ----

fn node_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

/// Whether `node` and `tests/node/node_modules/jose` (`npm ci --prefix tests/node`) are there;
/// missing ones fail under `FACEAUTH_E2E_REQUIRED`.
fn jose_available() -> bool {
    let ok = node_dir().join("node_modules/jose/package.json").is_file()
        && std::process::Command::new("node")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("FACEAUTH_E2E_REQUIRED").is_err(),
            "node or jose is not installed (npm ci --prefix tests/node), and FACEAUTH_E2E_REQUIRED is set"
        );
        eprintln!("skipped the jose checks: npm ci --prefix tests/node");
    }
    ok
}

/// Verifies `(token, expected sub)` pairs with the guide's jose function against `app`'s JWKS.
async fn jose_verify(app: &TestApp, cases: &[(&str, &str)]) -> Vec<Result<Value, String>> {
    let request = json!({
        "jwks_url": app.url("/.well-known/jwks.json"),
        "issuer": ISS,
        "audience": AUDIENCE_APP,
        "acr": ACR,
        "cases": cases.iter().map(|(t, s)| json!({"token": t, "sub": s})).collect::<Vec<_>>(),
    });
    let mut verifier = std::process::Command::new("node");
    verifier.arg(node_dir().join("verify.mjs"));
    run_verifier(verifier, request, "the jose verifier")
        .await
        .into_iter()
        .map(|r| r.map(|r| r["claims"].clone()))
        .collect()
}

fn tamper_payload(jwt: &str, change: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    change(&mut payload);
    format!(
        "{}.{}.{}",
        parts[0],
        b64(payload.to_string().as_bytes()),
        parts[2]
    )
}

// ---- The guide's Rust verifier (docs/step-up-assertions.md), with this suite's values ----

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct StepUp {
    sub: String,
    auth_time: i64,
    acr: String,
    amr: Vec<String>,
    jti: String,
    link_id: String,
    reference: Option<String>,
}

fn verify_step_up(
    token: &str,
    jwks: &jsonwebtoken::jwk::JwkSet,
    user: &str,
    max_age: i64,
    now: i64,
) -> Option<StepUp> {
    use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
    let header = decode_header(token).ok()?;
    if header.typ.as_deref() != Some("faceauth-step-up+jwt") {
        return None;
    }
    if !matches!(header.alg, Algorithm::EdDSA | Algorithm::ES256) {
        return None;
    }
    let jwk = jwks.find(header.kid.as_deref()?)?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[ISS]);
    validation.set_audience(&[AUDIENCE_APP]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    let claims = decode::<StepUp>(token, &DecodingKey::from_jwk(jwk).ok()?, &validation)
        .ok()?
        .claims;
    let fresh = (0..=max_age).contains(&(now - claims.auth_time));
    let face = claims.amr.iter().any(|m| m == "face");
    (claims.sub == user && fresh && face && claims.acr == ACR).then_some(claims)
}

async fn rust_jwks(app: &TestApp) -> jsonwebtoken::jwk::JwkSet {
    serde_json::from_value(fetch_jwks(app).await.1).unwrap()
}

#[tokio::test]
async fn approved_results_yield_assertions_an_independent_verifier_accepts() {
    let key = key_files("ed25519");
    let (argos, receiver) = argos_servers().await;
    let app = spawn_settings(settings_with(&argos, &receiver, &key)).await;

    // The JWKS: the one key, its kid the RFC 7638 thumbprint, cacheable.
    let (cache, set) = fetch_jwks(&app).await;
    assert_eq!(cache.as_deref(), Some("public, max-age=300"));
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], key.kid.as_str());
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert_eq!(keys[0]["alg"], "EdDSA");
    assert_eq!(keys[0]["use"], "sig");
    assert!(keys[0].get("d").is_none(), "no private part");
    let head = app
        .client
        .head(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["cache-control"], "public, max-age=300");

    // Amelie: a service-minted link with a reference; approved by ARGOS 30 s ago.
    let r = app
        .send(
            app.client
                .put(app.url("/v1/users/amelie/submission"))
                .header("x-api-key", SERVICE_KEY)
                .json(&json!({"sid": "sid-of-amelie"})),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = app
        .send(
            app.post("/v1/users/amelie/links")
                .header("x-api-key", SERVICE_KEY)
                .json(&json!({"reference": "order-42", "confirm_step": false})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(app.open(&id).await.status, 302);
    let (at, auth_time) = argos_time(30);
    argos_says(&argos, "auth-amelie", "approved", "sid-of-amelie", &at).await;
    webhook(&app, "auth-amelie", &id).await;
    let amelie = user_jwt("amelie");
    eventually("approved", || async {
        link_status(&app, &amelie, &id).await["result"] == "approved"
    })
    .await;

    // Delivered three ways.
    let from_status = link_status(&app, &amelie, &id).await["assertion"]
        .as_str()
        .expect("the owner's link status carries the assertion")
        .to_string();
    let su = step_up(&app, "amelie", 300).await;
    assert_eq!(su["verified"], true);
    let from_step_up = su["assertion"].as_str().unwrap().to_string();
    let event = callback_for(&receiver, &id).await;
    assert_eq!(event["result"], "approved");
    let from_callback = event["assertion"].as_str().unwrap().to_string();
    // A service reading the link's status gets none (it has the step-up route).
    let r = app
        .send(
            app.get(&format!("/v1/links/{id}"))
                .header("x-api-key", SERVICE_KEY),
        )
        .await;
    assert!(r.json().get("assertion").is_none());
    // Not old enough for max_age: no assertion either.
    let su = step_up(&app, "amelie", 1).await;
    assert_eq!(su["verified"], false);
    assert!(su.get("assertion").is_none());

    // Bob: a second user with his own approved FaceAuth.
    let (bob_at, _) = argos_time(10);
    faceauth(&app, &argos, "bob", "auth-bob", "approved", &bob_at).await;
    let bobs = step_up(&app, "bob", 300).await["assertion"]
        .as_str()
        .unwrap()
        .to_string();

    // Counted by route, nothing else in the labels.
    let metrics = app.metrics().await;
    for via in ["link_status", "step_up", "callback"] {
        assert!(
            metrics.contains(&format!(
                "faceauth_assertions_issued_total{{via=\"{via}\"}}"
            )),
            "{via}"
        );
    }
    assert!(!metrics.contains(&from_status) && !metrics.contains(&key.kid));

    // The claims, decoded by hand (the signature is PyJWT's part below).
    let mut jtis = std::collections::HashSet::new();
    for jwt in [&from_status, &from_step_up, &from_callback] {
        let (header, claims) = decode_parts(jwt);
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], key.kid.as_str());
        assert_eq!(header["typ"], "faceauth-step-up+jwt");
        assert_eq!(claims["iss"], ISS);
        assert_eq!(claims["sub"], "amelie");
        assert_eq!(claims["aud"], AUDIENCE_APP);
        assert_eq!(claims["acr"], ACR);
        assert_eq!(claims["amr"], json!(["face"]));
        assert_eq!(
            claims["auth_time"], auth_time,
            "ARGOS's time of the FaceAuth"
        );
        assert_eq!(claims["exp"], auth_time + 300);
        assert!(claims["iat"].as_i64().unwrap() >= auth_time);
        assert!(claims["iat"].as_i64().unwrap() <= now_secs() + 1);
        assert_eq!(claims["link_id"], id.as_str());
        assert_eq!(claims["auth_id"], "auth-amelie");
        assert_eq!(claims["reference"], "order-42");
        assert!(
            jtis.insert(claims["jti"].as_str().unwrap().to_string()),
            "jti is unique"
        );
        let text = claims.to_string();
        assert!(claims.get("sid").is_none() && !text.contains("sid-of-amelie"));
        assert!(!text.contains(&app.api_key) && !text.contains(CALLBACK_SECRET));
    }

    // The guide's Rust check accepts it, and refuses another user's and an aged one.
    let set = rust_jwks(&app).await;
    let ok = verify_step_up(&from_status, &set, "amelie", 300, now_secs()).unwrap();
    assert_eq!(
        (ok.link_id.as_str(), ok.reference.as_deref()),
        (id.as_str(), Some("order-42"))
    );
    assert!(verify_step_up(&bobs, &set, "amelie", 300, now_secs()).is_none());
    assert!(verify_step_up(&from_status, &set, "amelie", 10, now_secs()).is_none());
    let forged = tamper_payload(&from_status, |c| c["auth_time"] = json!(now_secs()));
    assert!(verify_step_up(&forged, &set, "amelie", 300, now_secs()).is_none());

    let forged_sub = tamper_payload(&from_status, |c| c["sub"] = "bob".into());
    if jose_available() {
        let results = jose_verify(
            &app,
            &[
                (&from_status, "amelie"),
                (&from_callback, "amelie"),
                (&bobs, "amelie"),
                (&forged_sub, "bob"),
            ],
        )
        .await;
        let claims = results[0].as_ref().unwrap();
        assert_eq!(claims["auth_time"], auth_time);
        assert_eq!(claims["amr"], json!(["face"]));
        assert!(results[1].is_ok(), "{:?}", results[1]);
        let other = results[2].as_ref().unwrap_err();
        assert!(other.contains("sub"), "{other}");
        let forged = results[3].as_ref().unwrap_err();
        assert!(forged.contains("SIGNATURE"), "{forged}");
    }

    if !pyjwt_available() {
        return;
    }
    let longer = tamper_payload(&from_status, |c| c["exp"] = json!(auth_time + 86_400));
    // One signature byte changed (the first character: all six of its bits count).
    let (signed, signature) = from_status.rsplit_once('.').unwrap();
    let first = if signature.starts_with('A') { "B" } else { "A" };
    let bad_sig = format!("{signed}.{first}{}", &signature[1..]);
    let results = pyjwt_verify(
        &app,
        &[
            (&from_status, "amelie"),
            (&from_step_up, "amelie"),
            (&from_callback, "amelie"),
            (&bobs, "bob"),
            (&bobs, "amelie"),
            (&forged_sub, "bob"),
            (&longer, "amelie"),
            (&bad_sig, "amelie"),
        ],
    )
    .await;
    for (i, r) in results.iter().take(4).enumerate() {
        let (claims, header) = r.as_ref().unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(header["kid"], key.kid.as_str());
        assert_eq!(claims["amr"], json!(["face"]));
        assert_eq!(claims["acr"], ACR);
        assert!(claims["exp"].as_i64().unwrap() - claims["auth_time"].as_i64().unwrap() <= 300);
    }
    assert_eq!(results[0].as_ref().unwrap().0["auth_time"], auth_time);
    assert_eq!(results[3].as_ref().unwrap().0["sub"], "bob");
    let refused = |i: usize, why: &str| {
        let e = results[i].as_ref().expect_err(why);
        eprintln!("refused as expected ({why}): {e}");
    };
    refused(4, "another user's assertion");
    refused(5, "a changed sub");
    refused(6, "a changed exp");
    refused(7, "a changed signature");
    assert!(results[4].as_ref().unwrap_err().contains("sub"));
    assert!(results[5].as_ref().unwrap_err().contains("Signature"));
    app.assert_every_key_expires().await;
}

#[tokio::test]
async fn rejected_and_expired_results_never_yield_an_assertion() {
    let key = key_files("p256");
    let (argos, receiver) = argos_servers().await;
    let mut settings = settings_with(&argos, &receiver, &key);
    settings.assertions.lifetime_secs = 60;
    // A FaceAuth 90 s before the open still counts as fresh here; its assertion (60 s) is over.
    settings.verify.clock_skew_secs = 300;
    let app = spawn_settings(settings).await;

    let (recent, _) = argos_time(2);
    let rejected = faceauth(&app, &argos, "rita", "auth-rita", "rejected", &recent).await;
    let (old, _) = argos_time(90);
    let expired = faceauth(&app, &argos, "olaf", "auth-olaf", "approved", &old).await;
    // A fresh approval in the same gateway does get one (the key works).
    let fresh = faceauth(&app, &argos, "fred", "auth-fred", "approved", &recent).await;

    let st = link_status(&app, &user_jwt("rita"), &rejected).await;
    assert_eq!(st["result"], "rejected");
    assert!(st.get("assertion").is_none(), "{st}");
    let su = step_up(&app, "rita", 300).await;
    assert_eq!(su["verified"], false);
    assert!(su.get("assertion").is_none());
    let event = callback_for(&receiver, &rejected).await;
    assert_eq!(event["result"], "rejected");
    assert!(event.get("assertion").is_none(), "{event}");

    let st = link_status(&app, &user_jwt("olaf"), &expired).await;
    assert_eq!(st["result"], "approved");
    assert!(st.get("assertion").is_none(), "exp passed: {st}");
    let su = step_up(&app, "olaf", 300).await;
    assert_eq!(
        su["verified"], true,
        "verified, but older than the assertion lifetime"
    );
    assert!(su.get("assertion").is_none());
    let event = callback_for(&receiver, &expired).await;
    assert_eq!(event["result"], "approved");
    assert!(event.get("assertion").is_none(), "{event}");

    let st = link_status(&app, &user_jwt("fred"), &fresh).await;
    let (header, claims) = decode_parts(st["assertion"].as_str().unwrap());
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], key.kid.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["auth_time"].as_i64().unwrap(),
        60
    );
    assert!(
        claims.get("reference").is_none(),
        "a user-minted link has none"
    );
    // Another user's link: not found, so no assertion either.
    let r = app.link_status(&user_jwt("rita"), &fresh).await;
    r.assert_problem(404, "link_not_found");
    if pyjwt_available() {
        let results = pyjwt_verify(&app, &[(st["assertion"].as_str().unwrap(), "fred")]).await;
        assert!(results[0].is_ok(), "{:?}", results[0]);
    }
}

#[tokio::test]
async fn after_a_key_rotation_old_assertions_verify_until_the_old_key_is_removed() {
    let old = key_files("ed25519");
    let new = key_files("p256");
    let (argos, receiver) = argos_servers().await;
    let before = settings_with(&argos, &receiver, &old);
    let app = spawn_settings(before.clone()).await;
    let (at, auth_time) = argos_time(5);
    faceauth(&app, &argos, "rosa", "auth-rosa", "approved", &at).await;
    let signed_before = step_up(&app, "rosa", 300).await["assertion"]
        .as_str()
        .unwrap()
        .to_string();
    app.stop().await;

    // Rotation: the new key signs, the old one (its public half) is still published.
    let mut during = before.clone();
    during.assertions.signing_key_file = path_str(&new.private);
    during.assertions.previous_key_files = vec![path_str(&old.public)];
    let rotated = spawn_settings(during.clone()).await;
    let (_, set) = fetch_jwks(&rotated).await;
    let kids: Vec<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [new.kid.as_str(), old.kid.as_str()],
        "signing key first"
    );
    assert_eq!(set["keys"][0]["alg"], "ES256");
    assert_eq!(set["keys"][1]["alg"], "EdDSA");
    let signed_after = step_up(&rotated, "rosa", 300).await["assertion"]
        .as_str()
        .unwrap()
        .to_string();
    let (header, claims) = decode_parts(&signed_after);
    assert_eq!(header["kid"], new.kid.as_str());
    assert_eq!(
        claims["auth_time"], auth_time,
        "the same FaceAuth, the same facts"
    );
    rotated.stop().await;

    // The old key given as its private key file publishes the same kid.
    let mut as_private = during.clone();
    as_private.assertions.previous_key_files = vec![path_str(&old.private)];
    let built =
        faceauth_gateway::assertions::Assertions::from_settings(&as_private.assertions, ISS)
            .unwrap()
            .unwrap();
    assert_eq!(built.jwks().keys[1].kid, old.kid);

    // The old key removed.
    let mut after = during.clone();
    after.assertions.previous_key_files = vec![];
    let removed = spawn_settings(after).await;
    let (_, set) = fetch_jwks(&removed).await;
    assert_eq!(set["keys"].as_array().unwrap().len(), 1);

    if pyjwt_available() {
        let rotated = spawn_settings(during).await;
        let results = pyjwt_verify(
            &rotated,
            &[(&signed_before, "rosa"), (&signed_after, "rosa")],
        )
        .await;
        assert!(
            results[0].is_ok(),
            "old key still published: {:?}",
            results[0]
        );
        assert!(results[1].is_ok(), "{:?}", results[1]);
        assert_eq!(results[0].as_ref().unwrap().0["auth_time"], auth_time);
        let results = pyjwt_verify(
            &removed,
            &[(&signed_before, "rosa"), (&signed_after, "rosa")],
        )
        .await;
        assert!(results[0].is_err(), "the old key is gone");
        assert!(results[1].is_ok(), "{:?}", results[1]);
    }
    if jose_available() {
        let results = jose_verify(
            &removed,
            &[(&signed_before, "rosa"), (&signed_after, "rosa")],
        )
        .await;
        assert!(results[0].is_err(), "the old key is gone");
        assert!(results[1].is_ok(), "{:?}", results[1]);
    }
}

#[tokio::test]
async fn assertions_are_off_without_a_key_and_bad_keys_are_refused_at_start_up() {
    let app = spawn_app().await;
    app.send(app.get("/.well-known/jwks.json"))
        .await
        .assert_problem(404, "not_found");
    let r = app.send(app.post("/.well-known/jwks.json")).await;
    r.assert_problem(405, "method_not_allowed");

    let key = key_files("ed25519");
    let pem = std::fs::read_to_string(&key.private).unwrap();
    let secret_line = pem.lines().nth(1).unwrap().to_string();
    let base = || {
        let mut s = test_settings();
        s.assertions.signing_key_file = path_str(&key.private);
        s.assertions.audience = AUDIENCE_APP.into();
        s
    };
    let mut s = base();
    s.assertions.audience = String::new();
    assert_eq!(s.validate().unwrap_err().key, "assertions.audience");
    let mut s = base();
    s.assertions.audience = s.auth.audience.clone().unwrap();
    assert_eq!(s.validate().unwrap_err().key, "assertions.audience");
    let mut s = base();
    s.assertions.lifetime_secs = 0;
    assert_eq!(s.validate().unwrap_err().key, "assertions.lifetime_secs");
    let mut s = base();
    s.assertions.acr = "a\"b".into();
    assert_eq!(s.validate().unwrap_err().key, "assertions.acr");
    let mut s = test_settings();
    s.assertions.previous_key_files = vec![path_str(&key.public)];
    assert_eq!(
        s.validate().unwrap_err().key,
        "assertions.previous_key_files"
    );
    base().validate().unwrap();

    // Unusable key files: named, never echoed.
    let dir = key.private.parent().unwrap();
    let rsa = dir.join("rsa.pem");
    let rsa_key = openssl::rsa::Rsa::generate(2048).unwrap();
    let rsa_pkey = openssl::pkey::PKey::from_rsa(rsa_key).unwrap();
    std::fs::write(&rsa, rsa_pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
    for (file, previous) in [
        (path_str(&dir.join("missing.pem")), false),
        (path_str(&key.public), false),
        (path_str(&rsa), false),
        (path_str(&rsa), true),
    ] {
        let mut s = base();
        if previous {
            s.assertions.previous_key_files = vec![file];
        } else {
            s.assertions.signing_key_file = file;
        }
        let err = faceauth_gateway::assertions::Assertions::from_settings(&s.assertions, ISS)
            .unwrap_err();
        let expected = if previous {
            "assertions.previous_key_files[0]"
        } else {
            "assertions.signing_key_file"
        };
        assert_eq!(err.key, expected, "{err}");
        let shown = err.to_string();
        assert!(
            !shown.contains("MII") && !shown.contains(&secret_line),
            "{shown}"
        );
        let err = match build_error(s).await {
            Some(e) => e,
            None => panic!("a bad key must stop the start"),
        };
        assert!(err.contains(expected), "{err}");
    }

    // Debug shows which key, never the key.
    let built = faceauth_gateway::assertions::Assertions::from_settings(&base().assertions, ISS)
        .unwrap()
        .unwrap();
    let debug = format!("{built:?}");
    assert!(debug.contains(&key.kid));
    assert!(
        !debug.contains(&secret_line) && !debug.contains("PRIVATE"),
        "{debug}"
    );
}

/// `Application::build`'s error text, if it failed.
async fn build_error(s: Settings) -> Option<String> {
    faceauth_gateway::Application::build(s)
        .await
        .err()
        .map(|e| e.to_string())
}

#[tokio::test]
async fn the_real_binary_logs_neither_the_key_nor_the_assertions() {
    let key = key_files("ed25519");
    let pem = std::fs::read_to_string(&key.private).unwrap();
    let secret_line = pem.lines().nth(1).unwrap().to_string();
    let argos = MockServer::start().await;
    let (gw, _, _) = Gateway::start(&[
        ("FACEAUTH__ARGOS__API_BASE_URL", argos.uri()),
        ("FACEAUTH__ARGOS__API_RETRIES", "0".into()),
        ("FACEAUTH__VERIFY__POLL_INTERVAL_MS", "200".into()),
        (
            "FACEAUTH__ASSERTIONS__SIGNING_KEY_FILE",
            path_str(&key.private),
        ),
        ("FACEAUTH__ASSERTIONS__AUDIENCE", AUDIENCE_APP.into()),
    ]);
    let client = test_client();
    let jwt = user_jwt("lotte");
    let id = gw.mint_id(&client, &jwt).await;
    let opened = gw.open(&client, &id).await;
    assert_eq!(opened.status(), 302);
    let (at, _) = argos_time(3);
    argos_says(&argos, "auth-lotte", "approved", "sid-of-lotte", &at).await;
    let hook = client
        .post(gw.url("/v1/webhooks/argos/webhook_path_secret_0123456789_abcdef"))
        .body(format!(
            r#"{{"webhook_trigger":"faceAuth","data":{{"Authentication_id":"auth-lotte","Token_id":"{id}"}}}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 200);
    let status = || async {
        client
            .get(gw.url(&format!("/v1/links/{id}")))
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    eventually("approved", || async {
        status().await["result"] == "approved"
    })
    .await;
    let assertion = status().await["assertion"].as_str().unwrap().to_string();
    let jwks = client
        .get(gw.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
    gw.signal("TERM");
    let (code, logs) = gw.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    assert!(logs.contains("step-up assertions on") && logs.contains(&key.kid));
    let signature = assertion.rsplit('.').next().unwrap();
    for (what, secret) in [
        ("assertion", assertion.as_str()),
        ("assertion signature", signature),
        ("private key", secret_line.as_str()),
    ] {
        assert!(!logs.contains(secret), "{what} leaked into the logs");
    }
}
