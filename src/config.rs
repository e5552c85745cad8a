//! Layered configuration: `config/default.toml` (compiled in) < `--config FILE` < environment
//! variables `FACEAUTH__<SECTION>__<KEY>`. Validated at start-up; every error names its key.

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use jsonwebtoken::Algorithm;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use crate::argos::crypto::Encryption;
use crate::argos::url::PlaintextFormat;
use crate::links::{Expiry, LinkPolicy};

pub use crate::callbacks::CallbackFormat;
pub use crate::limits::Limit;
pub use crate::sid::SidSource;
pub use crate::store::STORE_RISKS;

/// Which header the trusted proxies write (`server.client_ip_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    /// `X-Forwarded-For` (nginx, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=…`.
    Forwarded,
}

/// The committed defaults, compiled into the binary so it runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variable prefix; `__` separates section and key.
pub const ENV_PREFIX: &str = "FACEAUTH__";

/// Keys whose environment values are taken verbatim as strings (figment would otherwise read
/// `00123` as the number 123 or `true` as a boolean).
const STRING_KEYS: &[&str] = &[
    "server.public_base_url",
    "store.redis_url",
    "store.key_prefix",
    "argos.form_url",
    "argos.project_id",
    "argos.api_key",
    "auth.hs256_secret",
    "auth.public_key_pem",
    "auth.issuer",
    "auth.audience",
    "auth.user_id_claim",
    "auth.sid_claim",
    "auth.jwks_url",
    "argos.api_base_url",
    "argos.idcheck_api_key",
    "webhooks.path_secret",
    "callbacks.url",
    "callbacks.secret",
    "auth.service.audience",
    "auth.service.issuer",
    "auth.service.scope_claim",
    "auth.service.jwks_url",
    "auth.service.public_key_pem",
    "auth.service.hs256_secret",
    "outbound.proxy",
    "assertions.signing_key_file",
    "assertions.audience",
    "assertions.acr",
    "argos.previous_api_key",
    "webhooks.previous_path_secret",
    "telemetry.otlp_endpoint",
    "telemetry.service_name",
];

/// Every secret setting, and whether it holds a list. Each can also be read from a file:
/// `<key>_file = "/path"` in the `--config` file, or `FACEAUTH__<SECTION>__<KEY>__FILE` (or
/// `…_FILE`) in the environment. A file holds the value (trailing line breaks dropped); for
/// a list, one entry per non-empty line. `check-config` reports where each came from.
pub const SECRET_SETTINGS: &[(&str, bool)] = &[
    ("store.redis_url", false),
    ("argos.api_key", false),
    ("argos.previous_api_key", false),
    ("argos.idcheck_api_key", false),
    ("auth.hs256_secret", false),
    ("auth.service.hs256_secret", false),
    ("auth.service.api_key_sha256", true),
    ("webhooks.path_secret", false),
    ("webhooks.previous_path_secret", false),
    ("callbacks.secret", false),
    ("callbacks.previous_secrets", true),
    ("outbound.proxy", false),
];

/// Longest allowed lifetime for any `links.*_secs` value: 30 days, in seconds.
pub const MAX_LIFETIME_SECS: u64 = 30 * 24 * 3600;

/// A configuration problem, naming the key (e.g. `argos.api_key`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("config key `{key}`: {message}")]
pub struct ConfigError {
    /// Dotted key, e.g. `auth.algorithms`.
    pub key: String,
    /// What is wrong (never the value of a secret).
    pub message: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

fn redact<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) if !v.expose_secret().is_empty() => s.serialize_str("[REDACTED]"),
        Some(_) => s.serialize_str(""),
        None => s.serialize_none(),
    }
}

fn redact_list<S: Serializer>(values: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(values.len()))?;
    for _ in values {
        seq.serialize_element("[REDACTED]")?;
    }
    seq.end()
}

