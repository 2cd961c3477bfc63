//! The consumer's supervisor: one session after another, each on the next
//! broker endpoint. What follows a failed session is [`FailOver`]'s call:
//! the next endpoint at once, a pause once every endpoint has failed in a
//! row (docs/protocol.md section 7), or a stop on a topology the broker
//! refuses before anything was served.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::consumer_state::ConsumerState;
use super::endpoints::Endpoints;
use super::failover::{FailOver, Failure, Next, Pace};
use super::session::{Session, SessionError};
use super::topology::TopologyError;
use crate::backoff::Backoff;
use crate::service::{Service, Store};
use crate::settings::Settings;

const RECONNECT_START: Duration = Duration::from_millis(200);
const RECONNECT_CAP: Duration = Duration::from_secs(10);
/// The cap after a round in which some node answered but refused for a
/// reason of its own: short, so that the node's return is seen at once.
const NODE_LOCAL_CAP: Duration = Duration::from_secs(1);

/// Why consuming stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The topology could not be declared on the first connection: a
    /// start-up error (docs/protocol.md section 2).
    #[error(transparent)]
    Topology(#[from] TopologyError),
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
    let mut failover = FailOver::new(endpoints.len());
    let mut backoff = Backoff::new(RECONNECT_START, RECONNECT_CAP);
    let mut node_local_backoff = Backoff::new(RECONNECT_START, NODE_LOCAL_CAP);
    let mut attempt: u64 = 0;
    while !shutdown.is_cancelled() {
        attempt += 1;
        let endpoint = endpoints.next_endpoint();
        let url = endpoint.redacted;
        let session = Session {
            settings: &settings,
            service: &service,
            state: &state,
            shutdown: &shutdown,
            resumed: failover.served_once(),
        };
        let (failure, refused) = match session.run(endpoint).await {
            Ok(()) => return Ok(()),
            Err(SessionError::Lost { consumed }) => {
                if consumed {
                    // Consuming worked: the next failures start afresh.
                    backoff.reset();
                    node_local_backoff.reset();
                }
                (Failure::Lost { consumed }, None)
            }
            Err(SessionError::Refused { error, refusal }) => {
                (Failure::Refused(refusal), Some(error))
            }
        };
        let next = failover.after(failure);
        if let Some(error) = refused {
            if next == Next::Stop {
                return Err(error.into());
            }
            tracing::error!(url, %error, ?failure, "topology declaration refused");
        }
        let pause = match next {
            // Only a refusal stops, and it has returned above.
            Next::Stop | Next::OtherEndpoint => {
                tracing::warn!(
                    url,
                    attempt,
                    "AMQP connection lost, unavailable or refused; trying the next endpoint"
                );
                continue;
            }
            Next::Pause(Pace::Full) => backoff.next_pause(),
            Next::Pause(Pace::Short) => node_local_backoff.next_pause(),
        };
        tracing::warn!(
            url,
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
