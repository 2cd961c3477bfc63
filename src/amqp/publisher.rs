//! Publishes replies with publisher confirms (docs/protocol.md section 4).

use std::time::Duration;

use lapin::options::BasicPublishOptions;
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

/// Publishes `reply` and waits up to `confirm_wait` for RabbitMQ's
/// confirm. An `Err` means the channel or connection failed: the request
/// must stay unacknowledged.
pub(super) async fn publish(
    channel: &Channel,
    reply_exchange: &str,
    app_id: &str,
    reply: Reply<'_>,
    confirm_wait: Duration,
) -> lapin::Result<PublishOutcome> {
    let exchange = match reply.route {
        ReplyRoute::ReplyTo(_) => "",
        ReplyRoute::Source(_) => reply_exchange,
    };
    let mut properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_app_id(app_id.into());
    if let Some(id) = reply.correlation_id {
        properties = properties.with_correlation_id(id.into());
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
