//! The worker: wires the store, the service, the HTTP endpoints and the
//! consumer, and runs them until shutdown.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::amqp::{self, ConsumerState};
use crate::http::{self, HttpState};
use crate::redis::RedisStore;
use crate::service::Service;
use crate::settings::Settings;
use crate::telemetry;

/// Runs the worker, serving `/healthz`, `/readyz` and `/metrics` on
/// `listener`, until `shutdown` is cancelled (by a signal, or by the
/// caller), then drains and closes. Errors only on start-up problems: the
/// settings are invalid (settings built in code are checked again here), the
/// store cannot be built, or the broker refuses the topology.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    settings.validate()?;
    tracing::info!(config = ?settings, "starting lcm-worker {}", env!("CARGO_PKG_VERSION"));
    settings.warn_if_insecure();
    let settings = Arc::new(settings);
    let store = RedisStore::new(&settings.redis)
        .context("redis")?
        .with_max_list_bytes(settings.limits.max_outcome_list_bytes);
    // Say at once when Redis cannot be reached (a TLS or certificate error
    // included); /readyz keeps reporting it.
    let probe = store.clone();
    tokio::spawn(async move {
        if let Err(error) = probe.ping().await {
            tracing::warn!(%error, "Redis not answering at start-up");
        }
    });
    let service = Arc::new(
        Service::new(
            store.clone(),
            settings.limits.max_message_bytes,
            settings.request_deadline(),
        )
        .with_outcome_cache(settings.outcome_cache_ttl())
        .with_own_app_id(&settings.amqp.app_id)
        .with_max_list_bytes(settings.limits.max_outcome_list_bytes),
    );
    let consumer = ConsumerState::default();
    tracing::info!(addr = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
    let metrics = telemetry::metrics_handle();
    tokio::spawn(telemetry::metrics_upkeep(metrics.clone(), shutdown.clone()));
    let state = HttpState {
        consumer: consumer.clone(),
        store,
        metrics,
    };
    let http = tokio::spawn(http::serve(listener, state, shutdown.clone()));
    let consumed = amqp::run(settings, service, consumer, shutdown.clone()).await;
    // The HTTP server stops with the same token; a topology error stops it too.
    shutdown.cancel();
    let served = http.await.context("http task")?;
    consumed.context("AMQP topology")?;
    served.context("http server")?;
    tracing::info!("stopped");
    Ok(())
}
