//! Integration tests: one binary, real server on a random port, real Redis.

mod at_most_once;
mod browser;
mod cli;
mod concurrency;
mod config;
mod confirm;
mod crypto_vectors;
mod deploy;
mod failover;
mod frontend;
mod helpers;
mod idempotency;
mod input_limits;
mod jwks;
mod jwt;
mod limits;
mod links;
mod operations;
mod results;
mod revocation;
mod robustness;
mod store_contract;
mod store_faults;
