//! Logs: tracing lines on standard error, text or JSON, the level from
//! `RUST_LOG`.
//!
//! Logging is best-effort (docs/protocol.md section 7): a closed, full or
//! slow log sink loses lines, never requests. Lines are handed to a writer
//! thread through a bounded queue that drops what does not fit, so no
//! thread that serves ever waits on standard error, and a write error
//! (a pipe whose reader went away, `EPIPE`; a non-blocking descriptor that
//! is full, `EAGAIN`) costs that line only. tracing-subscriber's own
//! report of a failed write is turned off: it is an `eprintln!`, which
//! panics on the very error it reports (docs/upstream-reports.md).
//! `SIGPIPE` needs nothing: the Rust runtime ignores it before `main`, so
//! a write to a closed pipe returns `EPIPE` instead of ending the process.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use super::log_fields::{PlainFields, PlainJsonFields};
use crate::settings::LogFormat;

/// Lines waiting for the writer thread; past this, new lines are dropped.
/// A few seconds of a warning per request at full rate, a few megabytes
/// at most.
const QUEUED_LINES: usize = 8192;

/// The writer thread's name.
const WRITER_THREAD: &str = "lcm-log-writer";

/// The writer thread's guard, kept until [`flush_logs`].
static WRITER: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Installs the global log subscriber writing to standard error. Standard
/// output is kept for what a command answers. `quiet` are filter
/// directives that hold a dependency's own lines back whatever `RUST_LOG`
/// says (see `crate::amqp::QUIET_LOGS`). [`flush_logs`] writes out what is
/// queued before the process exits.
pub fn init_logs(format: LogFormat, quiet: &[&str]) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let mut refused = Vec::new();
    for directive in quiet {
        match directive.parse() {
            Ok(directive) => filter = filter.add_directive(directive),
            Err(error) => refused.push(format!("log directive `{directive}`: {error}")),
        }
    }
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name(WRITER_THREAD)
        .finish(std::io::stderr());
    // Colour codes only for a person at a terminal: in a file or a log
    // collector they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false)
        .with_writer(writer);
    // A second initialisation (a test calling twice) keeps the first, and
    // its writer thread.
    let installed = match format {
        LogFormat::Text => builder.fmt_fields(PlainFields).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .fmt_fields(PlainJsonFields)
            .try_init(),
    };
    if installed.is_ok() {
        *WRITER.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
    }
    for line in refused {
        tracing::warn!("{line}");
    }
}

/// Writes out the lines still queued, waiting `within` at most: a log sink
/// that does not take them by then loses them. Lines logged afterwards
/// are dropped. Called once, as the process ends.
pub fn flush_logs(within: Duration) {
    let Some(guard) = WRITER.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    // The guard's drop waits for the writer thread, and when the queue
    // stays full it prints a notice to standard output, which can block
    // or panic in turn (docs/upstream-reports.md).
    super::on_own_thread_within(FLUSH_THREAD, within, move || drop(guard));
}

/// The name of the thread that flushes the logs at exit.
const FLUSH_THREAD: &str = "lcm-log-flush";
