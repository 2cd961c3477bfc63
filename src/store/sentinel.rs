//! The connection manager of the Sentinel mode: every new connection goes
//! to the master the sentinels name at that moment, and a pooled
//! connection whose server is no longer the master is dropped.

use std::sync::Mutex;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::sentinel::{
    SentinelClient, SentinelNodeConnectionInfo, SentinelServerType,
};
use deadpool_redis::redis::{
    self, AsyncConnectionConfig, Client, IntoConnectionInfo, RedisError, Role,
};

use crate::settings::{redact_url, RedisSettings};

/// Creates connections to the current master and recycles only those
/// whose server still says it is the master.
pub struct SentinelManager {
    /// Asks the sentinels, in the configured order, and checks with `ROLE`
    /// that the node they name is a master. It caches one connection per
    /// sentinel, hence `&mut` and the lock.
    client: tokio::sync::Mutex<SentinelClient>,
    connection: AsyncConnectionConfig,
    /// The master's address at the last lookup, to log changes once.
    last_master: Mutex<Option<String>>,
}

impl std::fmt::Debug for SentinelManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelManager")
            .field("last_master", &self.last_master)
            .finish()
    }
}

impl SentinelManager {
    /// Takes the sentinels and the master's name from `settings`, and the
    /// database, user name and password of the master from `redis.url`.
    pub fn new(
        settings: &RedisSettings,
        connection: AsyncConnectionConfig,
    ) -> redis::RedisResult<Self> {
        let node = settings.url.as_str().into_connection_info()?;
        let node = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(node.redis_settings().clone());
        let client = SentinelClient::build(
            settings.sentinel_urls(),
            settings.sentinel_master.clone(),
            Some(node),
            SentinelServerType::Master,
        )?;
        Ok(Self {
            client: tokio::sync::Mutex::new(client),
            connection,
            last_master: Mutex::new(None),
        })
    }

    /// A client for the master the sentinels name now, verified with `ROLE`.
    pub async fn master(&self) -> redis::RedisResult<Client> {
        let client = self.client.lock().await.async_get_client().await?;
        let address = client.get_connection_info().addr().to_string();
        let mut last = self.last_master.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_deref() != Some(address.as_str()) {
            tracing::info!(master = %redact_url(&format!("redis://{address}")), "Redis master found through Sentinel");
            *last = Some(address);
        }
        Ok(client)
    }
}

impl managed::Manager for SentinelManager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        // The lookup holds the lock; the connection is made without it.
        let master = self.master().await?;
        master
            .get_multiplexed_async_connection_with_config(&self.connection)
            .await
    }

    /// `ROLE` instead of `PING`: after a fail-over the old master may come
    /// back as a replica and still answer, and its connections must go too.
    /// (Sentinel also closes the clients of a node it demotes.)
    async fn recycle(
        &self,
        conn: &mut MultiplexedConnection,
        _: &Metrics,
    ) -> RecycleResult<RedisError> {
        match redis::cmd("ROLE").query_async::<Role>(conn).await? {
            Role::Primary { .. } => Ok(()),
            _ => Err(RecycleError::message("the server is no longer the master")),
        }
    }
}
