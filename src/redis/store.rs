//! [`RedisStore`]: the service's [`Store`] port over Redis (docs/protocol.md
//! section 6), with the shared multiplexed connections of the serving path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use deadpool_redis::redis;
use deadpool_redis::redis::aio::MultiplexedConnection;
use tokio::time::Instant;

pub use super::pool::RedisConnection;
use super::pool::{self, RedisPool};

use crate::service::{CallRecord, Store, StoreError};
use crate::settings::RedisSettings;
use crate::telemetry::metrics::{self, RedisOperation};

/// Bounds every Redis operation so that a dead or black-holed server can
/// neither hang a delivery nor hold a pool slot for good. The service's
/// per-request deadline cuts shorter when less time is left.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);
const POOL_WAIT_TIMEOUT: Duration = Duration::from_millis(1000);

/// Reads call records and outcome lists from Redis through a connection
/// pool: to `redis.url`, or to the master Redis Sentinel names.
#[derive(Clone)]
pub struct RedisStore {
    pool: RedisPool,
    prefix: String,
    /// Longest outcome list read; a longer one is not fetched at all.
    max_list_bytes: usize,
    shared: Arc<SharedConnections>,
}

/// Multiplexed connections shared by all requests, refreshed from the pool.
///
/// Taking a connection from the pool per request costs a round trip (its
/// recycle check), doubling Redis traffic. A multiplexed connection
/// pipelines concurrent requests by itself, so a few are kept and used in
/// turn. Each is taken from the pool again after [`SHARED_REFRESH`], which
/// runs the pool's check (with Sentinel: is this node still the master?),
/// and one that fails is dropped at once.
struct SharedConnections {
    slots: Vec<SharedSlot>,
    next: AtomicUsize,
}

/// How long a shared connection is used before the pool checks it again.
const SHARED_REFRESH: Duration = Duration::from_secs(1);

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl RedisStore {
    /// Builds the pool; connections are opened lazily, so this succeeds
    /// while Redis is down.
    pub fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let timeouts = pool::Timeouts {
            connect: CONNECT_TIMEOUT,
            response: RESPONSE_TIMEOUT,
            wait: POOL_WAIT_TIMEOUT,
        };
        let pool = RedisPool::new(settings, timeouts).map_err(StoreError::Unavailable)?;
        let slots = (0..settings.pool_size).map(|_| Mutex::new(None)).collect();
        Ok(Self {
            pool,
            prefix: settings.key_prefix.clone(),
            max_list_bytes: usize::MAX,
            shared: Arc::new(SharedConnections {
                slots,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// Reads outcome lists of at most `max` bytes; a longer one is answered
    /// as unreadable (`BadData`) without being fetched, so that one oversized
    /// value cannot make every request that needs it hold a copy.
    pub fn with_max_list_bytes(mut self, max: usize) -> Self {
        self.max_list_bytes = max.max(1);
        self
    }

    /// With Sentinel, the master's `host:port` the sentinels name now;
    /// `None` for a plain `redis.url`.
    pub async fn sentinel_master(&self) -> Result<Option<String>, StoreError> {
        self.pool
            .sentinel_master()
            .await
            .map_err(|e| StoreError::Unavailable(format!("redis sentinel: {e}")))
    }

    /// `P:call:<callid>`.
    pub(super) fn call_key(&self, callid: &str) -> String {
        format!("{}:call:{callid}", self.prefix)
    }

    /// `P:campaign:<campaign_id>:outcomes`.
    pub(super) fn outcomes_key(&self, campaign_id: &str) -> String {
        format!("{}:campaign:{campaign_id}:outcomes", self.prefix)
    }

    /// A pooled connection, for commands outside the serving path.
    pub(super) async fn connection(&self) -> Result<RedisConnection, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("redis connection: {e}")))
    }

    /// `PING`: whether Redis answers now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut *conn)
            .await
            .map(drop)
            .map_err(store_error)
    }

    /// A shared connection and its slot, taken from the pool when the slot
    /// is empty or due for a check.
    async fn shared_connection(&self) -> Result<(usize, MultiplexedConnection), StoreError> {
        let slots = &self.shared.slots;
        let slot = self.shared.next.fetch_add(1, Ordering::Relaxed) % slots.len();
        if let Some((taken, conn)) = lock(&slots[slot]).as_ref() {
            if taken.elapsed() < SHARED_REFRESH {
                return Ok((slot, conn.clone()));
            }
        }
        // Boxed: the pool's future (connect, handshake, recycle check) is
        // over 10 KB, and inlined it would make every delivery's task that
        // large, although it runs about once a second.
        let conn = (*Box::pin(self.connection()).await?).clone();
        *lock(&slots[slot]) = Some((Instant::now(), conn.clone()));
        Ok((slot, conn))
    }

    async fn query<T: redis::FromRedisValue>(
        &self,
        operation: RedisOperation,
        command: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = async {
            let (slot, mut conn) = self.shared_connection().await?;
            let result = command
                .query_async::<T>(&mut conn)
                .await
                .map_err(store_error);
            if let Err(StoreError::Unavailable(_)) = result {
                lock(&self.shared.slots[slot]).take();
            }
            result
        }
        .await;
        metrics::redis_round_trip(operation, started.elapsed(), result.is_err());
        result
    }
}

