//! Step-up assertions: a short-lived JWT, signed by the gateway, saying that a user passed a
//! pull-verified FaceAuth at a given time (RFC 9470 `acr` / `auth_time`, RFC 8176 `amr`
//! `face`). The app's backend checks it offline against `GET /.well-known/jwks.json` instead of
//! asking `GET /v1/users/{id}/step-up` on every decision (see `docs/step-up-assertions.md`).
//!
//! Assertions are made **on demand** from a stored approved result (the link's result, the
//! user's step-up record, or the result being written when the callback is queued; that
//! event's queued body is the only place one is stored): the claims are a function of that record (`sub`, `auth_time`, `exp`,
//! link and authentication ids, `reference`), only `jti` and `iat` are fresh per issuance.
//! `exp` is `auth_time + assertions.lifetime_secs`: an assertion for an old FaceAuth is not
//! made at all ([`Assertions::issue`] answers `None`), and a rejected result never reaches
//! here.
//!
//! Keys: one PKCS#8 PEM private key (Ed25519 → `EdDSA`, P-256 → `ES256`) read from
//! `assertions.signing_key_file`, kept in memory by `jsonwebtoken` (whose `EncodingKey` has no
//! `Debug`), never logged. Its public half and those of `assertions.previous_key_files` (old
//! keys during a rotation) form the published key set; each `kid` is the RFC 7638 JWK
//! thumbprint. The public parameters come from `ring` (the crypto library `jsonwebtoken` signs
//! with).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// A key file that cannot be used, naming its setting and path (never key material).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("config key `{key}`: {message}")]
pub struct KeyFileError {
    /// The setting, e.g. `assertions.signing_key_file`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl KeyFileError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        KeyFileError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// What the assertions are signed with and carry (`[assertions]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionSetup {
    /// PKCS#8 PEM private key that signs; empty = off.
    pub signing_key_file: String,
    /// Earlier keys still published in the JWKS.
    pub previous_key_files: Vec<String>,
    /// `aud` of every assertion.
    pub audience: String,
    /// `acr` of every assertion.
    pub acr: String,
    /// `exp` = `auth_time` + this, seconds.
    pub lifetime_secs: u64,
    /// `Cache-Control: public, max-age=` of the JWKS, seconds.
    pub jwks_max_age_secs: u64,
}

/// The `typ` header of assertions (RFC 8725 §3.11 explicit typing): verifiers may require it,
/// so no other JWT the gateway might ever sign passes for an assertion.
pub const TYP: &str = "faceauth-step-up+jwt";

/// The `amr` value of a FaceAuth (RFC 8176 §2: facial recognition).
pub const AMR_FACE: &str = "face";

/// A signed assertion (a compact JWS). A bearer credential: `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Assertion(String);

impl fmt::Debug for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Assertion([REDACTED])")
    }
}

/// The facts of one approved, pull-verified FaceAuth an assertion states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssertionFacts<'a> {
    /// The user (`sub`).
    pub user_id: &'a str,
    /// The link (`link_id`).
    pub link_id: &'a str,
    /// ARGOS authentication id (`auth_id`).
    pub auth_id: &'a str,
    /// ARGOS's time of the FaceAuth, Unix ms (`auth_time`, in seconds).
    pub verified_at_ms: i64,
    /// The session layer's reference of a service-minted link (`reference`).
    pub reference: Option<&'a str>,
}

/// A public key as published in the JWKS (RFC 7517, RFC 8037 for `OKP`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PublicJwk {
    /// `OKP` (Ed25519) or `EC` (P-256).
    pub kty: &'static str,
    /// `Ed25519` or `P-256`.
    pub crv: &'static str,
    /// Public key (Ed25519) or x coordinate (P-256), base64url.
    pub x: String,
    /// y coordinate (P-256 only), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RFC 7638 JWK thumbprint (SHA-256, base64url) of this key.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub alg: &'static str,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
}

impl PublicJwk {
    fn ed25519(public: &[u8]) -> PublicJwk {
        let x = URL_SAFE_NO_PAD.encode(public);
        let kid = thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
        PublicJwk {
            kty: "OKP",
            crv: "Ed25519",
            x,
            y: None,
            kid,
            alg: "EdDSA",
            use_: "sig",
        }
    }

    /// From the 32-byte x and y of a P-256 point.
    fn p256(x: &[u8], y: &[u8]) -> PublicJwk {
        let x = URL_SAFE_NO_PAD.encode(x);
        let y = URL_SAFE_NO_PAD.encode(y);
        let kid = thumbprint(&format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
        ));
        PublicJwk {
            kty: "EC",
            crv: "P-256",
            x,
            y: Some(y),
            kid,
            alg: "ES256",
            use_: "sig",
        }
    }
}

