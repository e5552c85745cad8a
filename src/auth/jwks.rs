//! Verification keys from an identity provider's JWKS (RFC 7517), cached.
//!
//! * Keys are chosen by `kid` (a token without `kid` uses the only key of its `alg`).
//! * An unknown `kid` triggers at most one refetch per `auth.jwks_min_refresh_secs`.
//! * A key with `alg` serves that algorithm only (it must be in `auth.algorithms` and fit the
//!   key's `kty`/`crv`). A key without `alg` (Microsoft Entra ID, many RSA and Ed25519 sets)
//!   serves every algorithm of `auth.algorithms` its `kty`/`crv` allows: RSA the RS*/PS*, EC
//!   P-256 ES256, EC P-384 ES384, OKP Ed25519 EdDSA.
//! * Keys the gateway cannot use are skipped without breaking the set: `use` other than `sig`,
//!   an `alg` outside `auth.algorithms`, a `kty`/`crv` that does not fit the `alg` (or, without
//!   `alg`, fits none of `auth.algorithms`), symmetric (`oct`) keys, or anything that does not
//!   parse.
//! * The JWKS URL, the discovery URL and the `jwks_uri` a discovery document names must be
//!   `https`, except on loopback hosts, unless `auth.allow_insecure_http` is set. Redirects are
//!   not followed: a `3xx` answer counts as a failed fetch.
//! * `Cache-Control: max-age` sets the lifetime, bounded by `auth.jwks_min_ttl_secs` and
//!   `auth.jwks_max_ttl_secs` (`auth.jwks_default_ttl_secs` without one).
//! * While the IdP is down, cached keys stay usable `auth.jwks_max_stale_secs` after the cached
//!   set's lifetime ended; then verification fails with [`KeyError::Unavailable`] (`503`).
//! * Every fetch has a connect and a total timeout, and only one runs at a time.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::JwtProfile;
use crate::config::ConfigError;

/// Largest JWKS or discovery document accepted, in bytes (1 MiB).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Most keys kept from one JWKS.
pub const MAX_KEYS: usize = 100;

/// Why no key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// No usable key for this `kid`/`alg` in a current key set (`401`).
    Unknown(&'static str),
    /// No current key set: the IdP could not be reached and the cache is too old (`503`).
    Unavailable,
}

/// One usable key.
pub struct KeyEntry {
    kid: Option<String>,
    /// The algorithms this key serves: its `alg`, or (without `alg`) every allowed algorithm
    /// its `kty`/`crv` fits.
    algs: Vec<Algorithm>,
    key: DecodingKey,
}

impl KeyEntry {
    /// The verification key.
    pub fn key(&self) -> &DecodingKey {
        &self.key
    }

    /// Whether this key may verify a token signed with `alg`.
    pub fn serves(&self, alg: Algorithm) -> bool {
        self.algs.contains(&alg)
    }
}

#[derive(Default)]
struct Cached {
    keys: Vec<Arc<KeyEntry>>,
    fresh_until: Option<Instant>,
    last_success: Option<Instant>,
    last_attempt: Option<Instant>,
}

enum Source {
    Direct(url::Url),
    Discovery { issuer: String },
}

/// Bounds and intervals from `[auth]`.
struct Timing {
    min_refresh: Duration,
    max_stale: Duration,
    default_ttl: Duration,
    min_ttl: Duration,
    max_ttl: Duration,
}

/// Whether `url` names a loopback host (`localhost`, `127.0.0.0/8`, `::1`).
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The transport rule for key material: `https`, or `http` on a loopback host, or `http`
/// anywhere with `auth.allow_insecure_http`.
///
/// Errors: a description naming the rule (never the URL's query or credentials).
pub fn check_key_url(url: &url::Url, allow_insecure_http: bool) -> Result<(), String> {
    // A URL with credentials would put them into logs and `check-config` output.
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if url.host().is_some() && (is_loopback(url) || allow_insecure_http) => Ok(()),
        "http" if url.host().is_some() => Err(
            "must be https (plain http only on loopback, or with auth.allow_insecure_http = true)"
                .into(),
        ),
        _ => Err("must be an absolute https URL".into()),
    }
}

