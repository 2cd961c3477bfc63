//! The failure policy of docs/protocol.md section 7: cache reads are retried
//! with backoff until the request's deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::store::StoreError;
use crate::backoff::Backoff;
use crate::protocol::WsError;

/// Pauses between cache retries: from `RETRY_START`, doubling up to `RETRY_CAP`.
const RETRY_START: Duration = Duration::from_millis(20);
const RETRY_CAP: Duration = Duration::from_millis(250);

/// Runs `attempt` until the cache answers or `deadline` passes, pausing
/// with capped exponential backoff between failures. An answer may still
/// be [`StoreError::BadData`], which no retry can mend.
pub(super) async fn retry_until<T, F, Fut>(
    deadline: Instant,
    mut attempt: F,
) -> Result<Result<T, StoreError>, WsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Backoff::new(RETRY_START, RETRY_CAP);
    loop {
        match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Err(StoreError::Unavailable(error))) => {
                // Debug only: with Redis down every request retries several times.
                tracing::debug!(%error, "cache read failed; retrying");
            }
            Ok(answer) => return Ok(answer),
            Err(_) => break,
        }
        let wake = (Instant::now() + backoff.next_pause()).min(deadline);
        tokio::time::sleep_until(wake).await;
        if wake >= deadline {
            break;
        }
    }
    tracing::warn!("cache did not answer before the request's deadline");
    Err(WsError::CacheUnavailable)
}
