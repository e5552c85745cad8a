//! The sections of the configuration as read (TOML, environment), and what each converts into: the domain modules' own types.

use super::*;

/// `[assertions]`: signed step-up assertions (see [`crate::assertions`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssertionSettings {
    /// PKCS#8 PEM private key (Ed25519 or P-256) that signs assertions; empty = off.
    pub signing_key_file: String,
    /// Earlier keys still published in the JWKS during a rotation (PEM public keys or the old
    /// PKCS#8 private keys); never used to sign.
    pub previous_key_files: Vec<String>,
    /// `aud` of every assertion (the app's backend); required when on.
    pub audience: String,
    /// `acr` of every assertion.
    pub acr: String,
    /// `exp` = `auth_time` + this, seconds (1-3600).
    pub lifetime_secs: u64,
    /// `Cache-Control: public, max-age=` of `GET /.well-known/jwks.json`, seconds (0-86400).
    pub jwks_max_age_secs: u64,
}

impl Default for AssertionSettings {
    fn default() -> Self {
        AssertionSettings {
            signing_key_file: String::new(),
            previous_key_files: Vec::new(),
            audience: String::new(),
            acr: "urn:faceauth-gateway:acr:face".into(),
            lifetime_secs: 300,
            jwks_max_age_secs: 300,
        }
    }
}

impl From<&TelemetrySettings> for crate::telemetry::Traces {
    fn from(t: &TelemetrySettings) -> Self {
        crate::telemetry::Traces {
            otlp_endpoint: t.otlp_endpoint.clone(),
            service_name: t.service_name.clone(),
        }
    }
}

/// `[telemetry]`: OpenTelemetry traces, off unless `otlp_endpoint` is set.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// OTLP/HTTP (protobuf) base URL of a collector, e.g. `http://otel-collector:4318`; spans
    /// go to `<otlp_endpoint>/v1/traces`. Empty: no traces, no trace context propagation.
    #[serde(default)]
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            otlp_endpoint: String::new(),
            service_name: default_service_name(),
        }
    }
}

/// `[erasure]`: erasing a user's FaceAuth data at ARGOS and in the gateway (issue 19).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErasureSettings {
    /// How long the per-user set of ARGOS authentication ids (ids only) is kept after its last
    /// write, seconds: the ids an erasure deletes at ARGOS.
    pub auth_ids_ttl_secs: u64,
    /// How long an erasure record and the user's erasure tombstone are kept, seconds.
    pub record_ttl_secs: u64,
    /// ARGOS deletions are retried this long after the request, seconds.
    pub deadline_secs: u64,
    /// Send a signed `user.erased` callback when an erasure is done (with `callbacks.url`).
    pub callback: bool,
}

impl Default for ErasureSettings {
    fn default() -> Self {
        ErasureSettings {
            auth_ids_ttl_secs: 400 * 24 * 3600,
            record_ttl_secs: 30 * 24 * 3600,
            deadline_secs: 24 * 3600,
            callback: true,
        }
    }
}

impl From<&AssertionSettings> for crate::assertions::AssertionSetup {
    fn from(s: &AssertionSettings) -> Self {
        crate::assertions::AssertionSetup {
            signing_key_file: s.signing_key_file.clone(),
            previous_key_files: s.previous_key_files.clone(),
            audience: s.audience.clone(),
            acr: s.acr.clone(),
            lifetime_secs: s.lifetime_secs,
            jwks_max_age_secs: s.jwks_max_age_secs,
        }
    }
}

impl From<crate::assertions::KeyFileError> for ConfigError {
    fn from(e: crate::assertions::KeyFileError) -> Self {
        ConfigError::new(e.key, e.message)
    }
}

