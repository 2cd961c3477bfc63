//! [`SecretUrl`]: a URL that may carry a password. Its `Debug`, `Display`
//! and `Serialize` redact, so that printing a setting cannot leak the password;
//! only [`SecretUrl::expose`] hands out the real text, to the code that
//! connects.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// A broker or cache URL, password included.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for the client that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its secrets replaced by `***` (see [`redact_url`]).
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }

    /// Whether the text is blank (an empty item of an environment list).
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

/// Compares the real text: for tests and for telling URLs apart.
impl PartialEq<&str> for SecretUrl {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

/// Writes the redacted text: a serialized configuration is for showing.
impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Query keys that lapin or redis-rs read and that hold no secret: their
/// values are shown. The value of a password key (redis-rs's `pass`, the
/// only way to give a Unix socket's password) is hidden; any other key is
/// hidden with its value, since a client ignores it and it may be anything.
const PLAIN_QUERY_KEYS: [&str; 8] = [
    "db",
    "protocol",
    "user",
    "frame_max",
    "channel_max",
    "heartbeat",
    "connection_timeout",
    "auth_mechanism",
];

/// Query keys whose value is a password.
const PASSWORD_QUERY_KEYS: [&str; 2] = ["pass", "password"];

/// The only fragment a client reads (redis-rs: `rediss://...#insecure`).
const PLAIN_FRAGMENT: &str = "insecure";

/// The URL with its password, the values of the query keys but those of
/// `PLAIN_QUERY_KEYS`, the keys but those and `PASSWORD_QUERY_KEYS`,
/// and any fragment but `#insecure` replaced by `***`. Text that is not a URL with a path or authority
/// (`amqp:user:pw@host` parses as one without) is shown only when it holds
/// neither `@` nor `?`, since it may still hold a secret.
pub fn redact_url(raw: &str) -> String {
    let mut parsed = match url::Url::parse(raw) {
        Ok(parsed) if !parsed.cannot_be_a_base() => parsed,
        _ if !raw.contains(['@', '?']) => return raw.to_owned(),
        _ => return "<unparseable URL>".to_owned(),
    };
    if parsed.password().is_some() {
        // Only fails for URLs that cannot have credentials at all.
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                if PLAIN_QUERY_KEYS.contains(&key.as_ref()) {
                    (key.into_owned(), value.into_owned())
                } else if PASSWORD_QUERY_KEYS.contains(&key.as_ref()) {
                    (key.into_owned(), "***".to_owned())
                } else {
                    ("***".to_owned(), "***".to_owned())
                }
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    if parsed.fragment().is_some_and(|f| f != PLAIN_FRAGMENT) {
        parsed.set_fragment(Some("***"));
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_password_only() {
        let url = SecretUrl::new("amqp://app:s3cret@broker:5672/%2f");
        assert_eq!(url.to_string(), "amqp://app:***@broker:5672/%2f");
        assert_eq!(format!("{url:?}"), "\"amqp://app:***@broker:5672/%2f\"");
        assert_eq!(url.expose(), "amqp://app:s3cret@broker:5672/%2f");
    }

    #[test]
    fn an_unparseable_url_is_hidden_whole() {
        for raw in [
            "amqp:guest:s3cret@host",
            "redis:?pass=s3cret",
            "not a url?pass=s3cret",
            "://:s3cret@host",
        ] {
            let url = SecretUrl::new(raw);
            let shown = format!("{url} {url:?}");
            assert!(!shown.contains("s3cret"), "{raw}: {shown}");
        }
        // Nothing to hide: shown as it is, to help find the mistake.
        assert_eq!(redact_url("cache.internal:6379"), "cache.internal:6379");
    }

    /// Every URL form lapin or redis-rs takes, with the secret in each
    /// place it can go, and what is shown of it.
    const FORMS: &[(&str, &str)] = &[
        (
            "amqp://app:s3cret@broker:5672/%2f",
            "amqp://app:***@broker:5672/%2f",
        ),
        (
            "amqps://app:s3cret@broker/prod?heartbeat=10&auth_mechanism=external&frame_max=8192",
            "amqps://app:***@broker/prod?heartbeat=10&auth_mechanism=external&frame_max=8192",
        ),
        (
            "amqp://app:s3cret@broker/%2f?channel_max=9&connection_timeout=5000&password=s3cret",
            "amqp://app:***@broker/%2f?channel_max=9&connection_timeout=5000&password=***",
        ),
        (
            "amqp://app@broker/%2f?auth_mechanism=plain&s3cret_key=s3cret",
            "amqp://app@broker/%2f?auth_mechanism=plain&***=***",
        ),
        (
            "amqp://app:p%40s3cret%2F@broker/%2f",
            "amqp://app:***@broker/%2f",
        ),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("redis://lcm:s3cret@cache", "redis://lcm:***@cache"),
        (
            "rediss://:s3cret@cache:6380/1#insecure",
            "rediss://:***@cache:6380/1#insecure",
        ),
        (
            "rediss://cache:6380/1?protocol=resp3#s3cret",
            "rediss://cache:6380/1?protocol=resp3#***",
        ),
        ("valkey://:s3cret@cache", "valkey://:***@cache"),
        (
            "valkeys://lcm:s3cret@cache:6380",
            "valkeys://lcm:***@cache:6380",
        ),
        (
            "redis+unix:///run/redis.sock?pass=s3cret",
            "redis+unix:///run/redis.sock?pass=***",
        ),
        (
            "redis+unix:///run/redis.sock?db=2&user=lcm&pass=s3cret&protocol=3",
            "redis+unix:///run/redis.sock?db=2&user=lcm&pass=***&protocol=3",
        ),
        (
            "valkey+unix:///run/valkey.sock?pass=%26s3cret%3D",
            "valkey+unix:///run/valkey.sock?pass=***",
        ),
        (
            "unix:///run/redis.sock?pass=s3cret",
            "unix:///run/redis.sock?pass=***",
        ),
        (
            "unix:/run/redis.sock?pass=s3cret",
            "unix:/run/redis.sock?pass=***",
        ),
        (
            "redis://cache?token=s3cret&s3cret",
            "redis://cache?***=***&***=***",
        ),
        // Sentinel addresses, with and without a password.
        ("redis://10.0.0.1:26379", "redis://10.0.0.1:26379"),
        ("redis://:s3cret@s2:26380", "redis://:***@s2:26380"),
    ];

    #[test]
    fn every_url_form_is_shown_without_its_secrets() {
        for (raw, expected) in FORMS {
            let url = SecretUrl::new(*raw);
            assert_eq!(url.to_string(), *expected, "{raw}");
            assert_eq!(format!("{url:?}"), format!("{expected:?}"), "{raw}");
            assert!(!url.to_string().contains("s3cret"), "{raw}");
            assert_eq!(url.expose(), *raw);
        }
    }
}
