//! Steady load: the sample request at a fixed rate from a requester's
//! channel, with publisher confirms, so that a request RabbitMQ did not
//! take (a nack, or a channel error while a node died) is known and sent
//! again instead of being counted as lost by the worker.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::BasicProperties;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::requester::*;

/// Requests sent by a [`Load`].
#[derive(Debug, Default)]
pub struct Sent {
    /// Correlation ids of the requests RabbitMQ confirmed.
    pub ids: HashSet<String>,
    /// When each was first sent.
    pub at: HashMap<String, Instant>,
    /// Requests sent again because the first publish was not confirmed.
    pub resent: usize,
}

/// A load running in the background until [`Load::stop`].
pub struct Load {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Sent>,
}

impl Load {
    /// Sends the sample request for `requester`'s source every `interval`.
    pub async fn start(requester: &Requester, interval: Duration) -> Self {
        let channel = requester.channel.clone();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let exchange = requester.names.request_exchange.clone();
        let reply_to = requester.reply_queue.clone();
        let source = requester.source.clone();
        let body = sample_request(&source).to_string();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let publish = |id: String| {
                let channel = channel.clone();
                let (exchange, source, reply_to, body) = (
                    exchange.clone(),
                    source.clone(),
                    reply_to.clone(),
                    body.clone(),
                );
                async move {
                    let properties = BasicProperties::default()
                        .with_reply_to(reply_to.as_str().into())
                        .with_correlation_id(id.as_str().into());
                    let confirmed = async {
                        let confirm = channel
                            .basic_publish(
                                exchange.as_str().into(),
                                source.as_str().into(),
                                BasicPublishOptions::default(),
                                body.as_bytes(),
                                properties,
                            )
                            .await
                            .ok()?;
                        confirm.await.ok().map(|c| c.is_ack())
                    };
                    let confirmed = tokio::time::timeout(Duration::from_secs(30), confirmed)
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or(false);
                    (id, confirmed)
                }
            };
            let mut sent = Sent::default();
            let mut pending = JoinSet::new();
            let started = Instant::now();
            let mut n: u32 = 0;
            while !stopped.is_cancelled() {
                let id = new_correlation_id();
                sent.at.insert(id.clone(), Instant::now());
                pending.spawn(publish(id));
                n += 1;
                tokio::select! {
                    _ = stopped.cancelled() => {}
                    _ = tokio::time::sleep_until(started + interval * n) => {}
                }
            }
            while let Some(joined) = pending.join_next().await {
                let (id, confirmed) = joined.unwrap();
                if confirmed {
                    sent.ids.insert(id);
                } else {
                    // Sent once more, same correlation id: a requester
                    // would retry the same way.
                    sent.resent += 1;
                    let (id, confirmed) = publish(id).await;
                    assert!(confirmed, "request {id} not confirmed twice");
                    sent.ids.insert(id);
                }
            }
            sent
        });
        Self { stop, task }
    }

    /// Stops sending; the requests sent, once every one is confirmed.
    pub async fn stop(self) -> Sent {
        self.stop.cancel();
        self.task.await.unwrap()
    }
}