/// A cached JWKS. Cheap to share behind an `Arc`.
pub struct JwksCache {
    client: reqwest::Client,
    source: Source,
    allow_insecure_http: bool,
    /// Set once the start-up log named a `jwks_uri` on another host than the issuer.
    named_foreign_host: std::sync::atomic::AtomicBool,
    allowed: Vec<Algorithm>,
    timing: Timing,
    state: RwLock<Cached>,
    refresh: tokio::sync::Mutex<()>,
}

fn kty_fits(alg: Algorithm, kty: &str, crv: Option<&str>) -> bool {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => kty == "RSA",
        Algorithm::ES256 => kty == "EC" && crv == Some("P-256"),
        Algorithm::ES384 => kty == "EC" && crv == Some("P-384"),
        Algorithm::EdDSA => kty == "OKP" && crv == Some("Ed25519"),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => false,
    }
}

/// Parses a JWKS document, keeping only the keys this gateway can use (see module docs).
pub fn parse_jwks(doc: &Value, allowed: &[Algorithm]) -> Vec<Arc<KeyEntry>> {
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Vec::new();
    };
    keys.iter()
        .filter_map(|k| {
            if k.get("use").is_some_and(|u| u != "sig") {
                return None;
            }
            let kty = k.get("kty")?.as_str()?;
            let crv = k.get("crv").and_then(Value::as_str);
            let algs: Vec<Algorithm> = match k.get("alg") {
                // A key that names its algorithm serves that one only.
                Some(alg) => {
                    let alg: Algorithm = serde_json::from_value(alg.clone()).ok()?;
                    vec![alg]
                }
                // Without `alg`: every allowed algorithm the key type fits (RFC 7517 §4.4
                // makes `alg` optional; Entra ID and others omit it).
                None => allowed.to_vec(),
            };
            let algs: Vec<Algorithm> = algs
                .into_iter()
                .filter(|a| allowed.contains(a) && kty_fits(*a, kty, crv))
                .collect();
            if algs.is_empty() {
                return None;
            }
            let jwk: Jwk = serde_json::from_value(k.clone()).ok()?;
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            let kid = k.get("kid").and_then(Value::as_str).map(str::to_string);
            Some(Arc::new(KeyEntry { kid, algs, key }))
        })
        .take(MAX_KEYS)
        .collect()
}

/// `max-age` of a `Cache-Control` value, if any (`no-store`/`no-cache` count as 0).
pub fn max_age(cache_control: &str) -> Option<u64> {
    let mut result = None;
    for directive in cache_control.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(0);
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            result = v.trim_matches('"').parse().ok();
        }
    }
    result
}

