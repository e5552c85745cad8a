//! Single-use FaceAuth links: ids, records and the token state machine.
//!
//! A link id is a UUID v4 (122 random bits). It is both the capability in `/l/{id}` and the
//! FaceAuth `token` inside `encrypted`, so ARGOS's own token-expiration check and the gateway's
//! agree on which token is which.
//!
//! State machine (ARGOS "token expiration condition", reference §2.3, [H]):
//!
//! ```text
//!            count: first open                 retention_secs
//!   issued ───────────────────────────▶ used ───────────────▶ (deleted)
//!     │      time: first open           window_secs          retention_secs
//!     ├────────────────────────▶ opened ──────────▶ expired ───────────────▶ (deleted)
//!     │  unopened_ttl_secs                           ▲
//!     └──────────────────────────────────────────────┘
//! ```
//!
//! Any state can also become `revoked` (owner's `DELETE`, or a newer link for the same user
//! while this one was never opened, `links.single_active`); a revoked record is kept
//! `retention_secs`.
//!
//! `expired` is never written: it is derived from `expires_at` and the store's clock. Every
//! transition happens inside one atomic store operation ([`crate::store::LinkStore::open`]).
//!
//! A link minted with the confirm step (`links.confirm_step` or `{"confirm_step": true}`) is
//! only consumed by `POST /l/{id}`; `GET` shows a page with a button (link scanners and chat
//! previews fetch URLs with `GET`).
//!
//! This module is the pure model: it names no other module of the crate except in docs, so
//! the store (below) and [`crate::links`] (above, the service and the issuing pipeline) both
//! build on it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A link id: a UUID v4 in canonical lowercase hyphenated form (36 ASCII characters).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId(uuid::Uuid);

impl LinkId {
    /// A fresh random id: 122 random bits from a CSPRNG seeded by the OS (uuid `fast-rng`).
    pub fn random() -> Self {
        LinkId(uuid::Uuid::new_v4())
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Link ids are capabilities: `Debug` shows only their first 8 characters.
impl fmt::Debug for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.hyphenated().to_string();
        write!(f, "LinkId({}…)", &s[..8])
    }
}

/// The text is not a canonical UUID v4.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a link id")]
pub struct MalformedLinkId;

impl FromStr for LinkId {
    type Err = MalformedLinkId;

    /// Accepts only the canonical form the gateway hands out (lowercase, hyphenated, v4).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 36 {
            return Err(MalformedLinkId);
        }
        let uuid = uuid::Uuid::try_parse(s).map_err(|_| MalformedLinkId)?;
        if uuid.get_version_num() != 4 || uuid.hyphenated().to_string() != s {
            return Err(MalformedLinkId);
        }
        Ok(LinkId(uuid))
    }
}

/// Which expiry rule a link follows; must match the FaceAuth project's "token expiration
/// condition" (reference §2.3). Config values: `count` (default) or `time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Expiry {
    /// Count-based: the token is spent by its first use.
    #[default]
    Count,
    /// Time-based: usable for a window that starts at first use.
    Time,
}

impl Expiry {
    /// The config/API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::Count => "count",
            Expiry::Time => "time",
        }
    }
}

/// The state of a link as callers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Minted, never opened.
    Issued,
    /// Time-based link opened at least once, inside its window.
    Opened,
    /// Count-based link opened once.
    Used,
    /// Never opened before `unopened_ttl_secs`, or a time window that has ended.
    Expired,
    /// Revoked by its owner or superseded by a newer link.
    Revoked,
}

/// The state as written in the store (`expired` is derived, never written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredState {
    /// Issued.
    #[serde(rename = "i")]
    Issued,
    /// Opened (time-based).
    #[serde(rename = "o")]
    Opened,
    /// Used (count-based).
    #[serde(rename = "u")]
    Used,
    /// Revoked.
    #[serde(rename = "r")]
    Revoked,
}

