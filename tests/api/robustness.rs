//! Property tests for the plaintext builder and every cipher (checked against OpenSSL), and a
//! table of hostile JWTs that must never produce a 5xx.

use crate::helpers::*;
use faceauth_gateway::argos::crypto::{Encryption, QueryCipher};
use faceauth_gateway::argos::url::{FaceAuthParams, PlaintextFormat};
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

fn parse_query(plain: &str) -> Vec<(String, String)> {
    plain
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (
                k.into(),
                percent_decode_str(v).decode_utf8().unwrap().into_owned(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn plaintext_round_trips_any_utf8(
        sid in "\\PC*", user in any::<String>(), cf1 in proptest::option::of(any::<String>()),
        cf3 in proptest::option::of(any::<String>()), token in "[a-f0-9-]{36}",
    ) {
        let p = FaceAuthParams {
            sid: sid.clone(), auth_user_id: user.clone(), auth_cf1: cf1.clone(),
            auth_cf2: None, auth_cf3: cf3.clone(), token: token.clone(),
        };
        let q = parse_query(&p.plaintext(PlaintextFormat::Query));
        let mut expected = vec![("sid".to_string(), sid.clone()), ("authUserId".into(), user.clone())];
        if let Some(c) = &cf1 { expected.push(("authCf1".into(), c.clone())); }
        if let Some(c) = &cf3 { expected.push(("authCf3".into(), c.clone())); }
        expected.push(("token".into(), token.clone()));
        prop_assert_eq!(q, expected);
        let j: Value = serde_json::from_str(&p.plaintext(PlaintextFormat::Json)).unwrap();
        prop_assert_eq!(j["sid"].as_str(), Some(sid.as_str()));
        prop_assert_eq!(j["authUserId"].as_str(), Some(user.as_str()));
        prop_assert_eq!(j["authCf1"].as_str(), cf1.as_deref());
        prop_assert!(j.get("authCf2").is_none());
    }

    #[test]
    fn every_cipher_round_trips_and_openssl_agrees(
        // Keys of only white space are refused by design (`CryptoError::EmptyKey`).
        plain in proptest::collection::vec(any::<u8>(), 0..300), key in "[!-~][ -~]{0,63}",
    ) {
        for mode in [Encryption::Aes256Ecb, Encryption::Aes256Cbc, Encryption::Aes256Gcm] {
            let c = QueryCipher::new(mode, &SecretString::from(key.clone())).unwrap();
            let enc = c.encrypt(&plain);
            prop_assert_eq!(c.decrypt(enc.expose_secret()).unwrap(), plain.clone());
            prop_assert_eq!(oracle_decrypt(mode.as_str(), &key, enc.expose_secret()), plain.clone());
        }
    }

    #[test]
    fn gcm_differs_per_call_and_any_flipped_byte_fails(
        plain in proptest::collection::vec(any::<u8>(), 0..100), flip in any::<prop::sample::Index>(),
    ) {
        let c = QueryCipher::new(Encryption::Aes256Gcm, &SecretString::from("k")).unwrap();
        let a = c.encrypt(&plain);
        let b = c.encrypt(&plain);
        prop_assert_ne!(a.expose_secret(), b.expose_secret());
        let mut raw = hex::decode(a.expose_secret()).unwrap();
        let i = flip.index(raw.len());
        raw[i] ^= 0x01;
        prop_assert!(c.decrypt(&hex::encode(raw)).is_err());
    }
}

#[tokio::test]
async fn hostile_jwt_table_never_5xx() {
    let app = spawn_app().await;
    let now = now_secs();
    let base = claims("hostile");
    let with = |key: &str, v: Value| {
        let mut c = base.clone();
        c[key] = v;
        c
    };
    let without = |key: &str| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    let unsigned = |alg: &str, c: &Value| {
        use base64::Engine;
        let e = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.", e(&json!({"alg": alg, "typ": "JWT"})), e(c))
    };
    let rsa = TestKey::generate(jsonwebtoken::Algorithm::RS256, "rsa");
    let ok = 201;
    let cases: Vec<(&str, String, u16)> = vec![
        ("alg none", unsigned("none", &base), 401),
        ("alg None", unsigned("None", &base), 401),
        ("alg NONE", unsigned("NONE", &base), 401),
        ("alg HS256 unsigned", unsigned("HS256", &base), 401),
        (
            "stripped signature",
            {
                let t = sign_hs256(&base);
                t[..t.rfind('.').unwrap() + 1].to_string()
            },
            401,
        ),
        (
            "wrong key type (RS256 for an HS256 gateway)",
            rsa.sign(&base),
            401,
        ),
        (
            "exp fraction in the future",
            sign_hs256(&with("exp", json!(now as f64 + 300.5))),
            ok,
        ),
        (
            "exp fraction in the past",
            sign_hs256(&with("exp", json!(now as f64 - 100.5))),
            401,
        ),
        (
            "nbf fraction in the future",
            sign_hs256(&with("nbf", json!(now as f64 + 300.5))),
            401,
        ),
        (
            "nbf fraction in the past",
            sign_hs256(&with("nbf", json!(now as f64 - 10.5))),
            ok,
        ),
        (
            "iat fraction in the future",
            sign_hs256(&with("iat", json!(now as f64 + 300.5))),
            401,
        ),
        ("exp huge", sign_hs256(&with("exp", json!(1e300))), ok),
        ("exp u64 max", sign_hs256(&with("exp", json!(u64::MAX))), ok),
        ("nbf huge", sign_hs256(&with("nbf", json!(1e300))), 401),
        ("exp negative", sign_hs256(&with("exp", json!(-1))), 401),
        (
            "nbf negative",
            sign_hs256(&with("nbf", json!(-1_000_000))),
            ok,
        ),
        ("iat negative", sign_hs256(&with("iat", json!(-5))), ok),
        (
            "exp string",
            sign_hs256(&with("exp", json!((now + 300).to_string()))),
            401,
        ),
        ("nbf string", sign_hs256(&with("nbf", json!("0"))), 401),
        ("iat string", sign_hs256(&with("iat", json!("now"))), 401),
        ("exp null", sign_hs256(&with("exp", Value::Null)), 401),
        ("nbf null", sign_hs256(&with("nbf", Value::Null)), 401),
        ("iat null", sign_hs256(&with("iat", Value::Null)), 401),
        ("exp missing", sign_hs256(&without("exp")), 401),
        ("aud string", sign_hs256(&with("aud", json!(AUDIENCE))), ok),
        (
            "aud array with ours",
            sign_hs256(&with("aud", json!(["other", AUDIENCE]))),
            ok,
        ),
        (
            "aud array without ours",
            sign_hs256(&with("aud", json!(["other"]))),
            401,
        ),
        ("aud empty array", sign_hs256(&with("aud", json!([]))), 401),
        ("aud number", sign_hs256(&with("aud", json!(5))), 401),
        ("aud null", sign_hs256(&with("aud", Value::Null)), 401),
        ("iss array", sign_hs256(&with("iss", json!([ISSUER]))), 401),
        (
            "sub object",
            sign_hs256(&with("sub", json!({"id": 1}))),
            401,
        ),
        ("sub number", sign_hs256(&with("sub", json!(42))), ok),
        ("sub empty", sign_hs256(&with("sub", json!(""))), 401),
        (
            "sid number",
            sign_hs256(&with("argos_sid", json!(12345))),
            ok,
        ),
        (
            "sid array",
            sign_hs256(&with("argos_sid", json!(["a"]))),
            422,
        ),
        ("sid empty", sign_hs256(&with("argos_sid", json!(""))), 422),
        (
            // 8 KB: the token stays inside server.max_header_bytes (16 KiB), so the claim
            // limit (1024 bytes) is what refuses it; larger heads are a 431 (edges.rs).
            "sid 8 KB",
            sign_hs256(&with("argos_sid", json!("s".repeat(8 << 10)))),
            422,
        ),
        (
            "claims not an object",
            {
                use base64::Engine;
                let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
                let unsigned = format!("{}.{}", e(r#"{"alg":"HS256"}"#), e("[1,2,3]"));
                let sig = {
                    use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
                    let key = PKey::hmac(HS_SECRET.as_bytes()).unwrap();
                    let mut s = Signer::new(MessageDigest::sha256(), &key).unwrap();
                    s.update(unsigned.as_bytes()).unwrap();
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(s.sign_to_vec().unwrap())
                };
                format!("{unsigned}.{sig}")
            },
            401,
        ),
        ("header not JSON", "bm90LWpzb24.e30.c2ln".to_string(), 401),
        (
            "crit header",
            {
                let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
                h.typ = Some("JWT".into());
                let signed = jsonwebtoken::encode(
                    &h,
                    &base,
                    &jsonwebtoken::EncodingKey::from_secret(HS_SECRET.as_bytes()),
                )
                .unwrap();
                // Re-sign with a header that names a critical extension.
                use base64::Engine;
                let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                let header = e.encode(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#);
                let payload = signed.split('.').nth(1).unwrap();
                let input = format!("{header}.{payload}");
                let key = openssl::pkey::PKey::hmac(HS_SECRET.as_bytes()).unwrap();
                let mut signer =
                    openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)
                        .unwrap();
                signer.update(input.as_bytes()).unwrap();
                format!("{input}.{}", e.encode(signer.sign_to_vec().unwrap()))
            },
            401,
        ),
        ("empty", "..".to_string(), 401),
    ];
    for (why, jwt, expected) in cases {
        let r = app.mint(&jwt).await;
        assert_eq!(r.status.as_u16(), expected, "{why}: {}", r.text());
        assert!(r.status.as_u16() < 500);
    }
    // A 1 MB token is refused by the HTTP layer itself (header limit), never a 5xx.
    let huge = sign_hs256(&with("argos_sid", json!("s".repeat(1 << 20))));
    let r = app
        .post("/v1/links")
        .bearer_auth(huge)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
}
