//! Logs, metrics and traces: the tracing subscriber (text or JSON, level
//! from `RUST_LOG`), the metrics catalogue with its Prometheus recorder,
//! the events that are both a log line and a metric, a throttle for log
//! lines every request would repeat, each delivery's trace and its export
//! over OTLP.

pub mod events;
mod log_fields;
mod logs;
pub mod metrics;
mod throttle;
mod trace_export;
pub mod traces;

pub use self::logs::{flush_logs, init_logs};
pub use self::metrics::{metrics_handle, metrics_upkeep};
pub use self::throttle::Throttle;
pub use self::trace_export::{flush_traces, init_traces, TraceExport, SCHEMA_URL};

/// Runs `work` on a thread of its own, named `name`, and waits for it
/// `within` at most: what flushes at exit may block on a sink that does
/// not take it, and the process must end anyway.
fn on_own_thread_within(
    name: &str,
    within: std::time::Duration,
    work: impl FnOnce() + Send + 'static,
) {
    let (done, finished) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            crate::panics::contained_here();
            work();
            let _ = done.send(());
        });
    if spawned.is_ok() {
        let _ = finished.recv_timeout(within);
    }
}
