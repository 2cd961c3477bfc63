//! Where a reply goes (docs/protocol.md section 4). Pure.

use super::direct_reply_to::{is_issued_address, names_direct_reply_to};

/// The AMQP properties of a request that decide how it is answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestProperties<'a> {
    /// `reply_to`, when set.
    pub reply_to: Option<&'a str>,
    /// `correlation_id`, when set.
    pub correlation_id: Option<&'a str>,
    /// `message_id`, when set.
    pub message_id: Option<&'a str>,
    /// `app_id`, when set.
    pub app_id: Option<&'a str>,
    /// The first property read that arrived with bytes that were not
    /// UTF-8, by name: `reply_to`, `correlation_id`, `message_id`,
    /// `app_id`, or `a header key`. The AMQP parser replaces such bytes
    /// with U+FFFD and says that it did (see `patches/amq-protocol-types`);
    /// a U+FFFD sent as such is a character like any other.
    pub not_utf8: Option<&'static str>,
}

impl RequestProperties<'_> {
    /// The reply's `correlation_id`: the request's, or else its `message_id`.
    pub fn reply_correlation_id(&self) -> Option<&str> {
        non_empty(self.correlation_id).or_else(|| non_empty(self.message_id))
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

/// Why a request is not answered but dead-lettered (docs/protocol.md
/// section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// A property the worker reads was not UTF-8 on the wire.
    NotUtf8(&'static str),
    /// The message is itself a reply: answering it could loop.
    IsAReply,
    /// Only `app_id` could route it, and it is the worker's own: the
    /// message is one of the worker's replies come back.
    OwnAppId,
    /// `reply_to` names a Direct Reply-to address that RabbitMQ did not
    /// issue: publishing to it can crash the broker's channel.
    UnissuedDirectReplyTo,
    /// No `reply_to`, `source` or `app_id`.
    NoRoute,
}

impl Unanswered {
    /// The reason, for the log.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotUtf8(_) => "a property is not UTF-8",
            Self::IsAReply => "the message is itself a reply",
            Self::OwnAppId => "app_id is the worker's own: the message is one of its replies",
            Self::UnissuedDirectReplyTo => {
                "reply_to names a Direct Reply-to address RabbitMQ did not issue"
            }
            Self::NoRoute => "no reply_to, source or app_id to answer to",
        }
    }
}

impl ReplyRoute {
    /// Chooses the route in the contract's order: `reply_to`, the body's
    /// `source`, then `app_id`; or says why nobody is to be answered. A
    /// message with undecodable properties, a reply (`is_reply`), or one
    /// that only the worker's own `app_id` would route is never answered.
    pub fn choose(
        properties: &RequestProperties<'_>,
        source: Option<&str>,
        is_reply: bool,
        own_app_id: &str,
    ) -> Result<Self, Unanswered> {
        if let Some(name) = properties.not_utf8 {
            return Err(Unanswered::NotUtf8(name));
        }
        if is_reply {
            return Err(Unanswered::IsAReply);
        }
        if let Some(reply_to) = non_empty(properties.reply_to) {
            if names_direct_reply_to(reply_to) && !is_issued_address(reply_to) {
                return Err(Unanswered::UnissuedDirectReplyTo);
            }
            return Ok(Self::ReplyTo(reply_to.to_owned()));
        }
        if let Some(source) = source.filter(|s| !s.is_empty()) {
            return Ok(Self::Source(source.to_owned()));
        }
        match non_empty(properties.app_id) {
            Some(app_id) if app_id == own_app_id => Err(Unanswered::OwnAppId),
            Some(app_id) => Ok(Self::Source(app_id.to_owned())),
            None => Err(Unanswered::NoRoute),
        }
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
        !matches!(self, Self::ReplyTo(key) if names_direct_reply_to(key))
    }

