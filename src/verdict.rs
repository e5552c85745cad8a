//! The verdict on one FaceAuth for one link: a pure function of the link record, ARGOS's
//! record and the store's clock. Nothing here reads a clock or writes anything; the results
//! worker ([`crate::results`]) writes after it, in one place.
//!
//! A FaceAuth counts as **approved** only if all of these hold:
//!
//! 1. **Matching**: ARGOS's record names the link's `sid` as its `kyc_submission_id` (a record
//!    without the field is not approved unless `verify.require_submission_id = false`), and,
//!    where ARGOS returns them, the link's owner as `authUserId` and the link id as `token`.
//! 2. **Opened**: the link was opened (its FaceAuth URL is only handed out on open).
//! 3. **Freshness**: ARGOS's time for the FaceAuth (`create_time`) is at or after the link's
//!    first open less the skew allowance (`verify.clock_skew_secs`), and not later than the
//!    store's now plus that allowance. A record without a usable time is rejected. The time is
//!    never moved forward; only a time a little ahead of now is clamped down to now.
//! 4. **ARGOS approved it** (`auth_status`).
//!
//! Otherwise a final record is **rejected** with the first failing reason; a record ARGOS does
//! not list yet, or whose status is not final, is **not yet** decided.

use crate::argos::client::{AuthStatus, FaceAuthRecord};
use crate::lifecycle::{LinkId, LinkRecord, Outcome};

/// The rules' settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgePolicy {
    /// The clock skew allowed between ARGOS and the store, milliseconds.
    pub skew_ms: i64,
    /// A record without `kyc_submission_id` is not approved.
    pub require_submission_id: bool,
}

/// Why a final FaceAuth does not count as approved. The spellings are a fixed vocabulary (log
/// field, metric label `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// ARGOS's `auth_status` is `rejected`.
    ArgosRejected,
    /// The record names another submission than the link's `sid`.
    OtherSubmission,
    /// The record names no submission (strict default).
    NoSubmission,
    /// ARGOS returned an `authUserId` other than the link's owner.
    OtherUser,
    /// ARGOS returned a `token` other than the link id.
    OtherToken,
    /// The link was never opened.
    NeverOpened,
    /// No usable `create_time`.
    NoTime,
    /// `create_time` before the link's open (less the allowance): an old FaceAuth.
    BeforeOpen,
    /// `create_time` later than now plus the allowance.
    InFuture,
}

impl RejectReason {
    /// The fixed spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::ArgosRejected => "argos_rejected",
            RejectReason::OtherSubmission => "other_submission",
            RejectReason::NoSubmission => "no_submission",
            RejectReason::OtherUser => "other_user",
            RejectReason::OtherToken => "other_token",
            RejectReason::NeverOpened => "never_opened",
            RejectReason::NoTime => "no_time",
            RejectReason::BeforeOpen => "before_open",
            RejectReason::InFuture => "in_future",
        }
    }
}

/// What a FaceAuth means for a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fresh, matched and approved by ARGOS.
    Approved,
    /// Final, but not a pass.
    Rejected {
        /// The first rule that failed.
        reason: RejectReason,
    },
    /// ARGOS has no final result yet: ask again later.
    NotYet,
}

impl Verdict {
    /// The result to record, `None` for [`Verdict::NotYet`].
    pub fn outcome(self) -> Option<Outcome> {
        match self {
            Verdict::Approved => Some(Outcome::Approved),
            Verdict::Rejected { .. } => Some(Outcome::Rejected),
            Verdict::NotYet => None,
        }
    }
}

/// A verdict with the time to record for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// When the user did the FaceAuth, Unix ms: ARGOS's time, clamped down to `now` if it is
    /// ahead (never moved forward); `now` if ARGOS gave none.
    pub verified_at_ms: i64,
}

/// Judges ARGOS's `record` (if it lists one) for link `id` with record `link` at the store's
/// clock `now_ms`. Pure; cannot panic whatever the times.
pub fn judge(
    id: &LinkId,
    link: &LinkRecord,
    record: Option<&FaceAuthRecord>,
    now_ms: i64,
    policy: &JudgePolicy,
) -> Judgement {
    let verified_at_ms = record
        .and_then(|r| r.created_at_ms)
        .map_or(now_ms, |t| t.min(now_ms));
    let verdict = match record {
        None => Verdict::NotYet,
        Some(r) if r.auth_status == AuthStatus::Pending => Verdict::NotYet,
        Some(r) => match reject_reason(id, link, r, now_ms, policy) {
            Some(reason) => Verdict::Rejected { reason },
            None => Verdict::Approved,
        },
    };
    Judgement {
        verdict,
        verified_at_ms,
    }
}

