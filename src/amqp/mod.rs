//! Every line that speaks AMQP (lapin).
//!
//! The files in the order one request meets them:
//! - `connection`: a named connection to the broker, plain or TLS;
//!   `endpoints` and `failover` (pure): which cluster node to try next;
//! - `supervisor`: one session after another, until shutdown;
//!   `consumer_state`: whether a consumer is live, for `/readyz`;
//! - `session`: one connection's life: `topology` declared, prefetch and
//!   confirms set, consume, drain;
//! - `delivery`: one delivery's task: the service's decision, the reply,
//!   the settlement, and the one place that dead-letters;
//! - `publisher`: the reply published and confirmed, as a
//!   `PublishOutcome`; `settle` (pure): what then becomes of the request;
//!   `trace_headers`: the W3C trace context read from the request's
//!   headers and written into the reply's;
//! - `acknowledger`: the acks of one channel, batched by its own flusher;
//!   `ack_tracker` (pure): which settled tags one ack frame can cover.
//!
//! Beside the consumer: `requester`, the Direct Reply-to requester of the
//! `request` and `bench` commands, and `connection::Probe` for `check`.

mod ack_tracker;
mod acknowledger;
mod connection;
mod consumer_state;
mod delivery;
mod endpoints;
mod failover;
mod publisher;
mod requester;
mod session;
mod settle;
mod supervisor;
pub mod topology;
mod trace_headers;

pub use self::connection::{connect, connect_first, replica_name, Probe};
pub use self::consumer_state::ConsumerState;
pub use self::requester::{ReceivedReply, Requester, Sent};
pub use self::supervisor::{run, ConsumeError};
pub use self::topology::RequestQueueState;

/// Log filter directives for lapin's own lines. lapin warns of every
/// returned message with the whole message, body included (a 10 MB reply
/// made a 40 MB line); the worker logs its own bounded warning for an
/// unroutable reply instead.
pub const QUIET_LOGS: &[&str] = &["lapin::returned_messages=error"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quiet_log_directives_parse() {
        for directive in QUIET_LOGS {
            directive
                .parse::<tracing_subscriber::filter::Directive>()
                .unwrap();
        }
    }

    #[test]
    fn a_replica_is_named_by_app_id_host_and_pid() {
        let name = replica_name("lcm-outcome-worker");
        let pid = std::process::id();
        assert!(name.starts_with("lcm-outcome-worker@"), "{name}");
        assert!(name.ends_with(&format!(" pid {pid}")), "{name}");
        let host = &name["lcm-outcome-worker@".len()..name.len() - format!(" pid {pid}").len()];
        assert!(!host.is_empty(), "{name}");
    }
}
