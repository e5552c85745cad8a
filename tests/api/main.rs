//! Integration tests: one binary, real server on a random port, real Redis.

mod cli;
mod concurrency;
mod config;
mod crypto_vectors;
mod helpers;
mod jwt;
mod links;
mod store_contract;
mod store_faults;
