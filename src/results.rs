//! The results loop: ARGOS webhooks in, pull-verified results out.
//!
//! 1. The webhook receiver hands a parsed event to [`Results::accept`]. For a `faceAuth`
//!    result it queues a verification job in the store (before the `200`), once per
//!    authentication id: the redelivery check and the job are one atomic step, so of N
//!    concurrent copies exactly one is `accepted`.
//! 2. A worker (every `verify.poll_interval_ms`, on every replica, one replica per job: see
//!    [`crate::queue`]) fetches `GET /v3/faceauth?authId=…`, and [`crate::verdict::judge`]
//!    decides from ARGOS's record, the link and the store's clock (freshness, matching).
//!    While ARGOS has no final answer the job is retried with backoff until
//!    `verify.deadline_secs`, then dead-lettered.
//! 3. [`Results::apply`] writes a final verdict, in one place, under one ordering rule: among
//!    the FaceAuths verified for a link, the one with the later (`verified_at`, `auth_id`) is
//!    the link's result; among a user's approved ones, the later is the step-up record; every
//!    verified FaceAuth yields exactly one callback (event id from the authentication id,
//!    carrying `verified_at`). Each write is idempotent and order-independent, so webhook
//!    order, redeliveries and re-verification change nothing.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::argos::client::{ArgosClient, ArgosError};
use crate::argos::webhook::WebhookEvent;
use crate::assertions::{AssertionFacts, Assertions};
use crate::callbacks::{Callbacks, StepUpCompleted};
use crate::digest::short_hex;
use crate::links::{LinkId, LinkRecord, LinkResult, Outcome};
use crate::queue::{Handler, JobLimits, QueueName, Step, WorkQueue};
use crate::sid::SidResolver;
use crate::store::{user_tag, ClaimedJob, ResultWrite, Store, StoreError};
use crate::verdict::{judge, JudgePolicy, Judgement, Verdict};

/// The results loop's deadlines and lifetimes (`[verify]`, `[webhooks]`, `[erasure]`), ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// Give up pull-verification after this long.
    pub deadline_ms: u64,
    /// Verified result lifetime.
    pub result_ttl_ms: u64,
    /// Webhook redelivery memory.
    pub dedup_ttl_ms: u64,
    /// How long the per-user sets of authentication ids are kept (erasure).
    pub auth_ids_ttl_ms: u64,
    /// What counts as approved.
    pub judge: JudgePolicy,
    /// Leases and dead letters of the verification queue.
    pub jobs: JobLimits,
}

/// What the receiver did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accepted {
    /// Recorded for pull-verification / applied.
    Accepted,
    /// Seen before: nothing changed.
    Duplicate,
    /// Understood and deliberately not acted on (unknown trigger, other service).
    Ignored,
}

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    auth_id: String,
    token_id: Option<String>,
}

/// The user's latest verified step-up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepUpRecord {
    /// When the user did the FaceAuth, Unix milliseconds.
    pub verified_at_ms: i64,
    /// The link.
    pub link_id: String,
    /// ARGOS authentication id.
    pub auth_id: String,
    /// The link's `reference` (service-minted links); absent in records written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// The user's latest step-up with the store's clock at the read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUpRead {
    /// The record, if one is kept.
    pub record: Option<StepUpRecord>,
    /// The store's clock (Redis `TIME`), Unix ms.
    pub now_ms: i64,
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// The results loop over a store, the ARGOS client and (optionally) callbacks.
#[derive(Clone)]
pub struct Results {
    store: Arc<dyn Store>,
    argos: ArgosClient,
    callbacks: Option<Callbacks>,
    sid: SidResolver,
    queue: WorkQueue,
    policy: JudgePolicy,
    deadline_ms: u64,
    result_ttl_ms: u64,
    dedup_ttl_ms: u64,
    assertions: Option<Arc<Assertions>>,
    auth_ids_ttl_ms: u64,
}

impl Results {
    /// The loop under `policy`.
    pub fn new(
        store: Arc<dyn Store>,
        argos: ArgosClient,
        callbacks: Option<Callbacks>,
        sid: SidResolver,
        policy: VerifyPolicy,
    ) -> Self {
        Results {
            queue: WorkQueue::new(
                store.clone(),
                QueueName::Verify,
                policy.deadline_ms,
                policy.jobs,
            ),
            store,
            argos,
            callbacks,
            sid,
            policy: policy.judge,
            deadline_ms: policy.deadline_ms,
            result_ttl_ms: policy.result_ttl_ms,
            dedup_ttl_ms: policy.dedup_ttl_ms,
            assertions: None,
            auth_ids_ttl_ms: policy.auth_ids_ttl_ms,
        }
    }

    /// Puts a signed assertion into the callbacks of approved results (`[assertions]`).
    pub fn with_assertions(mut self, assertions: Option<Arc<Assertions>>) -> Self {
        self.assertions = assertions;
        self
    }

