//! Publishes replies with publisher confirms (docs/protocol.md section 4).

use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};

use crate::protocol::ReplyRoute;

/// How RabbitMQ took one publish of the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Routed and confirmed.
    Confirmed,
    /// Confirmed, but returned as unroutable: nobody is listening.
    Returned,
    /// Negatively confirmed: RabbitMQ could not take it.
    Refused,
    /// The publish or its confirm failed with an error.
    Failed,
    /// No confirm came within the wait: whether RabbitMQ took the reply
    /// is unknown.
    Unconfirmed,
}

impl PublishOutcome {
    /// How the publish failed, for its span; `None` when it was confirmed.
    pub fn error(self) -> Option<&'static str> {
        match self {
            Self::Confirmed => None,
            Self::Returned => Some("unroutable"),
            Self::Refused => Some("nack"),
            Self::Failed => Some("publish_failed"),
            Self::Unconfirmed => Some("unconfirmed"),
        }
    }
}

/// A reply ready to publish.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reply<'a> {
    /// Where it goes.
    pub route: &'a ReplyRoute,
    /// The JSON body.
    pub body: &'a [u8],
    /// The request's correlation id (or message id).
    pub correlation_id: Option<&'a str>,
}

impl<'a> Reply<'a> {
    /// The exchange the reply is published to: the default exchange for a
    /// `reply_to` route, else `reply_exchange`.
    pub fn exchange(&self, reply_exchange: &'a str) -> &'a str {
        match self.route {
            ReplyRoute::ReplyTo(_) => "",
            ReplyRoute::Source(_) => reply_exchange,
        }
    }
}

/// Publishes `reply` to `exchange`, with `headers` if any (its trace
/// context), and waits up to `confirm_wait` for RabbitMQ's confirm. An
/// `Err` means the channel or connection failed: the request must stay
/// unacknowledged.
pub(super) async fn publish(
    channel: &Channel,
    exchange: &str,
    app_id: &str,
    reply: Reply<'_>,
    headers: Option<FieldTable>,
    confirm_wait: Duration,
) -> lapin::Result<PublishOutcome> {
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_app_id(app_id.into());
    if let Some(id) = reply.correlation_id {
        properties = properties.with_correlation_id(id.into());
    }
    if let Some(headers) = headers {
        properties = properties.with_headers(headers);
    }
    let options = BasicPublishOptions {
        mandatory: reply.route.mandatory(),
        ..Default::default()
    };
    let published = async {
        channel
            .basic_publish(
                exchange.into(),
                reply.route.routing_key().into(),
                options,
                reply.body,
                properties,
            )
            .await?
            .await
    };
    // The publish itself waits while the broker blocks publishers (a
    // resource alarm), so the bound covers it as well as the confirm.
    let Ok(confirm) = tokio::time::timeout(confirm_wait, published).await else {
        return Ok(PublishOutcome::Unconfirmed);
    };
    Ok(match confirm? {
        Confirmation::Ack(None) | Confirmation::NotRequested => PublishOutcome::Confirmed,
        Confirmation::Ack(Some(_)) => PublishOutcome::Returned,
        Confirmation::Nack(_) => PublishOutcome::Refused,
    })
}
