//! Configuration (PROTOCOL.md section 8): built-in defaults, then
//! `config/default.toml`, then the file named by `LCM_CONFIG`, then
//! `LCM__<SECTION>__<KEY>` environment variables; validated once at start-up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use config::{Config, Environment, File};
use serde::{Deserialize, Serialize};

/// Everything the worker and its commands read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// RabbitMQ connection and topology.
    pub amqp: AmqpSettings,
    /// Redis connection and key layout.
    pub redis: RedisSettings,
    /// Per-request limits.
    pub limits: LimitSettings,
    /// Graceful stop.
    pub shutdown: ShutdownSettings,
    /// Health and metrics endpoints.
    pub http: HttpSettings,
    /// Log output.
    pub log: LogSettings,
}

/// `amqp.*`: the broker and the objects the worker declares (section 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// Broker URL; may hold a password, so never log it unredacted.
    pub url: String,
    /// Broker endpoints (cluster nodes); when non-empty, used instead of
    /// `url`. May hold passwords, like `url`.
    pub urls: Vec<String>,
    /// File whose content (trimmed) replaces the password of every AMQP URL.
    pub password_file: String,
    /// TLS of `amqps://` connections.
    pub tls: TlsSettings,
    /// Topic exchange requesters publish to, routing key = their source.
    pub request_exchange: String,
    /// The queue every replica consumes.
    pub request_queue: String,
    /// Binding keys of the request queue on the request exchange.
    pub bindings: Vec<String>,
    /// Direct exchange replies go to when routed by source.
    pub reply_exchange: String,
    /// Fanout exchange rejected requests are dead-lettered to.
    pub dead_letter_exchange: String,
    /// Queue that keeps dead-lettered requests.
    pub dead_letter_queue: String,
    /// `x-queue-type` of the request queue.
    pub queue_type: QueueType,
    /// `x-delivery-limit` of a quorum request queue; 0 leaves it unset.
    pub delivery_limit: u32,
    /// Deliveries in hand at once (`basic.qos`).
    pub prefetch: u16,
    /// `app_id` of the replies.
    pub app_id: String,
}

/// `x-queue-type` of the request queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// A classic queue.
    Classic,
    /// A replicated quorum queue.
    Quorum,
}

impl QueueType {
    /// The `x-queue-type` argument value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Quorum => "quorum",
        }
    }
}

/// `redis.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Redis URL; may hold a password, so never log it unredacted.
    pub url: String,
    /// File whose content (trimmed) replaces the password of the Redis URL.
    pub password_file: String,
    /// TLS of `rediss://` connections.
    pub tls: TlsSettings,
    /// `P` in the key names of section 6.
    pub key_prefix: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long a campaign's parsed outcome list is reused, in
    /// milliseconds: the most an edit can take to show. 0 disables.
    pub outcome_cache_ms: u64,
    /// Redis Sentinel addresses (`host:port` or `redis://host:port`). When
    /// any is given the master is found through them, and `url` supplies
    /// only the database, user name and password.
    pub sentinels: Vec<String>,
    /// The master's name in the Sentinel configuration.
    pub sentinel_master: String,
}

impl RedisSettings {
    /// The sentinel addresses as Redis URLs, blank entries left out (an
    /// empty `LCM__REDIS__SENTINELS` means no Sentinel).
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.contains("://") {
                    s.to_owned()
                } else {
                    format!("redis://{s}")
                }
            })
            .collect()
    }

    /// Whether the master is found through Sentinel.
    pub fn uses_sentinel(&self) -> bool {
        !self.sentinel_urls().is_empty()
    }
}

/// `amqp.tls.*` and `redis.tls.*`: an empty path means unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file of the CA(s) to trust instead of the system's roots.
    pub ca_file: String,
    /// PEM client certificate (chain) for mutual TLS; needs `key_file`.
    pub cert_file: String,
    /// PEM private key of `cert_file`.
    pub key_file: String,
    /// Accept any server certificate. For experiments only.
    pub insecure_skip_verify: bool,
}

/// `limits.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest request body accepted, in bytes.
    pub max_message_bytes: usize,
    /// Time from receipt within which a request is answered, in milliseconds.
    pub request_deadline_ms: u64,
}

/// `shutdown.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// Time to finish deliveries in hand after SIGTERM, in milliseconds.
    pub grace_ms: u64,
}

