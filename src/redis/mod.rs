//! Every line that speaks Redis: the [`RedisStore`] behind the service's
//! `Store` port (a pool over `redis.url`, or over the master Redis Sentinel
//! names), and the writes of the `seed` and `bench` commands.

mod connection_info;
mod pool;
mod sentinel;
mod store;
mod writes;

pub use self::store::RedisStore;
pub use self::writes::{CallEntry, Inserted, ListEntry};

use crate::settings::{Settings, SettingsError};

/// Checks `redis.url` (and its TLS files for `rediss://`) the way the pool
/// will read it; the error names the key.
pub fn validate(settings: &Settings) -> Result<(), SettingsError> {
    let redis = &settings.redis;
    connection_info::connection_info(redis.url.expose(), &redis.tls)?;
    Ok(())
}
