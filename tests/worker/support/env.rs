//! One test's world: its own exchanges, queues and Redis key prefix, a
//! broker channel and a Redis connection, removed again on drop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::requester::*;
use super::wait::*;

pub fn amqp_url() -> String {
    std::env::var("LCM_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn redis_url() -> String {
    std::env::var("LCM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `host:port` of the test broker, for a proxy in front of it.
pub fn amqp_address() -> String {
    address_of(&amqp_url(), 5672)
}

/// `host:port` of the test Redis, for a proxy in front of it.
pub fn redis_address() -> String {
    address_of(&redis_url(), 6379)
}

/// The test broker's URL, user, password and vhost kept, at
/// `127.0.0.1:port` (a proxy's).
pub(super) fn amqp_url_at(port: u16) -> String {
    url_at(&amqp_url(), "amqp", "127.0.0.1", port)
}

/// As [`amqp_url_at`], through TLS: `amqps` at `localhost:port`, the name
/// the test certificates hold.
pub(super) fn amqps_url_at(port: u16) -> String {
    url_at(&amqp_url(), "amqps", "localhost", port)
}

/// The test Redis URL, database and credentials kept, at `127.0.0.1:port`.
pub(super) fn redis_url_at(port: u16) -> String {
    url_at(&redis_url(), "redis", "127.0.0.1", port)
}

/// As [`redis_url_at`], through TLS: `rediss` at `localhost:port`.
pub(super) fn rediss_url_at(port: u16) -> String {
    url_at(&redis_url(), "rediss", "localhost", port)
}

fn address_of(url: &str, default_port: u16) -> String {
    let url = url::Url::parse(url).expect("a test server URL");
    let host = url.host_str().expect("a test server URL names a host");
    format!("{host}:{}", url.port().unwrap_or(default_port))
}

fn url_at(url: &str, scheme: &str, host: &str, port: u16) -> String {
    let mut url = url::Url::parse(url).expect("a test server URL");
    url.set_scheme(scheme).expect("amqp/amqps, redis/rediss");
    url.set_host(Some(host)).unwrap();
    url.set_port(Some(port)).unwrap();
    url.into()
}

/// Names and key prefix private to one test.
#[derive(Debug, Clone)]
pub struct Names {
    pub id: String,
    pub request_exchange: String,
    pub request_queue: String,
    pub reply_exchange: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub key_prefix: String,
}

impl Names {
    fn unique(test: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = format!(
            "{test}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        Self {
            request_exchange: format!("test.{id}.requests"),
            request_queue: format!("test.{id}.business_outcome"),
            reply_exchange: format!("test.{id}.replies"),
            dead_letter_exchange: format!("test.{id}.dead"),
            dead_letter_queue: format!("test.{id}.business_outcome.dead"),
            key_prefix: format!("test:{id}"),
            id,
        }
    }
}

/// One test's world: its names, a broker channel and a Redis connection.
pub struct TestEnv {
    pub names: Names,
    pub channel: Channel,
    pub redis: redis::aio::MultiplexedConnection,
    _connection: Connection,
}

impl TestEnv {
    pub async fn new(test: &str) -> Self {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("RabbitMQ must be reachable (LCM_TEST_AMQP_URL)");
        let channel = connection.create_channel().await.unwrap();
        let redis = redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("Redis must be reachable (LCM_TEST_REDIS_URL)");
        Self {
            names: Names::unique(test),
            channel,
            redis,
            _connection: connection,
        }
    }

    /// The worker's environment for this test's names.
    pub fn worker_env(&self) -> Vec<(String, String)> {
        let n = &self.names;
        [
            ("LCM__AMQP__URL", amqp_url()),
            ("LCM__REDIS__URL", redis_url()),
            ("LCM__AMQP__REQUEST_EXCHANGE", n.request_exchange.clone()),
            ("LCM__AMQP__REQUEST_QUEUE", n.request_queue.clone()),
            ("LCM__AMQP__REPLY_EXCHANGE", n.reply_exchange.clone()),
            (
                "LCM__AMQP__DEAD_LETTER_EXCHANGE",
                n.dead_letter_exchange.clone(),
            ),
            ("LCM__AMQP__DEAD_LETTER_QUEUE", n.dead_letter_queue.clone()),
            ("LCM__REDIS__KEY_PREFIX", n.key_prefix.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Stores a call record (with a TTL, as the dialer does).
    pub async fn seed_call(&self, callid: &str, fields: &[(&str, &str)]) {
        let key = format!("{}:call:{callid}", self.names.key_prefix);
        let mut redis = self.redis.clone();
        let _: () = redis.hset_multiple(&key, fields).await.unwrap();
        let _: () = redis.expire(&key, 600).await.unwrap();
    }

    /// Stores a campaign's outcome list text.
    pub async fn seed_outcomes(&self, campaign: &str, list: &str) {
        let key = format!("{}:campaign:{campaign}:outcomes", self.names.key_prefix);
        let mut redis = self.redis.clone();
        let _: () = redis.set_ex(&key, list, 600).await.unwrap();
    }

    /// The documentation's sample call and campaign.
    pub async fn seed_sample(&self) {
        self.seed_call(
            "12345",
            &[("campaign_id", "1"), ("account_number", "5|3|1|0|0|44|1")],
        )
        .await;
        self.seed_outcomes(
            "1",
            r#"[{"OutComeID":"101","Description":"Payment Done","LeadScore":"0","ParentID":null},{"OutComeID":"102","Description":"Payment Failure"}]"#,
        )
        .await;
    }

    /// A requester with its own reply queue, bound to the reply exchange
    /// under `source`.
    pub async fn requester(&self, source: &str) -> Requester {
        self.requester_at(&amqp_url(), source).await
    }

    /// As [`TestEnv::requester`], connected to the broker at `url` (a node
    /// of a test's own cluster).
    pub async fn requester_at(&self, url: &str, source: &str) -> Requester {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let reply_queue = queue.name().to_string();
        // The worker declares the reply exchange; a requester may start first.
        declare_reply_exchange(&channel, &self.names.reply_exchange).await;
        channel
            .queue_bind(
                reply_queue.as_str().into(),
                self.names.reply_exchange.as_str().into(),
                source.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let replies = consume_replies(&channel, &reply_queue).await;
        Requester {
            channel,
            names: self.names.clone(),
            source: source.to_owned(),
            reply_queue,
            replies,
            pending: HashMap::new(),
            _connection: connection,
        }
    }

    /// Takes one message from the dead-letter queue, waiting up to [`WAIT`].
    pub async fn dead_lettered(&self) -> Option<Vec<u8>> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let got = self
                .channel
                .basic_get(
                    self.names.dead_letter_queue.as_str().into(),
                    BasicGetOptions { no_ack: true },
                )
                .await
                .unwrap();
            if let Some(message) = got {
                return Some(message.delivery.data.clone());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Messages ready in `queue` now.
    pub async fn ready_count(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    /// Publishes a raw body to the request exchange.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8], properties: BasicProperties) {
        let exchange = &self.names.request_exchange;
        publish(&self.channel, exchange, routing_key, body, properties).await;
    }
}

/// Publishes on `channel` and waits for the publish (and its confirm, on a
/// channel in confirm mode).
pub async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) {
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

impl Drop for TestEnv {
    /// Removes the test's queues, exchanges and keys, also when it panicked.
    fn drop(&mut self) {
        let names = self.names.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(remove(names));
        });
        let _ = cleanup.join();
    }
}

async fn remove(names: Names) {
    if let Ok(connection) = Connection::connect(&amqp_url(), ConnectionProperties::default()).await
    {
        if let Ok(channel) = connection.create_channel().await {
            for queue in [&names.request_queue, &names.dead_letter_queue] {
                let _ = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            for exchange in [
                &names.request_exchange,
                &names.reply_exchange,
                &names.dead_letter_exchange,
            ] {
                let _ = channel
                    .exchange_delete(exchange.as_str().into(), Default::default())
                    .await;
            }
        }
        let _ = connection.close(200, "test done".into()).await;
    }
    if let Ok(client) = redis::Client::open(redis_url()) {
        if let Ok(mut redis) = client.get_multiplexed_async_connection().await {
            let pattern = format!("{}:*", names.key_prefix);
            let keys: Vec<String> = redis.keys(pattern).await.unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis.del(keys).await;
            }
        }
    }
}

async fn declare_reply_exchange(channel: &Channel, name: &str) {
    channel
        .exchange_declare(
            name.into(),
            lapin::ExchangeKind::Direct,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
}

/// Forwards every message of `queue` to a channel of [`Reply`]s. No acks:
/// reply queues are private, and Direct Reply-to requires it.
pub(super) async fn consume_replies(
    channel: &Channel,
    queue: &str,
) -> mpsc::UnboundedReceiver<Reply> {
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let text = |v: &Option<lapin::types::ShortString>| v.as_ref().map(|s| s.to_string());
            let reply = Reply {
                body: serde_json::from_slice(&delivery.data).unwrap_or(Value::Null),
                correlation_id: text(delivery.properties.correlation_id()),
                content_type: text(delivery.properties.content_type()),
                app_id: text(delivery.properties.app_id()),
                traceparent: header_text(&delivery, "traceparent"),
                tracestate: header_text(&delivery, "tracestate"),
            };
            if sender.send(reply).is_err() {
                break;
            }
        }
    });
    receiver
}

/// A text header of `delivery`, as a long or short string.
fn header_text(delivery: &lapin::message::Delivery, key: &str) -> Option<String> {
    match delivery.properties.headers().as_ref()?.inner().get(key)? {
        lapin::types::AMQPValue::LongString(text) => {
            Some(String::from_utf8_lossy(text.as_bytes()).into_owned())
        }
        lapin::types::AMQPValue::ShortString(text) => Some(text.to_string()),
        _ => None,
    }
}
