//! Caller authentication: a JWT from the app's identity provider, verified with a configured
//! key and algorithm allow-list, becomes a typed [`Principal`].
//!
//! The header's `alg` is never trusted on its own: it must be in `auth.algorithms`, and the key
//! type fixes the family (so `alg: none` and "HS256 signed with the RSA public key" fail).
//! `exp`, `iss` and `aud` are required; `nbf` and `iat` are honoured with `auth.leeway_secs`.

pub mod cookie;
pub mod jwks;
pub mod profile;
pub mod service;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::sync::Arc;

use jwks::{JwksCache, KeyError};
pub use profile::JwtProfile;

use crate::config::{AuthSettings, ConfigError};

/// The verified caller of a user route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// From `auth.user_id_claim`; the link owner and FaceAuth `authUserId`.
    pub user_id: String,
    /// From `auth.sid_claim`: the approved ID Check submission id, if the token carries one.
    pub sid: Option<String>,
    /// `authCf1`..`authCf3` from `auth.cf_claims`.
    pub cf: [Option<String>; 3],
}

/// Why a request is not authenticated. Carries no token material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("missing bearer token")]
    Missing,
    /// The token failed verification; the reason is for logs and `error_description`.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// The identity provider's keys could not be fetched and the cache is too old.
    #[error("JWKS unavailable")]
    KeysUnavailable,
    /// Cookie credentials sent from a foreign site.
    #[error("cross-site request")]
    CrossSite,
    /// The service credential lacks this scope.
    #[error("insufficient scope: {0}")]
    InsufficientScope(&'static str),
    /// No service credentials are configured: service routes do not exist.
    #[error("service credentials are not configured")]
    ServiceCredentialsOff,
    /// A verifier was not set up (a bug in the application's wiring).
    #[error("not configured: {0}")]
    NotConfigured(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

fn family(alg: Algorithm) -> Family {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Family::Hmac,
        Algorithm::ES256 | Algorithm::ES384 => Family::Ec,
        Algorithm::EdDSA => Family::Ed,
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Family::Rsa,
    }
}

/// Longest accepted claim value used by the gateway (user id, sid, cf), in bytes.
pub const MAX_CLAIM_BYTES: usize = 1024;

enum KeySource {
    /// One configured key (`auth.hs256_secret` or `auth.public_key_pem`) of one family.
    Static(DecodingKey, Family),
    /// Keys from a JWKS, chosen by `kid`.
    Jwks(Arc<JwksCache>),
}

/// Verifies JWTs with a configured key or a JWKS. Built once at start-up.
pub struct JwtVerifier {
    keys: KeySource,
    /// One validation per allowed algorithm (each names only its own), built once: a request
    /// picks the one of its header's `alg` instead of cloning a template.
    validations: Vec<(Algorithm, Validation)>,
    leeway_secs: u64,
    /// `auth.max_token_lifetime_secs`; 0 = no limit.
    max_lifetime_secs: u64,
    user_id_claim: String,
    sid_claim: String,
    cf_claims: [Option<String>; 3],
    /// Tokens whose `aud` lists this audience are refused (keeps user and service tokens apart).
    foreign_audience: Option<String>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field(
                "algorithms",
                &self.validations.iter().map(|(a, _)| a).collect::<Vec<_>>(),
            )
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl JwtVerifier {
    /// Builds a verifier from `[auth]`.
    ///
    /// Errors: a [`ConfigError`] naming the key: empty or mixed-family `auth.algorithms`, a
    /// missing or unreadable key, missing `auth.issuer` / `auth.audience`, or a `cf_claims`
    /// entry other than `authCf1..3`.
    pub fn from_settings(
        s: &AuthSettings,
        outbound: &crate::outbound::Outbound,
    ) -> Result<Self, ConfigError> {
        Self::from_profile(&JwtProfile::user(s), outbound)
    }

    /// Builds a verifier from a credential profile whose keys are named under its `prefix`
    /// (`auth`, or `auth.service` for the service profile).
    ///
    /// Errors: as [`JwtVerifier::from_settings`], naming `<prefix>.<key>`.
    pub fn from_profile(
        s: &JwtProfile<'_>,
        outbound: &crate::outbound::Outbound,
    ) -> Result<Self, ConfigError> {
        let prefix = s.prefix;
        let first = *s.algorithms.first().ok_or_else(|| {
            ConfigError::new(format!("{prefix}.algorithms"), "required, e.g. [\"RS256\"]")
        })?;
        let fam = family(first);
        let jwks = JwksCache::from_profile(s, outbound)?;
        let mixes_hmac = s.algorithms.iter().any(|a| family(*a) == Family::Hmac)
            && s.algorithms.iter().any(|a| family(*a) != Family::Hmac);
        if mixes_hmac || (jwks.is_none() && s.algorithms.iter().any(|a| family(*a) != fam)) {
            return Err(ConfigError::new(
                format!("{prefix}.algorithms"),
                "must not mix families (HMAC, RSA, EC, EdDSA) unless keys come from a JWKS, \
                 and never HMAC with the others",
            ));
        }
        let keys = match jwks {
            Some(cache) => {
                if fam == Family::Hmac {
                    return Err(ConfigError::new(
                        format!("{prefix}.algorithms"),
                        "HMAC algorithms use auth.hs256_secret, not a JWKS",
                    ));
                }
                if s.public_key_pem.is_some_and(|p| !p.trim().is_empty()) {
                    return Err(ConfigError::new(
                        format!("{prefix}.public_key_pem"),
                        "set either a public key or a JWKS, not both",
                    ));
                }
                KeySource::Jwks(Arc::new(cache))
            }
            None => KeySource::Static(static_key(s, fam)?, fam),
        };
        let issuer = non_empty(s.issuer, &format!("{prefix}.issuer"))?;
        let audience = non_empty(s.audience, &format!("{prefix}.audience"))?;
        let mut validation = Validation::new(first);
        validation.algorithms = s.algorithms.to_vec();
        validation.leeway = s.shared.leeway_secs;
        // `exp`, `nbf` and `iat` are checked by `check_times`: jsonwebtoken 9 reads them as
        // integers only and silently skips an `nbf` it cannot parse (e.g. a fraction), while
        // RFC 7519 §2 allows non-integer NumericDates.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["iss", "aud"]);

        let cf_claims = claim_names(s)?;
        let validations = s
            .algorithms
            .iter()
            .map(|alg| {
                let mut v = validation.clone();
                v.algorithms = vec![*alg];
                (*alg, v)
            })
            .collect();
        Ok(JwtVerifier {
            keys,
            validations,
            leeway_secs: s.shared.leeway_secs,
            max_lifetime_secs: s.shared.max_token_lifetime_secs,
            user_id_claim: s.user_id_claim.to_string(),
            sid_claim: s.shared.sid_claim.clone(),
            cf_claims,
            foreign_audience: None,
        })
    }

    /// Refuses tokens whose `aud` lists `audience` (the other credential profile's).
    pub fn refuse_audience(&mut self, audience: &str) {
        if !audience.is_empty() {
            self.foreign_audience = Some(audience.to_string());
        }
    }

    /// Fetches the JWKS once, if one is configured (start-up); failures are only logged, the
    /// first requests retry.
    pub async fn warm_up(&self) {
        if let KeySource::Jwks(cache) = &self.keys {
            match cache.warm_up().await {
                Ok(n) => tracing::info!(keys = n, "JWKS loaded"),
                Err(e) => tracing::warn!(error = %e, "JWKS not loaded at start-up"),
            }
        }
    }

    /// For `check-config`: fetches the JWKS (if one is configured) and reports failure.
    ///
    /// Errors: a description of why the key set did not load, or that it holds no usable key.
    pub async fn check_keys(&self) -> Result<(), String> {
        match &self.keys {
            KeySource::Static(..) => Ok(()),
            KeySource::Jwks(cache) => match cache.warm_up().await? {
                0 => Err("the JWKS holds no key usable with auth.algorithms".into()),
                _ => Ok(()),
            },
        }
    }

    /// Verifies `token` and extracts the principal.
    ///
    /// Errors: [`AuthError::Invalid`] for a bad signature, an `alg` outside the allow-list or
    /// not fitting the key, an unknown `kid`, expired/not-yet-valid/future-`iat` tokens, a
    /// wrong `iss`/`aud`, or a missing user id; [`AuthError::KeysUnavailable`] when the JWKS
    /// cannot be fetched and the cache is too old.
    pub async fn verify(&self, token: &SecretString) -> Result<Principal, AuthError> {
        let claims = self.verify_claims(token).await?;
        // The user id follows the path grammar too (no control characters), so every user a
        // token names can also be named in `/v1/users/{user_id}/…`.
        let user_id = claim_string(&claims, &self.user_id_claim)
            .filter(|s| !s.chars().any(char::is_control))
            .ok_or(AuthError::Invalid(
                "the user id claim is missing, not a string, or holds control characters",
            ))?;
        let sid =
            claim_string(&claims, &self.sid_claim).filter(|s| !s.chars().any(char::is_control));
        let cf = self
            .cf_claims
            .clone()
            .map(|c| c.and_then(|name| claim_string(&claims, &name)));
        Ok(Principal { user_id, sid, cf })
    }

    /// Verifies `token` (signature, `alg`, `iss`, `aud`, times) and returns its claims.
    ///
    /// Errors: as [`JwtVerifier::verify`], except the user id check.
    pub async fn verify_claims(
        &self,
        token: &SecretString,
    ) -> Result<Map<String, Value>, AuthError> {
        let header = jsonwebtoken::decode_header(token.expose_secret())
            .map_err(|_| AuthError::Invalid("malformed token"))?;
        if has_crit(token.expose_secret()) {
            // RFC 7515 §4.1.11: no extension is understood here, so `crit` must be refused.
            return Err(AuthError::Invalid("unsupported crit header"));
        }
        let validation = self
            .validations
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .map(|(_, v)| v)
            .ok_or(AuthError::Invalid("algorithm not allowed"))?;
        let jwk_entry;
        let key =
            match &self.keys {
                KeySource::Static(key, fam) => {
                    if family(header.alg) != *fam {
                        return Err(AuthError::Invalid("algorithm does not fit the key type"));
                    }
                    key
                }
                KeySource::Jwks(cache) => {
                    jwk_entry = cache.key(header.kid.as_deref(), header.alg).await.map_err(
                        |e| match e {
                            KeyError::Unknown(why) => AuthError::Invalid(why),
                            KeyError::Unavailable => AuthError::KeysUnavailable,
                        },
                    )?;
                    jwk_entry.key()
                }
            };
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token.expose_secret(), key, validation)
                .map_err(|e| AuthError::Invalid(describe(e.kind())))?;
        let claims = data.claims;
        let now = crate::clock::now_secs_f64();
        check_times(&claims, self.leeway_secs as f64, now)?;
        check_lifetime(
            &claims,
            self.max_lifetime_secs,
            self.leeway_secs as f64,
            now,
        )?;
        // RFC 7519 §4.1.1: `iss` is one StringOrURI (jsonwebtoken also accepts an array).
        if !claims.get("iss").is_some_and(Value::is_string) {
            return Err(AuthError::Invalid("iss is not a string"));
        }
        if let Some(foreign) = &self.foreign_audience {
            let listed = match claims.get("aud") {
                Some(Value::String(a)) => a == foreign,
                Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(foreign)),
                _ => false,
            };
            if listed {
                return Err(AuthError::Invalid(
                    "the token is also meant for another profile",
                ));
            }
        }
        Ok(claims)
    }
}

