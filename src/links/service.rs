//! Minting, opening and reading links: the gateway's core, independent of HTTP.

use secrecy::SecretString;
use serde::Serialize;
use std::sync::Arc;
use time::OffsetDateTime;

use super::{Expiry, LinkId, LinkPolicy, LinkRecord, LinkState, StoredState};
use crate::argos::url::{FaceAuthParams, FaceAuthUrlBuilder};
use crate::store::{LinkStore, OpenResult, StoreError};

/// What a new link is for: resolved server-side from the verified JWT, never from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    /// Owner; sent as `authUserId`.
    pub user_id: String,
    /// Approved ID Check submission id (`sid`).
    pub sid: String,
    /// `authCf1`..`authCf3`.
    pub cf: [Option<String>; 3],
}

impl NewLink {
    /// The `issued` record for this link minted at `now_ms` under `policy`.
    pub fn issued_record(&self, policy: &LinkPolicy, now_ms: i64) -> LinkRecord {
        let [cf1, cf2, cf3] = self.cf.clone();
        LinkRecord {
            user_id: self.user_id.clone(),
            sid: self.sid.clone(),
            cf1,
            cf2,
            cf3,
            expiry: policy.expiry,
            window_ms: policy.window_ms,
            state: StoredState::Issued,
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(policy.unopened_ttl_ms as i64),
            opened_at_ms: None,
        }
    }
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
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link id.
    pub id: String,
    /// `issued` | `opened` | `used` | `expired`.
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
    /// The store failed; nothing was issued.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Mints and opens links against a [`LinkStore`], building FaceAuth URLs on the way out.
#[derive(Clone)]
pub struct LinkService {
    store: Arc<dyn LinkStore>,
    policy: LinkPolicy,
    urls: FaceAuthUrlBuilder,
}

impl LinkService {
    /// A service over `store` with lifetimes `policy` and URLs from `urls`.
    pub fn new(store: Arc<dyn LinkStore>, policy: LinkPolicy, urls: FaceAuthUrlBuilder) -> Self {
        LinkService {
            store,
            policy,
            urls,
        }
    }

    /// The lifetimes in force.
    pub fn policy(&self) -> &LinkPolicy {
        &self.policy
    }

    /// The URL builder (its cipher is shared with the demo form).
    pub fn urls(&self) -> &FaceAuthUrlBuilder {
        &self.urls
    }

    /// Mints an `issued` link. Errors: [`LinkError::Store`] (nothing issued).
    pub async fn mint(&self, link: &NewLink) -> Result<MintedLink, LinkError> {
        self.create(link, false).await
    }

    /// Mints a link and applies its first open in the same store write; returns the FaceAuth
    /// URL to redirect to (`face-auth/start`). Errors: [`LinkError::Store`].
    pub async fn mint_and_open(&self, link: &NewLink) -> Result<SecretString, LinkError> {
        let minted = self.create(link, true).await?;
        Ok(self.faceauth_url(&minted.id, &minted.record))
    }

    async fn create(&self, link: &NewLink, open_now: bool) -> Result<MintedLink, LinkError> {
        // A 122-bit collision is practically impossible; one retry covers it anyway.
        for _ in 0..2 {
            let id = LinkId::random();
            match self.store.create(&id, link, &self.policy, open_now).await {
                Ok(record) => return Ok(MintedLink { id, record }),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict.into())
    }

    /// Opens a link: one atomic check-and-consume, then the FaceAuth URL for it.
    ///
    /// Errors: [`LinkError::NotFound`], [`LinkError::Used`], [`LinkError::Expired`],
    /// [`LinkError::Store`].
    pub async fn open(&self, id: &LinkId) -> Result<SecretString, LinkError> {
        match self.store.open(id, self.policy.retention_ms).await? {
            OpenResult::Opened(record) => Ok(self.faceauth_url(id, &record)),
            OpenResult::Refused(LinkState::Used) => Err(LinkError::Used),
            OpenResult::Refused(_) => Err(LinkError::Expired),
            OpenResult::NotFound => Err(LinkError::NotFound),
        }
    }

    /// The state of a link without changing it (for `HEAD /l/{id}`).
    /// Errors: [`LinkError::NotFound`], [`LinkError::Store`].
    pub async fn peek(&self, id: &LinkId) -> Result<LinkState, LinkError> {
        let snap = self.store.get(id).await?.ok_or(LinkError::NotFound)?;
        Ok(snap.record.state_at(snap.now_ms))
    }

    /// The status of `user_id`'s link `id`. Another user's link is [`LinkError::NotFound`].
    pub async fn status(&self, id: &LinkId, user_id: &str) -> Result<LinkStatus, LinkError> {
        let snap = self.store.get(id).await?.ok_or(LinkError::NotFound)?;
        let record = snap.record;
        if record.user_id != user_id {
            return Err(LinkError::NotFound);
        }
        Ok(LinkStatus {
            id: id.to_string(),
            state: record.state_at(snap.now_ms),
            expiry: record.expiry,
            created_at: utc_from_ms(record.created_at_ms),
            expires_at: utc_from_ms(record.expires_at_ms),
            opened_at: record.opened_at_ms.map(utc_from_ms),
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
