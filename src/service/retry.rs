//! The failure policy of docs/protocol.md section 7: cache reads are retried
//! with backoff until the request's deadline, except when the cache refuses
//! the worker, which no retry can cure.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::store::StoreError;
use crate::backoff::Backoff;
use crate::protocol::WsError;
use crate::telemetry::Throttle;

/// Pauses between cache retries: from `RETRY_START`, doubling up to `RETRY_CAP`.
const RETRY_START: Duration = Duration::from_millis(20);
const RETRY_CAP: Duration = Duration::from_millis(250);

/// While Redis is down or refuses the worker, every request meets the same
/// error: one warning per this long says so, with the count held back.
const WARN_EVERY: Duration = Duration::from_secs(10);
static REFUSED: Throttle = Throttle::new(WARN_EVERY);
static TIMED_OUT: Throttle = Throttle::new(WARN_EVERY);

/// Runs `attempt` until the cache answers or `deadline` passes, pausing
/// with capped exponential backoff between failures. An answer may still
/// be [`StoreError::BadData`], which no retry can mend. A refusal
/// ([`StoreError::Refused`]) is `Cache unavailable` at once.
pub(super) async fn retry_until<T, F, Fut>(
    deadline: Instant,
    mut attempt: F,
) -> Result<Result<T, StoreError>, WsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Backoff::new(RETRY_START, RETRY_CAP);
    let mut last_error = None;
    loop {
        match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Err(StoreError::Unavailable(error))) => {
                // Debug only: with Redis down every request retries several times.
                tracing::debug!(%error, "cache read failed; retrying");
                last_error = Some(error);
            }
            Ok(Err(StoreError::Refused(error))) => {
                if let Some(held_back) = REFUSED.allow() {
                    tracing::warn!(
                        %error,
                        held_back,
                        "Redis refuses the worker's lookup; answering `Cache unavailable` \
                         at once, as no retry can cure it"
                    );
                }
                return Err(WsError::CacheUnavailable);
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
    if let Some(held_back) = TIMED_OUT.allow() {
        let last_error = last_error.as_deref().unwrap_or("no answer");
        tracing::warn!(
            last_error,
            held_back,
            "cache did not answer before the request's deadline"
        );
    }
    Err(WsError::CacheUnavailable)
}
