//! Erasure (issue 19) against a fake ARGOS (wiremock): `DELETE /v1/users/{user_id}/faceauth`
//! deletes the gateway's records at once and the user's FaceAuths at ARGOS in a durable job;
//! `GET /v1/erasures/{id}` reports them; nothing about the user stays in Redis.

use crate::helpers::*;
use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ERASE: &str = "faceauth:data:delete";

async fn argos_deletes(argos: &MockServer, auth_id: &str, answer: ResponseTemplate) {
    Mock::given(method("DELETE"))
        .and(path("/v3/faceauth"))
        .and(query_param("authId", auth_id))
        .respond_with(answer)
        .mount(argos)
        .await;
}

/// An approved ARGOS webhook in its shortest form, for `auth_id` on the link `token`.
fn approved_webhook(auth_id: &str, token: &str) -> String {
    format!(
        r#"{{"webhook_trigger":"faceAuth","data":{{"Auth_Status":"approved","Token_id":"{token}","Authentication_id":"{auth_id}"}}}}"#
    )
}

/// ARGOS approved `auth_id` for `user` 5 s ago, and its webhook for the link `token` is
/// accepted.
async fn argos_approves(app: &TestApp, argos: &MockServer, user: &str, auth_id: &str, token: &str) {
    argos_says(
        argos,
        auth_id,
        "approved",
        &format!("sid-of-{user}"),
        &rfc3339_ago(5),
    )
    .await;
    let r = app.post_webhook(approved_webhook(auth_id, token)).await;
    assert_eq!(r.json()["status"], "accepted");
}

/// A user with a verified FaceAuth on a freshly minted and opened link.
async fn verified_faceauth(env: &ArgosEnv, user: &str, auth_id: &str) -> String {
    let jwt = user_jwt(user);
    let id = env.app.mint_id(&jwt).await;
    assert_eq!(env.app.open(&id).await.status, 302);
    argos_approves(&env.app, &env.argos, user, auth_id, &id).await;
    eventually("the result is verified", || async {
        env.app.link_status(&jwt, &id).await.json()["auth_id"] == auth_id
    })
    .await;
    id
}

async fn erase(app: &TestApp, user: &str, credential: &str, body: Option<Value>) -> Resp {
    let mut req = app
        .delete(&format!("/v1/users/{user}/faceauth"))
        .bearer_auth(credential);
    if let Some(body) = body {
        req = req.json(&body);
    }
    app.send(req).await
}

async fn erasure(app: &TestApp, id: &str, credential: &str) -> Resp {
    app.send(
        app.get(&format!("/v1/erasures/{id}"))
            .bearer_auth(credential),
    )
    .await
}