/// The stored record of one link. Compact field names: the Redis scripts read and write the
/// same JSON (`cjson`), so the names are part of the storage format.
///
/// Times are Unix milliseconds from the store's clock (Redis `TIME`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// Owner: the JWT user id, sent to FaceAuth as `authUserId`.
    #[serde(rename = "u")]
    pub user_id: String,
    /// The approved ID Check submission id (`sid`).
    #[serde(rename = "s")]
    pub sid: String,
    /// `authCf1`..`authCf3`.
    #[serde(rename = "c1", default, skip_serializing_if = "Option::is_none")]
    pub cf1: Option<String>,
    /// See `cf1`.
    #[serde(rename = "c2", default, skip_serializing_if = "Option::is_none")]
    pub cf2: Option<String>,
    /// See `cf1`.
    #[serde(rename = "c3", default, skip_serializing_if = "Option::is_none")]
    pub cf3: Option<String>,
    /// Expiry rule, fixed at mint (stored as `c` / `t`).
    #[serde(rename = "k", with = "expiry_code")]
    pub expiry: Expiry,
    /// Time-based window in milliseconds, fixed at mint (0 and omitted for count-based links).
    #[serde(
        rename = "w",
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "lua_number::u64"
    )]
    pub window_ms: u64,
    /// Stored state.
    #[serde(rename = "st")]
    pub state: StoredState,
    /// Mint time.
    #[serde(rename = "ca", deserialize_with = "lua_number::i64")]
    pub created_at_ms: i64,
    /// Issued: end of the unopened TTL. Opened: end of the window.
    #[serde(rename = "ea", deserialize_with = "lua_number::i64")]
    pub expires_at_ms: i64,
    /// First open.
    #[serde(
        rename = "oa",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lua_number::opt_i64"
    )]
    pub opened_at_ms: Option<i64>,
    /// Only `POST /l/{id}` (the confirm page's button) consumes this link.
    #[serde(rename = "cs", default, skip_serializing_if = "std::ops::Not::not")]
    pub confirm_step: bool,
    /// Opaque reference from the session layer (at most 256 bytes), echoed in results.
    #[serde(rename = "rf", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Pull-verified FaceAuth result: `approved` or `rejected`.
    #[serde(rename = "res", default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Outcome>,
    /// ARGOS authentication id of that result.
    #[serde(rename = "aid", default, skip_serializing_if = "Option::is_none")]
    pub auth_id: Option<String>,
    /// When the user did the FaceAuth (ARGOS `create_time`), Unix milliseconds.
    #[serde(
        rename = "va",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lua_number::opt_i64"
    )]
    pub verified_at_ms: Option<i64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The expiry rule in one letter (`c`, `t`): records stay small (issue 6's memory budget).
mod expiry_code {
    use super::Expiry;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(e: &Expiry, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match e {
            Expiry::Count => "c",
            Expiry::Time => "t",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Expiry, D::Error> {
        match String::deserialize(d)?.as_str() {
            "c" | "count" => Ok(Expiry::Count),
            "t" | "time" => Ok(Expiry::Time),
            other => Err(serde::de::Error::custom(format!(
                "unknown expiry `{other}`"
            ))),
        }
    }
}

/// Numbers written back by Redis's `cjson` (14 significant digits: large values come back in
/// exponent form, e.g. `2.534023008e14`) are read as floats and truncated to integers.
mod lua_number {
    use serde::{Deserialize, Deserializer};

    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        f64::deserialize(d).map(|f| f as i64)
    }

    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        f64::deserialize(d).map(|f| f.max(0.0) as u64)
    }

    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<f64>::deserialize(d).map(|o| o.map(|f| f as i64))
    }
}

/// A final, judged FaceAuth result (wire and storage spelling: `approved`, `rejected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A fresh, matched FaceAuth that ARGOS approved.
    Approved,
    /// Anything else that is final (see [`crate::verdict`]).
    Rejected,
}

impl Outcome {
    /// The wire spelling (log fields, metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approved => "approved",
            Outcome::Rejected => "rejected",
        }
    }
}

/// A pull-verified FaceAuth result for one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkResult {
    /// The verdict (see [`crate::verdict::judge`]).
    pub result: Outcome,
    /// ARGOS authentication id.
    pub auth_id: String,
    /// When the user did the FaceAuth, Unix milliseconds.
    pub verified_at_ms: i64,
}

/// What one open attempt does to a record (see [`LinkRecord::apply_open`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenStep {
    /// Allowed; write the record back with this key expiry (milliseconds).
    Write(u64),
    /// Allowed without a change (a reopen inside a time window).
    Unchanged,
    /// The link has the confirm step and this was not the confirming `POST`: nothing changes.
    NeedsConfirmation,
    /// Refused: `Used`, `Expired` or `Revoked`.
    Refused(LinkState),
}

