//! The results loop: ARGOS webhooks in, pull-verified results out.
//!
//! 1. The webhook receiver hands a parsed event to [`Results::accept`]. For a `faceAuth`
//!    result it durably records a verification job in the store (before the `200`), once per
//!    authentication id (redeliveries change nothing).
//! 2. A worker ([`Results::run_due`], every `verify.poll_interval_ms`, on every replica) fetches
//!    `GET /v3/faceauth?authId=…`; the API's `auth_status` decides, never the webhook body. The
//!    record must name the link's `sid` as its `kyc_submission_id` when ARGOS reports one.
//!    While ARGOS is unreachable the job is retried with backoff until `verify.deadline_secs`;
//!    the job lives in the store, so a gateway restart loses nothing.
//! 3. The verified result is attached to the link (`result`, `auth_id`, `verified_at`), an
//!    approved one becomes the user's latest step-up (for `GET /v1/users/{id}/step-up`), and a
//!    signed callback is queued.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::argos::client::{ArgosClient, ArgosError};
use crate::argos::webhook::WebhookEvent;
use crate::callbacks::{Callbacks, StepUpCompleted};
use crate::config::{VerifySettings, WebhookSettings};
use crate::links::{LinkId, LinkResult};
use crate::sid::SidResolver;
use crate::store::{user_tag, Store, StoreError};

const QUEUE: &str = "q:verify";
const LOCK_TTL_MS: u64 = 60_000;

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
    deadline_ms: i64,
    attempts: u32,
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
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn hashed(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..16])
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
    deadline_ms: u64,
    result_ttl_ms: u64,
    dedup_ttl_ms: u64,
}

impl Results {
    /// The loop for `[verify]` and `[webhooks]`.
    pub fn new(
        store: Arc<dyn Store>,
        argos: ArgosClient,
        callbacks: Option<Callbacks>,
        sid: SidResolver,
        verify: &VerifySettings,
        webhooks: &WebhookSettings,
    ) -> Self {
        Results {
            store,
            argos,
            callbacks,
            sid,
            deadline_ms: verify.deadline_secs * 1000,
            result_ttl_ms: verify.result_ttl_secs * 1000,
            dedup_ttl_ms: webhooks.dedup_ttl_secs * 1000,
        }
    }

