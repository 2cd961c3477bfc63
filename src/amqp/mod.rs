//! Everything that speaks AMQP: the topology, confirmed reply publishing,
//! and the consumer loop.

pub mod consumer;
pub mod publisher;
pub mod topology;

use lapin::{Connection, ConnectionProperties};

/// Opens a connection named after the worker, so operators can tell it
/// apart in the management UI.
pub async fn connect(url: &str, name: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, properties).await
}
