//! Logs and metrics: the tracing subscriber (text or JSON, level from
//! `RUST_LOG`), the metrics catalogue with its Prometheus recorder, and the
//! events that are both a log line and a metric.

pub mod events;
mod logs;
pub mod metrics;

pub use self::logs::init_logs;
pub use self::metrics::{metrics_handle, metrics_upkeep};
