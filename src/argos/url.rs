//! FaceAuth plaintext and URL building.
//!
//! Source: `docs/argos-faceauth-reference.md` §2.1 (ARGOS Add-on overview, S1):
//! `…/face-auth?pid={faceAuth_projectId}&encrypted={encrypted}`, where the encrypted plaintext
//! carries `sid` (required), `authUserId`, `authCf1..3` and `token`.
//!
//! Which plaintext the FaceAuth page accepts is an open question (§1.7, [L]): the overview shows
//! a query string `sid=…&authUserId=…&token=…`, the Liveform docs a JSON object. Both are
//! offered ([`PlaintextFormat`]); the default is `query`, the form the FaceAuth page itself
//! documents.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;

use super::crypto::QueryCipher;

/// Everything except the RFC 3986 unreserved characters (`ALPHA DIGIT - . _ ~`) is
/// percent-encoded; a space becomes `%20`, never `+`.
pub const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The plaintext layout inside `encrypted`. Config values: `query` (default) or `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PlaintextFormat {
    /// `sid=…&authUserId=…[&authCf1=…][&authCf2=…][&authCf3=…]&token=…`, each value
    /// percent-encoded with [`QUERY_VALUE`].
    #[default]
    Query,
    /// A compact JSON object with the same keys in the same order; absent `authCf*` omitted.
    Json,
}

impl fmt::Display for PlaintextFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlaintextFormat::Query => "query",
            PlaintextFormat::Json => "json",
        })
    }
}

/// The values FaceAuth receives inside `encrypted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaceAuthParams {
    /// The approved ID Check submission id (`sid`), resolved server-side.
    pub sid: String,
    /// The app's user id (`authUserId`).
    #[serde(rename = "authUserId")]
    pub auth_user_id: String,
    /// Free extra values `authCf1`..`authCf3`, each optional.
    #[serde(rename = "authCf1", skip_serializing_if = "Option::is_none", default)]
    pub auth_cf1: Option<String>,
    /// See `auth_cf1`.
    #[serde(rename = "authCf2", skip_serializing_if = "Option::is_none", default)]
    pub auth_cf2: Option<String>,
    /// See `auth_cf1`.
    #[serde(rename = "authCf3", skip_serializing_if = "Option::is_none", default)]
    pub auth_cf3: Option<String>,
    /// The single-use token: the gateway's link id.
    pub token: String,
}

impl FaceAuthParams {
    /// Builds the plaintext in `format`. UTF-8 bytes; never fails.
    pub fn plaintext(&self, format: PlaintextFormat) -> String {
        match format {
            PlaintextFormat::Query => {
                let mut out = String::with_capacity(64 + self.sid.len() + self.auth_user_id.len());
                let mut push = |key: &str, value: &str| {
                    if !out.is_empty() {
                        out.push('&');
                    }
                    out.push_str(key);
                    out.push('=');
                    out.extend(utf8_percent_encode(value, QUERY_VALUE));
                };
                push("sid", &self.sid);
                push("authUserId", &self.auth_user_id);
                for (key, value) in [
                    ("authCf1", &self.auth_cf1),
                    ("authCf2", &self.auth_cf2),
                    ("authCf3", &self.auth_cf3),
                ] {
                    if let Some(value) = value {
                        push(key, value);
                    }
                }
                push("token", &self.token);
                out
            }
            // Serialising a struct of strings cannot fail.
            PlaintextFormat::Json => serde_json::to_string(self).unwrap_or_default(),
        }
    }
}

/// Builds FaceAuth URLs for one configured form URL, project id, cipher and plaintext format.
///
/// The URL it returns always begins with the configured form URL: nothing a client sends can
/// change the scheme, host or path (no open redirect).
#[derive(Debug, Clone)]
pub struct FaceAuthUrlBuilder {
    /// `form_url` with `?pid=<pid>&encrypted=` (or `&pid=` when the form URL has a query).
    prefix: String,
    cipher: QueryCipher,
    format: PlaintextFormat,
}

impl FaceAuthUrlBuilder {
    /// `form_url` must be an absolute `http(s)` URL without a fragment (validated in config).
    pub fn new(
        form_url: &url::Url,
        project_id: &str,
        cipher: QueryCipher,
        format: PlaintextFormat,
    ) -> Self {
        let mut prefix = form_url.as_str().to_string();
        prefix.push(if form_url.query().is_some() { '&' } else { '?' });
        prefix.push_str("pid=");
        prefix.extend(utf8_percent_encode(project_id, QUERY_VALUE));
        prefix.push_str("&encrypted=");
        FaceAuthUrlBuilder {
            prefix,
            cipher,
            format,
        }
    }

    /// The full FaceAuth URL for `params`: `<form_url>?pid=<pid>&encrypted=<percent-encoded
    /// ciphertext>`. A secret: it lets anyone start this user's FaceAuth session.
    pub fn build(&self, params: &FaceAuthParams) -> SecretString {
        let encrypted = self
            .cipher
            .encrypt(params.plaintext(self.format).as_bytes());
        let mut url =
            String::with_capacity(self.prefix.len() + encrypted.expose_secret().len() * 3 / 2);
        url.push_str(&self.prefix);
        url.extend(utf8_percent_encode(encrypted.expose_secret(), QUERY_VALUE));
        SecretString::from(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> FaceAuthParams {
        FaceAuthParams {
            sid: "sub123".into(),
            auth_user_id: "u1".into(),
            auth_cf1: None,
            auth_cf2: None,
            auth_cf3: None,
            token: "tok_abcdefgh".into(),
        }
    }

    #[test]
    fn query_plaintext_matches_reference_vector() {
        assert_eq!(
            params().plaintext(PlaintextFormat::Query),
            "sid=sub123&authUserId=u1&token=tok_abcdefgh"
        );
    }

    #[test]
    fn json_plaintext_matches_reference_vector() {
        assert_eq!(
            params().plaintext(PlaintextFormat::Json),
            r#"{"sid":"sub123","authUserId":"u1","token":"tok_abcdefgh"}"#
        );
    }

    #[test]
    fn query_values_are_percent_encoded_without_plus() {
        let mut p = params();
        p.auth_user_id = "😀 &=+".into();
        p.sid = "x".into();
        p.token = "t".into();
        assert_eq!(
            p.plaintext(PlaintextFormat::Query),
            "sid=x&authUserId=%F0%9F%98%80%20%26%3D%2B&token=t"
        );
    }

    #[test]
    fn cf_values_appear_in_order_only_when_present() {
        let mut p = params();
        p.auth_cf3 = Some("c".into());
        p.auth_cf1 = Some("someone@example.test".into());
        assert_eq!(
            p.plaintext(PlaintextFormat::Query),
            "sid=sub123&authUserId=u1&authCf1=someone%40example.test&authCf3=c&token=tok_abcdefgh"
        );
    }
}
