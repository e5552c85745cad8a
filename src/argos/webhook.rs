//! Parsing ARGOS webhooks (reference §4, §5). ARGOS signs nothing, so this only reads; the
//! receiver authenticates the request (path secret, source IP) and results are pull-verified.
//!
//! * Keys are matched case-insensitively; ids may sit at the top level or under `data`. This
//!   covers the three documented `faceAuth` shapes (§4.2 a, b, c).
//! * `token_expired` (§4.3) and ID Check `approved` (§5) are recognised; any other trigger is
//!   returned as [`WebhookEvent::Other`].
//! * Secure Data Transfer bodies (§1.6, §4.4): AES-256-CBC, key SHA-256(API key), zero IV,
//!   PKCS#7, base64, in either envelope `{"data": "<b64>"}` or `{"response": {"body": "<b64>"}}`.

use serde_json::Value;

use super::client::{lowercase_keys, text};
use super::crypto::QueryCipher;

/// A recognised webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// A FaceAuth result (to be pull-verified).
    FaceAuth {
        /// ARGOS authentication id (`Authentication_id` / `auth_id`).
        auth_id: String,
        /// The FaceAuth `token` (`Token_id`): the gateway's link id.
        token_id: Option<String>,
        /// `Auth_Status` as sent (never trusted on its own).
        auth_status: Option<String>,
    },
    /// A token expired at ARGOS.
    TokenExpired {
        /// The token (link id).
        token_id: String,
        /// `faceAuth` or `idCheck`.
        service: String,
    },
    /// An ID Check submission was approved: a user → sid mapping.
    Approved {
        /// `userid`.
        user_id: String,
        /// `submission_id`.
        submission_id: String,
    },
    /// Any other trigger (acknowledged, counted).
    Other {
        /// The trigger name, lowercased (empty if none).
        trigger: String,
    },
}

/// Why a body is not a webhook.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// Not JSON, or an encrypted envelope no configured key decrypts.
    #[error("{0}")]
    Malformed(&'static str),
}

fn field(v: &Value, names: &[&str]) -> Option<String> {
    for scope in [Some(v), v.get("data")] {
        let Some(obj) = scope.and_then(Value::as_object) else {
            continue;
        };
        if let Some(found) = names.iter().find_map(|n| text(obj.get(*n))) {
            return Some(found);
        }
    }
    None
}

fn envelope(v: &Value) -> Option<&str> {
    if v.get("webhook_trigger").is_some() {
        return None;
    }
    v.get("data")
        .and_then(Value::as_str)
        .or_else(|| v.get("response")?.get("body")?.as_str())
}

