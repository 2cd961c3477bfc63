//! [`PlainFields`] and [`PlainJsonFields`]: the text and JSON formats'
//! span and event fields, written as tracing-subscriber's `DefaultFields`
//! and `JsonFields` write them, at a fraction of their cost on the fields
//! every delivery has.
//!
//! `DefaultFields` paints each name and `=` through nu_ansi_term even with
//! colour off, and writes every string through `Debug`, one character at a
//! time. The delivery span's six fields (correlation id, callid, source,
//! redelivered, trace and span ids), formatted when the span is made, cost
//! 8,800 instructions of a request's 107,000 that way (docs/performance.md,
//! "The log span"). Here a string that `Debug` would leave as it is (plain
//! ASCII, no quote or backslash), a boolean and any other value's `Debug`
//! (the ids) are written directly, with the same text, and all of them in
//! one piece; messages, errors and other strings go to `DefaultVisitor`,
//! and everything while colour is on to `DefaultFields`.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

/// The text format's field formatter (see the module's documentation).
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainFields;

/// Room for a delivery span's fields (about 170 bytes with the bench's ids).
const FIELDS_CAPACITY: usize = 256;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        // With colour, or without the escaping of terminal sequences the
        // writer below has, the default formatter does it all.
        if writer.has_ansi_escapes() || !writer.sanitizes_ansi_escapes() {
            return DefaultFields::new().format_fields(writer, fields);
        }
        // Written in one piece: field by field, the span's string would
        // grow, and be copied, five or six times.
        let mut text = String::with_capacity(FIELDS_CAPACITY);
        let mut visitor = PlainVisitor {
            text: &mut text,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result?;
        writer.write_str(&text)
    }
}

struct PlainVisitor<'a> {
    /// Written to directly, not through a `Writer`: a `String` cannot fail
    /// a write, and the name, `=` and quotes go without a call each.
    text: &'a mut String,
    /// Nothing written yet: the next field goes without a space before it.
    is_empty: bool,
    result: fmt::Result,
}

/// Whether `field` may be written by [`PlainVisitor`] rather than by
/// `DefaultVisitor`: a name `DefaultVisitor` writes as it is.
fn writes_directly(field: &Field) -> bool {
    let name = field.name();
    name != "message" && !name.starts_with("r#") && !name.starts_with("log.")
}

impl PlainVisitor<'_> {
    /// `name=value`, after a space unless it is the first field.
    fn write(&mut self, name: &str, quoted: bool, value: &str) {
        if !std::mem::take(&mut self.is_empty) {
            self.text.push(' ');
        }
        self.text.push_str(name);
        self.text.push('=');
        if quoted {
            self.text.push('"');
            self.text.push_str(value);
            self.text.push('"');
        } else {
            self.text.push_str(value);
        }
    }

    /// Lets `DefaultVisitor` write `field`.
    fn delegate(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut visitor = DefaultVisitor::new(Writer::new(self.text), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        // It skips `log.*` fields (the `log` crate's metadata) without
        // writing; every other field it writes.
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }
}

