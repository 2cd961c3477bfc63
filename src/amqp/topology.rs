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
    /// What the broker's refusal means, if the broker refused the
    /// declaration; `None` if the connection failed under it.
    pub fn refusal(&self) -> Option<Refusal> {
        match self.source.kind() {
            lapin::ErrorKind::ProtocolError(error) => Some(Refusal::of_reply_code(error.get_id())),
            _ => None,
        }
    }
}

/// What a broker's refusal of a declaration says about the other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The declaration disagrees with what the cluster holds, or the user
    /// may not make it (406 PRECONDITION_FAILED, 403 ACCESS_REFUSED, 530
    /// NOT_ALLOWED, ...): every node answers the same, because the
    /// definitions are cluster-wide. On the first connection this is a
    /// start-up error.
    Configuration,
    /// Something this node cannot reach now: 404 NOT_FOUND (a classic
    /// queue whose home node is down or inaccessible), 405 RESOURCE_LOCKED,
    /// 320 CONNECTION_FORCED (the node is stopping), 506 RESOURCE_ERROR, 541
    /// INTERNAL_ERROR (a queue process that did not answer). Another node,
    /// or this one a moment later, may accept the same declaration.
    NodeLocal,
}

impl Refusal {
    /// Classifies an AMQP reply code.
    pub fn of_reply_code(code: u16) -> Self {
        match code {
            404 | 405 | 320 | 506 | 541 => Self::NodeLocal,
            _ => Self::Configuration,
        }
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
    let (arguments, described) = dead_letter_queue_arguments(amqp);
    channel
        .queue_declare(dead.as_str().into(), durable_queue, arguments)
        .await
        .map_err(failed(format!("dead-letter queue `{dead}` ({described})")))?;
    bind(channel, dead, &amqp.dead_letter_exchange, "").await?;

    let queue = &amqp.request_queue;
    let (arguments, described) = request_queue_arguments(amqp);
    let declared = channel
        .queue_declare(queue.as_str().into(), durable_queue, arguments)
        .await
        .map_err(failed(format!("request queue `{queue}` ({described})")))?;
    for key in &amqp.bindings {
        bind(channel, queue, &amqp.request_exchange, key).await?;
    }
    Ok(RequestQueueState {
        messages: declared.message_count(),
        consumers: declared.consumer_count(),
    })
}

/// The dead-letter queue's arguments, and how they read in an error.
///
/// Of the request queue's type: a classic dead-letter queue lives on one
/// node; while that node is down it can be declared nowhere (RabbitMQ
/// answers 404, "home node ... is down"), so no worker could consume, and
/// what was dead-lettered into it is lost with the node. A classic one
/// keeps no argument, as earlier versions declared it, so that an existing
/// one stays equivalent.
fn dead_letter_queue_arguments(amqp: &AmqpSettings) -> (FieldTable, String) {
    let mut arguments = FieldTable::default();
    let mut described = String::from("durable");
    if amqp.queue_type == QueueType::Quorum {
        arguments.insert("x-queue-type".into(), long_string("quorum"));
        described.push_str(", x-queue-type=quorum");
    }
    (arguments, described)
}

/// The request queue's arguments, and how they read in an error.
fn request_queue_arguments(amqp: &AmqpSettings) -> (FieldTable, String) {
    let mut arguments = FieldTable::default();
    let queue_type = amqp.queue_type.as_str();
    let dlx = &amqp.dead_letter_exchange;
    arguments.insert("x-queue-type".into(), long_string(queue_type));
    arguments.insert("x-dead-letter-exchange".into(), long_string(dlx));
    let mut described = format!("durable, x-queue-type={queue_type}, x-dead-letter-exchange={dlx}");
    if amqp.queue_type != QueueType::Quorum {
        return (arguments, described);
    }
    // At-least-once dead-lettering: the quorum queue keeps a dead-lettered
    // request until the dead-letter queue has confirmed it, instead of
    // dropping it while that queue is unavailable (its leader moving, a
    // node restarting). RabbitMQ requires `reject-publish` overflow for it
    // and otherwise falls back to at-most-once without a word.
    arguments.insert("x-overflow".into(), long_string("reject-publish"));
    arguments.insert(
        "x-dead-letter-strategy".into(),
        long_string("at-least-once"),
    );
    described.push_str(", x-overflow=reject-publish, x-dead-letter-strategy=at-least-once");
    // A quorum queue counts redeliveries: past the limit a poison message
    // (one that keeps killing workers) is dead-lettered instead of looping.
    if amqp.delivery_limit > 0 {
        let value = i64::from(amqp.delivery_limit);
        arguments.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(value));
        described = format!("{described}, x-delivery-limit={value}");
    }
    (arguments, described)
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::settings::Settings;

    fn amqp(pairs: &[(&str, &str)]) -> AmqpSettings {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_from(None, Some(env)).unwrap().amqp
    }

    fn text(arguments: &FieldTable, key: &str) -> Option<String> {
        match arguments.inner().get(key)? {
            AMQPValue::LongString(value) => Some(value.to_string()),
            AMQPValue::LongLongInt(value) => Some(value.to_string()),
            other => Some(format!("{other:?}")),
        }
    }

    #[test]
    fn a_quorum_request_queue_has_a_quorum_dead_letter_queue() {
        let amqp = amqp(&[("LCM__AMQP__QUEUE_TYPE", "quorum")]);
        let (dead, described) = dead_letter_queue_arguments(&amqp);
        assert_eq!(text(&dead, "x-queue-type").as_deref(), Some("quorum"));
        assert!(described.contains("x-queue-type=quorum"), "{described}");
    }

    #[test]
    fn a_classic_dead_letter_queue_is_declared_as_before_without_arguments() {
        let (dead, described) = dead_letter_queue_arguments(&amqp(&[]));
        assert!(dead.inner().is_empty(), "{dead:?}");
        assert_eq!(described, "durable");
    }

    #[test]
    fn a_quorum_request_queue_dead_letters_at_least_once() {
        let amqp = amqp(&[("LCM__AMQP__QUEUE_TYPE", "quorum")]);
        let (arguments, described) = request_queue_arguments(&amqp);
        for (key, value) in [
            ("x-queue-type", "quorum"),
            ("x-dead-letter-exchange", "lcm.dead"),
            ("x-dead-letter-strategy", "at-least-once"),
            ("x-overflow", "reject-publish"),
            ("x-delivery-limit", "5"),
        ] {
            assert_eq!(text(&arguments, key).as_deref(), Some(value), "{key}");
            assert!(described.contains(&format!("{key}={value}")), "{described}");
        }
    }

    #[test]
    fn a_classic_request_queue_has_no_quorum_only_arguments() {
        let (arguments, described) = request_queue_arguments(&amqp(&[]));
        let mut keys: Vec<&str> = arguments.inner().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["x-dead-letter-exchange", "x-queue-type"]);
        assert_eq!(
            described,
            "durable, x-queue-type=classic, x-dead-letter-exchange=lcm.dead"
        );
    }

    #[test]
    fn a_home_node_down_is_node_local_and_a_mismatch_is_configuration() {
        assert_eq!(Refusal::of_reply_code(404), Refusal::NodeLocal);
        assert_eq!(Refusal::of_reply_code(541), Refusal::NodeLocal);
        assert_eq!(Refusal::of_reply_code(320), Refusal::NodeLocal);
        assert_eq!(Refusal::of_reply_code(406), Refusal::Configuration);
        assert_eq!(Refusal::of_reply_code(403), Refusal::Configuration);
        assert_eq!(Refusal::of_reply_code(530), Refusal::Configuration);
    }
}
