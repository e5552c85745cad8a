//! The confirm step: GET shows a page and consumes nothing; only the page's POST consumes.

use crate::helpers::*;
use faceauth_gateway::links::Expiry;
use serde_json::json;

async fn state_of(app: &TestApp, jwt: &str, id: &str) -> String {
    let r = app.link_status(jwt, id).await;
    r.json()["state"].as_str().unwrap().to_string()
}

async fn mint_with(app: &TestApp, jwt: &str, body: serde_json::Value) -> serde_json::Value {
    let r = app.send(app.mint_request(jwt).json(&body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

#[tokio::test]
async fn per_link_confirm_step_get_head_options_never_consume() {
    for expiry in [Expiry::Count, Expiry::Time] {
        let app = spawn_app_with(|s| s.links.expiry = expiry).await;
        let jwt = user_jwt("kim");
        let minted = mint_with(&app, &jwt, json!({"confirm_step": true})).await;
        assert_eq!(minted["confirm_step"], true);
        let id = minted["id"].as_str().unwrap();
        let url = app.url(&format!("/l/{id}"));
        for _ in 0..3 {
            let page = app
                .send(app.client.get(&url).header("accept", "text/html"))
                .await;
            assert_eq!(page.status, 200);
            assert!(page.header("location").is_none());
            assert!(page
                .header("content-type")
                .unwrap()
                .starts_with("text/html"));
            let csp = page.header("content-security-policy").unwrap();
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert!(csp.contains("default-src 'none'"), "{csp}");
            assert!(
                csp.contains("form-action 'self' https://form.argos.test"),
                "{csp}"
            );
            assert!(!page.text().contains("<script"), "no script needed");
            assert!(page.text().contains("<form method=\"post\">"));
            // A scanner that does not send Accept: text/html gets the page too.
            assert_eq!(app.open(id).await.status, 200);
            assert_eq!(app.send(app.client.head(&url)).await.status, 200);
            let opt = app
                .send(app.client.request(reqwest::Method::OPTIONS, &url))
                .await;
            assert_eq!(opt.status, 204);
            assert!(opt.header("location").is_none());
        }
        assert_eq!(
            state_of(&app, &jwt, id).await,
            "issued",
            "{expiry:?}: nothing consumed"
        );

        let post = app.send(app.client.post(&url)).await;
        assert_eq!(post.status, 303);
        let params = decrypt_location(&app, &post.location());
        assert_eq!(get(&params, "token"), Some(id));
        let expected = if expiry == Expiry::Count {
            "used"
        } else {
            "opened"
        };
        assert_eq!(state_of(&app, &jwt, id).await, expected);
        if expiry == Expiry::Count {
            app.send(app.client.post(&url))
                .await
                .assert_problem(410, "link_used");
            let page = app
                .send(app.client.get(&url).header("accept", "text/html"))
                .await;
            assert_eq!(page.status, 410);
        }
    }
}

#[tokio::test]
async fn global_default_and_override() {
    let app = spawn_app_with(|s| s.links.confirm_step = true).await;
    let jwt = user_jwt("lee");
    let default = mint_with(&app, &jwt, json!({})).await;
    assert_eq!(default["confirm_step"], true);
    assert_eq!(app.open(default["id"].as_str().unwrap()).await.status, 200);
    let plain = mint_with(&app, &jwt, json!({"confirm_step": false})).await;
    assert_eq!(plain["confirm_step"], false);
    assert_eq!(app.open(plain["id"].as_str().unwrap()).await.status, 302);
    // Wrong type is a 400 naming the field.
    let r = app
        .send(app.mint_request(&jwt).json(&json!({"confirm_step": "yes"})))
        .await;
    r.assert_problem(400, "bad_request");
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("invalid type"));
}

#[tokio::test]
async fn post_consumes_plain_links_too_with_303() {
    let app = spawn_app().await;
    let id = app.mint_id(&user_jwt("max")).await;
    let r = app.send(app.post(&format!("/l/{id}"))).await;
    assert_eq!(r.status, 303);
    assert!(r.location().starts_with(FORM_URL));
    app.open(&id).await.assert_problem(410, "link_used");
}
