use clap::Parser;
use std::process::ExitCode;

#[actix_web::main]
async fn main() -> ExitCode {
    faceauth_gateway::cli::run(faceauth_gateway::cli::Cli::parse()).await
}