impl AssertionSettings {
    /// `[assertions]`: the signing setup (its audience must differ from `[auth]`'s).
    ///
    /// Errors: a [`ConfigError`] naming the key.
    pub fn parse(
        &self,
        auth: &AuthSettings,
    ) -> Result<crate::assertions::AssertionSetup, ConfigError> {
        if self.signing_key_file.is_empty() {
            if !self.previous_key_files.is_empty() {
                return Err(ConfigError::new(
                    "assertions.previous_key_files",
                    "needs assertions.signing_key_file",
                ));
            }
            return Ok(self.into());
        }
        if self.audience.trim().is_empty() {
            return Err(ConfigError::new(
                "assertions.audience",
                "required with assertions.signing_key_file",
            ));
        }
        if Some(self.audience.as_str()) == auth.audience.as_deref()
            || self.audience == auth.service.audience
        {
            return Err(ConfigError::new(
                "assertions.audience",
                "must differ from auth.audience and auth.service.audience: an assertion is not \
                 a credential for the gateway",
            ));
        }
        // acr goes into WWW-Authenticate quoted strings (RFC 9470): visible ASCII, no quotes.
        if self.acr.is_empty()
            || !self
                .acr
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            return Err(ConfigError::new(
                "assertions.acr",
                "must be 1 or more visible ASCII characters without `\"` or `\\`",
            ));
        }
        if !(1..=3600).contains(&self.lifetime_secs) {
            return Err(ConfigError::new(
                "assertions.lifetime_secs",
                "must be between 1 and 3600 seconds",
            ));
        }
        if self.jwks_max_age_secs > 86_400 {
            return Err(ConfigError::new(
                "assertions.jwks_max_age_secs",
                "must be at most 86400 seconds",
            ));
        }
        Ok(self.into())
    }
}

/// `[erasure]`: the erasures' policy in milliseconds.
impl TryFrom<&ErasureSettings> for crate::erasure::ErasurePolicy {
    type Error = ConfigError;

    fn try_from(erasure: &ErasureSettings) -> Result<Self, ConfigError> {
        if !(24 * 3600..=10 * 366 * 24 * 3600).contains(&erasure.auth_ids_ttl_secs) {
            return Err(ConfigError::new(
                "erasure.auth_ids_ttl_secs",
                "must be between 1 day and 10 years",
            ));
        }
        if !(60..=30 * 24 * 3600).contains(&erasure.deadline_secs) {
            return Err(ConfigError::new(
                "erasure.deadline_secs",
                "must be between 60 seconds and 30 days",
            ));
        }
        if erasure.record_ttl_secs <= erasure.deadline_secs
            || erasure.record_ttl_secs > 400 * 24 * 3600
        {
            return Err(ConfigError::new(
                "erasure.record_ttl_secs",
                "must be longer than erasure.deadline_secs and at most 400 days",
            ));
        }
        Ok(crate::erasure::ErasurePolicy {
            record_ttl_ms: erasure.record_ttl_secs.saturating_mul(1000),
            deadline_ms: erasure.deadline_secs.saturating_mul(1000),
            callback: erasure.callback,
        })
    }
}

fn default_service_name() -> String {
    "faceauth-gateway".into()
}

/// `[outbound]`: how outgoing HTTP (ARGOS, JWKS, callbacks) reaches the network.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundSettings {
    /// Proxy for every outgoing request, `http(s)://[user:pass@]host:port` (secret: it may
    /// carry credentials); empty = none.
    #[serde(default, serialize_with = "redact")]
    pub proxy: Option<SecretString>,
    /// `true`: honour `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY`/`NO_PROXY` (ignored otherwise).
    #[serde(default)]
    pub use_env_proxy: bool,
}

impl OutboundSettings {
    /// The outgoing network rule.
    ///
    /// Errors: a [`ConfigError`] for `outbound.proxy` (not an absolute http(s) URL, or set
    /// together with `outbound.use_env_proxy`). The message never holds the URL.
    pub fn outbound(&self) -> Result<crate::outbound::Outbound, ConfigError> {
        let proxy = self
            .proxy
            .as_ref()
            .map(|p| p.expose_secret().trim().to_string())
            .filter(|p| !p.is_empty());
        let proxy =
            match proxy {
                None => None,
                Some(_) if self.use_env_proxy => {
                    return Err(ConfigError::new(
                        "outbound.proxy",
                        "set either outbound.proxy or outbound.use_env_proxy, not both",
                    ))
                }
                Some(p) => {
                    let parsed = url::Url::parse(&p)
                        .ok()
                        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                        .ok_or_else(|| {
                            ConfigError::new(
                                "outbound.proxy",
                                "must be an absolute http(s) URL, e.g. http://proxy.internal:3128",
                            )
                        })?;
                    Some(reqwest::Proxy::all(parsed.as_str()).map_err(|_| {
                        ConfigError::new("outbound.proxy", "not a usable proxy URL")
                    })?)
                }
            };
        Ok(crate::outbound::Outbound::new(proxy, self.use_env_proxy))
    }
}

