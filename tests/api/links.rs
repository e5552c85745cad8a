//! The whole flow on real Redis, for every cipher and plaintext form.

use crate::helpers::*;
use faceauth_gateway::argos::crypto::Encryption;
use faceauth_gateway::argos::url::PlaintextFormat;
use faceauth_gateway::links::Expiry;
use std::time::Duration;

async fn full_flow(encryption: Encryption, plaintext: PlaintextFormat) {
    let app = spawn_app_with(|s| {
        s.argos.encryption = encryption;
        s.argos.plaintext = plaintext;
    })
    .await;
    let jwt = user_jwt("alice");
    let minted = app.mint(&jwt).await;
    assert_eq!(minted.status, 201, "{}", minted.text());
    let body = minted.json();
    let id = body["id"].as_str().unwrap();
    assert_eq!(body["url"], format!("https://gw.test/base/l/{id}"));
    assert_eq!(body["expiry"], "count");
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        minted.header("location").unwrap(),
        format!("/v1/links/{id}")
    );

    let opened = app.open(id).await;
    assert_eq!(opened.status, 302);
    assert_eq!(
        opened.header("referrer-policy").as_deref(),
        Some("no-referrer")
    );
    let params = decrypt_location(&app, &opened.location());
    let keys: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    if plaintext == PlaintextFormat::Query {
        assert_eq!(keys, ["sid", "authUserId", "authCf1", "token"]);
    }
    assert_eq!(get(&params, "sid"), Some("sid-of-alice"));
    assert_eq!(get(&params, "authUserId"), Some("alice"));
    assert_eq!(get(&params, "authCf1"), Some("alice@example.test"));
    assert_eq!(get(&params, "authCf3"), None);
    assert_eq!(get(&params, "token"), Some(id));

    app.open(id).await.assert_problem(410, "link_used");
    app.assert_every_key_expires().await;
}

#[tokio::test]
async fn flow_ecb_query() {
    full_flow(Encryption::Aes256Ecb, PlaintextFormat::Query).await;
}
#[tokio::test]
async fn flow_ecb_json() {
    full_flow(Encryption::Aes256Ecb, PlaintextFormat::Json).await;
}
#[tokio::test]
async fn flow_gcm_query() {
    full_flow(Encryption::Aes256Gcm, PlaintextFormat::Query).await;
}
#[tokio::test]
async fn flow_gcm_json() {
    full_flow(Encryption::Aes256Gcm, PlaintextFormat::Json).await;
}
#[tokio::test]
async fn flow_cbc_query() {
    full_flow(Encryption::Aes256Cbc, PlaintextFormat::Query).await;
}
#[tokio::test]
async fn flow_cbc_json() {
    full_flow(Encryption::Aes256Cbc, PlaintextFormat::Json).await;
}

#[tokio::test]
async fn start_mints_and_redirects_in_one_step() {
    let app = spawn_app().await;
    let r = app.start(&user_jwt("bob")).await;
    assert_eq!(r.status, 302);
    let params = decrypt_location(&app, &r.location());
    assert_eq!(get(&params, "authUserId"), Some("bob"));
    let token = get(&params, "token").unwrap().to_string();
    // The token is a link id, already used.
    app.open(&token).await.assert_problem(410, "link_used");
    let status = app.link_status(&user_jwt("bob"), &token).await;
    assert_eq!(status.status, 200);
    assert_eq!(status.json()["state"], "used");
    app.assert_every_key_expires().await;
}

#[tokio::test]
async fn start_without_credentials_is_401() {
    let app = spawn_app().await;
    let r = app.send(app.get("/v1/face-auth/start")).await;
    r.assert_problem(401, "missing_credentials");
    assert!(r.header("location").is_none());
}

#[tokio::test]
async fn time_based_link_window_starts_at_first_open() {
    let app = spawn_app_with(|s| {
        s.links.expiry = Expiry::Time;
        s.links.window_secs = 2;
    })
    .await;
    let jwt = user_jwt("carol");
    let minted = app.mint(&jwt).await;
    assert_eq!(minted.json()["expiry"], "time");
    let id = minted.json()["id"].as_str().unwrap().to_string();
    let status_url = app.url(&format!("/v1/links/{id}"));
    let st = app
        .send(app.client.get(&status_url).bearer_auth(&jwt))
        .await;
    assert_eq!(st.json()["state"], "issued");
    assert!(st.json()["opened_at"].is_null());

    let first = app.open(&id).await;
    assert_eq!(first.status, 302);
    let second = app.open(&id).await;
    assert_eq!(second.status, 302, "inside the window the link opens again");
    assert_eq!(
        get(&decrypt_location(&app, &second.location()), "token"),
        Some(id.as_str())
    );
    let st = app
        .send(app.client.get(&status_url).bearer_auth(&jwt))
        .await;
    assert_eq!(st.json()["state"], "opened");
    assert!(st.json()["opened_at"].is_string());

    tokio::time::sleep(Duration::from_millis(2300)).await;
    app.open(&id).await.assert_problem(410, "link_expired");
    let st = app
        .send(app.client.get(&status_url).bearer_auth(&jwt))
        .await;
    assert_eq!(st.json()["state"], "expired");
    app.assert_every_key_expires().await;
}

