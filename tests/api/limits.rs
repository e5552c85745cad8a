//! Rate limits in Redis (shared by replicas), and the client IP behind trusted proxies.

use crate::helpers::*;

fn header_int(r: &Resp, name: &str) -> u64 {
    r.header(name).unwrap().parse().unwrap()
}

#[tokio::test]
async fn mint_limit_per_user_holds_across_replicas() {
    let a = spawn_app_with(|s| {
        s.limits.mint_per_user.limit = 3;
        s.limits.mint_per_user.window_secs = 60;
    })
    .await;
    let prefix = a.prefix.clone();
    let b = spawn_app_with(|s| {
        s.store.key_prefix = prefix;
        s.limits.mint_per_user.limit = 3;
        s.limits.mint_per_user.window_secs = 60;
    })
    .await;
    let jwt = user_jwt("nina");
    let first = a.mint(&jwt).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.header("ratelimit-policy").as_deref(), Some("3;w=60"));
    assert!(first
        .header("ratelimit")
        .unwrap()
        .starts_with("limit=3, remaining=2, reset="));
    assert_eq!(b.mint(&jwt).await.status, 201);
    let start = b.start(&jwt).await;
    assert_eq!(start.status, 302, "start counts as a mint");
    for app in [&a, &b] {
        let r = app.mint(&jwt).await;
        r.assert_problem(429, "rate_limited");
        let retry = header_int(&r, "retry-after");
        assert!((1..=60).contains(&retry), "{retry}");
        assert_eq!(r.header("ratelimit-policy").as_deref(), Some("3;w=60"));
        assert_eq!(
            r.header("ratelimit").unwrap(),
            format!("limit=3, remaining=0, reset={retry}")
        );
    }
    // Another user is not affected.
    assert_eq!(a.mint(&user_jwt("other")).await.status, 201);
}

#[tokio::test]
async fn open_limit_per_ip_and_trusted_proxies() {
    let app = spawn_app_with(|s| {
        s.limits.open_per_ip.limit = 3;
        s.limits.open_per_ip.window_secs = 60;
    })
    .await;
    let missing = uuid::Uuid::new_v4();
    let url = app.url(&format!("/l/{missing}"));
    for _ in 0..3 {
        // X-Forwarded-For from an untrusted peer is ignored: one bucket for 127.0.0.1.
        let r = app
            .send(
                app.client
                    .get(&url)
                    .header("x-forwarded-for", uuid::Uuid::new_v4().to_string()),
            )
            .await;
        assert_eq!(r.status, 404);
    }
    let r = app.send(app.client.head(&url)).await;
    assert_eq!(r.status, 429, "HEAD counts too");
    let r = app
        .send(app.client.get(&url).header("accept", "text/html"))
        .await;
    assert_eq!(r.status, 429);
    assert!(r.text().contains("Too many attempts"));
    assert!(r.header("retry-after").is_some());

    let proxied = spawn_app_with(|s| {
        s.limits.open_per_ip.limit = 2;
        s.limits.open_per_ip.window_secs = 60;
        s.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let url = proxied.url(&format!("/l/{missing}"));
    for client in ["198.51.100.1", "198.51.100.2"] {
        for _ in 0..2 {
            let r = proxied
                .send(
                    proxied
                        .client
                        .get(&url)
                        .header("x-forwarded-for", format!("6.6.6.6, {client}")),
                )
                .await;
            assert_eq!(r.status, 404, "{client}");
        }
        let r = proxied
            .send(
                proxied
                    .client
                    .get(&url)
                    .header("x-forwarded-for", client)
                    // A `Forwarded` header the proxy does not write cannot move the bucket.
                    .header("forwarded", "for=203.0.113.250"),
            )
            .await;
        r.assert_problem(429, "rate_limited");
    }
}

#[tokio::test]
async fn limit_keys_expire() {
    let app = spawn_app_with(|s| {
        s.limits.mint_per_user.limit = 10;
        s.limits.open_per_ip.limit = 10;
    })
    .await;
    let id = app.mint_id(&user_jwt("olga")).await;
    app.open(&id).await;
    let keys = app.keys().await;
    assert!(keys.iter().any(|k| k.contains("rl:m:")), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains("rl:o:")), "{keys:?}");
    app.assert_every_key_expires().await;
}