/// `http.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub addr: SocketAddr,
}

/// `log.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Line format.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            amqp: AmqpSettings {
                url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
                urls: Vec::new(),
                password_file: String::new(),
                tls: TlsSettings::default(),
                request_exchange: "lcm.requests".into(),
                request_queue: "lcm.business_outcome".into(),
                bindings: vec!["#".into()],
                reply_exchange: "lcm.replies".into(),
                dead_letter_exchange: "lcm.dead".into(),
                dead_letter_queue: "lcm.business_outcome.dead".into(),
                queue_type: QueueType::Classic,
                delivery_limit: 5,
                prefetch: 64,
                app_id: "lcm-outcome-worker".into(),
            },
            redis: RedisSettings {
                url: "redis://127.0.0.1:6379".into(),
                password_file: String::new(),
                tls: TlsSettings::default(),
                key_prefix: "lcm".into(),
                pool_size: 1,
                outcome_cache_ms: 1000,
                sentinels: Vec::new(),
                sentinel_master: "mymaster".into(),
            },
            limits: LimitSettings {
                max_message_bytes: 65536,
                request_deadline_ms: 2000,
            },
            shutdown: ShutdownSettings { grace_ms: 10000 },
            http: HttpSettings {
                addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            },
            log: LogSettings {
                format: LogFormat::Text,
            },
        }
    }
}

/// Configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A file could not be read or a value has the wrong type.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is out of range.
    #[error("configuration: invalid `{key}`: {reason}")]
    Invalid {
        /// The offending key, as in `config/default.toml`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<crate::tls::TlsError> for SettingsError {
    fn from(error: crate::tls::TlsError) -> Self {
        Self::Invalid {
            key: error.key,
            reason: error.reason,
        }
    }
}

/// Why an AMQP URL was refused.
const NOT_AN_AMQP_URL: &str = "not an AMQP URL (amqp[s]://user:password@host:port/vhost)";

impl Settings {
    /// Loads from the files and the process environment.
    pub fn load() -> Result<Self, SettingsError> {
        Self::load_from(std::env::var("LCM_CONFIG").ok(), None)
    }

