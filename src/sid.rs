//! Finding a user's approved ID Check submission id (`sid`) on the server side, from the
//! sources in `sid.sources`, in order. The client never supplies a `sid`.
//!
//! * `claim`: the user's verified JWT claim `auth.sid_claim`.
//! * `store`: a user → sid mapping in the store, written by `PUT /v1/users/{id}/submission`
//!   and by ID Check `approved` webhooks.
//! * `argos`: `GET /v3/submission?userid=…` (newest approved item), cached `sid.argos_cache_secs`
//!   (answers without an approved submission too).

use std::sync::Arc;

use crate::argos::client::{ArgosClient, ArgosError};
use crate::store::{user_tag, Store, StoreError};

/// One place to find a user's submission id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SidSource {
    /// The user's JWT claim `auth.sid_claim`.
    Claim,
    /// The user → sid mapping in the store.
    Store,
    /// ARGOS `GET /v3/submission?userid=…`.
    Argos,
}

/// Where and how long `sid`s are looked up and kept (`[sid]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidPolicy {
    /// Sources, tried in order.
    pub sources: Vec<SidSource>,
    /// Stored mapping lifetime, milliseconds.
    pub store_ttl_ms: u64,
    /// ARGOS answer cache lifetime, milliseconds.
    pub cache_ttl_ms: u64,
}

/// Marks "ARGOS had no approved submission" in the cache.
const NONE_MARKER: &str = "\u{0}none";

/// Why the sid could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum SidError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// ARGOS could not be asked.
    #[error(transparent)]
    Argos(#[from] ArgosError),
}

/// Resolves `sid`s from the configured sources.
#[derive(Clone)]
pub struct SidResolver {
    sources: Vec<SidSource>,
    store: Arc<dyn Store>,
    argos: ArgosClient,
    store_ttl_ms: u64,
    cache_ttl_ms: u64,
}

fn mapping_key(user_id: &str) -> String {
    format!("sid:{{{}}}", user_tag(user_id))
}

fn cache_key(user_id: &str) -> String {
    format!("sidc:{{{}}}", user_tag(user_id))
}

impl SidResolver {
    /// A resolver under `policy`.
    pub fn new(policy: SidPolicy, store: Arc<dyn Store>, argos: ArgosClient) -> Self {
        SidResolver {
            sources: policy.sources,
            store,
            argos,
            store_ttl_ms: policy.store_ttl_ms,
            cache_ttl_ms: policy.cache_ttl_ms,
        }
    }

    /// The sid [`SidResolver::resolve`] would answer without asking any store or ARGOS: the
    /// user's JWT claim, when `claim` is the first source and the claim is set.
    pub fn immediate(&self, claim: Option<&str>) -> Option<String> {
        match self.sources.first() {
            Some(SidSource::Claim) => claim.filter(|s| !s.is_empty()).map(str::to_string),
            _ => None,
        }
    }

    /// The sid for `user_id`; `claim` is the user's JWT claim (none for service calls).
    /// `Ok(None)`: no source knows one (`422 no_submission`).
    /// Errors: [`SidError`] when a source needed could not be asked (`503`).
    pub async fn resolve(
        &self,
        user_id: &str,
        claim: Option<&str>,
    ) -> Result<Option<String>, SidError> {
        for source in &self.sources {
            let found = match source {
                SidSource::Claim => claim.map(str::to_string),
                SidSource::Store => self.store.read(&mapping_key(user_id)).await?,
                SidSource::Argos => self.ask_argos(user_id).await?,
            };
            if let Some(sid) = found.filter(|s| !s.is_empty()) {
                return Ok(Some(sid));
            }
        }
        Ok(None)
    }

    async fn ask_argos(&self, user_id: &str) -> Result<Option<String>, SidError> {
        let key = cache_key(user_id);
        if let Some(cached) = self.store.read(&key).await? {
            return Ok((cached != NONE_MARKER).then_some(cached));
        }
        let found = self.argos.approved_submission(user_id).await?;
        self.store
            .put(
                &key,
                found.as_deref().unwrap_or(NONE_MARKER),
                self.cache_ttl_ms,
            )
            .await?;
        Ok(found)
    }

    /// Records `sid` as `user_id`'s approved submission (kept `sid.store_ttl_secs`).
    /// Errors: [`StoreError`].
    pub async fn remember(&self, user_id: &str, sid: &str) -> Result<(), StoreError> {
        self.store
            .put(&mapping_key(user_id), sid, self.store_ttl_ms)
            .await?;
        self.store.delete(&cache_key(user_id)).await
    }
}
