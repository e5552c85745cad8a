//! Browser and app integration: the JWT from a cookie with cross-site checks, and CORS on
//! `/v1/*` (allowed and refused origins, preflights with and without credentials).

use crate::helpers::*;

const APP_ORIGIN: &str = "https://app.example";

async fn cookie_app(credentials: bool) -> TestApp {
    spawn_app_with(|s| {
        s.auth.cookie_name = "session".into();
        s.cors.allowed_origins = vec![APP_ORIGIN.into()];
        s.cors.allow_credentials = credentials;
    })
    .await
}

#[tokio::test]
async fn start_with_cookie_credentials_and_cross_site_checks() {
    let app = cookie_app(true).await;
    let jwt = user_jwt("cora");
    let start = |headers: &[(&str, String)]| {
        let mut req = app
            .get("/v1/face-auth/start")
            .header("cookie", format!("other=1; session={jwt}"));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        app.send(req)
    };
    // A navigation from the app's own pages, a typed URL, an allowed origin, a non-browser.
    for headers in [
        vec![("sec-fetch-site", "same-origin".to_string())],
        vec![("sec-fetch-site", "none".to_string())],
        vec![
            ("sec-fetch-site", "cross-site".to_string()),
            ("referer", format!("{APP_ORIGIN}/checkout?step=2")),
        ],
        vec![],
    ] {
        let r = start(&headers).await;
        assert_eq!(r.status, 302, "{headers:?}: {}", r.text());
        assert!(r.location().starts_with(FORM_URL));
    }
    // A link or form on another site.
    for headers in [
        vec![
            ("sec-fetch-site", "cross-site".to_string()),
            ("referer", "https://evil.example/".to_string()),
        ],
        vec![("sec-fetch-site", "cross-site".to_string())],
        vec![
            ("sec-fetch-site", "same-site".to_string()),
            ("origin", "https://sub.gw.test".to_string()),
        ],
        vec![("origin", "https://evil.example".to_string())],
        vec![("referer", "https://evil.example/page".to_string())],
    ] {
        let r = start(&headers).await;
        r.assert_problem(403, "cross_site_request");
        assert!(r.header("location").is_none());
    }
    // No cookie, no header: 401 as before.
    app.send(app.get("/v1/face-auth/start"))
        .await
        .assert_problem(401, "missing_credentials");
}

#[tokio::test]
async fn state_changing_routes_check_cookie_origins_and_the_header_wins() {
    let app = cookie_app(true).await;
    let jwt = user_jwt("dina");
    let mint = |origin: &str| {
        app.send(
            app.post("/v1/links")
                .header("cookie", format!("session={jwt}"))
                .header("origin", origin),
        )
    };
    assert_eq!(mint(APP_ORIGIN).await.status, 201);
    mint("https://evil.example")
        .await
        .assert_problem(403, "cross_site_request");
    // The bearer header wins over a (bad) cookie.
    let r = app
        .send(app.mint_request(&jwt).header("cookie", "session=garbage"))
        .await;
    assert_eq!(r.status, 201);
    // A bad cookie alone is an invalid token.
    app.send(app.post("/v1/links").header("cookie", "session=garbage"))
        .await
        .assert_problem(401, "invalid_token");
    // Cookies are read only when configured.
    let plain = spawn_app().await;
    plain
        .send(
            plain
                .post("/v1/links")
                .header("cookie", format!("session={jwt}")),
        )
        .await
        .assert_problem(401, "missing_credentials");
}

#[tokio::test]
async fn cors_allowed_and_refused_origins() {
    let app = cookie_app(true).await;
    let jwt = user_jwt("emma");
    // Preflight from the allowed origin, with credentials.
    let pre = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/links"))
        .header("origin", APP_ORIGIN)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, idempotency-key",
        )
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success(), "{}", pre.status());
    let h = pre.headers();
    assert_eq!(h["access-control-allow-origin"], APP_ORIGIN);
    assert_eq!(h["access-control-allow-credentials"], "true");
    let allowed_headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allowed_headers.contains("authorization") && allowed_headers.contains("idempotency-key")
    );
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert_eq!(h["access-control-max-age"], "600");
    // The actual request: allowed origin, exposed headers only what the client needs.
    let r = app
        .send(app.mint_request(&jwt).header("origin", APP_ORIGIN))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(APP_ORIGIN)
    );
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("location") && exposed.contains("ratelimit"));
    assert!(!exposed.contains("set-cookie"));
    // A preflight from another origin gets no CORS permission.
    let refused = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/links"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    assert!(
        !refused.status().is_success()
            || refused
                .headers()
                .get("access-control-allow-methods")
                .is_none()
    );
    // The refusal is a problem body like every other error.
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let p: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(p["code"], "bad_request");
    // /l/* is a navigation target: no CORS at all.
    let id = app.mint_id(&jwt).await;
    let r = app
        .send(app.get(&format!("/l/{id}")).header("origin", APP_ORIGIN))
        .await;
    assert_eq!(r.status, 302);
    assert!(r.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cors_preflight_without_credentials() {
    let app = cookie_app(false).await;
    let pre = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/links"))
        .header("origin", APP_ORIGIN)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success());
    assert_eq!(pre.headers()["access-control-allow-origin"], APP_ORIGIN);
    assert!(pre
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
}

#[test]
fn wildcard_origins_are_refused_with_credentials() {
    let mut s = test_settings();
    s.cors.allowed_origins = vec!["*".into()];
    s.cors.allow_credentials = true;
    assert_eq!(s.validate().unwrap_err().key, "cors.allowed_origins[0]");
    s.cors.allowed_origins = vec!["https://app.example/".into()];
    s.cors.allow_credentials = false;
    assert_eq!(s.validate().unwrap_err().key, "cors.allowed_origins[0]");
    s.cors.allowed_origins = vec!["*".into()];
    assert!(s.validate().is_ok());
    s.cors.allowed_origins = vec!["https://app.example".into(), "*".into()];
    assert_eq!(s.validate().unwrap_err().key, "cors.allowed_origins[1]");
}
