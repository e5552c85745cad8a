//! Building and running the server: [`Application::build`] validates the configuration, builds
//! every component (failing closed), binds, and [`Application::run_until_stopped`] serves.

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, App, HttpServer};
use secrecy::ExposeSecret;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::argos::client::ArgosClient;
use crate::argos::crypto::{Encryption, QueryCipher};
use crate::argos::url::FaceAuthUrlBuilder;
use crate::assertions::Assertions;
use crate::auth::cookie::CookiePolicy;
use crate::auth::service::ServiceVerifier;
use crate::auth::JwtVerifier;
use crate::callbacks::Callbacks;
use crate::config::{Config, ConfigError, Settings, StoreConfig, WorkerTiming};
use crate::erasure::Erasures;
use crate::http::middleware;
use crate::http::routes::{self, AppState};
use crate::http::webhooks::{WebhookKeys, WebhookReceiver};
use crate::http::ApiError;
use crate::idempotency::Idempotency;
use crate::limits::RateLimiter;
use crate::links::LinkService;
use crate::queue::{supervise, QueueName};
use crate::results::Results;
use crate::sid::SidResolver;
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use crate::store::redis_conn::RedisTarget;
use crate::store::{Store, StoreError};

/// Why the gateway did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Invalid configuration (names the key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The link store did not answer at start-up.
    #[error("store (store.redis_url / sentinel_nodes / cluster_nodes): {0}")]
    Store(#[from] StoreError),
    /// The store did not answer within `store.startup_wait_secs`.
    #[error(
        "store.startup_wait_secs: the store did not answer within {secs} s (last error: {last})"
    )]
    StoreWait {
        /// The bound, seconds.
        secs: u64,
        /// The last attempt's error.
        last: StoreError,
    },
    /// SIGTERM/SIGINT arrived while `serve` waited for its store (exit 0).
    #[error("stopped by a signal while waiting for the store")]
    Interrupted,
    /// Binding the listener failed.
    #[error("server.bind / server.metrics_bind: cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// The components built from a validated configuration.
pub struct Components {
    /// Link service (store + URL builder).
    pub links: LinkService,
    /// JWT verifier.
    pub verifier: JwtVerifier,
    /// Rate limits (same store).
    pub limiter: RateLimiter,
    /// `Idempotency-Key` records (same store).
    pub idempotency: Idempotency,
    /// Service credentials, if configured.
    pub services: Option<ServiceVerifier>,
    /// Submission id lookup.
    pub sid: SidResolver,
    /// The results loop.
    pub results: Results,
    /// Callback delivery, if configured.
    pub callbacks: Option<Callbacks>,
    /// Webhook receiver settings.
    pub webhooks: WebhookReceiver,
    /// The Redis store, for its upkeep worker (clock offset); `None` with the memory backend.
    pub redis: Option<RedisStore>,
    /// Step-up assertions, if `[assertions]` is on.
    pub assertions: Option<Arc<Assertions>>,
    /// Erasures (issue 19).
    pub erasures: Erasures,
}

/// The Redis store's options from `[store]` and `auth.leeway_secs`.
fn store_options(store: &StoreConfig, leeway_secs: u64) -> crate::store::redis::StoreOptions {
    crate::store::redis::StoreOptions {
        min_replica_acks: store.min_replica_acks,
        replica_ack_timeout: store.replica_ack_timeout,
        sentinel_poll: store.sentinel_poll,
        clock_warn: Some(Duration::from_secs(leeway_secs.max(1))),
    }
}

/// What the store connection is waiting for at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreWait {
    /// One attempt (`check-config`, `store.startup_wait_secs = 0`).
    Once,
    /// Retry with backoff for up to this long (`serve`).
    UpTo(Duration),
}

