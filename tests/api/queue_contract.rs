//! Issue 11's store primitives, one contract for both backends: the ordering rule of
//! `set_result` and `put_if_later`, and the work queue (exactly-once push, leases, fencing,
//! dead letters).

use crate::helpers::*;
use faceauth_gateway::links::{Expiry, LinkId, LinkPolicy, LinkResult, NewLink, Outcome};
use faceauth_gateway::store::{QueuePolicy, ResultWrite, Settle, Settled};

const POLICY: QueuePolicy = QueuePolicy {
    lease_ms: 60_000,
    max_failures: 2,
    ttl_ms: 600_000,
    dead_ttl_ms: 600_000,
};

#[tokio::test]
async fn the_later_faceauth_wins_whatever_the_order() {
    for (name, store) in store_backends().await {
        let id = LinkId::random();
        let link = NewLink {
            user_id: "u".into(),
            sid: "s".into(),
            cf: [None, None, None],
            confirm_step: false,
            reference: None,
        };
        let policy = LinkPolicy {
            expiry: Expiry::Count,
            window_ms: 0,
            unopened_ttl_ms: 60_000,
            retention_ms: 60_000,
        };
        store.create(&id, &link, &policy, true).await.unwrap();
        let result = |outcome, auth: &str, at| LinkResult {
            result: outcome,
            auth_id: auth.into(),
            verified_at_ms: at,
        };
        let later = result(Outcome::Rejected, "b", 2_000);
        let earlier = result(Outcome::Approved, "a", 1_000);
        let (w, r) = store.set_result(&id, &later).await.unwrap().unwrap();
        assert_eq!(w, ResultWrite::Applied, "{name}");
        assert_eq!(r.result, Some(Outcome::Rejected));
        let (w, r) = store.set_result(&id, &earlier).await.unwrap().unwrap();
        assert_eq!(w, ResultWrite::Stale, "{name}");
        assert_eq!(r.auth_id.as_deref(), Some("b"), "{name}");
        let (w, _) = store.set_result(&id, &later).await.unwrap().unwrap();
        assert_eq!(w, ResultWrite::Same, "{name}");
        // Same time: the larger auth id wins (a total order).
        let (w, _) = store
            .set_result(&id, &result(Outcome::Approved, "c", 2_000))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(w, ResultWrite::Applied, "{name}");
        let snap = store.get(&id).await.unwrap().unwrap();
        assert_eq!(snap.record.result, Some(Outcome::Approved), "{name}");
        assert_eq!(snap.record.verified_at_ms, Some(2_000), "{name}");
        assert!(store
            .set_result(&LinkId::random(), &later)
            .await
            .unwrap()
            .is_none());

        assert!(store
            .put_if_later("su", 10, "b", "B", 60_000)
            .await
            .unwrap());
        assert!(!store
            .put_if_later("su", 5, "z", "old", 60_000)
            .await
            .unwrap());
        assert!(!store
            .put_if_later("su", 10, "b", "B2", 60_000)
            .await
            .unwrap());
        assert!(!store
            .put_if_later("su", 10, "a", "A", 60_000)
            .await
            .unwrap());
        assert!(store
            .put_if_later("su", 11, "a", "C", 60_000)
            .await
            .unwrap());
        let (value, now) = store.read_later("su").await.unwrap();
        assert_eq!(value.as_deref(), Some("C"), "{name}");
        assert!(now > 1_700_000_000_000, "{name}: the store's clock");
        assert_eq!(store.read_later("none").await.unwrap().0, None);
    }
}

#[tokio::test]
async fn concurrent_pushes_add_a_job_once() {
    for (name, store) in store_backends().await {
        let pushes = (0..10).map(|_| {
            let store = store.clone();
            async move {
                store
                    .queue_push("q:t", "job", "{}", Some("marker"), 60_000, &POLICY)
                    .await
                    .unwrap()
            }
        });
        let added = futures::future::join_all(pushes).await;
        assert_eq!(added.iter().filter(|a| **a).count(), 1, "{name}");
        // The marker outlives the job: a redelivery after completion changes nothing.
        let claim = store.queue_claim("q:t", 10, &POLICY).await.unwrap();
        let job = &claim.jobs[0];
        assert_eq!(
            store
                .queue_settle("q:t", &job.member, &job.token, Settle::Done, &POLICY)
                .await
                .unwrap(),
            Settled::Ok
        );
        assert!(!store
            .queue_push("q:t", "job", "{}", Some("marker"), 60_000, &POLICY)
            .await
            .unwrap());
        assert!(store
            .queue_claim("q:t", 10, &POLICY)
            .await
            .unwrap()
            .jobs
            .is_empty());
    }
}

