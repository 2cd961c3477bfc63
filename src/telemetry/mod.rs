//! Logs and metrics: the tracing subscriber (text or JSON, level from
//! `RUST_LOG`), a throttle for log lines every request would repeat, and
//! the metrics catalogue with its Prometheus recorder.

mod logs;
pub mod metrics;
mod throttle;

pub use self::logs::init_logs;
pub use self::metrics::{metrics_handle, metrics_upkeep};
pub use self::throttle::Throttle;
