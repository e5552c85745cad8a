//! Parse, don't validate: every section converts into its typed, validated value (the domain
//! modules' own types), checks and conversion in one place, and [`Settings::parse`] keeps them
//! in a [`Config`] that start-up builds the components from.
//!
//! Sections are parsed in a fixed order, so that a configuration with several problems always
//! reports the same first one. A few bounds relate keys of several sections (the lifetimes and
//! timeouts of `[webhooks]`, `[verify]`, `[callbacks]` and `[argos]`, and a job's lease against
//! the longest ARGOS call); they are checked at their place in that order.

use std::time::Duration;

use super::*;
use crate::argos::client::ArgosApi;
use crate::callbacks::CallbackTarget;
use crate::erasure::ErasurePolicy;
use crate::outbound::Outbound;
use crate::results::VerifyPolicy;
use crate::sid::SidPolicy;
use crate::store::redis_conn::RedisTarget;
use crate::telemetry::Traces;

/// The configuration as typed, validated values: what [`Settings::parse`] returns.
#[derive(Clone)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// `[argos]`.
    pub argos: ArgosConfig,
    /// `[links]`: the store policy.
    pub links: LinkPolicy,
    /// `[links]` defaults of new links, with `argos.max_url_bytes`.
    pub link_options: crate::links::LinkOptions,
    /// `[limits]`.
    pub limits: LimitsConfig,
    /// `[webhooks]`.
    pub webhooks: WebhookConfig,
    /// `[callbacks]`: the delivery target, `None` when `callbacks.url` is empty.
    pub callbacks: Option<CallbackTarget>,
    /// `[sid]`.
    pub sid: SidPolicy,
    /// `[verify]` (with `webhooks.dedup_ttl_secs` and `erasure.auth_ids_ttl_secs`).
    pub verify: VerifyPolicy,
    /// `[verify]`: how often the background workers run, and their bound per round.
    pub workers: WorkerTiming,
    /// `[erasure]`.
    pub erasure: ErasurePolicy,
    /// `[outbound]`.
    pub outbound: Outbound,
    /// `[assertions]`.
    pub assertions: crate::assertions::AssertionSetup,
    /// `[telemetry]`.
    pub telemetry: Traces,
}

/// `[server]`, parsed.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The metrics listener, if on.
    pub metrics_addr: Option<SocketAddr>,
    /// `server.public_base_url` without its trailing `/`.
    pub public_base_url: String,
    /// The origin of `server.public_base_url`.
    pub own_origin: String,
    /// `server.drain_secs`.
    pub drain: Duration,
    /// `server.bind`.
    pub bind: SocketAddr,
    /// `server.workers`; 0 = one per core.
    pub workers: usize,
    /// `server.trusted_proxies`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `server.client_ip_header`.
    pub client_ip_header: ClientIpHeader,
    /// `server.shutdown_timeout_secs`.
    pub shutdown_timeout_secs: u64,
    /// `server.max_headers`.
    pub max_headers: usize,
    /// `server.max_header_bytes`.
    pub max_header_bytes: usize,
    /// `server.max_uri_bytes`.
    pub max_uri_bytes: usize,
}

/// When the background workers run (`[verify]`).
#[derive(Debug, Clone, Copy)]
pub struct WorkerTiming {
    /// `verify.poll_interval_ms`.
    pub every: Duration,
    /// A round works on at most 20 jobs, each bounded by its lease (`verify.lock_ttl_secs`):
    /// a round that takes longer than 22 leases hangs, and is stopped and counted.
    pub round_timeout: Duration,
}

/// `[store]`, parsed.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Where Redis is; `None` with `store.backend = "memory"`.
    pub redis: Option<RedisTarget>,
    /// `store.timeout_ms`.
    pub timeout: Duration,
    /// `store.startup_wait_secs`; zero = one attempt.
    pub startup_wait: Duration,
    /// `store.replica_ack_timeout_ms`.
    pub replica_ack_timeout: Duration,
    /// `store.sentinel_poll_ms`.
    pub sentinel_poll: Duration,
    /// `store.key_prefix`.
    pub key_prefix: String,
    /// `store.min_replica_acks`.
    pub min_replica_acks: u32,
    /// `store.idempotency_claim_ms`.
    pub idempotency_claim_ms: u64,
    /// `store.accept_risks`, every one known.
    pub accept_risks: Vec<String>,
}

