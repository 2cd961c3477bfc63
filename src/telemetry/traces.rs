//! One delivery's trace (docs/protocol.md section 11): a `process` span
//! (CONSUMER) continuing the requester's trace, a child span per Redis
//! round trip (CLIENT) and per publish of the reply (PRODUCER), whose
//! context goes into the reply's headers.
//!
//! The requester's context is the process span's parent, not a link: the
//! requester waits for this reply, so its trace reads as one call tree.
//!
//! While export is off nothing is recorded, and the trace context still
//! goes on at no more cost than new span ids: a process span's context
//! carries the requester's trace id and sampled flag, so that the reply
//! continues the requester's trace as it would through an exporting
//! worker, and log lines carry ids to search for.

use std::cell::RefCell;
use std::sync::Arc;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceState,
    Tracer as _,
};
use opentelemetry::{Context, KeyValue, StringValue};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator, Span};
use opentelemetry_semantic_conventions::attribute as semconv;

use super::metrics::RedisOperation;
use super::trace_export::tracer;

/// Where a delivery came from, for the process span.
#[derive(Debug, Clone, Copy)]
pub struct Consumed<'a> {
    /// The exchange the request was published to.
    pub exchange: &'a str,
    /// Its routing key (the source).
    pub routing_key: &'a str,
    /// The queue it was consumed from.
    pub queue: &'a str,
    /// The delivery tag on this channel.
    pub delivery_tag: u64,
    /// The request's correlation id (or message id).
    pub correlation_id: Option<&'a str>,
}

/// Where a reply goes, for a send span.
#[derive(Debug, Clone, Copy)]
pub struct Sent<'a> {
    /// The exchange; empty for the default exchange.
    pub exchange: &'a str,
    /// The routing key.
    pub routing_key: &'a str,
    /// The low-cardinality form of a temporary reply queue's name
    /// (`amq.rabbitmq.reply-to.*`), if it is one.
    pub template: Option<&'static str>,
    /// The correlation id the reply carries.
    pub correlation_id: Option<&'a str>,
}

/// A span being recorded while exporting; `None` while export is off.
/// Boxed: the SDK's span is about 300 bytes, and a delivery's task holds
/// its spans across its awaits, so every task would carry that much
/// whether or not anything is exported.
type Recorded = Option<Box<Span>>;

/// The trace of one delivery.
#[derive(Debug)]
pub struct DeliveryTrace {
    /// The process span, while exporting.
    span: Recorded,
    /// The process span's context: its ids for the log lines, its parent
    /// for the children.
    context: SpanContext,
    /// Whether the request carried a valid trace context.
    continued: bool,
}

impl DeliveryTrace {
    /// Starts the process span of a delivery whose request carried
    /// `parent` (already checked: valid or `None`).
    pub fn start(parent: Option<SpanContext>, consumed: &Consumed<'_>) -> Self {
        let continued = parent.is_some();
        let Some(tracer) = tracer() else {
            return Self {
                span: None,
                context: unrecorded_child(parent.as_ref()),
                continued,
            };
        };
        let parent_cx = match parent {
            Some(parent) => Context::new().with_remote_span_context(parent),
            None => Context::new(),
        };
        let destination = destination(consumed.exchange, consumed.routing_key);
        let mut attributes = messaging(
            "process",
            &destination,
            consumed.routing_key,
            consumed.correlation_id,
        );
        attributes.push(KeyValue::new(
            semconv::MESSAGING_DESTINATION_SUBSCRIPTION_NAME,
            shared(consumed.queue),
        ));
        attributes.push(KeyValue::new(
            semconv::MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG,
            i64::try_from(consumed.delivery_tag).unwrap_or(i64::MAX),
        ));
        let span = tracer
            .span_builder(["process ", &destination].concat())
            .with_kind(SpanKind::Consumer)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent_cx);
        Self {
            context: span.span_context().clone(),
            span: Some(Box::new(span)),
            continued,
        }
    }

    /// The process span's context, for the log lines.
    pub fn span_context(&self) -> &SpanContext {
        &self.context
    }

    /// The context the delivery's work runs in, so that Redis round trips
    /// become child spans ([`redis_span`]); `None` while export is off.
    pub fn work_context(&self) -> Option<Context> {
        self.span
            .as_ref()
            .map(|_| Context::new().with_remote_span_context(self.context.clone()))
    }

    /// Starts the span of one publish of the reply. While export is off
    /// it is the process span's own context that the reply carries, and
    /// only when the request carried one to continue.
    pub fn send(&self, sent: &Sent<'_>) -> SendSpan {
        let Some(tracer) = tracer().filter(|_| self.span.is_some()) else {
            return SendSpan {
                span: None,
                context: self.continued.then(|| self.context.clone()),
            };
        };
        let destination = destination(sent.exchange, sent.routing_key);
        let mut attributes = messaging("send", &destination, sent.routing_key, sent.correlation_id);
        // A temporary queue is named by its template, which keeps the
        // span names few.
        let named = match sent.template {
            Some(template) => {
                let template = self::destination(sent.exchange, template);
                attributes.push(KeyValue::new(
                    semconv::MESSAGING_DESTINATION_TEMPLATE,
                    shared(&template),
                ));
                attributes.push(KeyValue::new(
                    semconv::MESSAGING_DESTINATION_TEMPORARY,
                    true,
                ));
                template
            }
            None => destination,
        };
        let parent = Context::new().with_remote_span_context(self.context.clone());
        let span = tracer
            .span_builder(["send ", &named].concat())
            .with_kind(SpanKind::Producer)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        SendSpan {
            context: Some(span.span_context().clone()),
            span: Some(Box::new(span)),
        }
    }

    /// Ends the process span: `error` names why the request was not
    /// answered (a dead-letter reason), if it was not.
    pub fn finish(self, error: Option<&'static str>) {
        end(self.span, error);
    }
}

