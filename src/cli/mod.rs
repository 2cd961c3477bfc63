//! The command line (docs/protocol.md section 10): clap types and the commands
//! `run` (the worker), `check`, `seed`, `request` and, with the `bench`
//! feature, `bench`.

#[cfg(feature = "bench")]
mod bench;
mod check;
mod request;
mod seed;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::redis::RedisStore;
use crate::settings::{Settings, SettingsError};
use crate::{shutdown, telemetry, worker};

#[derive(Parser)]
#[command(
    version,
    about = "Answers LCM GetBusinessOutcome requests from RabbitMQ out of Redis"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker (the default).
    Run,
    /// Load calls and campaign outcome lists from a JSON file into Redis.
    Seed {
        /// The seed file (see README, "Seed file").
        file: PathBuf,
    },
    /// Validate the configuration, connect to RabbitMQ and Redis, declare the
    /// topology, and report; non-zero exit naming what failed.
    Check {
        /// Only validate the configuration and print it (TOML, passwords
        /// redacted), without contacting RabbitMQ or Redis.
        #[arg(long)]
        offline: bool,
    },
    /// Send one GetBusinessOutcome via Direct Reply-to and print the reply.
    /// Exits 0 for a BusinessOutCome reply, 1 for a WS_Error, 2 on failure.
    Request {
        /// The call id.
        #[arg(long)]
        callid: String,
        /// The account number.
        #[arg(long)]
        account: String,
        /// The requester's source name (routing key and body `source`).
        #[arg(long, default_value = "lcm-cli")]
        source: String,
        /// How long to wait for the reply (e.g. 5s, 500ms).
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Load generator for sizing a deployment: seeds its own calls and
    /// campaigns, sends GetBusinessOutcome requests in a closed loop (N in
    /// flight) or an open loop (a fixed rate), checks every reply, removes
    /// its data, and prints counts and latency percentiles. Exits 0 when no
    /// reply was lost or wrong, 1 otherwise, 2 when it could not run.
    #[cfg(feature = "bench")]
    Bench(bench::BenchArgs),
}

/// Loads the configuration (files, environment) and validates it whole:
/// each section (AMQP URLs included), then the Redis URL with the parser
/// of the client that will use it.
pub fn load_settings() -> Result<Settings, SettingsError> {
    let settings = Settings::load()?;
    crate::redis::validate(&settings)?;
    Ok(settings)
}

/// Parses the command line and runs the command; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match load_settings() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("lcm-worker: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logs(settings.log.format, crate::amqp::QUIET_LOGS);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lcm-worker: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Run);
    match runtime.block_on(run(command, settings)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("lcm-worker: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run => run_worker(settings).await.map(|()| ExitCode::SUCCESS),
        Command::Check { offline: true } => {
            check::run_offline(&settings).map(|()| ExitCode::SUCCESS)
        }
        Command::Check { offline: false } => {
            check::run(&settings).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Seed { file } => run_seed(&settings, &file).await.map(|()| ExitCode::SUCCESS),
        Command::Request {
            callid,
            account,
            source,
            timeout,
        } => {
            let args = request::RequestArgs {
                callid,
                account,
                source,
                timeout,
            };
            run_request(&settings, &args).await
        }
        #[cfg(feature = "bench")]
        Command::Bench(args) => bench::run_command(&settings, &args).await,
    }
}

/// Binds `http.addr` and runs the worker until SIGTERM or SIGINT.
async fn run_worker(settings: Settings) -> anyhow::Result<()> {
    use anyhow::Context;
    let shutdown = shutdown::on_signals()?;
    let addr = settings.http.addr;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding http.addr {addr}"))?;
    worker::run(settings, listener, shutdown).await
}

/// Prints the reply alone on standard output; WS_Error exits 1.
async fn run_request(settings: &Settings, args: &request::RequestArgs) -> anyhow::Result<ExitCode> {
    let reply = request::request(settings, args).await?;
    println!("{}", serde_json::to_string_pretty(&reply)?);
    if reply["subtopic"] == "WS_Error" {
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

async fn run_seed(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let data = seed::read(file)?;
    let store = RedisStore::new(&settings.redis)?;
    let seeded = seed::write(&store, &data).await?;
    println!(
        "seeded {} calls and {} campaigns under key prefix `{}`",
        seeded.calls, seeded.campaigns, settings.redis.key_prefix
    );
    Ok(())
}
