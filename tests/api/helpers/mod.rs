//! Test harness: a real gateway on a random port, a real Redis, JWTs signed by the test, and
//! independent oracles (OpenSSL through the `openssl` crate, a fake ARGOS, reference webhook
//! libraries). Split by concern:
//!
//! - [`app`]: the gateway under test ([`TestApp`], [`spawn_app`]), its settings and the
//!   request helpers every test uses;
//! - [`redis`](self::redis): private Redis servers, the suite's Redis, key prefixes and TTLs;
//! - [`jwt`]: user and service tokens, signing keys and JWKS;
//! - [`oracle`]: the decryption oracle, the fake ARGOS and callback receiver, reference
//!   webhook verifiers.
//!
//! Everything tests use is re-exported here: `use crate::helpers::*;`.

mod app;
mod jwt;
mod oracle;
mod redis;

pub use self::app::*;
pub use self::jwt::*;
pub use self::oracle::*;
pub use self::redis::*;

use std::net::TcpListener;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `ready` every 50 ms until it holds (true) or `within` has passed (false). For
/// fixtures: wait on a condition, never on a guessed delay.
pub fn poll_until(within: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let started = std::time::Instant::now();
    loop {
        if ready() {
            return true;
        }
        if started.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// RFC 3339 time `secs` seconds ago (ARGOS's `create_time` in fake records).
pub fn rfc3339_ago(secs: i64) -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::seconds(secs))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Polls the async `check` every 100 ms until it holds; panics naming `what` after 10 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}
