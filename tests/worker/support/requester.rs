//! The test requester: sends requests as a requester would and collects
//! the replies, by correlation id.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::env::*;
use super::schemas::assert_schema;
use super::wait::*;

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

/// Replies counted by correlation id, measured against the ids sent.
#[derive(Debug, Default)]
pub struct ReplyTally {
    by_id: HashMap<String, usize>,
}

impl ReplyTally {
    /// Counts one reply.
    pub fn record(&mut self, reply: &Reply) {
        assert_schema(&reply.body);
        let id = reply.correlation_id.clone().unwrap_or_default();
        *self.by_id.entry(id).or_default() += 1;
    }

    /// Whether `id` has had a reply.
    pub fn has(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
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
    /// The W3C trace context headers, if the reply carries them.
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
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
    pub(super) replies: mpsc::UnboundedReceiver<Reply>,
    pub(super) pending: HashMap<String, Vec<Reply>>,
    pub(super) _connection: Connection,
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

    /// Sends `count` sample requests at once and expects every answer
    /// within `within` of sending: the worker serves on undisturbed.
    pub async fn sample_answered_within(&mut self, count: usize, within: Duration) {
        let started = Instant::now();
        let body = sample_request(&self.source.clone());
        let mut sent = Vec::new();
        for _ in 0..count {
            sent.push(self.send(&body).await);
        }
        for correlation_id in &sent {
            let left = within.saturating_sub(started.elapsed());
            let reply = tokio::time::timeout(left, self.reply_for(correlation_id))
                .await
                .unwrap_or_else(|_| panic!("answered within {within:?} of sending"))
                .expect("a reply");
            assert_eq!(reply.body["subtopic"], "BusinessOutCome");
        }
    }

    /// Every reply to `sent`: waits up to `within` until each has one,
    /// passing each reply to `check` (an assertion, or a count); then until
    /// `settled` holds (the request queue drained, nothing in hand) and the
    /// reply queue is empty, so that late duplicates are counted too.
    pub async fn replies_to_all<S, Fut>(
        &mut self,
        sent: &HashSet<String>,
        within: Duration,
        mut check: impl FnMut(&Reply),
        settled: S,
    ) -> ReplyTally
    where
        S: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let mut replies = ReplyTally::default();
        let deadline = Instant::now() + within;
        while replies.answered(sent) < sent.len() && Instant::now() < deadline {
            let Some(reply) = self.next_reply().await else {
                break;
            };
            check(&reply);
            replies.record(&reply);
        }
        eventually("request queue drained and nothing in hand", settled).await;
        eventually("reply queue drained", || async {
            self.queued_replies().await == 0
        })
        .await;
        while let Some(reply) = self.try_next_reply() {
            check(&reply);
            replies.record(&reply);
        }
        replies
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
        let exchange = &self.names.request_exchange;
        publish(&self.channel, exchange, &self.source, body, properties).await;
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
            let reply = tokio::time::timeout_at(deadline, checked_recv(&mut self.replies))
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
        tokio::time::timeout(wait, checked_recv(&mut self.replies))
            .await
            .ok()?
    }

    /// The replies that arrive until none has for `quiet`: those still
    /// coming from a worker that stops.
    pub async fn replies_until_quiet(&mut self, quiet: Duration) -> Vec<Reply> {
        let mut replies = Vec::new();
        while let Some(reply) = self.next_reply_within(quiet).await {
            replies.push(reply);
        }
        replies
    }

    /// The next reply already received, if any.
    pub fn try_next_reply(&mut self) -> Option<Reply> {
        self.take_pending()
            .or_else(|| self.replies.try_recv().ok().map(checked))
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
    assert_schema(&reply);
    assert_eq!(reply["subtopic"], "BusinessOutCome");
    assert_eq!(
        reply["message"]["response"][0]["Description"],
        "Payment Done"
    );
}

/// Consumes Direct Reply-to on `channel`: publish requests on the same channel
/// with `reply_to = amq.rabbitmq.reply-to`.
pub async fn direct_reply_to(channel: &Channel) -> mpsc::UnboundedReceiver<Reply> {
    consume_replies(channel, "amq.rabbitmq.reply-to").await
}

/// The next reply, checked against its schema.
pub async fn checked_recv(replies: &mut mpsc::UnboundedReceiver<Reply>) -> Option<Reply> {
    replies.recv().await.map(checked)
}

/// `reply`, once it is known to keep its schema (docs/schemas).
pub fn checked(reply: Reply) -> Reply {
    assert_schema(&reply.body);
    reply
}