/// `[cors]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    /// Exact origins allowed for `/v1/*`, or `["*"]` without credentials.
    pub allowed_origins: Vec<String>,
    /// Allow credentials (cookies) from those origins.
    pub allow_credentials: bool,
    /// Preflight cache lifetime, seconds.
    pub max_age_secs: u64,
}

/// `[sid]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SidSettings {
    /// Sources, tried in order.
    pub sources: Vec<SidSource>,
    /// Stored mapping lifetime, seconds.
    pub store_ttl_secs: u64,
    /// ARGOS answer cache lifetime, seconds.
    pub argos_cache_secs: u64,
}

/// `[webhooks]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Secret path segment (secret); empty = receiver off.
    #[serde(default, serialize_with = "redact")]
    pub path_secret: Option<SecretString>,
    /// A second accepted path secret during a rotation (secret); empty = none.
    #[serde(default, serialize_with = "redact")]
    pub previous_path_secret: Option<SecretString>,
    /// Allowed source networks.
    pub allowed_ips: Vec<ipnet::IpNet>,
    /// Redelivery memory, seconds.
    pub dedup_ttl_secs: u64,
}

/// `[verify]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySettings {
    /// Give up pull-verification after this many seconds.
    pub deadline_secs: u64,
    /// Worker poll interval, milliseconds.
    pub poll_interval_ms: u64,
    /// Verified result lifetime, seconds.
    pub result_ttl_secs: u64,
    /// Clock skew allowed between ARGOS's `create_time` and the store's clock, seconds.
    #[serde(default = "default_clock_skew_secs")]
    pub clock_skew_secs: u64,
    /// A FaceAuth record without `kyc_submission_id` is not approved.
    #[serde(default = "default_true")]
    pub require_submission_id: bool,
    /// Lease of a claimed job (verification and callbacks), seconds; renewed while working.
    #[serde(default = "default_lock_ttl_secs")]
    pub lock_ttl_secs: u64,
    /// Failed attempts in a row (error, panic, timeout) before a job is dead-lettered.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// How long dead-lettered jobs are kept, seconds.
    #[serde(default = "default_dead_letter_ttl_secs")]
    pub dead_letter_ttl_secs: u64,
}

fn default_clock_skew_secs() -> u64 {
    60
}

fn default_true() -> bool {
    true
}

fn default_lock_ttl_secs() -> u64 {
    60
}

fn default_max_failures() -> u32 {
    5
}

fn default_dead_letter_ttl_secs() -> u64 {
    7 * 24 * 3600
}

impl From<&VerifySettings> for crate::queue::JobLimits {
    fn from(v: &VerifySettings) -> Self {
        crate::queue::JobLimits {
            lease_ms: v.lock_ttl_secs.saturating_mul(1000),
            max_failures: v.max_failures,
            dead_letter_ttl_ms: v.dead_letter_ttl_secs.saturating_mul(1000),
        }
    }
}

