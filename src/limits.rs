//! Abuse limits kept in the store so they hold across replicas: per-user mints and per-IP
//! opens, each a fixed window counted atomically (`INCR` + `PEXPIRE` in one script).
//!
//! Answers carry the IETF httpapi rate-limit fields (draft-ietf-httpapi-ratelimit-headers-07):
//! `RateLimit-Policy: <limit>;w=<window seconds>` and
//! `RateLimit: limit=<limit>, remaining=<n>, reset=<seconds>`.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;
use std::sync::Arc;

use crate::store::{user_tag, Store, StoreError};

/// One fixed-window limit: `limit` hits per `window_secs`; `limit = 0` disables it.
#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Hits allowed per window.
    pub limit: u32,
    /// Window length, seconds.
    pub window_secs: u64,
}

/// `RateLimit-Policy` field name.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` field name.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Where a client stands against one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    /// Hits allowed per window.
    pub limit: u32,
    /// Hits left in this window.
    pub remaining: u32,
    /// Seconds until the window resets (rounded up).
    pub reset_secs: u64,
    /// Window length, seconds.
    pub window_secs: u64,
}

impl RateStatus {
    /// Adds `RateLimit-Policy` and `RateLimit` to `headers`.
    pub fn add_headers(&self, headers: &mut HeaderMap) {
        let policy = format!("{};w={}", self.limit, self.window_secs);
        let state = format!(
            "limit={}, remaining={}, reset={}",
            self.limit, self.remaining, self.reset_secs
        );
        for (name, value) in [(RATELIMIT_POLICY, policy), (RATELIMIT, state)] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
    }
}

/// Why a request may not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// Over the limit.
    #[error("rate limited")]
    Exceeded(RateStatus),
    /// The store failed (fail closed).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The configured limits over a store.
#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn Store>,
    mint_per_user: Limit,
    open_per_ip: Limit,
    ipv6_prefix_len: u8,
}

/// The bucket of a client address: IPv4 (IPv4-mapped IPv6 included) per address, IPv6 per
/// network of `ipv6_prefix_len` bits, e.g. `2001:db8:1:2::/64`. One host usually owns a whole
/// /64, so counting single IPv6 addresses would let it rotate into a fresh bucket per request.
pub fn ip_bucket(ip: IpAddr, ipv6_prefix_len: u8) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match ipnet::Ipv6Net::new(v6, ipv6_prefix_len.min(128)) {
            Ok(net) => net.trunc().to_string(),
            Err(_) => v6.to_string(),
        },
    }
}

impl RateLimiter {
    /// Limits from `[limits]` over `store`.
    pub fn new(store: Arc<dyn Store>, mint_per_user: Limit, open_per_ip: Limit) -> Self {
        RateLimiter {
            store,
            mint_per_user,
            open_per_ip,
            ipv6_prefix_len: 64,
        }
    }

    /// Buckets IPv6 clients by this prefix length (`limits.ipv6_prefix_len`, default 64).
    pub fn with_ipv6_prefix(mut self, len: u8) -> Self {
        self.ipv6_prefix_len = len;
        self
    }

    /// Counts one mint by `user_id`. `Ok(None)` when the limit is off.
    /// Errors: [`LimitError::Exceeded`], [`LimitError::Store`].
    pub async fn mint(&self, user_id: &str) -> Result<Option<RateStatus>, LimitError> {
        self.hit(
            &format!("rl:m:{{{}}}", user_tag(user_id)),
            self.mint_per_user,
        )
        .await
    }

    /// Counts one request to `/l/*` from `ip` (bucketed by [`ip_bucket`]). `Ok(None)` when the
    /// limit is off.
    /// Errors: [`LimitError::Exceeded`], [`LimitError::Store`].
    pub async fn open(&self, ip: IpAddr) -> Result<Option<RateStatus>, LimitError> {
        let bucket = ip_bucket(ip, self.ipv6_prefix_len);
        self.hit(&format!("rl:o:{{{bucket}}}"), self.open_per_ip)
            .await
    }

    async fn hit(&self, key: &str, limit: Limit) -> Result<Option<RateStatus>, LimitError> {
        if limit.limit == 0 {
            return Ok(None);
        }
        let window_ms = limit.window_secs * 1000;
        let counted = self.store.incr_window(key, window_ms).await?;
        let status = RateStatus {
            limit: limit.limit,
            remaining: u64::from(limit.limit).saturating_sub(counted.count) as u32,
            reset_secs: counted.reset_ms.div_ceil(1000).max(1),
            window_secs: limit.window_secs,
        };
        if counted.count > u64::from(limit.limit) {
            return Err(LimitError::Exceeded(status));
        }
        Ok(Some(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[test]
    fn ipv6_clients_share_their_prefix_and_mapped_ipv4_is_ipv4() {
        let b = |ip: &str, len| ip_bucket(ip.parse().unwrap(), len);
        assert_eq!(b("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64");
        assert_eq!(b("2001:db8:1:2:ffff::9", 64), "2001:db8:1:2::/64");
        assert_ne!(b("2001:db8:1:3::1", 64), "2001:db8:1:2::/64");
        assert_eq!(b("2001:db8:1:2::1", 48), "2001:db8:1::/48");
        assert_eq!(b("2001:db8::1", 128), "2001:db8::1/128");
        assert_eq!(b("::ffff:198.51.100.7", 64), "198.51.100.7");
        assert_eq!(b("198.51.100.7", 64), "198.51.100.7");
    }

    #[tokio::test]
    async fn counts_and_refuses_over_the_limit() {
        let limiter = RateLimiter::new(
            Arc::new(MemoryStore::new()),
            Limit {
                limit: 2,
                window_secs: 60,
            },
            Limit {
                limit: 0,
                window_secs: 60,
            },
        );
        assert_eq!(limiter.mint("u").await.unwrap().unwrap().remaining, 1);
        assert_eq!(limiter.mint("u").await.unwrap().unwrap().remaining, 0);
        match limiter.mint("u").await {
            Err(LimitError::Exceeded(s)) => {
                assert_eq!(s.remaining, 0);
                assert!(s.reset_secs >= 59 && s.reset_secs <= 60);
            }
            other => panic!("{other:?}"),
        }
        assert!(limiter.mint("other").await.is_ok());
        assert!(limiter
            .open("127.0.0.1".parse().unwrap())
            .await
            .unwrap()
            .is_none());
    }
}
