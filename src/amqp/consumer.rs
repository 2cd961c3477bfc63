//! The consumer loop: connect, declare, consume; one task per delivery;
//! reconnect with backoff on loss; drain on shutdown (PROTOCOL.md sections
//! 4 and 7).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{field, Instrument};

use super::endpoints::{Endpoint, Endpoints};
use super::publisher::{publish, Published, Reply};
use super::topology::{self, TopologyError};
use crate::backoff::Backoff;
use crate::health::Readiness;
use crate::routing::RequestProperties;
use crate::service::{Action, Handled, Service, Store};
use crate::settings::Settings;

/// A connection attempt that hangs (a black-holed broker) is given up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Cancelling the consumer, and closing, are given up after this.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
const RECONNECT_START: Duration = Duration::from_millis(200);
const RECONNECT_CAP: Duration = Duration::from_secs(10);

/// Why consuming stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The topology could not be declared on the first connection: a
    /// start-up error (PROTOCOL.md section 2).
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

/// Consumes until `shutdown` is cancelled, reconnecting whenever the
/// connection or channel is lost: each attempt goes to the next endpoint,
/// and a full round of failed attempts counts as one backoff step.
pub async fn run<S: Store>(
    settings: Arc<Settings>,
    service: Arc<Service<S>>,
    readiness: Readiness,
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
            readiness: &readiness,
            shutdown: &shutdown,
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
        metrics::counter!("lcm_amqp_reconnects_total").increment(1);
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

enum SessionError {
    Topology(TopologyError),
    /// The connection failed or dropped; `consumed` if it got as far as consuming.
    Lost {
        consumed: bool,
    },
}

/// One connection's life.
struct Session<'a, S> {
    settings: &'a Arc<Settings>,
    service: &'a Arc<Service<S>>,
    readiness: &'a Readiness,
    shutdown: &'a CancellationToken,
}

