//! The `check` command: is this configuration usable here and now? With
//! `--offline`, is it a valid configuration at all, and what does it come to?

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, Context};

use super::answer;
use crate::amqp::Probe;
use crate::redis::RedisStore;
use crate::settings::Settings;

/// How long each probe may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Prints the effective configuration (every key, after the files, the
/// environment and the password files) as TOML with passwords redacted,
/// without contacting RabbitMQ or Redis. Loading has already validated it
/// whole, unknown keys included, so reaching here means it is valid.
pub fn run_offline(settings: &Settings) -> anyhow::Result<()> {
    settings.warn_if_insecure();
    let traces = super::trace_export().map_err(|error| anyhow!("traces: {error}"))?;
    let effective = toml::to_string(settings).context("rendering the configuration")?;
    // Written rather than printed: a closed standard output (`| head`) is
    // an error to report, not a panic.
    let mut out = std::io::stdout().lock();
    write!(
        out,
        "# configuration: valid (LCM_CONFIG {}); RabbitMQ and Redis not contacted (--offline)\n\
         # traces: {traces}\n\
         # the effective settings, passwords redacted:\n{effective}",
        lcm_config()
    )
    .and_then(|()| out.flush())
    .context("writing to standard output")
}

/// The `LCM_CONFIG` file named in the environment, as reported.
fn lcm_config() -> String {
    std::env::var("LCM_CONFIG").unwrap_or_else(|_| "not set".to_owned())
}

/// Connects to RabbitMQ and Redis and declares the topology, printing
/// what it finds on standard output as it goes; the error names what failed.
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    answer(format_args!(
        "configuration: valid (LCM_CONFIG {})",
        lcm_config()
    ))?;
    let traces = super::trace_export().map_err(|error| anyhow!("traces: {error}"))?;
    answer(format_args!("traces: {traces}"))?;

    let amqp = &settings.amqp;
    settings.warn_if_insecure();
    let probe = Probe::connect(settings, PROBE_TIMEOUT).await?;
    answer(format_args!("rabbitmq: connected to {}", probe.url()))?;
    let queue = probe.declare_topology(settings).await?;
    answer(format_args!(
        "topology: declared exchanges `{}` (topic), `{}` (direct), `{}` (fanout); \
         queue `{}` ({}, bindings {:?}) with {} ready and {} consumers; dead-letter queue `{}`",
        amqp.request_exchange,
        amqp.reply_exchange,
        amqp.dead_letter_exchange,
        amqp.request_queue,
        amqp.queue_type.as_str(),
        amqp.bindings,
        queue.messages,
        queue.consumers,
        amqp.dead_letter_queue,
    ))?;
    probe.close().await;

    let store = RedisStore::new(&settings.redis)?
        .with_max_list_bytes(settings.limits.max_outcome_list_bytes)
        .with_max_field_bytes(settings.limits.max_call_field_bytes);
    let redis_url = match sentinel_master(&store, settings).await? {
        Some(master) => format!("master {master} (via Sentinel)"),
        None => settings.redis.url.redacted(),
    };
    tokio::time::timeout(PROBE_TIMEOUT, store.ping())
        .await
        .map_err(|_| anyhow!("timed out after {PROBE_TIMEOUT:?}"))
        .and_then(|pinged| pinged.map_err(anyhow::Error::from))
        .with_context(|| format!("Redis at {redis_url}"))?;
    answer(format_args!(
        "redis: PING answered at {redis_url} (key prefix `{}`)",
        settings.redis.key_prefix
    ))?;
    tokio::time::timeout(PROBE_TIMEOUT, store.probe_lookup())
        .await
        .map_err(|_| anyhow!("timed out after {PROBE_TIMEOUT:?}"))
        .and_then(|probed| probed.map_err(anyhow::Error::from))
        .with_context(|| format!("the lookup's commands on Redis at {redis_url}"))?;
    answer(format_args!(
        "redis: the lookup's commands run under the key prefix"
    ))?;
    answer(format_args!("all checks passed"))?;
    Ok(())
}

/// With Sentinel, asks the sentinels for the master, prints it and returns
/// its address; `None` without Sentinel.
async fn sentinel_master(
    store: &RedisStore,
    settings: &Settings,
) -> anyhow::Result<Option<String>> {
    if !settings.redis.uses_sentinel() {
        return Ok(None);
    }
    let redis = &settings.redis;
    let sentinels: Vec<String> = redis
        .sentinel_urls()
        .iter()
        .map(|url| url.redacted())
        .collect();
    let master = tokio::time::timeout(PROBE_TIMEOUT, store.sentinel_master())
        .await
        .map_err(|_| anyhow!("timed out after {PROBE_TIMEOUT:?}"))
        .and_then(|found| found.map_err(anyhow::Error::from))
        .with_context(|| {
            format!(
                "Redis Sentinel {sentinels:?}, master `{}`",
                redis.sentinel_master
            )
        })?
        .unwrap_or_default();
    answer(format_args!(
        "redis sentinel: master `{}` is {master} (asked {sentinels:?})",
        redis.sentinel_master
    ))?;
    Ok(Some(master))
}
