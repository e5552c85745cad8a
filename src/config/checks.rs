//! Each section's checks and its conversion into its typed value ([`Settings::parse`]); every
//! error names its key.

use std::time::Duration;

use super::*;
use crate::callbacks::CallbackTarget;
use crate::sid::SidPolicy;
use crate::store::redis_conn::RedisTarget;

/// `[server]`: URLs, listeners, shutdown, limits of requests.
impl TryFrom<&ServerSettings> for ServerConfig {
    type Error = ConfigError;

    fn try_from(server: &ServerSettings) -> Result<Self, ConfigError> {
        check_http_url("server.public_base_url", &server.public_base_url)?;
        if server.public_base_url.query().is_some() {
            return Err(ConfigError::new(
                "server.public_base_url",
                "must not have a query",
            ));
        }
        let metrics_addr = server.metrics_addr()?;
        if let Some(metrics) = metrics_addr {
            let overlap = metrics.ip() == server.bind.ip()
                || metrics.ip().is_unspecified()
                || server.bind.ip().is_unspecified();
            if overlap && metrics.port() == server.bind.port() && metrics.port() != 0 {
                return Err(ConfigError::new(
                    "server.metrics_bind",
                    "must differ from server.bind (metrics stay off the public port)",
                ));
            }
        }
        if server.drain_secs > 300 {
            return Err(ConfigError::new("server.drain_secs", "must be at most 300"));
        }
        if !(1..=300).contains(&server.shutdown_timeout_secs) {
            return Err(ConfigError::new(
                "server.shutdown_timeout_secs",
                "must be between 1 and 300",
            ));
        }
        if server.workers > 256 {
            return Err(ConfigError::new("server.workers", "must be at most 256"));
        }
        for (key, value, range) in [
            ("server.max_headers", server.max_headers, 8..=90),
            (
                "server.max_header_bytes",
                server.max_header_bytes,
                1024..=65_536,
            ),
            (
                "server.max_uri_bytes",
                server.max_uri_bytes,
                // actix-http itself refuses request lines of 64 KiB and more with a bare 400.
                256..=60_000,
            ),
        ] {
            if !range.contains(&value) {
                return Err(ConfigError::new(
                    key,
                    format!("must be between {} and {}", range.start(), range.end()),
                ));
            }
        }
        Ok(ServerConfig {
            metrics_addr,
            public_base_url: server
                .public_base_url
                .as_str()
                .trim_end_matches('/')
                .to_string(),
            own_origin: server.public_base_url.origin().ascii_serialization(),
            drain: Duration::from_secs(server.drain_secs),
            bind: server.bind,
            workers: server.workers,
            trusted_proxies: server.trusted_proxies.clone(),
            client_ip_header: server.client_ip_header,
            shutdown_timeout_secs: server.shutdown_timeout_secs,
            max_headers: server.max_headers,
            max_header_bytes: server.max_header_bytes,
            max_uri_bytes: server.max_uri_bytes,
        })
    }
}

/// `[store]`: the backend, its URL and topology; then its bounds.
impl TryFrom<&StoreSettings> for StoreConfig {
    type Error = ConfigError;

    fn try_from(store: &StoreSettings) -> Result<Self, ConfigError> {
        check_store_location(store)?;
        check_store_bounds(store)?;
        let url = store
            .redis_url
            .as_ref()
            .map(|u| u.expose_secret().to_string())
            .unwrap_or_default();
        let redis = match (store.backend, store.redis_mode) {
            (StoreBackend::Memory, _) => None,
            (StoreBackend::Redis, RedisMode::Standalone) => Some(RedisTarget::Standalone(url)),
            (StoreBackend::Redis, RedisMode::Sentinel) => Some(RedisTarget::Sentinel {
                master: store.sentinel_master.clone(),
                sentinels: store.sentinel_nodes.clone(),
                node_url: url,
            }),
            (StoreBackend::Redis, RedisMode::Cluster) => {
                Some(RedisTarget::Cluster(store.cluster_nodes.clone()))
            }
        };
        Ok(StoreConfig {
            redis,
            timeout: Duration::from_millis(store.timeout_ms),
            startup_wait: Duration::from_secs(store.startup_wait_secs),
            replica_ack_timeout: Duration::from_millis(store.replica_ack_timeout_ms),
            sentinel_poll: Duration::from_millis(store.sentinel_poll_ms),
            key_prefix: store.key_prefix.clone(),
            min_replica_acks: store.min_replica_acks,
            idempotency_claim_ms: store.idempotency_claim_ms,
            accept_risks: store.accept_risks.clone(),
        })
    }
}