    /// Loads with an explicit `LCM_CONFIG` file and, when given, an explicit
    /// environment instead of the process's (tests use this: `set_var`
    /// races between parallel tests).
    pub fn load_from(
        config_file: Option<String>,
        environment: Option<HashMap<String, String>>,
    ) -> Result<Self, SettingsError> {
        let mut builder = Config::builder()
            .add_source(Config::try_from(&Settings::default())?)
            .add_source(File::with_name("config/default.toml").required(false));
        if let Some(path) = config_file.filter(|p| !p.is_empty()) {
            builder = builder.add_source(File::with_name(&path).required(true));
        }
        let env = Environment::with_prefix("LCM")
            .separator("__")
            .prefix_separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("amqp.bindings")
            .with_list_parse_key("redis.sentinels")
            .with_list_parse_key("amqp.urls")
            .source(environment);
        let mut settings: Settings = builder.add_source(env).build()?.try_deserialize()?;
        // `LCM__AMQP__URLS=` (empty) means no list, not one empty URL.
        settings.amqp.urls.retain(|url| !url.trim().is_empty());
        crate::secrets::resolve(&mut settings)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, reason: &str| {
            Err(SettingsError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        // The parser's error may quote the whole URL, password included,
        // so it is not passed on.
        if self.amqp.url.parse::<lapin::uri::AMQPUri>().is_err() {
            return invalid("amqp.url", NOT_AN_AMQP_URL);
        }
        if self
            .amqp
            .urls
            .iter()
            .any(|url| url.parse::<lapin::uri::AMQPUri>().is_err())
        {
            return invalid("amqp.urls", NOT_AN_AMQP_URL);
        }
        crate::tls::check(&self.amqp.tls, &crate::tls::AMQP_KEYS)?;
        crate::tls::check(&self.redis.tls, &crate::tls::REDIS_KEYS)?;
        // Parses the URL as the pool will, with `redis.tls` for rediss://.
        crate::tls::redis_connection_info(&self.redis.url, &self.redis.tls)?;
        for sentinel in self.redis.sentinel_urls() {
            match url::Url::parse(&sentinel) {
                Ok(parsed) if parsed.scheme() == "redis" && parsed.port().is_some() => {}
                _ => {
                    return invalid(
                        "redis.sentinels",
                        &format!(
                            "`{}` is not host:port or redis://host:port",
                            redact_url(&sentinel)
                        ),
                    )
                }
            }
        }
        if self.redis.uses_sentinel() && self.redis.url.starts_with("rediss:") {
            // The Sentinel connections are plain: refusing beats sending
            // the password in clear to a master the URL said was TLS.
            return invalid(
                "redis.url",
                "rediss:// (TLS) is not supported with redis.sentinels",
            );
        }
        if self.redis.uses_sentinel() && self.redis.sentinel_master.trim().is_empty() {
            return invalid("redis.sentinel_master", "must name the master");
        }
        let names = [
            ("amqp.request_exchange", &self.amqp.request_exchange),
            ("amqp.request_queue", &self.amqp.request_queue),
            ("amqp.reply_exchange", &self.amqp.reply_exchange),
            ("amqp.dead_letter_exchange", &self.amqp.dead_letter_exchange),
            ("amqp.dead_letter_queue", &self.amqp.dead_letter_queue),
            ("amqp.app_id", &self.amqp.app_id),
            ("redis.key_prefix", &self.redis.key_prefix),
        ];
        for (key, value) in names {
            if value.trim().is_empty() || value.len() > 255 {
                return invalid(key, "must be 1 to 255 bytes");
            }
        }
        if self.amqp.bindings.is_empty() {
            return invalid("amqp.bindings", "must list at least one binding key");
        }
        if self.amqp.bindings.iter().any(|b| b.len() > 255) {
            return invalid(
                "amqp.bindings",
                "each binding key must be at most 255 bytes",
            );
        }
        let positive = [
            ("amqp.prefetch", u64::from(self.amqp.prefetch)),
            ("redis.pool_size", self.redis.pool_size as u64),
            (
                "limits.max_message_bytes",
                self.limits.max_message_bytes as u64,
            ),
            (
                "limits.request_deadline_ms",
                self.limits.request_deadline_ms,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return invalid(key, "must be greater than 0");
            }
        }
        Ok(())
    }

    /// The broker endpoints: `amqp.urls`, or `amqp.url` alone when that is empty.
    pub fn amqp_urls(&self) -> Vec<String> {
        if self.amqp.urls.is_empty() {
            vec![self.amqp.url.clone()]
        } else {
            self.amqp.urls.clone()
        }
    }

    /// The per-request deadline.
    pub fn request_deadline(&self) -> Duration {
        Duration::from_millis(self.limits.request_deadline_ms)
    }

    /// How long outcome lists are cached.
    pub fn outcome_cache_ttl(&self) -> Duration {
        Duration::from_millis(self.redis.outcome_cache_ms)
    }

    /// The shutdown grace time.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown.grace_ms)
    }

    /// A copy safe to log: passwords in URLs replaced.
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        copy.amqp.url = redact_url(&copy.amqp.url);
        copy.amqp.urls = copy.amqp.urls.iter().map(|u| redact_url(u)).collect();
        copy.redis.url = redact_url(&copy.redis.url);
        copy.redis.sentinels = copy
            .redis
            .sentinel_urls()
            .iter()
            .map(|u| redact_url(u))
            .collect();
        copy
    }
}

