//! One work-queue abstraction for the background workers (pull-verification and callbacks),
//! and the supervisor that runs them.
//!
//! * **Durable**: jobs live in the store (in Redis: `<prefix>{q:<name>}:due|jobs|dead`, one
//!   hash tag per queue so every step is one atomic script, also on a cluster).
//! * **One worker at a time**: a claim leases each job to one worker (`verify.lock_ttl_secs`)
//!   and moves its due time past the lease; the worker renews the lease while it works, and
//!   settling needs the lease's token, so a worker that lost its lease changes nothing.
//!   Start-up refuses settings that allow an ARGOS call longer than the lease.
//! * **Poison jobs never block**: every job of a round is worked on whatever happened to the
//!   ones before it. A job that panics, errors, times out or loses its lease is due again after
//!   a backoff; after `verify.max_failures` such attempts in a row, or at once when it can
//!   never succeed (unreadable, past its deadline), it moves to the dead-letter set (log line
//!   `job dead-lettered`, metric `faceauth_jobs_dead_lettered_total{queue}`), where
//!   `faceauth-gateway jobs list|retry` finds it.
//! * **Supervised**: [`supervise`] runs a worker's rounds forever; a round that panics, fails
//!   or hangs is logged and counted (`faceauth_worker_restarts_total{worker}`), and the worker
//!   goes on. Each completed round sets `faceauth_worker_last_round_timestamp_seconds{worker}`.

use async_trait::async_trait;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::store::{Claim, ClaimedJob, DeadJob, QueuePolicy, Settle, Settled, Store, StoreError};

/// How every queue leases jobs and gives up on them (`[verify]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// Lease of a claimed job, milliseconds; renewed while working.
    pub lease_ms: u64,
    /// Failed attempts in a row before a job is dead-lettered.
    pub max_failures: u32,
    /// How long dead-lettered jobs are kept, milliseconds.
    pub dead_letter_ttl_ms: u64,
}

/// The queues (and workers) of the gateway: a fixed vocabulary for keys, labels and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueName {
    /// Pull-verification of FaceAuth results.
    Verify,
    /// Signed callbacks to the app.
    Callbacks,
    /// ARGOS deletions of an erasure (issue 19).
    Erasure,
}

impl QueueName {
    /// Every queue.
    pub const ALL: [QueueName; 3] = [QueueName::Verify, QueueName::Callbacks, QueueName::Erasure];

    /// The label / CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Verify => "verify",
            QueueName::Callbacks => "callbacks",
            QueueName::Erasure => "erasure",
        }
    }

    /// The store key stem (`q:verify`, `q:callbacks`).
    pub fn key(self) -> &'static str {
        match self {
            QueueName::Verify => "q:verify",
            QueueName::Callbacks => "q:callbacks",
            QueueName::Erasure => "q:erasure",
        }
    }
}

/// What a handler decided for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Finished; remove the job.
    Done,
    /// Not finished, cleanly (e.g. ARGOS has no final answer yet): try again after this many
    /// ms.
    Retry(u64),
    /// Can never succeed as it is: dead-letter it now, with this fixed-vocabulary reason.
    Bury(&'static str),
}

/// Works on one job of a queue. Errors count as a failed attempt.
#[async_trait]
pub trait Handler: Clone + Send + Sync + 'static {
    /// Handles `job`; `now_ms` is the store's clock at the claim.
    async fn handle(&self, job: &ClaimedJob, now_ms: i64) -> Result<Step, StoreError>;
}

/// Aborts a spawned task when dropped (a stopped worker stops its job too).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How one attempt ended.
enum Attempt {
    Step(Step),
    Failed(&'static str),
    LostLease,
}

/// A durable work queue in the store.
#[derive(Clone)]
pub struct WorkQueue {
    store: Arc<dyn Store>,
    name: QueueName,
    policy: QueuePolicy,
    batch: usize,
}

impl WorkQueue {
    /// The queue `name` over `store`; `horizon_ms` is how long its jobs may live (deadline or
    /// retry horizon), the lease and dead-letter limits come from `limits` (`[verify]`).
    pub fn new(
        store: Arc<dyn Store>,
        name: QueueName,
        horizon_ms: u64,
        limits: impl Into<JobLimits>,
    ) -> Self {
        let limits = limits.into();
        let dead_ttl_ms = limits.dead_letter_ttl_ms.max(1);
        WorkQueue {
            store,
            name,
            policy: QueuePolicy {
                lease_ms: limits.lease_ms.max(1),
                max_failures: limits.max_failures.max(1),
                ttl_ms: horizon_ms
                    .saturating_add(dead_ttl_ms)
                    .saturating_add(3_600_000),
                dead_ttl_ms,
            },
            batch: 20,
        }
    }

