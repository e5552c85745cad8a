//! Typed client for the ARGOS REST API (reference §3, §5): `GET /v3/faceauth?authId=…` with the
//! Add-on key and `GET /v3/submission?userid=…` with the ID Check project key, both sent as
//! `x-api-key`. Every attempt has a connect and a total timeout; timeouts, connection errors,
//! `429` and `5xx` are retried `argos.api_retries` times with exponential backoff.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::Duration;
use tracing::Instrument;

/// Why an ARGOS call failed. Carries no key material.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ArgosError {
    /// Not reachable, timed out, or `5xx`/`429` after every retry.
    #[error("ARGOS unavailable: {0}")]
    Unavailable(String),
    /// A `4xx` answer (bad key, unknown project): retrying the same call will not help.
    #[error("ARGOS refused the request with status {0}")]
    Refused(u16),
    /// The answer was not the JSON the docs describe.
    #[error("unexpected ARGOS answer: {0}")]
    Malformed(String),
    /// The key this call needs is not configured.
    #[error("no {0} configured")]
    NoKey(&'static str),
}

/// ARGOS's `auth_status` of a FaceAuth record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStatus {
    /// `approved` (any casing).
    Approved,
    /// `rejected` (any casing).
    Rejected,
    /// Anything else: not final (yet).
    Pending,
}

impl AuthStatus {
    fn parse(s: &str) -> Self {
        if s.eq_ignore_ascii_case("approved") {
            AuthStatus::Approved
        } else if s.eq_ignore_ascii_case("rejected") {
            AuthStatus::Rejected
        } else {
            AuthStatus::Pending
        }
    }
}

/// One FaceAuth record from `GET /v3/faceauth` (fields per reference §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceAuthRecord {
    /// `auth_id`.
    pub auth_id: String,
    /// `auth_status`.
    pub auth_status: AuthStatus,
    /// `kyc_submission_id`: the submission the selfie was compared with.
    pub kyc_submission_id: Option<String>,
    /// `create_time` as Unix milliseconds, when it parses as RFC 3339 (ARGOS's time of the
    /// FaceAuth).
    pub created_at_ms: Option<i64>,
    /// The `authUserId` the FaceAuth URL carried, if ARGOS returns it (`auth_user_id`).
    pub auth_user_id: Option<String>,
    /// The `token` the FaceAuth URL carried, if ARGOS returns it (`token_id` / `token`).
    pub token_id: Option<String>,
}

/// What `DELETE /v3/faceauth?authId=…` did (reference §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// `2xx`: the selfie and personal data are gone (ARGOS keeps `auth_id`, `auth_status` and
    /// the time).
    Deleted,
    /// ARGOS does not know the record (`Cannot find submission. Please check input data.`, or
    /// `404`).
    NotFound,
    /// Refused with an error code (ARGOS's `errorCode`, else `http_<status>`); `retryable` for
    /// the codes that name a failure on ARGOS's side (`error in processing data`,
    /// `error in delete submission`).
    Failed {
        /// ARGOS's error code (at most 128 characters, control characters removed).
        code: String,
        /// Whether trying again may help.
        retryable: bool,
    },
}

/// Reads a `DELETE /v3/faceauth` refusal: `status` and the body `{"errorCode": …}`.
pub fn deletion_refused(status: u16, body: &[u8]) -> Deletion {
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .map(lowercase_keys)
        .and_then(|v| text(v.get("errorcode")).or_else(|| text(v.get("message"))))
        .map(|c| {
            c.chars()
                .filter(|ch| !ch.is_control())
                .take(128)
                .collect::<String>()
        })
        .filter(|c| !c.is_empty());
    let lower = code.as_deref().unwrap_or("").to_ascii_lowercase();
    if status == 404 || lower.starts_with("cannot find submission") {
        return Deletion::NotFound;
    }
    let retryable = lower == "error in processing data" || lower == "error in delete submission";
    Deletion::Failed {
        code: code.unwrap_or_else(|| format!("http_{status}")),
        retryable,
    }
}

