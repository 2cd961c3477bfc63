//! A proxy between the worker and RabbitMQ that can make the broker seem
//! to cancel the worker's consumer while the channel and the queue live
//! on: it reads the frames RabbitMQ sends, learns each consumer tag from
//! `basic.consume-ok`, and on command slips a `basic.cancel` (no-wait, so
//! the client sends no `cancel-ok` the broker would not expect) in between
//! two frames. RabbitMQ itself cancels consumers this way when their queue
//! goes, which leaves nothing to redeliver; this shows what becomes of the
//! deliveries in hand when something does stay.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const FRAME_METHOD: u8 = 1;
const FRAME_END: u8 = 0xCE;
const BASIC: u16 = 60;
const CONSUME_OK: u16 = 21;
const CANCEL: u16 = 30;

/// A running proxy; stops when dropped.
pub struct CancelProxy {
    /// `127.0.0.1:<port>`.
    pub addr: std::net::SocketAddr,
    cancel: watch::Sender<u64>,
    injected: Arc<Mutex<usize>>,
    stop: CancellationToken,
}

impl CancelProxy {
    /// Starts a proxy to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cancel, requests) = watch::channel(0);
        let injected = Arc::new(Mutex::new(0));
        let stop = CancellationToken::new();
        let (upstream, count, stopped) = (upstream.to_owned(), injected.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    _ = stopped.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => client,
                        Err(_) => continue,
                    },
                };
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let relay = relay(client, server, requests.clone(), count.clone());
                let stop = stopped.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = relay => {}
                    }
                });
            }
        });
        Self {
            addr,
            cancel,
            injected,
            stop,
        }
    }

    /// The test broker's URL, through this proxy.
    pub fn amqp_url(&self) -> String {
        super::env::amqp_url_at(self.addr.port())
    }

    /// Cancels every consumer seen so far, after the next frame RabbitMQ
    /// sends (a heartbeat at the latest).
    pub fn cancel_consumers(&self) {
        self.cancel.send_modify(|requests| *requests += 1);
    }

    /// How many `basic.cancel` frames went to the client.
    pub fn injected(&self) -> usize {
        *self.injected.lock().unwrap()
    }
}

impl Drop for CancelProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Relays one connection; a change of `requests` asks for the cancels.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    mut requests: watch::Receiver<u64>,
    injected: Arc<Mutex<usize>>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upwards = tokio::io::copy(&mut client_read, &mut server_write);
    let downwards = async {
        let mut consumers: Vec<(u16, Vec<u8>)> = Vec::new();
        let mut pending = false;
        let mut buffer = Vec::new();
        let mut chunk = vec![0; 64 * 1024];
        loop {
            let read = tokio::select! {
                read = server_read.read(&mut chunk) => read,
                changed = requests.changed() => {
                    pending = changed.is_ok();
                    continue;
                }
            };
            let Ok(n @ 1..) = read else { return };
            buffer.extend_from_slice(&chunk[..n]);
            // Whole frames only, so that a cancel goes in between two.
            let mut whole = 0;
            while let Some(len) = frame_len(&buffer[whole..]) {
                if let Some(tag) = consume_ok(&buffer[whole..whole + len]) {
                    consumers.push(tag);
                }
                whole += len;
            }
            if client_write.write_all(&buffer[..whole]).await.is_err() {
                return;
            }
            buffer.drain(..whole);
            if pending && whole > 0 {
                pending = false;
                for (channel, tag) in &consumers {
                    if client_write
                        .write_all(&cancel_frame(*channel, tag))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    *injected.lock().unwrap() += 1;
                }
            }
        }
    };
    tokio::select! {
        _ = upwards => {}
        _ = downwards => {}
    }
}

/// The length of the whole frame at the start of `bytes`, if it is there.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let size = u32::from_be_bytes(bytes.get(3..7)?.try_into().ok()?) as usize;
    let len = 7 + size + 1;
    (bytes.len() >= len && bytes[len - 1] == FRAME_END).then_some(len)
}

/// The channel and consumer tag of a `basic.consume-ok` frame.
fn consume_ok(frame: &[u8]) -> Option<(u16, Vec<u8>)> {
    let payload = &frame[7..frame.len() - 1];
    let class = u16::from_be_bytes(payload.get(0..2)?.try_into().ok()?);
    let method = u16::from_be_bytes(payload.get(2..4)?.try_into().ok()?);
    if frame[0] != FRAME_METHOD || class != BASIC || method != CONSUME_OK {
        return None;
    }
    let len = usize::from(*payload.get(4)?);
    let tag = payload.get(5..5 + len)?.to_vec();
    Some((u16::from_be_bytes([frame[1], frame[2]]), tag))
}

/// `basic.cancel` of `tag` on `channel`, no-wait.
fn cancel_frame(channel: u16, tag: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&BASIC.to_be_bytes());
    payload.extend_from_slice(&CANCEL.to_be_bytes());
    payload.push(tag.len() as u8);
    payload.extend_from_slice(tag);
    payload.push(1); // no-wait
    let mut frame = vec![FRAME_METHOD];
    frame.extend_from_slice(&channel.to_be_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame.push(FRAME_END);
    frame
}
