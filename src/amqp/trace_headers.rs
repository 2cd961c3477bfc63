//! W3C trace context in AMQP headers (docs/protocol.md section 11): the
//! `traceparent` and `tracestate` entries of a request's headers table,
//! read with OpenTelemetry's W3C propagator, and written into a reply's
//! as that propagator writes them.
//!
//! The values are any publisher's bytes. What the propagator cannot take
//! starts a new trace and never fails the request: a value that is not a
//! string, not UTF-8 or oversized is treated as absent, and so is a
//! `tracestate` over the W3C limits (512 bytes, 32 list members), which
//! drops only the trace state.

use std::sync::LazyLock;

use lapin::types::{AMQPValue, FieldTable, LongString};
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use crate::telemetry::traces::IdsText;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// A `traceparent` longer than this is ignored. Version 00 is 55
/// characters; a later version may append fields, which the propagator
/// ignores, but nothing needs hundreds of bytes.
const MAX_TRACEPARENT: usize = 256;
/// The W3C limits a `tracestate` must keep to be propagated.
const MAX_TRACESTATE: usize = 512;
const MAX_TRACESTATE_MEMBERS: usize = 32;

static PROPAGATOR: LazyLock<TraceContextPropagator> = LazyLock::new(TraceContextPropagator::new);

/// The requester's trace context, if its headers carry a valid one.
pub(super) fn parent_of(headers: Option<&FieldTable>) -> Option<SpanContext> {
    let headers = headers?;
    // Most requests carry none: no propagator work for them.
    if !headers.contains_key(TRACEPARENT) {
        return None;
    }
    let context = PROPAGATOR.extract(&Headers(headers));
    let span = context.span().span_context().clone();
    span.is_valid().then_some(span)
}

/// The reply's headers: `context` as `traceparent` (and `tracestate`),
/// the text the W3C propagator would write (a property test holds the two
/// equal). Written here because the propagator formats the ids through
/// `core::fmt`, about 3,900 instructions a traced reply on the runtime's
/// thread (docs/performance.md, "Traces").
pub(super) fn reply_headers(context: &SpanContext) -> FieldTable {
    let mut headers = FieldTable::default();
    if !context.is_valid() {
        return headers;
    }
    let ids = IdsText::of(context);
    // Version 00 defines only the sampled flag; the propagator sends no other.
    let flags = if context.is_sampled() { "01" } else { "00" };
    let traceparent = ["00-", ids.trace_id(), "-", ids.span_id(), "-", flags].concat();
    headers.insert(TRACEPARENT.into(), long_string(traceparent));
    // W3C asks for no `tracestate` rather than an empty one.
    let state = context.trace_state().header();
    if !state.is_empty() {
        headers.insert(TRACESTATE.into(), long_string(state));
    }
    headers
}

fn long_string(text: String) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

