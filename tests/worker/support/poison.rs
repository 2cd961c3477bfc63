//! A hostile publisher: lapin cannot write bytes that are not UTF-8 in a
//! property, nor a header table nested thousands deep (its own encoder
//! would need that stack), so it publishes placeholders through a TCP proxy
//! that swaps each for the hostile bytes of the same length on the way to
//! RabbitMQ. The frames stay well-formed; only their content is poisoned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lapin::options::ConfirmSelectOptions;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::env::*;

/// One swap: `placeholder` is replaced by `poison` of the same length.
#[derive(Debug, Clone)]
pub struct Swap {
    pub placeholder: Vec<u8>,
    pub poison: Vec<u8>,
}

/// A connection to RabbitMQ through the swapping proxy.
pub struct PoisonPublisher {
    pub channel: Channel,
    swapped: Arc<AtomicUsize>,
    stop: CancellationToken,
    _connection: Connection,
}

impl PoisonPublisher {
    /// Connects to the test broker through a proxy applying `swaps`.
    pub async fn connect(swaps: Vec<Swap>) -> Self {
        for swap in &swaps {
            assert_eq!(swap.placeholder.len(), swap.poison.len());
            // Every frame ends with 0xCE: a placeholder that does not start
            // with it can never be left half-sent at the end of a write.
            assert_ne!(swap.placeholder[0], 0xCE);
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = amqp_address();
        let swapped = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let (count, stopped) = (swapped.clone(), stop.clone());
        tokio::spawn(async move {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let server = TcpStream::connect(&upstream).await.unwrap();
            let (client_read, client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let mut client_write = client_write;
            tokio::select! {
                _ = stopped.cancelled() => {}
                _ = swap_stream(client_read, &mut server_write, &swaps, &count) => {}
                _ = tokio::io::copy(&mut server_read, &mut client_write) => {}
            }
        });
        let url = super::env::amqp_url_at(port);
        let connection = Connection::connect(&url, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        // With confirms, a publish returns once the broker has the message,
        // so the proxy has passed (and counted) it by then.
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Self {
            channel,
            swapped,
            stop,
            _connection: connection,
        }
    }

    /// Publishes to `exchange` and waits until the broker has it.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) {
        publish(&self.channel, exchange, routing_key, body, properties).await;
    }

    /// How many placeholders were swapped so far.
    pub fn swapped(&self) -> usize {
        self.swapped.load(Ordering::SeqCst)
    }
}

impl Drop for PoisonPublisher {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Copies `from` to `to`, swapping placeholders, also across reads: the
/// bytes that may begin a placeholder are held until the next read.
async fn swap_stream(
    mut from: tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    swaps: &[Swap],
    count: &AtomicUsize,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buffer[..n]);
        for swap in swaps {
            let mut at = 0;
            while let Some(found) = find(&pending[at..], &swap.placeholder) {
                let start = at + found;
                pending[start..start + swap.poison.len()].copy_from_slice(&swap.poison);
                count.fetch_add(1, Ordering::SeqCst);
                at = start + swap.poison.len();
            }
        }
        let hold = swaps
            .iter()
            .map(|swap| partial_prefix(&pending, &swap.placeholder))
            .max()
            .unwrap_or(0);
        let send = pending.len() - hold;
        if to.write_all(&pending[..send]).await.is_err() {
            return;
        }
        pending.drain(..send);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The length of the longest end of `data` that is a proper prefix of `needle`.
fn partial_prefix(data: &[u8], needle: &[u8]) -> usize {
    (1..needle.len().min(data.len() + 1))
        .rev()
        .find(|&n| data.ends_with(&needle[..n]))
        .unwrap_or(0)
}

/// A header table's content (`F` value, without its length prefix) nested
/// `depth` tables deep, exactly `size` bytes long: each level is the key
/// `a` and a table; the innermost holds a long string that fills it up.
pub fn nested_table(depth: usize, size: usize) -> Vec<u8> {
    const LEVEL: usize = 7; // key length, key, 'F', u32 length
    let filler = size
        .checked_sub(LEVEL * depth + LEVEL)
        .expect("size leaves room for the levels");
    let mut inner = vec![1, b'a', b'S'];
    inner.extend_from_slice(&(filler as u32).to_be_bytes());
    inner.extend(std::iter::repeat_n(b'x', filler));
    for _ in 0..depth {
        let mut level = vec![1, b'a', b'F'];
        level.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        level.extend_from_slice(&inner);
        inner = level;
    }
    assert_eq!(inner.len(), size);
    inner
}
