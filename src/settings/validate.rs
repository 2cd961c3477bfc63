//! Checks of values that parse but cannot work, section by section; the
//! error names the key. AMQP URLs are parsed here with the parser lapin
//! connects with (`amq-protocol-uri`), so that a bad one stops start-up
//! whatever the entry point, rather than failing every reconnection. The
//! Redis URL is parsed by the `redis` adapter, whose client owns that
//! syntax, when the store is built: also at start-up.

use std::ops::RangeInclusive;

use super::tls::{self, AMQP_KEYS, REDIS_KEYS};
use super::{AmqpSettings, RedisSettings, SecretUrl, Settings, SettingsError};

impl Settings {
    /// Checks every section.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (key, value, bounds) in numeric_keys(self) {
            if !bounds.contains(&value) {
                return invalid(
                    key,
                    format!(
                        "{value} is out of bounds: must be from {} to {}",
                        bounds.start(),
                        bounds.end()
                    ),
                );
            }
        }
        validate_amqp(&self.amqp)?;
        validate_redis(&self.redis)
    }
}

/// Every numeric key, its value, and its bounds (inclusive), which
/// docs/protocol.md section 8 lists; a test checks that it does.
#[rustfmt::skip] // a table
fn numeric_keys(s: &Settings) -> [(&'static str, u64, RangeInclusive<u64>); 10] {
    const MIB: u64 = 1024 * 1024;
    // usize is at most 64 bits on every supported target.
    let n = |value: usize| value as u64;
    [
        // Above it, lookups no longer share Redis writes (the pool's
        // pipeline buffer), and each delivery in hand holds a body.
        ("amqp.prefetch", s.amqp.prefetch.into(), 1..=1024),
        ("amqp.delivery_limit", s.amqp.delivery_limit.into(), 0..=1000),
        // Connections are multiplexed: a few carry any load.
        ("redis.pool_size", n(s.redis.pool_size), 1..=64),
        ("redis.outcome_cache_ms", s.redis.outcome_cache_ms, 0..=3_600_000),
        ("redis.outcome_cache_bytes", n(s.redis.outcome_cache_bytes), 0..=1024 * MIB),
        // RabbitMQ refuses messages over 512 MiB whatever its settings.
        ("limits.max_message_bytes", n(s.limits.max_message_bytes), 256..=128 * MIB),
        ("limits.request_deadline_ms", s.limits.request_deadline_ms, 1..=300_000),
        ("limits.max_outcome_list_bytes", n(s.limits.max_outcome_list_bytes), 2..=128 * MIB),
        ("limits.max_call_field_bytes", n(s.limits.max_call_field_bytes), 1..=MIB),
        ("shutdown.grace_ms", s.shutdown.grace_ms, 0..=600_000),
    ]
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

/// Why an AMQP URL was refused. The parser's own error quotes the whole
/// URL, password included, so it is never passed on.
const NOT_AN_AMQP_URL: &str = "not an AMQP URL (amqp[s]://user:password@host:port/vhost)";

/// The smallest `frame_max` RabbitMQ 4.1 and later accept before
/// authentication: below it they reset the connection with no reason
/// given, so a URL asking for less would fail every connection attempt.
const MIN_FRAME_MAX: u32 = 8192;

fn amqp_url(key: &'static str, url: &SecretUrl) -> Result<(), SettingsError> {
    let Ok(uri) = url.expose().parse::<amq_protocol_uri::AMQPUri>() else {
        return invalid(key, NOT_AN_AMQP_URL);
    };
    match uri.query.frame_max {
        Some(frame_max) if frame_max > 0 && frame_max < MIN_FRAME_MAX => invalid(
            key,
            format!(
                "frame_max={frame_max} is below {MIN_FRAME_MAX}: RabbitMQ 4.1 and later close \
                 the connection before it opens; leave it unset to take the broker's"
            ),
        ),
        _ => Ok(()),
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
        // Bound to nothing, the request queue would take only what is
        // published to it directly, through the default exchange.
        return invalid(
            "amqp.bindings",
            "must list at least one binding key (blank ones are left out)",
        );
    }
    if amqp.bindings.iter().any(|b| b.len() > 255) {
        return invalid(
            "amqp.bindings",
            "each binding key must be at most 255 bytes",
        );
    }
    Ok(())
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
    name("redis.key_prefix", &redis.key_prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/protocol.md, section 8's table of bounds.
    const PROTOCOL: &str = include_str!("../../docs/protocol.md");

    #[test]
    fn every_numeric_key_has_its_default_and_bounds_in_the_protocol_document() {
        let defaults = Settings::default();
        for (key, default, bounds) in numeric_keys(&defaults) {
            let row = format!(
                "| `{key}` | {} | {} | {} |",
                thousands(default),
                thousands(*bounds.start()),
                thousands(*bounds.end())
            );
            assert!(PROTOCOL.lines().any(|line| line == row), "missing: {row}");
            assert!(bounds.contains(&default), "{key}");
        }
    }

    /// `1048576` as `1,048,576`.
    fn thousands(value: u64) -> String {
        let digits = value.to_string();
        let mut out = String::new();
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(digit);
        }
        out
    }
}