/// Lowercases every object key, recursively (ARGOS's casing drifts between doc versions).
pub fn lowercase_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), lowercase_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

/// A string or number field as a string.
pub fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_time_ms(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Finds the record for `auth_id` anywhere in a `GET /v3/faceauth` answer (the newer wrapper
/// `[{faceAuth_projectId, data: [...]}]`, a bare array, or a single object).
pub fn find_faceauth(answer: &Value, auth_id: &str) -> Option<FaceAuthRecord> {
    match answer {
        Value::Array(items) => items.iter().find_map(|i| find_faceauth(i, auth_id)),
        Value::Object(map) => {
            if text(map.get("auth_id")).as_deref() == Some(auth_id) {
                return Some(FaceAuthRecord {
                    auth_id: auth_id.to_string(),
                    auth_status: AuthStatus::parse(&text(map.get("auth_status"))?),
                    kyc_submission_id: text(map.get("kyc_submission_id")),
                    created_at_ms: text(map.get("create_time")).and_then(|t| parse_time_ms(&t)),
                    auth_user_id: text(map.get("auth_user_id"))
                        .or_else(|| text(map.get("authuserid"))),
                    token_id: text(map.get("token_id")).or_else(|| text(map.get("token"))),
                });
            }
            map.values().find_map(|v| find_faceauth(v, auth_id))
        }
        _ => None,
    }
}

/// The newest approved submission in a `GET /v3/submission` answer (`{"Items": [...]}`):
/// `kyc.result` compared case-insensitively, newest by `created_at`.
pub fn newest_approved(answer: &Value) -> Option<String> {
    let items = answer.get("items")?.as_array()?;
    items
        .iter()
        .filter(|i| {
            i.get("kyc")
                .and_then(|k| k.get("result"))
                .and_then(Value::as_str)
                .is_some_and(|r| r.eq_ignore_ascii_case("approved"))
        })
        .filter_map(|i| {
            Some((
                text(i.get("created_at")).unwrap_or_default(),
                text(i.get("submission_id"))?,
            ))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, id)| id)
}

/// The ARGOS REST client. Cheap to clone.
#[derive(Clone)]
pub struct ArgosClient {
    http: reqwest::Client,
    base: url::Url,
    addon_key: Option<SecretString>,
    idcheck_key: Option<SecretString>,
    retries: u32,
}

/// Where the ARGOS REST API is and how it is called (`[argos]`).
#[derive(Clone)]
pub struct ArgosApi {
    /// Base URL.
    pub base_url: url::Url,
    /// Add-on API key (secret).
    pub addon_key: Option<SecretString>,
    /// ID Check project API key (secret).
    pub idcheck_key: Option<SecretString>,
    /// Connect timeout per attempt, milliseconds.
    pub connect_timeout_ms: u64,
    /// Total timeout per attempt, milliseconds.
    pub timeout_ms: u64,
    /// Retries after the first attempt on timeouts and 5xx.
    pub retries: u32,
}

impl std::fmt::Debug for ArgosClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgosClient")
            .field("base", &self.base.as_str())
            .field("keys", &"[REDACTED]")
            .finish()
    }
}