/// Parses a webhook body; `ciphers` are the AES-256-CBC ciphers to try on an encrypted
/// envelope (Add-on key, then ID Check key).
///
/// Errors: [`WebhookError::Malformed`].
pub fn parse(body: &[u8], ciphers: &[&QueryCipher]) -> Result<WebhookEvent, WebhookError> {
    let mut v: Value = serde_json::from_slice(body)
        .map(lowercase_keys)
        .map_err(|_| WebhookError::Malformed("the body is not JSON"))?;
    if let Some(encrypted) = envelope(&v) {
        // Padding alone is weak evidence of the right key (1 in 256 wrong keys pass it), so a
        // key counts only if the plaintext is JSON too.
        v = ciphers
            .iter()
            .filter_map(|c| c.decrypt(encrypted).ok())
            .find_map(|plain| serde_json::from_slice::<Value>(&plain).ok())
            .map(lowercase_keys)
            .ok_or(WebhookError::Malformed(
                "the encrypted body does not decrypt to JSON with any configured key",
            ))?;
    }
    if !v.is_object() {
        return Err(WebhookError::Malformed("the body is not a JSON object"));
    }
    let trigger = field(&v, &["webhook_trigger"])
        .unwrap_or_default()
        .to_ascii_lowercase();
    let auth_id = field(&v, &["authentication_id", "auth_id", "authid"]);
    if auth_id.as_ref().is_some_and(|a| a.len() > 256) {
        return Err(WebhookError::Malformed(
            "the authentication id is longer than 256 bytes",
        ));
    }
    match (trigger.as_str(), auth_id) {
        ("faceauth", Some(auth_id)) | ("", Some(auth_id)) => Ok(WebhookEvent::FaceAuth {
            auth_id,
            token_id: field(&v, &["token_id", "tokenid"]),
            auth_status: field(&v, &["auth_status"]),
        }),
        ("token_expired", _) => match field(&v, &["token_id", "tokenid"]) {
            Some(token_id) => Ok(WebhookEvent::TokenExpired {
                token_id,
                service: field(&v, &["service"]).unwrap_or_default(),
            }),
            None => Ok(WebhookEvent::Other { trigger }),
        },
        ("approved", _) => match (
            field(&v, &["userid", "user_id"]),
            field(&v, &["submission_id"]),
        ) {
            (Some(user_id), Some(submission_id)) => Ok(WebhookEvent::Approved {
                user_id,
                submission_id,
            }),
            _ => Ok(WebhookEvent::Other { trigger }),
        },
        _ => Ok(WebhookEvent::Other { trigger }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::argos::crypto::Encryption;
    use secrecy::{ExposeSecret, SecretString};

    fn faceauth(auth: &str, token: Option<&str>) -> WebhookEvent {
        WebhookEvent::FaceAuth {
            auth_id: auth.into(),
            token_id: token.map(Into::into),
            auth_status: Some("approved".into()),
        }
    }

    #[test]
    fn three_documented_faceauth_shapes() {
        let a = br#"{"webhook_trigger":"faceAuth","auth_id":"A1","data":{"submission_id":"s","auth_status":"approved","user_id":"u"}}"#;
        assert_eq!(parse(a, &[]).unwrap(), faceauth("A1", None));
        let b = br#"{"Authentication_id":"A2","data":{"Submission_id":"s","Auth_Status":"approved","User_id":"u"}}"#;
        assert_eq!(parse(b, &[]).unwrap(), faceauth("A2", None));
        let c = br#"{ "webhook_trigger" : "faceAuth", "data" : { "Auth_Status" : "approved", "Token_id" : "t\u002d1", "Authentication_id" : "A3" } }"#;
        assert_eq!(parse(c, &[]).unwrap(), faceauth("A3", Some("t-1")));
    }

    #[test]
    fn other_triggers() {
        let t = br#"{"webhook_trigger":"token_expired","token_id":"t","expired_condition":"count","service":"faceAuth"}"#;
        assert_eq!(
            parse(t, &[]).unwrap(),
            WebhookEvent::TokenExpired {
                token_id: "t".into(),
                service: "faceAuth".into()
            }
        );
        let ap = br#"{"webhook_trigger":"approved","submission_id":"s9","userid":"u9","kyc_result":{"status":"approved"}}"#;
        assert_eq!(
            parse(ap, &[]).unwrap(),
            WebhookEvent::Approved {
                user_id: "u9".into(),
                submission_id: "s9".into()
            }
        );
        assert_eq!(
            parse(br#"{"webhook_trigger":"aml"}"#, &[]).unwrap(),
            WebhookEvent::Other {
                trigger: "aml".into()
            }
        );
        assert!(parse(b"[1]", &[]).is_err());
        assert!(parse(b"nope", &[]).is_err());
    }

    #[test]
    fn encrypted_envelopes() {
        let key = SecretString::from("hook-key");
        let cbc = QueryCipher::new(Encryption::Aes256Cbc, &key).unwrap();
        let inner = cbc.encrypt(
            br#"{"webhook_trigger":"faceAuth","data":{"Authentication_id":"E1","Token_id":"t"}}"#,
        );
        let env1 = format!(r#"{{"data":"{}"}}"#, inner.expose_secret());
        let env2 = format!(r#"{{"response":{{"body":"{}"}}}}"#, inner.expose_secret());
        for env in [env1, env2] {
            match parse(env.as_bytes(), &[&cbc]).unwrap() {
                WebhookEvent::FaceAuth { auth_id, .. } => assert_eq!(auth_id, "E1"),
                other => panic!("{other:?}"),
            }
        }
        let wrong = QueryCipher::new(Encryption::Aes256Cbc, &SecretString::from("other")).unwrap();
        assert!(parse(
            format!(r#"{{"data":"{}"}}"#, inner.expose_secret()).as_bytes(),
            &[&wrong]
        )
        .is_err());
    }
}
