//! The connection manager of the Sentinel mode: every new connection goes
//! to the master the sentinels name at that moment, and a pooled
//! connection is dropped once its server is no longer that master.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::sentinel::{
    SentinelClient, SentinelNodeConnectionInfo, SentinelServerType,
};
use deadpool_redis::redis::{
    self, AsyncConnectionConfig, Client, IntoConnectionInfo, RedisError, Role,
};

use crate::settings::RedisSettings;

/// How often a recycle asks the sentinels again which node is the master.
/// After a manual fail-over the old master keeps its role (and answers)
/// until Sentinel demotes it, about ten seconds later; this bounds how long
/// the worker may go on reading it.
const MASTER_RECHECK: Duration = Duration::from_secs(1);

/// How long that re-check may hold up a recycle. A sentinel that does not
/// answer in time leaves the connections as they are.
const RECHECK_TIMEOUT: Duration = Duration::from_millis(250);

/// A connection and the master's address it was made to.
pub struct MasterConnection {
    conn: MultiplexedConnection,
    master: String,
}

impl Deref for MasterConnection {
    type Target = MultiplexedConnection;

    fn deref(&self) -> &MultiplexedConnection {
        &self.conn
    }
}

impl DerefMut for MasterConnection {
    fn deref_mut(&mut self) -> &mut MultiplexedConnection {
        &mut self.conn
    }
}

/// The master's address at the last lookup, and when that lookup ran.
#[derive(Debug, Default)]
struct Known {
    master: Option<String>,
    checked: Option<Instant>,
}

/// Creates connections to the current master and recycles only those
/// whose server is still the master the sentinels name.
pub struct SentinelManager {
    /// Asks the sentinels, in the configured order, and checks with `ROLE`
    /// that the node they name is a master. It caches one connection per
    /// sentinel, hence `&mut` and the lock.
    client: tokio::sync::Mutex<SentinelClient>,
    connection: AsyncConnectionConfig,
    known: Mutex<Known>,
}

impl std::fmt::Debug for SentinelManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelManager")
            .field("known", &self.known)
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
        let node = settings.url.expose().into_connection_info()?;
        let node = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(node.redis_settings().clone());
        let client = SentinelClient::build(
            settings
                .sentinel_urls()
                .iter()
                .map(|url| url.expose().to_owned())
                .collect(),
            settings.sentinel_master.clone(),
            Some(node),
            SentinelServerType::Master,
        )?;
        Ok(Self {
            client: tokio::sync::Mutex::new(client),
            connection,
            known: Mutex::new(Known::default()),
        })
    }

    /// A client for the master the sentinels name now, verified with `ROLE`.
    pub async fn master(&self) -> redis::RedisResult<Client> {
        let client = self.client.lock().await.async_get_client().await?;
        self.remember(address_of(&client));
        Ok(client)
    }

    fn remember(&self, master: String) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.master.as_deref() != Some(master.as_str()) {
            // `host:port` only: nothing to redact.
            tracing::info!(master, "Redis master found through Sentinel");
            known.master = Some(master);
        }
        known.checked = Some(Instant::now());
    }

    /// The master as last looked up, looked up again when that is older
    /// than [`MASTER_RECHECK`]. One re-check at a time: the others go on
    /// with what is known, and so does everyone when the sentinels fail.
    async fn current_master(&self) -> Option<String> {
        let (master, fresh) = {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = known.checked.is_some_and(|t| t.elapsed() < MASTER_RECHECK);
            (known.master.clone(), fresh)
        };
        if fresh {
            return master;
        }
        let Ok(mut client) = self.client.try_lock() else {
            return master;
        };
        match tokio::time::timeout(RECHECK_TIMEOUT, client.async_get_client()).await {
            Ok(Ok(found)) => {
                drop(client);
                let found = address_of(&found);
                self.remember(found.clone());
                Some(found)
            }
            failed => {
                drop(client);
                let error = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("timed out after {RECHECK_TIMEOUT:?}"),
                };
                tracing::debug!(%error, "Sentinel re-check failed; keeping the known master");
                let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
                known.checked = Some(Instant::now());
                master
            }
        }
    }
}

fn address_of(client: &Client) -> String {
    client.get_connection_info().addr().to_string()
}

impl managed::Manager for SentinelManager {
    type Type = MasterConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MasterConnection, RedisError> {
        // The lookup holds the lock; the connection is made without it.
        let client = self.master().await?;
        let conn = client
            .get_multiplexed_async_connection_with_config(&self.connection)
            .await?;
        Ok(MasterConnection {
            conn,
            master: address_of(&client),
        })
    }

    /// Drops a connection to a node that is no longer the master the
    /// sentinels name, or that no longer says it is a master (`ROLE`, not
    /// `PING`: a demoted master still answers). Sentinel also closes the
    /// clients of a node it demotes; a dead node fails the `ROLE`.
    async fn recycle(&self, conn: &mut MasterConnection, _: &Metrics) -> RecycleResult<RedisError> {
        if let Some(master) = self.current_master().await {
            if master != conn.master {
                return Err(RecycleError::message(format!(
                    "the master moved from {} to {master}",
                    conn.master
                )));
            }
        }
        match redis::cmd("ROLE")
            .query_async::<Role>(&mut conn.conn)
            .await?
        {
            Role::Primary { .. } => Ok(()),
            _ => Err(RecycleError::message("the server is no longer a master")),
        }
    }
}
