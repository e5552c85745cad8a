//! The gateway's view of the Redis clock.
//!
//! Every script that changes state reads Redis `TIME` and gets a *deadline* in Redis time: past
//! it, the script writes nothing and answers `late` (see `src/store/redis.rs`). The gateway
//! computes that deadline from its own clock plus the measured offset to Redis, so a script that
//! Redis runs after the gateway gave up on it (a paused or overloaded Redis, a reply stuck in a
//! queue) leaves no effect.
//!
//! The offset is measured with `TIME` round trips: at start-up and then periodically by the
//! store worker ([`crate::store::redis::RedisStore::maintain`]). Each measurement has an
//! uncertainty of half its round trip; deadlines are shortened by it, so an error in the estimate
//! makes a script refuse sooner, never later. The offset is exported as
//! `faceauth_store_clock_offset_seconds`, and a warning is logged while it exceeds
//! `auth.leeway_secs` (token checks with the gateway's clock and link times with Redis's clock
//! then disagree by more than the leeway allows).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

/// The local clock in Unix microseconds.
pub use crate::clock::now_us as local_now_us;

/// The measured offset between this process and Redis (Redis − local).
#[derive(Debug)]
pub struct ClockOffset {
    offset_us: AtomicI64,
    uncertainty_us: AtomicI64,
    /// Above this (absolute), a warning is logged; microseconds.
    warn_above_us: AtomicI64,
    warned: AtomicBool,
    /// Measurements skipped in a row for a round trip much slower than the kept one.
    skipped: AtomicI64,
}

impl Default for ClockOffset {
    fn default() -> Self {
        ClockOffset {
            offset_us: AtomicI64::new(0),
            // Until the first measurement: assume up to one second of disagreement.
            uncertainty_us: AtomicI64::new(1_000_000),
            warn_above_us: AtomicI64::new(i64::MAX),
            warned: AtomicBool::new(false),
            skipped: AtomicI64::new(0),
        }
    }
}

impl ClockOffset {
    /// Warns when the offset exceeds `limit` (usually `auth.leeway_secs`).
    pub fn set_warn_threshold(&self, limit: Duration) {
        self.warn_above_us.store(
            limit.as_micros().min(i64::MAX as u128) as i64,
            Ordering::Relaxed,
        );
    }

    /// Records one measurement: Redis said `redis_us` between local `sent_us` and `received_us`.
    /// A measurement whose round trip was much slower than the one in use is skipped (it would
    /// shorten every deadline), unless five in a row were.
    pub fn record(&self, sent_us: i64, redis_us: i64, received_us: i64) {
        let rtt = (received_us - sent_us).max(0);
        let offset = redis_us - (sent_us + rtt / 2);
        // Half the round trip, plus Redis's TIME resolution and a millisecond of slack.
        let uncertainty = rtt / 2 + 1_000;
        if uncertainty > self.uncertainty_us() * 2 + 2_000
            && self.skipped.fetch_add(1, Ordering::Relaxed) < 5
        {
            return;
        }
        self.skipped.store(0, Ordering::Relaxed);
        self.offset_us.store(offset, Ordering::Relaxed);
        self.uncertainty_us.store(uncertainty, Ordering::Relaxed);
        crate::metrics::METRICS
            .store_clock_offset
            .set(offset as f64 / 1e6);
        let limit = self.warn_above_us.load(Ordering::Relaxed);
        if offset.abs() > limit {
            // Once per excursion, not on every measurement.
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    offset_ms = offset / 1000,
                    leeway_ms = limit / 1000,
                    "the clock of this gateway and Redis's differ by more than auth.leeway_secs; \
                     fix the time sync (NTP) of the gateway or the Redis host"
                );
            }
        } else if self.warned.swap(false, Ordering::Relaxed) {
            tracing::info!(
                offset_ms = offset / 1000,
                "clock offset to Redis is within auth.leeway_secs again"
            );
        }
    }

    /// The offset, microseconds (Redis − local).
    pub fn offset_us(&self) -> i64 {
        self.offset_us.load(Ordering::Relaxed)
    }

    /// The uncertainty of the offset, microseconds.
    pub fn uncertainty_us(&self) -> i64 {
        self.uncertainty_us.load(Ordering::Relaxed)
    }

    /// A deadline in Redis time (Unix milliseconds): `budget` from now, shortened by the
    /// uncertainty of the offset so that it never falls later than intended.
    pub fn deadline_ms(&self, budget: Duration) -> i64 {
        let now = local_now_us() + self.offset_us();
        let budget = budget.as_micros().min(i64::MAX as u128) as i64;
        (now + budget - self.uncertainty_us()) / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_and_deadline() {
        let c = ClockOffset::default();
        let now = local_now_us();
        // Redis 5 s ahead, 2 ms round trip.
        c.record(now, now + 5_001_000, now + 2_000);
        assert_eq!(c.offset_us(), 5_000_000);
        assert_eq!(c.uncertainty_us(), 2_000);
        let d = c.deadline_ms(Duration::from_millis(250));
        let expected = (local_now_us() + 5_000_000 + 250_000 - 2_000) / 1000;
        assert!((d - expected).abs() <= 5, "{d} vs {expected}");
    }

    #[test]
    fn a_slow_measurement_does_not_replace_a_good_one_at_once() {
        let c = ClockOffset::default();
        c.record(0, 1_000, 2_000);
        assert_eq!(c.uncertainty_us(), 2_000);
        for _ in 0..5 {
            c.record(0, 300_000, 600_000);
            assert_eq!(c.offset_us(), 0, "skipped");
        }
        c.record(0, 300_000, 600_000);
        assert_eq!(c.uncertainty_us(), 301_000, "taken after five in a row");
    }

    #[test]
    fn a_negative_round_trip_counts_as_zero() {
        let c = ClockOffset::default();
        c.record(1_000_000, 1_000_000, 999_000);
        assert_eq!(c.offset_us(), 0);
        assert_eq!(c.uncertainty_us(), 1_000);
    }
}
