//! `lcm-worker`: see README.md and PROTOCOL.md section 10.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lcm_worker::settings::Settings;
use lcm_worker::{seed, shutdown, store::RedisStore, telemetry, worker};

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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lcm-worker: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => worker::run(settings, shutdown::on_signals()?).await,
            Command::Seed { file } => run_seed(&settings, &file).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("lcm-worker: {error:#}");
            ExitCode::FAILURE
        }
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