    /// The queue's name.
    pub fn name(&self) -> QueueName {
        self.name
    }

    /// The lease of a claimed job.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.policy.lease_ms)
    }

    /// Queues `member` with `body` unless it is queued already, or `marker` (kept
    /// `marker_ttl_ms`) was seen before. One atomic step; returns whether it was added.
    /// Errors: [`StoreError`].
    pub async fn push(
        &self,
        member: &str,
        body: &str,
        marker: Option<(&str, u64)>,
    ) -> Result<bool, StoreError> {
        self.store
            .queue_push(
                self.name.key(),
                member,
                body,
                marker.map(|(m, _)| m),
                marker.map_or(0, |(_, ttl)| ttl),
                &self.policy,
            )
            .await
    }

    /// Dead-lettered jobs, oldest first (at most `limit`). Errors: [`StoreError`].
    pub async fn dead(&self, limit: usize) -> Result<Vec<DeadJob>, StoreError> {
        self.store.queue_dead(self.name.key(), limit).await
    }

    /// Puts a dead-lettered job back, due now, with its failures and age reset; returns
    /// whether it was dead-lettered. Errors: [`StoreError`].
    pub async fn revive(&self, member: &str) -> Result<bool, StoreError> {
        self.store
            .queue_revive(self.name.key(), member, &self.policy)
            .await
    }

    /// One round: claims the due jobs and works on each with `handler`, whatever happens to
    /// the others; returns how many were claimed. Errors: [`StoreError`] from the claim only.
    pub async fn run_round<H: Handler>(&self, handler: &H) -> Result<usize, StoreError> {
        let Claim {
            now_ms,
            jobs,
            buried,
        } = self
            .store
            .queue_claim(self.name.key(), self.batch, &self.policy)
            .await?;
        for (member, reason) in &buried {
            self.dead_lettered(member, reason);
        }
        // The jobs of a round run side by side: one slow ARGOS answer does not hold up the
        // others (each job is bounded by its lease).
        futures_util::future::join_all(jobs.iter().map(|job| self.work_one(handler, job, now_ms)))
            .await;
        Ok(jobs.len())
    }

    /// Works one claimed job and settles it (fenced by its lease token).
    async fn work_one<H: Handler>(&self, handler: &H, job: &ClaimedJob, now_ms: i64) {
        let settle = match self.attempt(handler, job, now_ms).await {
            Attempt::Step(Step::Done) => Settle::Done,
            Attempt::Step(Step::Retry(delay_ms)) => Settle::Retry { delay_ms },
            Attempt::Step(Step::Bury(reason)) => Settle::Bury { reason },
            Attempt::Failed(reason) => Settle::Fail {
                delay_ms: failure_backoff_ms(job.failures),
                reason,
            },
            Attempt::LostLease => {
                tracing::warn!(
                    queue = self.name.as_str(),
                    "job lease lost while working; another worker may take it over"
                );
                return;
            }
        };
        match self
            .store
            .queue_settle(
                self.name.key(),
                &job.member,
                &job.token,
                settle,
                &self.policy,
            )
            .await
        {
            Ok(Settled::Ok) => {}
            Ok(Settled::Buried) => self.dead_lettered(&job.member, settle_reason(settle)),
            Ok(Settled::Lost) => tracing::warn!(
                queue = self.name.as_str(),
                "job lease lost before settling; the outcome was not recorded"
            ),
            // The lease runs out and the job is due again: nothing is lost.
            Err(e) => tracing::warn!(
                queue = self.name.as_str(),
                error = %e,
                "job could not be settled; due again after its lease"
            ),
        }
    }

    fn dead_lettered(&self, member: &str, reason: &str) {
        // Members are authentication ids or event ids, never link ids or secrets.
        tracing::error!(
            queue = self.name.as_str(),
            job = member,
            reason,
            "job dead-lettered; list with `faceauth-gateway jobs list`, retry with \
             `faceauth-gateway jobs retry`"
        );
        crate::metrics::METRICS
            .dead_lettered
            .with_label_values(&[self.name.as_str()])
            .inc();
    }

