//! Declares the objects of docs/protocol.md section 2. Idempotent: runs at
//! start-up and after every reconnect.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use crate::settings::{AmqpSettings, QueueType};

/// A declaration failed; the message names the object and, for a
/// mismatch, the broker's words about the differing argument.
#[derive(Debug, thiserror::Error)]
#[error("declaring {object}: {source}")]
pub struct TopologyError {
    /// Which object, with the arguments the worker asked for.
    pub object: String,
    /// The broker's or the client's error.
    #[source]
    pub source: lapin::Error,
}

impl TopologyError {
    /// Whether the broker refused the declaration (a mismatch or missing
    /// permission) rather than the connection failing under it.
    pub fn refused_by_broker(&self) -> bool {
        matches!(self.source.kind(), lapin::ErrorKind::ProtocolError(_))
    }
}

/// What the broker said of the request queue when it was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestQueueState {
    /// Requests ready for delivery.
    pub messages: u32,
    /// Consumers on the queue (replicas), not counting the declarer.
    pub consumers: u32,
}

/// Declares exchanges, queues and bindings.
pub async fn declare(
    channel: &Channel,
    amqp: &AmqpSettings,
) -> Result<RequestQueueState, TopologyError> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let exchanges = [
        (&amqp.request_exchange, ExchangeKind::Topic, "topic"),
        (&amqp.reply_exchange, ExchangeKind::Direct, "direct"),
        (&amqp.dead_letter_exchange, ExchangeKind::Fanout, "fanout"),
    ];
    for (name, kind, kind_name) in exchanges {
        channel
            .exchange_declare(name.as_str().into(), kind, durable, FieldTable::default())
            .await
            .map_err(failed(format!("{kind_name} exchange `{name}` (durable)")))?;
    }
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let dead = &amqp.dead_letter_queue;
    channel
        .queue_declare(dead.as_str().into(), durable_queue, FieldTable::default())
        .await
        .map_err(failed(format!("dead-letter queue `{dead}` (durable)")))?;
    bind(channel, dead, &amqp.dead_letter_exchange, "").await?;

    let queue = &amqp.request_queue;
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), long_string(amqp.queue_type.as_str()));
    arguments.insert(
        "x-dead-letter-exchange".into(),
        long_string(&amqp.dead_letter_exchange),
    );
    // A quorum queue counts redeliveries: past the limit a poison message
    // (one that keeps killing workers) is dead-lettered instead of looping.
    let mut limit = String::new();
    if amqp.queue_type == QueueType::Quorum && amqp.delivery_limit > 0 {
        let value = i64::from(amqp.delivery_limit);
        arguments.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(value));
        limit = format!(", x-delivery-limit={value}");
    }
    let declared = channel
        .queue_declare(queue.as_str().into(), durable_queue, arguments)
        .await
        .map_err(failed(format!(
            "request queue `{queue}` (durable, x-queue-type={}, x-dead-letter-exchange={}{limit})",
            amqp.queue_type.as_str(),
            amqp.dead_letter_exchange
        )))?;
    for key in &amqp.bindings {
        bind(channel, queue, &amqp.request_exchange, key).await?;
    }
    Ok(RequestQueueState {
        messages: declared.message_count(),
        consumers: declared.consumer_count(),
    })
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
) -> Result<(), TopologyError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(failed(format!(
            "binding of queue `{queue}` to exchange `{exchange}` with key `{key}`"
        )))
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(text.into())
}

fn failed(object: String) -> impl FnOnce(lapin::Error) -> TopologyError {
    move |source| TopologyError { object, source }
}
