//! The connection pool behind [`super::RedisStore`]: one Redis server at
//! `redis.url`, or the master that Redis Sentinel names.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use deadpool::managed::{self, Object, Pool, Status, TimeoutType};
use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::{self, AsyncConnectionConfig, RedisError};
use deadpool_redis::Runtime;

use super::sentinel::SentinelManager;
use crate::settings::RedisSettings;

/// The pool could not be built, or could not hand out a connection.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The settings cannot make a pool; names the key.
    #[error("configuration: invalid `{key}`: {reason}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting, authenticating, or a command on the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    /// No connection within the time-outs of [`Timeouts`].
    #[error("redis: no connection in time ({0:?})")]
    Timeout(TimeoutType),
    /// The pool itself failed (closed, or built without a runtime).
    #[error("redis pool: {0}")]
    Pool(String),
}

impl From<managed::PoolError<RedisError>> for PoolError {
    fn from(error: managed::PoolError<RedisError>) -> Self {
        match error {
            managed::PoolError::Backend(error) => Self::Redis(error),
            managed::PoolError::Timeout(kind) => Self::Timeout(kind),
            other => Self::Pool(other.to_string()),
        }
    }
}

/// Bounds on connecting, on each response, and on waiting for a free slot.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
    pub wait: Duration,
}

/// A pool of multiplexed connections, to a fixed server or to the master
/// found through Sentinel.
#[derive(Clone)]
pub enum RedisPool {
    /// `redis.url`.
    Plain(deadpool_redis::Pool),
    /// `redis.sentinels` and `redis.sentinel_master`.
    Sentinel(Pool<SentinelManager>),
}

/// Commands a multiplexed connection queues before callers wait: above any
/// sensible `amqp.prefetch`, so that every delivery in hand gets its lookup
/// into the same write. redis-rs's default is 50, below the default prefetch
/// of 64.
const PIPELINE_BUFFER: usize = 1024;

impl RedisPool {
    /// Builds the pool; connections are opened lazily, so this succeeds
    /// while Redis (or every sentinel) is down.
    pub fn new(settings: &RedisSettings, timeouts: Timeouts) -> Result<Self, PoolError> {
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.response))
            .set_pipeline_buffer_size(PIPELINE_BUFFER);
        if settings.uses_sentinel() {
            // Only the error's kind: its text may quote a URL.
            let manager =
                SentinelManager::new(settings, connection).map_err(|e| PoolError::Invalid {
                    key: "redis.sentinels",
                    reason: format!("{:?}", e.kind()),
                })?;
            Ok(Self::Sentinel(build(manager, settings, timeouts)?))
        } else {
            // `rediss://` gets the CA, client certificate and verification of `redis.tls`.
            let info =
                super::connection_info::connection_info(settings.url.expose(), &settings.tls)
                    .map_err(|e| PoolError::Invalid {
                        key: e.key,
                        reason: e.reason,
                    })?;
            let manager =
                deadpool_redis::Manager::new_with_config(info, connection).map_err(|e| {
                    PoolError::Invalid {
                        key: "redis.url",
                        reason: format!("{:?}", e.kind()),
                    }
                })?;
            Ok(Self::Plain(build(manager, settings, timeouts)?))
        }
    }

    /// A connection, recycled or new.
    pub async fn get(&self) -> Result<RedisConnection, PoolError> {
        Ok(match self {
            Self::Plain(pool) => RedisConnection::Plain(pool.get().await?),
            Self::Sentinel(pool) => RedisConnection::Sentinel(pool.get().await?),
        })
    }

    /// Sizes of the pool now.
    pub fn status(&self) -> Status {
        match self {
            Self::Plain(pool) => pool.status(),
            Self::Sentinel(pool) => pool.status(),
        }
    }

    /// The master the sentinels name now (checked with `ROLE`), as
    /// `host:port`; `None` without Sentinel.
    pub async fn sentinel_master(&self) -> Result<Option<String>, PoolError> {
        match self {
            Self::Plain(_) => Ok(None),
            Self::Sentinel(pool) => {
                let client = pool.manager().master().await?;
                Ok(Some(client.get_connection_info().addr().to_string()))
            }
        }
    }
}

fn build<M, W>(
    manager: M,
    settings: &RedisSettings,
    timeouts: Timeouts,
) -> Result<Pool<M, W>, PoolError>
where
    M: managed::Manager,
    W: From<Object<M>>,
{
    Pool::builder(manager)
        .max_size(settings.pool_size)
        .wait_timeout(Some(timeouts.wait))
        .create_timeout(Some(timeouts.connect))
        .recycle_timeout(Some(timeouts.response))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| PoolError::Pool(e.to_string()))
}

/// A pooled connection; goes back to its pool when dropped. Derefs to
/// [`MultiplexedConnection`], so `&mut *conn` runs commands.
pub enum RedisConnection {
    /// From the plain pool.
    Plain(deadpool_redis::Connection),
    /// From the Sentinel pool.
    Sentinel(Object<SentinelManager>),
}

impl Deref for RedisConnection {
    type Target = MultiplexedConnection;

    fn deref(&self) -> &MultiplexedConnection {
        match self {
            Self::Plain(conn) => conn,
            Self::Sentinel(conn) => conn,
        }
    }
}

impl DerefMut for RedisConnection {
    fn deref_mut(&mut self) -> &mut MultiplexedConnection {
        match self {
            Self::Plain(conn) => conn,
            Self::Sentinel(conn) => conn,
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        (**self).req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        (**self).req_packed_commands(cmd, offset, count)
    }

    fn get_db(&self) -> i64 {
        (**self).get_db()
    }
}
