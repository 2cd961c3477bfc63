//! Logs and metrics: the tracing subscriber (text or JSON, level from
//! `RUST_LOG`), the metrics catalogue with its Prometheus recorder, the
//! events that are both a log line and a metric, and a throttle for log
//! lines every request would repeat.

pub mod events;
mod logs;
pub mod metrics;
mod throttle;

pub use self::logs::{flush_logs, init_logs};
pub use self::metrics::{metrics_handle, metrics_upkeep};
pub use self::throttle::Throttle;
