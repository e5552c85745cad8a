//! A count-based link opens exactly once under concurrency, on one or two gateway instances.

use crate::helpers::*;
use futures::future::join_all;

const ROUNDS: usize = 20;
const PARALLEL: usize = 50;

async fn race(apps: &[&TestApp]) {
    let jwt = user_jwt("racer");
    for round in 0..ROUNDS {
        let id = apps[0].mint_id(&jwt).await;
        let requests = (0..PARALLEL).map(|i| {
            let app = apps[i % apps.len()];
            let url = app.url(&format!("/l/{id}"));
            let client = app.client.clone();
            async move { client.get(url).send().await.unwrap().status().as_u16() }
        });
        let statuses = join_all(requests).await;
        let redirects = statuses.iter().filter(|s| **s == 302).count();
        let used = statuses.iter().filter(|s| **s == 410).count();
        assert_eq!(redirects, 1, "round {round}: {statuses:?}");
        assert_eq!(used, PARALLEL - 1, "round {round}: {statuses:?}");
    }
    apps[0].assert_every_key_expires().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_opens_one_redirect() {
    let app = spawn_app().await;
    race(&[&app]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_sharing_redis_one_redirect() {
    let a = spawn_app().await;
    let prefix = a.prefix.clone();
    let b = spawn_app_with(|s| s.store.key_prefix = prefix).await;
    // Both instances see the same links.
    let id = a.mint_id(&user_jwt("shared")).await;
    assert_eq!(b.open(&id).await.status, 302);
    a.open(&id).await.assert_problem(410, "link_used");
    race(&[&a, &b]).await;
}

/// `links.single_active` under concurrent mints for one user on two gateways: exactly one of
/// the links stays live, every other one is revoked (in a Cluster the create and the live-link
/// swap are in different slots).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_mints_leave_one_live_link() {
    let a = spawn_app_with(|s| s.limits.mint_per_user.limit = 1_000).await;
    let prefix = a.prefix.clone();
    let b = spawn_app_with(|s| {
        s.store.key_prefix = prefix;
        s.limits.mint_per_user.limit = 1_000;
    })
    .await;
    for round in 0..5 {
        let jwt = user_jwt(&format!("many-{round}"));
        let mints = (0..30).map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            let jwt = jwt.clone();
            async move { app.mint_id(&jwt).await }
        });
        let ids = join_all(mints).await;
        let mut issued = Vec::new();
        for id in &ids {
            let state = a.link_status(&jwt, id).await.json()["state"]
                .as_str()
                .unwrap()
                .to_string();
            match state.as_str() {
                "issued" => issued.push(id.clone()),
                "revoked" => {}
                other => panic!("round {round}: {id} is {other}"),
            }
        }
        assert_eq!(issued.len(), 1, "round {round}: live links {issued:?}");
    }
    a.assert_every_key_expires().await;
}
