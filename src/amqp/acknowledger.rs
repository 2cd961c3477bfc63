//! The acknowledgements of one channel, batched: `basic.ack` straight on
//! the channel, `multiple = true` where the [`AckTracker`] allows it.
//!
//! The session hands the acknowledger each delivery and gets back an
//! [`Unsettled`], the only way to settle that delivery: so no delivery can
//! be settled without the acknowledger knowing it was handed out. An ack is
//! sent at once when enough are due, or when no other delivery is in hand
//! to share its frame (one request at a time gains nothing from waiting),
//! else by the acknowledger's own flusher within [`FLUSH_AFTER`]; a reject
//! goes out at once, on its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use lapin::Channel;
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ack_tracker::{Ack, AckTracker};

/// The longest an ack waits for others to share its frame.
const FLUSH_AFTER: Duration = Duration::from_millis(1);

/// The acknowledgements of one channel, with the task that flushes them.
/// Dropped without [`Acknowledger::finish`], it stops its flusher: what is
/// still due is never sent, and RabbitMQ redelivers it.
pub(super) struct Acknowledger {
    shared: Arc<Shared>,
    stop: CancellationToken,
    flusher: Option<JoinHandle<()>>,
}

/// One delivery in hand, to be settled once.
pub(super) struct Unsettled {
    shared: Arc<Shared>,
    tag: u64,
}

struct Shared {
    channel: Channel,
    /// Held while acks are sent, so that they reach the broker in order.
    tracker: Mutex<AckTracker>,
    /// Acks due that make a flush worth it at once.
    batch: usize,
    /// The tag of the latest delivery handed out.
    delivered: AtomicU64,
    wake: Notify,
}

impl Acknowledger {
    /// Starts batching acks on `channel`, whose prefetch is `prefetch`.
    pub fn start(channel: Channel, prefetch: u16) -> Self {
        let shared = Arc::new(Shared {
            channel,
            tracker: Mutex::new(AckTracker::new()),
            batch: batch_for(prefetch),
            delivered: AtomicU64::new(0),
            wake: Notify::new(),
        });
        let stop = CancellationToken::new();
        let flusher = tokio::spawn(shared.clone().flush_until(stop.clone()));
        Self {
            shared,
            stop,
            flusher: Some(flusher),
        }
    }

    /// A delivery of `tag` was received; tags rise on a channel.
    pub fn receive(&self, tag: u64) -> Unsettled {
        self.shared.delivered.fetch_max(tag, Ordering::Relaxed);
        Unsettled {
            shared: self.shared.clone(),
            tag,
        }
    }

    /// Sends the acks still due and stops the flusher, within `timeout`;
    /// on a channel already lost this fails at once, and RabbitMQ
    /// redelivers what was not acknowledged.
    pub async fn finish(mut self, timeout: Duration) {
        self.stop.cancel();
        if let Some(flusher) = self.flusher.take() {
            let _ = tokio::time::timeout(timeout, flusher).await;
        }
    }
}

impl Drop for Acknowledger {
    fn drop(&mut self) {
        if let Some(flusher) = self.flusher.take() {
            flusher.abort();
        }
    }
}

impl Unsettled {
    /// Acknowledges the request: its reply is confirmed.
    pub async fn ack(self) {
        let shared = &self.shared;
        let (due, watermark) = {
            let mut tracker = shared.tracker.lock().await;
            (tracker.acked(self.tag), tracker.watermark())
        };
        let nothing_else_in_hand = watermark >= shared.delivered.load(Ordering::Relaxed);
        if due >= shared.batch || nothing_else_in_hand {
            shared.flush().await;
        } else {
            shared.wake.notify_one();
        }
    }

    /// Rejects the request without requeue (into the dead-letter queue),
    /// before any later ack can cover it.
    pub async fn reject(self) -> lapin::Result<()> {
        let mut tracker = self.shared.tracker.lock().await;
        let options = BasicRejectOptions { requeue: false };
        self.shared.channel.basic_reject(self.tag, options).await?;
        tracker.rejected(self.tag);
        Ok(())
    }

    /// Gives the request back to RabbitMQ for redelivery, before any
    /// later ack can cover it.
    pub async fn requeue(self) -> lapin::Result<()> {
        let mut tracker = self.shared.tracker.lock().await;
        let options = BasicNackOptions {
            multiple: false,
            requeue: true,
        };
        self.shared.channel.basic_nack(self.tag, options).await?;
        tracker.rejected(self.tag);
        Ok(())
    }
}

impl Shared {
    /// Flushes what is due within [`FLUSH_AFTER`] of its settlement, until
    /// `stop`; then once more.
    async fn flush_until(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.wake.notified() => {}
            }
            tokio::time::sleep(FLUSH_AFTER).await;
            self.flush().await;
        }
        self.flush().await;
    }

    /// Sends every ack due. A failure means the channel is gone, and with
    /// it every unacknowledged request: RabbitMQ redelivers them.
    async fn flush(&self) {
        let mut tracker = self.tracker.lock().await;
        let acks = tracker.flush();
        if acks.is_empty() {
            return;
        }
        let count = acks.len();
        // Queued all at once, so that lapin writes them together instead of
        // one trip to its I/O thread each (behind a stalled delivery every
        // ack goes alone). Their order does not matter: they name disjoint
        // tags. The lock is held until they are written, so no reject
        // overtakes them.
        let sent = acks.into_iter().map(|ack| {
            let (tag, multiple) = match ack {
                Ack::UpTo(tag) => (tag, true),
                Ack::One(tag) => (tag, false),
            };
            self.channel.basic_ack(tag, BasicAckOptions { multiple })
        });
        if let Err(error) = try_join_all(sent).await {
            tracing::warn!(%error, count, "ack failed; RabbitMQ will redeliver");
        }
    }
}

/// Acks due that are sent at once rather than within [`FLUSH_AFTER`]: an
/// eighth of the prefetch, so that the broker's window of unacknowledged
/// deliveries is never held shut by acks waiting for company.
fn batch_for(prefetch: u16) -> usize {
    usize::from(prefetch / 8).max(1)
}
