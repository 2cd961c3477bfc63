//! Signals (docs/protocol.md section 7): SIGTERM, SIGINT and SIGHUP start
//! the drain by cancelling a token that the worker, or a test, can also
//! cancel; a second one during the drain stops the process at once.
//!
//! SIGHUP is taken as SIGTERM: a worker is not a daemon that rereads its
//! configuration, and a closed terminal or a supervisor's hang-up means
//! "stop", which must never lose what is in hand.
//!
//! Stopping at once is an exit, without closing the channel: the broker
//! sees the connection drop and redelivers every delivery still
//! unacknowledged, which is what "stop now" asks for, and nothing in
//! hand can hold the exit up. The status is that of a process ended by
//! the second signal, 128 + its number (130 after SIGINT, 143 after
//! SIGTERM, 129 after SIGHUP), so that it reads as a stop, not as a clean
//! shutdown (0) nor as a failure.

use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::telemetry;

/// How long the last log lines may take to be written before a stop at once.
const LOG_FLUSH: Duration = Duration::from_millis(500);

/// A token cancelled on the first SIGTERM, SIGINT or SIGHUP; a second one
/// of these ends the process. Must be called inside the runtime.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut signals = Signals {
        terminate: signal(SignalKind::terminate())?,
        interrupt: signal(SignalKind::interrupt())?,
        hangup: signal(SignalKind::hangup())?,
    };
    let drain = token.clone();
    tokio::spawn(async move {
        let first = signals.next().await;
        tracing::info!(
            signal = first.name,
            "stopping: draining the deliveries in hand"
        );
        drain.cancel();
        let second = signals.next().await;
        tracing::warn!(
            signal = second.name,
            exit_status = second.exit_status(),
            "second signal: stopping at once; RabbitMQ redelivers the deliveries in hand"
        );
        telemetry::flush_logs(LOG_FLUSH);
        std::process::exit(second.exit_status());
    });
    Ok(token)
}

/// The signals that stop the worker.
struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

/// One signal received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Received {
    name: &'static str,
    number: i32,
}

impl Received {
    /// The status of a process ended by this signal, as a shell reports it.
    fn exit_status(self) -> i32 {
        128 + self.number
    }
}

impl Signals {
    async fn next(&mut self) -> Received {
        let (name, kind) = tokio::select! {
            _ = self.terminate.recv() => ("SIGTERM", SignalKind::terminate()),
            _ = self.interrupt.recv() => ("SIGINT", SignalKind::interrupt()),
            _ = self.hangup.recv() => ("SIGHUP", SignalKind::hangup()),
        };
        Received {
            name,
            number: kind.as_raw_value(),
        }
    }
}
