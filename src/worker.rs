//! The worker: wires the store, the service, the HTTP endpoints and the
//! consumer, and runs them until shutdown.

use std::sync::Arc;
use std::time::Duration;

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
        .with_max_list_bytes(settings.limits.max_outcome_list_bytes)
        .with_max_field_bytes(settings.limits.max_call_field_bytes);
    // Say at once when Redis cannot be reached (a TLS or certificate error
    // included); /readyz keeps reporting it.
    let probe = store.clone();
    tokio::spawn(async move {
        if let Err(error) = probe.probe_lookup().await {
            tracing::warn!(%error, "Redis cannot run the lookup at start-up");
        }
    });
    let service = Arc::new(
        Service::new(
            store.clone(),
            settings.limits.max_message_bytes,
            settings.request_deadline(),
        )
        .with_outcome_cache(
            settings.outcome_cache_ttl(),
            settings.redis.outcome_cache_bytes,
        )
        .with_own_app_id(&settings.amqp.app_id)
        .with_max_list_bytes(settings.limits.max_outcome_list_bytes),
    );
    tokio::spawn(release_expired_outcomes(service.clone(), shutdown.clone()));
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

/// How often expired outcome lists are released from the cache.
const RELEASE_EVERY: Duration = Duration::from_secs(1);

/// Released at once, this much is a spike's: its heap pages, and those of
/// the requests of the spike, are given back to the operating system. Below
/// it (campaigns' lists expiring in steady use), they are kept for reuse.
const GIVE_BACK_AFTER: usize = 1 << 20;

/// Releases expired outcome lists every [`RELEASE_EVERY`] until shutdown,
/// so that memory goes back after a spike even when no request follows.
async fn release_expired_outcomes(service: Arc<Service<RedisStore>>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(RELEASE_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                if service.release_expired_outcomes() >= GIVE_BACK_AFTER {
                    crate::memory::give_back_freed();
                }
            }
        }
    }
}
