//! JWT validation: hostile tokens are 401 and write nothing.

use crate::helpers::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn unsigned(header: Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

async fn assert_rejected(app: &TestApp, jwt: &str, why: &str) {
    let r = app.mint(jwt).await;
    assert_eq!(r.status, 401, "{why}: {}", r.text());
    r.assert_problem(401, "invalid_token");
    let www = r.header("www-authenticate").unwrap();
    assert!(
        www.starts_with("Bearer ") && www.contains("invalid_token"),
        "{why}"
    );
    assert!(!r.text().contains(jwt), "the token is not echoed");
}

#[tokio::test]
async fn hostile_hs256_tokens_are_rejected_and_write_nothing() {
    let app = spawn_app().await;
    let now = now_secs();
    let mut cases: Vec<(String, &str)> = Vec::new();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims("victim");
        f(&mut c);
        c
    };
    for alg in ["none", "None", "NONE"] {
        cases.push((
            unsigned(json!({"alg": alg, "typ": "JWT"}), &claims("victim")),
            "alg none",
        ));
    }
    let valid = user_jwt("victim");
    let stripped = format!("{}.", valid.rsplit_once('.').unwrap().0);
    cases.push((stripped, "stripped signature"));
    cases.push((
        sign_hs256(&with(&|c| c["exp"] = json!(now - 120))),
        "expired",
    ));
    cases.push((
        sign_hs256(&with(&|c| c["nbf"] = json!(now + 600))),
        "nbf in the future",
    ));
    cases.push((
        sign_hs256(&with(&|c| c["iat"] = json!(now + 600))),
        "iat in the future",
    ));
    // A user id no path could name (the user-id grammar): control characters.
    for sub in ["a\nb", "tab\there", "nul\u{0}", "c1\u{85}"] {
        cases.push((
            sign_hs256(&with(&|c| c["sub"] = json!(sub))),
            "control character in sub",
        ));
    }
    cases.push((
        sign_hs256(&with(&|c| c["iss"] = json!("https://evil.test/"))),
        "wrong iss",
    ));
    cases.push((
        sign_hs256(&with(&|c| c["aud"] = json!("someone-else"))),
        "wrong aud",
    ));
    cases.push((
        sign_hs256(&with(&|c| {
            c.as_object_mut().unwrap().remove("aud");
        })),
        "missing aud",
    ));
    cases.push((
        sign_hs256(&with(&|c| {
            c.as_object_mut().unwrap().remove("exp");
        })),
        "missing exp",
    ));
    cases.push((
        sign_hs256(&with(&|c| {
            c.as_object_mut().unwrap().remove("iss");
        })),
        "missing iss",
    ));
    cases.push((
        sign_hs256(&with(&|c| {
            c.as_object_mut().unwrap().remove("sub");
        })),
        "missing user id",
    ));
    cases.push((
        sign_hs256(&with(&|c| c["exp"] = json!("tomorrow"))),
        "exp as string",
    ));
    cases.push((
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims("victim"),
            &EncodingKey::from_secret(b"another-secret-of-enough-length-000000"),
        )
        .unwrap(),
        "wrong secret",
    ));
    cases.push((
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims("victim"),
            &EncodingKey::from_secret(HS_SECRET.as_bytes()),
        )
        .unwrap(),
        "alg outside the allow-list",
    ));
    for garbage in [
        "garbage",
        "a.b.c",
        "....",
        "eyJhbGciOiJIUzI1NiJ9..",
        "🙂.🙂.🙂",
    ] {
        cases.push((garbage.to_string(), "garbage"));
    }
    for (jwt, why) in &cases {
        assert_rejected(&app, jwt, why).await;
    }
    // Same for start.
    let r = app.start(&cases[0].0).await;
    r.assert_problem(401, "invalid_token");
    assert!(app.keys().await.is_empty(), "nothing written to Redis");

    // The accepted control case.
    assert_eq!(app.mint(&valid).await.status, 201);
}

#[tokio::test]
async fn missing_or_non_bearer_credentials() {
    let app = spawn_app().await;
    for auth in [
        None,
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearer"),
        Some("Bearer   "),
    ] {
        let mut req = app.post("/v1/links");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = app.send(req).await;
        r.assert_problem(401, "missing_credentials");
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some(r#"Bearer realm="faceauth-gateway""#)
        );
    }
    assert!(app.keys().await.is_empty());
}

#[tokio::test]
async fn rs256_accepts_real_tokens_and_rejects_hs256_signed_with_the_public_key() {
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let private_pem = rsa.private_key_to_pem().unwrap();
    let public_pem = String::from_utf8(rsa.public_key_to_pem().unwrap()).unwrap();
    let app = spawn_app_with(|s| {
        s.auth.algorithms = vec![Algorithm::RS256];
        s.auth.hs256_secret = None;
        s.auth.public_key_pem = Some(public_pem.clone());
    })
    .await;
    let good = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims("rsa-user"),
        &EncodingKey::from_rsa_pem(&private_pem).unwrap(),
    )
    .unwrap();
    assert_eq!(app.mint(&good).await.status, 201);

    // Key confusion: HS256 with the RSA public key as the HMAC secret.
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("rsa-user"),
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    assert_rejected(&app, &confused, "HS256 signed with the RSA public key").await;
    assert_rejected(
        &app,
        &unsigned(json!({"alg": "none"}), &claims("rsa-user")),
        "alg none",
    )
    .await;
    // PS256 is RSA too but not in the allow-list.
    let ps = jsonwebtoken::encode(
        &Header::new(Algorithm::PS256),
        &claims("rsa-user"),
        &EncodingKey::from_rsa_pem(&private_pem).unwrap(),
    )
    .unwrap();
    assert_rejected(&app, &ps, "PS256 outside the allow-list").await;
    let links = app
        .keys()
        .await
        .into_iter()
        .filter(|k| k.contains("link:"))
        .count();
    assert_eq!(links, 1, "only the good token minted");
}
