//! A credential profile's token rules, as the JWT verifier needs them: `[auth]` (users) or
//! `[auth.service]` (backend services) with what it takes from `[auth]`. Borrowed from the
//! settings, never cloned; errors name keys under [`JwtProfile::prefix`].

use jsonwebtoken::Algorithm;
use secrecy::SecretString;
use std::collections::BTreeMap;

use crate::config::AuthSettings;

/// One profile's token rules.
#[derive(Clone, Copy)]
pub struct JwtProfile<'a> {
    /// Where the keys are named in errors: `auth` or `auth.service`.
    pub prefix: &'static str,
    /// The algorithm allow-list.
    pub algorithms: &'a [Algorithm],
    /// JWKS URL.
    pub jwks_url: Option<&'a url::Url>,
    /// Read `jwks_uri` from `<issuer>/.well-known/openid-configuration`.
    pub discovery: bool,
    /// Public key: PEM text or a path to a PEM file.
    pub public_key_pem: Option<&'a str>,
    /// HMAC secret.
    pub hs256_secret: Option<&'a SecretString>,
    /// Required `iss`.
    pub issuer: Option<&'a str>,
    /// Required `aud`.
    pub audience: Option<&'a str>,
    /// Claim used as the caller's id.
    pub user_id_claim: &'a str,
    /// `authCf1..3` → claim name.
    pub cf_claims: &'a BTreeMap<String, String>,
    /// Shared by both profiles: leeway, token lifetime, `sid` claim, JWKS fetching.
    pub shared: &'a AuthSettings,
}

impl<'a> JwtProfile<'a> {
    /// The user profile: `[auth]`.
    pub fn user(auth: &'a AuthSettings) -> Self {
        JwtProfile {
            prefix: "auth",
            algorithms: &auth.algorithms,
            jwks_url: auth.jwks_url.as_ref(),
            discovery: auth.discovery,
            public_key_pem: auth.public_key_pem.as_deref(),
            hs256_secret: auth.hs256_secret.as_ref(),
            issuer: auth.issuer.as_deref(),
            audience: auth.audience.as_deref(),
            user_id_claim: &auth.user_id_claim,
            cf_claims: &auth.cf_claims,
            shared: auth,
        }
    }

    /// The service profile: `[auth.service]`'s audience, issuer (else `auth.issuer`) and own
    /// keys (else `[auth]`'s); the caller's id is `sub`; no `authCf` claims (`no_cf_claims`
    /// is an empty map).
    pub fn service(auth: &'a AuthSettings, no_cf_claims: &'a BTreeMap<String, String>) -> Self {
        let svc = &auth.service;
        let mut profile = JwtProfile {
            prefix: "auth.service",
            audience: Some(svc.audience.as_str()),
            user_id_claim: "sub",
            cf_claims: no_cf_claims,
            ..JwtProfile::user(auth)
        };
        if !svc.issuer.is_empty() {
            profile.issuer = Some(svc.issuer.as_str());
        }
        if !svc.algorithms.is_empty() {
            profile.algorithms = &svc.algorithms;
            profile.jwks_url = svc.jwks_url.as_ref();
            profile.discovery = false;
            profile.public_key_pem = svc.public_key_pem.as_deref();
            profile.hs256_secret = svc.hs256_secret.as_ref();
        }
        profile
    }
}