/// Every key under the test's prefix with its content (strings, hashes, sets, sorted sets).
fn dump(app: &TestApp) -> Vec<(String, String)> {
    let mut conn = redis::Client::open(app.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> =
        redis::Commands::scan_match::<_, String>(&mut conn, format!("{}*", app.prefix))
            .unwrap()
            .collect();
    keys.into_iter()
        .map(|key| {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
            let content: Vec<String> = match kind.as_str() {
                "string" => vec![redis::cmd("GET").arg(&key).query(&mut conn).unwrap()],
                "hash" => redis::cmd("HGETALL").arg(&key).query(&mut conn).unwrap(),
                "set" => redis::cmd("SMEMBERS").arg(&key).query(&mut conn).unwrap(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query(&mut conn)
                    .unwrap(),
                _ => vec![],
            };
            (key, content.join("\n"))
        })
        .collect()
}

fn tag(user: &str) -> String {
    faceauth_gateway::store::user_tag(user)
}

fn auth_hash(auth_id: &str) -> String {
    hex::encode(&openssl::sha::sha256(auth_id.as_bytes())[..16])
}

/// The gateway holds nothing about `user` (by user id, user tag, link id, authentication id or
/// its hash) except the erasure's own keys.
fn assert_nothing_about(app: &TestApp, user: &str, erasure_id: &str, traces: &[&str]) {
    let allowed = [
        format!("{}erased:{{{}}}", app.prefix, tag(user)),
        format!("{}erasure:{{{}}}:{erasure_id}", app.prefix, tag(user)),
        format!("{}erasure:{{{erasure_id}}}", app.prefix),
    ];
    let tag = tag(user);
    let mut needles: Vec<String> = vec![user.to_string(), tag];
    for t in traces {
        needles.push(t.to_string());
        needles.push(auth_hash(t));
    }
    for (key, content) in dump(app) {
        if allowed.contains(&key) {
            continue;
        }
        for needle in &needles {
            assert!(
                !key.contains(needle.as_str()) && !content.contains(needle.as_str()),
                "key {key} still holds {needle:?}: {content}"
            );
        }
    }
}

#[tokio::test]
async fn erasure_deletes_every_faceauth_at_argos_and_everything_in_the_gateway() {
    let env = argos_env().await;
    let ArgosEnv {
        app,
        argos,
        receiver,
    } = &env;
    let user = "zoë|erase-me";
    let path_user = "zo%C3%AB%7Cerase-me";
    let jwt = user_jwt(user);
    let first = verified_faceauth(&env, user, "auth-e1").await;
    let second = verified_faceauth(&env, user, "auth-e2").await;
    // A pending link, minted with an Idempotency-Key; a `sid` mapping; another user's data.
    let r = app
        .send(
            app.mint_request(&jwt)
                .header("idempotency-key", "pending-link-1"),
        )
        .await;
    assert_eq!(r.status, 201);
    let pending = r.json()["id"].as_str().unwrap().to_string();
    let r = app
        .send(
            app.client
                .put(app.url(&format!("/v1/users/{path_user}/submission")))
                .header("x-api-key", SERVICE_KEY)
                .json(&json!({"sid": "sid-stored"})),
        )
        .await;
    assert_eq!(r.status, 204);
    let other = verified_faceauth(&env, "bystander", "auth-other").await;
    assert_eq!(app.step_up(path_user, 3600).await["verified"], true);

    // ARGOS fails the first deletion of auth-e1 once, then deletes; auth-extra is unknown there.
    Mock::given(method("DELETE"))
        .and(path("/v3/faceauth"))
        .and(query_param("authId", "auth-e1"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(argos)
        .await;
    argos_deletes(
        argos,
        "auth-e1",
        ResponseTemplate::new(200).set_body_json(json!({"message": "success"})),
    )
    .await;
    argos_deletes(
        argos,
        "auth-e2",
        ResponseTemplate::new(200).set_body_json(json!({"message": "success"})),
    )
    .await;
    argos_deletes(
        argos,
        "auth-extra",
        ResponseTemplate::new(400).set_body_json(
            json!({"errorCode": "Cannot find submission. Please check input data."}),
        ),
    )
    .await;

    let r = erase(
        app,
        path_user,
        &service_jwt(ERASE),
        Some(json!({"auth_ids": ["auth-extra", "auth-e1"]})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let accepted = r.json();
    let id = accepted["erasure_id"].as_str().unwrap().to_string();
    assert_eq!(r.location(), format!("/v1/erasures/{id}"));
    assert_eq!(accepted["state"], "pending");
    assert_eq!(accepted["links_erased"], 3);
    let mut ids: Vec<&str> = accepted["auth_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["auth_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["auth-e1", "auth-e2", "auth-extra"]);

    // At once: nothing about the user is answered.
    for link in [&first, &second, &pending] {
        app.link_status(&jwt, link)
            .await
            .assert_problem(404, "link_not_found");
        assert_eq!(app.open(link).await.status, 404);
    }
    let su = app.step_up(path_user, 3600).await;
    assert_eq!(su["verified"], false);
    assert!(su["auth_id"].is_null());
    // The job: retried after ARGOS's failure, then done.
    let read = service_jwt(ERASE);
    eventually("the erasure completes", || async {
        erasure(app, &id, &read).await.json()["state"] == "completed"
    })
    .await;
    let done = erasure(app, &id, &read).await.json();
    let status_of = |auth: &str| {
        done["auth_ids"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["auth_id"] == auth)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status_of("auth-e1"), "deleted");
    assert_eq!(status_of("auth-e2"), "deleted");
    assert_eq!(status_of("auth-extra"), "not_found");
    assert_eq!(
        done["counts"],
        json!({"deleted": 2, "not_found": 1, "failed": 0, "pending": 0})
    );
    assert!(done["completed_at"].as_str().unwrap().ends_with('Z'));

    // Exactly those DELETE calls, each with the Add-on key.
    let deletes: Vec<(String, String)> = argos
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method == wiremock::http::Method::DELETE)
        .map(|r| {
            assert_eq!(r.url.path(), "/v3/faceauth");
            (
                r.url
                    .query_pairs()
                    .find(|(k, _)| k == "authId")
                    .unwrap()
                    .1
                    .to_string(),
                r.headers
                    .get("x-api-key")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let mut called: Vec<&str> = deletes.iter().map(|(a, _)| a.as_str()).collect();
    called.sort();
    assert_eq!(called, ["auth-e1", "auth-e1", "auth-e2", "auth-extra"]);
    assert!(deletes.iter().all(|(_, key)| key == &app.api_key));

    // The signed user.erased callback, without the user id.
    eventually("the user.erased callback arrives", || async {
        receiver
            .received_requests()
            .await
            .unwrap()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("user.erased"))
    })
    .await;
    let hook = receiver
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| String::from_utf8_lossy(&r.body).contains("user.erased"))
        .unwrap();
    let event: Value = serde_json::from_slice(&hook.body).unwrap();
    assert_eq!(event["erasure_id"], id.as_str());
    assert_eq!(event["state"], "completed");
    assert_eq!(event["deleted"], 2);
    assert!(!String::from_utf8_lossy(&hook.body).contains("zo"));
    faceauth_gateway::callbacks::verify_signature(
        CALLBACK_SECRET.as_bytes(),
        hook.headers
            .get("faceauth-signature")
            .unwrap()
            .to_str()
            .unwrap(),
        &hook.body,
        300,
        now_secs() as u64,
    )
    .unwrap();

    // A late webhook for an erased link attaches nothing.
    argos_approves(app, argos, user, "auth-late", &first).await;
    eventually("the late result is handled", || async {
        let keys = app.keys().await;
        !keys.iter().any(|k| k.contains("q:verify}:jobs"))
    })
    .await;
    assert_eq!(app.step_up(path_user, 3600).await["verified"], false);
    eventually("every queue settles", || async {
        dump(app)
            .iter()
            .all(|(k, _)| !k.ends_with(":jobs") && !k.ends_with(":due"))
    })
    .await;

    // Nothing about the user but the erasure's own records; the bystander is untouched.
    assert_nothing_about(
        app,
        user,
        &id,
        &[&first, &second, &pending, "auth-e1", "auth-e2"],
    );
    let bystander = app.link_status(&user_jwt("bystander"), &other).await;
    assert_eq!(bystander.json()["auth_id"], "auth-other");
    assert_eq!(app.step_up("bystander", 3600).await["verified"], true);
    app.assert_every_key_expires().await;
    // The idempotency record is gone: the same key mints afresh.
    let r = app
        .send(
            app.mint_request(&jwt)
                .header("idempotency-key", "pending-link-1"),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(r.header("idempotent-replayed").is_none());
    let after = r.json()["id"].as_str().unwrap().to_string();
    assert_ne!(after, pending);
}

#[tokio::test]
async fn erasure_credentials_scopes_idempotency_and_failures() {
    let env = argos_env().await;
    let ArgosEnv { app, argos, .. } = &env;
    // A user JWT is not a service credential; the wrong scope is refused; static keys do not
    // carry the scope unless configured.
    erase(app, "u-1", &user_jwt("u-1"), None)
        .await
        .assert_problem(401, "invalid_token");
    let r = app.send(app.delete("/v1/users/u-1/faceauth")).await;
    r.assert_problem(401, "missing_credentials");
    let r = erase(
        app,
        "u-1",
        &service_jwt("faceauth:links:write faceauth:status:read"),
        None,
    )
    .await;
    r.assert_problem(403, "insufficient_scope");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("scope=\"faceauth:data:delete\""));
    let r = app
        .send(
            app.delete("/v1/users/u-1/faceauth")
                .header("x-api-key", SERVICE_KEY),
        )
        .await;
    r.assert_problem(403, "insufficient_scope");
    erasure(
        app,
        "er_0123456789abcdef0123456789abcdef",
        &service_jwt("faceauth:status:read"),
    )
    .await
    .assert_problem(403, "insufficient_scope");
    erasure(app, "er_0123456789abcdef0123456789abcdef", &user_jwt("u-1"))
        .await
        .assert_problem(401, "invalid_token");
    // Nothing was written by the refused requests.
    assert!(app.keys().await.iter().all(|k| !k.contains("erase")));

    let jwt = service_jwt(ERASE);
    erasure(app, "er_0123456789abcdef0123456789abcdef", &jwt)
        .await
        .assert_problem(404, "erasure_not_found");
    erasure(app, "not-an-id", &jwt)
        .await
        .assert_problem(400, "bad_request");
    for body in [
        json!({"auth_ids": [""]}),
        json!({"auth_ids": ["x".repeat(257)]}),
        json!({"auth_ids": ["a\nb"]}),
        json!({"auth_ids": vec!["a"; 101]}),
        json!({"other": 1}),
        json!([1]),
    ] {
        erase(app, "u-1", &jwt, Some(body))
            .await
            .assert_problem(400, "bad_request");
    }
    erase(app, "%ZZ", &jwt, None)
        .await
        .assert_problem(400, "bad_request");
    assert!(app.keys().await.iter().all(|k| !k.contains("erase")));

    // ARGOS refuses one id for good: `failed` with its error code; the other is deleted.
    argos_deletes(argos, "auth-refused", ResponseTemplate::new(403)).await;
    argos_deletes(
        argos,
        "auth-broken",
        ResponseTemplate::new(400).set_body_json(json!({"errorCode": "required key is missing"})),
    )
    .await;
    argos_deletes(argos, "auth-ok", ResponseTemplate::new(200)).await;
    let send = |key: &'static str| {
        let jwt = jwt.clone();
        async move {
            app.send(
                app.delete("/v1/users/u-1/faceauth")
                    .bearer_auth(jwt)
                    .header("idempotency-key", key)
                    .json(&json!({"auth_ids": ["auth-refused", "auth-broken", "auth-ok"]})),
            )
            .await
        }
    };
    let r = send("erase-u-1").await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["erasure_id"].as_str().unwrap().to_string();
    // The same Idempotency-Key answers the same erasure.
    let again = send("erase-u-1").await;
    assert_eq!(again.status, 202);
    assert_eq!(again.json()["erasure_id"], id.as_str());
    eventually("the erasure ends", || async {
        erasure(app, &id, &jwt).await.json()["state"] == "failed"
    })
    .await;
    let done = erasure(app, &id, &jwt).await.json();
    let item = |auth: &str| {
        done["auth_ids"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["auth_id"] == auth)
            .unwrap()
            .clone()
    };
    assert_eq!(item("auth-ok")["status"], "deleted");
    assert_eq!(item("auth-refused")["status"], "failed");
    assert_eq!(item("auth-refused")["error_code"], "http_403");
    assert_eq!(item("auth-broken")["status"], "failed");
    assert_eq!(item("auth-broken")["error_code"], "required key is missing");
    assert_eq!(done["counts"]["failed"], 2);
    // A second erasure (another key) is its own; a repeat after the job is done changes nothing.
    let r = send("erase-u-1").await;
    assert_eq!(r.json()["state"], "failed");
    let deletes = argos
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method == wiremock::http::Method::DELETE)
        .count();
    assert_eq!(deletes, 3, "each id once");
}

#[tokio::test]
async fn static_keys_erase_only_when_configured_and_metrics_count_without_ids() {
    let env = argos_env_with(|s| s.auth.service.api_keys_may_erase = true).await;
    let app = &env.app;
    let r = app
        .send(
            app.delete("/v1/users/key-user/faceauth")
                .header("x-api-key", SERVICE_KEY),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["erasure_id"].as_str().unwrap().to_string();
    eventually("an erasure with nothing at ARGOS completes", || async {
        app.send(
            app.get(&format!("/v1/erasures/{id}"))
                .header("x-api-key", SERVICE_KEY),
        )
        .await
        .json()["state"]
            == "completed"
    })
    .await;
    let metrics = app.metrics().await;
    assert!(metrics.contains("faceauth_erasures_total{outcome=\"started\"}"));
    assert!(metrics.contains("faceauth_erasures_total{outcome=\"completed\"}"));
    assert!(!metrics.contains("key-user"));
    assert!(!metrics.contains(&id));
}

#[tokio::test]
async fn a_result_for_a_link_made_before_the_erasure_is_not_attached() {
    let env = argos_env().await;
    let ArgosEnv { app, argos, .. } = &env;
    let user = "late-user";
    let jwt = user_jwt(user);
    let id = app.mint_id(&jwt).await;
    assert_eq!(app.open(&id).await.status, 302);
    // The link survives the erasure (as if minted while it ran): its record is put back.
    let mut conn = redis::Client::open(app.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let key = format!("{}link:{{{id}}}", app.prefix);
    let dumped: Vec<u8> = redis::cmd("DUMP").arg(&key).query(&mut conn).unwrap();
    let erase_jwt = service_jwt(ERASE);
    let r = erase(app, user, &erase_jwt, None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let erasure_id = r.json()["erasure_id"].as_str().unwrap().to_string();
    eventually("the erasure completes", || async {
        erasure(app, &erasure_id, &erase_jwt).await.json()["state"] == "completed"
    })
    .await;
    let _: () = redis::cmd("RESTORE")
        .arg(&key)
        .arg(600_000)
        .arg(dumped)
        .query(&mut conn)
        .unwrap();
    assert_eq!(app.link_status(&jwt, &id).await.status, 200);

    argos_approves(app, argos, user, "auth-after", &id).await;
    eventually("the verification job is done", || async {
        !app.keys()
            .await
            .iter()
            .any(|k| k.ends_with("q:verify}:jobs"))
    })
    .await;
    let status = app.link_status(&jwt, &id).await.json();
    assert!(status["result"].is_null(), "not attached: {status}");
    assert_eq!(app.step_up(user, 3600).await["verified"], false);
    let tag = tag(user);
    assert!(
        !app.keys()
            .await
            .iter()
            .any(|k| k.contains(&format!("ux:{{{tag}}}"))),
        "the erased user's index is not written again"
    );
    let metrics = app.metrics().await;
    assert!(metrics.contains("faceauth_verifications_total{outcome=\"erased\"}"));
}