/// `[store]`: the backend, its URL and topology.
fn check_store_location(store: &StoreSettings) -> Result<(), ConfigError> {
    if store.backend == StoreBackend::Redis
        && store
            .redis_url
            .as_ref()
            .is_none_or(|u| u.expose_secret().trim().is_empty())
    {
        return Err(ConfigError::new(
            "store.redis_url",
            "required when store.backend = \"redis\"",
        ));
    }
    if let Some(url) = store.redis_url.as_ref() {
        if store.backend == StoreBackend::Redis && redis::Client::open(url.expose_secret()).is_err()
        {
            return Err(ConfigError::new(
                "store.redis_url",
                "not a usable Redis URL (redis://[:password@]host:port/db; TLS is not built in)",
            ));
        }
    }
    if store.key_prefix.is_empty() || store.key_prefix.contains(['{', '}']) {
        return Err(ConfigError::new(
            "store.key_prefix",
            "must not be empty or contain braces (they are Redis Cluster hash tags)",
        ));
    }
    if store.backend == StoreBackend::Redis {
        let (key, nodes) = match store.redis_mode {
            RedisMode::Standalone => ("", &Vec::new()),
            RedisMode::Sentinel => ("store.sentinel_nodes", &store.sentinel_nodes),
            RedisMode::Cluster => ("store.cluster_nodes", &store.cluster_nodes),
        };
        if !key.is_empty() {
            if nodes.is_empty() {
                return Err(ConfigError::new(key, "required for this store.redis_mode"));
            }
            if nodes
                .iter()
                .any(|n| redis::Client::open(n.as_str()).is_err())
            {
                return Err(ConfigError::new(key, "every entry must be a redis:// URL"));
            }
        }
    }
    Ok(())
}

/// `[store]`: timeouts, replica acknowledgements, claims, accepted risks.
fn check_store_bounds(store: &StoreSettings) -> Result<(), ConfigError> {
    if !(1..=60_000).contains(&store.timeout_ms) {
        return Err(ConfigError::new(
            "store.timeout_ms",
            "must be between 1 and 60000",
        ));
    }
    if store.startup_wait_secs > 3_600 {
        return Err(ConfigError::new(
            "store.startup_wait_secs",
            "must be between 0 and 3600",
        ));
    }
    if store.min_replica_acks > 16 {
        return Err(ConfigError::new(
            "store.min_replica_acks",
            "must be between 0 and 16",
        ));
    }
    if store.min_replica_acks > 0 && store.redis_mode == RedisMode::Cluster {
        return Err(ConfigError::new(
            "store.min_replica_acks",
            "is not supported with store.redis_mode = \"cluster\" (use 0)",
        ));
    }
    if store.min_replica_acks > 0
        && (store.replica_ack_timeout_ms == 0
            || store.replica_ack_timeout_ms * 2 > store.timeout_ms)
    {
        return Err(ConfigError::new(
            "store.replica_ack_timeout_ms",
            "must be at least 1 and at most half of store.timeout_ms",
        ));
    }
    if !(10..=10_000).contains(&store.sentinel_poll_ms) {
        return Err(ConfigError::new(
            "store.sentinel_poll_ms",
            "must be between 10 and 10000",
        ));
    }
    if !(1_000..=3_600_000).contains(&store.idempotency_claim_ms) {
        return Err(ConfigError::new(
            "store.idempotency_claim_ms",
            "must be between 1000 and 3600000",
        ));
    }
    if let Some(unknown) = store
        .accept_risks
        .iter()
        .find(|r| !STORE_RISKS.contains(&r.as_str()))
    {
        return Err(ConfigError::new(
            "store.accept_risks",
            format!(
                "unknown risk {unknown:?}; known: {}",
                STORE_RISKS.join(", ")
            ),
        ));
    }
    Ok(())
}