/// The URL with any password replaced by `***`. A URL that does not parse
/// is replaced whole, since it may still hold a secret.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have credentials at all.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.amqp.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(s.amqp.request_exchange, "lcm.requests");
        assert_eq!(s.amqp.request_queue, "lcm.business_outcome");
        assert_eq!(s.amqp.bindings, vec!["#"]);
        assert_eq!(s.amqp.reply_exchange, "lcm.replies");
        assert_eq!(s.amqp.dead_letter_exchange, "lcm.dead");
        assert_eq!(s.amqp.dead_letter_queue, "lcm.business_outcome.dead");
        assert_eq!(s.amqp.queue_type, QueueType::Classic);
        assert_eq!(s.amqp.app_id, "lcm-outcome-worker");
        assert_eq!(s.redis.url, "redis://127.0.0.1:6379");
        assert_eq!(s.redis.key_prefix, "lcm");
        assert!(s.redis.sentinels.is_empty());
        assert!(!s.redis.uses_sentinel());
        assert_eq!(s.redis.sentinel_master, "mymaster");
        assert_eq!(s.limits.max_message_bytes, 65536);
        assert_eq!(s.limits.request_deadline_ms, 2000);
        assert_eq!(s.shutdown.grace_ms, 10000);
        assert_eq!(s.http.addr.to_string(), "0.0.0.0:8080");
        assert_eq!(s.log.format, LogFormat::Text);
        assert!(s.amqp.urls.is_empty());
        assert_eq!(s.amqp.delivery_limit, 5);
        assert_eq!(s.amqp.tls, TlsSettings::default());
        assert_eq!(s.redis.tls, TlsSettings::default());
        assert!(!s.amqp.tls.insecure_skip_verify);
        assert_eq!(s.amqp.password_file, "");
        assert_eq!(s.redis.password_file, "");
        assert_eq!(s.amqp_urls(), [s.amqp.url.as_str()]);
    }

    #[test]
    fn a_list_of_broker_urls_replaces_the_single_url() {
        let s = Settings::load_from(
            None,
            env(&[
                (
                    "LCM__AMQP__URLS",
                    "amqp://u:p1@node1:5672/%2f,amqps://u:p2@node2:5671/%2f",
                ),
                ("LCM__AMQP__DELIVERY_LIMIT", "3"),
                ("LCM__AMQP__TLS__INSECURE_SKIP_VERIFY", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.amqp_urls(),
            ["amqp://u:p1@node1:5672/%2f", "amqps://u:p2@node2:5671/%2f"]
        );
        assert_eq!(s.amqp.delivery_limit, 3);
        assert!(s.amqp.tls.insecure_skip_verify);
        let shown = s.redacted();
        assert_eq!(
            shown.amqp.urls,
            [
                "amqp://u:***@node1:5672/%2f",
                "amqps://u:***@node2:5671/%2f"
            ]
        );
        assert!(!format!("{shown:?}").contains("p1"));

        let empty = Settings::load_from(None, env(&[("LCM__AMQP__URLS", "")])).unwrap();
        assert!(empty.amqp.urls.is_empty());
    }

    #[test]
    fn the_shipped_default_file_agrees_with_the_built_in_defaults() {
        let shipped: Settings = Config::builder()
            .add_source(File::with_name("config/default.toml"))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        assert_eq!(shipped, Settings::default());
    }

    #[test]
    fn environment_overrides_with_double_underscores_and_comma_lists() {
        let s = Settings::load_from(
            None,
            env(&[
                ("LCM__AMQP__URL", "amqp://u:p@broker:5672/%2f"),
                ("LCM__REDIS__KEY_PREFIX", "tenant7"),
                ("LCM__AMQP__BINDINGS", "a,b"),
                ("LCM__AMQP__QUEUE_TYPE", "quorum"),
                ("LCM__AMQP__PREFETCH", "8"),
            ]),
        )
        .unwrap();
        assert_eq!(s.amqp.url, "amqp://u:p@broker:5672/%2f");
        assert_eq!(s.redis.key_prefix, "tenant7");
        assert_eq!(s.amqp.bindings, vec!["a", "b"]);
        assert_eq!(s.amqp.queue_type, QueueType::Quorum);
        assert_eq!(s.amqp.prefetch, 8);
    }

    #[test]
    fn a_numeric_looking_prefix_stays_a_string() {
        let s = Settings::load_from(None, env(&[("LCM__REDIS__KEY_PREFIX", "123")])).unwrap();
        assert_eq!(s.redis.key_prefix, "123");
    }

    #[test]
    fn the_lcm_config_file_is_layered_over_the_defaults() {
        let path = std::env::temp_dir().join(format!("lcm-settings-{}.toml", std::process::id()));
        std::fs::write(&path, "[redis]\nkey_prefix = \"from-file\"\n").unwrap();
        let s = Settings::load_from(
            Some(path.to_string_lossy().into_owned()),
            env(&[("LCM__AMQP__APP_ID", "from-env")]),
        );
        std::fs::remove_file(&path).unwrap();
        let s = s.unwrap();
        assert_eq!(s.redis.key_prefix, "from-file");
        assert_eq!(s.amqp.app_id, "from-env");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("LCM__AMQP__QUEUE_TYPE", "stream", "amqp.queue_type"),
            ("LCM__AMQP__PREFETCH", "0", "amqp.prefetch"),
            ("LCM__AMQP__PREFETCH", "lots", "amqp.prefetch"),
            ("LCM__AMQP__URL", "http://x", "amqp.url"),
            ("LCM__REDIS__URL", "nope", "redis.url"),
            ("LCM__HTTP__ADDR", "localhost", "http.addr"),
            ("LCM__LOG__FORMAT", "xml", "log.format"),
            (
                "LCM__LIMITS__REQUEST_DEADLINE_MS",
                "0",
                "limits.request_deadline_ms",
            ),
            ("LCM__AMQP__REQUEST_QUEUE", " ", "amqp.request_queue"),
            ("LCM__REDIS__SENTINELS", "a,b", "redis.sentinels"),
            ("LCM__REDIS__SENTINELS", "http://a:1", "redis.sentinels"),
            ("LCM__AMQP__URLS", "amqp://a/%2f,http://b", "amqp.urls"),
            ("LCM__AMQP__DELIVERY_LIMIT", "-1", "amqp.delivery_limit"),
            (
                "LCM__AMQP__TLS__CA_FILE",
                "/nonexistent/ca.pem",
                "amqp.tls.ca_file",
            ),
            ("LCM__REDIS__TLS__CERT_FILE", "/x.pem", "redis.tls.key_file"),
            (
                "LCM__REDIS__TLS__INSECURE_SKIP_VERIFY",
                "maybe",
                "redis.tls.insecure_skip_verify",
            ),
        ];
        for (var, value, key) in cases {
            let error = Settings::load_from(None, env(&[(var, value)])).unwrap_err();
            assert!(error.to_string().contains(key), "{var}={value}: {error}");
        }
    }

    #[test]
    fn sentinels_come_from_a_comma_list_with_or_without_a_scheme() {
        let s = Settings::load_from(
            None,
            env(&[
                (
                    "LCM__REDIS__SENTINELS",
                    "10.0.0.1:26379, redis://:pw@s2:26380",
                ),
                ("LCM__REDIS__SENTINEL_MASTER", "cache"),
            ]),
        )
        .unwrap();
        assert!(s.redis.uses_sentinel());
        assert_eq!(
            s.redis.sentinel_urls(),
            vec!["redis://10.0.0.1:26379", "redis://:pw@s2:26380"]
        );
        assert_eq!(s.redis.sentinel_master, "cache");
        assert_eq!(
            s.redacted().redis.sentinels,
            vec!["redis://10.0.0.1:26379", "redis://:***@s2:26380"]
        );
    }

    #[test]
    fn an_empty_sentinel_list_means_no_sentinel() {
        let s = Settings::load_from(None, env(&[("LCM__REDIS__SENTINELS", "")])).unwrap();
        assert!(!s.redis.uses_sentinel());
    }

    #[test]
    fn a_refused_amqp_url_is_not_quoted_back() {
        // lapin's parser quotes the whole URL in its error.
        for var in ["LCM__AMQP__URL", "LCM__AMQP__URLS"] {
            let error = Settings::load_from(None, env(&[(var, "amqp:guest:s3cret@host")]))
                .unwrap_err()
                .to_string();
            assert!(error.contains("not an AMQP URL"), "{error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
    }

    #[test]
    fn tls_to_redis_is_refused_with_sentinels() {
        let error = Settings::load_from(
            None,
            env(&[
                ("LCM__REDIS__URL", "rediss://:pw@127.0.0.1:6379"),
                ("LCM__REDIS__SENTINELS", "s1:26379"),
            ]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("redis.url"), "{error}");
    }

    #[test]
    fn a_blank_master_name_is_refused_with_sentinels_only() {
        let error = Settings::load_from(
            None,
            env(&[
                ("LCM__REDIS__SENTINELS", "s1:26379"),
                ("LCM__REDIS__SENTINEL_MASTER", " "),
            ]),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("redis.sentinel_master"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_lcm_config_file_is_an_error() {
        let error =
            Settings::load_from(Some("/nonexistent/lcm.toml".into()), env(&[])).unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/lcm.toml"),
            "{error}"
        );
    }

    #[test]
    fn redaction_hides_passwords_only() {
        let s = Settings::load_from(
            None,
            env(&[("LCM__REDIS__URL", "redis://:s3cret@cache:6379/0")]),
        )
        .unwrap()
        .redacted();
        assert_eq!(s.amqp.url, "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(s.redis.url, "redis://:***@cache:6379/0");
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
