//! The binary's support commands, run as a real process.

use crate::helpers::BIN;
use std::io::Write;
use std::process::{Command, Stdio};

fn run(args: &[&str], envs: &[(&str, &str)], stdin: &[u8]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("FACEAUTH__") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // A command that fails before reading its input (e.g. no key) closes stdin early.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const KEY: (&str, &str) = ("FACEAUTH__ARGOS__API_KEY", "TEST_API_KEY_0123456789");

#[test]
fn encrypt_matches_the_reference_vector() {
    let (code, out, _) = run(
        &["encrypt", "--mode", "ecb"],
        &[KEY],
        b"sid=sub123&authUserId=u1&token=tok_abcdefgh\n",
    );
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "/8XWJjHkMSal7QmB4ta9Sc9guBMlU4iRfEVNbL9pz2QzGyVHhCljzcGidAf+131x\n"
    );
}

#[test]
fn decrypt_accepts_plain_and_percent_encoded_values() {
    for input in [
        "kE5Pr66ltW4XCg4hiSZ6QMxSzJJVbX6VTh3qDNbdAiPhWjozhzc9/NIp8t5XJH5aJVoJZJFQPN32Vhcu4JkUXA==",
        "kE5Pr66ltW4XCg4hiSZ6QMxSzJJVbX6VTh3qDNbdAiPhWjozhzc9%2FNIp8t5XJH5aJVoJZJFQPN32Vhcu4JkUXA%3D%3D\n",
    ] {
        let (code, out, _) = run(&["decrypt", "--mode", "cbc"], &[KEY], input.as_bytes());
        assert_eq!(code, 0);
        assert_eq!(out, "{\"sid\":\"sub123\",\"authUserId\":\"u1\",\"token\":\"tok_abcdefgh\"}\n");
    }
}

#[test]
fn gcm_round_trips_through_the_cli_with_a_custom_key_variable() {
    let env = [("MY_KEY", "k-😀")];
    let (code, ct, _) = run(
        &["encrypt", "--mode", "gcm", "--api-key-env", "MY_KEY"],
        &env,
        b"hello",
    );
    assert_eq!(code, 0);
    let (code, pt, _) = run(
        &["decrypt", "--mode", "gcm", "--api-key-env", "MY_KEY"],
        &env,
        ct.as_bytes(),
    );
    assert_eq!(code, 0);
    assert_eq!(pt, "hello\n");
}

#[test]
fn crypto_commands_fail_cleanly() {
    let (code, _, err) = run(&["encrypt", "--mode", "ecb"], &[], b"x");
    assert_eq!(code, 2);
    assert!(err.contains("FACEAUTH__ARGOS__API_KEY"));
    let (code, out, err) = run(&["decrypt", "--mode", "ecb"], &[KEY], b"not base64!");
    assert_eq!(code, 2);
    assert!(out.is_empty() && err.contains("base64"));
}

#[test]
fn check_config_names_the_bad_key_and_redacts_secrets() {
    let (code, _, err) = run(&["check-config"], &[], b"");
    assert_eq!(code, 2);
    assert!(
        err.contains("argos.project_id") || err.contains("argos.api_key"),
        "{err}"
    );

    let base = [
        ("FACEAUTH__STORE__BACKEND", "memory"),
        ("FACEAUTH__ARGOS__PROJECT_ID", "p1"),
        ("FACEAUTH__ARGOS__API_KEY", "super-secret-add-on-key"),
        ("FACEAUTH__AUTH__ALGORITHMS", "[\"HS256\"]"),
        (
            "FACEAUTH__AUTH__HS256_SECRET",
            "hs-secret-0123456789abcdef0123456789",
        ),
        ("FACEAUTH__AUTH__ISSUER", "https://idp.test/"),
        ("FACEAUTH__AUTH__AUDIENCE", "gw"),
    ];
    let (code, out, err) = run(&["check-config"], &base, b"");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[REDACTED]"));
    assert!(!out.contains("super-secret-add-on-key") && !err.contains("super-secret"));
    assert!(!out.contains("hs-secret-0123"));
    assert!(out.contains("project_id = \"p1\""));

    let mut bad = base.to_vec();
    bad.push(("FACEAUTH__ARGOS__ENCRYPTION", "rot13"));
    let (code, _, err) = run(&["check-config"], &bad, b"");
    assert_eq!(code, 2);
    assert!(err.contains("argos.encryption"), "{err}");
}

#[test]
fn serve_refuses_bad_config_with_the_key_named() {
    let (code, _, err) = run(
        &["serve"],
        &[
            ("FACEAUTH__STORE__BACKEND", "memory"),
            ("FACEAUTH__ARGOS__PROJECT_ID", "p1"),
            ("FACEAUTH__ARGOS__API_KEY", ""),
        ],
        b"",
    );
    assert_eq!(code, 2);
    assert!(err.contains("argos.api_key"), "{err}");
}

