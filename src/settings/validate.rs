//! Checks of values that parse but cannot work, section by section; the
//! error names the key. AMQP URLs are parsed here with the parser lapin
//! connects with (`amq-protocol-uri`), so that a bad one stops start-up
//! whatever the entry point, rather than failing every reconnection. The
//! Redis URL is parsed by the `redis` adapter, whose client owns that
//! syntax, when the store is built: also at start-up.

use super::tls::{self, AMQP_KEYS, REDIS_KEYS};
use super::{AmqpSettings, LimitSettings, RedisSettings, SecretUrl, Settings, SettingsError};

impl Settings {
    /// Checks every section.
    pub fn validate(&self) -> Result<(), SettingsError> {
        validate_amqp(&self.amqp)?;
        validate_redis(&self.redis)?;
        validate_limits(&self.limits)
    }
}

fn invalid(key: &'static str, reason: impl Into<String>) -> Result<(), SettingsError> {
    Err(SettingsError::Invalid {
        key,
        reason: reason.into(),
    })
}

/// AMQP names are short strings: 1 to 255 bytes.
fn name(key: &'static str, value: &str) -> Result<(), SettingsError> {
    if value.trim().is_empty() || value.len() > 255 {
        return invalid(key, "must be 1 to 255 bytes");
    }
    Ok(())
}

fn positive(key: &'static str, value: u64) -> Result<(), SettingsError> {
    if value == 0 {
        return invalid(key, "must be greater than 0");
    }
    Ok(())
}

/// Why an AMQP URL was refused. The parser's own error quotes the whole
/// URL, password included, so it is never passed on.
const NOT_AN_AMQP_URL: &str = "not an AMQP URL (amqp[s]://user:password@host:port/vhost)";

fn amqp_url(key: &'static str, url: &SecretUrl) -> Result<(), SettingsError> {
    match url.expose().parse::<amq_protocol_uri::AMQPUri>() {
        Ok(_) => Ok(()),
        Err(_) => invalid(key, NOT_AN_AMQP_URL),
    }
}

fn validate_amqp(amqp: &AmqpSettings) -> Result<(), SettingsError> {
    amqp_url("amqp.url", &amqp.url)?;
    for url in &amqp.urls {
        amqp_url("amqp.urls", url)?;
    }
    tls::check(&amqp.tls, &AMQP_KEYS)?;
    name("amqp.request_exchange", &amqp.request_exchange)?;
    name("amqp.request_queue", &amqp.request_queue)?;
    name("amqp.reply_exchange", &amqp.reply_exchange)?;
    name("amqp.dead_letter_exchange", &amqp.dead_letter_exchange)?;
    name("amqp.dead_letter_queue", &amqp.dead_letter_queue)?;
    name("amqp.app_id", &amqp.app_id)?;
    if amqp.bindings.is_empty() {
        return invalid("amqp.bindings", "must list at least one binding key");
    }
    if amqp.bindings.iter().any(|b| b.len() > 255) {
        return invalid(
            "amqp.bindings",
            "each binding key must be at most 255 bytes",
        );
    }
    positive("amqp.prefetch", u64::from(amqp.prefetch))
}

fn validate_redis(redis: &RedisSettings) -> Result<(), SettingsError> {
    tls::check(&redis.tls, &REDIS_KEYS)?;
    for sentinel in redis.sentinel_urls() {
        match url::Url::parse(sentinel.expose()) {
            Ok(parsed) if parsed.scheme() == "redis" && parsed.port().is_some() => {}
            _ => {
                return invalid(
                    "redis.sentinels",
                    format!("`{sentinel}` is not host:port or redis://host:port"),
                )
            }
        }
    }
    if redis.uses_sentinel() && redis.url.expose().starts_with("rediss:") {
        // The Sentinel connections are plain: refusing beats sending
        // the password in clear to a master the URL said was TLS.
        return invalid(
            "redis.url",
            "rediss:// (TLS) is not supported with redis.sentinels",
        );
    }
    if redis.uses_sentinel() && redis.sentinel_master.trim().is_empty() {
        return invalid("redis.sentinel_master", "must name the master");
    }
    name("redis.key_prefix", &redis.key_prefix)?;
    positive("redis.pool_size", redis.pool_size as u64)
}

fn validate_limits(limits: &LimitSettings) -> Result<(), SettingsError> {
    positive("limits.max_message_bytes", limits.max_message_bytes as u64)?;
    positive("limits.request_deadline_ms", limits.request_deadline_ms)?;
    positive(
        "limits.max_outcome_list_bytes",
        limits.max_outcome_list_bytes as u64,
    )
}