impl Settings {
    /// The results loop's policy from `[verify]`, `[webhooks]` and `[erasure]`: a job's lease
    /// must outlast the longest ARGOS call and callback attempt, so that one replica at a time
    /// works on a job.
    ///
    /// Errors: a [`ConfigError`] for a `verify.*` key.
    pub(super) fn parse_verify(&self) -> Result<crate::results::VerifyPolicy, ConfigError> {
        self.check_workers()?;
        let v = &self.verify;
        Ok(crate::results::VerifyPolicy {
            deadline_ms: v.deadline_secs.saturating_mul(1000),
            result_ttl_ms: v.result_ttl_secs.saturating_mul(1000),
            dedup_ttl_ms: self.webhooks.dedup_ttl_secs.saturating_mul(1000),
            auth_ids_ttl_ms: self.erasure.auth_ids_ttl_secs.saturating_mul(1000),
            judge: crate::verdict::JudgePolicy {
                skew_ms: i64::try_from(v.clock_skew_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
                require_submission_id: v.require_submission_id,
            },
            jobs: v.into(),
        })
    }

    /// The longest one ARGOS API call may take under `[argos]`: every attempt's total timeout
    /// (`api_timeout_ms`, connecting included) plus the backoff between attempts, ms.
    pub fn worst_argos_call_ms(&self) -> u64 {
        let a = &self.argos;
        let backoff: u64 = (1..=a.api_retries)
            .map(|attempt| 200u64 << (attempt - 1).min(5))
            .sum();
        a.api_timeout_ms
            .saturating_mul(u64::from(a.api_retries) + 1)
            .saturating_add(backoff)
    }

    /// Worker settings: the lease against the longest ARGOS call and callback attempt.
    fn check_workers(&self) -> Result<(), ConfigError> {
        let v = &self.verify;
        if !(3..=3600).contains(&v.lock_ttl_secs) {
            return Err(ConfigError::new(
                "verify.lock_ttl_secs",
                "must be between 3 and 3600",
            ));
        }
        let lease_ms = v.lock_ttl_secs * 1000;
        let argos = self.worst_argos_call_ms();
        if argos >= lease_ms {
            return Err(ConfigError::new(
                "verify.lock_ttl_secs",
                format!(
                    "must be longer than the longest ARGOS call the [argos] settings allow \
                     ({argos} ms: argos.api_timeout_ms per attempt, argos.api_retries + 1 \
                     attempts, and backoff)"
                ),
            ));
        }
        if self.callbacks.timeout_ms >= lease_ms {
            return Err(ConfigError::new(
                "verify.lock_ttl_secs",
                "must be longer than callbacks.timeout_ms",
            ));
        }
        if v.max_failures == 0 || v.max_failures > 100 {
            return Err(ConfigError::new(
                "verify.max_failures",
                "must be between 1 and 100",
            ));
        }
        if v.clock_skew_secs > 3600 {
            return Err(ConfigError::new(
                "verify.clock_skew_secs",
                "must be at most 3600",
            ));
        }
        Ok(())
    }
}

/// `[callbacks]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackSettings {
    /// Receiver URL; empty = off.
    #[serde(default)]
    pub url: Option<String>,
    /// HMAC secret (secret).
    #[serde(default, serialize_with = "redact")]
    pub secret: Option<SecretString>,
    /// Further secrets to sign with during a rotation (secret): every attempt carries one
    /// signature per secret.
    #[serde(default, serialize_with = "redact_list")]
    pub previous_secrets: Vec<SecretString>,
    /// Signature scheme: `stripe` (`Faceauth-Signature`), `standard` (Standard Webhooks
    /// `webhook-*` headers) or `both`.
    #[serde(default)]
    pub format: CallbackFormat,
    /// Retry horizon, seconds.
    pub max_age_secs: u64,
    /// Per-attempt timeout, milliseconds.
    pub timeout_ms: u64,
}

impl CallbackSettings {
    /// The signing keys: the current secret first, then the previous ones.
    pub fn keys(&self) -> crate::callbacks::CallbackKeys {
        crate::callbacks::CallbackKeys {
            format: self.format,
            secrets: self
                .secret
                .iter()
                .chain(self.previous_secrets.iter())
                .cloned()
                .collect(),
        }
    }
}

/// `[auth.service]`
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServiceAuthSettings {
    /// Required `aud` of service JWTs; empty = no service JWTs.
    #[serde(default)]
    pub audience: String,
    /// Required `iss`; empty = `auth.issuer`.
    #[serde(default)]
    pub issuer: String,
    /// Claim holding scopes.
    #[serde(default = "default_scope_claim")]
    pub scope_claim: String,
    /// SHA-256 (hex) of static API keys.
    #[serde(default)]
    pub api_key_sha256: Vec<String>,
    /// Own algorithm allow-list (with own keys).
    #[serde(default)]
    pub algorithms: Vec<Algorithm>,
    /// Own JWKS.
    #[serde(default)]
    pub jwks_url: Option<url::Url>,
    /// Own public key.
    #[serde(default)]
    pub public_key_pem: Option<String>,
    /// Own HMAC secret (secret).
    #[serde(default, serialize_with = "redact")]
    pub hs256_secret: Option<SecretString>,
    /// Static API keys also carry `faceauth:data:delete` (erasure); off by default.
    #[serde(default)]
    pub api_keys_may_erase: bool,
}