/// The span of one publish of a reply.
#[derive(Debug)]
pub struct SendSpan {
    span: Recorded,
    /// The context the reply's headers carry, if any.
    context: Option<SpanContext>,
}

impl SendSpan {
    /// The trace context to put in the reply's headers.
    pub fn context(&self) -> Option<&SpanContext> {
        self.context.as_ref()
    }

    /// Ends the span: `error` names how the publish failed, if it did.
    pub fn finish(self, error: Option<&'static str>) {
        end(self.span, error);
    }
}

/// A span for one Redis round trip, child of the delivery being handled
/// (the current context), while export is on and a delivery is traced.
pub fn redis_span(operation: RedisOperation) -> Option<Box<Span>> {
    let tracer = tracer()?;
    let command = operation.command();
    let cx = Context::current();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let attributes = vec![
        KeyValue::new(semconv::DB_SYSTEM_NAME, "redis"),
        KeyValue::new(semconv::DB_OPERATION_NAME, command),
    ];
    Some(Box::new(
        tracer
            .span_builder(command)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(tracer, &cx),
    ))
}

/// Ends a Redis round trip's span; `failed` when it gave no answer.
pub fn end_redis_span(span: Option<Box<Span>>, failed: bool) {
    end(span, failed.then_some("redis_error"));
}

/// Ends `span`, if recorded, as failed with `error` if there is one.
fn end(span: Recorded, error: Option<&'static str>) {
    if let Some(mut span) = span {
        if let Some(error) = error {
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, error));
            span.set_status(Status::error(error));
        }
        span.end();
    }
}

/// The attributes every messaging span has: the system, the operation,
/// the destination, and the routing key and correlation id when there are.
fn messaging(
    operation: &'static str,
    destination: &str,
    routing_key: &str,
    correlation_id: Option<&str>,
) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new(semconv::MESSAGING_SYSTEM, "rabbitmq"),
        KeyValue::new(semconv::MESSAGING_OPERATION_NAME, operation),
        KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, operation),
        KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, shared(destination)),
    ];
    if !routing_key.is_empty() {
        attributes.push(KeyValue::new(
            semconv::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
            shared(routing_key),
        ));
    }
    if let Some(id) = correlation_id {
        attributes.push(KeyValue::new(
            semconv::MESSAGING_MESSAGE_CONVERSATION_ID,
            id.to_owned(),
        ));
    }
    attributes
}

/// Distinct values [`shared`] keeps per thread at most: requesters choose
/// routing keys, so the list is bounded, and values past it are copied.
const SHARED_MAX: usize = 64;

thread_local! {
    static SHARED: RefCell<Vec<Arc<str>>> = const { RefCell::new(Vec::new()) };
}

/// `text` as an attribute value shared from span to span. Destinations,
/// routing keys and the queue repeat across deliveries, and a span's
/// strings are freed on the batch processor's thread: each one copied is
/// an allocation freed across threads, which glibc's allocator serves
/// slowest (docs/performance.md, "Traces").
fn shared(text: &str) -> StringValue {
    SHARED.with_borrow_mut(|seen| {
        if let Some(value) = seen.iter().find(|value| value.as_ref() == text) {
            return StringValue::from(value.clone());
        }
        let value: Arc<str> = Arc::from(text);
        if seen.len() < SHARED_MAX {
            seen.push(value.clone());
        }
        StringValue::from(value)
    })
}

/// A span context's trace and span ids as the lowercase hexadecimal of
/// W3C trace context, for the log span of a delivery. Written into the
/// stack with `hex`: through the ids' own `Display`, each went through
/// `core::fmt`'s padded integer formatting (docs/performance.md, "The log
/// span").
pub struct IdsText {
    trace_id: [u8; 32],
    span_id: [u8; 16],
}

impl IdsText {
    /// The ids of `context`.
    pub fn of(context: &SpanContext) -> Self {
        let mut text = Self {
            trace_id: [0; 32],
            span_id: [0; 16],
        };
        // Cannot fail: each buffer is twice its id's length.
        let written = hex::encode_to_slice(context.trace_id().to_bytes(), &mut text.trace_id).and(
            hex::encode_to_slice(context.span_id().to_bytes(), &mut text.span_id),
        );
        debug_assert!(written.is_ok());
        text
    }