    /// Runs `handler` on `job` in its own task (a panic is caught), renewing the lease while
    /// it works, for at most two leases.
    async fn attempt<H: Handler>(&self, handler: &H, job: &ClaimedJob, now_ms: i64) -> Attempt {
        let task = {
            let handler = handler.clone();
            let job = job.clone();
            // One span per job (a root span: the queue name only, never the job id); its
            // outgoing calls carry its trace context.
            let span = tracing::info_span!(
                "job",
                otel.name = %format_args!("job {}", self.name.as_str()),
                otel.kind = "consumer",
                queue = self.name.as_str(),
            );
            AbortOnDrop(tokio::spawn(tracing::Instrument::instrument(
                async move { handler.handle(&job, now_ms).await },
                span,
            )))
        };
        let renew = async {
            let every = self.lease() / 3;
            loop {
                tokio::time::sleep(every).await;
                match self
                    .store
                    .queue_settle(
                        self.name.key(),
                        &job.member,
                        &job.token,
                        Settle::Renew,
                        &self.policy,
                    )
                    .await
                {
                    Ok(Settled::Lost) => return,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "lease renewal failed; trying again"),
                }
            }
        };
        let mut task = task;
        // A job never needs longer than two leases (start-up checks that an ARGOS call fits
        // in one): past that it hangs, and counts as a failed attempt.
        let limit = tokio::time::sleep(self.lease() * 2);
        let outcome = tokio::select! {
            joined = &mut task.0 => joined,
            () = renew => return Attempt::LostLease,
            () = limit => {
                tracing::warn!(queue = self.name.as_str(), "job took longer than two leases; stopped");
                return Attempt::Failed("timeout");
            }
        };
        let worker = self.name.as_str();
        match outcome {
            Ok(Ok(step)) => Attempt::Step(step),
            Ok(Err(e)) => {
                tracing::warn!(queue = worker, error = %e, "job failed; retried later");
                Attempt::Failed("error")
            }
            Err(join) => {
                let reason = if join.is_panic() {
                    "panic"
                } else {
                    "cancelled"
                };
                tracing::error!(queue = worker, reason, "job panicked; the worker goes on");
                crate::metrics::METRICS
                    .worker_restarts
                    .with_label_values(&[worker])
                    .inc();
                Attempt::Failed(reason)
            }
        }
    }
}

fn settle_reason(settle: Settle) -> &'static str {
    match settle {
        Settle::Fail { reason, .. } | Settle::Bury { reason } => reason,
        _ => "failures",
    }
}

/// Backoff after a failed attempt: 1 s, 2 s, 4 s … at most 60 s.
fn failure_backoff_ms(failures: u32) -> u64 {
    (500u64 << failures.clamp(1, 7)).min(60_000)
}

/// A supervised worker's metric label, and whether it works a queue (and so can dead-letter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerName(&'static str, bool);

impl WorkerName {
    /// The store's upkeep (clock offset to Redis): no queue.
    pub const STORE: WorkerName = WorkerName("store", false);
}

impl From<QueueName> for WorkerName {
    fn from(q: QueueName) -> Self {
        WorkerName(q.as_str(), true)
    }
}

/// Runs `round` every `every`, forever: a round that panics, returns an error or takes longer
/// than `round_timeout` is logged and counted in `faceauth_worker_restarts_total{worker}`, and
/// the next round starts as usual. Each completed round sets
/// `faceauth_worker_last_round_timestamp_seconds{worker}`. Aborting the returned handle stops
/// the worker and its current round.
pub fn supervise<F, Fut>(
    worker: impl Into<WorkerName>,
    every: Duration,
    round_timeout: Duration,
    round: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<usize, StoreError>> + Send + 'static,
{
    let worker = worker.into();
    let name = worker.0;
    let m = &crate::metrics::METRICS;
    // Exported from the start (at 0), so dashboards and alerts see every worker.
    m.worker_restarts.with_label_values(&[name]);
    if worker.1 {
        m.dead_lettered.with_label_values(&[name]);
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let mut task = AbortOnDrop(tokio::spawn(tokio::time::timeout(round_timeout, round())));
            let failure = match (&mut task.0).await {
                Ok(Ok(Ok(_))) => None,
                Ok(Ok(Err(e))) => Some(e.to_string()),
                Ok(Err(_)) => Some(format!(
                    "round took longer than {} ms",
                    round_timeout.as_millis()
                )),
                Err(join) if join.is_panic() => Some("round panicked".to_string()),
                Err(_) => Some("round cancelled".to_string()),
            };
            match failure {
                None => {
                    let now = crate::clock::now_secs_f64();
                    m.worker_last_round.with_label_values(&[name]).set(now);
                }
                Some(error) => {
                    tracing::error!(
                        worker = name,
                        error,
                        "worker round failed; the worker goes on"
                    );
                    m.worker_restarts.with_label_values(&[name]).inc();
                }
            }
        }
    })
}