/// The published key set (`{"keys": [...]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct JwkSet {
    /// The signing key first, then the previous keys still accepted.
    pub keys: Vec<PublicJwk>,
}

/// RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace.
fn thumbprint(canonical: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Why an assertion could not be made (never carries key material or the token).
#[derive(Debug, thiserror::Error)]
#[error("signing a step-up assertion failed")]
pub struct AssertionError;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    auth_time: i64,
    exp: i64,
    acr: &'a str,
    amr: [&'static str; 1],
    jti: String,
    link_id: &'a str,
    auth_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
}

/// The signer and the published key set, built from `[assertions]`.
pub struct Assertions {
    key: EncodingKey,
    alg: Algorithm,
    kid: String,
    issuer: String,
    audience: String,
    acr: String,
    lifetime_secs: i64,
    jwks: JwkSet,
    jwks_max_age_secs: u64,
}

/// Never the key: only what identifies it.
impl fmt::Debug for Assertions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assertions")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("acr", &self.acr)
            .field("lifetime_secs", &self.lifetime_secs)
            .finish_non_exhaustive()
    }
}

/// A private key read from a file: its algorithm, the key for `jsonwebtoken`, its public JWK.
struct PrivateKey {
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: PublicJwk,
}

const ED25519_SPKI_PREFIX: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];

fn read_pem(
    key: &str,
    path: &str,
) -> Result<(String, SecretSlice<u8>, SecretString), KeyFileError> {
    let text = std::fs::read_to_string(path)
        .map(SecretString::from)
        .map_err(|e| KeyFileError::new(key, format!("cannot read `{path}`: {}", e.kind())))?;
    // pem's errors describe the structure, never the contents.
    let parsed = pem::parse(text.expose_secret().as_bytes())
        .map_err(|_| KeyFileError::new(key, format!("`{path}` is not a PEM file")))?;
    let tag = parsed.tag().to_string();
    Ok((tag, SecretSlice::from(parsed.into_contents()), text))
}

fn private_key(key: &str, path: &str) -> Result<PrivateKey, KeyFileError> {
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let (tag, der, text) = read_pem(key, path)?;
    if tag != "PRIVATE KEY" {
        return Err(KeyFileError::new(
            key,
            format!("`{path}` must be a PKCS#8 PEM private key (BEGIN PRIVATE KEY), found {tag}"),
        ));
    }
    let der = der.expose_secret();
    if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
        let encoding = EncodingKey::from_ed_pem(text.expose_secret().as_bytes())
            .map_err(|_| KeyFileError::new(key, format!("`{path}`: unusable Ed25519 key")))?;
        return Ok(PrivateKey {
            alg: Algorithm::EdDSA,
            encoding,
            jwk: PublicJwk::ed25519(pair.public_key().as_ref()),
        });
    }
    let rng = ring::rand::SystemRandom::new();
    if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
        let point = pair.public_key().as_ref();
        let (x, y) = match point {
            [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => {
                return Err(KeyFileError::new(
                    key,
                    format!("`{path}`: unusable P-256 key"),
                ))
            }
        };
        let encoding = EncodingKey::from_ec_pem(text.expose_secret().as_bytes())
            .map_err(|_| KeyFileError::new(key, format!("`{path}`: unusable P-256 key")))?;
        return Ok(PrivateKey {
            alg: Algorithm::ES256,
            encoding,
            jwk: PublicJwk::p256(x, y),
        });
    }
    Err(KeyFileError::new(
        key,
        format!("`{path}` is neither an Ed25519 nor a P-256 (prime256v1) PKCS#8 key"),
    ))
}

/// A previous key: its public half (`BEGIN PUBLIC KEY`, SubjectPublicKeyInfo) or the old
/// private key itself.
fn public_key(key: &str, path: &str) -> Result<PublicJwk, KeyFileError> {
    let (tag, der, _) = read_pem(key, path)?;
    match tag.as_str() {
        "PRIVATE KEY" => private_key(key, path).map(|k| k.jwk),
        "PUBLIC KEY" => {
            let der = der.expose_secret();
            if let Some(x) = der
                .strip_prefix(ED25519_SPKI_PREFIX)
                .filter(|x| x.len() == 32)
            {
                return Ok(PublicJwk::ed25519(x));
            }
            if let Some(xy) = der.strip_prefix(P256_SPKI_PREFIX).filter(|p| p.len() == 64) {
                let (x, y) = xy.split_at(32);
                return Ok(PublicJwk::p256(x, y));
            }
            Err(KeyFileError::new(
                key,
                format!("`{path}` is neither an Ed25519 nor an uncompressed P-256 public key"),
            ))
        }
        other => Err(KeyFileError::new(
            key,
            format!("`{path}` must be a PEM public key (BEGIN PUBLIC KEY) or PKCS#8 private key, found {other}"),
        )),
    }
}

