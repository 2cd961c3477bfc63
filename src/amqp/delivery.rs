//! One delivery's task: ask the service for the decision, publish the
//! reply, and settle the request as [`settle`] says. Every dead-letter,
//! whatever its reason ([`DeadLetter`]), goes through
//! [`DeliveryTask::dead_letter`], which logs and counts it. The delivery's
//! trace ([`DeliveryTrace`]) continues the requester's, and its ids are on
//! every log line of the delivery.

use std::sync::Arc;
use std::time::Duration;

use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use opentelemetry::context::FutureExt as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::acknowledger::Unsettled;
use super::publisher::{publish, PublishOutcome, Reply};
use super::settle::{settle, ChannelState, DeadLetter, Settle};
use super::trace_headers::{parent_of, reply_headers};
use crate::backoff::Backoff;
use crate::protocol::RequestProperties;
use crate::service::{Action, Handled, Request, Service, Store};
use crate::settings::Settings;
use crate::telemetry::events::{ReplyUnroutable, RequestAnswered, RequestDeadLettered};
use crate::telemetry::metrics::{InHand, UNKNOWN_KIND};
use crate::telemetry::traces::{Consumed, DeliveryTrace, IdsText, Sent};

/// Pauses between publishes of a refused reply.
const REPUBLISH_START: Duration = Duration::from_millis(20);
const REPUBLISH_CAP: Duration = Duration::from_millis(250);

/// Everything one delivery's task needs.
pub(super) struct DeliveryTask<S> {
    pub settings: Arc<Settings>,
    pub service: Arc<Service<S>>,
    pub channel: Channel,
    pub received: Instant,
    /// Counts the delivery in hand until it is settled.
    pub in_hand: InHand,
    /// Cancelled when the connection is lost.
    pub abandon: CancellationToken,
}

impl<S: Store> DeliveryTask<S> {
    /// Handles the delivery until it is settled, or abandoned with its
    /// connection.
    pub async fn run(self, delivery: Delivery, unsettled: Unsettled) {
        let properties = request_properties(&delivery.properties);
        let trace = DeliveryTrace::start(
            parent_of(delivery.properties.headers().as_ref()),
            &Consumed {
                exchange: delivery.exchange.as_str(),
                routing_key: delivery.routing_key.as_str(),
                queue: &self.settings.amqp.request_queue,
                delivery_tag: delivery.delivery_tag,
                correlation_id: properties.reply_correlation_id(),
            },
        );
        let redelivered = delivery.redelivered;
        // Read before the span is made, so that it is made once with the
        // callid and source: recorded later, a field costs the JSON log
        // format a parse and a rewrite of all the span's fields, and each
        // format a second pass (docs/performance.md, "The log span").
        let request = self.service.read_guarded(&delivery.data, &properties);
        // Only the reply is needed from here on, which may be republished
        // until the deadline: a large request body is not held that long.
        drop(delivery.data);
        let ids = IdsText::of(trace.span_context());
        // At the highest level, so that the span is on whenever any line
        // is: at `info` it was off under `RUST_LOG=warn`, and the
        // warnings about a delivery did not say which one.
        let span = tracing::error_span!(
            "delivery",
            correlation_id = properties.reply_correlation_id().unwrap_or(""),
            callid = request.as_ref().map(Request::callid),
            source = request.as_ref().and_then(Request::source),
            redelivered,
            trace_id = %ids.trace_id(),
            span_id = %ids.span_id(),
        );
        let abandon = self.abandon.clone();
        let unanswered = async {
            tokio::select! {
                _ = abandon.cancelled() => {
                    tracing::debug!("connection lost before the request was settled; RabbitMQ redelivers it");
                    Some("connection lost")
                }
                unanswered = self.handle(request, &properties, unsettled, &trace) => unanswered,
            }
        }
        .instrument(span)
        .await;
        trace.finish(unanswered);
    }

