//! Minting, opening and reading links: the gateway's core, independent of HTTP.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::sync::Arc;
use time::OffsetDateTime;

use super::{Expiry, LinkId, LinkPolicy, LinkRecord, LinkState, NewLink, Outcome};
use crate::argos::url::{FaceAuthParams, FaceAuthUrlBuilder};
use crate::assertions::{Assertion, AssertionError, AssertionFacts, Assertions};
use crate::store::{
    Guarded, Guards, IndexEntry, LiveLink, OpenResult, RevokeResult, Store, StoreError, WindowLimit,
};

/// What opening a link leads to.
#[derive(Debug)]
pub enum Opened {
    /// Redirect to this FaceAuth URL (a secret).
    Redirect(SecretString),
    /// Show the confirm page; nothing was consumed.
    NeedsConfirmation,
}

/// A freshly minted link.
#[derive(Debug, Clone)]
pub struct MintedLink {
    /// The link id (also the FaceAuth `token`).
    pub id: LinkId,
    /// The record as stored.
    pub record: LinkRecord,
}

/// The public view of a link (`GET /v1/links/{id}`). Times are RFC 3339 UTC.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct LinkStatus {
    /// Link id.
    pub id: String,
    /// `issued` | `opened` | `used` | `expired` | `revoked`.
    pub state: LinkState,
    /// `count` | `time`.
    pub expiry: Expiry,
    /// Mint time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Issued: end of the unopened TTL. Opened: end of the window.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// First open, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    pub opened_at: Option<OffsetDateTime>,
    /// Whether only the confirm page's `POST` consumes the link.
    pub confirm_step: bool,
    /// Pull-verified FaceAuth result: `approved`, `rejected`, or `null` while unknown.
    #[schema(value_type = Option<String>)]
    pub result: Option<super::Outcome>,
    /// ARGOS authentication id of that result.
    pub auth_id: Option<String>,
    /// When the user did the FaceAuth, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
    /// The session layer's reference, if the link was minted with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// For the link's owner, once the result is `approved` and `[assertions]` is on: a signed
    /// step-up assertion (a JWT to hand to the app's backend; see
    /// `docs/step-up-assertions.md`). Absent once its `exp` (`verified_at` +
    /// `assertions.lifetime_secs`) has passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub assertion: Option<Assertion>,
}

fn refusal(state: LinkState) -> LinkError {
    match state {
        LinkState::Used => LinkError::Used,
        LinkState::Revoked => LinkError::Revoked,
        _ => LinkError::Expired,
    }
}

