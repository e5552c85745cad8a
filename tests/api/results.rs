//! The results loop against a fake ARGOS (wiremock): webhooks, pull-verification, service
//! routes, sid sources, signed callbacks.

use crate::helpers::*;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The results tests' gateway: [`argos_env_with`] with an ID-check API key too.
async fn env_with(tweak: impl FnOnce(&mut faceauth_gateway::Settings)) -> ArgosEnv {
    argos_env_with(|s| {
        s.argos.idcheck_api_key = Some(SecretString::from("idcheck-key-for-tests"));
        tweak(s);
    })
    .await
}

async fn env() -> ArgosEnv {
    env_with(|_| {}).await
}

fn verify_callback_signature(header: &str, body: &[u8]) {
    // An independent HMAC (OpenSSL), not the crate's helper.
    let t = header
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap();
    let v1 = header
        .split(',')
        .find_map(|p| p.strip_prefix("v1="))
        .unwrap();
    let key = openssl::pkey::PKey::hmac(CALLBACK_SECRET.as_bytes()).unwrap();
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
    signer.update(t.as_bytes()).unwrap();
    signer.update(b".").unwrap();
    signer.update(body).unwrap();
    assert_eq!(hex::encode(signer.sign_to_vec().unwrap()), v1);
    let t: i64 = t.parse().unwrap();
    assert!((now_secs() - t).abs() < 300);
    // The official Stripe library accepts it (Stripe's scheme, our header name).
    if webhook_libraries() {
        reference_verify(
            "stripe",
            CALLBACK_SECRET,
            &[("faceauth-signature", header)],
            body,
        )
        .unwrap();
    }
    // The crate's public helper agrees.
    faceauth_gateway::callbacks::verify_signature(
        CALLBACK_SECRET.as_bytes(),
        header,
        body,
        300,
        now_secs() as u64,
    )
    .unwrap();
}

#[tokio::test]
async fn webhook_pull_verification_step_up_and_signed_callback() {
    let ArgosEnv {
        app,
        argos,
        receiver,
    } = env().await;
    let jwt = user_jwt("amelie");
    let id = app.mint_id(&jwt).await;
    assert_eq!(app.open(&id).await.status, 302);
    assert!(app.link_status(&jwt, &id).await.json()["result"].is_null());
    argos_says(
        &argos,
        "auth-1",
        "approved",
        "sid-of-amelie",
        &rfc3339_ago(30),
    )
    .await;

    let r = app.post_webhook(&webhook_body("auth-1", &id)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "accepted");

    eventually("the result is verified", || async {
        app.link_status(&jwt, &id).await.json()["result"] == "approved"
    })
    .await;
    let st = app.link_status(&jwt, &id).await.json();
    assert_eq!(st["auth_id"], "auth-1");
    assert!(st["verified_at"].as_str().unwrap().ends_with('Z'));

    let su = app.step_up("amelie", 300).await;
    assert_eq!(su["verified"], true);
    assert_eq!(su["link_id"], id.as_str());
    assert_eq!(su["auth_id"], "auth-1");
    // verified_at is ARGOS's create_time, kept no earlier than the link itself.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        app.step_up("amelie", 1).await["verified"],
        false,
        "older than max_age"
    );
    assert_eq!(app.step_up("nobody", 300).await["verified"], false);

    eventually("the callback arrives", || async {
        !receiver
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    })
    .await;
    let calls = receiver.received_requests().await.unwrap();
    let call = &calls[0];
    let header = call
        .headers
        .get("faceauth-signature")
        .unwrap()
        .to_str()
        .unwrap();
    verify_callback_signature(header, &call.body);
    assert!(
        call.headers.get("webhook-signature").is_none(),
        "callbacks.format = \"stripe\" (the default) sends no Standard Webhooks headers"
    );
    let event: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(event["type"], "step_up.completed");
    assert_eq!(event["user_id"], "amelie");
    assert_eq!(event["link_id"], id.as_str());
    assert_eq!(event["result"], "approved");
    assert_eq!(event["auth_id"], "auth-1");
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    assert!(event["created"].is_i64());
    app.assert_every_key_expires().await;
}