impl LinkRecord {
    /// The state at `now_ms` (store clock).
    pub fn state_at(&self, now_ms: i64) -> LinkState {
        match self.state {
            StoredState::Used => LinkState::Used,
            StoredState::Revoked => LinkState::Revoked,
            StoredState::Issued | StoredState::Opened if now_ms >= self.expires_at_ms => {
                LinkState::Expired
            }
            StoredState::Issued => LinkState::Issued,
            StoredState::Opened => LinkState::Opened,
        }
    }

    /// Applies one open at `now_ms`; `confirmed` is true for the confirm page's `POST`. This is
    /// the reference for the store backends (the Redis Lua script mirrors it; the shared
    /// contract tests hold both to it). Mutates `self` only for [`OpenStep::Write`].
    pub fn apply_open(&mut self, now_ms: i64, retention_ms: u64, confirmed: bool) -> OpenStep {
        let state = self.state_at(now_ms);
        match state {
            LinkState::Used | LinkState::Expired | LinkState::Revoked => OpenStep::Refused(state),
            _ if self.confirm_step && !confirmed => OpenStep::NeedsConfirmation,
            LinkState::Opened => OpenStep::Unchanged,
            LinkState::Issued => {
                self.opened_at_ms = Some(now_ms);
                match self.expiry {
                    Expiry::Count => {
                        self.state = StoredState::Used;
                        OpenStep::Write(retention_ms)
                    }
                    Expiry::Time => {
                        self.state = StoredState::Opened;
                        self.expires_at_ms = now_ms.saturating_add(self.window_ms as i64);
                        OpenStep::Write(self.window_ms.saturating_add(retention_ms))
                    }
                }
            }
        }
    }

    /// Revokes a live (`issued` or `opened`) link; a used, expired or revoked one stays as it
    /// is. With `only_unopened`, only an `issued` link is revoked (superseding by a newer
    /// link). Returns whether it changed.
    pub fn revoke(&mut self, now_ms: i64, only_unopened: bool) -> bool {
        match self.state_at(now_ms) {
            LinkState::Issued => {}
            LinkState::Opened if !only_unopened => {}
            _ => return false,
        }
        self.state = StoredState::Revoked;
        true
    }
}

/// Lifetimes applied by the store, in milliseconds (from `links.*` config, given in seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkPolicy {
    /// Expiry rule for new links.
    pub expiry: Expiry,
    /// Time-based window after first open.
    pub window_ms: u64,
    /// A link never opened expires after this.
    pub unopened_ttl_ms: u64,
    /// How long used/expired records stay as tombstones.
    pub retention_ms: u64,
}

/// What a new link is for: resolved server-side from the verified JWT, never from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    /// Owner; sent as `authUserId`.
    pub user_id: String,
    /// Approved ID Check submission id (`sid`).
    pub sid: String,
    /// `authCf1`..`authCf3`.
    pub cf: [Option<String>; 3],
    /// Only the confirm page's `POST` consumes the link.
    pub confirm_step: bool,
    /// Opaque reference from the session layer (at most 256 bytes).
    pub reference: Option<String>,
}

impl NewLink {
    /// The `issued` record for this link minted at `now_ms` under `policy`.
    pub fn issued_record(&self, policy: &LinkPolicy, now_ms: i64) -> LinkRecord {
        let [cf1, cf2, cf3] = self.cf.clone();
        LinkRecord {
            user_id: self.user_id.clone(),
            sid: self.sid.clone(),
            cf1,
            cf2,
            cf3,
            expiry: policy.expiry,
            window_ms: match policy.expiry {
                Expiry::Count => 0,
                Expiry::Time => policy.window_ms,
            },
            state: StoredState::Issued,
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(policy.unopened_ttl_ms as i64),
            opened_at_ms: None,
            confirm_step: self.confirm_step,
            reference: self.reference.clone(),
            result: None,
            auth_id: None,
            verified_at_ms: None,
        }
    }