/// Converts store milliseconds to a UTC timestamp (clamped to the representable range).
pub fn utc_from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Why a link operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No such link (never minted, deleted after retention, or another user's).
    #[error("link not found")]
    NotFound,
    /// Count-based link already opened.
    #[error("link already used")]
    Used,
    /// Unopened TTL or time window over.
    #[error("link expired")]
    Expired,
    /// Revoked by its owner or superseded by a newer link.
    #[error("link revoked")]
    Revoked,
    /// The FaceAuth URL would exceed `argos.max_url_bytes`; nothing was minted.
    #[error("the FaceAuth URL would be {url_bytes} bytes (limit {limit}); longest field {field}")]
    TooLong {
        /// Longest field, e.g. `authCf1`.
        field: &'static str,
        /// Bytes of that field.
        field_bytes: usize,
        /// Bytes the URL would have.
        url_bytes: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The store failed; nothing was issued.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing the step-up assertion failed.
    #[error(transparent)]
    Assertion(#[from] AssertionError),
}

/// Link behaviour beyond lifetimes (from `links.*` and `argos.max_url_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkOptions {
    /// Default of the per-link confirm step.
    pub confirm_step: bool,
    /// Minting revokes the same user's earlier never-opened links.
    pub single_active: bool,
    /// Longest FaceAuth URL accepted, in bytes.
    pub max_url_bytes: usize,
}

/// Mints and opens links against a [`Store`], building FaceAuth URLs on the way out.
#[derive(Clone)]
pub struct LinkService {
    store: Arc<dyn Store>,
    policy: LinkPolicy,
    options: LinkOptions,
    urls: FaceAuthUrlBuilder,
    accepted_risks: Vec<String>,
    assertions: Option<Arc<Assertions>>,
}

/// The store key of a user's index of links (for `single_active`): the user id is hashed so
/// keys stay short whatever the id; the hash is a Redis Cluster hash tag.
fn user_index_key(user_id: &str) -> String {
    format!("u:{{{}}}:live", crate::store::user_tag(user_id))
}

impl LinkService {
    /// A service over `store` with lifetimes `policy`, behaviour `options` and URLs from `urls`.
    pub fn new(
        store: Arc<dyn Store>,
        policy: LinkPolicy,
        options: LinkOptions,
        urls: FaceAuthUrlBuilder,
    ) -> Self {
        LinkService {
            store,
            policy,
            options,
            urls,
            accepted_risks: Vec::new(),
            assertions: None,
        }
    }

    /// The store risks the operator accepted (`store.accept_risks`), for [`Self::durability`].
    pub fn with_accepted_risks(mut self, accepted: Vec<String>) -> Self {
        self.accepted_risks = accepted;
        self
    }

    /// The store's risky settings now (for `/readyz`): refused ones mean link state can vanish
    /// or come back.
    /// Errors: [`StoreError::Unavailable`].
    pub async fn durability(&self) -> Result<crate::store::RiskAssessment, StoreError> {
        crate::store::assess_risks(self.store.as_ref(), &self.accepted_risks).await
    }

    /// Owners' status reads of approved links carry a signed assertion (`[assertions]`).
    pub fn with_assertions(mut self, assertions: Option<Arc<Assertions>>) -> Self {
        self.assertions = assertions;
        self
    }

    /// The options in force.
    pub fn options(&self) -> &LinkOptions {
        &self.options
    }

    /// The store (shared with rate limits and idempotency).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The lifetimes in force.
    pub fn policy(&self) -> &LinkPolicy {
        &self.policy
    }

    /// Mints an `issued` link without a rate limit or a `sid` lookup (the micro-benchmark's
    /// entry; routes go through [`super::Issuer`]).
    ///
    /// Errors: as [`LinkService::create`].
    pub async fn mint(&self, link: &NewLink) -> Result<MintedLink, LinkError> {
        match self.create(link, false, None).await? {
            Guarded::Done((minted, _), _) => Ok(minted),
            Guarded::Limited(_) => Err(StoreError::Corrupt(
                "the store refused a mint no limit applied to".into(),
            )
            .into()),
        }
    }

    /// Creates the record of a new link for the issuing pipeline ([`super::Issuer`]): checks
    /// the FaceAuth URL's length, then counts `limit` (if any), indexes the link for the
    /// user's erasure and writes the record in one store step. With `open_now` the first open
    /// is applied in the same write and the FaceAuth URL comes back (built once). With
    /// `single_active`, the same user's earlier never-opened link is revoked in that step too
    /// (after it in a Redis Cluster; a failure there deletes the new record).
    ///
    /// Errors: [`LinkError::TooLong`] (checked before anything is written),
    /// [`LinkError::Store`] (no link handed out).
    pub(super) async fn create(
        &self,
        link: &NewLink,
        open_now: bool,
        limit: Option<&WindowLimit>,
    ) -> Result<Guarded<(MintedLink, Option<SecretString>)>, LinkError> {
        let guards = Guards {
            limit: limit.cloned(),
            // Indexed with the write: the user's erasure must find every link (issue 19).
            index: Some(IndexEntry {
                key: crate::erasure::links_index_key(&link.user_id),
                ttl_ms: crate::erasure::link_index_ttl_ms(&self.policy),
            }),
            // The index holds one id per user; Redis serialises the swaps, so with concurrent
            // mints exactly one link stays live.
            live: self.options.single_active.then(|| LiveLink {
                key: user_index_key(&link.user_id),
                ttl_ms: self.policy.unopened_ttl_ms,
                retention_ms: self.policy.retention_ms,
            }),
        };
        // A 122-bit collision is practically impossible; one retry covers it anyway.
        for _ in 0..2 {
            let id = LinkId::random();
            // The URL the link opens to, built once before anything is written: its length
            // decides whether the link may exist (with ECB/CBC the percent-encoded base64
            // length depends on the ciphertext, so it is measured, not computed); `start`
            // redirects to it.
            let url = self.urls.build(&FaceAuthParams {
                sid: link.sid.clone(),
                auth_user_id: link.user_id.clone(),
                auth_cf1: link.cf[0].clone(),
                auth_cf2: link.cf[1].clone(),
                auth_cf3: link.cf[2].clone(),
                token: id.to_string(),
            });
            let url_bytes = url.expose_secret().len();
            if url_bytes > self.options.max_url_bytes {
                let (field, field_bytes) = link.longest_field();
                return Err(LinkError::TooLong {
                    field,
                    field_bytes,
                    url_bytes,
                    limit: self.options.max_url_bytes,
                });
            }
            let written = self
                .store
                .create_guarded(&id, link, &self.policy, open_now, &guards)
                .await;
            let (record, window) = match written {
                Ok(Guarded::Done(record, window)) => (record, window),
                Ok(Guarded::Limited(window)) => return Ok(Guarded::Limited(window)),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            };
            let url = open_now.then_some(url);
            return Ok(Guarded::Done((MintedLink { id, record }, url), window));
        }
        Err(StoreError::Conflict.into())
    }

    /// Opens a link: one atomic check-and-consume, then the FaceAuth URL for it. `confirmed` is
    /// true for the confirm page's `POST`; a `GET` on a confirm-step link consumes nothing.
    ///
    /// Errors: [`LinkError::NotFound`], [`LinkError::Used`], [`LinkError::Expired`],
    /// [`LinkError::Revoked`], [`LinkError::Store`].
    pub async fn open(&self, id: &LinkId, confirmed: bool) -> Result<Opened, LinkError> {
        match self.open_guarded(id, confirmed, None).await? {
            Guarded::Done(opened, _) => Ok(opened),
            Guarded::Limited(_) => Err(StoreError::Corrupt(
                "the store refused an open no limit applied to".into(),
            )
            .into()),
        }
    }

    /// [`LinkService::open`] behind the rate limit `limit`, counted in the same store step
    /// (see [`crate::store::LinkStore::open_guarded`]): [`Guarded::Limited`] when over it,
    /// and then nothing was consumed.
    ///
    /// Errors: as [`LinkService::open`].
    pub async fn open_guarded(
        &self,
        id: &LinkId,
        confirmed: bool,
        limit: Option<&WindowLimit>,
    ) -> Result<Guarded<Opened>, LinkError> {
        let (opened, window) = match self
            .store
            .open_guarded(id, self.policy.retention_ms, confirmed, limit)
            .await?
        {
            Guarded::Done(opened, window) => (opened, window),
            Guarded::Limited(window) => return Ok(Guarded::Limited(window)),
        };
        let opened = match opened {
            OpenResult::Opened(record) => Opened::Redirect(self.faceauth_url(id, &record)),
            OpenResult::NeedsConfirmation => Opened::NeedsConfirmation,
            OpenResult::Refused(state) => return Err(refusal(state)),
            OpenResult::NotFound => return Err(LinkError::NotFound),
        };
        Ok(Guarded::Done(opened, window))
    }

    /// Revokes `owner`'s live link `id`; it then answers `410 link_revoked`. A used or expired
    /// link keeps its state (and still answers `410`).
    /// Errors: [`LinkError::NotFound`] (also for another user's link), [`LinkError::Store`].
    pub async fn revoke(&self, id: &LinkId, owner: &str) -> Result<(), LinkError> {
        match self
            .store
            .revoke(id, Some(owner), false, self.policy.retention_ms)
            .await?
        {
            RevokeResult::Revoked | RevokeResult::Unchanged => Ok(()),
            RevokeResult::NotFound => Err(LinkError::NotFound),
        }
    }

    /// The state of a link without changing it (for `HEAD /l/{id}`).
    /// Errors: [`LinkError::NotFound`], [`LinkError::Store`].
    pub async fn peek(&self, id: &LinkId) -> Result<LinkState, LinkError> {
        let snap = self.store.get(id).await?.ok_or(LinkError::NotFound)?;
        Ok(snap.record.state_at(snap.now_ms))
    }

    /// The status of link `id`; with `owner`, another user's link is [`LinkError::NotFound`],
    /// and an approved result comes with a step-up assertion (`[assertions]` on, not expired).
    pub async fn status(&self, id: &LinkId, owner: Option<&str>) -> Result<LinkStatus, LinkError> {
        let snap = self.store.get(id).await?.ok_or(LinkError::NotFound)?;
        let record = snap.record;
        if owner.is_some_and(|o| o != record.user_id) {
            return Err(LinkError::NotFound);
        }
        let link_id = id.to_string();
        let assertion = match (&self.assertions, owner, record.result, &record.auth_id) {
            (Some(assertions), Some(_), Some(Outcome::Approved), Some(auth_id)) => assertions
                .issue(
                    &AssertionFacts {
                        user_id: &record.user_id,
                        link_id: &link_id,
                        auth_id,
                        verified_at_ms: record.verified_at_ms.unwrap_or(i64::MIN),
                        reference: record.reference.as_deref(),
                    },
                    snap.now_ms,
                    "link_status",
                )?,
            _ => None,
        };
        Ok(LinkStatus {
            assertion,
            id: id.to_string(),
            state: record.state_at(snap.now_ms),
            expiry: record.expiry,
            created_at: utc_from_ms(record.created_at_ms),
            expires_at: utc_from_ms(record.expires_at_ms),
            opened_at: record.opened_at_ms.map(utc_from_ms),
            confirm_step: record.confirm_step,
            result: record.result,
            auth_id: record.auth_id,
            verified_at: record.verified_at_ms.map(utc_from_ms),
            reference: record.reference,
        })
    }

    /// Whether the store answers.
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    fn faceauth_url(&self, id: &LinkId, record: &LinkRecord) -> SecretString {
        self.urls.build(&FaceAuthParams {
            sid: record.sid.clone(),
            auth_user_id: record.user_id.clone(),
            auth_cf1: record.cf1.clone(),
            auth_cf2: record.cf2.clone(),
            auth_cf3: record.cf3.clone(),
            token: id.to_string(),
        })
    }
}
