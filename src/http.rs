//! `/healthz`, `/readyz` and `/metrics` (docs/protocol.md section 8).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use futures_util::future::BoxFuture;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::PrometheusHandle;
use rustix::net::RecvFlags;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::amqp::ConsumerState;
use crate::redis::RedisStore;
use crate::service::StoreError;

/// How long `/readyz` waits for Redis to answer the lookup probe.
const REDIS_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// What the endpoints read.
#[derive(Clone)]
pub struct HttpState {
    /// Whether the worker consumes now.
    pub consumer: ConsumerState,
    /// The store `/readyz` probes.
    pub store: RedisStore,
    /// The Prometheus recorder's handle.
    pub metrics: PrometheusHandle,
}

/// A connection that has not sent a whole request head within this long
/// is closed: a slow sender (slowloris), or an idle keep-alive connection,
/// since hyper runs the same timer while it waits for the next request.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What one connection may buffer of a request: the endpoints take no
/// body, and a request head needs far less. Bounds a fast sender's share
/// of memory (hyper's default is about 400 KB).
const MAX_CONNECTION_BUFFER: usize = 16 * 1024;

/// Connections kept open at once before the oldest idle one is closed
/// for a new one: 16 MB of buffers in the worst case. Fewer when the
/// file-descriptor limit is low (see [`Limits`]).
const MAX_CONNECTIONS: usize = 1024;

/// A new connection is not closed for another one before this long: time
/// for it to send its request.
const NEW_CONNECTION_GRACE: Duration = Duration::from_millis(500);

/// How long a new connection may wait for its request to arrive when
/// there is no room for it yet.
const LOBBY_WAIT: Duration = Duration::from_millis(100);

/// How long connections still open at shutdown may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Serves until `shutdown` is cancelled.
///
/// Every connection is accepted at once, so that a probe never waits
/// behind idle ones in the listen backlog. Past the soft limit of open
/// connections (see [`Limits`]), a new one takes the place of the oldest
/// one that has no request in progress and is past its grace time; when
/// there is none, only a connection whose request is already waiting is
/// taken (up to the hard limit), and any other is closed at once. A flood
/// of idle or slow connections costs the worker neither file descriptors
/// nor memory beyond the limits, and the probe that arrives in the middle
/// of it is served.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_CONNECTION_BUFFER);
    let limits = Limits::for_this_process();
    let open = Arc::new(OpenConnections::default());
    let lobby = Arc::new(Lobby::default());
    // Connections whose request arrived while they waited in the lobby.
    let (arrived, mut from_lobby) = mpsc::channel(limits.lobby.max(1));
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, waiting) = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(stream) = from_lobby.recv() => (stream, true),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let waiting = has_whole_request_head(&stream);
                    (stream, waiting)
                }
                Err(error) => {
                    // Out of file descriptors, say: not this server's end.
                    tracing::warn!(%error, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(admitted) = open.admit(Instant::now(), waiting, limits) else {
            // No room: a connection that has not sent its request yet
            // (a probe just connected, say) waits for it in the lobby, in
            // the place of the one that has waited longest if the lobby
            // is full; any other is closed at once.
            if !waiting && limits.lobby > 0 {
                let (place, closed) = lobby.enter(limits.lobby);
                let (arrived, lobby) = (arrived.clone(), lobby.clone());
                tokio::spawn(async move {
                    let arrives = tokio::select! {
                        _ = closed.cancelled() => false,
                        arrives = request_arrives(&stream, LOBBY_WAIT) => arrives,
                    };
                    if arrives {
                        let _ = arrived.try_send(stream);
                    }
                    lobby.leave(place);
                });
            }
            continue;
        };
        let service = InRequest {
            inner: TowerToHyperService::new(app.clone()),
            flag: admitted.in_request.clone(),
        };
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let open = open.clone();
        tokio::spawn(async move {
            // A closed or timed-out connection is the client's affair;
            // an evicted one is dropped, which closes it.
            tokio::select! {
                _ = connection => {}
                _ = admitted.evict.cancelled() => {}
            }
            open.remove(&admitted.in_request);
        });
        // Connections just accepted get to read their request before the
        // next accept.
        tokio::task::yield_now().await;
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("HTTP connections still open at shutdown were dropped");
    }
    Ok(())
}

