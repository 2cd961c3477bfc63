//! One connection's life: connect, declare, set the prefetch and confirms,
//! consume, hand each delivery to its own task; on shutdown cancel the
//! consumer, drain within the grace time and close.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::acknowledger::Acknowledger;
use super::connection::{connect, replica_name};
use super::consumer_state::ConsumerState;
use super::delivery::DeliveryTask;
use super::endpoints::Endpoint;
use super::topology::{self, Refusal, TopologyError};
use crate::service::{Service, Store};
use crate::settings::Settings;
use crate::telemetry::metrics;

/// A connection attempt that hangs (a black-holed broker) is given up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Cancelling the consumer, and closing, are given up after this.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a session ended other than by shutdown.
pub(super) enum SessionError {
    /// The broker refused a declaration; `refusal` says what that means.
    Refused {
        error: TopologyError,
        refusal: Refusal,
    },
    /// The connection failed or dropped; `consumed` if it got as far as consuming.
    Lost { consumed: bool },
}

/// How consuming ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The worker is stopping.
    Shutdown,
    /// The broker cancelled the consumer; the channel still works.
    CancelledByBroker,
    /// The channel or the connection is gone.
    Lost,
}

/// One connection's life.
pub(super) struct Session<'a, S> {
    pub settings: &'a Arc<Settings>,
    pub service: &'a Arc<Service<S>>,
    pub state: &'a ConsumerState,
    pub shutdown: &'a CancellationToken,
    /// An earlier session consumed: reaching consuming is a reconnection.
    pub resumed: bool,
}