impl Assertions {
    /// `None` while `assertions.signing_key_file` is empty. `issuer` is `server.public_base_url`
    /// without its trailing `/`. Reads and checks the key files and signs once (fail closed at
    /// start-up).
    ///
    /// Errors: a [`KeyFileError`] naming the setting (never key material).
    pub fn from_settings(
        setup: impl Into<AssertionSetup>,
        issuer: &str,
    ) -> Result<Option<Assertions>, KeyFileError> {
        let s = setup.into();
        if s.signing_key_file.is_empty() {
            return Ok(None);
        }
        let current = private_key("assertions.signing_key_file", &s.signing_key_file)?;
        let mut keys = vec![current.jwk.clone()];
        for (i, path) in s.previous_key_files.iter().enumerate() {
            let jwk = public_key(&format!("assertions.previous_key_files[{i}]"), path)?;
            if !keys.iter().any(|k| k.kid == jwk.kid) {
                keys.push(jwk);
            }
        }
        let assertions = Assertions {
            key: current.encoding,
            alg: current.alg,
            kid: current.jwk.kid,
            issuer: issuer.to_string(),
            audience: s.audience,
            acr: s.acr,
            lifetime_secs: i64::try_from(s.lifetime_secs).unwrap_or(i64::MAX),
            jwks: JwkSet { keys },
            jwks_max_age_secs: s.jwks_max_age_secs,
        };
        let probe = AssertionFacts {
            user_id: "start-up-probe",
            link_id: "",
            auth_id: "",
            verified_at_ms: 0,
            reference: None,
        };
        assertions.sign(&probe, 0, 0).map_err(|_| {
            KeyFileError::new("assertions.signing_key_file", "the key does not sign")
        })?;
        Ok(Some(assertions))
    }

    /// An assertion for `facts` at the store's clock `now_ms`, or `None` if its `exp`
    /// (`auth_time + lifetime`) has passed: an expired assertion is never handed out. `via` is
    /// the metric label (`link_status`, `step_up`, `callback`).
    ///
    /// Errors: [`AssertionError`] if signing fails.
    pub fn issue(
        &self,
        facts: &AssertionFacts<'_>,
        now_ms: i64,
        via: &'static str,
    ) -> Result<Option<Assertion>, AssertionError> {
        let auth_time = facts.verified_at_ms.div_euclid(1000);
        let exp = auth_time.saturating_add(self.lifetime_secs);
        let now = now_ms.div_euclid(1000);
        if exp <= now {
            return Ok(None);
        }
        let token = self.sign(facts, auth_time, now)?;
        crate::metrics::METRICS
            .assertions_issued
            .with_label_values(&[via])
            .inc();
        Ok(Some(Assertion(token)))
    }

    fn sign(
        &self,
        facts: &AssertionFacts<'_>,
        auth_time: i64,
        now: i64,
    ) -> Result<String, AssertionError> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = Some(TYP.into());
        let claims = Claims {
            iss: &self.issuer,
            sub: facts.user_id,
            aud: &self.audience,
            iat: now,
            auth_time,
            exp: auth_time.saturating_add(self.lifetime_secs),
            acr: &self.acr,
            amr: [AMR_FACE],
            jti: uuid::Uuid::new_v4().simple().to_string(),
            link_id: facts.link_id,
            auth_id: facts.auth_id,
            reference: facts.reference,
        };
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|_| AssertionError)
    }

    /// The published key set.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// `Cache-Control: public, max-age=` of the key set, seconds.
    pub fn jwks_max_age_secs(&self) -> u64 {
        self.jwks_max_age_secs
    }

    /// Logs which key signs (its `kid`, never the key) and how many keys are published.
    pub fn log_start(&self) {
        tracing::info!(
            kid = self.kid.as_str(),
            alg = ?self.alg,
            published = self.jwks.keys.len(),
            "step-up assertions on"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_8037_thumbprint_vector() {
        // RFC 8037 Appendix A.2 / A.3.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let jwk = PublicJwk::ed25519(&x);
        assert_eq!(jwk.kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn rfc_7638_style_ec_thumbprint_is_over_the_required_members_only() {
        let jwk = PublicJwk::p256(&[1; 32], &[2; 32]);
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode([1u8; 32]),
            URL_SAFE_NO_PAD.encode([2u8; 32])
        );
        assert_eq!(
            jwk.kid,
            URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
        );
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(json["use"], "sig");
        assert_eq!(json["alg"], "ES256");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let a = Assertion("eyJhbGciOiJFZERTQSJ9.e30.c2ln".into());
        assert!(!format!("{a:?}").contains("eyJ"));
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            "\"eyJhbGciOiJFZERTQSJ9.e30.c2ln\""
        );
    }
}
