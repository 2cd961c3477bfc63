//! Test harness: each test gets its own exchanges, queues and Redis key
//! prefix, starts the real `lcm-worker` binary with them, and talks to it
//! through a small requester on the real RabbitMQ.

use std::collections::{HashMap, HashSet};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

pub fn amqp_url() -> String {
    std::env::var("LCM_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn redis_url() -> String {
    std::env::var("LCM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The documentation's sample request body.
pub fn sample_request(source: &str) -> Value {
    json!({
        "channel": "LCM", "topic": "WebService", "subtopic": "GetBusinessOutCome",
        "source": source,
        "data": {"callid": "12345", "AccountNumber": "5|3|1|0|0|44|1"}
    })
}

/// A request body for `callid` and `account`.
pub fn request_for(callid: &str, account: &str) -> Value {
    json!({
        "channel": "LCM", "topic": "WebService", "subtopic": "GetBusinessOutcome",
        "data": {"callid": callid, "AccountNumber": account}
    })
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

    /// Starts a worker and waits until `/readyz` answers 200.
    pub async fn start_worker(&self, extra: &[(&str, &str)]) -> Worker {
        let worker = self.spawn_worker(extra);
        worker.wait_ready().await;
        worker
    }

    /// Starts a worker without waiting for it.
    pub fn spawn_worker(&self, extra: &[(&str, &str)]) -> Worker {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_lcm-worker"));
        command
            .envs(self.worker_env())
            .env("LCM__HTTP__ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info,lcm_worker=debug")
            .env_remove("LCM_CONFIG")
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn lcm-worker");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        Worker {
            child,
            base: format!("http://127.0.0.1:{port}"),
            logs,
        }
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
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
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
        self.channel
            .basic_publish(
                self.names.request_exchange.as_str().into(),
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
async fn consume_replies(channel: &Channel, queue: &str) -> mpsc::UnboundedReceiver<Reply> {
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
            };
            if sender.send(reply).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Replies counted by correlation id, measured against the ids sent.
#[derive(Debug, Default)]
pub struct ReplyTally {
    by_id: HashMap<String, usize>,
}

impl ReplyTally {
    /// Counts one reply.
    pub fn record(&mut self, reply: &Reply) {
        let id = reply.correlation_id.clone().unwrap_or_default();
        *self.by_id.entry(id).or_default() += 1;
    }

    /// Correlation ids seen at least once.
    pub fn distinct(&self) -> usize {
        self.by_id.len()
    }

    /// Sent requests with at least one reply.
    pub fn answered(&self, sent: &HashSet<String>) -> usize {
        sent.iter()
            .filter(|id| self.by_id.contains_key(*id))
            .count()
    }

    /// Replies beyond the first for their correlation id.
    pub fn duplicated(&self) -> usize {
        self.by_id.values().map(|n| n - 1).sum()
    }

    /// Correlation ids that no sent request carried.
    pub fn unknown(&self, sent: &HashSet<String>) -> Vec<&String> {
        self.by_id.keys().filter(|id| !sent.contains(*id)).collect()
    }
}

/// A reply as a requester sees it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub body: Value,
    pub correlation_id: Option<String>,
    pub content_type: Option<String>,
    pub app_id: Option<String>,
}

impl Reply {
    pub fn error_message(&self) -> &str {
        self.body["message"]["errorMessage"]
            .as_str()
            .unwrap_or("<not an error reply>")
    }
    pub fn msg(&self) -> &str {
        self.body["message"]["msg"]
            .as_str()
            .unwrap_or("<not an error reply>")
    }
}

/// Sends requests and collects their replies.
pub struct Requester {
    pub channel: Channel,
    pub names: Names,
    pub source: String,
    pub reply_queue: String,
    replies: mpsc::UnboundedReceiver<Reply>,
    pending: HashMap<String, Vec<Reply>>,
    _connection: Connection,
}

static CORRELATION: AtomicU64 = AtomicU64::new(0);

/// A correlation id unique in this test process.
pub fn new_correlation_id() -> String {
    format!("corr-{}", CORRELATION.fetch_add(1, Ordering::SeqCst))
}

impl Requester {
    /// Publishes `body` to the request exchange with routing key = source,
    /// `reply_to` = this requester's queue; waits for the reply.
    pub async fn request(&mut self, body: &Value) -> Reply {
        let correlation_id = self.send(body).await;
        self.reply_for(&correlation_id)
            .await
            .expect("no reply in time")
    }

    /// Sends the sample request (see [`sample_request`]) under this
    /// requester's source and checks that it got the outcome list.
    pub async fn sample_is_answered(&mut self) -> Reply {
        let reply = self.request(&sample_request(&self.source.clone())).await;
        assert_eq!(
            reply.body["subtopic"], "BusinessOutCome",
            "{:?}",
            reply.body
        );
        reply
    }

    /// Publishes a request and returns its correlation id.
    pub async fn send(&self, body: &Value) -> String {
        let correlation_id = new_correlation_id();
        let properties = BasicProperties::default()
            .with_reply_to(self.reply_queue.as_str().into())
            .with_correlation_id(correlation_id.as_str().into());
        self.publish(body.to_string().as_bytes(), properties).await;
        correlation_id
    }

    /// Publishes raw bytes with the given properties to the request exchange.
    pub async fn publish(&self, body: &[u8], properties: BasicProperties) {
        self.channel
            .basic_publish(
                self.names.request_exchange.as_str().into(),
                self.source.as_str().into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Waits up to [`WAIT`] for the reply carrying `correlation_id`.
    pub async fn reply_for(&mut self, correlation_id: &str) -> Option<Reply> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(replies) = self.pending.get_mut(correlation_id) {
                if !replies.is_empty() {
                    return Some(replies.remove(0));
                }
            }
            let reply = tokio::time::timeout_at(deadline, self.replies.recv())
                .await
                .ok()??;
            let key = reply.correlation_id.clone().unwrap_or_default();
            self.pending.entry(key).or_default().push(reply);
        }
    }

    /// Waits up to [`WAIT`] for the next reply, whatever its correlation id.
    pub async fn next_reply(&mut self) -> Option<Reply> {
        self.next_reply_within(WAIT).await
    }

    /// Waits up to `wait` for the next reply, whatever its correlation id.
    pub async fn next_reply_within(&mut self, wait: Duration) -> Option<Reply> {
        if let Some(reply) = self.take_pending() {
            return Some(reply);
        }
        tokio::time::timeout(wait, self.replies.recv()).await.ok()?
    }

    /// The next reply already received, if any.
    pub fn try_next_reply(&mut self) -> Option<Reply> {
        self.take_pending().or_else(|| self.replies.try_recv().ok())
    }

    fn take_pending(&mut self) -> Option<Reply> {
        let key = self
            .pending
            .iter()
            .find(|(_, v)| !v.is_empty())
            .map(|(k, _)| k.clone())?;
        self.pending.get_mut(&key).map(|v| v.remove(0))
    }

    /// Replies RabbitMQ holds in this requester's queue, not yet delivered.
    pub async fn queued_replies(&self) -> u32 {
        self.channel
            .queue_declare(
                self.reply_queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|q| q.message_count())
            .unwrap_or(u32::MAX)
    }
}

/// Checks the output of `lcm-worker request` for the sample call: exit 0
/// and the sample's first outcome.
pub fn assert_sample_cli_reply(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "request failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reply: Value = serde_json::from_slice(&output.stdout).expect("stdout is the JSON reply");
    assert_eq!(reply["subtopic"], "BusinessOutCome");
    assert_eq!(
        reply["message"]["response"][0]["Description"],
        "Payment Done"
    );
}

/// A running `lcm-worker` process.
pub struct Worker {
    pub child: Child,
    pub base: String,
    pub logs: Arc<Mutex<String>>,
}

impl Worker {
    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.get("/readyz").await.map(|(s, _)| s) == Some(200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("worker not ready in time; logs:\n{}", self.logs());
    }

    /// Waits until the worker consumes, whatever Redis does: `/readyz`
    /// then gives any reason but "not consuming".
    pub async fn wait_consuming(&self) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some((_, body)) = self.get("/readyz").await {
                if !body.contains("not consuming") {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("worker not consuming in time; logs:\n{}", self.logs());
    }

    /// GET a path of the worker's HTTP endpoint: status and body.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = reqwest::get(format!("{}{path}", self.base)).await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// The sum of a Prometheus counter over the series whose labels contain
    /// every one of `labels` (for example `result="ok"`).
    pub async fn counter(&self, name: &str, labels: &[&str]) -> f64 {
        let (_, text) = self.get("/metrics").await.unwrap_or_default();
        text.lines()
            .filter(|line| line.starts_with(name))
            .filter(|line| {
                let series = line.split_whitespace().next().unwrap_or("");
                series == name || series.starts_with(&format!("{name}{{"))
            })
            .filter(|line| labels.iter().all(|label| line.contains(label)))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits until a counter reaches `expected`. Counters move just after
    /// a request is settled, so a test may see the reply first.
    pub async fn wait_counter(&self, name: &str, labels: &[&str], expected: f64) {
        let deadline = Instant::now() + WAIT;
        let mut seen = self.counter(name, labels).await;
        while seen != expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            seen = self.counter(name, labels).await;
        }
        assert_eq!(seen, expected, "{name} {labels:?}");
    }

    /// Everything the worker has logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().expect("worker still running");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("worker did not exit in time")
            .unwrap()
    }

    /// Waits for the process to exit by itself.
    pub async fn exit_status(mut self) -> ExitStatus {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("worker did not exit in time")
            .unwrap()
    }
}

/// A TCP port free on 127.0.0.1 now (for a worker or a private Redis).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `condition` holds, up to [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Consumes Direct Reply-to on `channel`: publish requests on the same channel
/// with `reply_to = amq.rabbitmq.reply-to`.
pub async fn direct_reply_to(channel: &Channel) -> mpsc::UnboundedReceiver<Reply> {
    consume_replies(channel, "amq.rabbitmq.reply-to").await
}