/// First delay between connection attempts; doubles up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Longest delay between connection attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Connects the configured store. With [`StoreWait::UpTo`], an unreachable store
/// ([`StoreError::Unavailable`]: refused, timed out, no master known yet, still loading) is
/// retried with backoff and each attempt logged; a store that answers but is unsuitable
/// ([`StoreError::Unsupported`]: too old, scripts refused) fails at once.
///
/// `on_wait` runs before waiting (after a failed attempt, or while a first attempt takes
/// longer than 0.2 s); it may run more than once (`serve` starts its [`Standby`] there once).
///
/// Errors: [`StartupError::Store`] (one attempt, or unsuitable), [`StartupError::StoreWait`]
/// when the bound passed.
pub async fn open_store(
    settings: &Settings,
    config: &Config,
    wait: StoreWait,
    mut on_wait: impl FnMut(),
) -> Result<StoreHandle, StartupError> {
    let Some(target) = &config.store.redis else {
        return Ok(StoreHandle::memory());
    };
    let options = store_options(&config.store, settings.auth.leeway_secs);
    let started = std::time::Instant::now();
    let mut delay = FIRST_RETRY_DELAY;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let attempt_fut = connect_checked(&config.store, target, options.clone());
        tokio::pin!(attempt_fut);
        // A first attempt that hangs (a store that accepts but does not answer) must not keep
        // health checks unanswered: waiting starts after a short grace.
        let outcome = match tokio::time::timeout(FIRST_RETRY_DELAY * 2, &mut attempt_fut).await {
            Ok(outcome) => outcome,
            Err(_) => {
                if let StoreWait::UpTo(_) = wait {
                    on_wait();
                }
                attempt_fut.await
            }
        };
        let error = match outcome {
            Ok(handle) => {
                if attempt > 1 {
                    tracing::info!(
                        attempt,
                        waited_ms = started.elapsed().as_millis() as u64,
                        "store ready"
                    );
                }
                return Ok(handle);
            }
            Err(e @ StoreError::Unavailable(_)) => e,
            Err(e) => return Err(e.into()),
        };
        let bound = match wait {
            StoreWait::UpTo(bound) if started.elapsed() < bound => bound,
            StoreWait::UpTo(bound) => {
                return Err(StartupError::StoreWait {
                    secs: bound.as_secs(),
                    last: error,
                })
            }
            StoreWait::Once => return Err(error.into()),
        };
        // StoreError messages carry error kinds and codes only, never a URL or password.
        tracing::warn!(
            attempt,
            error = %error,
            retry_in_ms = delay.as_millis() as u64,
            waited_ms = started.elapsed().as_millis() as u64,
            bound_secs = bound.as_secs(),
            "store not ready at start-up; retrying (store.startup_wait_secs)"
        );
        on_wait();
        // The last attempt starts at the bound at the latest.
        tokio::time::sleep(delay.min(bound.saturating_sub(started.elapsed()))).await;
        delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
}

/// A connected store: the trait object every component shares, and the Redis backend itself
/// for its upkeep worker (clock offset), `None` with the memory backend.
pub struct StoreHandle {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The Redis backend, if that is the store.
    pub redis: Option<RedisStore>,
}

impl StoreHandle {
    /// An in-process store (tests, a local run, and the configuration dry run).
    pub fn memory() -> Self {
        StoreHandle {
            store: Arc::new(MemoryStore::new()),
            redis: None,
        }
    }
}

/// One connection attempt, then the check of what Redis will keep: settings that can lose or
/// resurrect link state are refused unless the operator accepted them (`store.accept_risks`).
///
/// Errors: [`StoreError::Unavailable`] (try again), [`StoreError::Unsupported`] (too old,
/// scripts refused, a risky setting not accepted).
async fn connect_checked(
    store: &StoreConfig,
    target: &RedisTarget,
    options: crate::store::redis::StoreOptions,
) -> Result<StoreHandle, StoreError> {
    let redis = RedisStore::connect_with(target, &store.key_prefix, store.timeout, options).await?;
    let risks = crate::store::assess_risks(&redis, &store.accept_risks).await?;
    if let Some(refused) = risks.refused.first() {
        let more = match risks.refused.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return Err(StoreError::Unsupported(format!("{refused}{more}")));
    }
    for accepted in &risks.accepted {
        tracing::warn!(risk = accepted.name, setting = %accepted.setting,
            "accepted store risk (store.accept_risks)");
    }
    Ok(StoreHandle {
        store: Arc::new(redis.clone()),
        redis: Some(redis),
    })
}