    /// Records a webhook event durably. Errors: [`StoreError`] (answer `503`; ARGOS retries).
    pub async fn accept(&self, event: WebhookEvent) -> Result<Accepted, StoreError> {
        match event {
            WebhookEvent::FaceAuth { token_id: None, .. } => {
                // Shapes (a) and (b) carry no token: no link to attach a result to.
                tracing::info!("faceAuth result without Token_id: acknowledged, not attached");
                Ok(Accepted::Ignored)
            }
            WebhookEvent::FaceAuth {
                auth_id, token_id, ..
            } => {
                let seen = format!("wh:{}", hashed(&auth_id));
                if self.store.read(&seen).await?.is_some() {
                    return Ok(Accepted::Duplicate);
                }
                let job_key = format!("pv:{}", hashed(&auth_id));
                let ttl = self.deadline_ms + 3_600_000;
                let job = Job {
                    auth_id: auth_id.clone(),
                    token_id,
                    deadline_ms: now_ms() + self.deadline_ms as i64,
                    attempts: 0,
                };
                let json = serde_json::to_string(&job).map_err(corrupt)?;
                // Job, queue entry, then the redelivery marker: each step is safe to repeat.
                if self
                    .store
                    .put_if_absent(&job_key, &json, ttl)
                    .await?
                    .is_none()
                {
                    self.store.schedule(QUEUE, &auth_id, 0, ttl).await?;
                }
                self.store.put(&seen, "1", self.dedup_ttl_ms).await?;
                Ok(Accepted::Accepted)
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
                    Err(crate::argos::client::ArgosError::NoKey(_)) => {
                        tracing::warn!(
                            "approved webhooks need argos.idcheck_api_key to be verified: ignored"
                        );
                        Ok(Accepted::Ignored)
                    }
                    Err(crate::argos::client::ArgosError::Refused(status)) => {
                        tracing::warn!(status, "ARGOS refused to confirm an approved webhook");
                        Ok(Accepted::Ignored)
                    }
                    // ARGOS unreachable: 503, so ARGOS delivers the webhook again later.
                    Err(e) => Err(StoreError::Unavailable(format!("ARGOS: {e}"))),
                }
            }
            WebhookEvent::TokenExpired { .. } | WebhookEvent::Other { .. } => Ok(Accepted::Ignored),
        }
    }

    /// Works through due verification jobs; returns how many were looked at.
    /// Errors: [`StoreError`].
    pub async fn run_due(&self) -> Result<usize, StoreError> {
        let due = self.store.due(QUEUE, 20).await?;
        for auth_id in &due {
            let lock = format!("pvl:{}", hashed(auth_id));
            let nonce = uuid::Uuid::new_v4().to_string();
            if self
                .store
                .put_if_absent(&lock, &nonce, LOCK_TTL_MS)
                .await?
                .is_some()
            {
                continue;
            }
            // One job's failure must not hold up the others.
            if let Err(e) = self.verify(auth_id).await {
                tracing::warn!(error = %e, "pull-verification job failed; retried later");
            }
            self.store.delete_if_equals(&lock, &nonce).await?;
        }
        Ok(due.len())
    }

    async fn finish(&self, job_key: &str, auth_id: &str) -> Result<(), StoreError> {
        self.store.unschedule(QUEUE, auth_id).await?;
        self.store.delete(job_key).await
    }

    async fn verify(&self, auth_id: &str) -> Result<(), StoreError> {
        let job_key = format!("pv:{}", hashed(auth_id));
        let Some(json) = self.store.read(&job_key).await? else {
            return self.store.unschedule(QUEUE, auth_id).await;
        };
        let mut job: Job = serde_json::from_str(&json).map_err(corrupt)?;
        if now_ms() > job.deadline_ms {
            tracing::warn!(
                attempts = job.attempts,
                "pull-verification gave up at the deadline"
            );
            count("gave_up");
            return self.finish(&job_key, auth_id).await;
        }
        let record = match self.argos.faceauth(auth_id).await {
            Ok(Some(r)) if r.auth_status == "approved" || r.auth_status == "rejected" => r,
            Ok(_) => {
                return self
                    .retry(&job_key, &mut job, "not final at ARGOS yet")
                    .await
            }
            Err(ArgosError::Refused(status)) => {
                tracing::warn!(status, "ARGOS refused the pull-verification");
                return self.retry(&job_key, &mut job, "refused").await;
            }
            Err(e) => return self.retry(&job_key, &mut job, &e.to_string()).await,
        };
        let Some(link_id) = job
            .token_id
            .as_deref()
            .and_then(|t| t.parse::<LinkId>().ok())
        else {
            tracing::info!("verified FaceAuth result without a gateway token: not attached");
            count("orphan");
            return self.finish(&job_key, auth_id).await;
        };
        let Some(snapshot) = self.store.get(&link_id).await? else {
            tracing::info!("verified FaceAuth result for a link that no longer exists");
            count("orphan");
            return self.finish(&job_key, auth_id).await;
        };
        let mut result = record.auth_status.clone();
        if snapshot.record.opened_at_ms.is_none() {
            // The FaceAuth URL of a link is only handed out when it is opened.
            tracing::warn!("a FaceAuth result for a link that was never opened");
            result = "rejected".into();
        }
        if record
            .kyc_submission_id
            .as_deref()
            .is_some_and(|s| s != snapshot.record.sid)
        {
            tracing::warn!("ARGOS compared against another submission than the link's sid");
            result = "rejected".into();
        }
        let verified = LinkResult {
            result: result.clone(),
            auth_id: auth_id.to_string(),
            // ARGOS's create_time, kept between the link's creation and now: a future or absurd
            // time must neither pass a max_age check nor break the record.
            verified_at_ms: record
                .created_at_ms
                .unwrap_or_else(now_ms)
                .clamp(snapshot.record.created_at_ms.min(now_ms()), now_ms()),
        };
        let Some(link) = self.store.set_result(&link_id, &verified).await? else {
            return self.finish(&job_key, auth_id).await;
        };
        let newer = match self.latest_step_up(&link.user_id).await? {
            Some(existing) => existing.verified_at_ms <= verified.verified_at_ms,
            None => true,
        };
        if result == "approved" && newer {
            let step_up = StepUpRecord {
                verified_at_ms: verified.verified_at_ms,
                link_id: link_id.to_string(),
                auth_id: auth_id.to_string(),
            };
            self.store
                .put(
                    &step_up_key(&link.user_id),
                    &serde_json::to_string(&step_up).map_err(corrupt)?,
                    self.result_ttl_ms,
                )
                .await?;
        }
        if let Some(callbacks) = &self.callbacks {
            callbacks
                .enqueue(&StepUpCompleted {
                    id: format!("evt_{}", hashed(auth_id)),
                    kind: "step_up.completed".into(),
                    created: now_ms() / 1000,
                    user_id: link.user_id.clone(),
                    link_id: link_id.to_string(),
                    result: result.clone(),
                    auth_id: auth_id.to_string(),
                    reference: link.reference.clone(),
                })
                .await?;
        }
        tracing::info!(result = result.as_str(), "FaceAuth result verified");
        count(if result == "approved" {
            "approved"
        } else {
            "rejected"
        });
        self.finish(&job_key, auth_id).await
    }

    async fn retry(&self, job_key: &str, job: &mut Job, why: &str) -> Result<(), StoreError> {
        job.attempts += 1;
        let delay = (500u64 << job.attempts.min(7)).min(60_000);
        tracing::info!(
            attempts = job.attempts,
            delay_ms = delay,
            why,
            "pull-verification retry"
        );
        count("retry");
        let ttl = self.deadline_ms + 3_600_000;
        self.store
            .put(job_key, &serde_json::to_string(&job).map_err(corrupt)?, ttl)
            .await?;
        self.store.schedule(QUEUE, &job.auth_id, delay, ttl).await
    }

    /// The user's latest verified step-up, if any is kept.
    /// Errors: [`StoreError`].
    pub async fn latest_step_up(&self, user_id: &str) -> Result<Option<StepUpRecord>, StoreError> {
        match self.store.read(&step_up_key(user_id)).await? {
            Some(json) => Ok(Some(serde_json::from_str(&json).map_err(corrupt)?)),
            None => Ok(None),
        }
    }
}

fn count(outcome: &str) {
    crate::metrics::METRICS
        .verifications
        .with_label_values(&[outcome])
        .inc();
}

fn step_up_key(user_id: &str) -> String {
    format!("su:{{{}}}", user_tag(user_id))
}