    /// A stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::ReplyTo(_) => "reply_to",
            Self::Source(_) => "source",
        }
    }

    /// The low-cardinality form of a temporary reply queue's name, for
    /// traces: Direct Reply-to, or a queue the broker named.
    pub fn template(&self) -> Option<&'static str> {
        match self {
            Self::ReplyTo(key) if names_direct_reply_to(key) => Some("amq.rabbitmq.reply-to.*"),
            Self::ReplyTo(key) if key.starts_with("amq.gen-") => Some("amq.gen-*"),
            _ => None,
        }
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props<'a>(reply_to: Option<&'a str>, app_id: Option<&'a str>) -> RequestProperties<'a> {
        RequestProperties {
            reply_to,
            app_id,
            ..Default::default()
        }
    }

    const OWN: &str = "lcm-outcome-worker";

    fn choose(
        properties: &RequestProperties<'_>,
        source: Option<&str>,
    ) -> Result<ReplyRoute, Unanswered> {
        ReplyRoute::choose(properties, source, false, OWN)
    }

    #[test]
    fn reply_to_comes_first() {
        let route = choose(&props(Some("q"), Some("app")), Some("src"));
        assert_eq!(route, Ok(ReplyRoute::ReplyTo("q".into())));
    }

    #[test]
    fn source_comes_before_app_id() {
        let route = choose(&props(None, Some("app")), Some("src"));
        assert_eq!(route, Ok(ReplyRoute::Source("src".into())));
    }

    #[test]
    fn app_id_is_the_last_route() {
        let route = choose(&props(Some(""), Some("app")), None);
        assert_eq!(route, Ok(ReplyRoute::Source("app".into())));
    }

    #[test]
    fn without_any_route_nobody_can_be_answered() {
        assert_eq!(
            choose(&props(None, Some("")), Some("")),
            Err(Unanswered::NoRoute)
        );
    }

    #[test]
    fn the_workers_own_app_id_is_never_a_route() {
        assert_eq!(
            choose(&props(None, Some(OWN)), None),
            Err(Unanswered::OwnAppId)
        );
        // Another route still answers a message that carries it.
        let route = choose(&props(None, Some(OWN)), Some("desk"));
        assert_eq!(route, Ok(ReplyRoute::Source("desk".into())));
    }

    #[test]
    fn a_reply_is_never_answered_whatever_its_routes() {
        let route = ReplyRoute::choose(&props(Some("q"), Some("app")), Some("src"), true, OWN);
        assert_eq!(route, Err(Unanswered::IsAReply));
    }

    #[test]
    fn a_property_that_was_not_utf8_is_never_answered() {
        for name in [
            "reply_to",
            "correlation_id",
            "message_id",
            "app_id",
            "a header key",
        ] {
            let p = RequestProperties {
                not_utf8: Some(name),
                ..props(Some("q"), Some("app"))
            };
            assert_eq!(choose(&p, Some("src")), Err(Unanswered::NotUtf8(name)));
        }
    }

    #[test]
    fn a_u_fffd_sent_as_such_is_answered() {
        let p = RequestProperties {
            correlation_id: Some("\u{FFFD}\u{FFFD}-real"),
            ..props(Some("q\u{FFFD}"), Some("\u{FFFD}x"))
        };
        let route = choose(&p, Some("src"));
        assert_eq!(route, Ok(ReplyRoute::ReplyTo("q\u{FFFD}".into())));
    }

    #[test]
    fn an_unissued_direct_reply_to_address_is_dead_lettered_not_routed_elsewhere() {
        for reply_to in ["amq.rabbitmq.reply-to.x.y", "amq.rabbitmq.reply-toX"] {
            assert_eq!(
                choose(&props(Some(reply_to), Some("app")), Some("src")),
                Err(Unanswered::UnissuedDirectReplyTo),
                "{reply_to}"
            );
        }
        let issued = "amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AAA4zgAAAABrEy6c.\
                      K8a9hEr7orhs5S0K1BgtOQ==";
        let route = choose(&props(Some(issued), None), None);
        assert_eq!(route, Ok(ReplyRoute::ReplyTo(issued.into())));
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
            message_id: Some("m"),
            ..Default::default()
        };
        assert_eq!(p.reply_correlation_id(), Some("m"));
        p.correlation_id = Some("c");
        assert_eq!(p.reply_correlation_id(), Some("c"));
    }
}