impl ArgosClient {
    /// A client for `api`, reaching the network as `outbound` says (no ambient proxy).
    /// Errors: a description if the HTTP client cannot be built.
    pub fn new(api: ArgosApi, outbound: &crate::outbound::Outbound) -> Result<Self, String> {
        let http = outbound
            .builder()
            .connect_timeout(Duration::from_millis(api.connect_timeout_ms))
            .timeout(Duration::from_millis(api.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("faceauth-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ArgosClient {
            http,
            base: api.base_url,
            addon_key: api.addon_key,
            idcheck_key: api.idcheck_key,
            retries: api.retries,
        })
    }

    /// The FaceAuth record `auth_id` from `GET /v3/faceauth?authId=…` (Add-on key), or
    /// `None` when ARGOS does not list it (yet).
    /// Errors: [`ArgosError`].
    pub async fn faceauth(&self, auth_id: &str) -> Result<Option<FaceAuthRecord>, ArgosError> {
        let key = self
            .addon_key
            .as_ref()
            .ok_or(ArgosError::NoKey("argos.api_key"))?;
        let answer = self
            .get("/v3/faceauth", &[("authId", auth_id)], key)
            .await?;
        Ok(find_faceauth(&answer, auth_id))
    }

    /// The newest approved submission id of `user_id` from `GET /v3/submission?userid=…`
    /// (ID Check project key). Errors: [`ArgosError`].
    pub async fn approved_submission(&self, user_id: &str) -> Result<Option<String>, ArgosError> {
        let key = self
            .idcheck_key
            .as_ref()
            .ok_or(ArgosError::NoKey("argos.idcheck_api_key"))?;
        let answer = self
            .get(
                "/v3/submission",
                &[("userid", user_id), ("request_type", "kyc")],
                key,
            )
            .await?;
        Ok(newest_approved(&answer))
    }

    /// The owner (`userid`) of submission `submission_id` and whether it is approved, from
    /// `GET /v3/submission?submission_id=…` (ID Check key). `None` if ARGOS does not know it.
    /// Errors: [`ArgosError`].
    pub async fn submission_owner(
        &self,
        submission_id: &str,
    ) -> Result<Option<(String, bool)>, ArgosError> {
        let key = self
            .idcheck_key
            .as_ref()
            .ok_or(ArgosError::NoKey("argos.idcheck_api_key"))?;
        let answer = self
            .get("/v3/submission", &[("submission_id", submission_id)], key)
            .await?;
        let item = answer
            .get("items")
            .and_then(Value::as_array)
            .and_then(|items| {
                items
                    .iter()
                    .find(|i| text(i.get("submission_id")).as_deref() == Some(submission_id))
            });
        Ok(item.and_then(|i| {
            let owner = text(i.get("userid"))?;
            let approved = i
                .get("kyc")
                .and_then(|k| k.get("result"))
                .and_then(Value::as_str)
                .is_some_and(|r| r.eq_ignore_ascii_case("approved"));
            Some((owner, approved))
        }))
    }

    /// Deletes the FaceAuth record `auth_id` (selfie and personal data) with
    /// `DELETE /v3/faceauth?authId=…` and the Add-on key, one record per call (reference §3.5).
    /// Timeouts, connection errors, `429` and `5xx` are retried like every call.
    /// Errors: [`ArgosError::Unavailable`] after the retries, [`ArgosError::NoKey`].
    pub async fn delete_faceauth(&self, auth_id: &str) -> Result<Deletion, ArgosError> {
        let key = self
            .addon_key
            .as_ref()
            .ok_or(ArgosError::NoKey("argos.api_key"))?;
        let mut url = self.base.clone();
        url.set_path(&format!(
            "{}/v3/faceauth",
            self.base.path().trim_end_matches('/')
        ));
        url.query_pairs_mut().append_pair("authId", auth_id);
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * (1 << (attempt - 1).min(5)))).await;
            }
            let sent = self
                .http
                .delete(url.clone())
                .header("x-api-key", key.expose_secret())
                .header("accept", "application/json")
                .send()
                .await;
            let res = match sent {
                Ok(res) => res,
                Err(e) => {
                    last = if e.is_timeout() {
                        "timeout".into()
                    } else {
                        "connection failed".into()
                    };
                    continue;
                }
            };
            let status = res.status();
            // A redirect is not followed and, like a 5xx, counts as a failed attempt (retried
            // until the erasure's deadline), never as ARGOS's final answer.
            if status.is_server_error() || status.as_u16() == 429 || status.is_redirection() {
                last = format!("status {status}");
                continue;
            }
            if status.is_success() {
                return Ok(Deletion::Deleted);
            }
            let body = res.bytes().await.unwrap_or_default();
            return Ok(deletion_refused(status.as_u16(), &body));
        }
        Err(ArgosError::Unavailable(last))
    }

    async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
        key: &SecretString,
    ) -> Result<Value, ArgosError> {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
        url.query_pairs_mut().extend_pairs(query);
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * (1 << (attempt - 1).min(5)))).await;
            }
            let span = crate::telemetry::client_span("argos", operation(path));
            let sent = async {
                crate::telemetry::inject(
                    self.http
                        .get(url.clone())
                        .header("x-api-key", key.expose_secret())
                        .header("accept", "application/json"),
                )
                .send()
                .await
            }
            .instrument(span.clone())
            .await;
            if let Ok(res) = &sent {
                span.record("http.response.status_code", res.status().as_u16());
            }
            let res = match sent {
                Ok(res) => res,
                Err(e) => {
                    last = if e.is_timeout() {
                        "timeout".into()
                    } else {
                        "connection failed".into()
                    };
                    continue;
                }
            };
            let status = res.status();
            if status.is_server_error() || status.as_u16() == 429 {
                last = format!("status {status}");
                continue;
            }
            if !status.is_success() {
                return Err(ArgosError::Refused(status.as_u16()));
            }
            let body = res
                .bytes()
                .await
                .map_err(|_| ArgosError::Unavailable("body not read".into()))?;
            let value: Value =
                serde_json::from_slice(&body).map_err(|e| ArgosError::Malformed(e.to_string()))?;
            return Ok(lowercase_keys(value));
        }
        Err(ArgosError::Unavailable(last))
    }
}

