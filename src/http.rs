//! `/healthz`, `/readyz` and `/metrics` (docs/protocol.md section 8).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::amqp::ConsumerState;
use crate::redis::RedisStore;

/// How long `/readyz` waits for Redis to answer a PING.
const REDIS_PING_TIMEOUT: Duration = Duration::from_millis(500);

/// What the endpoints read.
#[derive(Clone)]
pub struct HttpState {
    /// Whether the worker consumes now.
    pub consumer: ConsumerState,
    /// The store `/readyz` pings.
    pub store: RedisStore,
    /// The Prometheus recorder's handle.
    pub metrics: PrometheusHandle,
}

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
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
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

/// Ready: consuming from RabbitMQ and Redis answering; else a one-line reason.
async fn ready(state: &HttpState) -> Result<(), String> {
    if !state.consumer.consuming() {
        return Err("not consuming from RabbitMQ".to_owned());
    }
    match tokio::time::timeout(REDIS_PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("Redis not answering: {error}")),
        Err(_) => Err("Redis not answering: PING timed out".to_owned()),
    }
}

async fn metrics(State(state): State<HttpState>) -> String {
    state.metrics.render()
}