fn redact_urls<S: Serializer>(urls: &[String], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(urls.len()))?;
    for u in urls {
        match url::Url::parse(u) {
            Ok(mut parsed) if parsed.password().is_some() => {
                let _ = parsed.set_password(Some("REDACTED"));
                seq.serialize_element(parsed.as_str())?;
            }
            _ => seq.serialize_element(u)?,
        }
    }
    seq.end()
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[server]`
    pub server: ServerSettings,
    /// `[store]`
    pub store: StoreSettings,
    /// `[argos]`
    pub argos: ArgosSettings,
    /// `[links]`
    pub links: LinksSettings,
    /// `[auth]`
    pub auth: AuthSettings,
    /// `[log]`
    pub log: LogSettings,
    /// `[limits]`
    pub limits: LimitsSettings,
    /// `[sid]`
    pub sid: SidSettings,
    /// `[webhooks]`
    pub webhooks: WebhookSettings,
    /// `[verify]`
    pub verify: VerifySettings,
    /// `[callbacks]`
    pub callbacks: CallbackSettings,
    /// `[cors]`
    pub cors: CorsSettings,
    /// `[outbound]`
    #[serde(default)]
    pub outbound: OutboundSettings,
    /// `[assertions]`
    #[serde(default)]
    pub assertions: AssertionSettings,
    /// `[erasure]`
    #[serde(default)]
    pub erasure: ErasureSettings,
    /// `[telemetry]`
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    /// Where each secret setting came from (`check-config`); never a value.
    #[serde(skip)]
    pub secret_sources: BTreeMap<String, String>,
}

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
    fn validate(&self, auth: &AuthSettings) -> Result<(), ConfigError> {
        if self.signing_key_file.is_empty() {
            if !self.previous_key_files.is_empty() {
                return Err(ConfigError::new(
                    "assertions.previous_key_files",
                    "needs assertions.signing_key_file",
                ));
            }
            return Ok(());
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
        Ok(())
    }
}

impl ErasureSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(24 * 3600..=10 * 366 * 24 * 3600).contains(&self.auth_ids_ttl_secs) {
            return Err(ConfigError::new(
                "erasure.auth_ids_ttl_secs",
                "must be between 1 day and 10 years",
            ));
        }
        if !(60..=30 * 24 * 3600).contains(&self.deadline_secs) {
            return Err(ConfigError::new(
                "erasure.deadline_secs",
                "must be between 60 seconds and 30 days",
            ));
        }
        if self.record_ttl_secs <= self.deadline_secs || self.record_ttl_secs > 400 * 24 * 3600 {
            return Err(ConfigError::new(
                "erasure.record_ttl_secs",
                "must be longer than erasure.deadline_secs and at most 400 days",
            ));
        }
        Ok(())
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

impl SidSettings {
    /// The resolver's policy in milliseconds.
    pub fn policy(&self) -> crate::sid::SidPolicy {
        crate::sid::SidPolicy {
            sources: self.sources.clone(),
            store_ttl_ms: self.store_ttl_secs * 1000,
            cache_ttl_ms: self.argos_cache_secs * 1000,
        }
    }
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

impl ErasureSettings {
    /// The erasures' policy in milliseconds.
    pub fn policy(&self) -> crate::erasure::ErasurePolicy {
        crate::erasure::ErasurePolicy {
            record_ttl_ms: self.record_ttl_secs.saturating_mul(1000),
            deadline_ms: self.deadline_secs.saturating_mul(1000),
            callback: self.callback,
        }
    }
}

impl Settings {
    /// The results loop's policy from `[verify]`, `[webhooks]` and `[erasure]`.
    pub fn verify_policy(&self) -> crate::results::VerifyPolicy {
        let v = &self.verify;
        crate::results::VerifyPolicy {
            deadline_ms: v.deadline_secs.saturating_mul(1000),
            result_ttl_ms: v.result_ttl_secs.saturating_mul(1000),
            dedup_ttl_ms: self.webhooks.dedup_ttl_secs.saturating_mul(1000),
            auth_ids_ttl_ms: self.erasure.auth_ids_ttl_secs.saturating_mul(1000),
            judge: crate::verdict::JudgePolicy {
                skew_ms: i64::try_from(v.clock_skew_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
                require_submission_id: v.require_submission_id,
            },
            jobs: v.into(),
        }
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

    /// Worker settings: a job's lease must outlast the longest ARGOS call and callback
    /// attempt, so that one replica at a time works on a job.
    fn validate_workers(&self) -> Result<(), ConfigError> {
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

    /// The delivery target; `None` when `callbacks.url` or `callbacks.secret` is not set.
    pub fn target(&self) -> Option<crate::callbacks::CallbackTarget> {
        let url = self.url.clone().filter(|u| !u.is_empty())?;
        self.secret.as_ref()?;
        Some(crate::callbacks::CallbackTarget {
            url,
            keys: self.keys(),
            max_age_ms: self.max_age_secs.saturating_mul(1000),
            timeout_ms: self.timeout_ms,
        })
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

impl ArgosSettings {
    /// The ARGOS REST API client's settings.
    pub fn api(&self) -> crate::argos::client::ArgosApi {
        crate::argos::client::ArgosApi {
            base_url: self.api_base_url.clone(),
            addon_key: self.api_key.clone(),
            idcheck_key: self.idcheck_api_key.clone(),
            connect_timeout_ms: self.api_connect_timeout_ms,
            timeout_ms: self.api_timeout_ms,
            retries: self.api_retries,
        }
    }
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

impl LinksSettings {
    /// The store policy in milliseconds.
    pub fn policy(&self) -> LinkPolicy {
        LinkPolicy {
            expiry: self.expiry,
            window_ms: self.window_secs * 1000,
            unopened_ttl_ms: self.unopened_ttl_secs * 1000,
            retention_ms: self.retention_secs * 1000,
        }
    }
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

/// `log.format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Settings {
    /// Loads defaults, then `file` (if given; it must exist), then the environment.
    ///
    /// Errors: a [`ConfigError`] naming the key that failed to parse (or `--config` for an
    /// unreadable file).
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// [`Settings::load`] with an explicit environment (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut sources = BTreeMap::new();
        let defaults: toml::Table = toml::from_str(DEFAULT_TOML).unwrap_or_default();
        for (key, _) in SECRET_SETTINGS {
            if table_get(&defaults, key).is_some() {
                sources.insert(key.to_string(), "default (config/default.toml)".to_string());
            }
        }
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::new(
                    "--config",
                    format!("`{}` is not a readable file", path.display()),
                ));
            }
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(
                    "--config",
                    format!("`{shown}` is not readable: {}", e.kind()),
                )
            })?;
            // The parser's message quotes the offending line, which may hold a secret: only
            // the line number is shown.
            let mut table: toml::Table = toml::from_str(&text).map_err(|e| {
                let line = e
                    .span()
                    .map(|r| text[..r.start.min(text.len())].matches('\n').count() + 1)
                    .unwrap_or(0);
                ConfigError::new(
                    "--config",
                    format!("`{shown}` is not valid TOML (line {line})"),
                )
            })?;
            for (key, list) in SECRET_SETTINGS {
                let file_key = format!("{key}_file");
                match table_remove(&mut table, &file_key) {
                    Some(toml::Value::String(secret_path)) => {
                        if table_get(&table, key).is_some() {
                            return Err(ConfigError::new(
                                file_key,
                                format!("set either {key} or {key}_file, not both"),
                            ));
                        }
                        let value = read_secret_file(&file_key, &secret_path, *list)?;
                        table_set(&mut table, key, value);
                        sources.insert(
                            key.to_string(),
                            format!("file {secret_path} (config file key {file_key})"),
                        );
                    }
                    Some(_) => {
                        return Err(ConfigError::new(file_key, "must be a file path (a string)"))
                    }
                    None if table_get(&table, key).is_some() => {
                        sources.insert(key.to_string(), format!("config file {shown}"));
                    }
                    None => {}
                }
            }
            figment = figment.merge(Serialized::defaults(table));
        }
        let mut env_files = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let dotted = rest.to_ascii_lowercase().replace("__", ".");
            if let Some(key) = dotted
                .strip_suffix(".file")
                .or_else(|| dotted.strip_suffix("_file"))
                .and_then(secret_setting)
            {
                env_files.push((key, name, value));
                continue;
            }
            if let Some(key) = secret_setting(&dotted) {
                sources.insert(key.0.to_string(), format!("env {name}"));
            }
            figment = if STRING_KEYS.contains(&dotted.as_str())
                || dotted.starts_with("auth.cf_claims.")
            {
                figment.merge(Serialized::default(&dotted, value))
            } else {
                // Numbers, booleans and arrays (`["RS256"]`) as figment's Env provider reads them.
                let parsed: figment::value::Value = value
                    .parse()
                    .unwrap_or_else(|never: std::convert::Infallible| match never {});
                figment.merge(Serialized::default(&dotted, parsed))
            };
        }
        for ((key, list), name, secret_path) in env_files {
            if sources.get(key).is_some_and(|s| s.starts_with("env ")) {
                return Err(ConfigError::new(
                    key,
                    format!("set either {name} or its value variable, not both"),
                ));
            }
            let value = read_secret_file(&format!("{key}_file"), &secret_path, list)?;
            figment = figment.merge(Serialized::default(key, value));
            sources.insert(key.to_string(), format!("file {secret_path} ({name})"));
        }
        for (key, _) in SECRET_SETTINGS {
            sources
                .entry(key.to_string())
                .or_insert_with(|| "not set".to_string());
        }
        let mut settings = figment.extract::<Settings>().map_err(figment_error)?;
        settings.secret_sources = sources;
        Ok(settings)
    }

    /// Where each secret setting came from, one `key: source` line each (never a value).
    pub fn secret_sources_report(&self) -> String {
        self.secret_sources
            .iter()
            .map(|(k, v)| format!("# {k}: {v}\n"))
            .collect()
    }

    /// Checks values that parse but are not usable. Component constructors (JWT keys, cipher)
    /// check the rest.
    ///
    /// Errors: the first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_http_url("server.public_base_url", &self.server.public_base_url)?;
        if self.server.public_base_url.query().is_some() {
            return Err(ConfigError::new(
                "server.public_base_url",
                "must not have a query",
            ));
        }
        check_http_url("argos.form_url", &self.argos.form_url)?;
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
        if self.server.workers > 256 {
            return Err(ConfigError::new("server.workers", "must be at most 256"));
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
        if !(200..=16_384).contains(&self.argos.max_url_bytes) {
            return Err(ConfigError::new(
                "argos.max_url_bytes",
                "must be between 200 and 16384",
            ));
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
        check_http_url("argos.api_base_url", &self.argos.api_base_url)?;
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
        if self.argos.api_retries > 10 {
            return Err(ConfigError::new("argos.api_retries", "must be at most 10"));
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
        if !(1..=128).contains(&self.limits.ipv6_prefix_len) {
            return Err(ConfigError::new(
                "limits.ipv6_prefix_len",
                "must be between 1 and 128",
            ));
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
        if self.auth.max_token_lifetime_secs > 400 * 24 * 3600 {
            return Err(ConfigError::new(
                "auth.max_token_lifetime_secs",
                "must be at most 400 days (0 = no limit)",
            ));
        }
        self.outbound.outbound()?;
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
        if self.auth.leeway_secs > 600 {
            return Err(ConfigError::new(
                "auth.leeway_secs",
                "must be at most 600 seconds",
            ));
        }
        self.validate_workers()?;
        self.assertions.validate(&self.auth)?;
        self.erasure.validate()?;
        Ok(())
    }

    /// The effective configuration as TOML with secrets replaced by `[REDACTED]`.
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// The entry of [`SECRET_SETTINGS`] for a dotted key.
fn secret_setting(dotted: &str) -> Option<(&'static str, bool)> {
    SECRET_SETTINGS.iter().copied().find(|(k, _)| *k == dotted)
}

/// Reads a secret file: the whole text less trailing line breaks, or for a list one entry per
/// non-empty line. Errors name the `…_file` key and the path (never the content).
fn read_secret_file(file_key: &str, path: &str, list: bool) -> Result<toml::Value, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(file_key, format!("cannot read `{path}`: {}", e.kind())))?;
    Ok(if list {
        toml::Value::Array(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| toml::Value::String(l.to_string()))
                .collect(),
        )
    } else {
        toml::Value::String(text.trim_end_matches(['\r', '\n']).to_string())
    })
}

