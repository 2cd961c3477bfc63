//! Every line that speaks AMQP (lapin): the connection and the broker
//! endpoints it fails over between, the topology, confirmed publishing, the
//! consumer, and the Direct Reply-to requester of the `request` and `bench`
//! commands.
//!
//! The consumer, from the outside in: `supervisor` (one session after
//! another; `failover` decides what follows a failed one), `session` (one
//! connection's life), `delivery` (one delivery's task), `settle` (pure:
//! what becomes of a request once its reply was offered), `acknowledger`
//! with `acks` (pure: batched acknowledgements of one channel).

mod acknowledger;
mod acks;
mod delivery;
mod endpoints;
mod failover;
mod publisher;
mod requester;
mod session;
mod settle;
mod supervisor;
pub mod topology;

use std::io;
use std::time::Duration;

use anyhow::{anyhow, Context};
use lapin::tcp::{AMQPUriTcpExt, RustlsConnector};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};

pub use self::requester::{ReceivedReply, Requester, Sent};
pub use self::settle::{settle, ChannelState, PublishOutcome, Settle};
pub use self::supervisor::{run, ConsumeError, ConsumerState};
pub use self::topology::RequestQueueState;

use crate::settings::{SecretUrl, Settings, SettingsError, TlsSettings};

/// Log filter directives for lapin's own lines. lapin warns of every
/// returned message with the whole message, body included (a 10 MB reply
/// made a 40 MB line); the worker logs its own bounded warning for an
/// unroutable reply instead.
pub const QUIET_LOGS: &[&str] = &["lapin::returned_messages=error"];

/// Why an AMQP URL was refused. lapin's parse error quotes the whole URL,
/// password included, so it is never passed on.
const NOT_AN_AMQP_URL: &str = "not an AMQP URL (amqp[s]://user:password@host:port/vhost)";

/// Checks `amqp.url` and `amqp.urls` with the parser that will connect
/// with them; the error names the key.
pub fn validate(settings: &Settings) -> Result<(), SettingsError> {
    let amqp = &settings.amqp;
    let refused = |key| SettingsError::Invalid {
        key,
        reason: NOT_AN_AMQP_URL.to_owned(),
    };
    if parse(&amqp.url).is_err() {
        return Err(refused("amqp.url"));
    }
    if amqp.urls.iter().any(|url| parse(url).is_err()) {
        return Err(refused("amqp.urls"));
    }
    Ok(())
}

fn parse(url: &SecretUrl) -> io::Result<AMQPUri> {
    url.expose()
        .parse()
        .map_err(|_: String| io::Error::other(NOT_AN_AMQP_URL))
}

/// Opens a connection named `name`, so that operators can tell it apart in
/// the management UI. `amqps://` URLs use the rustls configuration of `tls`
/// (`amqp.tls.*`).
pub async fn connect(url: &SecretUrl, name: &str, tls: &TlsSettings) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let uri = parse(url)?;
    if uri.scheme == AMQPScheme::AMQP {
        return Connection::connect_uri(uri, properties).await;
    }
    let config = crate::settings::tls::client_config(tls, &crate::settings::tls::AMQP_KEYS)
        .map_err(io::Error::other)?;
    let connector = RustlsConnector::from(config);
    let runtime = lapin::runtime::default_runtime()?;
    // lapin's own TLS set-up takes no custom verifier, so the TCP stream is
    // opened plain and wrapped here with our rustls configuration.
    let tls_connect = async move |uri: AMQPUri, runtime| {
        let mut plain = uri.clone();
        plain.scheme = AMQPScheme::AMQP;
        let stream = plain.connect_async(&runtime).await?;
        Ok(stream.into_rustls(&connector, &uri.authority.host).await?)
    };
    Connection::connector(uri, runtime, tls_connect, properties).await
}

/// Connects to the first of the configured endpoints that answers within
/// `timeout`, in the configured order; for the one-shot commands. Returns
/// the connection and the redacted URL it went to.
pub async fn connect_first(
    settings: &Settings,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<(Connection, String)> {
    let mut failures = Vec::new();
    for url in settings.amqp_urls() {
        let tls = &settings.amqp.tls;
        match tokio::time::timeout(timeout, connect(&url, name, tls)).await {
            Ok(Ok(connection)) => return Ok((connection, url.redacted())),
            Ok(Err(error)) => failures.push(format!("RabbitMQ at {url}: {error}")),
            Err(_) => failures.push(format!("RabbitMQ at {url}: timed out after {timeout:?}")),
        }
    }
    Err(anyhow!("{}", failures.join("; ")))
}

/// A connection for the `check` command.
pub struct Probe {
    connection: Connection,
    url: String,
}

impl Probe {
    /// Connects like [`connect_first`].
    pub async fn connect(settings: &Settings, timeout: Duration) -> anyhow::Result<Self> {
        let (connection, url) = connect_first(settings, "lcm-worker check", timeout).await?;
        Ok(Self { connection, url })
    }

    /// The redacted URL it went to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Declares the topology; what the broker said of the request queue.
    pub async fn declare_topology(&self, settings: &Settings) -> anyhow::Result<RequestQueueState> {
        let channel = self
            .connection
            .create_channel()
            .await
            .context("RabbitMQ channel")?;
        topology::declare(&channel, &settings.amqp)
            .await
            .context("RabbitMQ topology")
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.connection.close(200, "check done".into()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(var: &str, value: &str) -> Result<(), SettingsError> {
        let env = HashMap::from([(var.to_owned(), value.to_owned())]);
        validate(&Settings::load_from(None, Some(env))?)
    }

    #[test]
    fn the_quiet_log_directives_parse() {
        for directive in QUIET_LOGS {
            directive
                .parse::<tracing_subscriber::filter::Directive>()
                .unwrap();
        }
    }

    #[test]
    fn a_url_that_is_not_amqp_names_its_key() {
        for (var, value, key) in [
            ("LCM__AMQP__URL", "http://x", "amqp.url"),
            ("LCM__AMQP__URLS", "amqp://a/%2f,http://b", "amqp.urls"),
        ] {
            let error = load(var, value).unwrap_err().to_string();
            assert!(error.contains(key), "{var}={value}: {error}");
        }
        load("LCM__AMQP__URLS", "amqp://a/%2f,amqps://b:5671/%2f").unwrap();
    }

    #[test]
    fn a_refused_amqp_url_is_not_quoted_back() {
        // lapin's parser quotes the whole URL in its error.
        for var in ["LCM__AMQP__URL", "LCM__AMQP__URLS"] {
            let error = load(var, "amqp:guest:s3cret@host").unwrap_err().to_string();
            assert!(error.contains("not an AMQP URL"), "{error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
    }
}