/// `[argos]`: URLs, project and keys, URL length, retries (its timeouts: with the other
/// sections' in `check_timings`).
impl TryFrom<&ArgosSettings> for ArgosConfig {
    type Error = ConfigError;

    fn try_from(argos: &ArgosSettings) -> Result<Self, ConfigError> {
        check_http_url("argos.form_url", &argos.form_url)?;
        let project_id = match &argos.project_id {
            Some(p) if !p.trim().is_empty() => p.clone(),
            _ => return Err(ConfigError::new("argos.project_id", "required")),
        };
        let api_key = match &argos.api_key {
            Some(k) if !k.expose_secret().trim().is_empty() => k.clone(),
            Some(_) => return Err(ConfigError::new("argos.api_key", "must not be empty")),
            None => {
                return Err(ConfigError::new(
                    "argos.api_key",
                    "required (set FACEAUTH__ARGOS__API_KEY)",
                ))
            }
        };
        if !(200..=16_384).contains(&argos.max_url_bytes) {
            return Err(ConfigError::new(
                "argos.max_url_bytes",
                "must be between 200 and 16384",
            ));
        }
        check_http_url("argos.api_base_url", &argos.api_base_url)?;
        if argos.api_retries > 10 {
            return Err(ConfigError::new("argos.api_retries", "must be at most 10"));
        }
        Ok(ArgosConfig {
            project_id,
            api_key,
            faceauth_origin: argos.form_url.origin().ascii_serialization(),
            form_url: argos.form_url.clone(),
            encryption: argos.encryption,
            plaintext: argos.plaintext,
            envelope_keys: [
                argos.api_key.as_ref(),
                argos.previous_api_key.as_ref(),
                argos.idcheck_api_key.as_ref(),
            ]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
            api: crate::argos::client::ArgosApi {
                base_url: argos.api_base_url.clone(),
                addon_key: argos.api_key.clone(),
                idcheck_key: argos.idcheck_api_key.clone(),
                connect_timeout_ms: argos.api_connect_timeout_ms,
                timeout_ms: argos.api_timeout_ms,
                retries: argos.api_retries,
            },
        })
    }
}

