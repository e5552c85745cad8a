//! This process's wall clock as Unix time.
//!
//! A bottom-layer module: it imports nothing from the crate. A clock before 1970 reads as `0`.
//! Decisions about links use the store's clock instead (see [`crate::store::clock`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// Unix time in microseconds.
pub fn now_us() -> i64 {
    since_epoch().as_micros() as i64
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    since_epoch().as_millis() as i64
}

/// Unix time in whole seconds.
pub fn now_secs() -> u64 {
    since_epoch().as_secs()
}

/// Unix time in seconds, with the fraction.
pub fn now_secs_f64() -> f64 {
    since_epoch().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_agree() {
        let (s, ms, us, f) = (now_secs(), now_ms(), now_us(), now_secs_f64());
        assert!(s > 1_600_000_000);
        assert!((ms / 1000 - s as i64).abs() <= 1);
        assert!((us / 1_000_000 - s as i64).abs() <= 1);
        assert!((f - s as f64).abs() <= 1.0);
    }
}
