//! [`PlainFields`]: the text format's fields, written as tracing-subscriber's
//! `DefaultFields` writes them, at a fraction of its cost on the fields
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

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};
use tracing_subscriber::fmt::FormatFields;

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
            writer: Writer::new(&mut text),
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result?;
        writer.write_str(&text)
    }
}

struct PlainVisitor<'a> {
    writer: Writer<'a>,
    /// Nothing written yet: the next field goes without a space before it.
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Whether `field` may be written here rather than by `DefaultVisitor`:
    /// a name it writes as it is.
    fn writes_directly(&self, field: &Field) -> bool {
        let name = field.name();
        name != "message" && !name.starts_with("r#") && !name.starts_with("log.")
    }

    /// `name=value`, after a space unless it is the first field.
    fn write(&mut self, name: &str, quoted: bool, value: &str) {
        let separator = if std::mem::take(&mut self.is_empty) {
            ""
        } else {
            " "
        };
        let quote = if quoted { "\"" } else { "" };
        self.result = [separator, name, "=", quote, value, quote]
            .into_iter()
            .try_for_each(|part| self.writer.write_str(part));
    }

    /// Lets `DefaultVisitor` write `field`.
    fn delegate(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
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
        if self.writes_directly(field) && is_plain(value) {
            self.write(field.name(), true, value);
        } else {
            self.delegate(field, |v| v.record_str(field, value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.result.is_err() {
            return;
        }
        if self.writes_directly(field) {
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
        if self.writes_directly(field) {
            // The trace and span ids: `DefaultVisitor` writes `name=` and
            // the value's `Debug` too, but paints the first two.
            self.write(field.name(), false, "");
            if self.result.is_ok() {
                self.result = write!(self.writer, "{value:?}");
            }
        } else {
            self.delegate(field, |v| v.record_debug(field, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;

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
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(ansi)
            .without_time()
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
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
        }
    }
}
