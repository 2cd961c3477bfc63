//! [`RedisStore`]: the only module that speaks Redis (PROTOCOL.md section 6).

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncConnectionConfig};
use deadpool_redis::{Manager, Pool, Runtime};
use tokio::time::Instant;

use crate::service::{CallRecord, Store, StoreError};
use crate::settings::RedisSettings;

/// Bounds every Redis operation so that a dead or black-holed server can
/// neither hang a delivery nor hold a pool slot for good. The service's
/// per-request deadline cuts shorter when less time is left.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);
const POOL_WAIT_TIMEOUT: Duration = Duration::from_millis(1000);

/// Reads call records and outcome lists from Redis through a connection pool.
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool,
    prefix: String,
}

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
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        // `rediss://` gets the CA, client certificate and verification of `redis.tls`.
        let info = crate::tls::redis_connection_info(&settings.url, &settings.tls)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let manager = Manager::new_with_config(info, connection)
            .map_err(|e| StoreError::Unavailable(format!("redis.url: {:?}", e.kind())))?;
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(RESPONSE_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("redis pool: {e}")))?;
        Ok(Self {
            pool,
            prefix: settings.key_prefix.clone(),
        })
    }

    /// `P:call:<callid>`.
    pub fn call_key(&self, callid: &str) -> String {
        format!("{}:call:{callid}", self.prefix)
    }

    /// `P:campaign:<campaign_id>:outcomes`.
    pub fn outcomes_key(&self, campaign_id: &str) -> String {
        format!("{}:campaign:{campaign_id}:outcomes", self.prefix)
    }

    /// A pooled connection, for commands outside the serving path (`seed`).
    pub async fn connection(&self) -> Result<deadpool_redis::Connection, StoreError> {
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

    async fn query<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        command: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = async {
            let mut conn = self.connection().await?;
            command
                .query_async::<T>(&mut *conn)
                .await
                .map_err(store_error)
        }
        .await;
        metrics::histogram!("lcm_redis_duration_seconds", "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!("lcm_redis_errors_total", "operation" => operation).increment(1);
        }
        result
    }
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
        // EXISTS tells a missing record from one without the two fields;
        // both go in one round trip.
        let mut pipe = redis::pipe();
        pipe.exists(&key)
            .cmd("HMGET")
            .arg(&key)
            .arg("campaign_id")
            .arg("account_number");
        let (exists, (campaign_id, account_number)): (bool, (RawValue, RawValue)) =
            self.query("call", &pipe).await?;
        Ok(exists.then_some(CallRecord {
            campaign_id: text(campaign_id)?,
            account_number: text(account_number)?,
        }))
    }

    async fn outcome_list(&self, campaign_id: &str) -> Result<Option<String>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.get(self.outcomes_key(campaign_id));
        let (list,): (RawValue,) = self.query("outcomes", &pipe).await?;
        text(list)
    }
}