/// The span name of an ARGOS call: its method and path template (no query, no ids).
fn operation(path: &str) -> &'static str {
    match path {
        "/v3/faceauth" => "GET /v3/faceauth",
        "/v3/submission" => "GET /v3/submission",
        _ => "GET argos",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_records_in_every_documented_shape() {
        let newer = lowercase_keys(json!([{"faceAuth_projectId": "p", "data": [
            {"auth_id": "a1", "auth_status": "rejected"},
            {"auth_id": "a2", "auth_status": "Approved", "kyc_submission_id": "s", "create_time": "2023-08-08T07:04:48.633Z"}
        ]}]));
        let r = find_faceauth(&newer, "a2").unwrap();
        assert_eq!(r.auth_status, AuthStatus::Approved);
        assert_eq!(r.kyc_submission_id.as_deref(), Some("s"));
        assert_eq!(r.created_at_ms, Some(1_691_478_288_633));
        let older = lowercase_keys(json!([{"AUTH_ID": "a3", "auth_status": "approved"}]));
        assert!(find_faceauth(&older, "a3").is_some());
        assert!(find_faceauth(&older, "zz").is_none());
    }

    #[test]
    fn deletion_refusals() {
        let body = br#"{"errorCode":"Cannot find submission. Please check input data."}"#;
        assert_eq!(deletion_refused(400, body), Deletion::NotFound);
        assert_eq!(deletion_refused(404, b""), Deletion::NotFound);
        assert_eq!(
            deletion_refused(400, br#"{"errorCode":"error in delete submission"}"#),
            Deletion::Failed {
                code: "error in delete submission".into(),
                retryable: true
            }
        );
        assert_eq!(
            deletion_refused(403, b"<html>"),
            Deletion::Failed {
                code: "http_403".into(),
                retryable: false
            }
        );
    }

    #[test]
    fn newest_approved_submission() {
        let answer = lowercase_keys(json!({"Items": [
            {"submission_id": "old", "created_at": "2024-01-01T00:00:00Z", "kyc": {"result": "approved"}},
            {"submission_id": "new", "created_at": "2025-01-01T00:00:00Z", "kyc": {"result": "Approved"}},
            {"submission_id": "newest-rejected", "created_at": "2026-01-01T00:00:00Z", "kyc": {"result": "rejected"}}
        ]}));
        assert_eq!(newest_approved(&answer).as_deref(), Some("new"));
        assert_eq!(newest_approved(&json!({"items": []})), None);
    }
}
