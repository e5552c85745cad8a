//! End to end in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`)
//! drives the `demo` binary: the SPA button flow, the used-link page, the confirm-step page,
//! and the whole results loop: Fail, Pass and "Pass, but an old FaceAuth" on the stand-in form,
//! then what `/demo` shows (link result, step-up answer, verified callback). Runs when
//! chromedriver is installed; `.ci/run` installs it and sets `FACEAUTH_E2E_REQUIRED=1`, which
//! turns a missing browser into a failure. With `FACEAUTH_WRITE_SCREENSHOT=1` it writes
//! `docs/demo-after-pass.png` (the README's screenshot).

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{free_port, BIN};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<&'static str> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// Starts `faceauth-gateway demo`; returns the process, its base URL and the demo JWT.
fn start_demo() -> (Killed, String, String) {
    let mut child = Command::new(BIN)
        .args(["demo", "--bind", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut base = None;
    let mut jwt = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("faceauth-gateway demo listening on ") {
            base = Some(rest.trim().to_string());
        }
        if let Some(i) = line.find("Bearer ") {
            jwt = Some(line[i + 7..].trim_end_matches('\'').to_string());
        }
        if line.starts_with("Stop with") {
            break;
        }
    }
    (Killed(child), base.unwrap(), jwt.unwrap())
}

async fn browser(driver_port: u16) -> Client {
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     format!("--user-data-dir=/tmp/faceauth-e2e-{}", uuid::Uuid::new_v4().simple())]
        }
    }))
    .unwrap();
    let started = Instant::now();
    loop {
        match ClientBuilder::native()
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
        {
            Ok(c) => return c,
            Err(e) if started.elapsed() < Duration::from_secs(60) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver: {e}"),
        }
    }
}

async fn text_of(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn wait_for_url(c: &Client, part: &str) -> String {
    let started = Instant::now();
    loop {
        let url = c.current_url().await.unwrap().to_string();
        if url.contains(part) {
            return url;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stuck on {url}, wanted {part}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the text of `css` satisfies `ok`; returns it.
async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let text = text_of(c, css).await;
        if ok(&text) {
            return text;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{css}: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// From `/demo`: a new link, the stand-in form, the verdict button `button`, back on `/demo`.
/// Returns the link id.
async fn verdict(c: &Client, base: &str, button: &str) -> String {
    c.goto(&format!("{base}/demo")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_url(c, "/demo/form").await;
    let token = text_of(c, "#param-token").await;
    c.find(Locator::Id(button))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let started = Instant::now();
    while !c.current_url().await.unwrap().path().ends_with("/demo") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not back on /demo"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    token
}

#[tokio::test]
async fn demo_flow_and_confirm_step_in_headless_chromium() {
    let Some(driver) = chromedriver() else {
        assert!(
            std::env::var("FACEAUTH_E2E_REQUIRED").is_err(),
            "chromedriver is required here (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: chromedriver not installed");
        return;
    };
    let (_demo, base, jwt) = start_demo();
    let driver_port = free_port();
    let _driver = Killed(
        Command::new(driver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let c = browser(driver_port).await;

    // The SPA pattern: press the button, land on the stand-in FaceAuth form.
    c.goto(&format!("{base}/demo")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("go"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_url(&c, "/demo/form").await;
    assert_eq!(text_of(&c, "#param-sid").await, "demo-submission-0001");
    assert_eq!(text_of(&c, "#param-authUserId").await, "demo-user");
    let token = text_of(&c, "#param-token").await;
    assert_eq!(token.len(), 36, "{token}");
    assert_eq!(text_of(&c, "#pid").await, "demo-project");

    // Back on the app page, it polls the link's status: used.
    c.back().await.unwrap();
    c.goto(&format!("{base}/demo")).await.unwrap();
    let started = Instant::now();
    loop {
        let status = text_of(&c, "#status").await;
        if status.contains("used") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "status: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The same link again: the "already used" page.
    c.goto(&format!("{base}/l/{token}")).await.unwrap();
    let heading = text_of(&c, "h1").await;
    assert!(heading.contains("already been used"), "{heading}");

    // The confirm step: the page consumes nothing until its button is pressed.
    let http = reqwest::Client::new();
    let minted: Value = http
        .post(format!("{base}/v1/links"))
        .bearer_auth(&jwt)
        .json(&json!({"confirm_step": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = minted["url"].as_str().unwrap().to_string();
    let id = minted["id"].as_str().unwrap().to_string();
    c.goto(&url).await.unwrap();
    c.goto(&url).await.unwrap();
    let status: Value = http
        .get(format!("{base}/v1/links/{id}"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["state"], "issued",
        "viewing the confirm page consumed nothing"
    );
    c.find(Locator::Css("form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_url(&c, "/demo/form").await;
    assert_eq!(text_of(&c, "#param-token").await, id);
    c.goto(&url).await.unwrap();
    let heading = text_of(&c, "h1").await;
    assert!(heading.contains("already been used"), "{heading}");

    // The results loop. Fail first (a later rejection never clears an earlier approval, so the
    // step-up answer can read "not verified" only before any pass).
    let failed = verdict(&c, &base, "fail").await;
    wait_text(&c, "#link-call", |t| t.ends_with(&failed)).await;
    wait_text(&c, "#link-summary", |t| t == "used · FaceAuth rejected").await;
    wait_text(&c, "#callback-summary", |t| {
        t == "signature verified · rejected"
    })
    .await;
    assert_eq!(text_of(&c, "#callback-http").await, "200");
    assert!(text_of(&c, "#callback-body").await.contains(&failed));
    assert_eq!(text_of(&c, "#stepup-summary").await, "not verified");
    assert_eq!(
        text_of(&c, "#stepup-call").await,
        "GET /v1/users/demo-user/step-up?max_age_secs=300"
    );
    assert_eq!(text_of(&c, "#stepup-http").await, "200");

    // Pass: the link's result, the step-up answer and the callback all read approved.
    let passed = verdict(&c, &base, "pass").await;
    wait_text(&c, "#link-call", |t| t.ends_with(&passed)).await;
    wait_text(&c, "#link-summary", |t| t == "used · FaceAuth approved").await;
    wait_text(&c, "#stepup-summary", |t| t == "verified").await;
    assert!(text_of(&c, "#stepup-body").await.contains(&passed));
    wait_text(&c, "#callback-summary", |t| {
        t == "signature verified · approved"
    })
    .await;
    assert!(text_of(&c, "#callback-header")
        .await
        .starts_with("Faceauth-Signature: t="));
    if std::env::var("FACEAUTH_WRITE_SCREENSHOT").is_ok_and(|v| v == "1") {
        c.set_window_size(1100, 1650).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let png = c.screenshot().await.unwrap();
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/docs/demo-after-pass.png"),
            png,
        )
        .unwrap();
    }

    // Pass, but an old FaceAuth: rejected by the freshness rule; the earlier pass still counts.
    let old = verdict(&c, &base, "old").await;
    wait_text(&c, "#link-call", |t| t.ends_with(&old)).await;
    wait_text(&c, "#link-summary", |t| t == "used · FaceAuth rejected").await;
    wait_text(&c, "#callback-summary", |t| {
        t == "signature verified · rejected"
    })
    .await;
    assert_eq!(text_of(&c, "#stepup-summary").await, "verified");
    c.close().await.unwrap();
}
