use clap::Parser;
use std::process::ExitCode;

/// mimalloc: the request path allocates many small, short-lived buffers; glibc malloc took
/// about 12 % of the CPU under load (see bench/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> ExitCode {
    faceauth_gateway::cli::run(faceauth_gateway::cli::Cli::parse()).await
}