fn default_scope_claim() -> String {
    "scope".into()
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSettings {
    /// Mints per user.
    pub mint_per_user: Limit,
    /// `/l/*` requests per client IP.
    pub open_per_ip: Limit,
    /// IPv6 clients share one bucket per this prefix (1–128).
    #[serde(default = "default_ipv6_prefix_len")]
    pub ipv6_prefix_len: u8,
}

fn default_ipv6_prefix_len() -> u8 {
    64
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address, `host:port`.
    pub bind: SocketAddr,
    /// Base URL for `/l/{id}` links (absolute http/https, no query or fragment).
    pub public_base_url: url::Url,
    /// HTTP worker threads; 0 = one per core.
    #[serde(default)]
    pub workers: usize,
    /// Proxies whose forwarding headers are believed (CIDR).
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The header those proxies write: `x-forwarded-for` or `forwarded`.
    #[serde(default)]
    pub client_ip_header: ClientIpHeader,
    /// Metrics listener `ip:port`; empty = off.
    #[serde(default)]
    pub metrics_bind: String,
    /// Seconds `/readyz` reports 503 before the listener closes on shutdown.
    #[serde(default)]
    pub drain_secs: u64,
    /// Seconds in-flight requests get to finish on shutdown.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_secs: u64,
    /// Most request header fields (`431` above).
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Most bytes of all request header fields together (`431` above).
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Longest request target (path and query), bytes (`414` above).
    #[serde(default = "default_max_uri_bytes")]
    pub max_uri_bytes: usize,
}

fn default_max_headers() -> usize {
    64
}

fn default_max_header_bytes() -> usize {
    16 * 1024
}

fn default_max_uri_bytes() -> usize {
    8 * 1024
}

fn default_shutdown_timeout() -> u64 {
    10
}

impl ServerSettings {
    /// The metrics listener address, if on. Errors: a [`ConfigError`] for `server.metrics_bind`.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.metrics_bind.trim().is_empty() {
            return Ok(None);
        }
        self.metrics_bind
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::new("server.metrics_bind", "must be ip:port or empty"))
    }
}

/// `store.backend`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// Shared Redis (production).
    Redis,
    /// One process's memory (demo, tests).
    Memory,
}

/// `store.redis_mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One server at `store.redis_url`.
    Standalone,
    /// The master named `store.sentinel_master`, found through `store.sentinel_nodes`.
    Sentinel,
    /// A Redis Cluster from `store.cluster_nodes`.
    Cluster,
}

/// `[store]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `redis` or `memory`.
    pub backend: StoreBackend,
    /// Redis URL (secret: may hold a password).
    #[serde(serialize_with = "redact")]
    pub redis_url: Option<SecretString>,
    /// Topology.
    pub redis_mode: RedisMode,
    /// Sentinel service name.
    pub sentinel_master: String,
    /// Sentinel addresses (may hold passwords: redacted in output).
    #[serde(serialize_with = "redact_urls")]
    pub sentinel_nodes: Vec<String>,
    /// Cluster seed nodes (may hold passwords: redacted in output).
    #[serde(serialize_with = "redact_urls")]
    pub cluster_nodes: Vec<String>,
    /// Prefix of every key written.
    pub key_prefix: String,
    /// Bound for every Redis command, milliseconds.
    pub timeout_ms: u64,
    /// How long `serve` waits at start-up for the store to answer, retrying with backoff,
    /// seconds (`0`: one attempt). `check-config` never waits.
    pub startup_wait_secs: u64,
    /// Replicas that must confirm (`WAIT`) each mint and open before it is answered; 0 = off.
    #[serde(default)]
    pub min_replica_acks: u32,
    /// How long `WAIT` waits for them, milliseconds (less than half of `timeout_ms`).
    #[serde(default = "default_replica_ack_timeout")]
    pub replica_ack_timeout_ms: u64,
    /// Sentinel mode: how often the sentinels are asked which node is the master, milliseconds.
    #[serde(default = "default_sentinel_poll")]
    pub sentinel_poll_ms: u64,
    /// How long an `Idempotency-Key` claim lives without renewal, milliseconds.
    #[serde(default = "default_idempotency_claim")]
    pub idempotency_claim_ms: u64,
    /// Redis settings the operator accepts although they can lose or resurrect link state
    /// (see [`STORE_RISKS`]).
    #[serde(default)]
    pub accept_risks: Vec<String>,
}