impl JwksCache {
    /// A cache for `auth.jwks_url`, or for discovery from `auth.issuer`.
    ///
    /// Errors: a [`ConfigError`] naming the key when neither is usable or the HTTP client
    /// cannot be built.
    pub fn from_profile(
        profile: &JwtProfile<'_>,
        outbound: &crate::outbound::Outbound,
    ) -> Result<Option<Self>, ConfigError> {
        let (prefix, s) = (profile.prefix, profile.shared);
        let source = match (profile.jwks_url, profile.discovery) {
            (Some(_), true) => {
                return Err(ConfigError::new(
                    format!("{prefix}.discovery"),
                    "set either auth.jwks_url or auth.discovery, not both",
                ))
            }
            (Some(url), false) => {
                check_key_url(url, s.allow_insecure_http)
                    .map_err(|e| ConfigError::new(format!("{prefix}.jwks_url"), e))?;
                Source::Direct(url.clone())
            }
            (None, true) => {
                let issuer = profile
                    .issuer
                    .map(str::to_string)
                    .filter(|i| i.starts_with("https://") || i.starts_with("http://"))
                    .ok_or_else(|| {
                        ConfigError::new(
                            format!("{prefix}.issuer"),
                            "must be an http(s) URL when auth.discovery = true",
                        )
                    })?;
                let parsed = url::Url::parse(&issuer)
                    .map_err(|e| ConfigError::new(format!("{prefix}.issuer"), e.to_string()))?;
                check_key_url(&parsed, s.allow_insecure_http).map_err(|e| {
                    ConfigError::new(
                        format!("{prefix}.issuer"),
                        format!("with auth.discovery = true: {e}"),
                    )
                })?;
                Source::Discovery { issuer }
            }
            (None, false) => return Ok(None),
        };
        if s.allow_insecure_http {
            tracing::warn!(
                "auth.allow_insecure_http = true: JWKS and discovery may be fetched over plain \
                 http, where anyone on the path can serve keys"
            );
        }
        // No redirects: a redirect could leave https or the configured host.
        let client = outbound
            .builder()
            .connect_timeout(Duration::from_millis(s.jwks_connect_timeout_ms))
            .timeout(Duration::from_millis(s.jwks_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("faceauth-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ConfigError::new(format!("{prefix}.jwks_url"), format!("HTTP client: {e}"))
            })?;
        Ok(Some(JwksCache {
            client,
            source,
            allow_insecure_http: s.allow_insecure_http,
            named_foreign_host: std::sync::atomic::AtomicBool::new(false),
            allowed: profile.algorithms.to_vec(),
            timing: Timing {
                min_refresh: Duration::from_secs(s.jwks_min_refresh_secs),
                max_stale: Duration::from_secs(s.jwks_max_stale_secs),
                default_ttl: Duration::from_secs(s.jwks_default_ttl_secs),
                min_ttl: Duration::from_secs(s.jwks_min_ttl_secs),
                max_ttl: Duration::from_secs(s.jwks_max_ttl_secs),
            },
            state: RwLock::new(Cached::default()),
            refresh: tokio::sync::Mutex::new(()),
        }))
    }

    /// Fetches the key set once (start-up). Errors: a description of the failure.
    pub async fn warm_up(&self) -> Result<usize, String> {
        let _guard = self.refresh.lock().await;
        let result = self.fetch_and_store().await;
        if result.is_err() {
            // A failure at start-up must not hold off the first requests' retry.
            self.state
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .last_attempt = None;
        }
        result
    }

    /// The key for a token's `kid` and `alg`, refetching the set when it is stale or the `kid`
    /// is unknown (at most once per `jwks_min_refresh_secs`).
    ///
    /// Errors: [`KeyError::Unknown`] (`401`) or [`KeyError::Unavailable`] (`503`).
    pub async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<KeyEntry>, KeyError> {
        let now = Instant::now();
        let (fresh, found) = self.lookup(kid, alg, now);
        if let (true, Some(key)) = (fresh, &found) {
            return Ok(key.clone());
        }
        if self.may_fetch(now) {
            let asked = Instant::now();
            let _guard = self.refresh.lock().await;
            // Another request may have fetched while this one waited: then use its result.
            let fetched_meanwhile = self.read().last_attempt.is_some_and(|t| t >= asked);
            if !fetched_meanwhile && self.may_fetch(Instant::now()) {
                if let Err(e) = self.fetch_and_store().await {
                    tracing::warn!(error = %e, "JWKS fetch failed");
                }
            }
        }
        let now = Instant::now();
        let (_, found) = self.lookup(kid, alg, now);
        if !self.usable(now) {
            return Err(KeyError::Unavailable);
        }
        found.ok_or(KeyError::Unknown(match kid {
            Some(_) => "unknown key id",
            None => "the token has no kid and no single key fits its alg",
        }))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cached> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// (the set is fresh, the matching key if any)
    fn lookup(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        now: Instant,
    ) -> (bool, Option<Arc<KeyEntry>>) {
        let state = self.read();
        let fresh = state.fresh_until.is_some_and(|t| now < t);
        let found = match kid {
            Some(kid) => state
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid) && k.serves(alg))
                .cloned(),
            None => {
                let mut matching = state.keys.iter().filter(|k| k.serves(alg));
                match (matching.next(), matching.next()) {
                    (Some(only), None) => Some(only.clone()),
                    _ => None,
                }
            }
        };
        (fresh, found)
    }

