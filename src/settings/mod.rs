//! Configuration (docs/protocol.md section 8): built-in defaults, then
//! `config/default.toml`, then the file named by `LCM_CONFIG`, then
//! `LCM__<SECTION>__<KEY>` environment variables; validated once at start-up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use config::{Config, Environment, File};
use serde::{Deserialize, Serialize};

mod password_files;
mod secret;
pub mod tls;
mod validate;
mod whole;

pub use self::secret::{redact_url, SecretUrl};
pub use self::tls::TlsSettings;

/// Everything the worker and its commands read. Every key has a built-in
/// default, so no file is needed (docs/protocol.md section 8). Serialized,
/// it is the effective configuration with every URL's password redacted
/// (`check --offline` prints it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpSettings {
    /// Broker URL, password included.
    pub url: SecretUrl,
    /// Broker endpoints (cluster nodes); when non-empty, used instead of
    /// `url`.
    pub urls: Vec<SecretUrl>,
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
    #[serde(deserialize_with = "whole::whole")]
    pub delivery_limit: u32,
    /// Deliveries in hand at once (`basic.qos`).
    #[serde(deserialize_with = "whole::whole")]
    pub prefetch: u16,
    /// `app_id` of the replies.
    pub app_id: String,
}

/// `x-queue-type` of the request queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// Redis URL, password included.
    pub url: SecretUrl,
    /// File whose content (trimmed) replaces the password of the Redis URL.
    pub password_file: String,
    /// TLS of `rediss://` connections.
    pub tls: TlsSettings,
    /// `P` in the key names of section 6.
    pub key_prefix: String,
    /// Connections in the pool.
    #[serde(deserialize_with = "whole::whole")]
    pub pool_size: usize,
    /// How long a campaign's parsed outcome list is reused, in
    /// milliseconds: the most an edit can take to show. 0 disables.
    #[serde(deserialize_with = "whole::whole")]
    pub outcome_cache_ms: u64,
    /// The most memory the cached outcome lists may hold, in bytes; the
    /// oldest are released first to stay within it. 0 disables the cache.
    #[serde(deserialize_with = "whole::whole")]
    pub outcome_cache_bytes: usize,
    /// Redis Sentinel addresses (`host:port` or `redis://host:port`). When
    /// any is given the master is found through them, and `url` supplies
    /// only the database, user name and password.
    pub sentinels: Vec<SecretUrl>,
    /// The master's name in the Sentinel configuration.
    pub sentinel_master: String,
}

impl RedisSettings {
    /// The sentinel addresses as Redis URLs, blank entries left out (an
    /// empty `LCM__REDIS__SENTINELS` means no Sentinel).
    pub fn sentinel_urls(&self) -> Vec<SecretUrl> {
        self.sentinels
            .iter()
            .map(|s| s.expose().trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.contains("://") {
                    SecretUrl::new(s)
                } else {
                    SecretUrl::new(format!("redis://{s}"))
                }
            })
            .collect()
    }

    /// Whether the master is found through Sentinel.
    pub fn uses_sentinel(&self) -> bool {
        !self.sentinel_urls().is_empty()
    }
}

/// `limits.*`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest request body accepted, in bytes.
    #[serde(deserialize_with = "whole::whole")]
    pub max_message_bytes: usize,
    /// Time from receipt within which a request is answered, in milliseconds.
    #[serde(deserialize_with = "whole::whole")]
    pub request_deadline_ms: u64,
    /// Largest outcome list served, in bytes, stored or rendered for the
    /// reply; a larger one is answered as corrupt. Keeps replies under the
    /// broker's `max_message_size` and memory bounded.
    #[serde(deserialize_with = "whole::whole")]
    pub max_outcome_list_bytes: usize,
    /// Largest call record field read (`campaign_id`, `account_number`), in
    /// bytes; a record with a longer one is unusable (`Invalid Call ID`)
    /// and the field is never read whole.
    #[serde(deserialize_with = "whole::whole")]
    pub max_call_field_bytes: usize,
}

/// `shutdown.*`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownSettings {
    /// Time to finish deliveries in hand after SIGTERM, in milliseconds.
    #[serde(deserialize_with = "whole::whole")]
    pub grace_ms: u64,
}

/// `http.*`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub addr: SocketAddr,
}

