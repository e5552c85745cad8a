//! Integration tests: one binary, real server on a random port, real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code may panic

mod assertions;
mod at_most_once;
mod browser;
mod cli;
mod concurrency;
mod config;
mod confirm;
mod crypto_vectors;
mod deploy;
mod docs;
mod edges;
mod erasure;
mod failover;
mod frontend;
mod fuzz;
mod helpers;
mod idempotency;
mod input_limits;
mod jwks;
mod jwt;
mod layers;
mod limits;
mod links;
mod operations;
mod queue_contract;
mod results;
mod revocation;
mod robustness;
mod skewed_replicas;
mod startup;
mod store_contract;
mod store_faults;
