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

    /// The URL with any password replaced by `***`.
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

/// The URL with any password replaced by `***`. Text that is not a URL
/// with a host (`amqp:user:pw@host` parses as one without) is shown only
/// when it holds no `@`, since it may still hold a secret.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.has_host() => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have credentials at all.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        _ if !raw.contains('@') => raw.to_owned(),
        _ => "<unparseable URL>".to_owned(),
    }
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
        let url = SecretUrl::new("amqp:guest:s3cret@host");
        assert!(!format!("{url} {url:?}").contains("s3cret"));
    }
}