    /// The longest field sent to FaceAuth, by bytes, as named in the FaceAuth URL.
    pub fn longest_field(&self) -> (&'static str, usize) {
        let mut longest = ("sid", self.sid.len());
        let fields = [
            ("authUserId", Some(&self.user_id)),
            ("authCf1", self.cf[0].as_ref()),
            ("authCf2", self.cf[1].as_ref()),
            ("authCf3", self.cf[2].as_ref()),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                if v.len() > longest.1 {
                    longest = (name, v.len());
                }
            }
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expiry: Expiry) -> LinkRecord {
        LinkRecord {
            user_id: "u".into(),
            sid: "s".into(),
            cf1: None,
            cf2: None,
            cf3: None,
            expiry,
            window_ms: 1_000,
            state: StoredState::Issued,
            created_at_ms: 0,
            expires_at_ms: 10_000,
            opened_at_ms: None,
            confirm_step: false,
            reference: None,
            result: None,
            auth_id: None,
            verified_at_ms: None,
        }
    }

    #[test]
    fn link_id_accepts_only_canonical_v4() {
        let id = LinkId::random();
        assert_eq!(id.to_string().parse::<LinkId>().unwrap(), id);
        assert!(id.to_string().to_uppercase().parse::<LinkId>().is_err());
        assert!(id.to_string().replace('-', "").parse::<LinkId>().is_err());
        assert!("00000000-0000-1000-8000-000000000000"
            .parse::<LinkId>()
            .is_err());
        assert!("../../etc/passwd".parse::<LinkId>().is_err());
        assert!(!format!("{id:?}").contains(&id.to_string()));
    }

    #[test]
    fn numbers_in_exponent_form_are_read() {
        let json = r#"{"u":"u","s":"s","k":"t","w":6e5,"st":"u","ca":1.795e12,"ea":1795000900000,"oa":1.7950000001e12,"va":2.534023008e14}"#;
        let r: LinkRecord = serde_json::from_str(json).unwrap();
        assert_eq!(r.window_ms, 600_000);
        assert_eq!(r.created_at_ms, 1_795_000_000_000);
        assert_eq!(r.verified_at_ms, Some(253_402_300_800_000));
    }

    #[test]
    fn count_link_is_used_once() {
        let mut r = record(Expiry::Count);
        assert_eq!(r.apply_open(5, 100, false), OpenStep::Write(100));
        assert_eq!(r.state_at(6), LinkState::Used);
        assert_eq!(
            r.apply_open(6, 100, true),
            OpenStep::Refused(LinkState::Used)
        );
    }

    #[test]
    fn time_link_window_starts_at_first_open() {
        let mut r = record(Expiry::Time);
        assert_eq!(r.apply_open(5_000, 100, false), OpenStep::Write(1_100));
        assert_eq!(r.expires_at_ms, 6_000);
        assert_eq!(r.apply_open(5_999, 100, false), OpenStep::Unchanged);
        assert_eq!(
            r.apply_open(6_000, 100, false),
            OpenStep::Refused(LinkState::Expired)
        );
    }

    #[test]
    fn unopened_link_expires() {
        let mut r = record(Expiry::Count);
        assert_eq!(r.state_at(9_999), LinkState::Issued);
        assert_eq!(
            r.apply_open(10_000, 100, false),
            OpenStep::Refused(LinkState::Expired)
        );
    }

    #[test]
    fn confirm_step_needs_the_post() {
        let mut r = record(Expiry::Count);
        r.confirm_step = true;
        assert_eq!(r.apply_open(5, 100, false), OpenStep::NeedsConfirmation);
        assert_eq!(r.state, StoredState::Issued);
        assert_eq!(r.apply_open(5, 100, true), OpenStep::Write(100));
        assert_eq!(
            r.apply_open(6, 100, false),
            OpenStep::Refused(LinkState::Used)
        );
    }

    #[test]
    fn revocation() {
        let mut r = record(Expiry::Time);
        assert!(r.revoke(5, true));
        assert_eq!(
            r.apply_open(6, 100, true),
            OpenStep::Refused(LinkState::Revoked)
        );
        assert!(!r.revoke(7, false), "already revoked");
        let mut opened = record(Expiry::Time);
        opened.apply_open(5, 100, false);
        assert!(!opened.revoke(6, true), "superseding spares opened links");
        assert!(opened.revoke(6, false), "the owner can revoke it");
    }
}