impl<S: Store> Session<'_, S> {
    async fn run(&self, endpoint: Endpoint<'_>, backoff: &mut Backoff) -> Result<(), SessionError> {
        let lost = |consumed| SessionError::Lost { consumed };
        let amqp = &self.settings.amqp;
        let url = endpoint.redacted;
        tracing::info!(url, endpoint = endpoint.index, "connecting to RabbitMQ");
        let connect = super::connect(endpoint.url, &amqp.app_id, &amqp.tls);
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, connect)
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
        backoff.reset();
        self.readiness.set_consuming(true);
        tracing::info!(
            url,
            queue = %amqp.request_queue,
            prefetch = amqp.prefetch,
            "consuming"
        );
        let tracker = TaskTracker::new();
        let abandon = CancellationToken::new();
        let stopped = self.consume(consumer, &channel, &tracker, &abandon).await;
        self.readiness.set_consuming(false);
        tracker.close();
        if !stopped {
            // The channel is gone, so nothing in hand can be acknowledged
            // any more: stop those tasks rather than let them wait on
            // confirms that may never resolve. RabbitMQ redelivers.
            abandon.cancel();
            return Err(lost(true));
        }
        // Bounded, so that a silent broker cannot stretch the shutdown
        // past the grace time by much.
        let cancel = channel.basic_cancel(tag, BasicCancelOptions::default());
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, cancel).await;
        self.drain(&tracker).await;
        let close = async {
            let _ = channel.close(200, "worker shutting down".into()).await;
            let _ = connection.close(200, "worker shutting down".into()).await;
        };
        match tokio::time::timeout(CLOSE_TIMEOUT, close).await {
            Ok(()) => tracing::info!("AMQP channel and connection closed"),
            Err(_) => tracing::warn!("AMQP close not confirmed in time; leaving it"),
        }
        Ok(())
    }

    /// Hands deliveries to tasks until shutdown (`true`) or loss (`false`).
    async fn consume(
        &self,
        mut consumer: lapin::Consumer,
        channel: &Channel,
        tracker: &TaskTracker,
        abandon: &CancellationToken,
    ) -> bool {
        loop {
            let next = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return true,
                next = consumer.next() => next,
            };
            match next {
                Some(Ok(delivery)) => {
                    let task = DeliveryTask {
                        settings: self.settings.clone(),
                        service: self.service.clone(),
                        channel: channel.clone(),
                        received: Instant::now(),
                        abandon: abandon.clone(),
                    };
                    tracker.spawn(task.run(delivery));
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "consumer failed");
                    return false;
                }
                None => {
                    tracing::warn!("consumer cancelled by the broker");
                    return false;
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
        .map_err(|error| {
            if error.refused_by_broker() {
                SessionError::Topology(error)
            } else {
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

/// Everything one delivery's task needs.
struct DeliveryTask<S> {
    settings: Arc<Settings>,
    service: Arc<Service<S>>,
    channel: Channel,
    received: Instant,
    /// Cancelled when the connection is lost.
    abandon: CancellationToken,
}

impl<S: Store> DeliveryTask<S> {
    async fn run(self, delivery: Delivery) {
        let properties = request_properties(&delivery);
        let span = tracing::info_span!(
            "delivery",
            correlation_id = properties.reply_correlation_id().unwrap_or(""),
            callid = field::Empty,
            source = field::Empty,
            redelivered = delivery.redelivered,
        );
        metrics::gauge!("lcm_deliveries_in_hand").increment(1.0);
        let abandon = self.abandon.clone();
        async {
            tokio::select! {
                _ = abandon.cancelled() => {
                    tracing::debug!("connection lost before the request was settled; RabbitMQ redelivers it");
                }
                _ = self.handle(&delivery, &properties) => {}
            }
        }
        .instrument(span)
        .await;
        metrics::gauge!("lcm_deliveries_in_hand").decrement(1.0);
    }

    async fn handle(&self, delivery: &Delivery, properties: &RequestProperties) {
        let decided = self
            .service
            .handle_guarded(&delivery.data, properties, self.received)
            .await;
        let Some(handled) = decided else {
            tracing::error!("handler panicked; dead-lettering the request");
            count("unknown", "dead_lettered", self.received);
            self.dead_letter(delivery).await;
            return;
        };
        let span = tracing::Span::current();
        span.record("callid", handled.callid.as_str());
        span.record("source", handled.source.as_deref().unwrap_or(""));
        let kind = handled.kind.map_or("unknown", |k| k.label());
        match &handled.action {
            Action::DeadLetter { reason } => {
                tracing::warn!(reason, "request dead-lettered");
                count(kind, "dead_lettered", self.received);
                self.dead_letter(delivery).await;
            }
            Action::Reply { route, body } => {
                let reply = Reply {
                    route,
                    body,
                    correlation_id: properties.reply_correlation_id(),
                };
                if self.reply_and_ack(delivery, reply, &handled).await {
                    count(kind, handled.result, self.received);
                }
            }
        }
    }

    /// Publishes until confirmed, then acknowledges. Returns whether the
    /// request was settled (acknowledged or dead-lettered).
    async fn reply_and_ack(
        &self,
        delivery: &Delivery,
        reply: Reply<'_>,
        handled: &Handled,
    ) -> bool {
        let amqp = &self.settings.amqp;
        let deadline = self.received + self.settings.request_deadline();
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(250));
        loop {
            match publish(&self.channel, &amqp.reply_exchange, &amqp.app_id, reply).await {
                Ok(Published::Confirmed) => break,
                Ok(Published::Returned) => {
                    tracing::warn!(
                        route = reply.route.label(),
                        routing_key = reply.route.routing_key(),
                        "reply returned unroutable: nobody is listening; acknowledging the request"
                    );
                    metrics::counter!("lcm_replies_unroutable_total").increment(1);
                    break;
                }
                Ok(Published::Refused) if Instant::now() < deadline => {
                    tracing::warn!("reply refused by RabbitMQ (nack); publishing again");
                    tokio::time::sleep(backoff.next_pause()).await;
                }
                Ok(Published::Refused) => {
                    tracing::error!("reply refused until the deadline; dead-lettering the request");
                    self.dead_letter(delivery).await;
                    return true;
                }
                Err(error) => return self.publish_failed(delivery, &error).await,
            }
        }
        match delivery.acker.ack(BasicAckOptions::default()).await {
            Ok(_) => {
                tracing::debug!(result = handled.result, "answered");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "ack failed; RabbitMQ will redeliver the request");
                false
            }
        }
    }

    /// A publish error with the channel gone leaves the request for
    /// redelivery; with the channel still open, the fault lies with this
    /// message, so it is dead-lettered rather than held forever.
    async fn publish_failed(&self, delivery: &Delivery, error: &lapin::Error) -> bool {
        if self.channel.status().connected() {
            tracing::error!(%error, "reply could not be published; dead-lettering the request");
            self.dead_letter(delivery).await;
            true
        } else {
            tracing::warn!(%error, "channel lost before the reply was confirmed; leaving the request for redelivery");
            false
        }
    }

    async fn dead_letter(&self, delivery: &Delivery) {
        let options = BasicRejectOptions { requeue: false };
        if let Err(error) = delivery.acker.reject(options).await {
            tracing::warn!(%error, "reject failed; RabbitMQ will redeliver the request");
        }
    }
}

fn count(kind: &'static str, result: &'static str, received: Instant) {
    metrics::counter!("lcm_requests_total", "subtopic" => kind, "result" => result).increment(1);
    metrics::histogram!("lcm_request_duration_seconds", "subtopic" => kind)
        .record(received.elapsed().as_secs_f64());
}

fn request_properties(delivery: &Delivery) -> RequestProperties {
    let text = |value: &Option<lapin::types::ShortString>| value.as_ref().map(|v| v.to_string());
    let p = &delivery.properties;
    RequestProperties {
        reply_to: text(p.reply_to()),
        correlation_id: text(p.correlation_id()),
        message_id: text(p.message_id()),
        app_id: text(p.app_id()),
    }
}
