//! The command line (docs/protocol.md section 10): clap types and the commands
//! `run` (the worker), `check`, `seed`, `request` and, with the `bench`
//! feature, `bench`.

#[cfg(feature = "bench")]
mod bench;
mod check;
mod request;
mod seed;

#[cfg(feature = "bench")]
pub use self::bench::callid_of_request;

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::net::{TcpListener, TcpSocket};

use crate::redis::RedisStore;
use crate::settings::{Settings, SettingsError};
use crate::{panics, shutdown, telemetry, worker};

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
        /// Leave the calls and campaigns already in Redis as they are, and
        /// write only the missing ones (the default replaces them).
        #[arg(long)]
        keep_existing: bool,
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

/// How long the spans still queued may take to reach the collector at exit.
const TRACE_FLUSH_AT_EXIT: Duration = Duration::from_secs(2);

/// Starts trace export as the `OTEL_*` variables say (docs/observability.md),
/// before the runtime: the OTLP client runs a thread of its own.
fn start_traces() -> Result<(), String> {
    let export = trace_export()?;
    telemetry::init_traces(&export)?;
    match &export {
        telemetry::TraceExport::Off(why) => {
            tracing::info!(
                why,
                "trace export off; trace context still goes on into replies"
            )
        }
        telemetry::TraceExport::Otlp { endpoint, queue } => tracing::info!(
            endpoint,
            queue,
            conventions = telemetry::SCHEMA_URL,
            "exporting traces over OTLP/HTTP"
        ),
    }
    Ok(())
}

/// What the `OTEL_*` variables ask of trace export; `Err` names one that
/// cannot be honoured.
fn trace_export() -> Result<telemetry::TraceExport, String> {
    telemetry::TraceExport::from_vars(|name| std::env::var(name).ok())
}

/// Parses the command line and runs the command; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match load_settings() {
        Ok(settings) => settings,
        Err(error) => {
            say(error);
            return ExitCode::from(2);
        }
    };
    telemetry::init_logs(settings.log.format, crate::amqp::QUIET_LOGS);
    panics::install();
    // Requests are handled on this thread and on the runtime's own: a
    // panic there is caught and survived (see `crate::panics`).
    panics::contained_here();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(panics::contained_here)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            say(format_args!("cannot start the runtime: {error}"));
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Run);
    if matches!(command, Command::Run) {
        if let Err(error) = start_traces() {
            say(error);
            telemetry::flush_logs(LOG_FLUSH_AT_EXIT);
            return ExitCode::from(2);
        }
    }
    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(run(command, settings))
    }));
    // The spans and what the command logged are written out before the
    // process ends, or given up if the collector or the log sink does not
    // take them in time.
    telemetry::flush_traces(TRACE_FLUSH_AT_EXIT);
    telemetry::flush_logs(LOG_FLUSH_AT_EXIT);
    match ran {
        Ok(Ok(code)) => code,
        Ok(Err(error)) => {
            say(format_args!("{error:#}"));
            ExitCode::from(2)
        }
        // The panic hook has logged it.
        Err(_) => ExitCode::from(panics::EXIT_PANIC),
    }
}

/// How long the log lines still queued at exit may take to be written.
const LOG_FLUSH_AT_EXIT: Duration = Duration::from_secs(1);

/// Tells the user on standard error, before logs are set up or after they
/// are flushed. A message nobody can read is lost, never a panic.
fn say(message: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "lcm-worker: {message}");
}

/// Writes one line of a command's answer to standard output: a closed
/// pipe is an error of the command, never a panic.
fn answer(line: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    use anyhow::Context;
    writeln!(std::io::stdout(), "{line}").context("writing to standard output")
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
        Command::Seed {
            keep_existing,
            file,
        } => {
            let existing = if keep_existing {
                seed::Existing::Keep
            } else {
                seed::Existing::Replace
            };
            run_seed(&settings, &file, existing)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
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
    let listener = listen(addr).with_context(|| format!("binding http.addr {addr}"))?;
    worker::run(settings, listener, shutdown).await
}

/// Connections that may wait to be accepted (the kernel caps it at
/// `net.core.somaxconn`): when idle connections by the hundred are closed
/// at once and reconnect, a probe's connection must still find a place
/// (the standard library's 128 did not).
const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `addr` for the HTTP endpoints.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Prints the reply alone on standard output; WS_Error exits 1.
async fn run_request(settings: &Settings, args: &request::RequestArgs) -> anyhow::Result<ExitCode> {
    let reply = request::request(settings, args).await?;
    answer(format_args!("{}", serde_json::to_string_pretty(&reply)?))?;
    if reply["subtopic"] == "WS_Error" {
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

async fn run_seed(
    settings: &Settings,
    file: &Path,
    existing: seed::Existing,
) -> anyhow::Result<()> {
    let data = seed::read(file)?;
    let store = RedisStore::new(&settings.redis)?;
    let seeded = seed::write(&store, &data, existing).await?;
    let kept = match existing {
        seed::Existing::Keep => format!(
            "; kept {} calls and {} campaigns already there",
            seeded.kept_calls, seeded.kept_campaigns
        ),
        seed::Existing::Replace => String::new(),
    };
    answer(format_args!(
        "seeded {} calls and {} campaigns under key prefix `{}`{kept}",
        seeded.calls, seeded.campaigns, settings.redis.key_prefix
    ))
}
