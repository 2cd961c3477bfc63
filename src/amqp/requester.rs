//! A requester over RabbitMQ's Direct Reply-to, the way agent desktops and
//! dialers ask: publish to the request exchange with the source as routing
//! key and `reply_to` = `amq.rabbitmq.reply-to`, then read the replies on
//! the same channel. The `request` and `bench` commands use it.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, Consumer, ExchangeKind};

use crate::protocol::DIRECT_REPLY_TO;
use crate::settings::Settings;

/// How a confirmed request was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Routed to a queue.
    Routed,
    /// No queue takes this source on the request exchange.
    Unroutable,
}

/// A reply as received.
#[derive(Debug, Clone)]
pub struct ReceivedReply {
    /// Its `correlation_id` property.
    pub correlation_id: Option<String>,
    /// Its body.
    pub body: Vec<u8>,
}

/// One connection, one channel, one Direct Reply-to consumer.
pub struct Requester {
    connection: Connection,
    channel: Channel,
    replies: Consumer,
    exchange: String,
    confirms: bool,
}

impl Requester {
    /// Connects to the first endpoint that answers within `timeout`, checks
    /// that the request exchange exists, and starts consuming replies.
    /// With `confirms`, [`Requester::send`] waits for RabbitMQ's confirm
    /// and tells an unroutable request.
    pub async fn open(
        settings: &Settings,
        name: &str,
        timeout: Duration,
        confirms: bool,
    ) -> anyhow::Result<Self> {
        let (connection, _) = super::connection::connect_first(settings, name, timeout).await?;
        let channel = connection.create_channel().await?;
        let exchange = settings.amqp.request_exchange.clone();
        check_exchange(&channel, &exchange).await?;
        if confirms {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
        }
        // Direct Reply-to: consume the pseudo-queue, without acks (the
        // broker allows no other way), before publishing on this channel.
        let replies = channel
            .basic_consume(
                DIRECT_REPLY_TO.into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .context("consuming Direct Reply-to")?;
        Ok(Self {
            connection,
            channel,
            replies,
            exchange,
            confirms,
        })
    }

    /// Publishes one request body with routing key `source`. Without
    /// confirms it answers [`Sent::Routed`] once the frame is written.
    pub async fn send(
        &self,
        source: &str,
        correlation_id: &str,
        body: &[u8],
    ) -> anyhow::Result<Sent> {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_reply_to(DIRECT_REPLY_TO.into())
            .with_correlation_id(correlation_id.into());
        let options = BasicPublishOptions {
            mandatory: self.confirms,
            ..Default::default()
        };
        let publishing = || format!("publishing to exchange `{}`", self.exchange);
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                source.into(),
                options,
                body,
                properties,
            )
            .await
            .with_context(publishing)?;
        if !self.confirms {
            return Ok(Sent::Routed);
        }
        match confirm.await.with_context(publishing)? {
            Confirmation::Ack(Some(_)) | Confirmation::Nack(_) => Ok(Sent::Unroutable),
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(Sent::Routed),
        }
    }

    /// The next reply; an error when the broker closed the consumer.
    /// Cancel-safe: a reply is never lost to a cancelled call.
    pub async fn next_reply(&mut self) -> anyhow::Result<ReceivedReply> {
        let delivery = self
            .replies
            .next()
            .await
            .ok_or_else(|| anyhow!("the broker closed the reply consumer"))?
            .context("receiving a reply")?;
        Ok(ReceivedReply {
            correlation_id: delivery
                .properties
                .correlation_id()
                .as_ref()
                .map(|id| id.to_string()),
            body: delivery.data,
        })
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// Publishing to a missing exchange closes the channel; say so up front,
/// by name, instead.
async fn check_exchange(channel: &Channel, exchange: &str) -> anyhow::Result<()> {
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    if let Err(error) = channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            passive,
            FieldTable::default(),
        )
        .await
    {
        bail!(
            "the request exchange `{exchange}` (amqp.request_exchange) is not there: \
             has a worker with this configuration ever started? ({error})"
        );
    }
    Ok(())
}