    fn may_fetch(&self, now: Instant) -> bool {
        self.read()
            .last_attempt
            .is_none_or(|t| now.duration_since(t) >= self.timing.min_refresh)
    }

    /// A key set exists and its last good fetch is at most `max_stale` old (or it is fresh).
    fn usable(&self, now: Instant) -> bool {
        let state = self.read();
        let fresh = state.fresh_until.is_some_and(|t| now < t);
        let recent = state.last_success.is_some_and(|t| {
            let stale_since = state.fresh_until.unwrap_or(t);
            now.saturating_duration_since(stale_since) <= self.timing.max_stale
        });
        fresh || recent
    }

    async fn fetch_and_store(&self) -> Result<usize, String> {
        let started = Instant::now();
        let result = self.fetch().await;
        crate::metrics::METRICS
            .jwks_refreshes
            .with_label_values(&[if result.is_ok() { "ok" } else { "error" }])
            .inc();
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.last_attempt = Some(started);
        let (keys, ttl) = result?;
        let count = keys.len();
        state.keys = keys;
        state.last_success = Some(started);
        state.fresh_until = Some(started + ttl);
        tracing::info!(keys = count, ttl_secs = ttl.as_secs(), "JWKS refreshed");
        Ok(count)
    }

    async fn fetch(&self) -> Result<(Vec<Arc<KeyEntry>>, Duration), String> {
        let jwks_url = match &self.source {
            Source::Direct(url) => url.clone(),
            Source::Discovery { issuer } => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let (doc, _) = self.get_json(&url).await?;
                let uri = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or("discovery document has no jwks_uri")?;
                let jwks_uri = url::Url::parse(uri).map_err(|e| format!("bad jwks_uri: {e}"))?;
                check_key_url(&jwks_uri, self.allow_insecure_http)
                    .map_err(|e| format!("the discovery document's jwks_uri {e}"))?;
                let issuer_host = url::Url::parse(issuer)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
                let jwks_host = jwks_uri.host_str().map(str::to_ascii_lowercase);
                if jwks_host != issuer_host
                    && !self
                        .named_foreign_host
                        .swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    tracing::info!(
                        jwks_host = jwks_host.as_deref().unwrap_or_default(),
                        issuer_host = issuer_host.as_deref().unwrap_or_default(),
                        "the discovery document names a jwks_uri on another host than the issuer"
                    );
                }
                jwks_uri
            }
        };
        let (doc, cache_control) = self.get_json(jwks_url.as_str()).await?;
        if !doc.get("keys").is_some_and(Value::is_array) {
            // Not a key set (an error document, `{}`): keep the cached keys.
            return Err("the JWKS document has no \"keys\" array".into());
        }
        let keys = parse_jwks(&doc, &self.allowed);
        if keys.is_empty() {
            tracing::warn!("the JWKS holds no key usable with auth.algorithms");
        }
        let ttl = cache_control
            .as_deref()
            .and_then(max_age)
            .map(Duration::from_secs)
            .unwrap_or(self.timing.default_ttl)
            .clamp(self.timing.min_ttl, self.timing.max_ttl);
        Ok((keys, ttl))
    }

    async fn get_json(&self, url: &str) -> Result<(Value, Option<String>), String> {
        let span = crate::telemetry::client_span("jwks", "GET jwks");
        let mut res = tracing::Instrument::instrument(
            crate::telemetry::inject(self.client.get(url).header("accept", "application/json"))
                .send(),
            span.clone(),
        )
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
        span.record("http.response.status_code", res.status().as_u16());
        if res.status().is_redirection() {
            return Err(format!(
                "GET {url}: status {} (redirects are not followed)",
                res.status()
            ));
        }
        if !res.status().is_success() {
            return Err(format!("GET {url}: status {}", res.status()));
        }
        let cache_control = res
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "GET {url}: document over {MAX_DOCUMENT_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let doc = serde_json::from_slice(&body).map_err(|e| format!("GET {url}: {e}"))?;
        Ok((doc, cache_control))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn max_age_parsing() {
        assert_eq!(max_age("public, max-age=600"), Some(600));
        assert_eq!(max_age("max-age=\"30\""), Some(30));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }

    #[test]
    fn unusable_keys_are_skipped_without_breaking_the_set() {
        let doc = json!({"keys": [
            {"kty": "RSA", "use": "enc", "alg": "RS256", "kid": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "no-alg", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "alg": "HS256", "kid": "sym", "k": "c2VjcmV0"},
            {"kty": "EC", "alg": "RS256", "kid": "mismatch", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "XYZ", "alg": "RS256", "kid": "weird"},
            "not an object",
            {"kty": "RSA", "alg": "RS256", "kid": "good", "n": "sXch", "e": "AQAB"}
        ]});
        let keys = parse_jwks(&doc, &[Algorithm::RS256]);
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("no-alg"), Some("good")]);
        assert!(parse_jwks(&json!({"nope": 1}), &[Algorithm::RS256]).is_empty());
    }

    #[test]
    fn keys_without_alg_serve_what_their_type_allows() {
        let doc = json!({"keys": [
            // Entra ID's shape: no alg, x5t and x5c.
            {"kty": "RSA", "use": "sig", "kid": "entra", "x5t": "abc", "n": "sXch", "e": "AQAB",
             "x5c": ["MIIC"], "issuer": "https://login.microsoftonline.com/t/v2.0"},
            {"kty": "EC", "kid": "p256", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": "sXch", "e": "AQAB"},
            {"kty": "RSA", "alg": "RS384", "kid": "pinned", "n": "sXch", "e": "AQAB"}
        ]});
        let allowed = [
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::RS384,
            Algorithm::EdDSA,
        ];
        let keys = parse_jwks(&doc, &allowed);
        let entra = keys
            .iter()
            .find(|k| k.kid.as_deref() == Some("entra"))
            .unwrap();
        assert!(entra.serves(Algorithm::RS256) && entra.serves(Algorithm::PS256));
        assert!(!entra.serves(Algorithm::EdDSA) && !entra.serves(Algorithm::ES256));
        let pinned = keys
            .iter()
            .find(|k| k.kid.as_deref() == Some("pinned"))
            .unwrap();
        assert!(pinned.serves(Algorithm::RS384) && !pinned.serves(Algorithm::RS256));
        assert!(keys.iter().all(|k| k.kid.as_deref() != Some("enc")));
        assert!(
            keys.iter().all(|k| k.kid.as_deref() != Some("p256")),
            "ES256 is not allowed: the P-256 key serves nothing"
        );
        let with_es = parse_jwks(&doc, &[Algorithm::ES256]);
        assert_eq!(with_es.len(), 1);
        assert!(with_es[0].serves(Algorithm::ES256));
    }

    #[test]
    fn key_urls_must_be_https_except_loopback() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(check_key_url(&u("https://idp.example/jwks"), false).is_ok());
        assert!(check_key_url(&u("http://127.0.0.1:8080/jwks"), false).is_ok());
        assert!(check_key_url(&u("http://127.1.2.3/jwks"), false).is_ok());
        assert!(check_key_url(&u("http://localhost:1/jwks"), false).is_ok());
        assert!(check_key_url(&u("http://[::1]:1/jwks"), false).is_ok());
        assert!(check_key_url(&u("http://idp.example/jwks"), false).is_err());
        assert!(check_key_url(&u("http://10.0.0.1/jwks"), false).is_err());
        assert!(check_key_url(&u("http://localhost.evil.example/jwks"), false).is_err());
        assert!(check_key_url(&u("http://idp.example/jwks"), true).is_ok());
        assert!(check_key_url(&u("ftp://idp.example/jwks"), true).is_err());
    }
}