fn default_replica_ack_timeout() -> u64 {
    100
}

fn default_sentinel_poll() -> u64 {
    100
}

fn default_idempotency_claim() -> u64 {
    30_000
}

/// `[argos]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArgosSettings {
    /// FaceAuth form URL.
    pub form_url: url::Url,
    /// FaceAuth project id (`pid`).
    #[serde(default)]
    pub project_id: Option<String>,
    /// Add-on API key (secret).
    #[serde(default, serialize_with = "redact")]
    pub api_key: Option<SecretString>,
    /// A second Add-on API key tried when decrypting webhook envelopes, during a rotation
    /// (secret).
    #[serde(default, serialize_with = "redact")]
    pub previous_api_key: Option<SecretString>,
    /// Query-string cipher.
    pub encryption: Encryption,
    /// Plaintext layout.
    pub plaintext: PlaintextFormat,
    /// Longest FaceAuth URL, bytes.
    pub max_url_bytes: usize,
    /// ARGOS REST API base URL.
    pub api_base_url: url::Url,
    /// ID Check project API key (secret).
    #[serde(default, serialize_with = "redact")]
    pub idcheck_api_key: Option<SecretString>,
    /// Connect timeout per API attempt, milliseconds.
    pub api_connect_timeout_ms: u64,
    /// Total timeout per API attempt, milliseconds.
    pub api_timeout_ms: u64,
    /// Retries after the first attempt on timeouts and 5xx.
    pub api_retries: u32,
}

/// `[links]`, all in seconds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinksSettings {
    /// `count` or `time`.
    pub expiry: Expiry,
    /// Time-based window after first use, seconds.
    pub window_secs: u64,
    /// Unopened link lifetime, seconds.
    pub unopened_ttl_secs: u64,
    /// Tombstone lifetime, seconds.
    pub retention_secs: u64,
    /// Default confirm step for new links.
    pub confirm_step: bool,
    /// Minting revokes the user's earlier never-opened links.
    pub single_active: bool,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Allowed JWT algorithms (one family).
    #[serde(default)]
    pub algorithms: Vec<Algorithm>,
    /// HMAC secret for HS* (secret).
    #[serde(default, serialize_with = "redact")]
    pub hs256_secret: Option<SecretString>,
    /// Public key: PEM text or a path to a PEM file.
    #[serde(default)]
    pub public_key_pem: Option<String>,
    /// Required `iss`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud`.
    #[serde(default)]
    pub audience: Option<String>,
    /// JWKS URL (keys chosen by `kid`).
    #[serde(default)]
    pub jwks_url: Option<url::Url>,
    /// Read `jwks_uri` from `<issuer>/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery: bool,
    /// Minimum seconds between refetches for unknown `kid`s.
    pub jwks_min_refresh_secs: u64,
    /// Seconds cached keys stay usable after their cache lifetime ended while the IdP is down.
    pub jwks_max_stale_secs: u64,
    /// Cache lifetime without `Cache-Control: max-age`, seconds.
    pub jwks_default_ttl_secs: u64,
    /// Lower bound applied to `max-age`, seconds.
    pub jwks_min_ttl_secs: u64,
    /// Upper bound applied to `max-age`, seconds.
    pub jwks_max_ttl_secs: u64,
    /// Connect timeout for JWKS/discovery fetches, milliseconds.
    pub jwks_connect_timeout_ms: u64,
    /// Total timeout for JWKS/discovery fetches, milliseconds.
    pub jwks_timeout_ms: u64,
    /// Clock-skew allowance, seconds.
    pub leeway_secs: u64,
    /// Claim used as user id / `authUserId`.
    pub user_id_claim: String,
    /// Claim holding the `sid`.
    pub sid_claim: String,
    /// `authCf1..3` → claim name.
    #[serde(default)]
    pub cf_claims: BTreeMap<String, String>,
    /// `[auth.service]`
    #[serde(default)]
    pub service: ServiceAuthSettings,
    /// Cookie holding the user's JWT; empty = off.
    #[serde(default)]
    pub cookie_name: String,
    /// Allow JWKS and discovery over plain `http` on non-loopback hosts (logged as a warning).
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Refuse tokens whose `exp` lies more than this many seconds ahead; 0 = no limit.
    #[serde(default)]
    pub max_token_lifetime_secs: u64,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
}
