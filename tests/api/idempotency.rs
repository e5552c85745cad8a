//! `Idempotency-Key` on `POST /v1/links`.

use crate::helpers::*;
use serde_json::json;

async fn mint_with_key(app: &TestApp, jwt: &str, key: &str, body: serde_json::Value) -> Resp {
    app.send(
        app.mint_request(jwt)
            .header("idempotency-key", key)
            .json(&body),
    )
    .await
}

async fn link_count(app: &TestApp) -> usize {
    app.keys()
        .await
        .iter()
        .filter(|k| k.contains("link:"))
        .count()
}

#[tokio::test]
async fn same_key_same_response_without_a_second_mint() {
    let app = spawn_app().await;
    let jwt = user_jwt("uma");
    let first = mint_with_key(&app, &jwt, "order-1", json!({})).await;
    assert_eq!(first.status, 201);
    let again = mint_with_key(&app, &jwt, "order-1", json!({})).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json(), first.json(), "same id, same body");
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(link_count(&app).await, 1);

    mint_with_key(&app, &jwt, "order-1", json!({"confirm_step": true}))
        .await
        .assert_problem(422, "idempotency_key_reused");
    // Keys are per user.
    let other = mint_with_key(&app, &user_jwt("vic"), "order-1", json!({})).await;
    assert_eq!(other.status, 201);
    assert_ne!(other.json()["id"], first.json()["id"]);
    app.assert_every_key_expires().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_mint_once() {
    let app = spawn_app().await;
    let jwt = user_jwt("wes");
    for round in 0..5 {
        let key = format!("concurrent-{round}");
        let results =
            futures::future::join_all((0..6).map(|_| mint_with_key(&app, &jwt, &key, json!({}))))
                .await;
        let ids: std::collections::HashSet<String> = results
            .iter()
            .map(|r| {
                assert_eq!(r.status, 201, "{}", r.text());
                r.json()["id"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(ids.len(), 1, "round {round}");
    }
    assert_eq!(link_count(&app).await, 5);
}

#[tokio::test]
async fn malformed_keys_are_400_and_failures_release_the_key() {
    let app = spawn_app().await;
    let jwt = user_jwt("xia");
    for bad in ["", &"k".repeat(256), "has space", "tab\tkey"] {
        let r = app
            .send(app.mint_request(&jwt).header("idempotency-key", bad))
            .await;
        r.assert_problem(400, "bad_request");
    }
    assert_eq!(
        mint_with_key(&app, &jwt, &"k".repeat(255), json!({}))
            .await
            .status,
        201
    );

    // A failed first attempt (no sid) does not pin the key.
    let mut c = claims("xia");
    c.as_object_mut().unwrap().remove("argos_sid");
    mint_with_key(&app, &sign_hs256(&c), "retry-me", json!({}))
        .await
        .assert_problem(422, "no_submission");
    assert_eq!(
        mint_with_key(&app, &jwt, "retry-me", json!({}))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn equivalent_bodies_are_the_same_request() {
    let app = spawn_app().await;
    let jwt = user_jwt("yuki");
    let send = |body: &'static str| {
        app.send(
            app.mint_request(&jwt)
                .header("idempotency-key", "same-meaning")
                .body(body),
        )
    };
    let first = send("").await;
    assert_eq!(first.status, 201);
    for body in ["{}", "{ }", " \n{}\n"] {
        let r = send(body).await;
        assert_eq!(r.status, 201, "{body:?}: {}", r.text());
        assert_eq!(r.json()["id"], first.json()["id"]);
    }
    assert_eq!(link_count(&app).await, 1);
}
