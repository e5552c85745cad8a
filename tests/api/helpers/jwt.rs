//! Tokens signed by the test: user JWTs (HS256), service JWTs, keys of every supported family
//! and their JWKS.

use super::now_secs;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const ISSUER: &str = "https://idp.test/";
pub const AUDIENCE: &str = "faceauth-gateway-tests";
pub const HS_SECRET: &str = "test-hs256-secret-0123456789abcdef-0123456789";

/// Claims of a valid user token, to be altered by tests.
pub fn claims(sub: &str) -> Value {
    let now = now_secs();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
        "argos_sid": format!("sid-of-{sub}"),
        "email": format!("{sub}@example.test"),
    })
}

pub fn sign_hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .unwrap()
}

pub fn user_jwt(sub: &str) -> String {
    sign_hs256(&claims(sub))
}

/// The service-credential audience of the results and erasure tests.
pub const SERVICE_AUDIENCE: &str = "faceauth-service";

/// A service JWT (HS256, [`SERVICE_AUDIENCE`]) with `scopes`.
pub fn service_jwt(scopes: &str) -> String {
    let mut c = claims("session-layer");
    c["aud"] = SERVICE_AUDIENCE.into();
    c["scope"] = scopes.into();
    c.as_object_mut().unwrap().remove("argos_sid");
    sign_hs256(&c)
}

/// A signing key of any supported family with its public JWK.
pub struct TestKey {
    pub alg: jsonwebtoken::Algorithm,
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    pub fn generate(alg: Algorithm, kid: &str) -> TestKey {
        use openssl::bn::BigNumContext;
        use openssl::ec::{EcGroup, EcKey};
        use openssl::nid::Nid;
        use openssl::pkey::PKey;
        let (encoding, mut jwk) = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => {
                let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
                let jwk = json!({"kty": "RSA", "n": b64url(&rsa.n().to_vec()), "e": b64url(&rsa.e().to_vec())});
                (
                    EncodingKey::from_rsa_pem(&rsa.private_key_to_pem().unwrap()).unwrap(),
                    jwk,
                )
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let (nid, crv, size) = if alg == Algorithm::ES256 {
                    (Nid::X9_62_PRIME256V1, "P-256", 32)
                } else {
                    (Nid::SECP384R1, "P-384", 48)
                };
                let group = EcGroup::from_curve_name(nid).unwrap();
                let ec = EcKey::generate(&group).unwrap();
                let mut ctx = BigNumContext::new().unwrap();
                let mut x = openssl::bn::BigNum::new().unwrap();
                let mut y = openssl::bn::BigNum::new().unwrap();
                ec.public_key()
                    .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
                    .unwrap();
                let jwk = json!({"kty": "EC", "crv": crv,
                    "x": b64url(&x.to_vec_padded(size).unwrap()),
                    "y": b64url(&y.to_vec_padded(size).unwrap())});
                let pkey = PKey::from_ec_key(ec).unwrap();
                (
                    EncodingKey::from_ec_pem(&pkey.private_key_to_pem_pkcs8().unwrap()).unwrap(),
                    jwk,
                )
            }
            Algorithm::EdDSA => {
                let pkey = PKey::generate_ed25519().unwrap();
                let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(&pkey.raw_public_key().unwrap())});
                (
                    EncodingKey::from_ed_pem(&pkey.private_key_to_pem_pkcs8().unwrap()).unwrap(),
                    jwk,
                )
            }
            other => panic!("no test key for {other:?}"),
        };
        jwk["kid"] = kid.into();
        jwk["alg"] = serde_json::to_value(alg).unwrap();
        jwk["use"] = "sig".into();
        TestKey {
            alg,
            kid: kid.into(),
            encoding,
            jwk,
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}