impl Components {
    /// Validates `settings`, connects the store once (no waiting: `check-config`) and builds
    /// every component.
    ///
    /// Errors: [`StartupError::Config`] naming the key, [`StartupError::Store`] if Redis does
    /// not answer within `store.timeout_ms` or is unsuitable.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let config = settings.parse()?;
        let store = open_store(settings, &config, StoreWait::Once, || {}).await?;
        Self::from_config(settings, &config, store)
    }

    /// Builds every component on an already connected `store`.
    ///
    /// Errors: [`StartupError::Config`] naming the key.
    pub fn with_store(settings: &Settings, handle: StoreHandle) -> Result<Self, StartupError> {
        Self::from_config(settings, &settings.parse()?, handle)
    }

    /// Builds every component from the parsed `config` on an already connected `store`;
    /// `settings` (the same configuration) gives the JWT profiles.
    ///
    /// Errors: [`StartupError::Config`] naming the key.
    pub fn from_config(
        settings: &Settings,
        config: &Config,
        handle: StoreHandle,
    ) -> Result<Self, StartupError> {
        let StoreHandle {
            store,
            redis: redis_store,
        } = handle;
        let outbound = &config.outbound;
        let mut verifier = JwtVerifier::from_settings(&settings.auth, outbound)?;
        verifier.refuse_audience(&settings.auth.service.audience);
        let services = ServiceVerifier::from_settings(&settings.auth, outbound)?;
        let argos = ArgosClient::new(config.argos.api.clone(), outbound)
            .map_err(|e| ConfigError::new("argos.api_base_url", e))?;
        let sid = SidResolver::new(config.sid.clone(), store.clone(), argos.clone());
        let callbacks = config
            .callbacks
            .clone()
            .map(|target| {
                Callbacks::new(target, config.verify.jobs, outbound, store.clone())
                    .map_err(|e| ConfigError::new("callbacks.url", e))
            })
            .transpose()?;
        let assertions =
            Assertions::from_settings(config.assertions.clone(), &config.server.public_base_url)
                .map_err(ConfigError::from)?
                .map(Arc::new);
        let erasures = Erasures::new(
            store.clone(),
            argos.clone(),
            callbacks.clone(),
            config.erasure,
            config.verify.jobs,
        );
        let results = Results::new(
            store.clone(),
            argos,
            callbacks.clone(),
            sid.clone(),
            config.verify,
        )
        .with_assertions(assertions.clone());
        Ok(Components {
            erasures,
            services,
            sid,
            results,
            callbacks,
            webhooks: WebhookReceiver::new(
                webhook_keys(config),
                config.webhooks.allowed_ips.clone(),
            ),
            limiter: RateLimiter::new(
                store.clone(),
                config.limits.mint_per_user,
                config.limits.open_per_ip,
            )
            .with_ipv6_prefix(config.limits.ipv6_prefix_len),
            idempotency: Idempotency::with_claim(
                store.clone(),
                config.store.idempotency_claim_ms,
                config.store.timeout,
            ),
            links: link_service(config, store, assertions.clone())?,
            verifier,
            redis: redis_store,
            assertions,
        })
    }
}

