//! One live link per user, and revocation by the owner.

use crate::helpers::*;
use faceauth_gateway::links::Expiry;

async fn state_of(app: &TestApp, jwt: &str, id: &str) -> String {
    app.link_status(jwt, id).await.json()["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_new_link_revokes_the_users_unopened_links() {
    let app = spawn_app_with(|s| s.links.expiry = Expiry::Time).await;
    let jwt = user_jwt("pat");
    let opened = app.mint_id(&jwt).await;
    assert_eq!(app.open(&opened).await.status, 302);
    let first = app.mint_id(&jwt).await;
    let other_user = app.mint_id(&user_jwt("quinn")).await;
    let second = app.mint_id(&jwt).await;

    app.open(&first).await.assert_problem(410, "link_revoked");
    assert_eq!(state_of(&app, &jwt, &first).await, "revoked");
    assert_eq!(
        app.open(&opened).await.status,
        302,
        "an opened link is left alone"
    );
    assert_eq!(
        app.open(&other_user).await.status,
        302,
        "other users are untouched"
    );
    assert_eq!(app.open(&second).await.status, 302);
    let page = app
        .send(
            app.get(&format!("/l/{first}"))
                .header("accept", "text/html"),
        )
        .await;
    assert_eq!(page.status, 410);
    assert!(page.text().contains("no longer valid"));
}

#[tokio::test]
async fn single_active_off_keeps_every_link() {
    let app = spawn_app_with(|s| s.links.single_active = false).await;
    let jwt = user_jwt("rae");
    let a = app.mint_id(&jwt).await;
    let b = app.mint_id(&jwt).await;
    assert_eq!(app.open(&a).await.status, 302);
    assert_eq!(app.open(&b).await.status, 302);
}

#[tokio::test]
async fn concurrent_mints_leave_exactly_one_live_link() {
    let app = spawn_app().await;
    let jwt = user_jwt("sam");
    let mints = (0..8).map(|_| app.mint_id(&jwt));
    let ids = futures::future::join_all(mints).await;
    let mut live = 0;
    for id in &ids {
        let r = app
            .send(app.client.head(app.url(&format!("/l/{id}"))))
            .await;
        if r.status == 200 {
            live += 1;
        } else {
            assert_eq!(r.status, 410);
        }
    }
    assert_eq!(live, 1, "{ids:?}");
}

#[tokio::test]
async fn owner_revokes_with_delete() {
    let app = spawn_app().await;
    let jwt = user_jwt("tia");
    let id = app.mint_id(&jwt).await;
    let url = app.url(&format!("/v1/links/{id}"));
    app.send(app.client.delete(&url).bearer_auth(user_jwt("mallory")))
        .await
        .assert_problem(404, "link_not_found");
    app.send(app.client.delete(&url))
        .await
        .assert_problem(401, "missing_credentials");
    let r = app.send(app.client.delete(&url).bearer_auth(&jwt)).await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    app.open(&id).await.assert_problem(410, "link_revoked");
    assert_eq!(
        app.send(app.client.head(app.url(&format!("/l/{id}"))))
            .await
            .status,
        410
    );
    assert_eq!(state_of(&app, &jwt, &id).await, "revoked");
    assert_eq!(
        app.send(app.client.delete(&url).bearer_auth(&jwt))
            .await
            .status,
        204,
        "idempotent"
    );
    app.send(
        app.delete(&format!("/v1/links/{}", uuid::Uuid::new_v4()))
            .bearer_auth(&jwt),
    )
    .await
    .assert_problem(404, "link_not_found");
}

#[tokio::test]
async fn deleting_a_used_link_keeps_it_used() {
    let app = spawn_app().await;
    let jwt = user_jwt("uli");
    let id = app.mint_id(&jwt).await;
    assert_eq!(app.open(&id).await.status, 302);
    let r = app.revoke(&jwt, &id).await;
    assert_eq!(r.status, 204);
    assert_eq!(state_of(&app, &jwt, &id).await, "used");
    app.open(&id).await.assert_problem(410, "link_used");
}
