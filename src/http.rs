//! `/healthz`, `/readyz` and `/metrics` (PROTOCOL.md section 8).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::Readiness;
use crate::store::RedisStore;

/// What the endpoints read.
#[derive(Clone)]
pub struct HttpState {
    /// Consumer state.
    pub readiness: Readiness,
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
    match state.readiness.check(&state.store).await {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn metrics(State(state): State<HttpState>) -> String {
    state.metrics.render()
}
