//! One contract for both store backends: the memory store and the Redis store must agree.

use crate::helpers::*;
use faceauth_gateway::links::{Expiry, LinkId, LinkPolicy, LinkState, NewLink, StoredState};
use faceauth_gateway::store::redis::RedisStore;
use faceauth_gateway::store::{LinkStore, OpenResult, StoreError};
use std::time::Duration;

fn policy(expiry: Expiry) -> LinkPolicy {
    LinkPolicy {
        expiry,
        window_ms: 1_000,
        unopened_ttl_ms: 60_000,
        retention_ms: 60_000,
    }
}

fn new_link() -> NewLink {
    NewLink {
        user_id: "user-😀".into(),
        sid: "sid/with\"quotes\\and\nnewline".into(),
        cf: [Some("a@b.test".into()), None, Some("x&y".into())],
        confirm_step: false,
        reference: Some("ref-1".into()),
    }
}

#[tokio::test]
async fn create_then_get_round_trips_the_record() {
    for (name, store) in store_backends().await {
        let id = LinkId::random();
        let created = store
            .create(&id, &new_link(), &policy(Expiry::Count), false)
            .await
            .unwrap();
        assert_eq!(created.state, StoredState::Issued, "{name}");
        assert_eq!(created.user_id, "user-😀");
        assert_eq!(created.sid, "sid/with\"quotes\\and\nnewline");
        assert_eq!(created.cf1.as_deref(), Some("a@b.test"));
        assert_eq!(created.cf2, None);
        assert_eq!(created.cf3.as_deref(), Some("x&y"));
        assert_eq!(
            created.expires_at_ms - created.created_at_ms,
            60_000,
            "{name}"
        );
        let snap = store.get(&id).await.unwrap().unwrap();
        assert_eq!(snap.record, created, "{name}");
        assert!(snap.now_ms >= created.created_at_ms);
        assert_eq!(snap.record.state_at(snap.now_ms), LinkState::Issued);
        assert!(store.get(&LinkId::random()).await.unwrap().is_none());
        assert!(
            matches!(
                store
                    .create(&id, &new_link(), &policy(Expiry::Count), false)
                    .await,
                Err(StoreError::Conflict)
            ),
            "{name}: an existing id is never overwritten"
        );
    }
}

/// Issue 15: the Redis create fills the record's times in as text; text in the fields that
/// looks like those times is left alone, for both expiry rules and with a first open.
#[tokio::test]
async fn create_fills_in_the_times_whatever_the_fields_hold() {
    for (name, store) in store_backends().await {
        for (expiry, open_now) in [
            (Expiry::Count, false),
            (Expiry::Time, false),
            (Expiry::Time, true),
        ] {
            let mut link = new_link();
            link.sid = r#"x","ca":0,"ea":5,"y":"}"#.into();
            link.reference = Some("\"ca\":0,\"ea\":60000}".into());
            let id = LinkId::random();
            let created = store
                .create(&id, &link, &policy(expiry), open_now)
                .await
                .unwrap();
            assert_eq!(created.sid, link.sid, "{name}");
            assert_eq!(created.reference, link.reference, "{name}");
            assert_eq!(created.expiry, expiry, "{name}");
            assert!(created.created_at_ms > 1_000_000_000_000, "{name}");
            let until = match open_now {
                false => created.created_at_ms + 60_000,
                true => created.opened_at_ms.unwrap() + 1_000,
            };
            assert_eq!(created.expires_at_ms, until, "{name} {expiry:?}");
            let snap = store.get(&id).await.unwrap().unwrap();
            assert_eq!(snap.record, created, "{name}");
        }
    }
}

