//! Criterion micro-benchmarks: `cargo bench --bench gateway`.
//!
//! * encryption per mode (200-byte plaintext),
//! * plaintext building (`query`, `json`),
//! * JWT verification per algorithm (static keys),
//! * the whole mint path with the memory store (URL length check, record, single-active swap).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code may panic

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use faceauth_gateway::argos::crypto::{Encryption, QueryCipher};
use faceauth_gateway::argos::url::{FaceAuthParams, FaceAuthUrlBuilder, PlaintextFormat};
use faceauth_gateway::auth::JwtVerifier;
use faceauth_gateway::config::Settings;
use faceauth_gateway::links::{Expiry, LinkOptions, LinkPolicy, LinkService, NewLink};
use faceauth_gateway::store::memory::MemoryStore;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use std::sync::Arc;

fn params() -> FaceAuthParams {
    FaceAuthParams {
        sid: "6f1c2a90-5d3e-4c1b-9a7f-2e8d4b6c0a11".into(),
        auth_user_id: "user-0001234567".into(),
        auth_cf1: Some("someone@example.test".into()),
        auth_cf2: None,
        auth_cf3: None,
        token: "2b0d9d3e-8d7a-4f51-9a4e-0c2b9f1e7a11".into(),
    }
}

fn encryption(c: &mut Criterion) {
    let plaintext = vec![b'x'; 200];
    let key = SecretString::from("ak_live_9f8e7d6c5b4a3f2e1d0c");
    for mode in [
        Encryption::Aes256Ecb,
        Encryption::Aes256Gcm,
        Encryption::Aes256Cbc,
    ] {
        let cipher = QueryCipher::new(mode, &key).unwrap();
        c.bench_function(&format!("encrypt/{mode}/200B"), |b| {
            b.iter(|| cipher.encrypt(black_box(&plaintext)))
        });
    }
}

fn plaintext(c: &mut Criterion) {
    let p = params();
    for format in [PlaintextFormat::Query, PlaintextFormat::Json] {
        c.bench_function(&format!("plaintext/{format}"), |b| {
            b.iter(|| black_box(&p).plaintext(format))
        });
    }
    let cipher = QueryCipher::new(Encryption::Aes256Ecb, &SecretString::from("k")).unwrap();
    let url = url::Url::parse("https://form.argosidentity.com/face-auth").unwrap();
    let builder = FaceAuthUrlBuilder::new(&url, "pid-1", cipher, PlaintextFormat::Query);
    c.bench_function("faceauth_url/ecb/query", |b| {
        b.iter(|| builder.build(black_box(&p)))
    });
}

fn jwt(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://idp.test/", "aud": "gw", "sub": "user-1", "exp": now + 3600,
        "iat": now, "argos_sid": "sid-1",
    });
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let ec = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
    )
    .unwrap();
    let ec = openssl::pkey::PKey::from_ec_key(ec).unwrap();
    let ed = openssl::pkey::PKey::generate_ed25519().unwrap();
    let hs = "bench-hs256-secret-0123456789abcdef-0123";
    let cases: Vec<(Algorithm, EncodingKey, Option<String>)> = vec![
        (
            Algorithm::HS256,
            EncodingKey::from_secret(hs.as_bytes()),
            None,
        ),
        (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&rsa.private_key_to_pem().unwrap()).unwrap(),
            Some(String::from_utf8(rsa.public_key_to_pem().unwrap()).unwrap()),
        ),
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&ec.private_key_to_pem_pkcs8().unwrap()).unwrap(),
            Some(String::from_utf8(ec.public_key_to_pem().unwrap()).unwrap()),
        ),
        (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&ed.private_key_to_pem_pkcs8().unwrap()).unwrap(),
            Some(String::from_utf8(ed.public_key_to_pem().unwrap()).unwrap()),
        ),
    ];
    for (alg, key, public) in cases {
        let mut s = Settings::load_from(None, std::iter::empty()).unwrap().auth;
        s.algorithms = vec![alg];
        s.issuer = Some("https://idp.test/".into());
        s.audience = Some("gw".into());
        match public {
            Some(pem) => s.public_key_pem = Some(pem),
            None => s.hs256_secret = Some(SecretString::from(hs)),
        }
        let verifier = JwtVerifier::from_settings(&s, &Default::default()).unwrap();
        let token =
            SecretString::from(jsonwebtoken::encode(&Header::new(alg), &claims, &key).unwrap());
        assert!(rt.block_on(verifier.verify(&token)).is_ok());
        c.bench_function(&format!("jwt_verify/{alg:?}"), |b| {
            b.iter(|| rt.block_on(verifier.verify(black_box(&token))))
        });
    }
}

fn mint(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cipher = QueryCipher::new(Encryption::Aes256Ecb, &SecretString::from("k")).unwrap();
    let url = url::Url::parse("https://form.argosidentity.com/face-auth").unwrap();
    let service = LinkService::new(
        Arc::new(MemoryStore::new()),
        LinkPolicy {
            expiry: Expiry::Count,
            window_ms: 600_000,
            unopened_ttl_ms: 900_000,
            retention_ms: 86_400_000,
        },
        LinkOptions {
            confirm_step: false,
            single_active: true,
            max_url_bytes: 2000,
        },
        FaceAuthUrlBuilder::new(&url, "pid-1", cipher, PlaintextFormat::Query),
    );
    let link = NewLink {
        user_id: "user-1".into(),
        sid: "sid-1".into(),
        cf: [None, None, None],
        confirm_step: false,
        reference: None,
    };
    c.bench_function("mint/memory_store", |b| {
        b.iter(|| rt.block_on(service.mint(black_box(&link))).unwrap())
    });
}

criterion_group!(benches, encryption, plaintext, jwt, mint);
criterion_main!(benches);