struct Headers<'a>(&'a FieldTable);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let text = match self.0.inner().get(key)? {
            AMQPValue::LongString(value) => std::str::from_utf8(value.as_bytes()).ok()?,
            AMQPValue::ShortString(value) if !value.replaced_invalid_utf8() => value.as_str(),
            _ => return None,
        };
        let within = match key {
            TRACEPARENT => text.len() <= MAX_TRACEPARENT,
            TRACESTATE => {
                text.len() <= MAX_TRACESTATE && text.split(',').count() <= MAX_TRACESTATE_MEMBERS
            }
            _ => true,
        };
        within.then_some(text)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(|key| key.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::propagation::Injector;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry::Context;
    use proptest::prelude::*;

    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut table = FieldTable::default();
        for (key, value) in entries {
            table.insert((*key).into(), value.clone());
        }
        table
    }

    fn long(text: &str) -> AMQPValue {
        AMQPValue::LongString(text.into())
    }

    #[test]
    fn a_valid_traceparent_is_the_parent_as_long_or_short_string() {
        for value in [long(VALID), AMQPValue::ShortString(VALID.into())] {
            let parent = parent_of(Some(&table(&[(TRACEPARENT, value)]))).expect("parent");
            assert_eq!(
                parent.trace_id(),
                TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736)
            );
            assert_eq!(parent.span_id(), SpanId::from(0x00f067aa0ba902b7));
            assert!(parent.is_sampled() && parent.is_remote());
        }
    }

    #[test]
    fn what_the_propagator_cannot_take_means_no_parent() {
        let oversized = format!("{VALID}-{}", "a".repeat(300));
        #[rustfmt::skip]
        let refused: [AMQPValue; 10] = [
            long(""),
            long("not a traceparent"),
            long("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            long("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            long("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            long("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            long(&format!("{VALID}-extra")),
            long(&oversized),
            AMQPValue::LongString(LongString::from(b"00-\xff\xfe".to_vec())),
            AMQPValue::LongLongInt(1),
        ];
        for value in refused {
            assert_eq!(
                parent_of(Some(&table(&[(TRACEPARENT, value.clone())]))),
                None,
                "{value:?}"
            );
        }
        assert_eq!(parent_of(None), None);
        assert_eq!(
            parent_of(Some(&table(&[("TraceParent", long(VALID))]))),
            None
        );
    }

    #[test]
    fn a_later_version_with_more_fields_is_read_as_version_00() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
        assert!(parent_of(Some(&table(&[(TRACEPARENT, long(later))]))).is_some());
    }

    #[test]
    fn a_tracestate_over_the_w3c_limits_is_dropped_and_the_parent_kept() {
        let members = (0..33)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let long_value = format!("k={}", "v".repeat(600));
        for state in [members, long_value] {
            let headers = table(&[(TRACEPARENT, long(VALID)), (TRACESTATE, long(&state))]);
            let parent = parent_of(Some(&headers)).expect("parent kept");
            assert_eq!(parent.trace_state().header(), "");
        }
        let headers = table(&[(TRACEPARENT, long(VALID)), (TRACESTATE, long("a=1,b=2"))]);
        assert_eq!(
            parent_of(Some(&headers)).unwrap().trace_state().header(),
            "a=1,b=2"
        );
    }

    #[test]
    fn the_reply_carries_the_context_as_a_long_string() {
        let headers = table(&[(TRACEPARENT, long(VALID)), (TRACESTATE, long("a=1"))]);
        let parent = parent_of(Some(&headers)).unwrap();
        let reply = reply_headers(&parent);
        assert_eq!(reply.inner().get(TRACEPARENT), Some(&long(VALID)));
        assert_eq!(reply.inner().get(TRACESTATE), Some(&long("a=1")));
        let unsampled = SpanContext::new(
            parent.trace_id(),
            parent.span_id(),
            TraceFlags::default(),
            false,
            Default::default(),
        );
        let reply = reply_headers(&unsampled);
        assert_eq!(
            reply.inner().get(TRACEPARENT),
            Some(&long(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
            ))
        );
        assert!(reply.inner().get(TRACESTATE).is_none());
    }

    /// The headers the W3C propagator writes for `context`: what
    /// [`reply_headers`] must write.
    fn propagated(context: &SpanContext) -> FieldTable {
        struct Written<'a>(&'a mut FieldTable);
        impl Injector for Written<'_> {
            fn set(&mut self, key: &str, value: String) {
                if !value.is_empty() {
                    self.0.insert(key.into(), long(&value));
                }
            }
        }
        let mut headers = FieldTable::default();
        let context = Context::new().with_remote_span_context(context.clone());
        PROPAGATOR.inject_context(&context, &mut Written(&mut headers));
        headers
    }

    proptest! {
        #[test]
        fn the_reply_headers_are_what_the_propagator_writes(
            trace_id in prop_oneof![Just(0), any::<u128>()],
            span_id in prop_oneof![Just(0), any::<u64>()],
            flags in any::<u8>(),
            remote in any::<bool>(),
            members in proptest::collection::vec(
                ("[a-z][a-z0-9_*/-]{0,8}", "[!-+--<>-~]{1,8}"),
                0..4,
            ),
        ) {
            let context = SpanContext::new(
                TraceId::from(trace_id),
                SpanId::from(span_id),
                TraceFlags::new(flags),
                remote,
                TraceState::from_key_value(members).unwrap_or_default(),
            );
            prop_assert_eq!(reply_headers(&context), propagated(&context));
        }
    }
}