/// The `authCf1..3` claim names; the user id and `sid` claims must not be empty.
fn claim_names(s: &JwtProfile<'_>) -> Result<[Option<String>; 3], ConfigError> {
    let prefix = s.prefix;
    let mut cf_claims: [Option<String>; 3] = Default::default();
    for (slot, claim) in s.cf_claims {
        let index = match slot.to_ascii_lowercase().as_str() {
            "authcf1" => 0,
            "authcf2" => 1,
            "authcf3" => 2,
            _ => {
                return Err(ConfigError::new(
                    format!("{prefix}.cf_claims.{slot}"),
                    "only authCf1, authCf2 and authCf3 exist",
                ))
            }
        };
        cf_claims[index] = Some(claim.clone());
    }
    for (key, value) in [
        ("user_id_claim", s.user_id_claim),
        ("sid_claim", s.shared.sid_claim.as_str()),
    ] {
        if value.is_empty() {
            return Err(ConfigError::new(
                format!("{prefix}.{key}"),
                "must not be empty",
            ));
        }
    }
    Ok(cf_claims)
}

/// The configured key for a static (non-JWKS) setup.
fn static_key(s: &JwtProfile<'_>, fam: Family) -> Result<DecodingKey, ConfigError> {
    let prefix = s.prefix;
    Ok(match fam {
        Family::Hmac => {
            let secret = s
                .hs256_secret
                .map(|s| s.expose_secret())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    ConfigError::new(
                        format!("{prefix}.hs256_secret"),
                        "required for HMAC algorithms",
                    )
                })?;
            if secret.len() < 32 {
                return Err(ConfigError::new(
                    format!("{prefix}.hs256_secret"),
                    "must be at least 32 bytes",
                ));
            }
            DecodingKey::from_secret(secret.as_bytes())
        }
        _ => {
            let pem = read_pem(s.public_key_pem, prefix)?;
            let parsed = match fam {
                Family::Rsa => DecodingKey::from_rsa_pem(pem.as_bytes()),
                Family::Ec => DecodingKey::from_ec_pem(pem.as_bytes()),
                _ => DecodingKey::from_ed_pem(pem.as_bytes()),
            };
            parsed.map_err(|_| {
                ConfigError::new(
                    format!("{prefix}.public_key_pem"),
                    format!("not a {fam:?} public key in PEM form"),
                )
            })?
        }
    })
}