impl Settings {
    /// `[auth]` and `[auth.service]`: profiles, cookie, token lifetime, leeway.
    pub(super) fn check_auth(&self) -> Result<(), ConfigError> {
        let svc = &self.auth.service;
        if svc.algorithms.is_empty()
            && (svc.jwks_url.is_some()
                || svc.public_key_pem.is_some()
                || svc.hs256_secret.is_some())
        {
            return Err(ConfigError::new(
                "auth.service.algorithms",
                "required when the service profile has its own keys (jwks_url, public_key_pem or hs256_secret)",
            ));
        }
        if !self.auth.cookie_name.is_empty()
            && !self
                .auth
                .cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(ConfigError::new(
                "auth.cookie_name",
                "must be a plain cookie name (A-Z a-z 0-9 - _ .)",
            ));
        }
        for (i, h) in self.auth.service.api_key_sha256.iter().enumerate() {
            if h.len() != 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(ConfigError::new(
                    format!("auth.service.api_key_sha256[{i}]"),
                    "must be 64 lowercase hex characters (SHA-256 of the key)",
                ));
            }
        }
        if !self.auth.service.audience.is_empty()
            && Some(self.auth.service.audience.as_str()) == self.auth.audience.as_deref()
        {
            return Err(ConfigError::new(
                "auth.service.audience",
                "must differ from auth.audience, so user tokens cannot call service routes",
            ));
        }
        if self.auth.max_token_lifetime_secs > 400 * 24 * 3600 {
            return Err(ConfigError::new(
                "auth.max_token_lifetime_secs",
                "must be at most 400 days (0 = no limit)",
            ));
        }
        if self.auth.leeway_secs > 600 {
            return Err(ConfigError::new(
                "auth.leeway_secs",
                "must be at most 600 seconds",
            ));
        }
        Ok(())
    }

    /// `[auth]`: JWKS fetching and caching bounds.
    pub(super) fn check_jwks(&self) -> Result<(), ConfigError> {
        for (key, value, range) in [
            (
                "auth.jwks_connect_timeout_ms",
                self.auth.jwks_connect_timeout_ms,
                1..=60_000,
            ),
            (
                "auth.jwks_timeout_ms",
                self.auth.jwks_timeout_ms,
                1..=60_000,
            ),
            (
                "auth.jwks_min_ttl_secs",
                self.auth.jwks_min_ttl_secs,
                1..=MAX_LIFETIME_SECS,
            ),
            (
                "auth.jwks_max_ttl_secs",
                self.auth.jwks_max_ttl_secs,
                1..=MAX_LIFETIME_SECS,
            ),
            (
                "auth.jwks_default_ttl_secs",
                self.auth.jwks_default_ttl_secs,
                1..=MAX_LIFETIME_SECS,
            ),
            (
                "auth.jwks_max_stale_secs",
                self.auth.jwks_max_stale_secs,
                0..=MAX_LIFETIME_SECS,
            ),
            (
                "auth.jwks_min_refresh_secs",
                self.auth.jwks_min_refresh_secs,
                0..=86_400,
            ),
        ] {
            if !range.contains(&value) {
                return Err(ConfigError::new(
                    key,
                    format!("must be between {} and {}", range.start(), range.end()),
                ));
            }
        }
        if self.auth.jwks_min_ttl_secs > self.auth.jwks_max_ttl_secs {
            return Err(ConfigError::new(
                "auth.jwks_min_ttl_secs",
                "must not exceed auth.jwks_max_ttl_secs",
            ));
        }
        Ok(())
    }

    /// `[cors]`.
    pub(super) fn check_cors(&self) -> Result<(), ConfigError> {
        for (i, origin) in self.cors.allowed_origins.iter().enumerate() {
            let key = format!("cors.allowed_origins[{i}]");
            if origin == "*" {
                if self.cors.allowed_origins.len() > 1 {
                    return Err(ConfigError::new(
                        key,
                        "\"*\" must be the only entry (any origin), not mixed with named origins",
                    ));
                }
                if self.cors.allow_credentials {
                    return Err(ConfigError::new(
                        key,
                        "\"*\" is not allowed with cors.allow_credentials = true",
                    ));
                }
                continue;
            }
            let exact = url::Url::parse(origin)
                .ok()
                .map(|u| u.origin())
                .filter(|o| o.is_tuple())
                .map(|o| o.ascii_serialization());
            if exact.as_deref() != Some(origin.as_str()) {
                return Err(ConfigError::new(
                    key,
                    "must be an exact origin: scheme://host[:port], no path or trailing slash",
                ));
            }
        }
        if self.cors.max_age_secs > 86_400 {
            return Err(ConfigError::new(
                "cors.max_age_secs",
                "must be at most 86400",
            ));
        }
        Ok(())
    }
}

/// `[links]`: the store policy in milliseconds.
impl TryFrom<&LinksSettings> for LinkPolicy {
    type Error = ConfigError;

    fn try_from(links: &LinksSettings) -> Result<Self, ConfigError> {
        for (key, value) in [
            ("links.window_secs", links.window_secs),
            ("links.unopened_ttl_secs", links.unopened_ttl_secs),
            ("links.retention_secs", links.retention_secs),
        ] {
            if !(1..=MAX_LIFETIME_SECS).contains(&value) {
                return Err(ConfigError::new(
                    key,
                    format!("must be between 1 and {MAX_LIFETIME_SECS} seconds"),
                ));
            }
        }
        Ok(LinkPolicy {
            expiry: links.expiry,
            window_ms: links.window_secs * 1000,
            unopened_ttl_ms: links.unopened_ttl_secs * 1000,
            retention_ms: links.retention_secs * 1000,
        })
    }
}

