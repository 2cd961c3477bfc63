//! The `request` command: one GetBusinessOutcome over RabbitMQ's Direct
//! Reply-to, the way a requester sends it.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Confirmation};
use serde_json::{json, Value};

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
    let amqp = &settings.amqp;
    let (connection, _) =
        crate::amqp::connect_first(settings, "lcm-worker request", CONNECT_TIMEOUT).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    // Direct Reply-to: consume the pseudo-queue, without acks, before publishing.
    let mut replies = crate::amqp::consume_direct_reply_to(&channel).await?;
    let correlation_id = format!("lcm-cli-{}-{}", std::process::id(), now_micros());
    let body = request_body(&args.source, &args.callid, &args.account);
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_reply_to(crate::amqp::DIRECT_REPLY_TO.into())
        .with_correlation_id(correlation_id.as_str().into());
    let confirmation = channel
        .basic_publish(
            amqp.request_exchange.as_str().into(),
            args.source.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body.to_string().as_bytes(),
            properties,
        )
        .await?
        .await
        .with_context(|| format!("publishing to exchange `{}`", amqp.request_exchange))?;
    if let Confirmation::Ack(Some(_)) | Confirmation::Nack(_) = confirmation {
        bail!(
            "no queue takes source `{}` on exchange `{}`: is a worker running with matching amqp.bindings?",
            args.source,
            amqp.request_exchange
        );
    }
    let reply = tokio::time::timeout(args.timeout, async {
        while let Some(delivery) = replies.next().await {
            let delivery = delivery?;
            let matches = delivery
                .properties
                .correlation_id()
                .as_ref()
                .is_some_and(|id| id.as_str() == correlation_id);
            if matches {
                return Ok(delivery.data);
            }
        }
        Err(anyhow!("the connection closed before a reply came"))
    })
    .await
    .map_err(|_| {
        anyhow!(
            "no reply within {}",
            humantime::format_duration(args.timeout)
        )
    })??;
    let _ = connection.close(200, "done".into()).await;
    serde_json::from_slice(&reply).context("the reply is not JSON")
}

fn now_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// A GetBusinessOutcome request, as a requester sends it.
pub fn request_body(source: &str, callid: &str, account: &str) -> serde_json::Value {
    json!({
        "channel": "LCM", "topic": "WebService", "subtopic": "GetBusinessOutcome",
        "source": source,
        "data": {"callid": callid, "AccountNumber": account}
    })
}