/// `[argos]`, parsed.
#[derive(Clone)]
pub struct ArgosConfig {
    /// `argos.project_id`, set.
    pub project_id: String,
    /// `argos.api_key`, set and not empty.
    pub api_key: SecretString,
    /// The origin of `argos.form_url`.
    pub faceauth_origin: String,
    /// `argos.form_url`.
    pub form_url: url::Url,
    /// `argos.encryption`.
    pub encryption: Encryption,
    /// `argos.plaintext`.
    pub plaintext: PlaintextFormat,
    /// The keys webhook envelopes may be encrypted with, in the order they are tried: the
    /// Add-on key, the previous Add-on key, the ID Check key (those set).
    pub envelope_keys: Vec<SecretString>,
    /// The REST API client's settings.
    pub api: ArgosApi,
}

/// `[limits]`, parsed.
#[derive(Debug, Clone, Copy)]
pub struct LimitsConfig {
    /// `limits.mint_per_user`.
    pub mint_per_user: Limit,
    /// `limits.open_per_ip`.
    pub open_per_ip: Limit,
    /// `limits.ipv6_prefix_len`.
    pub ipv6_prefix_len: u8,
}

/// `[webhooks]`, parsed.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The accepted path secrets: the current one, then the previous one (only while a current
    /// one is set); empty = receiver off.
    pub path_secrets: Vec<SecretString>,
    /// `webhooks.allowed_ips`.
    pub allowed_ips: Vec<ipnet::IpNet>,
}

impl Settings {
    /// Parses every section into its typed value, in a fixed order.
    ///
    /// Errors: the first [`ConfigError`] found, naming its key.
    pub fn parse(&self) -> Result<Config, ConfigError> {
        let server = ServerConfig::try_from(&self.server)?;
        let store = StoreConfig::try_from(&self.store)?;
        let argos = ArgosConfig::try_from(&self.argos)?;
        self.check_auth()?;
        self.check_jwks()?;
        self.check_cors()?;
        let links = LinkPolicy::try_from(&self.links)?;
        let limits = LimitsConfig::try_from(&self.limits)?;
        let webhooks = WebhookConfig::try_from(&self.webhooks)?;
        let callbacks = self.callbacks.parse()?;
        let sid = self.sid.parse(&self.argos)?;
        self.check_timings()?;
        let telemetry = self.telemetry.parse()?;
        let outbound = Outbound::try_from(&self.outbound)?;
        let verify = self.parse_verify()?;
        let assertions = self.assertions.parse(&self.auth)?;
        let erasure = ErasurePolicy::try_from(&self.erasure)?;
        let link_options = crate::links::LinkOptions {
            confirm_step: self.links.confirm_step,
            single_active: self.links.single_active,
            max_url_bytes: self.argos.max_url_bytes,
        };
        let workers = WorkerTiming {
            every: Duration::from_millis(self.verify.poll_interval_ms),
            round_timeout: Duration::from_secs(self.verify.lock_ttl_secs.saturating_mul(22)),
        };
        Ok(Config {
            link_options,
            workers,
            server,
            store,
            argos,
            links,
            limits,
            webhooks,
            callbacks,
            sid,
            verify,
            erasure,
            outbound,
            assertions,
            telemetry,
        })
    }

    /// Checks values that parse but are not usable ([`Settings::parse`], values dropped).
    /// Component constructors (JWT keys, cipher) check the rest.
    ///
    /// Errors: the first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.parse().map(drop)
    }
}

impl TryFrom<&OutboundSettings> for Outbound {
    type Error = ConfigError;

    fn try_from(s: &OutboundSettings) -> Result<Self, ConfigError> {
        s.outbound()
    }
}
