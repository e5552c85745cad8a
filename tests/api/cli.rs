//! The binary's support commands, run as a real process.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_faceauth-gateway");

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
    child.stdin.take().unwrap().write_all(stdin).unwrap();
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
