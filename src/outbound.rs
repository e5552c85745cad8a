//! Outgoing HTTP (ARGOS API, JWKS and discovery, callbacks): one rule for proxies.
//!
//! Proxy environment variables (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`) are
//! **ignored** unless `outbound.use_env_proxy = true`: an ambient proxy would otherwise see
//! the ARGOS `x-api-key` in clear on an `http://` base URL, and could serve JWKS keys. A proxy
//! the operator means to use is named explicitly in `outbound.proxy` (a secret: its URL may
//! carry credentials). Redirects are not followed by any outgoing client (each sets
//! `redirect::Policy::none()` itself).

use secrecy::ExposeSecret;

use crate::config::{ConfigError, OutboundSettings};

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
    /// From `[outbound]`.
    ///
    /// Errors: a [`ConfigError`] for `outbound.proxy` (not an absolute http(s) URL, or set
    /// together with `outbound.use_env_proxy`). The message never holds the URL.
    pub fn from_settings(s: &OutboundSettings) -> Result<Self, ConfigError> {
        let proxy = s
            .proxy
            .as_ref()
            .map(|p| p.expose_secret().trim().to_string())
            .filter(|p| !p.is_empty());
        let proxy =
            match proxy {
                None => None,
                Some(_) if s.use_env_proxy => {
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
        Ok(Outbound {
            proxy,
            use_env_proxy: s.use_env_proxy,
        })
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
        let o = Outbound::from_settings(&ok).unwrap();
        assert!(!format!("{o:?}").contains("pw"));
        let both = OutboundSettings {
            use_env_proxy: true,
            ..ok.clone()
        };
        assert_eq!(
            Outbound::from_settings(&both).unwrap_err().key,
            "outbound.proxy"
        );
        let bad = OutboundSettings {
            proxy: Some(SecretString::from("socks9://secret-host")),
            use_env_proxy: false,
        };
        let e = Outbound::from_settings(&bad).unwrap_err();
        assert_eq!(e.key, "outbound.proxy");
        assert!(!e.to_string().contains("secret-host"));
        assert!(Outbound::from_settings(&OutboundSettings::default()).is_ok());
    }
}