/// The link service: the FaceAuth URL builder (cipher of the Add-on key) on `store`.
fn link_service(
    config: &Config,
    store: Arc<dyn Store>,
    assertions: Option<Arc<Assertions>>,
) -> Result<LinkService, ConfigError> {
    let cipher = QueryCipher::new(config.argos.encryption, &config.argos.api_key)
        .map_err(|e| ConfigError::new("argos.api_key", e.to_string()))?;
    let urls = FaceAuthUrlBuilder::new(
        &config.argos.form_url,
        &config.argos.project_id,
        cipher,
        config.argos.plaintext,
    );
    Ok(
        LinkService::new(store, config.links, config.link_options, urls)
            .with_accepted_risks(config.store.accept_risks.clone())
            .with_assertions(assertions),
    )
}

/// The webhook receiver's secrets: the path secrets (the previous one only while a current one
/// is set) and the AES-256-CBC ciphers of the Add-on key, the previous Add-on key and the ID
/// Check key, tried in that order.
fn webhook_keys(config: &Config) -> WebhookKeys {
    let ciphers = config
        .argos
        .envelope_keys
        .iter()
        .filter_map(|key| QueryCipher::new(Encryption::Aes256Cbc, key).ok())
        .collect();
    WebhookKeys {
        path_secrets: config.webhooks.path_secrets.clone(),
        ciphers,
    }
}

/// Applies reloadable settings to a running gateway (`SIGHUP`), without dropping requests:
/// the callback secrets and format, the webhook path secrets, the previous Add-on key (webhook
/// decryption), the service API key hashes, every secret read from a file among those; and it
/// refetches the JWKS of both profiles. Everything else takes effect only after a restart
/// (logged by key name).
#[derive(Clone)]
pub struct Reloader {
    config: Option<PathBuf>,
    current: Arc<tokio::sync::Mutex<Settings>>,
    state: web::Data<AppState>,
    verifier: web::Data<crate::auth::JwtVerifier>,
    services: web::Data<Option<ServiceVerifier>>,
    callbacks: Option<Callbacks>,
}

impl Reloader {
    /// Loads the configuration again (defaults, `--config` file, environment, secret files)
    /// and applies it. On error nothing changes. Errors: the [`ConfigError`].
    pub async fn reload(&self) -> Result<Vec<String>, ConfigError> {
        let settings = Settings::load(self.config.as_deref())?;
        self.apply(settings).await
    }

    /// Applies the reloadable part of `new` (validated first: on error nothing changes);
    /// returns the keys whose change needs a restart.
    /// Errors: the [`ConfigError`] of `new`.
    pub async fn apply(&self, new: Settings) -> Result<Vec<String>, ConfigError> {
        new.validate()?;
        let mut current = self.current.lock().await;
        let mut applied = current.clone();
        if self.callbacks.is_some() {
            applied.callbacks.secret = new.callbacks.secret.clone();
            applied.callbacks.previous_secrets = new.callbacks.previous_secrets.clone();
            applied.callbacks.format = new.callbacks.format;
        }
        applied.webhooks.path_secret = new.webhooks.path_secret.clone();
        applied.webhooks.previous_path_secret = new.webhooks.previous_path_secret.clone();
        applied.argos.previous_api_key = new.argos.previous_api_key.clone();
        if self.services.is_some() {
            applied.auth.service.api_key_sha256 = new.auth.service.api_key_sha256.clone();
        }
        applied.secret_sources = new.secret_sources.clone();
        let parsed = applied.parse()?;
        let restart = restart_needed(&new, &applied);
        if let Some(callbacks) = &self.callbacks {
            callbacks.set_keys(applied.callbacks.keys());
        }
        self.state.webhooks.set_keys(webhook_keys(&parsed));
        if let Some(services) = self.services.as_ref() {
            services.set_api_keys(&applied.auth.service.api_key_sha256);
        }
        *current = applied;
        drop(current);
        self.verifier.warm_up().await;
        if let Some(services) = self.services.as_ref() {
            services.warm_up().await;
        }
        Ok(restart)
    }