/// How many connections are kept open.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Past this, a new connection replaces an old idle one.
    soft: usize,
    /// Never more than this: a quarter, with `soft`, of what the process
    /// may open, so that a flood never takes the file descriptors that the
    /// broker and Redis connections need.
    hard: usize,
    /// New connections waiting for their request while there is no room:
    /// a quarter of `soft`.
    lobby: usize,
}

impl Limits {
    /// [`MAX_CONNECTIONS`], or a quarter of the file-descriptor limit if
    /// that is less; the hard limit twice that.
    fn for_this_process() -> Self {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        let quarter = limit.map_or(usize::MAX, |limit| {
            usize::try_from(limit / 4).unwrap_or(usize::MAX)
        });
        let soft = MAX_CONNECTIONS.min(quarter).max(1);
        Self {
            soft,
            hard: 2 * soft,
            lobby: soft / 4,
        }
    }
}

/// Whether a whole request head is waiting on a connection just accepted:
/// a probe sends its request at once, and under a flood it has waited in
/// the listen backlog long enough for all of it to arrive.
fn has_whole_request_head(stream: &TcpStream) -> bool {
    let mut head = [0u8; 1024];
    let flags = RecvFlags::PEEK | RecvFlags::DONTWAIT;
    match rustix::net::recv(stream, &mut head[..], flags) {
        Ok((received, _)) => head[..received].windows(4).any(|end| end == b"\r\n\r\n"),
        Err(_) => false,
    }
}

