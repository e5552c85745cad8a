//! Layered configuration: `config/default.toml` (compiled in) < `--config FILE` < environment
//! variables `FACEAUTH__<SECTION>__<KEY>`. At start-up [`Settings::parse`] converts every section
//! into its typed, validated value (a [`Config`]); every error names its key.

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
pub use crate::telemetry::LogFormat;

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
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Environment variable prefix; `__` separates section and key.
pub const ENV_PREFIX: &str = "FACEAUTH__";

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
            Ok(_) => seq.serialize_element(u)?,
            // Unparsable: the userinfo (anything up to the last `@` of the authority) may
            // still hold a password.
            Err(_) => seq.serialize_element(&redact_unparsed_userinfo(u))?,
        }
    }
    seq.end()
}

/// `scheme://user:pass@rest` → `scheme://REDACTED@rest` for a URL that does not parse; other
/// strings unchanged.
fn redact_unparsed_userinfo(u: &str) -> String {
    let (scheme, rest) = u.split_once("://").unwrap_or(("", u));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) if u.contains("://") => format!("{scheme}://REDACTED{}", &rest[at..]),
        Some(at) => format!("REDACTED{}", &rest[at..]),
        None => u.to_string(),
    }
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

mod checks;
mod load;
use load::{extract, merge_env, read_config_file, table_get};
mod parse;
mod sections;

pub use parse::*;

pub use sections::*;

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
            let table = read_config_file(path, &mut sources)?;
            figment = figment.merge(Serialized::defaults(table));
        }
        let (figment, env_values) = merge_env(figment, env, &mut sources)?;
        for (key, _) in SECRET_SETTINGS {
            sources
                .entry(key.to_string())
                .or_insert_with(|| "not set".to_string());
        }
        let mut settings = extract(figment, &env_values)?;
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

    /// The effective configuration as TOML with secrets replaced by `[REDACTED]`.
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn unparsable_node_urls_lose_their_userinfo() {
        assert_eq!(
            super::redact_unparsed_userinfo("redis://:HUNTER2@[x"),
            "redis://REDACTED@[x"
        );
        assert_eq!(
            super::redact_unparsed_userinfo("redis://u:p@w@host:1/0"),
            "redis://REDACTED@host:1/0"
        );
        assert_eq!(super::redact_unparsed_userinfo("redis://[x"), "redis://[x");
    }

    use super::*;
    use secrecy::SecretString;

    fn usable() -> Settings {
        let env = [
            ("FACEAUTH__ARGOS__PROJECT_ID", "p1"),
            (
                "FACEAUTH__ARGOS__API_KEY",
                "0123456789abcdef0123456789abcdef",
            ),
            ("FACEAUTH__AUTH__ALGORITHMS", "[\"HS256\"]"),
        ];
        Settings::load_from(
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap()
    }

    #[test]
    fn parse_keeps_the_typed_values_and_reports_the_first_section_in_order() {
        let s = usable();
        let config = s.parse().unwrap();
        assert_eq!(config.links.window_ms, s.links.window_secs * 1000);
        assert_eq!(config.sid.sources, s.sid.sources);
        assert_eq!(config.limits.ipv6_prefix_len, s.limits.ipv6_prefix_len);
        assert!(config.callbacks.is_none());
        assert_eq!(config.verify.jobs.lease_ms, s.verify.lock_ttl_secs * 1000,);
        // Several problems: the earliest section in the fixed order is reported.
        let mut bad = s.clone();
        bad.erasure.deadline_secs = 0;
        bad.verify.max_failures = 0;
        bad.argos.api_timeout_ms = 0;
        bad.limits.ipv6_prefix_len = 0;
        bad.server.drain_secs = 301;
        for key in [
            "server.drain_secs",
            "limits.ipv6_prefix_len",
            "argos.api_timeout_ms",
            "verify.max_failures",
            "erasure.deadline_secs",
        ] {
            let e = bad.parse().err().unwrap();
            assert_eq!(e.key, key);
            assert_eq!(bad.validate().unwrap_err(), e);
            match key {
                "server.drain_secs" => bad.server.drain_secs = 0,
                "limits.ipv6_prefix_len" => bad.limits.ipv6_prefix_len = 64,
                "argos.api_timeout_ms" => bad.argos.api_timeout_ms = 1000,
                "verify.max_failures" => bad.verify.max_failures = 5,
                _ => bad.erasure.deadline_secs = 3600,
            }
        }
        assert!(bad.parse().is_ok());
    }

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
