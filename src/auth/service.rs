//! Service-to-service credentials (the app's session layer): JWTs with their own audience and
//! scopes, or static API keys configured only as SHA-256 hashes (`X-Api-Key`). A user token
//! cannot call service routes (its audience differs, which config validation enforces), and a
//! service token cannot call user routes.

use secrecy::SecretString;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;

use super::{claim_string, AuthError, JwtProfile, JwtVerifier, Principal};
use crate::config::{AuthSettings, ConfigError};

/// Scope to mint links for users and record their submission ids.
pub const SCOPE_LINKS_WRITE: &str = "faceauth:links:write";
/// Scope to read link status and step-up results.
pub const SCOPE_STATUS_READ: &str = "faceauth:status:read";

/// Scope to erase a user's FaceAuth data and read erasure status (issue 19). Static API keys
/// carry it only with `auth.service.api_keys_may_erase`.
pub const SCOPE_DATA_DELETE: &str = "faceauth:data:delete";

/// Header carrying a static service API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// A verified service caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePrincipal {
    /// `sub` of the service token, or `api-key` for a static key.
    pub subject: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

impl ServicePrincipal {
    /// Errors: [`AuthError::InsufficientScope`] when `scope` was not granted.
    pub fn require(&self, scope: &'static str) -> Result<(), AuthError> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope(scope))
        }
    }
}

/// Verifies service credentials. Built once at start-up.
pub struct ServiceVerifier {
    jwt: Option<JwtVerifier>,
    scope_claim: String,
    /// SHA-256 of the static keys; replaced on `SIGHUP`.
    api_keys: RwLock<Arc<Vec<[u8; 32]>>>,
    /// Static keys may carry `faceauth:data:delete` (`auth.service.api_keys_may_erase`).
    api_keys_may_erase: bool,
}

fn key_hashes(hashes: &[String]) -> Vec<[u8; 32]> {
    hashes
        .iter()
        .filter_map(|h| hex::decode(h).ok()?.try_into().ok())
        .collect()
}

impl ServiceVerifier {
    /// Builds the service profile from `[auth]` and `[auth.service]`; `None` when neither an
    /// audience nor an API key is configured.
    ///
    /// Errors: a [`ConfigError`] naming the key.
    pub fn from_settings(
        auth: &AuthSettings,
        outbound: &crate::outbound::Outbound,
    ) -> Result<Option<Self>, ConfigError> {
        let svc = &auth.service;
        let api_keys = key_hashes(&svc.api_key_sha256);
        let jwt = if svc.audience.is_empty() {
            None
        } else {
            let no_cf_claims = std::collections::BTreeMap::new();
            let profile = JwtProfile::service(auth, &no_cf_claims);
            let mut verifier = JwtVerifier::from_profile(&profile, outbound)?;
            verifier.refuse_audience(auth.audience.as_deref().unwrap_or_default());
            Some(verifier)
        };
        if jwt.is_none() && api_keys.is_empty() {
            return Ok(None);
        }
        Ok(Some(ServiceVerifier {
            jwt,
            scope_claim: svc.scope_claim.clone(),
            api_keys: RwLock::new(Arc::new(api_keys)),
            api_keys_may_erase: svc.api_keys_may_erase,
        }))
    }

    /// Replaces the accepted API key hashes (`auth.service.api_key_sha256`, validated).
    pub fn set_api_keys(&self, hashes: &[String]) {
        let keys = Arc::new(key_hashes(hashes));
        *self.api_keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    /// For `check-config`: the service JWKS (if any) loads.
    /// Errors: as [`JwtVerifier::check_keys`].
    pub async fn check_keys(&self) -> Result<(), String> {
        match &self.jwt {
            Some(jwt) => jwt.check_keys().await,
            None => Ok(()),
        }
    }

    /// Fetches the service JWKS once, if any.
    pub async fn warm_up(&self) {
        if let Some(jwt) = &self.jwt {
            jwt.warm_up().await;
        }
    }

    /// A static API key, compared by SHA-256 in constant time.
    pub fn verify_api_key(&self, key: &str) -> Result<ServicePrincipal, AuthError> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let known_keys = self
            .api_keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut found = subtle::Choice::from(0u8);
        for known in known_keys.iter() {
            found |= known.ct_eq(&digest);
        }
        if bool::from(found) {
            let mut scopes = vec![SCOPE_LINKS_WRITE.into(), SCOPE_STATUS_READ.into()];
            if self.api_keys_may_erase {
                scopes.push(SCOPE_DATA_DELETE.into());
            }
            Ok(ServicePrincipal {
                subject: "api-key".into(),
                scopes,
            })
        } else {
            Err(AuthError::Invalid("unknown API key"))
        }
    }

    /// A service JWT. Errors: [`AuthError`].
    pub async fn verify_jwt(&self, token: &SecretString) -> Result<ServicePrincipal, AuthError> {
        let jwt = self
            .jwt
            .as_ref()
            .ok_or(AuthError::Invalid("service tokens are not configured"))?;
        let claims = jwt.verify_claims(token).await?;
        let scopes = match claims.get(&self.scope_claim) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        Ok(ServicePrincipal {
            subject: claim_string(&claims, "sub").unwrap_or_else(|| "service".into()),
            scopes,
        })
    }

    /// An API key if one was sent, else the bearer token. Errors: [`AuthError`].
    pub async fn authenticate(
        &self,
        req_key: Option<String>,
        token: Result<SecretString, AuthError>,
    ) -> Result<ServicePrincipal, AuthError> {
        if let Some(key) = req_key {
            return self.verify_api_key(&key);
        }
        self.verify_jwt(&token?).await
    }
}

/// Whoever may read a link: its owner (user JWT) or a service with `faceauth:status:read`.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A user.
    User(Principal),
    /// A service.
    Service(ServicePrincipal),
}