    /// [`Reloader::reload`], logged and counted (`faceauth_config_reloads_total`).
    pub async fn on_signal(&self) {
        match self.reload().await {
            Ok(restart) => {
                crate::metrics::METRICS
                    .config_reloads
                    .with_label_values(&["ok"])
                    .inc();
                if restart.is_empty() {
                    tracing::info!("configuration reloaded (SIGHUP)");
                } else {
                    tracing::warn!(
                        restart_needed = restart.join(",").as_str(),
                        "configuration reloaded (SIGHUP); these changed settings take effect only after a restart"
                    );
                }
            }
            Err(e) => {
                crate::metrics::METRICS
                    .config_reloads
                    .with_label_values(&["error"])
                    .inc();
                // ConfigError names the key, never a secret's value.
                tracing::error!(error = %e, "configuration reload refused (SIGHUP); nothing changed");
            }
        }
    }
}

/// Dotted keys where `new` differs from what was applied: settings that need a restart.
fn restart_needed(new: &Settings, applied: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    let as_value = |s: &Settings| toml::Value::try_from(s).unwrap_or(toml::Value::Boolean(false));
    diff_keys(&as_value(new), &as_value(applied), "", &mut out);
    // Secrets serialize redacted: compare them directly (never logged).
    let exposed =
        |s: &Option<secrecy::SecretString>| s.as_ref().map(|v| v.expose_secret().to_string());
    for (key, a, b) in [
        (
            "store.redis_url",
            &new.store.redis_url,
            &applied.store.redis_url,
        ),
        ("argos.api_key", &new.argos.api_key, &applied.argos.api_key),
        (
            "argos.idcheck_api_key",
            &new.argos.idcheck_api_key,
            &applied.argos.idcheck_api_key,
        ),
        (
            "auth.hs256_secret",
            &new.auth.hs256_secret,
            &applied.auth.hs256_secret,
        ),
        (
            "auth.service.hs256_secret",
            &new.auth.service.hs256_secret,
            &applied.auth.service.hs256_secret,
        ),
        (
            "outbound.proxy",
            &new.outbound.proxy,
            &applied.outbound.proxy,
        ),
    ] {
        if exposed(a) != exposed(b) && !out.iter().any(|k| k == key) {
            out.push(key.to_string());
        }
    }
    if new
        .callbacks
        .secret
        .as_ref()
        .map(|s| s.expose_secret().to_string())
        != applied
            .callbacks
            .secret
            .as_ref()
            .map(|s| s.expose_secret().to_string())
        && !out.iter().any(|k| k == "callbacks.secret")
    {
        out.push("callbacks.secret".into());
    }
    out.sort();
    out
}

fn diff_keys(a: &toml::Value, b: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    match (a, b) {
        (toml::Value::Table(x), toml::Value::Table(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let dotted = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff_keys(p, q, &dotted, out),
                    _ => out.push(dotted),
                }
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

/// While `serve` waits for its store, a minimal server on the same socket answers `/healthz`
/// (`200`) and everything else, `/readyz` included, `503 store_unavailable`, so orchestrators
/// see a live, not-ready process. It shares the listening socket (a duplicate descriptor):
/// connections that arrive while it hands over wait in the backlog for the real server.
struct Standby(actix_web::dev::ServerHandle);

impl Standby {
    fn start(listener: &TcpListener) -> std::io::Result<Standby> {
        let server = HttpServer::new(|| {
            App::new()
                .wrap(
                    DefaultHeaders::new()
                        .add((header::CACHE_CONTROL, "no-store"))
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")),
                )
                .route("/healthz", web::get().to(routes::healthz))
                .route("/healthz", web::head().to(routes::healthz))
                .default_service(web::to(|| async {
                    Err::<actix_web::HttpResponse, _>(ApiError::StoreUnavailable(
                        StoreError::Unavailable("waiting for the store at start-up".into()),
                    ))
                }))
        })
        .listen(listener.try_clone()?)?
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Standby(handle))
    }

    async fn stop(self) {
        self.0.stop(true).await;
    }
}

/// Connects the store for `serve`, waiting up to `store.startup_wait_secs`; while it waits,
/// [`Standby`] answers on `listener`.
async fn wait_for_store(
    settings: &Settings,
    config: &Config,
    listener: &TcpListener,
) -> Result<StoreHandle, StartupError> {
    let wait = match config.store.startup_wait {
        Duration::ZERO => StoreWait::Once,
        bound => StoreWait::UpTo(bound),
    };
    let mut standby = None;
    let store = {
        let opening = open_store(settings, config, wait, || {
            if standby.is_none() {
                match Standby::start(listener) {
                    Ok(s) => standby = Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "no health answers while waiting for the store")
                    }
                }
            }
        });
        if wait == StoreWait::Once {
            opening.await
        } else {
            // SIGTERM/SIGINT while waiting: stop waiting and exit 0 (nothing is served yet).
            tokio::select! {
                store = opening => store,
                _ = shutdown_signal() => Err(StartupError::Interrupted),
            }
        }
    };
    if let Some(standby) = standby {
        standby.stop().await;
    }
    store
}

