//! Outgoing HTTP (ARGOS API, JWKS and discovery, callbacks): one rule for proxies.
//!
//! Proxy environment variables (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`) are
//! **ignored** unless `outbound.use_env_proxy = true`: an ambient proxy would otherwise see
//! the ARGOS `x-api-key` in clear on an `http://` base URL, and could serve JWKS keys. A proxy
//! the operator means to use is named explicitly in `outbound.proxy` (a secret: its URL may
//! carry credentials). Redirects are not followed by any outgoing client (each sets
//! `redirect::Policy::none()` itself).

/// How outgoing clients reach the network. The default goes direct.
#[derive(Clone, Default)]
pub struct Outbound {
    proxy: Option<reqwest::Proxy>,
    use_env_proxy: bool,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("proxy", &self.proxy.as_ref().map(|_| "[REDACTED]"))
            .field("use_env_proxy", &self.use_env_proxy)
            .finish()
    }
}

impl Outbound {
    /// Through `proxy` (if any); `use_env_proxy`: honour the proxy environment variables
    /// (without a `proxy`).
    pub fn new(proxy: Option<reqwest::Proxy>, use_env_proxy: bool) -> Self {
        Outbound {
            proxy,
            use_env_proxy,
        }
    }

    /// A client builder with this proxy rule applied; callers add timeouts and their redirect
    /// policy.
    pub fn builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder();
        match (&self.proxy, self.use_env_proxy) {
            (Some(proxy), _) => builder.proxy(proxy.clone()),
            (None, true) => builder,
            (None, false) => builder.no_proxy(),
        }
    }
}
