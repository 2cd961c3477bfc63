//! Logs and metrics: the tracing subscriber (text or JSON, level from
//! `RUST_LOG`), and the metrics catalogue with its Prometheus recorder.

mod logs;
pub mod metrics;

pub use self::logs::{flush_logs, init_logs};
pub use self::metrics::{metrics_handle, metrics_upkeep};
