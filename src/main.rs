//! `lcm-worker`: see README.md and PROTOCOL.md section 10.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use lcm_worker::bench::{self, BenchArgs};
use lcm_worker::client::{self, RequestArgs};
use lcm_worker::settings::Settings;
use lcm_worker::{check, seed, shutdown, store::RedisStore, telemetry, worker};

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
    Check,
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
    Bench(BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("lcm-worker: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logs(settings.log.format);
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
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => worker::run(settings, shutdown::on_signals()?)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Check => check::run(&settings).await.map(|()| ExitCode::SUCCESS),
            Command::Seed { file } => run_seed(&settings, &file).await.map(|()| ExitCode::SUCCESS),
            Command::Request {
                callid,
                account,
                source,
                timeout,
            } => {
                let args = RequestArgs {
                    callid,
                    account,
                    source,
                    timeout,
                };
                run_request(&settings, &args).await
            }
            Command::Bench(args) => run_bench(&settings, &args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("lcm-worker: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Prints the reply alone on standard output; WS_Error exits 1.
async fn run_request(settings: &Settings, args: &RequestArgs) -> anyhow::Result<ExitCode> {
    let reply = client::request(settings, args).await?;
    println!("{}", serde_json::to_string_pretty(&reply)?);
    if reply["subtopic"] == "WS_Error" {
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// Prints the table or the JSON alone on standard output; lost or wrong
/// replies exit 1.
async fn run_bench(settings: &Settings, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let report = bench::run(settings, args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table());
    }
    if report.passed() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "lcm-worker: bench failed: {} lost, {} wrong",
            report.lost, report.wrong
        );
        Ok(ExitCode::FAILURE)
    }
}

async fn run_seed(settings: &Settings, file: &std::path::Path) -> anyhow::Result<()> {
    let data = seed::read(file)?;
    let store = RedisStore::new(&settings.redis)?;
    let seeded = seed::write(&store, &data).await?;
    println!(
        "seeded {} calls and {} campaigns under key prefix `{}`",
        seeded.calls, seeded.campaigns, settings.redis.key_prefix
    );
    Ok(())
}
