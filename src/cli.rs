//! The command line: `serve`, `demo`, `encrypt`, `decrypt`, `check-config`, `jobs`.

use clap::{Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::argos::crypto::{Encryption, QueryCipher};
use crate::config::Settings;
use crate::queue::{QueueName, WorkQueue};
use crate::startup::{Application, Components, StartupError};
use crate::store::Store;
use std::sync::Arc;

/// faceauth-gateway: issues single-use ARGOS FaceAuth step-up links.
#[derive(Debug, Parser)]
#[command(name = "faceauth-gateway", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// TOML file layered over config/default.toml (environment variables still win).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run with no outside setup: memory store, random keys, a stand-in FaceAuth form and ARGOS
    /// API, the whole results loop on loopback.
    Demo {
        /// Listen address (a free port is used if it is taken).
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
    },
    /// Encrypt stdin (one trailing newline dropped) as ARGOS expects; prints the `encrypted` value.
    Encrypt(CryptoArgs),
    /// Decrypt an `encrypted` value from stdin (percent-encoded or not); prints the plaintext.
    Decrypt(CryptoArgs),
    /// Print the OpenAPI 3.1 description (what `docs/openapi.json` holds).
    Openapi,
    /// Print the Lua source of the store's open script (for `redis-benchmark` in bench/run).
    #[command(hide = true)]
    OpenScript,
    /// Print the Lua source of the store's mint script on one Redis (for `redis-benchmark` in
    /// bench/run).
    #[command(hide = true)]
    MintScript,
    /// Validate the configuration and print it with secrets redacted.
    CheckConfig {
        /// TOML file layered over config/default.toml.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Dead-lettered background jobs (pull-verification, callbacks, erasures): list or retry them.
    Jobs {
        /// What to do.
        #[command(subcommand)]
        action: JobsAction,
        /// TOML file layered over config/default.toml.
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
    },
}

/// `jobs` subcommands.
#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// Print the dead-lettered jobs, one per line: queue, job id, dead-lettered at, attempts,
    /// reason (tab-separated).
    List {
        /// Only this queue.
        #[arg(long, value_enum)]
        queue: Option<QueueArg>,
    },
    /// Put dead-lettered jobs back into their queue, due now, with a fresh deadline.
    Retry {
        /// The queue.
        #[arg(long, value_enum)]
        queue: QueueArg,
        /// The job ids to retry (as `jobs list` prints them).
        #[arg(value_name = "JOB", required_unless_present = "all")]
        jobs: Vec<String>,
        /// Every dead-lettered job of the queue.
        #[arg(long, conflicts_with = "jobs")]
        all: bool,
    },
}

/// `--queue` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum QueueArg {
    /// Pull-verification of FaceAuth results.
    Verify,
    /// Signed callbacks.
    Callbacks,
    /// ARGOS deletions of erasures.
    Erasure,
}

impl From<QueueArg> for QueueName {
    fn from(q: QueueArg) -> Self {
        match q {
            QueueArg::Verify => QueueName::Verify,
            QueueArg::Callbacks => QueueName::Callbacks,
            QueueArg::Erasure => QueueName::Erasure,
        }
    }
}

/// Arguments of `encrypt` / `decrypt`.
#[derive(Debug, clap::Args)]
pub struct CryptoArgs {
    /// Cipher mode.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// Environment variable holding the Add-on API key.
    #[arg(long, default_value = "FACEAUTH__ARGOS__API_KEY", value_name = "NAME")]
    pub api_key_env: String,
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    /// AES-256-ECB, PKCS#7, base64.
    Ecb,
    /// AES-256-GCM, hex of nonce ‖ ciphertext ‖ tag.
    Gcm,
    /// AES-256-CBC, zero IV, PKCS#7, base64.
    Cbc,
}

