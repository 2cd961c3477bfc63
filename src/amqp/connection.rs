//! Connecting to RabbitMQ: a named connection, plain or TLS; the first of
//! the configured endpoints that answers, for the one-shot commands; and the
//! `check` command's probe.

use std::io;
use std::time::Duration;

use anyhow::{anyhow, Context};
use lapin::tcp::{AMQPUriTcpExt, RustlsConnector};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};

use super::topology::{self, RequestQueueState};
use crate::settings::{SecretUrl, Settings, TlsSettings};

/// The name a replica's connection carries (client property
/// `connection_name`, docs/protocol.md section 8):
/// `<amqp.app_id>@<host name> pid <pid>`. The host name tells containers
/// apart, where every replica tends to be pid 1.
pub fn replica_name(app_id: &str) -> String {
    let host = gethostname::gethostname();
    format!(
        "{app_id}@{} pid {}",
        host.to_string_lossy(),
        std::process::id()
    )
}

/// Opens a connection named `name`, so that operators can tell it apart in
/// the management UI. `amqps://` URLs use the rustls configuration of `tls`
/// (`amqp.tls.*`).
pub async fn connect(url: &SecretUrl, name: &str, tls: &TlsSettings) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    // Settings loading has refused a URL this parser refuses; the error
    // stays vague all the same, since lapin's would quote the password.
    let uri: AMQPUri = url
        .expose()
        .parse()
        .map_err(|_: String| io::Error::other("not an AMQP URL"))?;
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
        let name = replica_name("lcm-worker check");
        let (connection, url) = connect_first(settings, &name, timeout).await?;
        Ok(Self { connection, url })
    }

    /// The redacted URL it went to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Declares the topology on a channel of its own, closed again before
    /// this returns; what the broker said of the request queue.
    pub async fn declare_topology(&self, settings: &Settings) -> anyhow::Result<RequestQueueState> {
        let channel = self
            .connection
            .create_channel()
            .await
            .context("RabbitMQ channel")?;
        let declared = topology::declare(&channel, &settings.amqp)
            .await
            .context("RabbitMQ topology");
        // Closed here rather than by the connection's close: lapin logs a
        // channel still open when its connection closes as an error.
        if channel.status().connected() {
            let _ = channel.close(200, "check done".into()).await;
        }
        declared
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.connection.close(200, "check done".into()).await;
    }
}