fn table_get<'a>(table: &'a toml::Table, dotted: &str) -> Option<&'a toml::Value> {
    let (parents, last) = match dotted.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, dotted),
    };
    let mut t = table;
    for part in parents.into_iter().flat_map(|p| p.split('.')) {
        t = t.get(part)?.as_table()?;
    }
    t.get(last)
}

fn table_remove(table: &mut toml::Table, dotted: &str) -> Option<toml::Value> {
    let (parents, last) = match dotted.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, dotted),
    };
    let mut t = table;
    for part in parents.into_iter().flat_map(|p| p.split('.')) {
        t = t.get_mut(part)?.as_table_mut()?;
    }
    t.remove(last)
}

fn table_set(table: &mut toml::Table, dotted: &str, value: toml::Value) {
    let (parents, last) = match dotted.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, dotted),
    };
    let mut t = table;
    for part in parents.into_iter().flat_map(|p| p.split('.')) {
        let entry = t
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        match entry.as_table_mut() {
            Some(inner) => t = inner,
            None => return,
        }
    }
    t.insert(last.to_string(), value);
}

fn check_http_url(key: &str, url: &url::Url) -> Result<(), ConfigError> {
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

fn figment_error(e: figment::Error) -> ConfigError {
    let key = if e.path.is_empty() {
        "(config)".to_string()
    } else {
        e.path.join(".")
    };
    // The kind says what was expected; it never includes the value for string fields, but to
    // be safe for secrets only the kind is shown, not the offending value.
    let message = match &e.kind {
        figment::error::Kind::MissingField(f) => {
            return ConfigError::new(
                if e.path.is_empty() {
                    f.to_string()
                } else {
                    format!("{key}.{f}")
                },
                "missing",
            )
        }
        figment::error::Kind::UnknownVariant(v, expected) => {
            format!(
                "unknown value `{v}`, expected one of {}",
                expected.join(", ")
            )
        }
        figment::error::Kind::UnknownField(field, _) => {
            // figment's path may already end with the unknown field (values from the
            // environment); do not name it twice (`store.key_prefx.key_prefx`).
            return ConfigError::new(
                if e.path.is_empty() {
                    field.to_string()
                } else if e.path.last().is_some_and(|last| last == field) {
                    key
                } else {
                    format!("{key}.{field}")
                },
                "unknown setting (check the spelling against config/default.toml)",
            );
        }
        figment::error::Kind::InvalidType(actual, expected) => {
            format!(
                "invalid type: found {}, expected {expected}",
                type_of(actual)
            )
        }
        figment::error::Kind::InvalidValue(actual, expected) => {
            format!(
                "invalid value: found {}, expected {expected}",
                type_of(actual)
            )
        }
        figment::error::Kind::Message(m) if !is_secret_key(&key) => m.clone(),
        figment::error::Kind::Message(_) => "invalid value (not shown: a secret)".into(),
        other if !is_secret_key(&key) => other.to_string(),
        _ => "invalid value (not shown: a secret)".into(),
    };
    ConfigError::new(key, message)
}

/// Whether `key` (or an entry of it, `key.N`) is one of [`SECRET_SETTINGS`].
fn is_secret_key(key: &str) -> bool {
    SECRET_SETTINGS.iter().any(|(secret, _)| {
        key == *secret
            || key
                .strip_prefix(secret)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// What kind of value was found, never the value itself: a wrongly typed setting may hold a
/// secret (a single string given where a list of secrets is expected).
fn type_of(actual: &figment::error::Actual) -> &'static str {
    use figment::error::Actual;
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit | Actual::Option => "nothing",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "another type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn proxy_settings_are_checked_without_echoing_them() {
        let ok = OutboundSettings {
            proxy: Some(SecretString::from("http://user:pw@proxy.internal:3128")),
            use_env_proxy: false,
        };
        let o = ok.outbound().unwrap();
        assert!(!format!("{o:?}").contains("pw"));
        let both = OutboundSettings {
            use_env_proxy: true,
            ..ok.clone()
        };
        assert_eq!(both.outbound().unwrap_err().key, "outbound.proxy");
        let bad = OutboundSettings {
            proxy: Some(SecretString::from("socks9://secret-host")),
            use_env_proxy: false,
        };
        let e = bad.outbound().unwrap_err();
        assert_eq!(e.key, "outbound.proxy");
        assert!(!e.to_string().contains("secret-host"));
        assert!(OutboundSettings::default().outbound().is_ok());
    }
}
