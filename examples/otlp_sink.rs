//! A collector that keeps up, for `bench/trace-cost.sh`: it takes every
//! OTLP/HTTP export (`POST /v1/traces`), reads the body, and answers 200
//! with an empty body (an empty `ExportTraceServiceResponse`). One thread,
//! so that it takes as little of the machine as a real collector on
//! another host would. Prints what it took when stopped (SIGTERM).
//!
//! ```sh
//! cargo run --release --example otlp_sink -- 4318
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use std::future::IntoFuture;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Default)]
struct Taken {
    exports: AtomicU64,
    bytes: AtomicU64,
}

async fn export(State(taken): State<Arc<Taken>>, body: Bytes) {
    taken.exports.fetch_add(1, Ordering::Relaxed);
    taken.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: otlp_sink PORT"))?
        .parse()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let taken = Arc::new(Taken::default());
    let app = Router::new()
        .route("/v1/traces", post(export))
        .with_state(taken.clone());
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        served = axum::serve(listener, app).into_future() => served?,
        _ = terminate.recv() => {}
    }
    eprintln!(
        "otlp sink: {} exports, {} bytes",
        taken.exports.load(Ordering::Relaxed),
        taken.bytes.load(Ordering::Relaxed)
    );
    Ok(())
}