    /// The trace id: 32 hexadecimal digits.
    pub fn trace_id(&self) -> &str {
        std::str::from_utf8(&self.trace_id).unwrap_or_default()
    }

    /// The span id: 16 hexadecimal digits.
    pub fn span_id(&self) -> &str {
        std::str::from_utf8(&self.span_id).unwrap_or_default()
    }
}

/// The context of a span that is not recorded: a new span id in the
/// parent's trace, keeping its sampled flag and trace state, or a new
/// trace, not sampled, when there is no parent.
fn unrecorded_child(parent: Option<&SpanContext>) -> SpanContext {
    let ids = RandomIdGenerator::default();
    match parent {
        Some(parent) => SpanContext::new(
            parent.trace_id(),
            ids.new_span_id(),
            parent.trace_flags(),
            false,
            parent.trace_state().clone(),
        ),
        None => SpanContext::new(
            ids.new_trace_id(),
            ids.new_span_id(),
            TraceFlags::default(),
            false,
            TraceState::NONE,
        ),
    }
}

/// `{exchange}:{routing key}`, the default exchange named `amq.default`.
fn destination(exchange: &str, routing_key: &str) -> String {
    let exchange = if exchange.is_empty() {
        "amq.default"
    } else {
        exchange
    };
    [exchange, ":", routing_key].concat()
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceId};
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The ids as text are what their `Display` writes, the form
        /// `traceparent` carries.
        #[test]
        fn ids_text_is_the_ids_display(trace in any::<u128>(), span in any::<u64>()) {
            let context = SpanContext::new(
                TraceId::from_bytes(trace.to_be_bytes()),
                SpanId::from_bytes(span.to_be_bytes()),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            );
            let text = IdsText::of(&context);
            prop_assert_eq!(text.trace_id(), context.trace_id().to_string());
            prop_assert_eq!(text.span_id(), context.span_id().to_string());
        }
    }

    fn parent(flags: TraceFlags) -> SpanContext {
        SpanContext::new(
            TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
            SpanId::from(0x00f067aa0ba902b7),
            flags,
            true,
            TraceState::from_key_value([("vendor", "value")]).unwrap(),
        )
    }

    const CONSUMED: Consumed<'static> = Consumed {
        exchange: "lcm.requests",
        routing_key: "desk",
        queue: "lcm.desk",
        delivery_tag: 7,
        correlation_id: Some("c-1"),
    };

    #[test]
    fn unrecorded_the_trace_goes_on_with_a_new_span_and_the_parent_flags() {
        for flags in [TraceFlags::SAMPLED, TraceFlags::default()] {
            let parent = parent(flags);
            let trace = DeliveryTrace::start(Some(parent.clone()), &CONSUMED);
            let context = trace.span_context();
            assert_eq!(context.trace_id(), parent.trace_id());
            assert_ne!(context.span_id(), parent.span_id());
            assert_eq!(context.trace_flags(), flags);
            assert_eq!(context.trace_state(), parent.trace_state());
            assert!(trace.work_context().is_none());
            let send = trace.send(&Sent {
                exchange: "",
                routing_key: "amq.gen-1",
                template: None,
                correlation_id: None,
            });
            assert_eq!(send.context(), Some(context));
        }
    }

    #[test]
    fn unrecorded_without_a_parent_a_new_trace_for_the_logs_and_none_for_the_reply() {
        let trace = DeliveryTrace::start(None, &CONSUMED);
        assert!(trace.span_context().is_valid());
        assert!(!trace.span_context().is_sampled());
        let send = trace.send(&Sent {
            exchange: "lcm.replies",
            routing_key: "desk",
            template: None,
            correlation_id: None,
        });
        assert_eq!(send.context(), None);
    }

    #[test]
    fn a_trace_held_across_a_deliverys_awaits_stays_small() {
        // Every delivery's task holds one, and a send span while it
        // publishes, exported or not.
        assert!(std::mem::size_of::<DeliveryTrace>() <= 96);
        assert!(std::mem::size_of::<SendSpan>() <= 96);
    }

    #[test]
    fn shared_values_are_the_text_and_past_the_bound_still_are() {
        let first = shared("lcm.requests:lcm-bench");
        let again = shared("lcm.requests:lcm-bench");
        assert_eq!(first.as_str(), "lcm.requests:lcm-bench");
        assert_eq!(again.as_str(), first.as_str());
        for n in 0..SHARED_MAX * 2 {
            let key = format!("source-{n}");
            assert_eq!(shared(&key).as_str(), key);
        }
        SHARED.with_borrow(|seen| assert!(seen.len() <= SHARED_MAX));
    }

    #[test]
    fn destinations_are_exchange_and_routing_key() {
        assert_eq!(destination("lcm.requests", "desk"), "lcm.requests:desk");
        assert_eq!(
            destination("", "amq.rabbitmq.reply-to.*"),
            "amq.default:amq.rabbitmq.reply-to.*"
        );
    }
}