/// `log.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// Line format.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
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
            prefetch: 128,
            app_id: "lcm-outcome-worker".into(),
        }
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("redis://127.0.0.1:6379"),
            password_file: String::new(),
            tls: TlsSettings::default(),
            key_prefix: "lcm".into(),
            pool_size: 1,
            outcome_cache_ms: 1000,
            outcome_cache_bytes: 16 * 1024 * 1024,
            sentinels: Vec::new(),
            sentinel_master: "mymaster".into(),
        }
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_message_bytes: 65536,
            request_deadline_ms: 2000,
            max_outcome_list_bytes: 1_048_576,
            max_call_field_bytes: 4096,
        }
    }
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self { grace_ms: 10000 }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
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

impl From<tls::TlsError> for SettingsError {
    fn from(error: tls::TlsError) -> Self {
        Self::Invalid {
            key: error.key,
            reason: error.reason,
        }
    }
}

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
        // No source for the built-in defaults: `#[serde(default)]` fills
        // every missing key, empty lists included.
        let mut builder =
            Config::builder().add_source(File::with_name("config/default.toml").required(false));
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
        // `LCM__AMQP__URLS=` (empty) means no list, not one empty URL; so
        // for the binding keys, where none is then refused (validate.rs).
        settings.amqp.urls.retain(|url| !url.is_blank());
        settings.amqp.bindings = (settings.amqp.bindings.iter())
            .map(|key| key.trim())
            .filter(|key| !key.is_empty())
            .map(str::to_owned)
            .collect();
        password_files::resolve(&mut settings)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The broker endpoints: `amqp.urls`, or `amqp.url` alone when that is empty.
    pub fn amqp_urls(&self) -> Vec<SecretUrl> {
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

    /// Logs a WARN line for each section whose certificate verification is off.
    pub fn warn_if_insecure(&self) {
        for (system, key, tls) in [
            ("AMQP", "amqp.tls.insecure_skip_verify", &self.amqp.tls),
            ("Redis", "redis.tls.insecure_skip_verify", &self.redis.tls),
        ] {
            if tls.insecure_skip_verify {
                tracing::warn!(
                    "TLS certificate verification is OFF for {system} ({key} = true): \
                     any server can impersonate the broker; never use this in production"
                );
            }
        }
    }

    /// The shutdown grace time.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown.grace_ms)
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
        assert_eq!(s.limits.max_call_field_bytes, 4096);
        assert_eq!(s.redis.outcome_cache_bytes, 16 * 1024 * 1024);
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
        assert_eq!(s.amqp_urls(), std::slice::from_ref(&s.amqp.url));
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
        let shown = format!("{s:?}");
        assert!(shown.contains("amqp://u:***@node1:5672/%2f"), "{shown}");
        assert!(shown.contains("amqps://u:***@node2:5671/%2f"), "{shown}");
        assert!(!shown.contains("p1"), "{shown}");

        let empty = Settings::load_from(None, env(&[("LCM__AMQP__URLS", "")])).unwrap();
        assert!(empty.amqp.urls.is_empty());
    }

    #[test]
    fn the_built_in_defaults_are_complete_without_any_file() {
        let bare: Settings = Config::builder()
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        assert_eq!(bare, Settings::default());
        bare.validate().unwrap();
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
    fn the_serialized_settings_are_a_configuration_file_with_passwords_redacted() {
        let mut settings = Settings::default();
        settings.amqp.url = SecretUrl::new("amqp://lcm@broker:5672/%2f");
        settings.redis.url = SecretUrl::new("redis://:s3cret@cache:6379/0");
        settings.amqp.queue_type = QueueType::Quorum;
        let text = toml::to_string(&settings).unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        let read: Settings = toml::from_str(&text).unwrap();
        assert_eq!(read.redis.url, "redis://:***@cache:6379/0");
        settings.redis.url = read.redis.url.clone();
        assert_eq!(read, settings);
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
            ("LCM__AMQP__DELIVERY_LIMIT", "-1", "amqp.delivery_limit"),
            ("LCM__AMQP__PREFETCH", "1.5", "amqp.prefetch"),
            ("LCM__AMQP__PREFETCH", "1025", "amqp.prefetch"),
            ("LCM__AMQP__PREFETCH", "70000", "amqp.prefetch"),
            ("LCM__REDIS__POOL_SIZE", "100000000000", "redis.pool_size"),
            ("LCM__REDIS__POOL_SIZE", "2.5", "redis.pool_size"),
            (
                "LCM__REDIS__OUTCOME_CACHE_BYTES",
                "1e12",
                "redis.outcome_cache_bytes",
            ),
            (
                "LCM__REDIS__OUTCOME_CACHE_MS",
                "0.5",
                "redis.outcome_cache_ms",
            ),
            (
                "LCM__LIMITS__MAX_MESSAGE_BYTES",
                "99999999999999999999999",
                "limits.max_message_bytes",
            ),
            (
                "LCM__LIMITS__MAX_CALL_FIELD_BYTES",
                "0",
                "limits.max_call_field_bytes",
            ),
            ("LCM__SHUTDOWN__GRACE_MS", "-5", "shutdown.grace_ms"),
            ("LCM__SHUTDOWN__GRACE_MS", "ten", "shutdown.grace_ms"),
            ("LCM__AMQP__BINDINGS", "", "amqp.bindings"),
            ("LCM__AMQP__BINDINGS", " , ", "amqp.bindings"),
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
    fn a_whole_number_may_be_written_as_one_in_a_file_but_never_as_a_fraction() {
        let path = std::env::temp_dir().join(format!("lcm-whole-{}.toml", std::process::id()));
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let loaded = Settings::load_from(Some(path.to_string_lossy().into_owned()), env(&[]));
            std::fs::remove_file(&path).unwrap();
            loaded
        };
        let s = load("[amqp]\nprefetch = 16.0\n[redis]\npool_size = \"4\"\n").unwrap();
        assert_eq!((s.amqp.prefetch, s.redis.pool_size), (16, 4));
        let error = load("[amqp]\nprefetch = 1.5\n").unwrap_err().to_string();
        assert!(error.contains("1.5 is not a whole number"), "{error}");
        assert!(error.contains("amqp.prefetch"), "{error}");
    }

    #[test]
    fn blank_binding_keys_are_left_out_and_the_rest_trimmed() {
        let s = Settings::load_from(None, env(&[("LCM__AMQP__BINDINGS", " a ,, b,")])).unwrap();
        assert_eq!(s.amqp.bindings, ["a", "b"]);
        let error = Settings::load_from(None, env(&[("LCM__AMQP__BINDINGS", "")])).unwrap_err();
        assert!(
            error.to_string().contains("at least one binding key"),
            "{error}"
        );
    }

    #[test]
    fn a_url_that_is_not_amqp_names_its_key() {
        for (var, value, key) in [
            ("LCM__AMQP__URL", "http://x", "amqp.url"),
            ("LCM__AMQP__URLS", "amqp://a/%2f,http://b", "amqp.urls"),
        ] {
            let error = Settings::load_from(None, env(&[(var, value)])).unwrap_err();
            assert!(error.to_string().contains(key), "{var}={value}: {error}");
        }
        let urls = "amqp://a/%2f,amqps://b:5671/%2f";
        Settings::load_from(None, env(&[("LCM__AMQP__URLS", urls)])).unwrap();
    }

    #[test]
    fn a_frame_max_below_what_rabbitmq_4_1_accepts_is_refused() {
        let url = |frame_max| format!("amqp://u:p@broker:5672/%2f?frame_max={frame_max}");
        let error = Settings::load_from(None, env(&[("LCM__AMQP__URL", &url(4096))])).unwrap_err();
        assert!(error.to_string().contains("amqp.url"), "{error}");
        assert!(error.to_string().contains("frame_max=4096"), "{error}");
        for frame_max in [8192, 131_072] {
            Settings::load_from(None, env(&[("LCM__AMQP__URL", &url(frame_max))])).unwrap();
        }
    }

    #[test]
    fn a_refused_amqp_url_is_not_quoted_back() {
        // The parser quotes the whole URL in its error.
        for var in ["LCM__AMQP__URL", "LCM__AMQP__URLS"] {
            let error = Settings::load_from(None, env(&[(var, "amqp:guest:s3cret@host")]))
                .unwrap_err()
                .to_string();
            assert!(error.contains("not an AMQP URL"), "{error}");
            assert!(!error.contains("s3cret"), "{error}");
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
        let shown: Vec<String> = s
            .redis
            .sentinel_urls()
            .iter()
            .map(|u| u.to_string())
            .collect();
        assert_eq!(shown, ["redis://10.0.0.1:26379", "redis://:***@s2:26380"]);
    }

    #[test]
    fn an_empty_sentinel_list_means_no_sentinel() {
        let s = Settings::load_from(None, env(&[("LCM__REDIS__SENTINELS", "")])).unwrap();
        assert!(!s.redis.uses_sentinel());
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
        .unwrap();
        assert_eq!(
            s.amqp.url.to_string(),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(s.redis.url.to_string(), "redis://:***@cache:6379/0");
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