#[test]
fn secrets_from_files_and_check_config_names_their_sources() {
    let dir = std::env::temp_dir().join(format!("fag-sec-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("api_key");
    std::fs::write(&key_file, "file-add-on-key-0123456789\n").unwrap();
    let cb_file = dir.join("callback_secret");
    std::fs::write(&cb_file, "callback-secret-from-a-file-0123456789\r\n").unwrap();
    let previous_file = dir.join("previous_callback_secrets");
    std::fs::write(
        &previous_file,
        "previous-callback-secret-one-0123456789\n\nprevious-callback-secret-two-0123456789\n",
    )
    .unwrap();
    let config = dir.join("gw.toml");
    std::fs::write(
        &config,
        format!(
            "[callbacks]\nurl = \"https://app.test/hook\"\nsecret_file = \"{}\"\n\
             previous_secrets_file = \"{}\"\n[webhooks]\npath_secret = \"config_file_path_secret_0123456789abcdef\"\n",
            cb_file.display(),
            previous_file.display()
        ),
    )
    .unwrap();
    let key_var = key_file.display().to_string();
    let env = [
        ("FACEAUTH__STORE__BACKEND", "memory"),
        ("FACEAUTH__ARGOS__PROJECT_ID", "p1"),
        ("FACEAUTH__ARGOS__API_KEY__FILE", key_var.as_str()),
        ("FACEAUTH__AUTH__ALGORITHMS", "[\"HS256\"]"),
        (
            "FACEAUTH__AUTH__HS256_SECRET",
            "hs-secret-0123456789abcdef0123456789",
        ),
        ("FACEAUTH__AUTH__ISSUER", "https://idp.test/"),
        ("FACEAUTH__AUTH__AUDIENCE", "gw"),
    ];
    let cfg = config.display().to_string();
    let (code, out, err) = run(&["check-config", "--config", &cfg], &env, b"");
    assert_eq!(code, 0, "{err}");
    for line in [
        format!("# argos.api_key: file {key_var} (FACEAUTH__ARGOS__API_KEY__FILE)"),
        format!(
            "# callbacks.secret: file {} (config file key callbacks.secret_file)",
            cb_file.display()
        ),
        format!(
            "# callbacks.previous_secrets: file {} (config file key callbacks.previous_secrets_file)",
            previous_file.display()
        ),
        format!("# webhooks.path_secret: config file {cfg}"),
        "# auth.hs256_secret: env FACEAUTH__AUTH__HS256_SECRET".to_string(),
        "# store.redis_url: default (config/default.toml)".to_string(),
        "# argos.idcheck_api_key: not set".to_string(),
    ] {
        assert!(out.lines().any(|l| l == line), "missing `{line}` in\n{out}");
    }
    assert!(
        out.contains("previous_secrets = [\n    \"[REDACTED]\",\n    \"[REDACTED]\",\n]"),
        "{out}"
    );
    for secret in [
        "file-add-on-key",
        "callback-secret-from",
        "previous-callback",
        "config_file_path_secret",
        "hs-secret-0123",
    ] {
        assert!(!out.contains(secret) && !err.contains(secret), "{secret}");
    }

    // Both a value and a file for one setting: refused, naming it.
    let mut both = env.to_vec();
    both.push(("FACEAUTH__ARGOS__API_KEY", "another-key"));
    let (code, _, err) = run(&["check-config"], &both, b"");
    assert_eq!(code, 2);
    assert!(err.contains("argos.api_key"), "{err}");
    // An unreadable file: refused, naming the setting and the path, never a value.
    let mut missing = env.to_vec();
    missing[2] = ("FACEAUTH__ARGOS__API_KEY_FILE", "/no/such/secret");
    let (code, _, err) = run(&["check-config"], &missing, b"");
    assert_eq!(code, 2);
    assert!(
        err.contains("argos.api_key_file") && err.contains("/no/such/secret"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_wrongly_typed_secret_is_named_but_never_echoed() {
    // One secret given where a list of secrets is expected: the error names the key and the
    // types, never the value.
    let leak = "cb_secret_must_not_be_echoed_0123456789abcdef";
    let (code, out, err) = run(
        &["check-config"],
        &[
            ("FACEAUTH__STORE__BACKEND", "memory"),
            ("FACEAUTH__ARGOS__PROJECT_ID", "p1"),
            ("FACEAUTH__ARGOS__API_KEY", "k1"),
            ("FACEAUTH__CALLBACKS__PREVIOUS_SECRETS", leak),
        ],
        b"",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("callbacks.previous_secrets"), "{err}");
    assert!(err.contains("a string"), "{err}");
    assert!(!err.contains(leak) && !out.contains(leak), "{err}");
}
