//! Configuration: layering, environment overrides and start-up validation naming the key.

use crate::helpers::*;
use faceauth_gateway::config::Settings;
use faceauth_gateway::startup::{Components, StartupError};
use faceauth_gateway::Application;
use jsonwebtoken::Algorithm;
use secrecy::{ExposeSecret, SecretString};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_match_the_documented_contract() {
    let s = Settings::load_from(None, env(&[])).unwrap();
    assert_eq!(s.server.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(s.server.public_base_url.as_str(), "http://127.0.0.1:8080/");
    assert_eq!(s.store.key_prefix, "faceauth:");
    assert_eq!(
        s.store.redis_url.as_ref().unwrap().expose_secret(),
        "redis://127.0.0.1:6379/0"
    );
    assert_eq!(
        s.argos.form_url.as_str(),
        "https://form.argosidentity.com/face-auth"
    );
    assert_eq!(s.argos.encryption.as_str(), "aes-256-ecb");
    assert_eq!(s.argos.plaintext.to_string(), "query");
    assert_eq!(s.links.expiry.as_str(), "count");
    assert_eq!(
        (
            s.links.window_secs,
            s.links.unopened_ttl_secs,
            s.links.retention_secs
        ),
        (600, 900, 86400)
    );
    assert_eq!(s.auth.leeway_secs, 30);
    assert_eq!(s.auth.user_id_claim, "sub");
    assert_eq!(s.auth.sid_claim, "argos_sid");
    assert!(s.argos.api_key.is_none() && s.argos.project_id.is_none());
}

#[test]
fn file_then_environment_override() {
    let dir = std::env::temp_dir().join(format!("fag-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gw.toml");
    std::fs::write(
        &file,
        "[argos]\nproject_id = \"from-file\"\nencryption = \"aes-256-gcm\"\n[links]\nwindow_secs = 42\n",
    )
    .unwrap();
    let s = Settings::load_from(
        Some(&file),
        env(&[
            ("FACEAUTH__ARGOS__PROJECT_ID", "00123"),
            ("FACEAUTH__ARGOS__API_KEY", "12345"),
            ("FACEAUTH__LINKS__EXPIRY", "time"),
            ("FACEAUTH__AUTH__ALGORITHMS", "[\"RS256\", \"PS256\"]"),
            ("FACEAUTH__AUTH__CF_CLAIMS__AUTHCF2", "123"),
            ("UNRELATED", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(
        s.argos.project_id.as_deref(),
        Some("00123"),
        "kept verbatim"
    );
    assert_eq!(s.argos.api_key.as_ref().unwrap().expose_secret(), "12345");
    assert_eq!(s.argos.encryption.as_str(), "aes-256-gcm", "from the file");
    assert_eq!(s.links.window_secs, 42);
    assert_eq!(s.links.expiry.as_str(), "time", "env wins");
    assert_eq!(s.auth.algorithms, vec![Algorithm::RS256, Algorithm::PS256]);
    assert_eq!(
        s.auth.cf_claims.get("authcf2").map(String::as_str),
        Some("123")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn parse_errors_name_the_key() {
    for (var, value, key) in [
        (
            "FACEAUTH__ARGOS__ENCRYPTION",
            "aes-128-xts",
            "argos.encryption",
        ),
        ("FACEAUTH__LINKS__EXPIRY", "sometimes", "links.expiry"),
        ("FACEAUTH__LINKS__WINDOW_SECS", "ten", "links.window_secs"),
        ("FACEAUTH__SERVER__BIND", "not an address", "server.bind"),
        (
            "FACEAUTH__AUTH__ALGORITHMS",
            "[\"XX999\"]",
            "auth.algorithms",
        ),
        ("FACEAUTH__STORE__KEY_PREFX", "typo:", "store.key_prefx"),
        ("FACEAUTH__NOPE__X", "1", "nope"),
    ] {
        let e = Settings::load_from(None, env(&[(var, value)])).unwrap_err();
        assert!(e.key.starts_with(key), "{var}: got key {} ({e})", e.key);
    }
    let e = Settings::load_from(Some(std::path::Path::new("/no/such/file.toml")), env(&[]))
        .unwrap_err();
    assert_eq!(e.key, "--config");
}

async fn startup_error(f: impl FnOnce(&mut Settings)) -> String {
    let mut s = test_settings();
    f(&mut s);
    match Components::build(&s).await {
        Ok(_) => panic!("expected a start-up error"),
        Err(StartupError::Config(e)) => {
            assert!(
                !e.to_string().contains("ak_test_"),
                "no secret in the message"
            );
            e.key
        }
        Err(other) => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn serve_refuses_to_start_naming_the_key() {
    assert_eq!(
        startup_error(|s| s.argos.api_key = None).await,
        "argos.api_key"
    );
    assert_eq!(
        startup_error(|s| s.argos.api_key = Some(SecretString::from("   "))).await,
        "argos.api_key"
    );
    assert_eq!(
        startup_error(|s| s.argos.project_id = None).await,
        "argos.project_id"
    );
    assert_eq!(
        startup_error(|s| s.auth.algorithms.clear()).await,
        "auth.algorithms"
    );
    assert_eq!(
        startup_error(|s| s.auth.algorithms = vec![Algorithm::HS256, Algorithm::RS256]).await,
        "auth.algorithms"
    );
    assert_eq!(
        startup_error(|s| s.auth.hs256_secret = None).await,
        "auth.hs256_secret"
    );
    assert_eq!(
        startup_error(|s| {
            s.auth.algorithms = vec![Algorithm::RS256];
            s.auth.public_key_pem = Some("/no/such/key.pem".into());
        })
        .await,
        "auth.public_key_pem"
    );
    assert_eq!(
        startup_error(|s| {
            s.auth.algorithms = vec![Algorithm::ES256];
            s.auth.public_key_pem =
                Some("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into());
        })
        .await,
        "auth.public_key_pem"
    );
    assert_eq!(startup_error(|s| s.auth.issuer = None).await, "auth.issuer");
    assert_eq!(
        startup_error(|s| s.auth.audience = Some("".into())).await,
        "auth.audience"
    );
    assert_eq!(
        startup_error(|s| {
            s.auth.cf_claims.insert("authCf9".into(), "x".into());
        })
        .await,
        "auth.cf_claims.authCf9"
    );
    assert_eq!(
        startup_error(|s| s.links.window_secs = 0).await,
        "links.window_secs"
    );
    assert_eq!(
        startup_error(|s| {
            s.store.redis_url = Some(SecretString::from("rediss://127.0.0.1:6379/0"))
        })
        .await,
        "store.redis_url"
    );
    assert_eq!(
        startup_error(|s| s.server.workers = 100_000).await,
        "server.workers"
    );
    assert_eq!(
        startup_error(|s| s.argos.form_url = "ftp://x.test/".parse().unwrap()).await,
        "argos.form_url"
    );
    assert_eq!(
        startup_error(|s| s.server.public_base_url = "https://gw.test/?a=b".parse().unwrap()).await,
        "server.public_base_url"
    );
}

#[tokio::test]
async fn unreachable_redis_fails_closed_at_start() {
    let mut s = test_settings();
    s.store.redis_url = Some(SecretString::from(format!(
        "redis://127.0.0.1:{}/0",
        free_port()
    )));
    s.store.timeout_ms = 300;
    // No waiting asked for: one attempt, then a store error.
    s.store.startup_wait_secs = 0;
    let started = std::time::Instant::now();
    assert!(matches!(
        Application::build(s).await,
        Err(StartupError::Store(_))
    ));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
