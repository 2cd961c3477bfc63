//! The `bench` command: a load generator for sizing a deployment
//! (docs/protocol.md section 10).
//!
//! It seeds its own calls and campaigns, sends GetBusinessOutcome requests
//! to the request exchange as a requester would, in a closed loop (N in
//! flight) or an open loop (a fixed rate), checks every reply against the
//! one the seeded data calls for, removes its data, and reports counts and
//! latency percentiles.
//!
//! - [`data`]: PURE: the data set and the expected replies.
//! - [`load`]: sending and receiving (AMQP).
//! - [`report`]: PURE: the histogram summary, the table and the JSON.

mod data;
mod load;
mod report;

pub use self::data::callid_of_request;

use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use self::data::DataSet;
use self::load::{Plan, Stop};
use self::report::{Mode, Report};
use crate::amqp::Requester;
use crate::redis::{CallEntry, ListEntry, RedisStore};
use crate::settings::Settings;

/// The seeded keys expire after this long even if the bench cannot remove
/// them (killed, Redis gone at the end).
const SEED_TTL_SECONDS: u64 = 3600;

/// Options of `lcm-worker bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Closed loop: keep this many requests in flight, sending the next as
    /// soon as one is answered [default: 64].
    #[arg(long, conflicts_with = "rate")]
    pub concurrency: Option<NonZeroUsize>,
    /// Open loop: send this many requests per second on a fixed schedule,
    /// whatever the replies do; latency counts from each scheduled time.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Offer load for this long (e.g. 10s, 1m) [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "count")]
    pub duration: Option<Duration>,
    /// Send exactly this many requests instead of running for a duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Calls to seed; requests cycle through them.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub calls: u64,
    /// Campaigns to seed; calls are spread over them.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub campaigns: u64,
    /// Business outcomes per campaign (the size of each reply).
    #[arg(long, default_value_t = 8)]
    pub outcomes: u64,
    /// Requester name: the routing key on the request exchange and the
    /// body's `source`.
    #[arg(long, default_value = "lcm-bench")]
    pub source: String,
    /// Once sending stops, how long to wait for the replies still due
    /// before counting them lost (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print one JSON object on standard output instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress bar (there is none anyway when standard error is not a
    /// terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Count a reply as right from its correlation id alone, without
    /// comparing its body: for yardsticks such as `examples/echo`, which
    /// answer every request with one fixed reply.
    #[arg(long)]
    pub no_check: bool,
}

impl BenchArgs {
    fn mode(&self) -> Mode {
        match (self.rate, self.concurrency) {
            (Some(rate), _) => Mode::Open { rate },
            (None, concurrency) => Mode::Closed {
                concurrency: concurrency.map_or(64, NonZeroUsize::get),
            },
        }
    }

    fn stop(&self) -> Stop {
        match (self.count, self.duration) {
            (Some(count), _) => Stop::Count(count),
            (None, duration) => Stop::After(duration.unwrap_or(Duration::from_secs(10))),
        }
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err("must be a number of requests per second greater than 0".into()),
    }
}

/// Runs the bench and prints the table or the JSON alone on standard
/// output; lost or wrong replies exit 1.
pub async fn run_command(
    settings: &Settings,
    args: &BenchArgs,
) -> anyhow::Result<std::process::ExitCode> {
    let report = run(settings, args).await?;
    if args.json {
        super::answer(format_args!("{}", serde_json::to_string(&report)?))?;
    } else {
        super::answer(format_args!("{}", report.table().trim_end_matches('\n')))?;
    }
    if report.passed() {
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        super::say(format_args!(
            "bench failed: {} lost, {} wrong",
            report.lost, report.wrong
        ));
        Ok(std::process::ExitCode::FAILURE)
    }
}

