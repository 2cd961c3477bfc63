//! The consumer's supervisor: one session after another, each on the next
//! broker endpoint, with backoff once every endpoint has failed in a row
//! (docs/protocol.md section 7). It ends when shutdown is asked for, or on a
//! topology the broker refuses before anything was served.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::endpoints::Endpoints;
use super::session::{Session, SessionError};
use super::topology::TopologyError;
use crate::backoff::Backoff;
use crate::service::{Service, Store};
use crate::settings::Settings;

const RECONNECT_START: Duration = Duration::from_millis(200);
const RECONNECT_CAP: Duration = Duration::from_secs(10);

/// Why consuming stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The topology could not be declared on the first connection: a
    /// start-up error (docs/protocol.md section 2).
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

/// Whether the worker holds a live consumer now; `/readyz` reads it.
#[derive(Debug, Clone, Default)]
pub struct ConsumerState {
    consuming: Arc<AtomicBool>,
}

impl ConsumerState {
    pub(super) fn set_consuming(&self, consuming: bool) {
        self.consuming.store(consuming, Ordering::SeqCst);
    }

    /// Whether the worker is consuming now.
    pub fn consuming(&self) -> bool {
        self.consuming.load(Ordering::SeqCst)
    }
}

/// Consumes until `shutdown` is cancelled, reconnecting whenever the
/// connection or channel is lost: each attempt goes to the next endpoint,
/// and a full round of failed attempts counts as one backoff step.
pub async fn run<S: Store>(
    settings: Arc<Settings>,
    service: Arc<Service<S>>,
    state: ConsumerState,
    shutdown: CancellationToken,
) -> Result<(), ConsumeError> {
    let mut endpoints = Endpoints::shuffled(settings.amqp_urls());
    let round = endpoints.len();
    let mut backoff = Backoff::new(RECONNECT_START, RECONNECT_CAP);
    let mut served_once = false;
    let mut attempt: u64 = 0;
    // Failed attempts since the last full round (or since consuming).
    let mut failed_in_round = 0;
    while !shutdown.is_cancelled() {
        attempt += 1;
        let endpoint = endpoints.next_endpoint();
        let session = Session {
            settings: &settings,
            service: &service,
            state: &state,
            shutdown: &shutdown,
            resumed: served_once,
        };
        match session.run(endpoint, &mut backoff).await {
            Ok(()) => return Ok(()),
            // Only a refusal by the broker is a `Topology` error.
            Err(SessionError::Topology(error)) if !served_once => {
                return Err(error.into());
            }
            Err(SessionError::Lost { consumed }) => {
                served_once |= consumed;
                if consumed {
                    failed_in_round = 0;
                }
            }
            Err(SessionError::Topology(error)) => {
                tracing::error!(%error, "topology declaration failed; retrying");
            }
        }
        failed_in_round += 1;
        if failed_in_round < round {
            tracing::warn!(
                url = endpoint.redacted,
                attempt,
                "AMQP connection lost or unavailable; trying the next endpoint"
            );
            continue;
        }
        failed_in_round = 0;
        let pause = backoff.next_pause();
        tracing::warn!(
            url = endpoint.redacted,
            attempt,
            pause_ms = pause.as_millis() as u64,
            "AMQP connection lost or unavailable on every endpoint; reconnecting"
        );
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    Ok(())
}
