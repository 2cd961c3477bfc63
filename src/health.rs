//! Readiness: consuming from RabbitMQ and Redis answering (PROTOCOL.md section 8).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::store::RedisStore;

/// How long `/readyz` waits for Redis to answer a PING.
const REDIS_PING_TIMEOUT: Duration = Duration::from_millis(500);

/// Shared flag set by the consumer while it holds a live consumer.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    consuming: Arc<AtomicBool>,
}

impl Readiness {
    /// Records whether the worker is consuming now.
    pub fn set_consuming(&self, consuming: bool) {
        self.consuming.store(consuming, Ordering::SeqCst);
    }

    /// Whether the worker is consuming now.
    pub fn consuming(&self) -> bool {
        self.consuming.load(Ordering::SeqCst)
    }

    /// `Ok` when ready, else a one-line reason.
    pub async fn check(&self, store: &RedisStore) -> Result<(), String> {
        if !self.consuming() {
            return Err("not consuming from RabbitMQ".to_owned());
        }
        match tokio::time::timeout(REDIS_PING_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("Redis not answering: {error}")),
            Err(_) => Err("Redis not answering: PING timed out".to_owned()),
        }
    }
}
