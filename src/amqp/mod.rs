//! Everything that speaks AMQP: the topology, confirmed reply publishing,
//! the consumer loop, and the broker endpoints it fails over between.

pub mod consumer;
pub mod endpoints;
pub mod publisher;
pub mod topology;

use std::io;
use std::time::Duration;

use anyhow::anyhow;
use lapin::tcp::{AMQPUriTcpExt, RustlsConnector};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};

use crate::settings::{Settings, TlsSettings};

pub use crate::routing::DIRECT_REPLY_TO;

/// Consumes Direct Reply-to on `channel`, without acks (the broker allows
/// no other way). Requests must then be published on the same channel.
pub async fn consume_direct_reply_to(channel: &lapin::Channel) -> lapin::Result<lapin::Consumer> {
    channel
        .basic_consume(
            DIRECT_REPLY_TO.into(),
            "".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
}

/// Opens a connection named after the worker, so operators can tell it
/// apart in the management UI. `amqps://` URLs use the rustls
/// configuration of `tls` (`amqp.tls.*`).
pub async fn connect(url: &str, name: &str, tls: &TlsSettings) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    // The parser's error may quote the whole URL, password included.
    let uri: AMQPUri = url
        .parse()
        .map_err(|_: String| io::Error::other("not an AMQP URL"))?;
    if uri.scheme == AMQPScheme::AMQP {
        return Connection::connect_uri(uri, properties).await;
    }
    let config =
        crate::tls::client_config(tls, &crate::tls::AMQP_KEYS).map_err(io::Error::other)?;
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
        let redacted = crate::settings::redact_url(&url);
        let tls = &settings.amqp.tls;
        match tokio::time::timeout(timeout, connect(&url, name, tls)).await {
            Ok(Ok(connection)) => return Ok((connection, redacted)),
            Ok(Err(error)) => failures.push(format!("RabbitMQ at {redacted}: {error}")),
            Err(_) => failures.push(format!(
                "RabbitMQ at {redacted}: timed out after {timeout:?}"
            )),
        }
    }
    Err(anyhow!("{}", failures.join("; ")))
}
