//! The OpenAPI document run against the server by a property-based API fuzzer: Schemathesis
//! (`pip install schemathesis`, command `st` or `schemathesis`) generates requests from
//! `GET /openapi.json`, valid and invalid, and checks every answer: no server error, a
//! documented status code, a documented content type, and a body matching the documented
//! schema. Runs when Schemathesis is installed; `.ci/run` installs it and sets
//! `FACEAUTH_E2E_REQUIRED=1`, which turns a missing fuzzer into a failure. Bounded: a fixed
//! number of examples per operation (`FACEAUTH_FUZZ_EXAMPLES`, default 25) and a fixed seed
//! (`FACEAUTH_FUZZ_SEED`), well under two minutes.

use crate::helpers::*;
use std::time::Duration;

const SERVICE_KEY: &str = "fuzz-service-key";

fn schemathesis() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| [dir.join("st"), dir.join("schemathesis")])
        .find(|p| {
            std::process::Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[tokio::test]
async fn the_openapi_document_holds_under_schemathesis() {
    let Some(st) = schemathesis() else {
        assert!(
            std::env::var("FACEAUTH_E2E_REQUIRED").is_err(),
            "Schemathesis (st) is not installed, and FACEAUTH_E2E_REQUIRED is set"
        );
        eprintln!("skipped: Schemathesis is not installed (pip install schemathesis)");
        return;
    };
    let app = spawn_app_with(|s| {
        s.auth.service.api_key_sha256 =
            vec![hex::encode(openssl::sha::sha256(SERVICE_KEY.as_bytes()))];
        // The erasure routes too (issue 19), not only their 403.
        s.auth.service.api_keys_may_erase = true;
        s.webhooks.path_secret = Some(secrecy::SecretString::from(
            "fuzz_webhook_path_secret_0123456789abcdef",
        ));
        s.webhooks.allowed_ips = vec!["127.0.0.1/32".parse().unwrap()];
        // Step-up assertions on, so the JWKS route answers its documented 200.
        let key = std::env::temp_dir().join(format!(
            "fag-fuzz-key-{}.pem",
            uuid::Uuid::new_v4().simple()
        ));
        let pem = openssl::pkey::PKey::generate_ed25519()
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        std::fs::write(&key, pem).unwrap();
        s.assertions.signing_key_file = key.to_str().unwrap().into();
        s.assertions.audience = "https://app.fuzz.test/api".into();
    })
    .await;
    let mut c = claims("fuzz-user");
    c["exp"] = serde_json::json!(now_secs() + 3600);
    let jwt = sign_hs256(&c);
    // Half of the generated user ids are this one, which has a submission: the service mint
    // then gets past `no_submission` to the rest of its logic.
    let seeded = app
        .send(
            app.client
                .put(app.url("/v1/users/fuzz-user/submission"))
                .header("x-api-key", SERVICE_KEY)
                .json(&serde_json::json!({"sid": "sid-of-fuzz-user"})),
        )
        .await;
    assert_eq!(seeded.status, 204);
    let dir = std::env::temp_dir().join(format!("fag-st-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("schemathesis.toml");
    // No probes with unexpected methods (their 405 answers are tested elsewhere and would
    // count as refused data in the mismatch statistics).
    std::fs::write(
        &config,
        r#"
[phases.coverage]
unexpected-methods = []

[dictionaries.users]
values = ["fuzz-user"]

[parameters]
"path.user_id" = { dictionary = "users", probability = 0.5 }
"#,
    )
    .unwrap();
    let examples = std::env::var("FACEAUTH_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let seed = std::env::var("FACEAUTH_FUZZ_SEED").unwrap_or_else(|_| "13".into());
    let report = dir.join("report");
    let run = tokio::process::Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--workers", "1", "--request-timeout", "15"])
        .args(["--generation-database", "none", "--no-color"])
        .args(["--header", &format!("Authorization: Bearer {jwt}")])
        .args(["--header", &format!("X-Api-Key: {SERVICE_KEY}")])
        .arg("--report-dir")
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", "")
        // Its cache (`.schemathesis/`) goes to the temporary directory, not the repository.
        .current_dir(&dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("Schemathesis ran longer than 4 minutes")
        .expect("Schemathesis did not run");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "Schemathesis found failures (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    // "Schema validation mismatch" lists operations whose valid-by-the-document requests were
    // mostly refused. `/l/{id}` is expected there and only there: Schemathesis reuses the ids of
    // links it minted, and a single-use link answers `410 link_used` once opened, which its
    // statistics count with the validation errors. Any other operation is a real mismatch.
    let mismatched: Vec<&str> = stdout
        .split("Schema validation mismatch:")
        .nth(1)
        .map(|block| {
            block
                .lines()
                .skip(1)
                .skip_while(|l| l.trim().is_empty())
                .take_while(|l| l.trim_start().starts_with("- "))
                .map(|l| l.trim_start().trim_start_matches("- "))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        mismatched.iter().all(|op| op.ends_with(" /l/{id}")),
        "the document's parameters are looser or stricter than the API: {mismatched:?}\n{stdout}"
    );
    assert!(
        stdout.contains("generated") && !stdout.contains("No operations"),
        "Schemathesis tested nothing:\n{stdout}"
    );
}
