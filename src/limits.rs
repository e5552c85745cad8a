//! Abuse limits kept in the store so they hold across replicas: per-user mints and per-IP
//! opens, each a fixed window counted atomically (`INCR` + `PEXPIRE` in one script).
//!
//! Answers carry the IETF httpapi rate-limit fields (draft-ietf-httpapi-ratelimit-headers-07):
//! `RateLimit-Policy: <limit>;w=<window seconds>` and
//! `RateLimit: limit=<limit>, remaining=<n>, reset=<seconds>` (written at the HTTP edge,
//! `crate::http::error::add_rate_headers`).

use std::net::IpAddr;
use std::sync::Arc;

use crate::store::{user_tag, Guarded, Store, StoreError, WindowCount, WindowLimit};

/// One fixed-window limit: `limit` hits per `window_secs`; `limit = 0` disables it.
#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Hits allowed per window.
    pub limit: u32,
    /// Window length, seconds.
    pub window_secs: u64,
}

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

    /// Refuses `user_id` when it has already used up its mint limit, without counting
    /// anything otherwise (one read): the check before a slow `sid` lookup, whose mint is then
    /// counted with its write ([`crate::store::LinkStore::create_guarded`]). A refused request
    /// is counted like every refused request (for its `Retry-After`).
    /// Errors: [`LimitError::Exceeded`], [`LimitError::Store`].
    pub async fn refuse_if_spent(&self, user_id: &str) -> Result<(), LimitError> {
        let Some(limit) = self.mint_window(user_id) else {
            return Ok(());
        };
        let used = self
            .store
            .read(&limit.key)
            .await?
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if used >= limit.limit {
            // Over (unless the window ended in between: then this request starts the next).
            self.hit(Some(&limit)).await?;
        }
        Ok(())
    }

    /// Counts one request to `/l/*` from `ip` (bucketed by [`ip_bucket`]). `Ok(None)` when the
    /// limit is off.
    /// Errors: [`LimitError::Exceeded`], [`LimitError::Store`].
    pub async fn open(&self, ip: IpAddr) -> Result<Option<RateStatus>, LimitError> {
        self.hit(self.open_window(ip).as_ref()).await
    }

    /// The window one mint by `user_id` counts against, for a store write that counts it in
    /// the same step ([`crate::store::LinkStore::create_guarded`]); `None` when the limit is
    /// off. Its key shares the user's hash tag with the user's other keys.
    pub fn mint_window(&self, user_id: &str) -> Option<WindowLimit> {
        window(
            format!("rl:m:{{{}}}", user_tag(user_id)),
            self.mint_per_user,
        )
    }

    /// The window one request to `/l/*` from `ip` counts against (see
    /// [`RateLimiter::mint_window`]); `None` when the limit is off.
    pub fn open_window(&self, ip: IpAddr) -> Option<WindowLimit> {
        let bucket = ip_bucket(ip, self.ipv6_prefix_len);
        window(format!("rl:o:{{{bucket}}}"), self.open_per_ip)
    }

    /// Where the client stands after a guarded store write counted it against `limit` (from
    /// [`RateLimiter::mint_window`] or [`RateLimiter::open_window`]): the write's outcome and
    /// the status, or [`LimitError::Exceeded`] when the store refused it.
    pub fn judge<T>(
        limit: Option<&WindowLimit>,
        guarded: Guarded<T>,
    ) -> Result<(T, Option<RateStatus>), LimitError> {
        match (guarded, limit) {
            (Guarded::Done(value, Some(counted)), Some(limit)) => {
                Ok((value, Some(status(limit, counted))))
            }
            (Guarded::Done(value, _), _) => Ok((value, None)),
            (Guarded::Limited(counted), Some(limit)) => {
                Err(LimitError::Exceeded(status(limit, counted)))
            }
            (Guarded::Limited(_), None) => Err(LimitError::Store(StoreError::Corrupt(
                "the store refused a write no limit applied to".into(),
            ))),
        }
    }

    async fn hit(&self, limit: Option<&WindowLimit>) -> Result<Option<RateStatus>, LimitError> {
        let Some(limit) = limit else {
            return Ok(None);
        };
        let counted = self.store.incr_window(&limit.key, limit.window_ms).await?;
        let status = status(limit, counted);
        if counted.count > limit.limit {
            return Err(LimitError::Exceeded(status));
        }
        Ok(Some(status))
    }
}

fn window(key: String, limit: Limit) -> Option<WindowLimit> {
    (limit.limit > 0).then(|| WindowLimit {
        key,
        limit: u64::from(limit.limit),
        window_ms: limit.window_secs * 1000,
    })
}

fn status(limit: &WindowLimit, counted: WindowCount) -> RateStatus {
    RateStatus {
        limit: limit.limit as u32,
        remaining: limit.limit.saturating_sub(counted.count) as u32,
        reset_secs: counted.reset_ms.div_ceil(1000).max(1),
        window_secs: limit.window_ms / 1000,
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
        assert_eq!(
            limiter
                .hit(limiter.mint_window("u").as_ref())
                .await
                .unwrap()
                .unwrap()
                .remaining,
            1
        );
        assert_eq!(
            limiter
                .hit(limiter.mint_window("u").as_ref())
                .await
                .unwrap()
                .unwrap()
                .remaining,
            0
        );
        match limiter.hit(limiter.mint_window("u").as_ref()).await {
            Err(LimitError::Exceeded(s)) => {
                assert_eq!(s.remaining, 0);
                assert!(s.reset_secs >= 59 && s.reset_secs <= 60);
            }
            other => panic!("{other:?}"),
        }
        assert!(limiter
            .hit(limiter.mint_window("other").as_ref())
            .await
            .is_ok());
        assert!(limiter
            .open("127.0.0.1".parse().unwrap())
            .await
            .unwrap()
            .is_none());
    }
}
