//! `/healthz`, `/readyz` and `/metrics` (docs/protocol.md section 8).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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

/// Connections served at once. Past it, new ones wait in the listen
/// backlog: a flood of idle connections holds neither file descriptors nor
/// memory of the worker's beyond these.
const MAX_CONNECTIONS: usize = 128;

/// How long connections still open at shutdown may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Serves until `shutdown` is cancelled.
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
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    loop {
        // A slot first, then the connection: at the limit, new connections
        // are not accepted until one closes.
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, say: not this server's end.
                    tracing::warn!(%error, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A closed or timed-out connection is the client's affair.
            let _ = connection.await;
            drop(slot);
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("HTTP connections still open at shutdown were dropped");
    }
    Ok(())
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