/// Whether a whole request head arrives on `stream` within `wait`.
async fn request_arrives(stream: &TcpStream, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    let mut first = [0u8; 1];
    // Any byte, then the whole head, looked at again every few
    // milliseconds: a peek leaves the bytes unread, so the socket stays
    // readable and cannot be waited on for more.
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Ok(Ok(1..)) => {}
        _ => return false,
    }
    loop {
        if has_whole_request_head(stream) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// New connections waiting for their request, longest waiting first.
#[derive(Default)]
struct Lobby {
    waiting: Mutex<(u64, VecDeque<(u64, CancellationToken)>)>,
}

impl Lobby {
    /// A place in the lobby, and the token that closes it; the one that
    /// has waited longest is closed if `size` are waiting already.
    fn enter(&self, size: usize) -> (u64, CancellationToken) {
        let mut lobby = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let (next, waiting) = &mut *lobby;
        if waiting.len() >= size {
            if let Some((_, closed)) = waiting.pop_front() {
                closed.cancel();
            }
        }
        let place = *next;
        *next += 1;
        let closed = CancellationToken::new();
        waiting.push_back((place, closed.clone()));
        (place, closed)
    }

    fn leave(&self, place: u64) {
        let mut lobby = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        lobby.1.retain(|(waiting, _)| *waiting != place);
    }
}

/// The open connections, oldest first.
#[derive(Default)]
struct OpenConnections {
    by_age: Mutex<VecDeque<Open>>,
}

/// One open connection.
struct Open {
    opened: Instant,
    /// Raised while one of its requests is in progress.
    in_request: Arc<AtomicBool>,
    /// Cancelled to close it.
    evict: CancellationToken,
}

/// What the task serving an admitted connection holds.
struct Admitted {
    in_request: Arc<AtomicBool>,
    evict: CancellationToken,
}

impl OpenConnections {
    /// Takes a connection opened `now`, `waiting` if its request has
    /// arrived, making room within `limits` by closing the oldest idle
    /// connection past its grace time; `None` if it is not taken.
    fn admit(&self, now: Instant, waiting: bool, limits: Limits) -> Option<Admitted> {
        let mut by_age = self.lock();
        if by_age.len() >= limits.soft {
            // The first idle one is the oldest idle one.
            let oldest_idle = by_age
                .iter()
                .position(|open| !open.in_request.load(Ordering::Relaxed))
                .filter(|&i| now.duration_since(by_age[i].opened) >= NEW_CONNECTION_GRACE);
            match oldest_idle {
                Some(i) => {
                    if let Some(open) = by_age.remove(i) {
                        open.evict.cancel();
                    }
                }
                None if waiting && by_age.len() < limits.hard => {}
                None => return None,
            }
        }
        let open = Open {
            opened: now,
            in_request: Arc::new(AtomicBool::new(waiting)),
            evict: CancellationToken::new(),
        };
        let admitted = Admitted {
            in_request: open.in_request.clone(),
            evict: open.evict.clone(),
        };
        by_age.push_back(open);
        Some(admitted)
    }

    /// Forgets a connection that ended.
    fn remove(&self, in_request: &Arc<AtomicBool>) {
        self.lock()
            .retain(|open| !Arc::ptr_eq(&open.in_request, in_request));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Open>> {
        self.by_age.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The endpoints' service, raising a connection's flag while one of its
/// requests is in progress.
#[derive(Clone)]
struct InRequest<S> {
    inner: S,
    flag: Arc<AtomicBool>,
}

impl<S, B> hyper::service::Service<Request<B>> for InRequest<S>
where
    S: hyper::service::Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn call(&self, request: Request<B>) -> Self::Future {
        self.flag.store(true, Ordering::Relaxed);
        let flag = self.flag.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            flag.store(false, Ordering::Relaxed);
            response
        })
    }
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, String) {
    match ready(&state).await {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

/// Ready: consuming from RabbitMQ, and Redis running the lookup's commands
/// for the worker's user (not merely answering PING); else a one-line reason.
async fn ready(state: &HttpState) -> Result<(), String> {
    if !state.consumer.consuming() {
        return Err("not consuming from RabbitMQ".to_owned());
    }
    match tokio::time::timeout(REDIS_PROBE_TIMEOUT, state.store.probe_lookup()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(StoreError::Refused(reason))) => Err(format!("Redis refuses the lookup: {reason}")),
        Ok(Err(error)) => Err(format!("Redis not answering: {error}")),
        Err(_) => Err(format!(
            "Redis not answering: no answer within {REDIS_PROBE_TIMEOUT:?}"
        )),
    }
}

async fn metrics(State(state): State<HttpState>) -> String {
    state.metrics.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        soft: 2,
        hard: 3,
        lobby: 0,
    };

    fn admit(open: &OpenConnections, at: Instant, waiting: bool) -> Option<Admitted> {
        open.admit(at, waiting, LIMITS)
    }

    #[test]
    fn below_the_soft_limit_every_connection_is_taken() {
        let open = OpenConnections::default();
        let now = Instant::now();
        let first = admit(&open, now, false).unwrap();
        assert!(admit(&open, now, false).is_some());
        assert!(!first.evict.is_cancelled());
        assert_eq!(open.lock().len(), 2);
    }

    #[test]
    fn past_the_soft_limit_the_oldest_idle_connection_past_its_grace_makes_room() {
        let open = OpenConnections::default();
        let start = Instant::now();
        let busy = admit(&open, start, false).unwrap();
        let idle = admit(&open, start, false).unwrap();
        busy.in_request.store(true, Ordering::Relaxed);
        let later = start + NEW_CONNECTION_GRACE;
        assert!(admit(&open, later, false).is_some());
        assert!(!busy.evict.is_cancelled(), "a request in progress is kept");
        assert!(idle.evict.is_cancelled());
        assert_eq!(open.lock().len(), 2);
    }

    #[test]
    fn within_the_grace_time_only_a_waiting_request_is_taken_and_never_past_the_hard_limit() {
        let open = OpenConnections::default();
        let now = Instant::now();
        let young: Vec<_> = (0..2).map(|_| admit(&open, now, false).unwrap()).collect();
        assert!(
            admit(&open, now, false).is_none(),
            "nothing waiting: closed"
        );
        assert!(
            admit(&open, now, true).is_some(),
            "a waiting request: taken"
        );
        assert!(admit(&open, now, true).is_none(), "the hard limit");
        assert!(young.iter().all(|a| !a.evict.is_cancelled()));
        assert_eq!(open.lock().len(), 3);
    }

    #[test]
    fn a_connection_that_ended_leaves_room() {
        let open = OpenConnections::default();
        let now = Instant::now();
        let first = admit(&open, now, false).unwrap();
        admit(&open, now, false).unwrap();
        open.remove(&first.in_request);
        assert!(admit(&open, now, false).is_some());
    }
}