/// A bound, ready-to-run gateway.
pub struct Application {
    port: u16,
    server: Server,
    metrics: Option<(Server, u16)>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    draining: Arc<AtomicBool>,
    drain: Duration,
    reloader: Reloader,
}

/// Stops a running [`Application`] (server and background workers) from elsewhere.
#[derive(Clone)]
pub struct StopHandle {
    server: actix_web::dev::ServerHandle,
    metrics: Option<actix_web::dev::ServerHandle>,
    workers: Vec<tokio::task::AbortHandle>,
    draining: Arc<AtomicBool>,
    drain: Duration,
}

impl StopHandle {
    /// Graceful stop: `/readyz` turns 503 at once; after `server.drain_secs` the listener
    /// stops accepting, in-flight requests get `server.shutdown_timeout_secs`; background
    /// workers stop.
    pub async fn stop(&self) {
        self.draining.store(true, Ordering::SeqCst);
        tracing::info!(drain_secs = self.drain.as_secs(), "shutting down: draining");
        tokio::time::sleep(self.drain).await;
        for w in &self.workers {
            w.abort();
        }
        self.server.stop(true).await;
        if let Some(metrics) = &self.metrics {
            metrics.stop(true).await;
        }
        tracing::info!("stopped");
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Extra routes and app data plugged into every worker's [`App`] from outside.
pub type Extension = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// The shared per-worker data of the public server.
#[derive(Clone)]
struct AppData {
    state: web::Data<AppState>,
    verifier: web::Data<JwtVerifier>,
    services: web::Data<Option<ServiceVerifier>>,
    cookies: web::Data<CookiePolicy>,
    head_limits: web::Data<middleware::HeadLimits>,
    cors: crate::config::CorsSettings,
}

impl Application {
    /// Validates, binds `server.bind` (port `0` picks a free port), waits for the store (up to
    /// `store.startup_wait_secs`, answering health checks meanwhile) and builds.
    ///
    /// Errors: see [`StartupError`].
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        // Configuration first: a bad config is reported as such even when the port is taken
        // or the store is not there yet.
        let config = settings.parse()?;
        Components::from_config(&settings, &config, StoreHandle::memory())?;
        let listener = TcpListener::bind(config.server.bind)?;
        Self::build_on(settings, config, listener, None).await
    }

    /// Like [`Application::build`] on an already bound listener; `extension` adds routes and
    /// app data of its own to the public server.
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
        extension: Option<Extension>,
    ) -> Result<Self, StartupError> {
        let config = settings.parse()?;
        Components::from_config(&settings, &config, StoreHandle::memory())?;
        Self::build_on(settings, config, listener, extension).await
    }