impl<S: Store> Session<'_, S> {
    /// Runs until shutdown (`Ok`) or loss.
    pub async fn run(&self, endpoint: Endpoint<'_>) -> Result<(), SessionError> {
        let lost = |consumed| SessionError::Lost { consumed };
        let amqp = &self.settings.amqp;
        let url = endpoint.redacted;
        tracing::info!(url, endpoint = endpoint.index, "connecting to RabbitMQ");
        let name = replica_name(&amqp.app_id);
        let connection =
            tokio::time::timeout(CONNECT_TIMEOUT, connect(endpoint.url, &name, &amqp.tls))
                .await
                .map_err(|_| tracing::warn!(url, "AMQP connect timed out"))
                .and_then(|r| r.map_err(|error| tracing::warn!(url, %error, "AMQP connect failed")))
                .map_err(|()| lost(false))?;
        // A broker that accepts the connection and then stops answering
        // must not hold the session here.
        let (channel, consumer) =
            tokio::time::timeout(CONNECT_TIMEOUT, subscribe(&connection, self.settings))
                .await
                .map_err(|_| {
                    tracing::warn!(url, "AMQP channel set-up timed out");
                    lost(false)
                })??;
        let tag = consumer.tag();
        self.state.set_consuming(true);
        if self.resumed {
            metrics::amqp_reconnected();
        }
        tracing::info!(
            url,
            queue = %amqp.request_queue,
            prefetch = amqp.prefetch,
            "consuming"
        );
        let tracker = TaskTracker::new();
        let abandon = CancellationToken::new();
        // Acks of this channel, batched; tags start again on a new channel.
        let acks = Acknowledger::start(channel.clone(), amqp.prefetch);
        let ended = self
            .consume(consumer, &channel, &acks, &tracker, &abandon)
            .await;
        self.state.set_consuming(false);
        tracker.close();
        match ended {
            Ended::Shutdown => {
                // Bounded, so that a silent broker cannot stretch the
                // shutdown past the grace time by much.
                let cancel = channel.basic_cancel(tag, BasicCancelOptions::default());
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, cancel).await;
                self.drain(&tracker).await;
            }
            // The channel still works (the queue was deleted, say): finish
            // what is in hand, so that requests already answered are not
            // delivered and answered again.
            Ended::CancelledByBroker => self.drain(&tracker).await,
            Ended::Lost => {
                // Nothing in hand can be settled on a lost channel: stop those
                // tasks rather than let them wait on confirms that may never
                // resolve. RabbitMQ redelivers.
                abandon.cancel();
            }
        }
        // The last acks before the channel closes (on a lost channel this
        // fails at once).
        acks.finish(CLOSE_TIMEOUT).await;
        let reason = match ended {
            Ended::Shutdown => "worker shutting down",
            Ended::CancelledByBroker | Ended::Lost => "worker reconnecting",
        };
        let close = async {
            if channel.status().connected() {
                let _ = channel.close(200, reason.into()).await;
            }
            if connection.status().connected() {
                let _ = connection.close(200, reason.into()).await;
            }
        };
        match tokio::time::timeout(CLOSE_TIMEOUT, close).await {
            Ok(()) => tracing::info!(reason, "AMQP channel and connection closed"),
            Err(_) => tracing::warn!(reason, "AMQP close not confirmed in time; leaving it"),
        }
        match ended {
            Ended::Shutdown => Ok(()),
            Ended::CancelledByBroker | Ended::Lost => Err(lost(true)),
        }
    }

    /// Hands deliveries to tasks until shutdown, or until the consumer ends.
    async fn consume(
        &self,
        mut consumer: lapin::Consumer,
        channel: &Channel,
        acks: &Acknowledger,
        tracker: &TaskTracker,
        abandon: &CancellationToken,
    ) -> Ended {
        loop {
            let next = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ended::Shutdown,
                next = consumer.next() => next,
            };
            match next {
                Some(Ok(delivery)) => {
                    let unsettled = acks.receive(delivery.delivery_tag);
                    let task = DeliveryTask {
                        settings: self.settings.clone(),
                        service: self.service.clone(),
                        channel: channel.clone(),
                        received: Instant::now(),
                        in_hand: metrics::InHand::take(),
                        abandon: abandon.clone(),
                    };
                    // Boxed: the delivery's future is 5.5 KB (lapin's publish
                    // alone is 2 KB), and a task holding it unboxed is copied
                    // whole as it is spawned and again as it finishes
                    // (docs/performance.md, "The delivery's task and its metrics").
                    tracker.spawn(Box::pin(task.run(delivery, unsettled)));
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "consumer failed");
                    return Ended::Lost;
                }
                None if channel.status().connected() => {
                    tracing::warn!("consumer cancelled by the broker");
                    return Ended::CancelledByBroker;
                }
                None => {
                    tracing::warn!("consumer ended with its channel");
                    return Ended::Lost;
                }
            }
        }
    }

    /// Waits for deliveries in hand, up to the grace time; the rest stay
    /// unacknowledged and RabbitMQ redelivers them once the channel closes.
    async fn drain(&self, tracker: &TaskTracker) {
        let grace = self.settings.shutdown_grace();
        let in_hand = tracker.len();
        match tokio::time::timeout(grace, tracker.wait()).await {
            Ok(()) => tracing::info!(in_hand, "deliveries in hand finished"),
            Err(_) => tracing::warn!(
                left = tracker.len(),
                grace_ms = grace.as_millis() as u64,
                "grace time over; leaving deliveries unacknowledged for redelivery"
            ),
        }
    }
}

/// Opens the channel, declares the topology, sets the prefetch and
/// confirms, and starts consuming.
async fn subscribe(
    connection: &Connection,
    settings: &Settings,
) -> Result<(Channel, lapin::Consumer), SessionError> {
    let channel = open_channel(connection, settings).await?;
    // An empty tag lets RabbitMQ choose one unique on the channel.
    let consumer = channel
        .basic_consume(
            settings.amqp.request_queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|error| {
            tracing::warn!(%error, "basic.consume failed");
            SessionError::Lost { consumed: false }
        })?;
    Ok((channel, consumer))
}

async fn open_channel(
    connection: &Connection,
    settings: &Settings,
) -> Result<Channel, SessionError> {
    let lost = |error: lapin::Error| {
        tracing::warn!(%error, "opening the AMQP channel failed");
        SessionError::Lost { consumed: false }
    };
    let channel = connection.create_channel().await.map_err(lost)?;
    topology::declare(&channel, &settings.amqp)
        .await
        .map_err(|error| match error.refusal() {
            Some(refusal) => SessionError::Refused { error, refusal },
            None => {
                tracing::warn!(%error, "declaring the topology failed");
                SessionError::Lost { consumed: false }
            }
        })?;
    // Set on every new channel: recovery must not lose the prefetch.
    channel
        .basic_qos(settings.amqp.prefetch, BasicQosOptions::default())
        .await
        .map_err(lost)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(lost)?;
    Ok(channel)
}