    /// Records a webhook event durably. Errors: [`StoreError`] (answer `503`; ARGOS delivers
    /// again).
    pub async fn accept(&self, event: WebhookEvent) -> Result<Accepted, StoreError> {
        match event {
            WebhookEvent::FaceAuth { token_id: None, .. } => {
                // Shapes (a) and (b) carry no token: no link to attach a result to.
                tracing::info!("faceAuth result without Token_id: acknowledged, not attached");
                Ok(Accepted::Ignored)
            }
            WebhookEvent::FaceAuth {
                token_id: Some(token),
                ..
            } if token.parse::<LinkId>().is_err() => {
                // Not a token this gateway issued (ids are canonical lowercase UUID v4): nothing
                // to attach to, and the authentication id is not marked as seen, so the genuine
                // delivery still counts.
                tracing::info!("faceAuth result with a Token_id that is no link id: ignored");
                Ok(Accepted::Ignored)
            }
            WebhookEvent::FaceAuth {
                auth_id, token_id, ..
            } => {
                let job = Job {
                    auth_id: auth_id.clone(),
                    token_id,
                };
                let json = serde_json::to_string(&job).map_err(corrupt)?;
                // Redelivery check, job and queue entry: one atomic step.
                let marker = short_hex(&auth_id);
                let added = self
                    .queue
                    .push(&auth_id, &json, Some((&marker, self.dedup_ttl_ms)))
                    .await?;
                Ok(if added {
                    Accepted::Accepted
                } else {
                    Accepted::Duplicate
                })
            }
            WebhookEvent::Approved {
                user_id,
                submission_id,
            } => {
                // Unsigned body: the mapping counts only if ARGOS confirms the submission is
                // this user's and approved.
                match self.argos.submission_owner(&submission_id).await {
                    Ok(Some((owner, true))) if owner == user_id => {
                        self.sid.remember(&user_id, &submission_id).await?;
                        Ok(Accepted::Accepted)
                    }
                    Ok(_) => {
                        tracing::warn!("approved webhook not confirmed by ARGOS: ignored");
                        Ok(Accepted::Ignored)
                    }
                    Err(ArgosError::NoKey(_)) => {
                        tracing::warn!(
                            "approved webhooks need argos.idcheck_api_key to be verified: ignored"
                        );
                        Ok(Accepted::Ignored)
                    }
                    // Refused (4xx), unreachable or unreadable: 503, nothing stored, so ARGOS
                    // delivers the webhook again later.
                    Err(e) => {
                        tracing::warn!(error = %e, "ARGOS did not confirm an approved webhook");
                        Err(StoreError::Unavailable(format!("ARGOS: {e}")))
                    }
                }
            }
            WebhookEvent::TokenExpired { .. } | WebhookEvent::Other { .. } => Ok(Accepted::Ignored),
        }
    }

    /// One round of the verification worker; returns how many jobs it looked at.
    /// Errors: [`StoreError`].
    pub async fn run_due(&self) -> Result<usize, StoreError> {
        self.queue.run_round(self).await
    }

    async fn verify(&self, job: &ClaimedJob, now_ms: i64) -> Result<Step, StoreError> {
        let Ok(Job { auth_id, token_id }) = serde_json::from_str::<Job>(&job.body) else {
            tracing::error!("unreadable pull-verification job");
            return Ok(Step::Bury("unreadable"));
        };
        if now_ms.saturating_sub(job.created_ms) > self.deadline_ms as i64 {
            tracing::warn!(
                attempts = job.tries,
                "pull-verification gave up at the deadline"
            );
            count("gave_up");
            return Ok(Step::Bury("deadline"));
        }
        let retry = (500u64 << job.tries.min(7)).min(60_000);
        let record = match self.argos.faceauth(&auth_id).await {
            Ok(record) => record,
            Err(e) => {
                tracing::info!(attempts = job.tries, delay_ms = retry, error = %e, "pull-verification retry");
                count("retry");
                return Ok(Step::Retry(retry));
            }
        };
        let Some(link_id) = token_id.as_deref().and_then(|t| t.parse::<LinkId>().ok()) else {
            tracing::info!("verified FaceAuth result without a gateway token: not attached");
            count("orphan");
            return Ok(Step::Done);
        };
        // The link with the store's clock: the one clock every decision uses.
        let Some(snapshot) = self.store.get(&link_id).await? else {
            tracing::info!("verified FaceAuth result for a link that no longer exists");
            count("orphan");
            return Ok(Step::Done);
        };
        // The id is recorded for the user's erasure, unless the user was erased after this
        // link was made: then nothing is attached.
        if !crate::erasure::note_auth_id(
            self.store.as_ref(),
            &snapshot.record.user_id,
            &auth_id,
            snapshot.record.created_at_ms,
            self.auth_ids_ttl_ms,
        )
        .await?
        {
            tracing::info!("FaceAuth result for an erased user: not attached");
            count("erased");
            return Ok(Step::Done);
        }
        let judgement = judge(
            &link_id,
            &snapshot.record,
            record.as_ref(),
            snapshot.now_ms,
            &self.policy,
        );
        if judgement.verdict == Verdict::NotYet {
            tracing::info!(
                attempts = job.tries,
                delay_ms = retry,
                "pull-verification retry: not final at ARGOS yet"
            );
            count("retry");
            return Ok(Step::Retry(retry));
        }
        self.apply(&link_id, &auth_id, judgement, snapshot.now_ms)
            .await?;
        Ok(Step::Done)
    }