/// Runs the bench against the configured broker and Redis. Errors are
/// setup failures (nothing to report); lost or wrong replies are in the
/// report.
pub async fn run(settings: &Settings, args: &BenchArgs) -> anyhow::Result<Report> {
    let mode = args.mode();
    let run_id = run_id();
    let data = DataSet::generate(
        &run_id,
        &args.source,
        usize::try_from(args.calls).context("--calls is too large")?,
        usize::try_from(args.campaigns).context("--campaigns is too large")?,
        usize::try_from(args.outcomes).context("--outcomes is too large")?,
    )
    .context("building the data set")?;
    let plan = Plan {
        mode,
        stop: args.stop(),
        timeout: args.timeout,
        source: args.source.clone(),
        check_bodies: !args.no_check,
    };
    let amqp = &settings.amqp;
    let mut requester =
        Requester::open(settings, "lcm-worker bench", Duration::from_secs(10), false).await?;
    let store = RedisStore::new(&settings.redis)?;
    tracing::info!(
        run_id,
        calls = data.calls.len(),
        campaigns = data.campaigns.len(),
        key_prefix = settings.redis.key_prefix,
        "seeding the bench data"
    );
    // An interrupted run still removes its data and reports.
    let cancel = crate::shutdown::on_signals().context("handling SIGTERM and SIGINT")?;
    let progress = progress_bar(args);
    let outcome = async {
        seed(&store, &data).await?;
        load::run(&mut requester, &data, &plan, &progress, &cancel).await
    }
    .await;
    progress.finish_and_clear();
    match remove(&store, &data).await {
        Ok(removed) => tracing::info!(removed, "removed the bench data"),
        Err(error) => tracing::warn!(
            "could not remove the bench data ({error:#}); keys `{}:call:bench-{run_id}-*` and \
             `{}:campaign:bench-{run_id}-c*:outcomes` expire within {SEED_TTL_SECONDS} s",
            settings.redis.key_prefix,
            settings.redis.key_prefix
        ),
    }
    requester.close().await;
    let tally = outcome?;
    if tally.sent > 0 && tally.answered == 0 {
        tracing::warn!(
            source = args.source,
            exchange = amqp.request_exchange,
            "no reply at all: is a worker running, with amqp.bindings taking this source?"
        );
    }
    Ok(Report::new(mode, &tally))
}

/// Unique enough for concurrent runs: the time in milliseconds and a
/// random suffix, in base 36 to keep keys short.
fn run_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!(
        "{}{:0>4}",
        base36(u64::try_from(millis).unwrap_or(0)),
        base36(u64::from(rand::random::<u16>()))
    )
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

fn progress_bar(args: &BenchArgs) -> ProgressBar {
    if args.no_progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (length, template) = match args.stop() {
        Stop::Count(count) => (count, "{bar:40} {pos}/{len} requests  {msg}"),
        Stop::After(duration) => (
            u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            "{bar:40} {elapsed}  {msg}",
        ),
    };
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Writes the data set, each key expiring after [`SEED_TTL_SECONDS`].
async fn seed(store: &RedisStore, data: &DataSet) -> anyhow::Result<()> {
    let lists: Vec<ListEntry<'_>> = data
        .campaigns
        .iter()
        .map(|campaign| ListEntry {
            campaign_id: &campaign.id,
            list: &campaign.stored,
        })
        .collect();
    let calls: Vec<CallEntry<'_>> = data
        .calls
        .iter()
        .map(|call| CallEntry {
            callid: &call.callid,
            campaign_id: &data.campaigns[call.campaign].id,
            account_number: Some(&call.account),
        })
        .collect();
    let ttl = Duration::from_secs(SEED_TTL_SECONDS);
    store
        .write_expiring(&calls, &lists, ttl)
        .await
        .context("seeding the bench data into Redis")
}

/// Deletes every key the data set may have written; returns how many existed.
async fn remove(store: &RedisStore, data: &DataSet) -> anyhow::Result<u64> {
    let callids = data.calls.iter().map(|call| call.callid.as_str());
    let campaign_ids = data.campaigns.iter().map(|campaign| campaign.id.as_str());
    store
        .remove(callids, campaign_ids)
        .await
        .context("removing the bench data from Redis")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
    }

    #[test]
    fn defaults_are_a_ten_second_closed_loop_at_64() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.mode(), Mode::Closed { concurrency: 64 });
        assert_eq!(args.stop(), Stop::After(Duration::from_secs(10)));
        assert_eq!((args.calls, args.campaigns, args.outcomes), (10_000, 50, 8));
        assert_eq!(args.source, "lcm-bench");
        assert_eq!(args.timeout, Duration::from_secs(5));
    }

    #[test]
    fn rate_makes_an_open_loop_and_count_replaces_duration() {
        let args = parse(&["--rate", "500", "--count", "20"]).unwrap();
        assert_eq!(args.mode(), Mode::Open { rate: 500.0 });
        assert_eq!(args.stop(), Stop::Count(20));
    }

    #[test]
    fn contradictory_or_senseless_options_are_refused() {
        for args in [
            &["--rate", "10", "--concurrency", "4"][..],
            &["--duration", "1s", "--count", "4"],
            &["--rate", "0"],
            // `--rate -3` would be refused as an unknown flag, not a bad rate.
            &["--rate=-3"],
            &["--concurrency", "0"],
            &["--calls", "0"],
            &["--count", "0"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn run_ids_are_short_and_alphanumeric() {
        // Two runs in one millisecond differ by the random suffix; not
        // asserted here, since 1 in 65536 would collide.
        let id = run_id();
        assert!(
            id.len() <= 12 && id.bytes().all(|c| c.is_ascii_alphanumeric()),
            "{id}"
        );
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36 * 36 + 35), "10z");
    }
}