#[tokio::test]
async fn all_documented_shapes_odd_bytes_and_encrypted_envelopes() {
    let ArgosEnv { app, argos, .. } = env().await;
    let jwt = user_jwt("bruno");
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, make) in [
        // (a) older shape: trigger and auth_id at the top level (no token: not correlated).
        |a: &str, _t: &str| format!(r#"{{"webhook_trigger":"faceAuth","auth_id":"{a}","data":{{"submission_id":"s","auth_status":"approved","user_id":"u"}}}}"#).into_bytes(),
        // (b) intermediate shape, odd spacing and casing.
        |a: &str, t: &str| format!("{{ \"Authentication_id\" :\n\t\"{a}\" , \"data\" : {{ \"Submission_id\":\"s\", \"Auth_Status\":\"approved\", \"TOKEN_ID\" : \"{t}\" }} }}").into_bytes(),
        // (c) current shape with unicode escapes in the values.
        |a: &str, t: &str| {
            let escaped: String = t.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
            format!(r#"{{"webhook_trigger":"face\u0041uth","data":{{"Token_id":"{escaped}","Authentication_id":"{a}","Auth_Status":"approved"}}}}"#).into_bytes()
        },
    ]
    .iter()
    .enumerate()
    {
        let id = app.mint_id(&jwt).await;
        assert_eq!(app.open(&id).await.status, 302);
        let auth = format!("shape-{i}");
        argos_says(&argos, &auth, "approved", "sid-of-bruno", &rfc3339_ago(5)).await;
        bodies.push((id.clone(), make(&auth, &id)));
    }
    // Encrypted envelopes (AES-256-CBC, key SHA-256(API key), zero IV) made with OpenSSL.
    for (i, wrap) in [
        |b64: &str| format!(r#"{{"data":"{b64}"}}"#),
        |b64: &str| format!(r#"{{"response":{{"body":"{b64}"}}}}"#),
    ]
    .iter()
    .enumerate()
    {
        let id = app.mint_id(&jwt).await;
        assert_eq!(app.open(&id).await.status, 302);
        let auth = format!("enc-{i}");
        argos_says(&argos, &auth, "approved", "sid-of-bruno", &rfc3339_ago(5)).await;
        let key = openssl::sha::sha256(app.api_key.as_bytes());
        let ct = openssl::symm::encrypt(
            openssl::symm::Cipher::aes_256_cbc(),
            &key,
            Some(&[0u8; 16]),
            &webhook_body(&auth, &id),
        )
        .unwrap();
        bodies.push((id, wrap(&openssl::base64::encode_block(&ct)).into_bytes()));
    }
    for (i, (_, body)) in bodies.iter().enumerate() {
        let r = app.post_webhook(body).await;
        assert_eq!(
            r.status,
            200,
            "{}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        // Shape (a) has no Token_id: acknowledged, but there is no link to attach it to.
        let expected = if i == 0 { "ignored" } else { "accepted" };
        assert_eq!(r.json()["status"], expected);
    }
    // (a) carries no token: nothing to correlate. The others get their result.
    for (i, (id, _)) in bodies.iter().enumerate().skip(1) {
        eventually(&format!("body {i} verified"), || async {
            app.link_status(&jwt, id).await.json()["result"] == "approved"
        })
        .await;
    }
    assert!(app.link_status(&jwt, &bodies[0].0).await.json()["result"].is_null());

    // Malformed and undecryptable bodies are 400, unknown triggers are acknowledged.
    app.post_webhook(b"not json")
        .await
        .assert_problem(400, "bad_request");
    app.post_webhook(br#"{"data":"AAAAAAAAAAAAAAAAAAAAAA=="}"#)
        .await
        .assert_problem(400, "bad_request");
    let r = app
        .post_webhook(br#"{"webhook_trigger":"aml_monitor","submission_id":"s"}"#)
        .await;
    assert_eq!(r.json()["status"], "ignored");
    let r = app.post_webhook(br#"{"webhook_trigger":"token_expired","token_id":"t","expired_condition":"count","service":"faceAuth","expired_at":"2026-11-29T00:00:00Z"}"#)
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn redelivery_changes_nothing_and_the_api_decides() {
    let ArgosEnv { app, argos, .. } = env().await;
    let jwt = user_jwt("carla");
    // The webhook claims approved; ARGOS's API says rejected.
    let id = app.mint_id(&jwt).await;
    assert_eq!(app.open(&id).await.status, 302);
    argos_says(
        &argos,
        "auth-r",
        "rejected",
        "sid-of-carla",
        &rfc3339_ago(5),
    )
    .await;
    assert_eq!(
        app.post_webhook(&webhook_body("auth-r", &id)).await.json()["status"],
        "accepted"
    );
    eventually("rejected", || async {
        app.link_status(&jwt, &id).await.json()["result"] == "rejected"
    })
    .await;
    assert_eq!(app.step_up("carla", 3600).await["verified"], false);

    // Redelivery: 200, nothing fetched again, nothing changes.
    let fetched = argos.received_requests().await.unwrap().len();
    for _ in 0..3 {
        let r = app.post_webhook(&webhook_body("auth-r", &id)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["status"], "duplicate");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(argos.received_requests().await.unwrap().len(), fetched);
    assert_eq!(
        app.link_status(&jwt, &id).await.json()["result"],
        "rejected"
    );

    // ARGOS approved, but against another submission than the link's sid: not a pass.
    let other = app.mint_id(&jwt).await;
    assert_eq!(app.open(&other).await.status, 302);
    argos_says(
        &argos,
        "auth-x",
        "approved",
        "someone-elses-sid",
        &rfc3339_ago(5),
    )
    .await;
    app.post_webhook(&webhook_body("auth-x", &other)).await;
    eventually("mismatch rejected", || async {
        app.link_status(&jwt, &other).await.json()["result"] == "rejected"
    })
    .await;
    assert_eq!(app.step_up("carla", 3600).await["verified"], false);

    // Approved for a link that was never opened (its FaceAuth URL was never handed out), with
    // a create_time far in the future: not a pass, and the record stays readable.
    let unopened = app.mint_id(&jwt).await;
    Mock::given(method("GET"))
        .and(path("/v3/faceauth"))
        .and(query_param("authId", "auth-future"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([{"auth_id": "auth-future",
            "auth_status": "approved", "create_time": "9999-12-31T23:59:59.999Z",
            "kyc_submission_id": "sid-of-carla"}])),
        )
        .mount(&argos)
        .await;
    app.post_webhook(&webhook_body("auth-future", &unopened))
        .await;
    eventually("never-opened link rejected", || async {
        app.link_status(&jwt, &unopened).await.json()["result"] == "rejected"
    })
    .await;
    let st = app.link_status(&jwt, &unopened).await.json();
    let verified_at = time::OffsetDateTime::parse(
        st["verified_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        verified_at <= time::OffsetDateTime::now_utc(),
        "clamped to now"
    );
    assert_eq!(app.step_up("carla", 3600).await["verified"], false);
}

#[tokio::test]
async fn argos_down_then_up_and_a_gateway_restart_lose_nothing() {
    let ArgosEnv { app, argos, .. } = env().await;
    let jwt = user_jwt("dora");
    let id = app.mint_id(&jwt).await;
    assert_eq!(app.open(&id).await.status, 302);
    Mock::given(method("GET"))
        .and(path("/v3/faceauth"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&argos)
        .await;
    assert_eq!(
        app.post_webhook(&webhook_body("auth-d", &id)).await.status,
        200
    );
    eventually("ARGOS asked", || async {
        !argos
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    })
    .await;
    assert!(
        app.link_status(&jwt, &id).await.json()["result"].is_null(),
        "null while unverified"
    );
    assert!(
        app.keys()
            .await
            .iter()
            .any(|k| k.contains("{q:verify}:jobs")),
        "the pending work is in Redis"
    );

    // The gateway stops; a new one (same Redis) starts while ARGOS recovers.
    app.stop().await;
    argos.reset().await;
    argos_says(&argos, "auth-d", "approved", "sid-of-dora", &rfc3339_ago(5)).await;
    let prefix = app.prefix.clone();
    let api_key = app.api_key.clone();
    let argos_uri = argos.uri();
    let restarted = spawn_app_with(|s| {
        s.store.key_prefix = prefix;
        s.argos.api_key = Some(SecretString::from(api_key));
        s.argos.api_base_url = argos_uri.parse().unwrap();
        s.argos.api_retries = 0;
        s.verify.poll_interval_ms = 100;
    })
    .await;
    eventually("verified after restart", || async {
        restarted.link_status(&jwt, &id).await.json()["result"] == "approved"
    })
    .await;
}

#[tokio::test]
async fn webhook_receiver_refuses_wrong_secret_source_and_size() {
    let ArgosEnv { app, .. } = env().await;
    let id = app.mint_id(&user_jwt("emil")).await;
    let body = webhook_body("auth-w", &id);
    for secret in [
        "wrong",
        &PATH_SECRET[..PATH_SECRET.len() - 1],
        &format!("{PATH_SECRET}x"),
    ] {
        let r = app
            .send(
                app.post(&format!("/v1/webhooks/argos/{secret}"))
                    .body(body.clone()),
            )
            .await;
        r.assert_problem(404, "not_found");
    }
    let r = app
        .send(app.get(&format!("/v1/webhooks/argos/{PATH_SECRET}")))
        .await;
    r.assert_problem(404, "not_found");
    let big = vec![b' '; 1024 * 1024 + 10];
    app.post_webhook(&big)
        .await
        .assert_problem(413, "payload_too_large");
    assert!(!app.keys().await.iter().any(|k| k.contains("{q:verify}")));

    // The documented ARGOS address only (the default): a local sender is refused.
    let strict = env_with(|s| {
        s.webhooks.allowed_ips = vec!["52.78.194.237/32".parse().unwrap()];
    })
    .await;
    strict
        .app
        .post_webhook(&body)
        .await
        .assert_problem(404, "not_found");
    // Behind a trusted proxy, the forwarded ARGOS address is accepted.
    let proxied = env_with(|s| {
        s.webhooks.allowed_ips = vec!["52.78.194.237/32".parse().unwrap()];
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let r = proxied
        .app
        .send(
            proxied
                .app
                .client
                .post(
                    proxied
                        .app
                        .url(&format!("/v1/webhooks/argos/{PATH_SECRET}")),
                )
                .header("x-forwarded-for", "52.78.194.237")
                .body(body.clone()),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn service_routes_scopes_and_credential_separation() {
    let ArgosEnv { app, .. } = env_with(|s| {
        s.sid.sources = vec![faceauth_gateway::config::SidSource::Store];
    })
    .await;
    let write = service_jwt("faceauth:links:write");
    let read = service_jwt("faceauth:status:read");
    let user = user_jwt("fritz");

    // No sid yet for this user.
    let r = app.service_mint(&write, "fritz").await;
    r.assert_problem(422, "no_submission");
    // Record it, then mint with cf values, default confirm step and a reference.
    let r = app
        .send(
            app.client
                .put(app.url("/v1/users/fritz/submission"))
                .bearer_auth(&write)
                .json(&json!({"sid": "sid-fritz-77"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = app
        .send(
            app.post("/v1/users/fritz/links")
                .bearer_auth(&write)
                .json(&json!({"authCf2": "sms", "reference": "order-42"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let minted = r.json();
    assert_eq!(
        minted["confirm_step"], true,
        "message delivery defaults to the confirm step"
    );
    assert_eq!(minted["reference"], "order-42");
    let id = minted["id"].as_str().unwrap();
    let post = app.send(app.post(&format!("/l/{id}"))).await;
    assert_eq!(post.status, 303);
    let params = decrypt_location(&app, &post.location());
    assert_eq!(get(&params, "sid"), Some("sid-fritz-77"));
    assert_eq!(get(&params, "authUserId"), Some("fritz"));
    assert_eq!(get(&params, "authCf2"), Some("sms"));

    // Status: the service (read scope) and the owner; not the write-only service.
    let by_service = app.link_status(&read, id).await;
    assert_eq!(by_service.status, 200);
    assert_eq!(by_service.json()["reference"], "order-42");
    app.link_status(&write, id)
        .await
        .assert_problem(403, "insufficient_scope");
    let by_owner = app.link_status(&user_jwt("fritz"), id).await;
    assert_eq!(by_owner.status, 200);

    // Credentials do not cross: user tokens on service routes, service tokens on user routes.
    app.service_mint(&user, "fritz")
        .await
        .assert_problem(401, "invalid_token");
    app.mint(&write).await.assert_problem(401, "invalid_token");
    app.send(
        app.get("/v1/users/fritz/step-up?max_age_secs=60")
            .bearer_auth(&write),
    )
    .await
    .assert_problem(403, "insufficient_scope");
    let r = app
        .send(
            app.get("/v1/users/fritz/step-up?max_age_secs=60")
                .bearer_auth(&read),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["verified"], false);
    app.send(app.get("/v1/users/fritz/step-up").bearer_auth(&read))
        .await
        .assert_problem(400, "bad_request");
    app.send(
        app.get("/v1/users/fritz/step-up?max_age_secs=-1")
            .bearer_auth(&read),
    )
    .await
    .assert_problem(400, "bad_request");

    // A token naming both audiences belongs to neither profile.
    let mut both = claims("fritz");
    both["aud"] = json!([AUDIENCE, SERVICE_AUDIENCE]);
    both["scope"] = "faceauth:links:write faceauth:status:read".into();
    let both = sign_hs256(&both);
    app.mint(&both).await.assert_problem(401, "invalid_token");
    app.service_mint(&both, "fritz")
        .await
        .assert_problem(401, "invalid_token");

    // Static API key (stored only as its SHA-256) grants both scopes; a wrong one does not.
    let r = app
        .send(
            app.post("/v1/users/fritz/links")
                .header("x-api-key", "static-service-key"),
        )
        .await;
    assert_eq!(r.status, 201);
    app.send(
        app.post("/v1/users/fritz/links")
            .header("x-api-key", "static-service-kez"),
    )
    .await
    .assert_problem(401, "invalid_token");

    // Bad bodies.
    let long_ref = "r".repeat(257);
    app.send(
        app.post("/v1/users/fritz/links")
            .bearer_auth(&write)
            .json(&json!({"reference": long_ref})),
    )
    .await
    .assert_problem(400, "bad_request");
    app.send(
        app.post("/v1/users/fritz/links")
            .bearer_auth(&write)
            .json(&json!({"sid": "client-chosen"})),
    )
    .await
    .assert_problem(400, "bad_request");
}

#[tokio::test]
async fn sid_from_argos_is_cached_and_approved_webhooks_feed_the_store() {
    let ArgosEnv { app, argos, .. } = env_with(|s| {
        s.sid.sources = vec![
            faceauth_gateway::config::SidSource::Store,
            faceauth_gateway::config::SidSource::Argos,
        ];
    })
    .await;
    Mock::given(method("GET"))
        .and(path("/v3/submission"))
        .and(query_param("userid", "gina"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": [
            {"submission_id": "sub-old", "created_at": "2025-01-01T00:00:00Z", "kyc": {"result": "approved"}},
            {"submission_id": "sub-new", "created_at": "2026-01-01T00:00:00Z", "kyc": {"result": "Approved"}},
            {"submission_id": "sub-rej", "created_at": "2026-06-01T00:00:00Z", "kyc": {"result": "rejected"}}
        ]})))
        .expect(1)
        .mount(&argos)
        .await;
    let mut c = claims("gina");
    c.as_object_mut().unwrap().remove("argos_sid");
    let jwt = sign_hs256(&c);
    for _ in 0..2 {
        let id = app.mint_id(&jwt).await;
        let params = decrypt_location(&app, &app.open(&id).await.location());
        assert_eq!(get(&params, "sid"), Some("sub-new"));
    }
    let requests = argos.received_requests().await.unwrap();
    let lookup = requests
        .iter()
        .find(|r| r.url.path() == "/v3/submission")
        .unwrap();
    assert_eq!(
        lookup.headers.get("x-api-key").unwrap().to_str().unwrap(),
        "idcheck-key-for-tests",
        "the ID Check project key"
    );

    // An ID Check `approved` webhook maps a user to a submission once ARGOS confirms it.
    Mock::given(method("GET"))
        .and(path("/v3/submission"))
        .and(query_param("submission_id", "sub-hook"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": [
            {"submission_id": "sub-hook", "userid": "hans", "kyc": {"result": "approved"}}
        ]})))
        .mount(&argos)
        .await;
    // Someone else's submission claimed for "hans": ignored.
    let r = app
        .post_webhook(
            br#"{"webhook_trigger":"approved","submission_id":"sub-hook","userid":"eve"}"#,
        )
        .await;
    assert_eq!(r.json()["status"], "ignored");
    let r = app.post_webhook(br#"{"webhook_trigger":"approved","submission_id":"sub-hook","userid":"hans","kyc_result":{"status":"approved"}}"#)
    .await;
    assert_eq!(r.json()["status"], "accepted");
    let mut c = claims("hans");
    c.as_object_mut().unwrap().remove("argos_sid");
    let id = app.mint_id(&sign_hs256(&c)).await;
    let params = decrypt_location(&app, &app.open(&id).await.location());
    assert_eq!(get(&params, "sid"), Some("sub-hook"));
}

#[tokio::test]
async fn callbacks_are_retried_until_delivered() {
    let ArgosEnv {
        app,
        argos,
        receiver,
    } = env().await;
    receiver.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let jwt = user_jwt("ines");
    let id = app.mint_id(&jwt).await;
    assert_eq!(app.open(&id).await.status, 302);
    argos_says(
        &argos,
        "auth-cb",
        "approved",
        "sid-of-ines",
        &rfc3339_ago(5),
    )
    .await;
    app.post_webhook(&webhook_body("auth-cb", &id)).await;
    eventually("delivered on the second attempt", || async {
        receiver.received_requests().await.unwrap_or_default().len() >= 2
    })
    .await;
    let calls = receiver.received_requests().await.unwrap();
    assert_eq!(
        calls[0].body, calls[1].body,
        "the same event, byte for byte"
    );
    for call in &calls {
        verify_callback_signature(
            call.headers
                .get("faceauth-signature")
                .unwrap()
                .to_str()
                .unwrap(),
            &call.body,
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received_requests().await.unwrap().len(),
        2,
        "no more after success"
    );
}

// ---- Issue 11: results you can trust (fresh, matched, ordered, exactly once, one clock) ----

/// ARGOS answers GET /v3/faceauth?authId=<auth_id> with this record (the newer shape).
async fn argos_record(argos: &MockServer, auth_id: &str, record: Value) {
    Mock::given(method("GET"))
        .and(path("/v3/faceauth"))
        .and(query_param("authId", auth_id))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
            "faceAuth_projectId": PROJECT_ID, "data": [record]
        }])))
        .mount(argos)
        .await;
}

async fn metrics_text(app: &TestApp) -> String {
    app.metrics().await
}

#[tokio::test]
async fn an_old_approval_replayed_on_an_opened_link_is_not_a_fresh_step_up() {
    let ArgosEnv {
        app,
        argos,
        receiver,
    } = env().await;
    let jwt = user_jwt("victim");
    let id = app.mint_id(&jwt).await;
    assert_eq!(app.open(&id).await.status, 302);
    // An approved FaceAuth of the victim from three years ago, attached to the fresh link.
    argos_says(
        &argos,
        "auth-ancient",
        "approved",
        "sid-of-victim",
        &rfc3339_ago(3 * 365 * 86_400),
    )
    .await;
    assert_eq!(
        app.post_webhook(&webhook_body("auth-ancient", &id))
            .await
            .json()["status"],
        "accepted"
    );
    eventually("judged", || async {
        app.link_status(&jwt, &id).await.json()["result"] == "rejected"
    })
    .await;
    let su = app.step_up("victim", 60).await;
    assert_eq!(su["verified"], false);
    assert!(su["auth_id"].is_null(), "not the user's step-up at all");
    // verified_at is ARGOS's time, never moved forward to the link's.
    let st = app.link_status(&jwt, &id).await.json();
    assert!(st["verified_at"].as_str().unwrap() < st["created_at"].as_str().unwrap());
    // The rejection is explained (metric) and the app is told (rejected callback).
    eventually("rejected callback", || async {
        receiver
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("auth-ancient"))
    })
    .await;
    assert!(metrics_text(&app)
        .await
        .contains(r#"faceauth_verification_rejections_total{reason="before_open"}"#));

    // The same user's fresh FaceAuth on a new link does pass.
    let fresh = app.mint_id(&jwt).await;
    assert_eq!(app.open(&fresh).await.status, 302);
    argos_says(
        &argos,
        "auth-fresh",
        "approved",
        "sid-of-victim",
        &rfc3339_ago(0),
    )
    .await;
    app.post_webhook(&webhook_body("auth-fresh", &fresh)).await;
    eventually("fresh approval", || async {
        app.step_up("victim", 60).await["verified"] == true
    })
    .await;
}

#[tokio::test]
async fn a_record_without_a_submission_id_or_naming_another_user_is_not_approved() {
    let ArgosEnv { app, argos, .. } = env().await;
    let jwt = user_jwt("victor");
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let cases = [
        (
            "auth-nosid",
            json!({"auth_id": "auth-nosid", "auth_status": "approved", "create_time": now}),
        ),
        (
            "auth-otheruser",
            json!({"auth_id": "auth-otheruser", "auth_status": "approved", "create_time": now,
            "kyc_submission_id": "sid-of-victor", "auth_user_id": "mallory"}),
        ),
        (
            "auth-notime",
            json!({"auth_id": "auth-notime", "auth_status": "approved",
            "kyc_submission_id": "sid-of-victor"}),
        ),
    ];
    for (auth, record) in cases {
        let id = app.mint_id(&jwt).await;
        assert_eq!(app.open(&id).await.status, 302);
        argos_record(&argos, auth, record).await;
        app.post_webhook(&webhook_body(auth, &id)).await;
        eventually(auth, || async {
            app.link_status(&jwt, &id).await.json()["result"] == "rejected"
        })
        .await;
    }
    assert_eq!(app.step_up("victor", 3600).await["verified"], false);
    let text = metrics_text(&app).await;
    for reason in ["no_submission", "other_user", "no_time"] {
        assert!(
            text.contains(&format!(
                r#"faceauth_verification_rejections_total{{reason="{reason}"}}"#
            )),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn ten_concurrent_redeliveries_are_accepted_once() {
    let ArgosEnv { app, argos, .. } = env().await;
    let jwt = user_jwt("rita");
    let id = app.mint_id(&jwt).await;
    assert_eq!(app.open(&id).await.status, 302);
    argos_says(
        &argos,
        "auth-10",
        "approved",
        "sid-of-rita",
        &rfc3339_ago(0),
    )
    .await;
    let body = webhook_body("auth-10", &id);
    let answers = futures::future::join_all((0..10).map(|_| app.post_webhook(&body))).await;
    let mut statuses: Vec<String> = answers
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()["status"].as_str().unwrap().to_string()
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses[0], "accepted");
    assert!(
        statuses[1..].iter().all(|s| s == "duplicate"),
        "{statuses:?}"
    );
    eventually("verified", || async {
        app.link_status(&jwt, &id).await.json()["result"] == "approved"
    })
    .await;
}

#[tokio::test]
async fn argos_refusing_an_approved_confirmation_is_a_503_and_nothing_is_stored() {
    let ArgosEnv { app, argos, .. } = env_with(|s| {
        s.sid.sources = vec![faceauth_gateway::config::SidSource::Store];
    })
    .await;
    let body = br#"{"webhook_trigger":"approved","submission_id":"sub-ivy","userid":"ivy"}"#;
    let write = service_jwt("faceauth:links:write");
    for status in [403, 404, 500] {
        argos.reset().await;
        Mock::given(method("GET"))
            .and(path("/v3/submission"))
            .respond_with(ResponseTemplate::new(status))
            .mount(&argos)
            .await;
        app.post_webhook(body)
            .await
            .assert_problem(503, "store_unavailable");
        app.service_mint(&write, "ivy")
            .await
            .assert_problem(422, "no_submission");
    }
    // ARGOS confirms on the next delivery: the mapping is stored.
    argos.reset().await;
    Mock::given(method("GET"))
        .and(path("/v3/submission"))
        .and(query_param("submission_id", "sub-ivy"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": [
            {"submission_id": "sub-ivy", "userid": "ivy", "kyc": {"result": "approved"}}
        ]})))
        .mount(&argos)
        .await;
    assert_eq!(app.post_webhook(body).await.json()["status"], "accepted");
    let r = app.service_mint(&write, "ivy").await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test]
async fn one_ordering_rule_whatever_the_order_of_webhooks() {
    let ArgosEnv {
        app,
        argos,
        receiver,
    } = env().await;
    let jwt = user_jwt("otto");
    let older = app.mint_id(&jwt).await;
    assert_eq!(app.open(&older).await.status, 302);
    let newer = app.mint_id(&jwt).await;
    assert_eq!(app.open(&newer).await.status, 302);
    argos_says(
        &argos,
        "auth-older",
        "approved",
        "sid-of-otto",
        &rfc3339_ago(20),
    )
    .await;
    argos_says(
        &argos,
        "auth-newer",
        "approved",
        "sid-of-otto",
        &rfc3339_ago(2),
    )
    .await;
    // The newer FaceAuth is verified first, then the older one arrives.
    app.post_webhook(&webhook_body("auth-newer", &newer)).await;
    eventually("newer verified", || async {
        app.step_up("otto", 300).await["auth_id"] == "auth-newer"
    })
    .await;
    app.post_webhook(&webhook_body("auth-older", &older)).await;
    eventually("older verified", || async {
        app.link_status(&jwt, &older).await.json()["result"] == "approved"
    })
    .await;
    // Both links carry their own result; the step-up stays the later FaceAuth.
    let su = app.step_up("otto", 300).await;
    assert_eq!(su["auth_id"], "auth-newer");
    assert_eq!(su["link_id"], newer.as_str());
    // One callback per FaceAuth, each with its verified_at, so receivers can order them.
    eventually("two callbacks", || async {
        receiver.received_requests().await.unwrap_or_default().len() >= 2
    })
    .await;
    let events: Vec<Value> = receiver
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    let newer_event = events
        .iter()
        .find(|e| e["auth_id"] == "auth-newer")
        .unwrap();
    let older_event = events
        .iter()
        .find(|e| e["auth_id"] == "auth-older")
        .unwrap();
    assert!(older_event["verified_at"].as_str() < newer_event["verified_at"].as_str());
    assert_eq!(
        newer_event["verified_at"],
        app.link_status(&jwt, &newer).await.json()["verified_at"]
    );
}

#[tokio::test]
async fn a_poisoned_job_is_dead_lettered_while_later_jobs_are_delivered() {
    let ArgosEnv {
        app,
        argos,
        receiver,
    } = env().await;
    // Two poisoned callback jobs at the front of the queue: an unreadable entry and an
    // unreadable event body.
    let mut conn = redis::Client::open(app.redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let base = format!("{}{{q:callbacks}}", app.prefix);
    let _: () = redis::pipe()
        .hset(format!("{base}:jobs"), "evt_garbage", "{not json")
        .hset(
            format!("{base}:jobs"),
            "evt_badbody",
            json!({"b": "{not json", "c": 0, "t": 0, "f": 0, "k": "", "r": ""}).to_string(),
        )
        .zadd(format!("{base}:due"), "evt_garbage", 1)
        .zadd(format!("{base}:due"), "evt_badbody", 2)
        .pexpire(format!("{base}:jobs"), 600_000)
        .pexpire(format!("{base}:due"), 600_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let jwt = user_jwt("pia");
    let id = app.mint_id(&jwt).await;
    assert_eq!(app.open(&id).await.status, 302);
    argos_says(
        &argos,
        "auth-behind",
        "approved",
        "sid-of-pia",
        &rfc3339_ago(0),
    )
    .await;
    app.post_webhook(&webhook_body("auth-behind", &id)).await;
    eventually("the later job is delivered", || async {
        receiver
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("auth-behind"))
    })
    .await;
    let dead: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{base}:dead"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead.contains(&"evt_garbage".to_string()) && dead.contains(&"evt_badbody".to_string()));
    assert!(metrics_text(&app)
        .await
        .contains(r#"faceauth_jobs_dead_lettered_total{queue="callbacks"}"#));

    // The CLI lists them and puts one back.
    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("FACEAUTH__") {
                cmd.env_remove(k);
            }
        }
        cmd.env("FACEAUTH__STORE__REDIS_URL", &app.redis_url)
            .env("FACEAUTH__STORE__KEY_PREFIX", &app.prefix)
            .env("FACEAUTH__ARGOS__PROJECT_ID", PROJECT_ID)
            .env("FACEAUTH__ARGOS__FORM_URL", FORM_URL)
            .env("FACEAUTH__ARGOS__API_KEY", &app.api_key)
            .env("FACEAUTH__AUTH__ALGORITHMS", "[\"HS256\"]")
            .env("FACEAUTH__AUTH__HS256_SECRET", HS_SECRET)
            .env("FACEAUTH__AUTH__ISSUER", ISSUER)
            .env("FACEAUTH__AUTH__AUDIENCE", AUDIENCE);
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, listed) = cli(&["jobs", "list"]);
    assert_eq!(code, Some(0));
    let lines: Vec<Vec<&str>> = listed.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines
            .iter()
            .all(|l| l[0] == "callbacks" && l[4] == "unreadable"),
        "{listed}"
    );
    let (code, _) = cli(&["jobs", "retry", "--queue", "callbacks", "evt_badbody"]);
    assert_eq!(code, Some(0));
    let (code, _) = cli(&["jobs", "retry", "--queue", "verify", "evt_badbody"]);
    assert_eq!(code, Some(2), "not dead-lettered in that queue");
    // Retried, still unreadable: back in the dead-letter set, never blocking anything.
    eventually("dead-lettered again", || async {
        let (_, listed) = cli(&["jobs", "list", "--queue", "callbacks"]);
        listed.lines().count() == 2
    })
    .await;
}

/// A handler that panics on the first attempt of job `panic-once`, and records what it did.
#[derive(Clone)]
struct Flaky {
    done: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    panicked: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl faceauth_gateway::queue::Handler for Flaky {
    async fn handle(
        &self,
        job: &faceauth_gateway::store::ClaimedJob,
        _now_ms: i64,
    ) -> Result<faceauth_gateway::queue::Step, faceauth_gateway::store::StoreError> {
        if job.member == "panic-once"
            && !self
                .panicked
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("injected panic in a job");
        }
        self.done.lock().unwrap().push(job.member.clone());
        Ok(faceauth_gateway::queue::Step::Done)
    }
}

#[tokio::test]
async fn a_worker_that_panics_once_keeps_serving() {
    use faceauth_gateway::metrics::METRICS;
    use faceauth_gateway::queue::{supervise, QueueName, WorkQueue};
    use std::sync::atomic::{AtomicU32, Ordering};
    let settings = test_settings();
    let store: std::sync::Arc<dyn faceauth_gateway::store::Store> = std::sync::Arc::new(
        faceauth_gateway::store::redis::RedisStore::connect_to(
            &test_target(),
            &settings.store.key_prefix,
            Duration::from_secs(2),
        )
        .await
        .unwrap(),
    );
    let queue = WorkQueue::new(store, QueueName::Verify, 60_000, &settings.verify);
    for member in ["panic-once", "next-1", "next-2"] {
        assert!(queue.push(member, "{}", None).await.unwrap());
    }
    let restarts = || METRICS.worker_restarts.with_label_values(&["verify"]).get();
    let before = restarts();
    let flaky = Flaky {
        done: Default::default(),
        panicked: Default::default(),
    };
    // The first round panics outright; later rounds work through the queue, where one job
    // panics once.
    let rounds = std::sync::Arc::new(AtomicU32::new(0));
    let worker = {
        let (queue, flaky, rounds) = (queue.clone(), flaky.clone(), rounds.clone());
        supervise(
            QueueName::Verify,
            Duration::from_millis(50),
            Duration::from_secs(30),
            move || {
                let (queue, flaky, rounds) = (queue.clone(), flaky.clone(), rounds.clone());
                async move {
                    if rounds.fetch_add(1, Ordering::SeqCst) == 0 {
                        panic!("injected panic in a round");
                    }
                    queue.run_round(&flaky).await
                }
            },
        )
    };
    eventually("every job done, the panicked one retried", || async {
        let done = flaky.done.lock().unwrap().clone();
        ["panic-once", "next-1", "next-2"]
            .iter()
            .all(|m| done.iter().any(|d| d == m))
    })
    .await;
    worker.abort();
    assert!(
        restarts() >= before + 2,
        "the round and the job panic are counted"
    );
    assert!(
        METRICS
            .worker_last_round
            .with_label_values(&["verify"])
            .get()
            > 0.0
    );
    assert!(queue.dead(10).await.unwrap().is_empty());
    let done = flaky.done.lock().unwrap().clone();
    assert_eq!(done.len(), 3, "each job done once: {done:?}");
}

#[tokio::test]
async fn settings_that_allow_an_argos_call_longer_than_the_lock_are_refused() {
    let mut s = test_settings();
    s.argos.api_timeout_ms = 30_000;
    s.argos.api_retries = 2;
    let err = faceauth_gateway::Application::build(s).await.err().unwrap();
    assert!(err.to_string().contains("verify.lock_ttl_secs"), "{err}");
    let mut s = test_settings();
    s.callbacks.timeout_ms = 60_000;
    assert!(s
        .validate()
        .unwrap_err()
        .to_string()
        .contains("verify.lock_ttl_secs"));
    // A longer lease makes both acceptable.
    s.verify.lock_ttl_secs = 120;
    s.argos.api_timeout_ms = 30_000;
    s.validate().unwrap();
}

/// `whsec_` secrets: base64 of 32 random bytes.
fn whsec() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A delivered callback's headers and body, after one verified FaceAuth.
async fn one_callback(env: &ArgosEnv, user: &str, auth: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let jwt = user_jwt(user);
    let id = env.app.mint_id(&jwt).await;
    assert_eq!(env.app.open(&id).await.status, 302);
    argos_says(
        &env.argos,
        auth,
        "approved",
        &format!("sid-of-{user}"),
        &rfc3339_ago(30),
    )
    .await;
    let r = env.app.post_webhook(&webhook_body(auth, &id)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    eventually("the callback arrives", || async {
        !env.receiver
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    })
    .await;
    let call = env.receiver.received_requests().await.unwrap().remove(0);
    let headers = call
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
        .collect();
    (headers, call.body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// `callbacks.format = "both"` during a rotation (`previous_secrets`): every attempt carries
/// both header sets with one signature per secret, and the reference Standard Webhooks
/// library and the official Stripe library each accept the delivery with the new and with the
/// old secret, and refuse it with another.
#[tokio::test]
async fn standard_webhooks_and_stripe_signatures_during_a_rotation() {
    let (new, old) = (whsec(), whsec());
    let env = env_with(|s| {
        s.callbacks.format = faceauth_gateway::config::CallbackFormat::Both;
        s.callbacks.secret = Some(SecretString::from(new.clone()));
        s.callbacks.previous_secrets = vec![SecretString::from(old.clone())];
    })
    .await;
    let (headers, body) = one_callback(&env, "rosa", "auth-rot-1").await;
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        header(&headers, "webhook-id"),
        event["id"].as_str().unwrap()
    );
    let t: i64 = header(&headers, "webhook-timestamp").parse().unwrap();
    assert!((now_secs() - t).abs() < 300);
    let sigs: Vec<&str> = header(&headers, "webhook-signature").split(' ').collect();
    assert_eq!(sigs.len(), 2, "one signature per secret");
    assert!(sigs.iter().all(|s| s.starts_with("v1,")));
    assert_eq!(
        header(&headers, "faceauth-signature")
            .matches("v1=")
            .count(),
        2
    );
    if !webhook_libraries() {
        return;
    }
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for secret in [&new, &old] {
        reference_verify("standard", secret, &refs, &body).unwrap();
        reference_verify("stripe", secret, &refs, &body).unwrap();
    }
    let other = whsec();
    assert!(reference_verify("standard", &other, &refs, &body).is_err());
    assert!(reference_verify("stripe", &other, &refs, &body).is_err());
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert!(reference_verify("standard", &new, &refs, &tampered).is_err());
}

/// `callbacks.format = "standard"`: only the Standard Webhooks headers; a secret that is not
/// `whsec_` base64 is refused at start-up naming the key; after a reload that drops the
/// previous secret, the old one no longer verifies.
#[tokio::test]
async fn standard_format_alone_and_a_reload_that_ends_the_rotation() {
    let mut bad = test_settings();
    bad.callbacks.url = Some("http://127.0.0.1:9/hook".into());
    bad.callbacks.secret = Some(SecretString::from(CALLBACK_SECRET));
    bad.callbacks.format = faceauth_gateway::config::CallbackFormat::Standard;
    let e = bad.validate().unwrap_err();
    assert_eq!(e.key, "callbacks.secret");
    assert!(!e.to_string().contains(CALLBACK_SECRET));

    let (new, old) = (whsec(), whsec());
    let env = env_with(|s| {
        s.callbacks.format = faceauth_gateway::config::CallbackFormat::Standard;
        s.callbacks.secret = Some(SecretString::from(new.clone()));
        s.callbacks.previous_secrets = vec![SecretString::from(old.clone())];
    })
    .await;
    // The rotation ends: the previous secret is dropped, applied without a restart.
    let mut next = env.app.settings.clone();
    next.callbacks.previous_secrets.clear();
    let restart = env.app.reloader.apply(next).await.unwrap();
    assert!(restart.is_empty(), "{restart:?}");
    let (headers, body) = one_callback(&env, "sven", "auth-rot-2").await;
    assert!(headers.iter().all(|(k, _)| k != "faceauth-signature"));
    assert_eq!(header(&headers, "webhook-signature").split(' ').count(), 1);
    if !webhook_libraries() {
        return;
    }
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    reference_verify("standard", &new, &refs, &body).unwrap();
    assert!(reference_verify("standard", &old, &refs, &body).is_err());
}

/// Rotating the webhook path secret and the Add-on API key: the previous path secret is
/// accepted beside the current one (nothing else is), and an envelope encrypted with the
/// previous Add-on key decrypts.
#[tokio::test]
async fn previous_path_secret_and_previous_add_on_key_are_accepted() {
    const OLD_PATH: &str = "wh_old_path_secret_0123456789abcdefghij";
    let old_key = format!("ak_old_{}", uuid::Uuid::new_v4().simple());
    let env = env_with(|s| {
        s.webhooks.previous_path_secret = Some(SecretString::from(OLD_PATH));
        s.argos.previous_api_key = Some(SecretString::from(old_key.clone()));
    })
    .await;
    let app = &env.app;
    let jwt = user_jwt("olga");
    let id = app.mint_id(&jwt).await;
    assert_eq!(app.open(&id).await.status, 302);
    argos_says(
        &env.argos,
        "auth-old-key",
        "approved",
        "sid-of-olga",
        &rfc3339_ago(30),
    )
    .await;
    let key = openssl::sha::sha256(old_key.as_bytes());
    let ct = openssl::symm::encrypt(
        openssl::symm::Cipher::aes_256_cbc(),
        &key,
        Some(&[0u8; 16]),
        &webhook_body("auth-old-key", &id),
    )
    .unwrap();
    let envelope = format!(r#"{{"data":"{}"}}"#, openssl::base64::encode_block(&ct));
    let post = |secret: &'static str, body: Vec<u8>| async move {
        app.send(
            app.post(&format!("/v1/webhooks/argos/{secret}"))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    };
    let r = post(OLD_PATH, envelope.clone().into_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "accepted");
    assert_eq!(
        post(PATH_SECRET, envelope.into_bytes()).await.json()["status"],
        "duplicate"
    );
    post("wh_some_other_secret_0123456789abcdefghij", b"{}".to_vec())
        .await
        .assert_problem(404, "not_found");
    eventually("the result is verified", || async {
        app.link_status(&jwt, &id).await.json()["result"] == "approved"
    })
    .await;
    // Without the previous Add-on key the same envelope does not decrypt.
    let mut next = app.settings.clone();
    next.argos.previous_api_key = None;
    next.webhooks.previous_path_secret = None;
    app.reloader.apply(next).await.unwrap();
    let ct = openssl::symm::encrypt(
        openssl::symm::Cipher::aes_256_cbc(),
        &key,
        Some(&[0u8; 16]),
        &webhook_body("auth-old-key-2", &id),
    )
    .unwrap();
    let envelope = format!(r#"{{"data":"{}"}}"#, openssl::base64::encode_block(&ct));
    post(PATH_SECRET, envelope.into_bytes())
        .await
        .assert_problem(400, "bad_request");
    post(OLD_PATH, b"{}".to_vec())
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn a_token_that_is_no_link_id_does_not_use_up_the_authentication_id() {
    let ArgosEnv { app, argos, .. } = env().await;
    let jwt = user_jwt("tomas");
    let id = app.mint_id(&jwt).await;
    assert_eq!(app.open(&id).await.status, 302);
    argos_says(
        &argos,
        "auth-tok",
        "approved",
        "sid-of-tomas",
        &rfc3339_ago(1),
    )
    .await;
    // A forged or mangled Token_id (ids are canonical lowercase UUID v4): ignored, and the
    // authentication id is not marked as seen...
    for bad in [id.to_uppercase(), "not-a-token".to_string()] {
        let r = app.post_webhook(&webhook_body("auth-tok", &bad)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["status"], "ignored", "{bad}");
    }
    // ...so the genuine delivery still counts.
    assert_eq!(
        app.post_webhook(&webhook_body("auth-tok", &id))
            .await
            .json()["status"],
        "accepted"
    );
    eventually("approved", || async {
        app.link_status(&jwt, &id).await.json()["result"] == "approved"
    })
    .await;
}

/// A failed `sid` lookup answers `503` and uses up nothing: the mint limit is checked before
/// the lookup but counted only with the record (issues 14 and 15).
#[tokio::test]
async fn a_failed_sid_lookup_does_not_use_up_the_mint_limit() {
    let ArgosEnv { app, argos, .. } = env_with(|s| {
        s.sid.sources = vec![faceauth_gateway::config::SidSource::Argos];
        s.limits.mint_per_user.limit = 2;
    })
    .await;
    let mut c = claims("ivo");
    c.as_object_mut().unwrap().remove("argos_sid");
    let jwt = sign_hs256(&c);
    let failing = Mock::given(method("GET"))
        .and(path("/v3/submission"))
        .respond_with(ResponseTemplate::new(500))
        .mount_as_scoped(&argos)
        .await;
    for _ in 0..3 {
        app.mint(&jwt)
            .await
            .assert_problem(503, "argos_unavailable");
    }
    drop(failing);
    Mock::given(method("GET"))
        .and(path("/v3/submission"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Items": [
            {"submission_id": "sub-ivo", "created_at": "2026-01-01T00:00:00Z", "kyc": {"result": "approved"}}
        ]})))
        .mount(&argos)
        .await;
    // The two mints of the window are still there; the third is refused before any lookup.
    assert_eq!(app.mint(&jwt).await.status, 201);
    assert_eq!(app.mint(&jwt).await.status, 201);
    let before = argos.received_requests().await.unwrap().len();
    app.mint(&jwt).await.assert_problem(429, "rate_limited");
    assert_eq!(argos.received_requests().await.unwrap().len(), before);
}