type SharedSlot = Mutex<Option<(Instant, MultiplexedConnection)>>;

/// The slot's lock; a poisoned one still holds a usable `Option`.
fn lock(slot: &SharedSlot) -> MutexGuard<'_, Option<(Instant, MultiplexedConnection)>> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A value as Redis returns it: `None` when the key or field is absent.
type RawValue = Option<Vec<u8>>;

/// Values are fetched as bytes and decoded here, so that a value that is
/// not UTF-8 is told apart from a failing server.
fn text(value: RawValue) -> Result<Option<String>, StoreError> {
    value
        .map(String::from_utf8)
        .transpose()
        .map_err(|_| StoreError::BadData("value is not UTF-8".to_owned()))
}

/// Type errors are the data's fault and final; everything else (I/O,
/// time-outs, a server busy loading) may pass.
fn store_error(error: redis::RedisError) -> StoreError {
    let message = error.to_string();
    let wrong_type = matches!(error.kind(), redis::ErrorKind::UnexpectedReturnType)
        || error
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "WRONGTYPE"));
    if wrong_type {
        StoreError::BadData(message)
    } else {
        StoreError::Unavailable(format!("redis: {message}"))
    }
}

impl Store for RedisStore {
    async fn call(&self, callid: &str) -> Result<Option<CallRecord>, StoreError> {
        let key = self.call_key(callid);
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(&key)
            .arg("campaign_id")
            .arg("account_number");
        let ((mut campaign_id, mut account_number),): ((RawValue, RawValue),) =
            self.query(RedisOperation::Call, &pipe).await?;
        if campaign_id.is_none() && account_number.is_none() {
            // No record, or one without either field, which is another
            // error: a second round trip tells them apart, on the error
            // path only. It reads the fields again in the same pipeline,
            // in case the dialer wrote the record in between.
            let mut pipe = redis::pipe();
            pipe.exists(&key)
                .cmd("HMGET")
                .arg(&key)
                .arg("campaign_id")
                .arg("account_number");
            let (exists, fields): (bool, (RawValue, RawValue)) =
                self.query(RedisOperation::CallExists, &pipe).await?;
            if !exists {
                return Ok(None);
            }
            (campaign_id, account_number) = fields;
        }
        Ok(Some(CallRecord {
            campaign_id: text(campaign_id)?,
            account_number: text(account_number)?,
        }))
    }

    async fn outcome_list(&self, campaign_id: &str) -> Result<Option<String>, StoreError> {
        let key = self.outcomes_key(campaign_id);
        // The length and at most the limit's worth of the value, in one
        // round trip: an oversized list is never read whole.
        let last = isize::try_from(self.max_list_bytes - 1).unwrap_or(isize::MAX);
        let mut pipe = redis::pipe();
        pipe.strlen(&key).getrange(&key, 0, last);
        let (length, head): (usize, Vec<u8>) = self.query(RedisOperation::Outcomes, &pipe).await?;
        if length > self.max_list_bytes {
            return Err(StoreError::BadData(format!(
                "the outcome list is {length} bytes, over limits.max_outcome_list_bytes"
            )));
        }
        if length > 0 {
            return text(Some(head));
        }
        // No key, or an empty string (which is corrupt, not absent): a
        // second round trip tells them apart, on this rare path only.
        let mut pipe = redis::pipe();
        pipe.get(&key);
        let (list,): (RawValue,) = self.query(RedisOperation::Outcomes, &pipe).await?;
        text(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serving_futures_stay_small() {
        // Every delivery's task holds these: a large one is allocated and
        // copied for every request.
        let store =
            RedisStore::new(&crate::settings::Settings::default().redis).expect("a lazy pool");
        let call = std::mem::size_of_val(&store.call("12345"));
        let outcomes = std::mem::size_of_val(&store.outcome_list("1"));
        assert!(call < 1024, "call lookup future is {call} bytes");
        assert!(outcomes < 1024, "outcome list future is {outcomes} bytes");
    }
}