#[tokio::test]
async fn unopened_link_expires_after_its_ttl() {
    let app = spawn_app_with(|s| s.links.unopened_ttl_secs = 1).await;
    let id = app.mint_id(&user_jwt("dave")).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    app.open(&id).await.assert_problem(410, "link_expired");
    app.assert_every_key_expires().await;
}

#[tokio::test]
async fn head_never_consumes_and_never_reveals_the_url() {
    for expiry in [Expiry::Count, Expiry::Time] {
        let app = spawn_app_with(|s| s.links.expiry = expiry).await;
        let jwt = user_jwt("erin");
        let id = app.mint_id(&jwt).await;
        for _ in 0..3 {
            let r = app
                .send(app.client.head(app.url(&format!("/l/{id}"))))
                .await;
            assert_eq!(r.status, 200);
            assert!(r.header("location").is_none());
            assert!(r.body.is_empty());
        }
        let st = app.link_status(&jwt, &id).await;
        assert_eq!(st.json()["state"], "issued", "HEAD started nothing");
        assert_eq!(app.open(&id).await.status, 302);
        if expiry == Expiry::Count {
            let r = app
                .send(app.client.head(app.url(&format!("/l/{id}"))))
                .await;
            assert_eq!(r.status, 410);
            assert!(r.header("location").is_none());
        }
        app.assert_every_key_expires().await;
    }
}

#[tokio::test]
async fn browsers_get_a_human_page_with_the_same_status() {
    let app = spawn_app().await;
    let id = app.mint_id(&user_jwt("frank")).await;
    assert_eq!(app.open(&id).await.status, 302);
    let page = app
        .send(
            app.get(&format!("/l/{id}"))
                .header("accept", "text/html,application/xhtml+xml"),
        )
        .await;
    assert_eq!(page.status, 410);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text().contains("already been used"));
    let missing = app
        .send(app.get("/l/not-a-link").header("accept", "text/html"))
        .await;
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("Link not found"));
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404() {
    let app = spawn_app().await;
    for id in [
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".into(),
        uuid::Uuid::new_v4().to_string().to_uppercase(),
        uuid::Uuid::new_v4().simple().to_string(),
        "%2F%2Fevil.example".into(),
        "..%2F..%2Fetc%2Fpasswd".into(),
    ] {
        let r = app.open(&id).await;
        r.assert_problem(404, "link_not_found");
        assert!(r.header("location").is_none());
    }
}

#[tokio::test]
async fn no_open_redirect_whatever_the_path() {
    let app = spawn_app().await;
    for path in [
        "/l//evil.example/",
        "/l/\\evil.example",
        "/l/https://vendor.example@evil.example",
        "//evil.example/",
        "/l/%5Cevil.example",
    ] {
        let r = app
            .send(app.client.get(format!("{}{}", app.address, path)))
            .await;
        assert!(r.status == 404, "{path}: {}", r.status);
        assert!(r.header("location").is_none(), "{path} redirected");
    }
    // A real redirect always targets the configured form URL.
    let id = app.mint_id(&user_jwt("gina")).await;
    let loc = app.open(&id).await.location();
    assert!(loc.starts_with(&format!("{FORM_URL}?pid=")));
}

