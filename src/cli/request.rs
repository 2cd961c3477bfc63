//! The `request` command: one GetBusinessOutcome over RabbitMQ's Direct
//! Reply-to, the way a requester sends it.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

use crate::amqp::{Requester, Sent};
use crate::protocol::request_body;
use crate::settings::Settings;

/// How long connecting to one broker endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to ask.
#[derive(Debug, Clone)]
pub struct RequestArgs {
    /// The call id.
    pub callid: String,
    /// The account number.
    pub account: String,
    /// The requester's source name: routing key and body `source`.
    pub source: String,
    /// How long to wait for the reply.
    pub timeout: Duration,
}

/// Sends one request to the configured request exchange and returns the
/// reply body.
pub async fn request(settings: &Settings, args: &RequestArgs) -> anyhow::Result<Value> {
    let mut requester =
        Requester::open(settings, "lcm-worker request", CONNECT_TIMEOUT, true).await?;
    let correlation_id = format!("lcm-cli-{}-{}", std::process::id(), now_micros());
    let body = request_body(&args.source, &args.callid, &args.account).to_string();
    let sent = requester
        .send(&args.source, &correlation_id, body.as_bytes())
        .await?;
    if sent == Sent::Unroutable {
        bail!(
            "no queue takes source `{}` on exchange `{}`: is a worker running with matching amqp.bindings?",
            args.source,
            settings.amqp.request_exchange
        );
    }
    let reply = tokio::time::timeout(args.timeout, async {
        loop {
            let reply = requester.next_reply().await?;
            if reply.correlation_id.as_deref() == Some(correlation_id.as_str()) {
                return anyhow::Ok(reply.body);
            }
        }
    })
    .await
    .map_err(|_| {
        anyhow!(
            "no reply within {}",
            humantime::format_duration(args.timeout)
        )
    })??;
    requester.close().await;
    serde_json::from_slice(&reply).context("the reply is not JSON")
}

fn now_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}
