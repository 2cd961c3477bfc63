//! A TCP proxy for fault injection: sits between the worker and RabbitMQ or
//! Redis, and on command cuts every connection, stops forwarding bytes
//! (a black hole), refuses new connections (a broker that is down), or
//! delays what the upstream answers (a slow server).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pass bytes both ways.
    Forward,
    /// Keep connections open but pass nothing until forwarding resumes.
    BlackHole,
    /// Close new connections at once; existing ones keep forwarding.
    Refuse,
    /// Pass bytes both ways, but hold each chunk the upstream sends for
    /// this long after it arrived: every response comes that much later,
    /// and responses do not queue behind each other's delays.
    Delay(Duration),
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    /// `127.0.0.1:<port>` to point the worker at.
    pub addr: std::net::SocketAddr,
    mode: watch::Sender<Mode>,
    /// Cancelled to cut the current connections; replaced afterwards.
    generation: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
    /// Connections relayed to the upstream now.
    open: Arc<AtomicUsize>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`host:port`) in `mode`.
    pub async fn start(upstream: &str, mode: Mode) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode_tx, mode_rx) = watch::channel(mode);
        let generation = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let upstream = upstream.to_owned();
        let gens = generation.clone();
        let stopped = stop.clone();
        let open = Arc::new(AtomicUsize::new(0));
        let counter = open.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    _ = stopped.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(_) => continue,
                    },
                };
                if *mode_rx.borrow() == Mode::Refuse {
                    drop(client);
                    continue;
                }
                let cut = gens.lock().unwrap().clone();
                let stop = stopped.clone();
                let counter = counter.clone();
                tokio::spawn(relay(
                    client,
                    upstream.clone(),
                    mode_rx.clone(),
                    cut,
                    stop,
                    counter,
                ));
            }
        });
        Proxy {
            addr,
            mode: mode_tx,
            generation,
            stop,
            open,
        }
    }

    /// Connections relayed to the upstream now (connected and not cut).
    pub fn connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Changes what the proxy does from now on.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Closes every connection open now; new ones are served per the mode.
    pub fn cut(&self) {
        let mut current = self.generation.lock().unwrap();
        current.cancel();
        *current = CancellationToken::new();
    }

    /// The proxy as a `host:port`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// The test broker's URL, reached through this proxy.
    pub fn amqp_url(&self) -> String {
        super::env::amqp_url_at(self.addr.port())
    }

    /// The test Redis URL, reached through this proxy.
    pub fn redis_url(&self) -> String {
        super::env::redis_url_at(self.addr.port())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.stop.cancel();
    }
}

async fn relay(
    client: TcpStream,
    upstream: String,
    mode: watch::Receiver<Mode>,
    cut: CancellationToken,
    stop: CancellationToken,
    open: Arc<AtomicUsize>,
) {
    // A black hole also swallows new connections: wait before dialling.
    let mut waiting = mode.clone();
    tokio::select! {
        _ = cut.cancelled() => return,
        _ = stop.cancelled() => return,
        ready = waiting.wait_for(|m| *m != Mode::BlackHole) => if ready.is_err() { return },
    }
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    open.fetch_add(1, Ordering::SeqCst);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Its tasks end when this relay does.
    let relayed = CancellationToken::new();
    let _relayed = relayed.clone().drop_guard();
    let server_read = delayed(server_read, mode.clone(), relayed);
    tokio::select! {
        _ = cut.cancelled() => {}
        _ = stop.cancelled() => {}
        _ = pump(client_read, server_write, mode.clone()) => {}
        _ = pump(server_read, client_write, mode) => {}
    }
    open.fetch_sub(1, Ordering::SeqCst);
    // Dropping both halves closes both sockets.
}

/// Copies bytes one way, holding them while the mode is a black hole.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if mode.wait_for(|m| *m != Mode::BlackHole).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// What the upstream sends, as the client is to see it: in [`Mode::Delay`]
/// each chunk is held until the delay after it arrived (a delay line, so
/// chunks behind it are not held longer); in any other mode at once.
fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mode: watch::Receiver<Mode>,
    relayed: CancellationToken,
) -> DuplexStream {
    let (near, mut far) = tokio::io::duplex(1 << 20);
    let (chunks, mut arrived) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let ended = relayed.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            // Stops with the relay, so that the socket is not kept open by
            // this task alone.
            let n = tokio::select! {
                _ = ended.cancelled() => return,
                read = from.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                },
            };
            if chunks.send((Instant::now(), buffer[..n].to_vec())).is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let (at, bytes) = tokio::select! {
                _ = relayed.cancelled() => return,
                next = arrived.recv() => match next {
                    Some(chunk) => chunk,
                    None => return,
                },
            };
            let delay = match *mode.borrow() {
                Mode::Delay(delay) => Some(delay),
                _ => None,
            };
            if let Some(delay) = delay {
                tokio::time::sleep_until(at + delay).await;
            }
            if far.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    near
}
