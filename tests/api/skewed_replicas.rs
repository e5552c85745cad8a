//! One clock domain: two real gateway processes on one Redis, one of them 90 s ahead under
//! libfaketime, give the same step-up answer and the same times (issue 11). Skipped, with a
//! message, when libfaketime is not installed (Debian: `apt-get install faketime`).

use crate::helpers::*;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PATH_SECRET: &str = "wh_skew_0123456789abcdefghijklmnopqrstuv";
const SERVICE_KEY: &str = "static-service-key-for-skew-test";

fn libfaketime() -> Option<String> {
    if let Ok(p) = std::env::var("FACEAUTH_LIBFAKETIME") {
        return Some(p);
    }
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .map(str::to_string)
}

struct Replica {
    child: Child,
    port: u16,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    fn start(prefix: &str, api_key: &str, argos: &str, faketime: Option<&str>) -> Replica {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve");
        for (k, _) in std::env::vars() {
            if k.starts_with("FACEAUTH__") {
                cmd.env_remove(k);
            }
        }
        cmd.env("RUST_LOG", "warn")
            .env("FACEAUTH__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("FACEAUTH__SERVER__METRICS_BIND", "")
            .env("FACEAUTH__STORE__REDIS_URL", redis_url())
            .env("FACEAUTH__STORE__KEY_PREFIX", prefix)
            .env("FACEAUTH__ARGOS__PROJECT_ID", PROJECT_ID)
            .env("FACEAUTH__ARGOS__FORM_URL", FORM_URL)
            .env("FACEAUTH__ARGOS__API_KEY", api_key)
            .env("FACEAUTH__ARGOS__API_BASE_URL", argos)
            .env("FACEAUTH__ARGOS__API_RETRIES", "0")
            .env("FACEAUTH__AUTH__ALGORITHMS", "[\"HS256\"]")
            .env("FACEAUTH__AUTH__HS256_SECRET", HS_SECRET)
            .env("FACEAUTH__AUTH__ISSUER", ISSUER)
            .env("FACEAUTH__AUTH__AUDIENCE", AUDIENCE)
            .env(
                "FACEAUTH__AUTH__SERVICE__API_KEY_SHA256",
                format!(
                    "[\"{}\"]",
                    hex::encode(openssl::sha::sha256(SERVICE_KEY.as_bytes()))
                ),
            )
            .env("FACEAUTH__WEBHOOKS__PATH_SECRET", PATH_SECRET)
            .env("FACEAUTH__WEBHOOKS__ALLOWED_IPS", "[\"127.0.0.1/32\"]")
            .env("FACEAUTH__VERIFY__POLL_INTERVAL_MS", "100")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(lib) = faketime {
            cmd.env("LD_PRELOAD", lib)
                .env("FAKETIME", "+90s")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_NO_CACHE", "1");
        }
        let child = cmd.spawn().unwrap();
        let replica = Replica { child, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "gateway did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        replica
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

async fn get_json(req: reqwest::RequestBuilder) -> (Value, String) {
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let date = res
        .headers()
        .get("date")
        .map(|d| d.to_str().unwrap().to_string())
        .unwrap_or_default();
    (res.json().await.unwrap(), date)
}

fn http_date(s: &str) -> time::OffsetDateTime {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s, format)
        .unwrap_or_else(|e| panic!("Date header {s}: {e}"))
        .assume_utc()
}

#[tokio::test]
async fn two_replicas_one_ninety_seconds_ahead_agree_on_step_up_and_times() {
    let Some(lib) = libfaketime() else {
        assert!(
            std::env::var("FACEAUTH_E2E_REQUIRED").is_err(),
            "libfaketime is required here (apt-get install faketime libfaketime)"
        );
        eprintln!(
            "SKIPPED two_replicas_one_ninety_seconds_ahead_agree_on_step_up_and_times: \
             libfaketime is not installed (apt-get install faketime)"
        );
        return;
    };
    if cluster_nodes().is_some() {
        eprintln!("SKIPPED skewed replicas: runs against a standalone Redis only");
        return;
    }
    let argos = MockServer::start().await;
    let prefix = random_prefix();
    let api_key = format!("ak_skew_{}", uuid::Uuid::new_v4().simple());
    let a = Replica::start(&prefix, &api_key, &argos.uri(), None);
    let b = Replica::start(&prefix, &api_key, &argos.uri(), Some(&lib));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Precondition: b's clock really is ahead (its HTTP Date header).
    let (_, date_a) = get_json(client.get(a.url("/healthz"))).await;
    let (_, date_b) = get_json(client.get(b.url("/healthz"))).await;
    let ahead = http_date(&date_b) - http_date(&date_a);
    eprintln!("replica b's clock is {ahead} ahead of replica a's");
    assert!(
        ahead >= time::Duration::seconds(60),
        "libfaketime did not take effect: {date_a} vs {date_b}"
    );

    // Mint on the skewed replica (a fresh JWT is accepted there), open on the other.
    let jwt = user_jwt("sven");
    let r = client
        .post(b.url("/v1/links"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = client.get(a.url(&format!("/l/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), 302);

    // The user does FaceAuth now (ARGOS's clock = the real one).
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    Mock::given(method("GET"))
        .and(path("/v3/faceauth"))
        .and(query_param("authId", "auth-skew"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
            "faceAuth_projectId": PROJECT_ID,
            "data": [{"auth_id": "auth-skew", "auth_status": "approved", "create_time": now,
                      "kyc_submission_id": "sid-of-sven"}]
        }])))
        .mount(&argos)
        .await;
    let webhook = format!(
        r#"{{"webhook_trigger":"faceAuth","data":{{"Token_id":"{id}","Authentication_id":"auth-skew","Auth_Status":"approved"}}}}"#
    );
    let r = client
        .post(b.url(&format!("/v1/webhooks/argos/{PATH_SECRET}")))
        .body(webhook)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let status = |replica: &Replica| {
        client
            .get(replica.url(&format!("/v1/links/{id}")))
            .bearer_auth(&jwt)
    };
    let started = Instant::now();
    loop {
        let (st, _) = get_json(status(&a)).await;
        if st["result"] == "approved" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not verified: {st}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let step_up = |replica: &Replica| {
        client
            .get(replica.url("/v1/users/sven/step-up?max_age_secs=60"))
            .header("x-api-key", SERVICE_KEY)
    };
    let (su_a, _) = get_json(step_up(&a)).await;
    let (su_b, _) = get_json(step_up(&b)).await;
    assert_eq!(su_a["verified"], true, "{su_a}");
    assert_eq!(su_a, su_b, "the same answer on both replicas");

    let (st_a, _) = get_json(status(&a)).await;
    let (st_b, _) = get_json(status(&b)).await;
    for field in [
        "created_at",
        "opened_at",
        "verified_at",
        "result",
        "auth_id",
    ] {
        assert_eq!(st_a[field], st_b[field], "{field}");
    }
    let t = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert!(t(&st_a["created_at"]) <= t(&st_a["opened_at"]));
    assert!(
        t(&st_a["opened_at"]) <= t(&st_a["verified_at"]),
        "verified_at is ARGOS's time, after the open: {st_a}"
    );
    assert_eq!(st_a["verified_at"], su_a["verified_at"]);
}