fn reject_reason(
    id: &LinkId,
    link: &LinkRecord,
    r: &FaceAuthRecord,
    now_ms: i64,
    policy: &JudgePolicy,
) -> Option<RejectReason> {
    match r.kyc_submission_id.as_deref() {
        Some(sid) if sid != link.sid => return Some(RejectReason::OtherSubmission),
        None if policy.require_submission_id => return Some(RejectReason::NoSubmission),
        _ => {}
    }
    if r.auth_user_id.as_deref().is_some_and(|u| u != link.user_id) {
        return Some(RejectReason::OtherUser);
    }
    if r.token_id
        .as_deref()
        .is_some_and(|t| t != id.to_string().as_str())
    {
        return Some(RejectReason::OtherToken);
    }
    let Some(opened_at) = link.opened_at_ms else {
        return Some(RejectReason::NeverOpened);
    };
    let Some(at) = r.created_at_ms else {
        return Some(RejectReason::NoTime);
    };
    if at < opened_at.saturating_sub(policy.skew_ms) {
        return Some(RejectReason::BeforeOpen);
    }
    if at > now_ms.saturating_add(policy.skew_ms) {
        return Some(RejectReason::InFuture);
    }
    if r.auth_status == AuthStatus::Rejected {
        return Some(RejectReason::ArgosRejected);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{Expiry, StoredState};

    const NOW: i64 = 1_795_000_000_000;
    const OPENED: i64 = NOW - 120_000;
    const SKEW: i64 = 60_000;
    const YEAR: i64 = 365 * 24 * 3_600_000;

    fn link(opened: Option<i64>) -> LinkRecord {
        LinkRecord {
            user_id: "victim".into(),
            sid: "sid-victim".into(),
            cf1: None,
            cf2: None,
            cf3: None,
            expiry: Expiry::Count,
            window_ms: 0,
            state: StoredState::Used,
            created_at_ms: OPENED - 1_000,
            expires_at_ms: OPENED + 600_000,
            opened_at_ms: opened,
            confirm_step: false,
            reference: None,
            result: None,
            auth_id: None,
            verified_at_ms: None,
        }
    }

    fn record(status: AuthStatus, sid: Option<&str>, at: Option<i64>) -> FaceAuthRecord {
        FaceAuthRecord {
            auth_id: "a".into(),
            auth_status: status,
            kyc_submission_id: sid.map(str::to_string),
            created_at_ms: at,
            auth_user_id: None,
            token_id: None,
        }
    }

    #[test]
    fn every_scenario() {
        use AuthStatus::*;
        use RejectReason::*;
        let id = LinkId::random();
        let strict = JudgePolicy {
            skew_ms: SKEW,
            require_submission_id: true,
        };
        let lenient = JudgePolicy {
            require_submission_id: false,
            ..strict
        };
        let ok = |at| record(Approved, Some("sid-victim"), Some(at));
        let with_user = |u: &str| FaceAuthRecord {
            auth_user_id: Some(u.into()),
            ..ok(NOW - 5_000)
        };
        let with_token = |t: String| FaceAuthRecord {
            token_id: Some(t),
            ..ok(NOW - 5_000)
        };
        let rejected = |reason| Verdict::Rejected { reason };
        // (what, link, ARGOS record, now, policy, verdict, verified_at)
        type Row = (
            &'static str,
            LinkRecord,
            Option<FaceAuthRecord>,
            i64,
            JudgePolicy,
            Verdict,
            i64,
        );
        let table: Vec<Row> = vec![
            (
                "fresh approval",
                link(Some(OPENED)),
                Some(ok(NOW - 5_000)),
                NOW,
                strict,
                Verdict::Approved,
                NOW - 5_000,
            ),
            (
                "old approval replayed (create_time years ago)",
                link(Some(OPENED)),
                Some(ok(NOW - 3 * YEAR)),
                NOW,
                strict,
                rejected(BeforeOpen),
                NOW - 3 * YEAR,
            ),
            (
                "just before the open, inside the allowance: kept, not moved",
                link(Some(OPENED)),
                Some(ok(OPENED - 30_000)),
                NOW,
                strict,
                Verdict::Approved,
                OPENED - 30_000,
            ),
            (
                "before the open, beyond the allowance",
                link(Some(OPENED)),
                Some(ok(OPENED - SKEW - 1)),
                NOW,
                strict,
                rejected(BeforeOpen),
                OPENED - SKEW - 1,
            ),
            (
                "a little ahead of now: clamped down to now",
                link(Some(OPENED)),
                Some(ok(NOW + 30_000)),
                NOW,
                strict,
                Verdict::Approved,
                NOW,
            ),
            (
                "far in the future",
                link(Some(OPENED)),
                Some(ok(NOW + SKEW + 1)),
                NOW,
                strict,
                rejected(InFuture),
                NOW,
            ),
            (
                "year 9999",
                link(Some(OPENED)),
                Some(ok(253_402_300_799_999)),
                NOW,
                strict,
                rejected(InFuture),
                NOW,
            ),
            (
                "no create_time",
                link(Some(OPENED)),
                Some(record(Approved, Some("sid-victim"), None)),
                NOW,
                strict,
                rejected(NoTime),
                NOW,
            ),
            (
                "no kyc_submission_id, strict",
                link(Some(OPENED)),
                Some(record(Approved, None, Some(NOW - 5_000))),
                NOW,
                strict,
                rejected(NoSubmission),
                NOW - 5_000,
            ),
            (
                "no kyc_submission_id, lenient setting",
                link(Some(OPENED)),
                Some(record(Approved, None, Some(NOW - 5_000))),
                NOW,
                lenient,
                Verdict::Approved,
                NOW - 5_000,
            ),
            (
                "another user's submission",
                link(Some(OPENED)),
                Some(record(Approved, Some("sid-other"), Some(NOW - 5_000))),
                NOW,
                lenient,
                rejected(OtherSubmission),
                NOW - 5_000,
            ),
            (
                "another authUserId",
                link(Some(OPENED)),
                Some(with_user("eve")),
                NOW,
                strict,
                rejected(OtherUser),
                NOW - 5_000,
            ),
            (
                "the owner's authUserId",
                link(Some(OPENED)),
                Some(with_user("victim")),
                NOW,
                strict,
                Verdict::Approved,
                NOW - 5_000,
            ),
            (
                "another token",
                link(Some(OPENED)),
                Some(with_token(LinkId::random().to_string())),
                NOW,
                strict,
                rejected(OtherToken),
                NOW - 5_000,
            ),
            (
                "the link's token",
                link(Some(OPENED)),
                Some(with_token(id.to_string())),
                NOW,
                strict,
                Verdict::Approved,
                NOW - 5_000,
            ),
            (
                "never opened",
                link(None),
                Some(ok(NOW - 5_000)),
                NOW,
                strict,
                rejected(NeverOpened),
                NOW - 5_000,
            ),
            (
                "ARGOS rejected",
                link(Some(OPENED)),
                Some(record(Rejected, Some("sid-victim"), Some(NOW - 5_000))),
                NOW,
                strict,
                rejected(ArgosRejected),
                NOW - 5_000,
            ),
            (
                "ARGOS rejected, old and unmatched: rejected either way",
                link(Some(OPENED)),
                Some(record(Rejected, Some("x"), Some(0))),
                NOW,
                strict,
                rejected(OtherSubmission),
                0,
            ),
            (
                "not final at ARGOS",
                link(Some(OPENED)),
                Some(record(Pending, Some("sid-victim"), Some(NOW - 5_000))),
                NOW,
                strict,
                Verdict::NotYet,
                NOW - 5_000,
            ),
            (
                "not listed by ARGOS yet",
                link(Some(OPENED)),
                None,
                NOW,
                strict,
                Verdict::NotYet,
                NOW,
            ),
            // The store's clock stepped back below the open (failover to a lagging server):
            // the bounds cross, nothing panics, nothing passes that should not.
            (
                "clock stepped back below the open",
                link(Some(NOW + 600_000)),
                Some(ok(NOW - 5_000)),
                NOW,
                strict,
                rejected(BeforeOpen),
                NOW - 5_000,
            ),
            (
                "extreme times",
                link(Some(i64::MIN)),
                Some(ok(i64::MAX)),
                i64::MAX,
                strict,
                Verdict::Approved,
                i64::MAX,
            ),
        ];
        for (what, link, record, now, policy, verdict, verified_at) in table {
            let j = judge(&id, &link, record.as_ref(), now, &policy);
            assert_eq!(j.verdict, verdict, "{what}");
            assert_eq!(j.verified_at_ms, verified_at, "{what}: verified_at");
            assert!(j.verified_at_ms <= now, "{what}: never after now");
        }
    }

    #[test]
    fn outcomes() {
        assert_eq!(Verdict::Approved.outcome(), Some(Outcome::Approved));
        assert_eq!(
            Verdict::Rejected {
                reason: RejectReason::NoTime
            }
            .outcome(),
            Some(Outcome::Rejected)
        );
        assert_eq!(Verdict::NotYet.outcome(), None);
    }
}
