//! Building and running the server: [`Application::build`] validates the configuration, builds
//! every component (failing closed), binds, and [`Application::run_until_stopped`] serves.

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, App, HttpServer};
use secrecy::ExposeSecret;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::argos::client::ArgosClient;
use crate::argos::crypto::{Encryption, QueryCipher};
use crate::argos::url::FaceAuthUrlBuilder;
use crate::auth::cookie::CookiePolicy;
use crate::auth::service::ServiceVerifier;
use crate::auth::JwtVerifier;
use crate::callbacks::Callbacks;
use crate::config::{ConfigError, RedisMode, Settings, StoreBackend};
use crate::demo::DemoState;
use crate::http::middleware;
use crate::http::routes::{self, AppState};
use crate::http::webhooks::WebhookReceiver;
use crate::http::ApiError;
use crate::idempotency::Idempotency;
use crate::limits::RateLimiter;
use crate::links::{LinkOptions, LinkService};
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
}

/// The Redis store's options from the settings.
fn store_options(settings: &Settings) -> crate::store::redis::StoreOptions {
    crate::store::redis::StoreOptions {
        min_replica_acks: settings.store.min_replica_acks,
        replica_ack_timeout: Duration::from_millis(settings.store.replica_ack_timeout_ms),
        sentinel_poll: Duration::from_millis(settings.store.sentinel_poll_ms),
        clock_warn: Some(Duration::from_secs(settings.auth.leeway_secs.max(1))),
    }
}

impl Components {
    /// Validates `settings` and builds every component; connects to Redis when configured.
    ///
    /// Errors: [`StartupError::Config`] naming the key, [`StartupError::Store`] if Redis does
    /// not answer within `store.timeout_ms`.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        settings.validate()?;
        let mut verifier = JwtVerifier::from_settings(&settings.auth)?;
        verifier.refuse_audience(&settings.auth.service.audience);
        let services = ServiceVerifier::from_settings(&settings.auth)?;
        let argos = ArgosClient::from_settings(&settings.argos)
            .map_err(|e| ConfigError::new("argos.api_base_url", e))?;
        let api_key = settings
            .argos
            .api_key
            .as_ref()
            .ok_or_else(|| ConfigError::new("argos.api_key", "required"))?;
        let cipher = QueryCipher::new(settings.argos.encryption, api_key)
            .map_err(|e| ConfigError::new("argos.api_key", e.to_string()))?;
        let mut webhook_ciphers = Vec::new();
        for key in [Some(api_key), settings.argos.idcheck_api_key.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Ok(c) = QueryCipher::new(Encryption::Aes256Cbc, key) {
                webhook_ciphers.push(c);
            }
        }
        let urls = FaceAuthUrlBuilder::new(
            &settings.argos.form_url,
            settings.argos.project_id.as_deref().unwrap_or_default(),
            cipher,
            settings.argos.plaintext,
        );
        let mut redis_store = None;
        let store: Arc<dyn Store> = match settings.store.backend {
            StoreBackend::Memory => Arc::new(MemoryStore::new()),
            StoreBackend::Redis => {
                let url = settings
                    .store
                    .redis_url
                    .as_ref()
                    .map(|u| u.expose_secret().to_string())
                    .unwrap_or_default();
                let target = match settings.store.redis_mode {
                    RedisMode::Standalone => RedisTarget::Standalone(url),
                    RedisMode::Sentinel => RedisTarget::Sentinel {
                        master: settings.store.sentinel_master.clone(),
                        sentinels: settings.store.sentinel_nodes.clone(),
                        node_url: url,
                    },
                    RedisMode::Cluster => {
                        RedisTarget::Cluster(settings.store.cluster_nodes.clone())
                    }
                };
                let redis = RedisStore::connect_with(
                    &target,
                    &settings.store.key_prefix,
                    Duration::from_millis(settings.store.timeout_ms),
                    store_options(settings),
                )
                .await?;
                redis_store = Some(redis.clone());
                Arc::new(redis)
            }
        };
        // What Redis will keep: refuse settings that can lose or resurrect link state unless
        // the operator accepted them (`store.accept_risks`).
        let risks = crate::store::assess_risks(store.as_ref(), &settings.store.accept_risks)
            .await
            .map_err(StartupError::Store)?;
        if let Some(refused) = risks.refused.first() {
            return Err(StartupError::Store(StoreError::Unsupported(format!(
                "{refused}{}",
                if risks.refused.len() > 1 {
                    format!(" (and {} more)", risks.refused.len() - 1)
                } else {
                    String::new()
                }
            ))));
        }
        for accepted in &risks.accepted {
            tracing::warn!(risk = accepted.name, setting = %accepted.setting,
                "accepted store risk (store.accept_risks)");
        }
        let options = LinkOptions {
            confirm_step: settings.links.confirm_step,
            single_active: settings.links.single_active,
            max_url_bytes: settings.argos.max_url_bytes,
        };
        let sid = SidResolver::new(&settings.sid, store.clone(), argos.clone());
        let callbacks = Callbacks::from_settings(&settings.callbacks, store.clone())
            .map_err(|e| ConfigError::new("callbacks.url", e))?;
        let results = Results::new(
            store.clone(),
            argos,
            callbacks.clone(),
            sid.clone(),
            &settings.verify,
            &settings.webhooks,
        );
        Ok(Components {
            services,
            sid,
            results,
            callbacks,
            webhooks: WebhookReceiver {
                path_secret: settings
                    .webhooks
                    .path_secret
                    .clone()
                    .filter(|s| !s.expose_secret().is_empty()),
                allowed_ips: settings.webhooks.allowed_ips.clone(),
                ciphers: webhook_ciphers,
            },
            limiter: RateLimiter::new(
                store.clone(),
                settings.limits.mint_per_user,
                settings.limits.open_per_ip,
            ),
            idempotency: Idempotency::with_claim(
                store.clone(),
                settings.store.idempotency_claim_ms,
                Duration::from_millis(settings.store.timeout_ms),
            ),
            links: LinkService::new(store, settings.links.policy(), options, urls)
                .with_accepted_risks(settings.store.accept_risks.clone()),
            verifier,
            redis: redis_store,
        })
    }
}