    /// Waits for the store (see [`wait_for_store`]), builds the components, serves.
    async fn build_on(
        settings: Settings,
        config: Config,
        listener: TcpListener,
        extension: Option<Extension>,
    ) -> Result<Self, StartupError> {
        let store = wait_for_store(&settings, &config, &listener).await?;
        let components = Components::from_config(&settings, &config, store)?;
        Self::assemble(settings, &config, components, listener, extension).await
    }

    async fn assemble(
        settings: Settings,
        config: &Config,
        components: Components,
        listener: TcpListener,
        extension: Option<Extension>,
    ) -> Result<Self, StartupError> {
        warm_up(&components).await;
        let port = listener.local_addr()?.port();
        let draining = Arc::new(AtomicBool::new(false));
        let workers = spawn_workers(config, &components);
        let callbacks = components.callbacks.clone();
        let data = app_data(&settings, config, components, draining.clone());
        let reloader = Reloader {
            config: None,
            current: Arc::new(tokio::sync::Mutex::new(settings.clone())),
            state: data.state.clone(),
            verifier: data.verifier.clone(),
            services: data.services.clone(),
            callbacks,
        };
        // The metrics listener first: binding it can fail, and then nothing runs.
        let metrics = metrics_server(config)?;
        let server = public_server(config, data, extension, listener)?;
        Ok(Application {
            port,
            server,
            metrics,
            workers,
            draining,
            drain: config.server.drain,
            reloader,
        })
    }

    /// The `--config` file that `SIGHUP` reads again (with the environment and secret files).
    pub fn set_config_path(&mut self, path: Option<PathBuf>) {
        self.reloader.config = path;
    }

    /// Applies reloadable settings to this gateway (what `SIGHUP` does).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, if it is on.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, p)| *p)
    }

    /// A handle that stops this gateway.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            server: self.server.handle(),
            metrics: self.metrics.as_ref().map(|(s, _)| s.handle()),
            workers: self.workers.iter().map(|w| w.abort_handle()).collect(),
            draining: self.draining.clone(),
            drain: self.drain,
        }
    }

    /// Serves until stopped: on SIGTERM/SIGINT it drains and stops gracefully (see
    /// [`StopHandle::stop`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stop = self.stop_handle();
        let on_signal = tokio::spawn(async move {
            shutdown_signal().await;
            stop.stop().await;
        });
        let reloader = self.reloader.clone();
        let on_hangup = tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                match signal(SignalKind::hangup()) {
                    Ok(mut hup) => {
                        while hup.recv().await.is_some() {
                            reloader.on_signal().await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "no SIGHUP reloads"),
                }
            }
            #[cfg(not(unix))]
            let _ = reloader;
        });
        let metrics = self.metrics.map(|(server, _)| tokio::spawn(server));
        let result = self.server.await;
        on_signal.abort();
        on_hangup.abort();
        for w in &self.workers {
            w.abort();
        }
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        result
    }
}

/// Fetches the keys the verifiers need before the first request, and logs the assertion key.
async fn warm_up(components: &Components) {
    components.verifier.warm_up().await;
    if let Some(assertions) = &components.assertions {
        assertions.log_start();
    }
    if let Some(services) = &components.services {
        services.warm_up().await;
    }
}

/// Starts the background workers: verification, store upkeep (Redis), erasures, callbacks.
fn spawn_workers(config: &Config, components: &Components) -> Vec<tokio::task::JoinHandle<()>> {
    let WorkerTiming {
        every,
        round_timeout,
    } = config.workers;
    let mut workers = Vec::new();
    let results = components.results.clone();
    workers.push(supervise(
        QueueName::Verify,
        every,
        round_timeout,
        move || {
            let results = results.clone();
            async move { results.run_due().await }
        },
    ));
    if let Some(redis) = components.redis.clone() {
        // The clock offset to Redis (write deadlines, the offset metric and warning).
        workers.push(supervise(
            crate::queue::WorkerName::STORE,
            Duration::from_secs(5),
            round_timeout,
            move || {
                let redis = redis.clone();
                async move { redis.maintain().await }
            },
        ));
    }
    let erasures = components.erasures.clone();
    workers.push(supervise(
        QueueName::Erasure,
        every,
        round_timeout,
        move || {
            let erasures = erasures.clone();
            async move { erasures.run_due().await }
        },
    ));
    if let Some(callbacks) = components.callbacks.clone() {
        workers.push(supervise(
            QueueName::Callbacks,
            every,
            round_timeout,
            move || {
                let callbacks = callbacks.clone();
                async move { callbacks.run_due().await }
            },
        ));
    }
    workers
}

