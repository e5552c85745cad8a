//! Known-answer tests: the shared ARGOS vectors (Python `cryptography`, cross-checked with the
//! OpenSSL CLI) and vectors generated with `openssl enc` and pinned. Copies live in
//! `tests/fixtures/` so the suite needs nothing outside the repo.

use faceauth_gateway::argos::crypto::{derive_key, CryptoError, Encryption, QueryCipher};
use faceauth_gateway::argos::url::{FaceAuthParams, FaceAuthUrlBuilder, PlaintextFormat};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

const ARGOS_VECTORS: &str = include_str!("../fixtures/argos-crypto.json");
const OPENSSL_PINNED: &str = include_str!("../fixtures/openssl-pinned.json");

fn cipher(mode: Encryption, key: &str) -> QueryCipher {
    QueryCipher::new(mode, &SecretString::from(key)).unwrap()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("missing {k}"))
}

#[test]
fn argos_reference_vectors() {
    let doc: Value = serde_json::from_str(ARGOS_VECTORS).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 10);
    for v in vectors {
        let key = s(v, "key_string");
        let pt = s(v, "plaintext").as_bytes();
        assert_eq!(hex::encode(derive_key(key)), s(v, "key_sha256_hex"));

        let ecb = cipher(Encryption::Aes256Ecb, key);
        assert_eq!(ecb.encrypt(pt).expose_secret(), s(v, "aes_256_ecb_base64"));
        assert_eq!(ecb.decrypt(s(v, "aes_256_ecb_base64")).unwrap(), pt);

        let cbc = cipher(Encryption::Aes256Cbc, key);
        assert_eq!(
            cbc.encrypt(pt).expose_secret(),
            s(v, "aes_256_cbc_zero_iv_base64")
        );
        assert_eq!(cbc.decrypt(s(v, "aes_256_cbc_zero_iv_base64")).unwrap(), pt);

        let gcm = cipher(Encryption::Aes256Gcm, key);
        let nonce: [u8; 12] = hex::decode(s(v, "aes_256_gcm_nonce_hex"))
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            gcm.encrypt_gcm_with_nonce(pt, nonce).expose_secret(),
            s(v, "aes_256_gcm_hex")
        );
        assert_eq!(gcm.decrypt(s(v, "aes_256_gcm_hex")).unwrap(), pt);
        // Random-nonce output decrypts with the same key and never repeats.
        let a = gcm.encrypt(pt);
        let b = gcm.encrypt(pt);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(gcm.decrypt(a.expose_secret()).unwrap(), pt);
    }
}

#[test]
fn openssl_cli_pinned_vectors() {
    let doc: Value = serde_json::from_str(OPENSSL_PINNED).unwrap();
    let key = s(&doc, "key_string");
    assert_eq!(hex::encode(derive_key(key)), s(&doc, "key_sha256_hex"));
    for v in doc["vectors"].as_array().unwrap() {
        let pt = s(v, "plaintext").as_bytes();
        let ecb = cipher(Encryption::Aes256Ecb, key);
        assert_eq!(ecb.encrypt(pt).expose_secret(), s(v, "aes_256_ecb_base64"));
        assert_eq!(ecb.decrypt(s(v, "aes_256_ecb_base64")).unwrap(), pt);
        let cbc = cipher(Encryption::Aes256Cbc, key);
        assert_eq!(
            cbc.encrypt(pt).expose_secret(),
            s(v, "aes_256_cbc_zero_iv_base64")
        );
        assert_eq!(cbc.decrypt(s(v, "aes_256_cbc_zero_iv_base64")).unwrap(), pt);
    }
}

#[test]
fn plaintext_builder_reproduces_the_vector_plaintexts() {
    let p = |sid: &str, user: &str, cf1: Option<&str>, token: &str| FaceAuthParams {
        sid: sid.into(),
        auth_user_id: user.into(),
        auth_cf1: cf1.map(Into::into),
        auth_cf2: None,
        auth_cf3: None,
        token: token.into(),
    };
    assert_eq!(
        p("sub123", "u1", None, "tok_abcdefgh").plaintext(PlaintextFormat::Query),
        "sid=sub123&authUserId=u1&token=tok_abcdefgh"
    );
    assert_eq!(
        p("sub123", "u1", None, "tok_abcdefgh").plaintext(PlaintextFormat::Json),
        r#"{"sid":"sub123","authUserId":"u1","token":"tok_abcdefgh"}"#
    );
    assert_eq!(
        p(
            "6f1c2a90",
            "user-001",
            Some("someone@example.test"),
            "2b0d9d3e-8d7a-4f51-9a4e-0c2b9f1e7a11"
        )
        .plaintext(PlaintextFormat::Query),
        "sid=6f1c2a90&authUserId=user-001&authCf1=someone%40example.test&token=2b0d9d3e-8d7a-4f51-9a4e-0c2b9f1e7a11"
    );
    assert_eq!(
        p("x", "😀 &=+", None, "t").plaintext(PlaintextFormat::Query),
        "sid=x&authUserId=%F0%9F%98%80%20%26%3D%2B&token=t"
    );
}

#[test]
fn url_builder_percent_encodes_the_known_ecb_value() {
    let url = url::Url::parse("https://form.argosidentity.com/face-auth").unwrap();
    let builder = FaceAuthUrlBuilder::new(
        &url,
        "pid 1",
        cipher(Encryption::Aes256Ecb, "TEST_API_KEY_0123456789"),
        PlaintextFormat::Query,
    );
    let built = builder.build(&FaceAuthParams {
        sid: "sub123".into(),
        auth_user_id: "u1".into(),
        auth_cf1: None,
        auth_cf2: None,
        auth_cf3: None,
        token: "tok_abcdefgh".into(),
    });
    // "/8XWJjHkMSal7QmB4ta9Sc9guBMlU4iRfEVNbL9pz2QzGyVHhCljzcGidAf+131x" percent-encoded by hand.
    assert_eq!(
        built.expose_secret(),
        "https://form.argosidentity.com/face-auth?pid=pid%201&encrypted=%2F8XWJjHkMSal7QmB4ta9Sc9guBMlU4iRfEVNbL9pz2QzGyVHhCljzcGidAf%2B131x"
    );
}

#[test]
fn decrypt_rejects_wrong_keys_and_tampering() {
    let right = cipher(Encryption::Aes256Gcm, "TEST_API_KEY_0123456789");
    let wrong = cipher(Encryption::Aes256Gcm, "another key");
    let ct = right.encrypt(b"sid=a&token=b");
    assert_eq!(wrong.decrypt(ct.expose_secret()), Err(CryptoError::Decrypt));
    let mut raw = hex::decode(ct.expose_secret()).unwrap();
    for i in [0, 12, raw.len() - 1] {
        raw[i] ^= 0x80;
        assert_eq!(right.decrypt(&hex::encode(&raw)), Err(CryptoError::Decrypt));
        raw[i] ^= 0x80;
    }
    assert_eq!(
        right.decrypt(&hex::encode(&raw[..20])),
        Err(CryptoError::Decrypt)
    );
}