/// A bound, ready-to-run gateway.
pub struct Application {
    port: u16,
    server: Server,
    metrics: Option<(Server, u16)>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    draining: Arc<AtomicBool>,
    drain: Duration,
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

/// Runs `work` every `every` until aborted; failures are logged and retried next round.
fn spawn_worker<F, Fut>(name: &'static str, every: Duration, work: F) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<usize, StoreError>> + Send,
{
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = work().await {
                tracing::warn!(worker = name, error = %e, "background work failed; retrying");
            }
        }
    })
}

impl Application {
    /// Validates, builds and binds `server.bind` (port `0` picks a free port).
    ///
    /// Errors: see [`StartupError`].
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        // Configuration and the store first: a bad config is reported as such even when the
        // port is taken.
        let components = Components::build(&settings).await?;
        let listener = TcpListener::bind(settings.server.bind)?;
        Self::assemble(settings, components, listener, None).await
    }

    /// Like [`Application::build`] on an already bound listener; `demo` adds the `/demo*`
    /// routes (demo mode only).
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
        demo: Option<DemoState>,
    ) -> Result<Self, StartupError> {
        let components = Components::build(&settings).await?;
        Self::assemble(settings, components, listener, demo).await
    }

    async fn assemble(
        settings: Settings,
        components: Components,
        listener: TcpListener,
        demo: Option<DemoState>,
    ) -> Result<Self, StartupError> {
        components.verifier.warm_up().await;
        if let Some(services) = &components.services {
            services.warm_up().await;
        }
        let port = listener.local_addr()?.port();
        let draining = Arc::new(AtomicBool::new(false));
        let every = Duration::from_millis(settings.verify.poll_interval_ms);
        let mut workers = Vec::new();
        let results = components.results.clone();
        workers.push(spawn_worker("verify", every, move || {
            let results = results.clone();
            async move { results.run_due().await }
        }));
        if let Some(redis) = components.redis.clone() {
            // The clock offset to Redis (write deadlines, the offset metric and warning).
            workers.push(spawn_worker("store", Duration::from_secs(5), move || {
                let redis = redis.clone();
                async move { redis.maintain().await }
            }));
        }
        if let Some(callbacks) = components.callbacks.clone() {
            workers.push(spawn_worker("callbacks", every, move || {
                let callbacks = callbacks.clone();
                async move { callbacks.run_due().await }
            }));
        }
        let state = web::Data::new(AppState {
            links: components.links,
            limiter: components.limiter,
            idempotency: components.idempotency,
            trusted_proxies: settings.server.trusted_proxies.clone(),
            client_ip_header: settings.server.client_ip_header,
            faceauth_origin: settings.argos.form_url.origin().ascii_serialization(),
            sid: components.sid,
            results: components.results,
            webhooks: components.webhooks,
            draining: draining.clone(),
            public_base_url: settings
                .server
                .public_base_url
                .as_str()
                .trim_end_matches('/')
                .to_string(),
        });
        let verifier = web::Data::new(components.verifier);
        let cors = settings.cors.clone();
        let cookies = web::Data::new(CookiePolicy {
            cookie_name: Some(settings.auth.cookie_name.clone()).filter(|c| !c.is_empty()),
            allowed_origins: settings
                .cors
                .allowed_origins
                .iter()
                .filter(|o| *o != "*")
                .cloned()
                .collect(),
            own_origin: settings
                .server
                .public_base_url
                .origin()
                .ascii_serialization(),
        });
        let services = web::Data::new(components.services);
        let demo = demo.map(web::Data::new);
        let mut server = HttpServer::new(move || {
            let mut app = App::new()
                .wrap(from_fn(middleware::observe))
                .wrap(
                    DefaultHeaders::new()
                        .add((header::CACHE_CONTROL, "no-store"))
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")),
                )
                .app_data(state.clone())
                .app_data(verifier.clone())
                .app_data(services.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::BadRequest(format!("invalid query: {e}")).into()
                }))
                .app_data(cookies.clone())
                .configure(routes::configure(cors.clone()))
                .default_service(web::to(routes::not_found));
            if let Some(demo) = &demo {
                app = app.app_data(demo.clone()).configure(crate::demo::configure);
            }
            app
        })
        .listen(listener)?
        .disable_signals()
        .shutdown_timeout(settings.server.shutdown_timeout_secs);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let metrics = match settings.server.metrics_addr()? {
            Some(addr) => {
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
                Some((server, port))
            }
            None => None,
        };
        Ok(Application {
            port,
            server: server.run(),
            metrics,
            workers,
            draining,
            drain: Duration::from_secs(settings.server.drain_secs),
        })
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
        let metrics = self.metrics.map(|(server, _)| tokio::spawn(server));
        let result = self.server.await;
        on_signal.abort();
        for w in &self.workers {
            w.abort();
        }
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        result
    }
}
