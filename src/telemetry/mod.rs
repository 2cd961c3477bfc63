//! Logs, metrics and traces: the tracing subscriber (text or JSON, level
//! from `RUST_LOG`), the metrics catalogue with its Prometheus recorder,
//! the events that are both a log line and a metric, a throttle for log
//! lines every request would repeat, each delivery's trace and its export
//! over OTLP.

pub mod events;
mod logs;
pub mod metrics;
mod throttle;
mod trace_export;
pub mod traces;

pub use self::logs::{flush_logs, init_logs};
pub use self::metrics::{metrics_handle, metrics_upkeep};
pub use self::throttle::Throttle;
pub use self::trace_export::{flush_traces, init_traces, TraceExport, SCHEMA_URL};
