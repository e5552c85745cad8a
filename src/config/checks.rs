//! `Settings::validate`'s checks, one function per section (group); every error names its key.

use super::*;

impl Settings {
    /// `[server]`: URLs, listeners, shutdown, limits of requests.
    pub(super) fn check_server(&self) -> Result<(), ConfigError> {
        check_http_url("server.public_base_url", &self.server.public_base_url)?;
        if self.server.public_base_url.query().is_some() {
            return Err(ConfigError::new(
                "server.public_base_url",
                "must not have a query",
            ));
        }
        if let Some(metrics) = self.server.metrics_addr()? {
            let overlap = metrics.ip() == self.server.bind.ip()
                || metrics.ip().is_unspecified()
                || self.server.bind.ip().is_unspecified();
            if overlap && metrics.port() == self.server.bind.port() && metrics.port() != 0 {
                return Err(ConfigError::new(
                    "server.metrics_bind",
                    "must differ from server.bind (metrics stay off the public port)",
                ));
            }
        }
        if self.server.drain_secs > 300 {
            return Err(ConfigError::new("server.drain_secs", "must be at most 300"));
        }
        if !(1..=300).contains(&self.server.shutdown_timeout_secs) {
            return Err(ConfigError::new(
                "server.shutdown_timeout_secs",
                "must be between 1 and 300",
            ));
        }
        if self.server.workers > 256 {
            return Err(ConfigError::new("server.workers", "must be at most 256"));
        }
        for (key, value, range) in [
            ("server.max_headers", self.server.max_headers, 8..=90),
            (
                "server.max_header_bytes",
                self.server.max_header_bytes,
                1024..=65_536,
            ),
            (
                "server.max_uri_bytes",
                self.server.max_uri_bytes,
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
        Ok(())
    }

    /// `[store]`: the backend, its URL and topology.
    pub(super) fn check_store(&self) -> Result<(), ConfigError> {
        if self.store.backend == StoreBackend::Redis
            && self
                .store
                .redis_url
                .as_ref()
                .is_none_or(|u| u.expose_secret().trim().is_empty())
        {
            return Err(ConfigError::new(
                "store.redis_url",
                "required when store.backend = \"redis\"",
            ));
        }
        if let Some(url) = self.store.redis_url.as_ref() {
            if self.store.backend == StoreBackend::Redis
                && redis::Client::open(url.expose_secret()).is_err()
            {
                return Err(ConfigError::new(
                    "store.redis_url",
                    "not a usable Redis URL (redis://[:password@]host:port/db; TLS is not built in)",
                ));
            }
        }
        if self.store.key_prefix.is_empty() || self.store.key_prefix.contains(['{', '}']) {
            return Err(ConfigError::new(
                "store.key_prefix",
                "must not be empty or contain braces (they are Redis Cluster hash tags)",
            ));
        }
        if self.store.backend == StoreBackend::Redis {
            let (key, nodes) = match self.store.redis_mode {
                RedisMode::Standalone => ("", &Vec::new()),
                RedisMode::Sentinel => ("store.sentinel_nodes", &self.store.sentinel_nodes),
                RedisMode::Cluster => ("store.cluster_nodes", &self.store.cluster_nodes),
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
    pub(super) fn check_store_bounds(&self) -> Result<(), ConfigError> {
        if !(1..=60_000).contains(&self.store.timeout_ms) {
            return Err(ConfigError::new(
                "store.timeout_ms",
                "must be between 1 and 60000",
            ));
        }
        if self.store.startup_wait_secs > 3_600 {
            return Err(ConfigError::new(
                "store.startup_wait_secs",
                "must be between 0 and 3600",
            ));
        }
        if self.store.min_replica_acks > 16 {
            return Err(ConfigError::new(
                "store.min_replica_acks",
                "must be between 0 and 16",
            ));
        }
        if self.store.min_replica_acks > 0 && self.store.redis_mode == RedisMode::Cluster {
            return Err(ConfigError::new(
                "store.min_replica_acks",
                "is not supported with store.redis_mode = \"cluster\" (use 0)",
            ));
        }
        if self.store.min_replica_acks > 0
            && (self.store.replica_ack_timeout_ms == 0
                || self.store.replica_ack_timeout_ms * 2 > self.store.timeout_ms)
        {
            return Err(ConfigError::new(
                "store.replica_ack_timeout_ms",
                "must be at least 1 and at most half of store.timeout_ms",
            ));
        }
        if !(10..=10_000).contains(&self.store.sentinel_poll_ms) {
            return Err(ConfigError::new(
                "store.sentinel_poll_ms",
                "must be between 10 and 10000",
            ));
        }
        if !(1_000..=3_600_000).contains(&self.store.idempotency_claim_ms) {
            return Err(ConfigError::new(
                "store.idempotency_claim_ms",
                "must be between 1000 and 3600000",
            ));
        }
        if let Some(unknown) = self
            .store
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

    /// `[argos]`: URLs, project and keys, URL length, retries.
    pub(super) fn check_argos(&self) -> Result<(), ConfigError> {
        check_http_url("argos.form_url", &self.argos.form_url)?;
        match &self.argos.project_id {
            Some(p) if !p.trim().is_empty() => {}
            _ => return Err(ConfigError::new("argos.project_id", "required")),
        }
        match &self.argos.api_key {
            Some(k) if !k.expose_secret().trim().is_empty() => {}
            Some(_) => return Err(ConfigError::new("argos.api_key", "must not be empty")),
            None => {
                return Err(ConfigError::new(
                    "argos.api_key",
                    "required (set FACEAUTH__ARGOS__API_KEY)",
                ))
            }
        }
        if !(200..=16_384).contains(&self.argos.max_url_bytes) {
            return Err(ConfigError::new(
                "argos.max_url_bytes",
                "must be between 200 and 16384",
            ));
        }
        check_http_url("argos.api_base_url", &self.argos.api_base_url)?;
        if self.argos.api_retries > 10 {
            return Err(ConfigError::new("argos.api_retries", "must be at most 10"));
        }
        Ok(())
    }

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

    /// `[links]` and `[limits]`.
    pub(super) fn check_links_limits(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("links.window_secs", self.links.window_secs),
            ("links.unopened_ttl_secs", self.links.unopened_ttl_secs),
            ("links.retention_secs", self.links.retention_secs),
        ] {
            if !(1..=MAX_LIFETIME_SECS).contains(&value) {
                return Err(ConfigError::new(
                    key,
                    format!("must be between 1 and {MAX_LIFETIME_SECS} seconds"),
                ));
            }
        }
        for (key, limit) in [
            ("limits.mint_per_user", self.limits.mint_per_user),
            ("limits.open_per_ip", self.limits.open_per_ip),
        ] {
            if limit.limit > 0 && !(1..=MAX_LIFETIME_SECS).contains(&limit.window_secs) {
                return Err(ConfigError::new(
                    format!("{key}.window_secs"),
                    format!("must be between 1 and {MAX_LIFETIME_SECS} seconds"),
                ));
            }
        }
        if !(1..=128).contains(&self.limits.ipv6_prefix_len) {
            return Err(ConfigError::new(
                "limits.ipv6_prefix_len",
                "must be between 1 and 128",
            ));
        }
        Ok(())
    }

    /// `[webhooks]` path secrets and `[callbacks]` target and secrets.
    pub(super) fn check_webhooks_callbacks(&self) -> Result<(), ConfigError> {
        for (key, secret) in [
            ("webhooks.path_secret", &self.webhooks.path_secret),
            (
                "webhooks.previous_path_secret",
                &self.webhooks.previous_path_secret,
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
        if let Some(url) = self.callbacks.url.as_deref().filter(|u| !u.is_empty()) {
            let parsed = url::Url::parse(url)
                .map_err(|e| ConfigError::new("callbacks.url", e.to_string()))?;
            check_http_url("callbacks.url", &parsed)?;
            if self
                .callbacks
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
                .callbacks
                .secret
                .iter()
                .map(|s| ("callbacks.secret".to_string(), s));
            let previous = self
                .callbacks
                .previous_secrets
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("callbacks.previous_secrets[{i}]"), s));
            for (key, secret) in secrets.chain(previous) {
                if secret.expose_secret().len() < 32 {
                    return Err(ConfigError::new(key, "must be at least 32 characters"));
                }
                if self.callbacks.format.standard() {
                    crate::callbacks::standard_key(secret.expose_secret()).map_err(|e| {
                        ConfigError::new(
                            key,
                            format!("with callbacks.format = \"standard\" or \"both\": {e}"),
                        )
                    })?;
                }
            }
        }
        Ok(())
    }

    /// `[sid]`: sources and what they need.
    pub(super) fn check_sid(&self) -> Result<(), ConfigError> {
        if self.sid.sources.is_empty() {
            return Err(ConfigError::new(
                "sid.sources",
                "must list at least one source",
            ));
        }
        if self.sid.sources.contains(&SidSource::Argos)
            && self
                .argos
                .idcheck_api_key
                .as_ref()
                .is_none_or(|k| k.expose_secret().trim().is_empty())
        {
            return Err(ConfigError::new(
                "argos.idcheck_api_key",
                "required when sid.sources contains \"argos\"",
            ));
        }
        Ok(())
    }

    /// Lifetimes (1 s to 400 days) and timeouts (1 to 60000 ms) of several sections.
    pub(super) fn check_lifetimes(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("sid.store_ttl_secs", self.sid.store_ttl_secs),
            ("sid.argos_cache_secs", self.sid.argos_cache_secs),
            ("webhooks.dedup_ttl_secs", self.webhooks.dedup_ttl_secs),
            ("verify.deadline_secs", self.verify.deadline_secs),
            ("verify.result_ttl_secs", self.verify.result_ttl_secs),
            ("callbacks.max_age_secs", self.callbacks.max_age_secs),
        ] {
            if !(1..=400 * 24 * 3600).contains(&value) {
                return Err(ConfigError::new(
                    key,
                    "must be between 1 second and 400 days",
                ));
            }
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

    /// `[telemetry]`.
    pub(super) fn check_telemetry(&self) -> Result<(), ConfigError> {
        if !self.telemetry.otlp_endpoint.is_empty() {
            let parsed = url::Url::parse(&self.telemetry.otlp_endpoint).map_err(|_| {
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
        if self.telemetry.service_name.trim().is_empty() {
            return Err(ConfigError::new(
                "telemetry.service_name",
                "must not be empty",
            ));
        }
        Ok(())
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