/// `[limits]`.
impl TryFrom<&LimitsSettings> for LimitsConfig {
    type Error = ConfigError;

    fn try_from(limits: &LimitsSettings) -> Result<Self, ConfigError> {
        for (key, limit) in [
            ("limits.mint_per_user", limits.mint_per_user),
            ("limits.open_per_ip", limits.open_per_ip),
        ] {
            if limit.limit > 0 && !(1..=MAX_LIFETIME_SECS).contains(&limit.window_secs) {
                return Err(ConfigError::new(
                    format!("{key}.window_secs"),
                    format!("must be between 1 and {MAX_LIFETIME_SECS} seconds"),
                ));
            }
        }
        if !(1..=128).contains(&limits.ipv6_prefix_len) {
            return Err(ConfigError::new(
                "limits.ipv6_prefix_len",
                "must be between 1 and 128",
            ));
        }
        Ok(LimitsConfig {
            mint_per_user: limits.mint_per_user,
            open_per_ip: limits.open_per_ip,
            ipv6_prefix_len: limits.ipv6_prefix_len,
        })
    }
}

/// `[webhooks]`: the path secrets (its `dedup_ttl_secs`: in `check_timings`).
impl TryFrom<&WebhookSettings> for WebhookConfig {
    type Error = ConfigError;

    fn try_from(webhooks: &WebhookSettings) -> Result<Self, ConfigError> {
        for (key, secret) in [
            ("webhooks.path_secret", &webhooks.path_secret),
            (
                "webhooks.previous_path_secret",
                &webhooks.previous_path_secret,
            ),
        ] {
            let Some(secret) = secret else { continue };
            let len = secret.expose_secret().len();
            if len > 0
                && (len < 32
                    || !secret
                        .expose_secret()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            {
                return Err(ConfigError::new(
                    key,
                    "must be at least 32 characters of A-Z, a-z, 0-9, - or _",
                ));
            }
        }
        let set = |s: &Option<SecretString>| s.clone().filter(|v| !v.expose_secret().is_empty());
        let path_secrets = match set(&webhooks.path_secret) {
            Some(current) => std::iter::once(current)
                .chain(set(&webhooks.previous_path_secret))
                .collect(),
            None => Vec::new(),
        };
        Ok(WebhookConfig {
            path_secrets,
            allowed_ips: webhooks.allowed_ips.clone(),
        })
    }
}

impl CallbackSettings {
    /// `[callbacks]`: the delivery target, `None` when `callbacks.url` is empty (its
    /// `max_age_secs` and `timeout_ms`: in `check_timings`).
    ///
    /// Errors: a [`ConfigError`] for `callbacks.url` or a secret (never its value).
    pub fn parse(&self) -> Result<Option<CallbackTarget>, ConfigError> {
        let Some(url) = self.url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let parsed =
            url::Url::parse(url).map_err(|e| ConfigError::new("callbacks.url", e.to_string()))?;
        check_http_url("callbacks.url", &parsed)?;
        if self
            .secret
            .as_ref()
            .is_none_or(|s| s.expose_secret().len() < 32)
        {
            return Err(ConfigError::new(
                "callbacks.secret",
                "required with callbacks.url, at least 32 characters",
            ));
        }
        let secrets = self
            .secret
            .iter()
            .map(|s| ("callbacks.secret".to_string(), s));
        let previous = self
            .previous_secrets
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("callbacks.previous_secrets[{i}]"), s));
        for (key, secret) in secrets.chain(previous) {
            if secret.expose_secret().len() < 32 {
                return Err(ConfigError::new(key, "must be at least 32 characters"));
            }
            if self.format.standard() {
                crate::callbacks::standard_key(secret.expose_secret()).map_err(|e| {
                    ConfigError::new(
                        key,
                        format!("with callbacks.format = \"standard\" or \"both\": {e}"),
                    )
                })?;
            }
        }
        Ok(Some(CallbackTarget {
            url: url.to_string(),
            keys: self.keys(),
            max_age_ms: self.max_age_secs.saturating_mul(1000),
            timeout_ms: self.timeout_ms,
        }))
    }
}