    /// Writes a final verdict: the link's result, the user's step-up record and the callback,
    /// each idempotent and independent of the order FaceAuths are verified in.
    async fn apply(
        &self,
        link_id: &LinkId,
        auth_id: &str,
        judgement: Judgement,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let Some(outcome) = judgement.verdict.outcome() else {
            return Ok(());
        };
        let result = LinkResult {
            result: outcome,
            auth_id: auth_id.to_string(),
            verified_at_ms: judgement.verified_at_ms,
        };
        let Some((write, link)) = self.store.set_result(link_id, &result).await? else {
            tracing::info!("verified FaceAuth result for a link that no longer exists");
            count("orphan");
            return Ok(());
        };
        if outcome == Outcome::Approved {
            self.record_step_up(link_id, &link, &result).await?;
        }
        if let Some(callbacks) = &self.callbacks {
            self.enqueue_callback(callbacks, link_id, &link, &result, now_ms)
                .await?;
        }
        log_verdict(judgement.verdict, write, outcome);
        count(outcome.as_str());
        Ok(())
    }

    /// The user's step-up record: the latest approved FaceAuth wins, whatever the order.
    async fn record_step_up(
        &self,
        link_id: &LinkId,
        link: &LinkRecord,
        result: &LinkResult,
    ) -> Result<(), StoreError> {
        let step_up = StepUpRecord {
            verified_at_ms: result.verified_at_ms,
            link_id: link_id.to_string(),
            auth_id: result.auth_id.clone(),
            reference: link.reference.clone(),
        };
        self.store
            .put_if_later(
                &step_up_key(&link.user_id),
                result.verified_at_ms,
                &result.auth_id,
                &serde_json::to_string(&step_up).map_err(corrupt)?,
                self.result_ttl_ms,
            )
            .await?;
        Ok(())
    }

    /// The `step_up.completed` callback, with an assertion for an approved result.
    async fn enqueue_callback(
        &self,
        callbacks: &Callbacks,
        link_id: &LinkId,
        link: &LinkRecord,
        result: &LinkResult,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let outcome = result.result;
        let auth_id = result.auth_id.as_str();
        // Made here, from the result being written, only for an approved one; an
        // assertion whose exp has passed is left out.
        let assertion = match (&self.assertions, outcome) {
            (Some(assertions), Outcome::Approved) => assertions
                .issue(
                    &AssertionFacts {
                        user_id: &link.user_id,
                        link_id: &link_id.to_string(),
                        auth_id,
                        verified_at_ms: result.verified_at_ms,
                        reference: link.reference.as_deref(),
                    },
                    now_ms,
                    "callback",
                )
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            _ => None,
        };
        callbacks
            .enqueue(&StepUpCompleted {
                id: format!("evt_{}", short_hex(auth_id)),
                kind: "step_up.completed".into(),
                created: now_ms / 1000,
                user_id: link.user_id.clone(),
                link_id: link_id.to_string(),
                result: outcome,
                auth_id: auth_id.to_string(),
                verified_at: Some(crate::links::utc_from_ms(result.verified_at_ms)),
                reference: link.reference.clone(),
                assertion,
            })
            .await?;
        Ok(())
    }
}

/// Logs (and counts the rejection reason of) a written verdict.
fn log_verdict(verdict: Verdict, write: ResultWrite, outcome: Outcome) {
    let reason = match verdict {
        Verdict::Rejected { reason } => {
            crate::metrics::METRICS
                .rejections
                .with_label_values(&[reason.as_str()])
                .inc();
            reason.as_str()
        }
        _ => "",
    };
    let write = match write {
        ResultWrite::Applied => "applied",
        ResultWrite::Same => "same",
        ResultWrite::Stale => "stale",
    };
    tracing::info!(
        result = outcome.as_str(),
        reason,
        link_result = write,
        "FaceAuth result verified"
    );
}

impl Results {
    /// The user's latest verified step-up, if any is kept, with the store's clock.
    /// Errors: [`StoreError`].
    pub async fn latest_step_up(&self, user_id: &str) -> Result<StepUpRead, StoreError> {
        let (json, now_ms) = self.store.read_later(&step_up_key(user_id)).await?;
        let record = match json {
            Some(json) => Some(serde_json::from_str(&json).map_err(corrupt)?),
            None => None,
        };
        Ok(StepUpRead { record, now_ms })
    }
}

#[async_trait::async_trait]
impl Handler for Results {
    async fn handle(&self, job: &ClaimedJob, now_ms: i64) -> Result<Step, StoreError> {
        self.verify(job, now_ms).await
    }
}

fn count(outcome: &str) {
    crate::metrics::METRICS
        .verifications
        .with_label_values(&[outcome])
        .inc();
}

/// The step-up record of a user (a hash written by `put_if_later`).
fn step_up_key(user_id: &str) -> String {
    format!("stepup:{{{}}}", user_tag(user_id))
}