    /// Handles the delivery; why it was not answered, if it was not.
    /// `request` is `None` when reading it panicked.
    async fn handle(
        &self,
        request: Option<Request>,
        properties: &RequestProperties<'_>,
        unsettled: Unsettled,
        trace: &DeliveryTrace,
    ) -> Option<&'static str> {
        let decided = match request {
            Some(request) => {
                let deciding = self.service.decide_guarded(request, self.received);
                // While exporting, the Redis round trips become child spans
                // of the delivery's, through the context current while the
                // work is polled.
                match trace.work_context() {
                    Some(context) => deciding.with_context(context).await,
                    None => deciding.await,
                }
            }
            None => None,
        };
        let Some(handled) = decided else {
            return self
                .dead_letter(unsettled, DeadLetter::Panicked, UNKNOWN_KIND)
                .await;
        };
        let kind = handled.kind.map_or(UNKNOWN_KIND, |k| k.label());
        match &handled.action {
            Action::DeadLetter { why } => {
                self.dead_letter(unsettled, DeadLetter::Unanswered(*why), kind)
                    .await
            }
            Action::Reply { route, body } => {
                let reply = Reply {
                    route,
                    body,
                    correlation_id: properties.reply_correlation_id(),
                };
                self.reply_and_settle(unsettled, reply, &handled, kind, trace)
                    .await
            }
        }
    }

    /// Publishes the reply until [`settle`] decides, and carries the
    /// decision out; why the request was not answered, if it was not.
    async fn reply_and_settle(
        &self,
        unsettled: Unsettled,
        reply: Reply<'_>,
        handled: &Handled,
        kind: &'static str,
        trace: &DeliveryTrace,
    ) -> Option<&'static str> {
        let amqp = &self.settings.amqp;
        let deadline = self.received + self.settings.request_deadline();
        let mut backoff = Backoff::new(REPUBLISH_START, REPUBLISH_CAP);
        let exchange = reply.exchange(&amqp.reply_exchange);
        loop {
            let confirm_wait = self.settings.request_deadline();
            let send = trace.send(&Sent {
                exchange,
                routing_key: reply.route.routing_key(),
                template: reply.route.template(),
                correlation_id: reply.correlation_id,
            });
            let headers = send.context().map(reply_headers);
            let outcome = publish(
                &self.channel,
                exchange,
                &amqp.app_id,
                reply,
                headers,
                confirm_wait,
            )
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "publishing the reply failed");
                PublishOutcome::Failed
            });
            send.finish(outcome.error());
            let channel = if self.channel.status().connected() {
                ChannelState::Open
            } else {
                ChannelState::Closed
            };
            match settle(outcome, channel, Instant::now() < deadline) {
                Settle::Ack { unroutable } => {
                    if unroutable {
                        ReplyUnroutable {
                            route: reply.route.label(),
                            routing_key: reply.route.routing_key(),
                        }
                        .emit();
                    }
                    self.ack(unsettled, handled.result, kind).await;
                    return None;
                }
                Settle::Retry => {
                    tracing::warn!("reply refused by RabbitMQ (nack); publishing again");
                    tokio::time::sleep(backoff.next_pause()).await;
                }
                Settle::DeadLetter(why) => {
                    tracing::debug!(?outcome, "last publish of the reply");
                    return self.dead_letter(unsettled, why, kind).await;
                }
                Settle::Requeue => {
                    self.in_hand.release();
                    let wait_ms = self.settings.limits.request_deadline_ms;
                    match unsettled.requeue().await {
                        Ok(()) => tracing::warn!(
                            wait_ms,
                            "reply not confirmed in time; the request goes back for redelivery"
                        ),
                        Err(error) => {
                            tracing::warn!(%error, "requeue failed; RabbitMQ will redeliver the request")
                        }
                    }
                    return Some("reply not confirmed in time");
                }
                Settle::LeaveForRedelivery => {
                    tracing::warn!("channel lost before the reply was confirmed; leaving the request for redelivery");
                    return Some("channel lost");
                }
            }
        }
    }

    async fn ack(&self, unsettled: Unsettled, result: &'static str, kind: &'static str) {
        self.in_hand.release();
        // Sent with others within a millisecond (see `Acknowledger`).
        unsettled.ack().await;
        let elapsed = self.received.elapsed();
        RequestAnswered {
            kind,
            result,
            elapsed,
        }
        .emit();
    }

    /// Rejects the request into the dead-letter queue, and logs and counts
    /// why: the one way a request is dead-lettered. Returns the reason.
    async fn dead_letter(
        &self,
        unsettled: Unsettled,
        why: DeadLetter,
        kind: &'static str,
    ) -> Option<&'static str> {
        self.in_hand.release();
        match unsettled.reject().await {
            Ok(()) => RequestDeadLettered {
                kind,
                reason: why.reason(),
                property: why.property(),
                fault: why.is_fault(),
                elapsed: self.received.elapsed(),
            }
            .emit(),
            Err(error) => {
                tracing::warn!(%error, reason = why.reason(), "reject failed; RabbitMQ will redeliver the request");
            }
        }
        Some(why.reason())
    }
}

/// The properties the route and the reply need, borrowed from the
/// delivery: it is kept until the request is settled anyway.
fn request_properties(p: &BasicProperties) -> RequestProperties<'_> {
    fn text(value: &Option<ShortString>) -> Option<&str> {
        value.as_ref().map(ShortString::as_str)
    }
    // The patched parser marks what it decoded from bytes that were not
    // UTF-8 (patches/amq-protocol-types/PATCH.md).
    let replaced = |value: &Option<ShortString>| {
        value
            .as_ref()
            .is_some_and(ShortString::replaced_invalid_utf8)
    };
    let read = [
        ("reply_to", p.reply_to()),
        ("correlation_id", p.correlation_id()),
        ("message_id", p.message_id()),
        ("app_id", p.app_id()),
    ];
    let not_utf8 = read
        .into_iter()
        .find(|(_, value)| replaced(value))
        .map(|(name, _)| name)
        .or_else(|| {
            p.headers()
                .as_ref()
                .is_some_and(has_key_not_utf8)
                .then_some("a header key")
        });
    RequestProperties {
        reply_to: text(p.reply_to()),
        correlation_id: text(p.correlation_id()),
        message_id: text(p.message_id()),
        app_id: text(p.app_id()),
        not_utf8,
    }
}

/// Whether a key of `table`, or of a table nested in it, was not UTF-8 on
/// the wire. The patched parser bounds the nesting (64 levels), and so this
/// recursion.
fn has_key_not_utf8(table: &FieldTable) -> bool {
    table
        .inner()
        .iter()
        .any(|(key, value)| key.replaced_invalid_utf8() || value_has_key_not_utf8(value))
}

fn value_has_key_not_utf8(value: &AMQPValue) -> bool {
    match value {
        AMQPValue::FieldTable(table) => has_key_not_utf8(table),
        AMQPValue::FieldArray(array) => array.as_slice().iter().any(value_has_key_not_utf8),
        _ => false,
    }
}