/// The one header member [`has_crit`] looks for; the others are skipped, not collected.
#[derive(serde::Deserialize)]
struct CritProbe {
    /// Whether `crit` is present, whatever its value (`null` included).
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    <serde::de::IgnoredAny as serde::Deserialize>::deserialize(d).map(|_| true)
}

/// Whether the JOSE header carries `crit` (a header the probe cannot read, e.g. one that names
/// `crit` twice, counts as carrying it: refused).
fn has_crit(token: &str) -> bool {
    use base64::Engine as _;
    token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .is_some_and(|bytes| serde_json::from_slice::<CritProbe>(&bytes).map_or(true, |h| h.crit))
}

/// RFC 7519 NumericDate: a JSON number (integer or not) of seconds since the epoch.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
    malformed: &'static str,
) -> Result<Option<f64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or(AuthError::Invalid(malformed)),
        Some(_) => Err(AuthError::Invalid(malformed)),
    }
}

/// `exp` required and in the future, `nbf` (if present) reached, `iat` (if present) not in
/// the future, each within `leeway` seconds.
fn check_times(claims: &Map<String, Value>, leeway: f64, now: f64) -> Result<(), AuthError> {
    let exp = numeric_date(claims, "exp", "exp is not a NumericDate")?.ok_or(
        AuthError::Invalid("a required claim (exp, iss, aud) is missing"),
    )?;
    if exp <= now - leeway {
        return Err(AuthError::Invalid("the token has expired"));
    }
    if let Some(nbf) = numeric_date(claims, "nbf", "nbf is not a NumericDate")? {
        if nbf > now + leeway {
            return Err(AuthError::Invalid("the token is not valid yet"));
        }
    }
    if let Some(iat) = numeric_date(claims, "iat", "iat is not a NumericDate")? {
        if iat > now + leeway {
            return Err(AuthError::Invalid("iat is in the future"));
        }
    }
    Ok(())
}