#[tokio::test]
async fn count_link_opens_once() {
    for (name, store) in store_backends().await {
        let id = LinkId::random();
        store
            .create(&id, &new_link(), &policy(Expiry::Count), false)
            .await
            .unwrap();
        match store.open(&id, 60_000, false).await.unwrap() {
            OpenResult::Opened(r) => {
                assert_eq!(r.state, StoredState::Used, "{name}");
                assert!(r.opened_at_ms.is_some());
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(
            store.open(&id, 60_000, false).await.unwrap(),
            OpenResult::Refused(LinkState::Used),
            "{name}"
        );
        assert_eq!(
            store.open(&LinkId::random(), 60_000, false).await.unwrap(),
            OpenResult::NotFound
        );
    }
}

#[tokio::test]
async fn time_link_reopens_inside_its_window_only() {
    for (name, store) in store_backends().await {
        let id = LinkId::random();
        store
            .create(&id, &new_link(), &policy(Expiry::Time), false)
            .await
            .unwrap();
        let first = match store.open(&id, 60_000, false).await.unwrap() {
            OpenResult::Opened(r) => r,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(first.state, StoredState::Opened);
        let opened_at = first.opened_at_ms.unwrap();
        assert_eq!(
            first.expires_at_ms,
            opened_at + 1_000,
            "{name}: window from first use"
        );
        match store.open(&id, 60_000, false).await.unwrap() {
            OpenResult::Opened(r) => assert_eq!(r, first, "{name}: a reopen changes nothing"),
            other => panic!("{name}: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert_eq!(
            store.open(&id, 60_000, false).await.unwrap(),
            OpenResult::Refused(LinkState::Expired),
            "{name}"
        );
        let snap = store.get(&id).await.unwrap().unwrap();
        assert_eq!(snap.record.state_at(snap.now_ms), LinkState::Expired);
    }
}

#[tokio::test]
async fn unopened_links_expire_and_tombstones_go_after_retention() {
    for (name, store) in store_backends().await {
        let short = LinkPolicy {
            expiry: Expiry::Count,
            window_ms: 1_000,
            unopened_ttl_ms: 500,
            retention_ms: 700,
        };
        let never_opened = LinkId::random();
        let used = LinkId::random();
        store
            .create(&never_opened, &new_link(), &short, false)
            .await
            .unwrap();
        store
            .create(&used, &new_link(), &short, false)
            .await
            .unwrap();
        assert!(matches!(
            store.open(&used, short.retention_ms, false).await.unwrap(),
            OpenResult::Opened(_)
        ));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            store
                .open(&never_opened, short.retention_ms, false)
                .await
                .unwrap(),
            OpenResult::Refused(LinkState::Expired),
            "{name}"
        );
        assert_eq!(
            store.open(&used, short.retention_ms, false).await.unwrap(),
            OpenResult::Refused(LinkState::Used),
            "{name}: tombstone kept during retention"
        );
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            store.open(&never_opened, 700, false).await.unwrap(),
            OpenResult::NotFound,
            "{name}"
        );
        assert_eq!(
            store.open(&used, 700, false).await.unwrap(),
            OpenResult::NotFound,
            "{name}"
        );
    }
}

#[tokio::test]
async fn create_with_open_now_is_already_used() {
    for (name, store) in store_backends().await {
        let id = LinkId::random();
        let r = store
            .create(&id, &new_link(), &policy(Expiry::Count), true)
            .await
            .unwrap();
        assert_eq!(r.state, StoredState::Used, "{name}");
        assert_eq!(
            store.open(&id, 60_000, false).await.unwrap(),
            OpenResult::Refused(LinkState::Used)
        );
        let id = LinkId::random();
        let r = store
            .create(&id, &new_link(), &policy(Expiry::Time), true)
            .await
            .unwrap();
        assert_eq!(r.state, StoredState::Opened, "{name}");
        assert_eq!(r.expires_at_ms, r.opened_at_ms.unwrap() + 1_000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_succeed_exactly_once() {
    for (name, store) in store_backends().await {
        for _ in 0..10 {
            let id = LinkId::random();
            store
                .create(&id, &new_link(), &policy(Expiry::Count), false)
                .await
                .unwrap();
            let tasks: Vec<_> = (0..50)
                .map(|_| {
                    let store = store.clone();
                    tokio::spawn(async move { store.open(&id, 60_000, false).await.unwrap() })
                })
                .collect();
            let mut opened = 0;
            for t in tasks {
                if matches!(t.await.unwrap(), OpenResult::Opened(_)) {
                    opened += 1;
                }
            }
            assert_eq!(opened, 1, "{name}");
        }
    }
}

#[tokio::test]
async fn redis_keys_always_carry_an_expiry() {
    let prefix = random_prefix();
    let store = RedisStore::connect_to(&test_target(), &prefix, Duration::from_secs(2))
        .await
        .unwrap();
    let nodes = cluster_nodes().unwrap_or_else(|| vec![redis_url()]);
    for (expiry, open_now, opens) in [
        (Expiry::Count, false, 0),
        (Expiry::Count, false, 1),
        (Expiry::Count, true, 0),
        (Expiry::Time, false, 2),
        (Expiry::Time, true, 1),
    ] {
        let id = LinkId::random();
        store
            .create(&id, &new_link(), &policy(expiry), open_now)
            .await
            .unwrap();
        for _ in 0..opens {
            store.open(&id, 60_000, false).await.unwrap();
        }
        let pttl = key_ttls(&nodes, &store.key(&id))
            .unwrap()
            .into_iter()
            .find(|(k, _)| *k == store.key(&id))
            .map(|(_, t)| t)
            .unwrap();
        assert!(
            pttl > 0,
            "{expiry:?} open_now={open_now} opens={opens}: PTTL {pttl}"
        );
        assert!(store.key(&id).starts_with(&prefix));
        assert!(
            store.key(&id).ends_with(&format!("{{{id}}}")),
            "hash tag on the id"
        );
    }
}

#[tokio::test]
async fn fenced_replace_and_discard_agree() {
    for (name, store) in store_backends().await {
        let key = "idem:{t}:k";
        assert!(store
            .put_if_absent(key, "a", 60_000)
            .await
            .unwrap()
            .is_none());
        // A re-sent claim finds its own value.
        assert_eq!(
            store
                .put_if_absent(key, "a", 60_000)
                .await
                .unwrap()
                .as_deref(),
            Some("a")
        );
        assert!(
            !store
                .replace_if_equals(key, "b", "c", 60_000)
                .await
                .unwrap(),
            "{name}: only the owner replaces"
        );
        assert!(store
            .replace_if_equals(key, "a", "d", 60_000)
            .await
            .unwrap());
        assert_eq!(
            store.read(key).await.unwrap().as_deref(),
            Some("d"),
            "{name}"
        );
        assert!(!store
            .replace_if_equals("idem:{t}:none", "a", "b", 60_000)
            .await
            .unwrap());
        assert_eq!(store.read("idem:{t}:none").await.unwrap(), None, "{name}");

        let id = LinkId::random();
        store
            .create(&id, &new_link(), &policy(Expiry::Count), false)
            .await
            .unwrap();
        store.discard(&id).await.unwrap();
        assert!(store.get(&id).await.unwrap().is_none(), "{name}");
    }
}

/// Issue 19: the per-user indexes, the atomic erase step, link deletion and job removal.
#[tokio::test]
async fn erasure_indexes_and_the_erase_step() {
    use faceauth_gateway::erasure::{ErasureState, ItemStatus, Record};
    use faceauth_gateway::store::{QueuePolicy, UserKeys};
    for (name, store) in store_backends().await {
        let t = faceauth_gateway::store::user_tag("user-😀");
        let keys = UserKeys {
            links: format!("ux:{{{t}}}:links"),
            auth_ids: format!("ux:{{{t}}}:auths"),
            idempotency: format!("ux:{{{t}}}:idem"),
            tombstone: format!("erased:{{{t}}}"),
            record: format!("erasure:{{{t}}}:er_1"),
            others: vec![format!("sid:{{{t}}}"), format!("stepup:{{{t}}}")],
        };
        let id = LinkId::random();
        store
            .create(&id, &new_link(), &policy(Expiry::Count), false)
            .await
            .unwrap();
        assert!(store
            .index_add(&keys.links, &id.to_string(), 60_000, None)
            .await
            .unwrap());
        for auth in ["auth-1", "auth-2", "auth-1"] {
            assert!(store
                .index_add(&keys.auth_ids, auth, 60_000, Some((&keys.tombstone, 0)))
                .await
                .unwrap());
        }
        let idem = format!("idem:{{{t}}}:abc");
        store.put(&idem, "response", 60_000).await.unwrap();
        store
            .index_add(&keys.idempotency, &idem, 60_000, None)
            .await
            .unwrap();
        store.put(&keys.others[0], "sid-1", 60_000).await.unwrap();

        // A member past its own expiry is not erased again (its record is gone by then).
        store
            .index_add(&keys.links, "expired-link", 1, None)
            .await
            .unwrap();
        store
            .index_add(&keys.links, &id.to_string(), 60_000, None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await; // the 1 ms expiry passes
        let extra = vec!["auth-2".to_string(), "auth-3".to_string(), String::new()];
        let erased = store
            .erase_user(&keys, "er_1", &extra, 60_000)
            .await
            .unwrap();
        assert!(erased.created, "{name}");
        let record: Record = serde_json::from_str(&erased.record).unwrap();
        assert_eq!(record.id, "er_1");
        assert_eq!(record.state, ErasureState::Pending);
        assert_eq!(record.links, vec![id.to_string()], "{name}");
        let mut auths: Vec<&str> = record.items.iter().map(|i| i.auth_id.as_str()).collect();
        auths.sort();
        assert_eq!(
            auths,
            ["auth-1", "auth-2", "auth-3"],
            "{name}: deduplicated"
        );
        assert!(record.items.iter().all(|i| i.status == ItemStatus::Pending));
        assert_eq!(store.read(&idem).await.unwrap(), None, "{name}");
        assert_eq!(store.read(&keys.others[0]).await.unwrap(), None, "{name}");
        // The tombstone holds the erasure time: older links get nothing attached.
        assert!(!store
            .index_add(
                &keys.auth_ids,
                "late",
                60_000,
                Some((&keys.tombstone, record.at))
            )
            .await
            .unwrap());
        assert!(store
            .index_add(
                &keys.auth_ids,
                "new",
                60_000,
                Some((&keys.tombstone, record.at + 1))
            )
            .await
            .unwrap());
        // A repeat changes nothing and returns the same record.
        let again = store.erase_user(&keys, "er_1", &[], 60_000).await.unwrap();
        assert!(!again.created, "{name}");
        assert_eq!(again.record, erased.record, "{name}");

        store.erase_link(&id).await.unwrap();
        assert!(store.get(&id).await.unwrap().is_none(), "{name}");

        let queue = "q:contract";
        let qp = QueuePolicy {
            lease_ms: 10_000,
            max_failures: 3,
            ttl_ms: 60_000,
            dead_ttl_ms: 60_000,
        };
        assert!(store
            .queue_push(queue, "job-1", "{}", Some("m1"), 60_000, &qp)
            .await
            .unwrap());
        store
            .queue_remove(queue, "job-1", Some("m1"))
            .await
            .unwrap();
        assert!(store
            .queue_claim(queue, 10, &qp)
            .await
            .unwrap()
            .jobs
            .is_empty());
        assert!(
            store
                .queue_push(queue, "job-1", "{}", Some("m1"), 60_000, &qp)
                .await
                .unwrap(),
            "{name}: the marker went with the job"
        );
    }
}

/// Issue 15: the guarded create and open count their rate limit in the same step; a refusal
/// leaves no record (create) and consumes nothing (open); the live link replaces the user's
/// earlier never-opened link.
#[tokio::test]
async fn guarded_create_and_open_count_refuse_and_supersede() {
    use faceauth_gateway::store::{Guarded, Guards, IndexEntry, LiveLink, WindowLimit};
    for (name, store) in store_backends().await {
        let user = format!("u-{}", uuid::Uuid::new_v4().simple());
        let guards = Guards {
            limit: Some(WindowLimit {
                key: format!("rl:m:{{{user}}}"),
                limit: 2,
                window_ms: 60_000,
            }),
            index: Some(IndexEntry {
                key: format!("ux:{{{user}}}:links"),
                ttl_ms: 60_000,
            }),
            live: Some(LiveLink {
                key: format!("u:{{{user}}}:live"),
                ttl_ms: 60_000,
                retention_ms: 60_000,
            }),
        };
        let mut link = new_link();
        link.user_id = user.clone();
        let p = policy(Expiry::Count);
        let (a, b, c) = (LinkId::random(), LinkId::random(), LinkId::random());
        for (i, id) in [a, b].iter().enumerate() {
            match store.create_guarded(id, &link, &p, false, &guards).await {
                Ok(Guarded::Done(record, Some(w))) => {
                    assert_eq!(record.state, StoredState::Issued, "{name}");
                    assert_eq!(w.count, i as u64 + 1, "{name}");
                    assert!(w.reset_ms > 0 && w.reset_ms <= 60_000, "{name}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let state = |id: LinkId| {
            let store = store.clone();
            async move {
                let snap = store.get(&id).await.unwrap().unwrap();
                snap.record.state_at(snap.now_ms)
            }
        };
        assert_eq!(state(a).await, LinkState::Revoked, "{name}: superseded");
        assert_eq!(state(b).await, LinkState::Issued, "{name}");
        match store.create_guarded(&c, &link, &p, false, &guards).await {
            Ok(Guarded::Limited(w)) => assert_eq!(w.count, 3, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        // A Cluster deletes the concurrently written record in the background.
        eventually("the refused create leaves no record", || {
            let store = store.clone();
            async move { store.get(&c).await.unwrap().is_none() }
        })
        .await;
        assert_eq!(
            state(b).await,
            LinkState::Issued,
            "{name}: a refusal supersedes nothing"
        );

        let open_limit = WindowLimit {
            key: format!("rl:o:{{{user}}}"),
            limit: 1,
            window_ms: 60_000,
        };
        match store
            .open_guarded(&b, 60_000, false, Some(&open_limit))
            .await
        {
            Ok(Guarded::Done(OpenResult::Opened(_), Some(w))) => assert_eq!(w.count, 1),
            other => panic!("{name}: {other:?}"),
        }
        let d = LinkId::random();
        let mut other = new_link();
        other.user_id = format!("{user}-2");
        store.create(&d, &other, &p, false).await.unwrap();
        match store
            .open_guarded(&d, 60_000, false, Some(&open_limit))
            .await
        {
            Ok(Guarded::Limited(w)) => assert_eq!(w.count, 2, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(
            state(d).await,
            LinkState::Issued,
            "{name}: a refused open consumes nothing"
        );
    }
}
