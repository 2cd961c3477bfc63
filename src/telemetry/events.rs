//! What happens to a request that operators must see both in the logs and
//! in the metrics: each event writes its log line and its metric together,
//! so that neither can be forgotten at a call site (as vector's
//! `internal_events` do).

use std::time::Duration;

use super::metrics::{self, RESULT_DEAD_LETTERED};

/// A request was rejected without requeue, into the dead-letter queue.
#[derive(Debug, Clone, Copy)]
pub struct RequestDeadLettered {
    /// The request kind's metric label.
    pub kind: &'static str,
    /// Why, for the log.
    pub reason: &'static str,
    /// The property at fault, when one is (empty otherwise).
    pub property: &'static str,
    /// The worker or the broker failed (logged as an error); else the
    /// request is one never to answer (a warning).
    pub fault: bool,
    /// Time since the request was received.
    pub elapsed: Duration,
}

impl RequestDeadLettered {
    /// Logs and counts it.
    pub fn emit(self) {
        let (reason, property) = (self.reason, self.property);
        if self.fault {
            tracing::error!(reason, property, "request dead-lettered");
        } else {
            tracing::warn!(reason, property, "request dead-lettered");
        }
        metrics::request_settled(self.kind, RESULT_DEAD_LETTERED, self.elapsed);
    }
}

/// A request was answered, its reply confirmed, and acknowledged.
#[derive(Debug, Clone, Copy)]
pub struct RequestAnswered {
    /// The request kind's metric label.
    pub kind: &'static str,
    /// `ok` or the label of the `WS_Error` kind.
    pub result: &'static str,
    /// Time since the request was received.
    pub elapsed: Duration,
}

impl RequestAnswered {
    /// Logs and counts it.
    pub fn emit(self) {
        tracing::debug!(result = self.result, "answered");
        metrics::request_settled(self.kind, self.result, self.elapsed);
    }
}

/// A reply came back from RabbitMQ as unroutable: nobody listens on its
/// route. Its request is acknowledged all the same.
#[derive(Debug, Clone, Copy)]
pub struct ReplyUnroutable<'a> {
    /// How the route was chosen (`reply_to` or `source`).
    pub route: &'static str,
    /// The routing key it was published with.
    pub routing_key: &'a str,
}

impl ReplyUnroutable<'_> {
    /// Logs and counts it.
    pub fn emit(self) {
        tracing::warn!(
            route = self.route,
            routing_key = self.routing_key,
            "reply returned unroutable: nobody is listening; acknowledging the request"
        );
        metrics::reply_unroutable();
    }
}