#[tokio::test]
async fn leases_fence_and_failures_dead_letter() {
    for (name, store) in store_backends().await {
        assert!(store
            .queue_push("q:l", "j1", "body-1", None, 0, &POLICY)
            .await
            .unwrap());
        assert!(!store
            .queue_push("q:l", "j1", "again", None, 0, &POLICY)
            .await
            .unwrap());
        let claim = store.queue_claim("q:l", 10, &POLICY).await.unwrap();
        assert_eq!(claim.jobs.len(), 1, "{name}");
        let job = claim.jobs[0].clone();
        assert_eq!(
            (job.body.as_str(), job.tries, job.failures),
            ("body-1", 1, 1)
        );
        assert!(job.created_ms <= claim.now_ms);
        // Leased: nobody else gets it; a wrong token settles nothing.
        assert!(store
            .queue_claim("q:l", 10, &POLICY)
            .await
            .unwrap()
            .jobs
            .is_empty());
        assert_eq!(
            store
                .queue_settle("q:l", "j1", "not-the-token", Settle::Done, &POLICY)
                .await
                .unwrap(),
            Settled::Lost,
            "{name}"
        );
        assert_eq!(
            store
                .queue_settle("q:l", "j1", &job.token, Settle::Renew, &POLICY)
                .await
                .unwrap(),
            Settled::Ok
        );
        // A failure makes it due again (after 0 ms here); the second in a row buries it.
        let fail = Settle::Fail {
            delay_ms: 0,
            reason: "error",
        };
        assert_eq!(
            store
                .queue_settle("q:l", "j1", &job.token, fail, &POLICY)
                .await
                .unwrap(),
            Settled::Ok
        );
        let again = store.queue_claim("q:l", 10, &POLICY).await.unwrap().jobs;
        assert_eq!((again[0].tries, again[0].failures), (2, 2), "{name}");
        assert_eq!(
            store
                .queue_settle("q:l", "j1", &job.token, fail, &POLICY)
                .await
                .unwrap(),
            Settled::Lost,
            "the old lease is fenced"
        );
        assert_eq!(
            store
                .queue_settle("q:l", "j1", &again[0].token, fail, &POLICY)
                .await
                .unwrap(),
            Settled::Buried,
            "{name}"
        );
        let dead = store.queue_dead("q:l", 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].member.as_str(), dead[0].tries), ("j1", 2));
        assert_eq!(dead[0].reason, "error");
        // Revived: due now, failures reset, body kept.
        assert!(store.queue_revive("q:l", "j1", &POLICY).await.unwrap());
        assert!(!store.queue_revive("q:l", "j1", &POLICY).await.unwrap());
        assert!(store.queue_dead("q:l", 10).await.unwrap().is_empty());
        let revived = store.queue_claim("q:l", 10, &POLICY).await.unwrap().jobs;
        assert_eq!(
            (revived[0].body.as_str(), revived[0].failures),
            ("body-1", 1)
        );
        // A clean retry resets the failures.
        assert_eq!(
            store
                .queue_settle(
                    "q:l",
                    "j1",
                    &revived[0].token,
                    Settle::Retry { delay_ms: 0 },
                    &POLICY
                )
                .await
                .unwrap(),
            Settled::Ok
        );
        let retried = store.queue_claim("q:l", 10, &POLICY).await.unwrap().jobs;
        assert_eq!(retried[0].failures, 1, "{name}");
        assert_eq!(
            store
                .queue_settle(
                    "q:l",
                    "j1",
                    &retried[0].token,
                    Settle::Bury {
                        reason: "unreadable"
                    },
                    &POLICY
                )
                .await
                .unwrap(),
            Settled::Buried
        );
        assert_eq!(
            store.queue_dead("q:l", 10).await.unwrap()[0].reason,
            "unreadable"
        );
    }
}