/// With `auth.max_token_lifetime_secs` set (`max_secs > 0`): `exp` at most that far ahead (plus
/// the leeway), like Kong's `maximum_expiration`. Long-lived tokens are refused even when
/// their signature is good.
fn check_lifetime(
    claims: &Map<String, Value>,
    max_secs: u64,
    leeway: f64,
    now: f64,
) -> Result<(), AuthError> {
    if max_secs == 0 {
        return Ok(());
    }
    let exp = numeric_date(claims, "exp", "exp is not a NumericDate")?.unwrap_or(f64::MAX);
    if exp > now + max_secs as f64 + leeway {
        return Err(AuthError::Invalid(
            "exp lies further ahead than auth.max_token_lifetime_secs allows; issue \
             shorter-lived tokens",
        ));
    }
    Ok(())
}

fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "the token has expired",
        K::ImmatureSignature => "the token is not valid yet",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::MissingRequiredClaim(_) => "a required claim (exp, iss, aud) is missing",
        K::InvalidAlgorithm | K::InvalidAlgorithmName => "algorithm not allowed",
        K::InvalidSignature => "bad signature",
        _ => "malformed token",
    }
}

/// A claim as a non-empty string of at most [`MAX_CLAIM_BYTES`]; integers are accepted and
/// written in decimal. Anything else (objects, arrays, booleans, empty) counts as absent.
pub(crate) fn claim_string(claims: &Map<String, Value>, name: &str) -> Option<String> {
    let s = match claims.get(name)? {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => return None,
    };
    (!s.is_empty() && s.len() <= MAX_CLAIM_BYTES).then_some(s)
}