/// The request handlers' shared data, from the settings and the built components.
fn app_data(
    settings: &Settings,
    config: &Config,
    components: Components,
    draining: Arc<AtomicBool>,
) -> AppData {
    let state = web::Data::new(AppState {
        links: components.links,
        limiter: components.limiter,
        idempotency: components.idempotency,
        trusted_proxies: config.server.trusted_proxies.clone(),
        client_ip_header: config.server.client_ip_header,
        faceauth_origin: config.argos.faceauth_origin.clone(),
        sid: components.sid,
        results: components.results,
        erasures: components.erasures,
        webhooks: components.webhooks,
        draining,
        assertions: components.assertions,
        public_base_url: config.server.public_base_url.clone(),
    });
    let cookies = web::Data::new(CookiePolicy {
        cookie_name: Some(settings.auth.cookie_name.clone()).filter(|c| !c.is_empty()),
        allowed_origins: settings
            .cors
            .allowed_origins
            .iter()
            .filter(|o| *o != "*")
            .cloned()
            .collect(),
        own_origin: config.server.own_origin.clone(),
    });
    AppData {
        state,
        verifier: web::Data::new(components.verifier),
        services: web::Data::new(components.services),
        cookies,
        head_limits: web::Data::new(middleware::HeadLimits {
            max_headers: config.server.max_headers,
            max_header_bytes: config.server.max_header_bytes,
            max_uri_bytes: config.server.max_uri_bytes,
        }),
        cors: settings.cors.clone(),
    }
}

/// The public HTTP server on `listener`: middleware, shared data, the route table, and the
/// `extension`'s routes.
fn public_server(
    config: &Config,
    data: AppData,
    extension: Option<Extension>,
    listener: TcpListener,
) -> std::io::Result<Server> {
    let mut server = HttpServer::new(move || {
        // Runs on each worker thread: its store commands get a connection of their own.
        crate::store::redis_conn::mark_worker_thread();
        let mut app =
            App::new()
                .app_data(data.head_limits.clone())
                .wrap(from_fn(middleware::head_limits))
                .wrap(from_fn(middleware::observe))
                .wrap(
                    DefaultHeaders::new()
                        .add((header::CACHE_CONTROL, "no-store"))
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")),
                )
                .app_data(data.state.clone())
                .app_data(data.verifier.clone())
                .app_data(data.services.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::BadRequest(format!("invalid query: {e}")).into()
                }))
                .app_data(data.cookies.clone())
                .configure(routes::configure(data.cors.clone()))
                .default_service(web::to(routes::not_found));
        if let Some(extension) = &extension {
            app = app.configure(|cfg| extension(cfg));
        }
        app
    })
    // Answers go out at once (no Nagle delay behind an unacknowledged segment), as nginx's
    // `tcp_nodelay on`.
    .tcp_nodelay(true)
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(config.server.shutdown_timeout_secs);
    if config.server.workers > 0 {
        server = server.workers(config.server.workers);
    }
    Ok(server.run())
}

/// The metrics listener (`server.metrics_bind`), if on.
fn metrics_server(config: &Config) -> Result<Option<(Server, u16)>, StartupError> {
    let Some(addr) = config.server.metrics_addr else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(|| {
        App::new().route("/metrics", web::get().to(crate::metrics::metrics_handler))
    })
    .listen(listener)?
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .run();
    Ok(Some((server, port)))
}