/// Whether `Debug` writes `value` as it is between quotes: printable ASCII
/// without `"` or `\`. Anything else (a control character, a quote that
/// could end the field early, any non-ASCII character) is escaped by
/// `DefaultVisitor`, as before.
fn is_plain(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        if writes_directly(field) && is_plain(value) {
            self.write(field.name(), true, value);
        } else {
            self.delegate(field, |v| v.record_str(field, value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.result.is_err() {
            return;
        }
        if writes_directly(field) {
            self.write(field.name(), false, if value { "true" } else { "false" });
        } else {
            self.delegate(field, |v| v.record_bool(field, value));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_err() {
            return;
        }
        self.delegate(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        if writes_directly(field) {
            // The trace and span ids: `DefaultVisitor` writes `name=` and
            // the value's `Debug` too, but paints the first two.
            self.write(field.name(), false, "");
            if self.result.is_ok() {
                self.result = write!(self.text, "{value:?}");
            }
        } else {
            self.delegate(field, |v| v.record_debug(field, value));
        }
    }
}

/// The JSON format's span fields: the same object as tracing-subscriber's
/// `JsonFields` writes, without its map of owned values made for every span
/// and serialised at once (a third of a request's instructions with the
/// JSON format, before the span's fields were all given at its start).
/// Fields are written in their order, where `JsonFields` sorts them; the
/// JSON format reads them back as an object either way.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainJsonFields;

impl<'writer> FormatFields<'writer> for PlainJsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = JsonObject {
            text: Vec::with_capacity(FIELDS_CAPACITY),
        };
        fields.record(&mut visitor);
        visitor.text.push(b'}');
        if visitor.text.len() == 1 {
            return writer.write_str("{}");
        }
        visitor.text[0] = b'{';
        writer.write_str(std::str::from_utf8(&visitor.text).map_err(|_| fmt::Error)?)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        // Rare (the worker records no field on a span after its start): the
        // object is read, added to and written again, as `JsonFields` does.
        let mut added = String::new();
        self.format_fields(Writer::new(&mut added), fields)?;
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(if current.is_empty() { "{}" } else { current })
                .map_err(|_| fmt::Error)?;
        let added: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&added).map_err(|_| fmt::Error)?;
        object.extend(added);
        let text = serde_json::to_string(&object).map_err(|_| fmt::Error)?;
        current.fields = text;
        Ok(())
    }
}

/// Writes `,"name":value` for each field; the first comma becomes `{`. A
/// name given twice is written twice: the JSON format reads the object
/// back keeping the last, as `JsonFields`' map keeps it.
struct JsonObject {
    text: Vec<u8>,
}

impl JsonObject {
    fn field(&mut self, name: &str, value: impl serde::Serialize) {
        self.text.push(b',');
        // A string or a scalar written to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.text, name);
        self.text.push(b':');
        let _ = serde_json::to_writer(&mut self.text, &value);
    }
}

impl Visit for JsonObject {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // Through `Value`, as `JsonFields`: not finite, it is `null`.
        self.field(field.name(), serde_json::Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field.name(), value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field.name(), value);
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.field(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // As `JsonFields`, here only: the `log` crate's metadata is left
        // out, and a raw identifier's `r#` dropped.
        let name = field.name();
        if !name.starts_with("log.") {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.field(name, format_args!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;
    use tracing_subscriber::fmt::format::JsonFields;

    use super::*;

    /// Lines written to memory.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What `emit` logs through the text format with `fields`.
    fn render<N>(fields: N, ansi: bool, emit: &dyn Fn()) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        logged(emit, |sink| {
            tracing_subscriber::fmt()
                .with_writer(move || sink.clone())
                .with_ansi(ansi)
                .without_time()
                .fmt_fields(fields)
                .finish()
        })
    }

    /// What `emit` logs through the JSON format with `fields`, a value per
    /// line.
    fn render_json<N>(fields: N, emit: &dyn Fn()) -> Vec<serde_json::Value>
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let text = logged(emit, |sink| {
            tracing_subscriber::fmt()
                .with_writer(move || sink.clone())
                .without_time()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .fmt_fields(fields)
                .finish()
        });
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// What `emit` logs through the subscriber `build` makes around a sink.
    fn logged<S>(emit: &dyn Fn(), build: impl FnOnce(Sink) -> S) -> String
    where
        S: tracing::Subscriber + Send + Sync + 'static,
    {
        let sink = Sink::default();
        tracing::subscriber::with_default(build(sink.clone()), emit);
        let bytes = sink.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// A delivery's span and a warning in it, as the worker logs them.
    fn delivery(correlation_id: &str, callid: &str, redelivered: bool, reason: &str) {
        let span = tracing::error_span!(
            "delivery",
            correlation_id,
            callid,
            source = Some("desk"),
            redelivered,
            trace_id = %format_args!("{:032x}", 7u128),
        );
        let _entered = span.enter();
        tracing::warn!(
            reason,
            count = 3u64,
            r#type = "x",
            "dead-lettered: {callid}"
        );
        let error = io::Error::other("refused");
        tracing::error!(error = &error as &dyn std::error::Error, "failed");
        // A field recorded after its span is made (`add_fields`): none of
        // the worker's, a library's may.
        let late = tracing::error_span!("late", step = tracing::field::Empty, known = 1u64);
        late.record("step", reason);
        late.in_scope(|| tracing::warn!("with a field recorded late"));
    }

    #[test]
    fn plain_values_are_written_as_the_default_formatter_writes_them() {
        let emit = || delivery("c-1", "12345", false, "a reason");
        let plain = render(PlainFields, false, &emit);
        assert_eq!(plain, render(DefaultFields::new(), false, &emit));
        assert!(
            plain.contains(
                r#"delivery{correlation_id="c-1" callid="12345" source="desk" redelivered=false trace_id=00000000000000000000000000000007}"#
            ),
            "{plain}"
        );
    }

    #[test]
    fn json_span_fields_read_as_the_default_json_fields_read() {
        let emit = || {
            delivery("c-1", "12345", true, "a reason");
            let span = tracing::error_span!("other", r#type = ?"t", n = 1.5f64, nan = f64::NAN);
            let _entered = span.enter();
            tracing::warn!(bytes = &b"\x00\xff"[..], "in another");
        };
        let plain = render_json(PlainJsonFields, &emit);
        assert_eq!(plain, render_json(JsonFields::new(), &emit));
        assert_eq!(plain[0]["span"]["correlation_id"], "c-1");
        assert_eq!(plain[0]["span"]["redelivered"], true);
        assert_eq!(plain[2]["span"]["step"], "a reason");
        assert_eq!(plain[2]["span"]["known"], 1);
        assert_eq!(plain.len(), 4, "{plain:?}");
    }

    proptest! {
        /// Any value, quotes, control characters, escape sequences and
        /// all, and with colour on or off, reads as before.
        #[test]
        fn every_value_is_written_as_the_default_formatter_writes_it(
            correlation_id in any::<String>(),
            callid in "[ -~]{0,12}|\\PC{0,12}",
            redelivered in any::<bool>(),
            reason in "[\"\\\\\u{1b}a-z =]{0,12}",
            ansi in any::<bool>(),
        ) {
            let emit = || delivery(&correlation_id, &callid, redelivered, &reason);
            prop_assert_eq!(
                render(PlainFields, ansi, &emit),
                render(DefaultFields::new(), ansi, &emit)
            );
            prop_assert_eq!(
                render_json(PlainJsonFields, &emit),
                render_json(JsonFields::new(), &emit)
            );
        }
    }
}