impl From<Mode> for Encryption {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Ecb => Encryption::Aes256Ecb,
            Mode::Gcm => Encryption::Aes256Gcm,
            Mode::Cbc => Encryption::Aes256Cbc,
        }
    }
}

/// Runs a parsed command line; returns the process exit code (0 ok, 1 runtime failure,
/// 2 bad configuration or input).
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Demo { bind } => {
            crate::telemetry::init(crate::config::LogFormat::Text);
            match crate::demo::run(bind).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(1, &e.to_string()),
            }
        }
        Command::Encrypt(args) => crypt(args, true),
        Command::Decrypt(args) => crypt(args, false),
        Command::CheckConfig { config } => check_config(config).await,
        Command::Jobs { action, config } => jobs(config, action).await,
        Command::OpenScript => {
            print!("{}", crate::store::redis::open_script_source());
            ExitCode::SUCCESS
        }
        Command::MintScript => {
            print!("{}", crate::store::redis::mint_script_source());
            ExitCode::SUCCESS
        }
        Command::Openapi => {
            println!("{}", crate::http::openapi::json());
            ExitCode::SUCCESS
        }
    }
}

/// 2 for configuration errors, 1 for an unreachable store or a bind failure.
fn startup_exit_code(e: &StartupError) -> u8 {
    match e {
        StartupError::Config(_) => 2,
        StartupError::Store(_) | StartupError::StoreWait { .. } | StartupError::Io(_) => 1,
        StartupError::Interrupted => 0,
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

async fn serve(config: Option<PathBuf>) -> ExitCode {
    let settings = match Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(2, &e.to_string()),
    };
    if let Err(e) = crate::telemetry::init_with(settings.log.format, &settings.telemetry) {
        return fail(2, &e);
    }
    // SIGHUP reloads once serving; until then (store wait, start-up) it is ignored rather than
    // ending the process (its default action).
    #[cfg(unix)]
    let _early_hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => return fail(startup_exit_code(&e), &e.to_string()),
    };
    app.set_config_path(config);
    tracing::info!(port = app.port(), "faceauth-gateway listening");
    let result = app.run_until_stopped().await;
    crate::telemetry::shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e.to_string()),
    }
}

async fn check_config(config: Option<PathBuf>) -> ExitCode {
    let settings = match Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(2, &e.to_string()),
    };
    let components = match Components::build(&settings).await {
        Ok(c) => c,
        Err(e) => return fail(startup_exit_code(&e), &e.to_string()),
    };
    if let Err(e) = components.verifier.check_keys().await {
        return fail(1, &format!("auth.jwks_url: {e}"));
    }
    if let Some(services) = &components.services {
        if let Err(e) = services.check_keys().await {
            return fail(1, &format!("auth.service.jwks_url: {e}"));
        }
    }
    print!("{}", settings.redacted_toml());
    println!("\n# Where each secret setting came from (never its value):");
    print!("{}", settings.secret_sources_report());
    eprintln!("configuration OK");
    ExitCode::SUCCESS
}

/// `s` with control characters (tabs, line breaks, terminal escapes) written as `\u{…}`
/// escapes: job ids come from unsigned webhook bodies and must not break the tab-separated
/// output or drive the terminal. Such a job is retried with `--all`.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_unicode().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Most dead-lettered jobs listed or retried per queue in one call.
const JOBS_LIMIT: usize = 10_000;

async fn jobs(config: Option<PathBuf>, action: JobsAction) -> ExitCode {
    let settings = match Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(2, &e.to_string()),
    };
    let components = match Components::build(&settings).await {
        Ok(c) => c,
        Err(e) => return fail(startup_exit_code(&e), &e.to_string()),
    };
    let store = components.links.store().clone();
    let queue = |name: QueueName| job_queue(&settings, store.clone(), name);
    match action {
        JobsAction::List { queue: only } => {
            let names: Vec<QueueName> = match only {
                Some(q) => vec![q.into()],
                None => QueueName::ALL.to_vec(),
            };
            list_dead(names.into_iter().map(queue).collect()).await
        }
        JobsAction::Retry {
            queue: name,
            jobs,
            all,
        } => retry_dead(queue(name.into()), jobs, all).await,
    }
}