#[tokio::test]
async fn hostile_claim_values_come_back_byte_identical() {
    for plaintext in [PlaintextFormat::Query, PlaintextFormat::Json] {
        let app = spawn_app_with(|s| s.argos.plaintext = plaintext).await;
        // Control characters are refused in user ids and sids (the user-id grammar: see
        // jwt::hostile_hs256_tokens…); everything else comes back byte-identical.
        let nasty_user = "u&x=1+2%20 😀 Set-Cookie: a=b; \"q\" <x>";
        let nasty_sid = "sid=&%+ \u{1F600}";
        let nasty_mail = "a+b@example.test&token=forged";
        let mut c = claims(nasty_user);
        c["argos_sid"] = nasty_sid.into();
        c["email"] = nasty_mail.into();
        c["dept"] = "R&D / 研究".into();
        let jwt = sign_hs256(&c);
        let id = app.mint_id(&jwt).await;
        let r = app.open(&id).await;
        assert_eq!(r.status, 302);
        let params = decrypt_location(&app, &r.location());
        assert_eq!(get(&params, "authUserId"), Some(nasty_user));
        assert_eq!(get(&params, "sid"), Some(nasty_sid));
        assert_eq!(get(&params, "authCf1"), Some(nasty_mail));
        assert_eq!(get(&params, "authCf3"), Some("R&D / 研究"));
        assert_eq!(get(&params, "token"), Some(id.as_str()));
        assert_eq!(
            params.iter().filter(|(k, _)| k == "token").count(),
            1,
            "the token cannot be forged through a claim"
        );
        assert!(r.header("set-cookie").is_none());
        app.assert_every_key_expires().await;
    }
}

#[tokio::test]
async fn status_is_visible_to_the_owner_only() {
    let app = spawn_app().await;
    let alice = user_jwt("alice");
    let id = app.mint_id(&alice).await;
    let st = app.link_status(&alice, &id).await;
    assert_eq!(st.status, 200);
    let v = st.json();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["state"], "issued");
    assert_eq!(v["expiry"], "count");
    for key in ["created_at", "expires_at"] {
        assert!(
            v[key].as_str().unwrap().ends_with('Z'),
            "{key} is RFC 3339 UTC"
        );
    }
    let other = app.link_status(&user_jwt("mallory"), &id).await;
    other.assert_problem(404, "link_not_found");
    app.send(app.get(&format!("/v1/links/{id}")))
        .await
        .assert_problem(401, "missing_credentials");
}

#[tokio::test]
async fn token_without_sid_is_422_and_writes_nothing() {
    let app = spawn_app().await;
    let mut c = claims("nosid");
    c.as_object_mut().unwrap().remove("argos_sid");
    app.mint(&sign_hs256(&c))
        .await
        .assert_problem(422, "no_submission");
    let r = app.start(&sign_hs256(&c)).await;
    r.assert_problem(422, "no_submission");
    assert!(app.keys().await.is_empty());
}

#[tokio::test]
async fn bad_bodies_are_problems_and_write_nothing() {
    let app = spawn_app().await;
    let jwt = user_jwt("henry");
    for body in ["{", "[]", "{\"sid\":\"someone-elses\"}", "null", "\"x\""] {
        let r = app
            .send(
                app.mint_request(&jwt)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        r.assert_problem(400, "bad_request");
    }
    let big = vec![b' '; 17 * 1024];
    app.send(app.mint_request(&jwt).body(big))
        .await
        .assert_problem(413, "payload_too_large");
    assert!(app.keys().await.is_empty());
    // Empty object and empty body are fine.
    for body in ["", "{}", " {} "] {
        let r = app.send(app.mint_request(&jwt).body(body)).await;
        assert_eq!(r.status, 201, "{body:?}");
    }
    app.assert_every_key_expires().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    app.send(app.get("/nope"))
        .await
        .assert_problem(404, "not_found");
    let r = app.send(app.delete("/v1/links")).await;
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(r.header("allow").as_deref(), Some("POST"));
    let r = app.send(app.post("/healthz")).await;
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(r.header("allow").as_deref(), Some("GET, HEAD"));
    let r = app
        .send(
            app.client
                .put(app.url(&format!("/l/{}", uuid::Uuid::new_v4()))),
        )
        .await;
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(
        r.header("allow").as_deref(),
        Some("GET, HEAD, POST, OPTIONS")
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let h = app.send(app.get("/healthz")).await;
    assert_eq!(h.status, 200);
    let r = app.send(app.get("/readyz")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ready");
    assert!(r.header("x-request-id").is_some());
}

#[tokio::test]
async fn demo_routes_do_not_exist_outside_demo_mode() {
    let app = spawn_app().await;
    for p in [
        "/demo",
        "/demo/form?pid=x&encrypted=y",
        "/demo/argos/v3/faceauth?authId=x",
        "/demo/callbacks",
        "/demo/step-up",
    ] {
        app.send(app.get(p)).await.assert_problem(404, "not_found");
    }
    for p in ["/demo/form/verdict", "/demo/callbacks"] {
        app.send(app.post(p).body("verdict=pass"))
            .await
            .assert_problem(404, "not_found");
    }
}