/// Lifetimes of 1 s to 400 days.
const MAX_TTL_SECS: u64 = 400 * 24 * 3600;

impl SidSettings {
    /// `[sid]`: sources and what they need (`argos.idcheck_api_key`), lifetimes.
    ///
    /// Errors: a [`ConfigError`] naming the key.
    pub fn parse(&self, argos: &ArgosSettings) -> Result<SidPolicy, ConfigError> {
        if self.sources.is_empty() {
            return Err(ConfigError::new(
                "sid.sources",
                "must list at least one source",
            ));
        }
        if self.sources.contains(&SidSource::Argos)
            && argos
                .idcheck_api_key
                .as_ref()
                .is_none_or(|k| k.expose_secret().trim().is_empty())
        {
            return Err(ConfigError::new(
                "argos.idcheck_api_key",
                "required when sid.sources contains \"argos\"",
            ));
        }
        for (key, value) in [
            ("sid.store_ttl_secs", self.store_ttl_secs),
            ("sid.argos_cache_secs", self.argos_cache_secs),
        ] {
            check_lifetime(key, value)?;
        }
        Ok(SidPolicy {
            sources: self.sources.clone(),
            store_ttl_ms: self.store_ttl_secs * 1000,
            cache_ttl_ms: self.argos_cache_secs * 1000,
        })
    }
}

fn check_lifetime(key: &str, value: u64) -> Result<(), ConfigError> {
    if !(1..=MAX_TTL_SECS).contains(&value) {
        return Err(ConfigError::new(
            key,
            "must be between 1 second and 400 days",
        ));
    }
    Ok(())
}

impl Settings {
    /// Lifetimes (1 s to 400 days) and timeouts (1 to 60000 ms) of `[webhooks]`, `[verify]`,
    /// `[callbacks]` and `[argos]`, in this order.
    pub(super) fn check_timings(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("webhooks.dedup_ttl_secs", self.webhooks.dedup_ttl_secs),
            ("verify.deadline_secs", self.verify.deadline_secs),
            ("verify.result_ttl_secs", self.verify.result_ttl_secs),
            ("callbacks.max_age_secs", self.callbacks.max_age_secs),
        ] {
            check_lifetime(key, value)?;
        }
        for (key, value) in [
            ("verify.poll_interval_ms", self.verify.poll_interval_ms),
            ("callbacks.timeout_ms", self.callbacks.timeout_ms),
            ("argos.api_timeout_ms", self.argos.api_timeout_ms),
            (
                "argos.api_connect_timeout_ms",
                self.argos.api_connect_timeout_ms,
            ),
        ] {
            if !(1..=60_000).contains(&value) {
                return Err(ConfigError::new(key, "must be between 1 and 60000 ms"));
            }
        }
        Ok(())
    }
}

impl TelemetrySettings {
    /// `[telemetry]`: the traces' settings.
    ///
    /// Errors: a [`ConfigError`] naming the key.
    pub fn parse(&self) -> Result<crate::telemetry::Traces, ConfigError> {
        if !self.otlp_endpoint.is_empty() {
            let parsed = url::Url::parse(&self.otlp_endpoint).map_err(|_| {
                ConfigError::new("telemetry.otlp_endpoint", "must be an absolute http(s) URL")
            })?;
            check_http_url("telemetry.otlp_endpoint", &parsed)?;
            if parsed.query().is_some() {
                return Err(ConfigError::new(
                    "telemetry.otlp_endpoint",
                    "must not have a query",
                ));
            }
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::new(
                "telemetry.service_name",
                "must not be empty",
            ));
        }
        Ok(self.into())
    }
}

pub(super) fn check_http_url(key: &str, url: &url::Url) -> Result<(), ConfigError> {
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(key, "must be an absolute http(s) URL"));
    }
    if url.fragment().is_some() {
        return Err(ConfigError::new(key, "must not have a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(key, "must not carry credentials"));
    }
    Ok(())
}
