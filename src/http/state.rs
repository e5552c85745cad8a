//! Shared state of the public routes ([`AppState`]), built once by `startup` and read by every
//! handler module.

use ipnet::IpNet;
use secrecy::SecretString;
use std::sync::{Arc, RwLock};

use crate::argos::crypto::QueryCipher;
use crate::idempotency::Idempotency;
use crate::limits::RateLimiter;
use crate::links::{Issuer, LinkService};
use crate::results::Results;
use crate::sid::SidResolver;

/// Shared state of the public routes.
pub struct AppState {
    /// The link service.
    pub links: LinkService,
    /// Rate limits.
    pub limiter: RateLimiter,
    /// `Idempotency-Key` records.
    pub idempotency: Idempotency,
    /// `server.public_base_url` without a trailing `/`.
    pub public_base_url: String,
    /// `server.trusted_proxies`.
    pub trusted_proxies: Vec<IpNet>,
    /// `server.client_ip_header`.
    pub client_ip_header: super::client_ip::ClientIpHeader,
    /// Origin of `argos.form_url` (for the confirm page's `form-action`).
    pub faceauth_origin: String,
    /// Submission id lookup.
    pub sid: SidResolver,
    /// The results loop (webhooks, pull-verification, step-up).
    pub results: Results,
    /// Erasures (issue 19).
    pub erasures: crate::erasure::Erasures,
    /// Webhook receiver settings.
    pub webhooks: WebhookReceiver,
    /// Set on SIGTERM/SIGINT: `/readyz` answers 503 from then on.
    pub draining: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Step-up assertions (`[assertions]`), if on.
    pub assertions: Option<std::sync::Arc<crate::assertions::Assertions>>,
}

impl AppState {
    /// The issuing pipeline over this app's links, limits and `sid` lookup.
    pub fn issuer(&self) -> Issuer<'_> {
        Issuer::new(&self.links, &self.limiter, &self.sid)
    }
}

/// The receiver's secrets, swapped as a whole on `SIGHUP`.
pub struct WebhookKeys {
    /// Accepted path secrets (current, then the previous one during a rotation); empty =
    /// receiver off.
    pub path_secrets: Vec<SecretString>,
    /// AES-256-CBC ciphers for Secure Data Transfer bodies (Add-on key, previous Add-on key,
    /// ID Check key).
    pub ciphers: Vec<QueryCipher>,
}

/// Receiver settings.
pub struct WebhookReceiver {
    /// Secrets (reloadable).
    pub keys: RwLock<Arc<WebhookKeys>>,
    /// Allowed source networks.
    pub allowed_ips: Vec<ipnet::IpNet>,
}

impl WebhookReceiver {
    /// A receiver with these secrets and networks.
    pub fn new(keys: WebhookKeys, allowed_ips: Vec<ipnet::IpNet>) -> Self {
        WebhookReceiver {
            keys: RwLock::new(Arc::new(keys)),
            allowed_ips,
        }
    }

    /// The current secrets.
    pub fn keys(&self) -> Arc<WebhookKeys> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the secrets (`SIGHUP`); requests under way keep the ones they read.
    pub fn set_keys(&self, keys: WebhookKeys) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
    }
}