fn non_empty(value: Option<&str>, key: &str) -> Result<String, ConfigError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v.to_string()),
        _ => Err(ConfigError::new(key, "required")),
    }
}

fn read_pem(value: Option<&str>, prefix: &str) -> Result<String, ConfigError> {
    let value = value.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
        ConfigError::new(
            format!("{prefix}.public_key_pem"),
            "required for RSA, EC and EdDSA",
        )
    })?;
    if value.trim_start().starts_with("-----BEGIN") {
        return Ok(value.to_string());
    }
    std::fs::read_to_string(value).map_err(|e| {
        ConfigError::new(
            format!("{prefix}.public_key_pem"),
            format!("cannot read PEM file `{value}`: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn times(v: Value) -> Result<(), AuthError> {
        check_times(v.as_object().unwrap(), 30.0, 1_000_000.0)
    }

    #[test]
    fn numeric_dates_may_be_fractions() {
        assert_eq!(
            times(json!({"exp": 1_000_100.5, "nbf": 999_999.5, "iat": 999_999.25})),
            Ok(())
        );
    }

    #[test]
    fn a_fractional_nbf_in_the_future_is_not_ignored() {
        assert!(times(json!({"exp": 2_000_000, "nbf": 1_000_100.5})).is_err());
    }

    #[test]
    fn non_numbers_are_rejected() {
        for bad in [
            json!("1000100"),
            json!(null),
            json!([1]),
            json!({"a": 1}),
            json!(true),
        ] {
            assert!(times(json!({"exp": bad.clone()})).is_err());
            assert!(times(json!({"exp": 2_000_000, "nbf": bad.clone()})).is_err());
            assert!(times(json!({"exp": 2_000_000, "iat": bad})).is_err());
        }
        assert!(times(json!({})).is_err(), "exp is required");
    }

    #[test]
    fn max_token_lifetime() {
        let c = |exp: f64| json!({ "exp": exp });
        let now = 1_000_000.0;
        let lifetime = |v: Value, max| check_lifetime(v.as_object().unwrap(), max, 30.0, now);
        assert_eq!(lifetime(c(now + 1e9), 0), Ok(()), "0 = no limit");
        assert_eq!(lifetime(c(now + 3600.0), 3600), Ok(()));
        assert_eq!(lifetime(c(now + 3630.0), 3600), Ok(()), "leeway");
        assert!(lifetime(c(now + 3631.0), 3600).is_err());
        assert!(lifetime(c(1e300), 3600).is_err());
    }

    #[test]
    fn expiry_and_leeway() {
        assert!(times(json!({"exp": 999_969})).is_err());
        assert_eq!(times(json!({"exp": 999_971})), Ok(()));
        assert!(times(json!({"exp": -5})).is_err());
        assert_eq!(times(json!({"exp": 1e300})), Ok(()));
    }
}
