//! Sends the acknowledgements of one channel in batches ([`AckTracker`]):
//! `basic.ack` straight on the channel, `multiple = true` where it can.
//! An ack is sent at once when enough are due, or when no other delivery
//! is in hand to share its frame (one request at a time gains nothing from
//! waiting), else within [`FLUSH_AFTER`]; a reject goes out at once, on its
//! own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicRejectOptions};
use lapin::Channel;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use super::acks::{Ack, AckTracker};

/// The longest an ack waits for others to share its frame.
pub(super) const FLUSH_AFTER: Duration = Duration::from_millis(1);

/// The acknowledgements of one channel.
pub(super) struct Acknowledger {
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
    /// Batches acks on `channel`, flushing at once from `batch` due.
    pub fn new(channel: Channel, batch: usize) -> Arc<Self> {
        Arc::new(Self {
            channel,
            tracker: Mutex::new(AckTracker::new()),
            batch: batch.max(1),
            delivered: AtomicU64::new(0),
            wake: Notify::new(),
        })
    }

    /// Flushes what is due within [`FLUSH_AFTER`] of its settlement, until
    /// `stop`; then once more.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
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

    /// A delivery of `tag` was received; tags rise on a channel.
    pub fn delivered(&self, tag: u64) {
        self.delivered.fetch_max(tag, Ordering::Relaxed);
    }

    /// Records the request of `tag` as to be acknowledged.
    pub async fn ack(&self, tag: u64) {
        let (due, watermark) = {
            let mut tracker = self.tracker.lock().await;
            (tracker.acked(tag), tracker.watermark())
        };
        let nothing_else_in_hand = watermark >= self.delivered.load(Ordering::Relaxed);
        if due >= self.batch || nothing_else_in_hand {
            self.flush().await;
        } else {
            self.wake.notify_one();
        }
    }

    /// Rejects the request of `tag` without requeue (into the dead-letter
    /// queue), before any later ack can cover it.
    pub async fn reject(&self, tag: u64) -> lapin::Result<()> {
        let mut tracker = self.tracker.lock().await;
        let options = BasicRejectOptions { requeue: false };
        self.channel.basic_reject(tag, options).await?;
        tracker.rejected(tag);
        Ok(())
    }

    /// Sends every ack due. A failure means the channel is gone, and with
    /// it every unacknowledged request: RabbitMQ redelivers them.
    pub async fn flush(&self) {
        let mut tracker = self.tracker.lock().await;
        for ack in tracker.flush() {
            let (tag, multiple) = match ack {
                Ack::UpTo(tag) => (tag, true),
                Ack::One(tag) => (tag, false),
            };
            let options = BasicAckOptions { multiple };
            if let Err(error) = self.channel.basic_ack(tag, options).await {
                tracing::warn!(%error, tag, "ack failed; RabbitMQ will redeliver");
                return;
            }
        }
    }
}
