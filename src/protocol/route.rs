//! Where a reply goes (docs/protocol.md section 4). Pure.

/// RabbitMQ's Direct Reply-to pseudo-queue, and the prefix of the reply
/// addresses it hands out. A requester consumes it and names it in
/// `reply_to`; the broker routes the reply back on the channel.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// The AMQP properties of a request that decide how it is answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestProperties {
    /// `reply_to`, when set.
    pub reply_to: Option<String>,
    /// `correlation_id`, when set.
    pub correlation_id: Option<String>,
    /// `message_id`, when set.
    pub message_id: Option<String>,
    /// `app_id`, when set.
    pub app_id: Option<String>,
}

impl RequestProperties {
    /// The reply's `correlation_id`: the request's, or else its `message_id`.
    pub fn reply_correlation_id(&self) -> Option<&str> {
        non_empty(&self.correlation_id).or_else(|| non_empty(&self.message_id))
    }
}

/// Where to publish a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyRoute {
    /// The default exchange, routing key = the request's `reply_to`.
    ReplyTo(String),
    /// The reply exchange, routing key = the requester's source name.
    Source(String),
}

impl ReplyRoute {
    /// Chooses the route in the contract's order: `reply_to`, the body's
    /// `source`, then `app_id`. `None` means nobody can be answered.
    pub fn choose(properties: &RequestProperties, source: Option<&str>) -> Option<Self> {
        if let Some(reply_to) = non_empty(&properties.reply_to) {
            return Some(Self::ReplyTo(reply_to.to_owned()));
        }
        source
            .filter(|s| !s.is_empty())
            .or_else(|| non_empty(&properties.app_id))
            .map(|name| Self::Source(name.to_owned()))
    }

    /// The routing key to publish with.
    pub fn routing_key(&self) -> &str {
        match self {
            Self::ReplyTo(key) | Self::Source(key) => key,
        }
    }

    /// Whether the reply is published with `mandatory`. Not to Direct
    /// Reply-to: RabbitMQ before 3.11 returns such replies as unroutable
    /// although it delivers them (rabbitmq-server issue 6124).
    pub fn mandatory(&self) -> bool {
        !matches!(self, Self::ReplyTo(key) if key.starts_with(DIRECT_REPLY_TO))
    }

    /// A stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::ReplyTo(_) => "reply_to",
            Self::Source(_) => "source",
        }
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(reply_to: Option<&str>, app_id: Option<&str>) -> RequestProperties {
        RequestProperties {
            reply_to: reply_to.map(Into::into),
            app_id: app_id.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn reply_to_comes_first() {
        let route = ReplyRoute::choose(&props(Some("q"), Some("app")), Some("src"));
        assert_eq!(route, Some(ReplyRoute::ReplyTo("q".into())));
    }

    #[test]
    fn source_comes_before_app_id() {
        let route = ReplyRoute::choose(&props(None, Some("app")), Some("src"));
        assert_eq!(route, Some(ReplyRoute::Source("src".into())));
    }

    #[test]
    fn app_id_is_the_last_route() {
        let route = ReplyRoute::choose(&props(Some(""), Some("app")), None);
        assert_eq!(route, Some(ReplyRoute::Source("app".into())));
    }

    #[test]
    fn without_any_route_nobody_can_be_answered() {
        assert_eq!(ReplyRoute::choose(&props(None, Some("")), Some("")), None);
    }

    #[test]
    fn direct_reply_to_is_published_without_mandatory() {
        assert!(!ReplyRoute::ReplyTo("amq.rabbitmq.reply-to.g1h2AA==".into()).mandatory());
        assert!(ReplyRoute::ReplyTo("my-replies".into()).mandatory());
        assert!(ReplyRoute::Source("desk".into()).mandatory());
    }

    #[test]
    fn correlation_id_falls_back_to_message_id() {
        let mut p = RequestProperties {
            message_id: Some("m".into()),
            ..Default::default()
        };
        assert_eq!(p.reply_correlation_id(), Some("m"));
        p.correlation_id = Some("c".into());
        assert_eq!(p.reply_correlation_id(), Some("c"));
    }
}