/// The work queue `name` as `[verify]` and its own horizon configure it.
fn job_queue(settings: &Settings, store: Arc<dyn Store>, name: QueueName) -> WorkQueue {
    let horizon_secs = match name {
        QueueName::Verify => settings.verify.deadline_secs,
        QueueName::Callbacks => settings.callbacks.max_age_secs,
        QueueName::Erasure => settings.erasure.deadline_secs,
    };
    WorkQueue::new(
        store,
        name,
        horizon_secs.saturating_mul(1000),
        &settings.verify,
    )
}

/// `jobs list`: the dead-lettered jobs of `queues`, one tab-separated line each.
async fn list_dead(queues: Vec<WorkQueue>) -> ExitCode {
    let mut out = String::new();
    let mut n = 0;
    for queue in queues {
        let dead = match queue.dead(JOBS_LIMIT).await {
            Ok(d) => d,
            Err(e) => return fail(1, &format!("store: {e}")),
        };
        for job in dead {
            n += 1;
            let at = crate::links::utc_from_ms(job.dead_at_ms)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            out.push_str(&format!(
                "{}\t{}\t{at}\t{}\t{}\n",
                queue.name().as_str(),
                printable(&job.member),
                job.tries,
                printable(&job.reason)
            ));
        }
    }
    print!("{out}");
    eprintln!("{n} dead-lettered job(s)");
    ExitCode::SUCCESS
}

/// `jobs retry`: revives `jobs` (or every dead-lettered job with `all`) of `q`; exit 2 if
/// one was not dead-lettered.
async fn retry_dead(q: WorkQueue, jobs: Vec<String>, all: bool) -> ExitCode {
    let members = if all {
        match q.dead(JOBS_LIMIT).await {
            Ok(d) => d.into_iter().map(|j| j.member).collect(),
            Err(e) => return fail(1, &format!("store: {e}")),
        }
    } else {
        jobs
    };
    let mut missing = 0;
    for member in &members {
        match q.revive(member).await {
            Ok(true) => println!("{}\t{member}\tretried", q.name().as_str()),
            Ok(false) => {
                missing += 1;
                eprintln!("{member}: not dead-lettered in queue {}", q.name().as_str());
            }
            Err(e) => return fail(1, &format!("store: {e}")),
        }
    }
    if missing > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn crypt(args: CryptoArgs, encrypt: bool) -> ExitCode {
    let api_key = match std::env::var(&args.api_key_env) {
        Ok(k) if !k.trim().is_empty() => SecretString::from(k),
        _ => {
            return fail(
                2,
                &format!(
                    "environment variable {} is not set or empty",
                    args.api_key_env
                ),
            )
        }
    };
    let cipher = match QueryCipher::new(args.mode.into(), &api_key) {
        Ok(c) => c,
        Err(e) => return fail(2, &e.to_string()),
    };
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        return fail(1, &format!("cannot read stdin: {e}"));
    }
    let output = if encrypt {
        if input.ends_with(b"\r\n") {
            input.truncate(input.len() - 2);
        } else if input.ends_with(b"\n") {
            input.truncate(input.len() - 1);
        }
        let mut out = cipher.encrypt(&input).expose_secret().as_bytes().to_vec();
        out.push(b'\n');
        out
    } else {
        let text = String::from_utf8_lossy(&input);
        let text = text.trim();
        let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
        match cipher.decrypt(&decoded) {
            Ok(mut plain) => {
                plain.push(b'\n');
                plain
            }
            Err(e) => return fail(2, &e.to_string()),
        }
    };
    match std::io::stdout().write_all(&output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &format!("cannot write stdout: {e}")),
    }
}
