//! [`RedisStore`]: the service's [`Store`] port over Redis (docs/protocol.md
//! section 6), with the shared multiplexed connections of the serving path.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use deadpool_redis::redis;
use deadpool_redis::redis::aio::MultiplexedConnection;
use sha1::{Digest, Sha1};
use tokio::time::Instant;

use super::pool::{self, RedisPool};
pub use super::pool::{PoolError, RedisConnection};

use crate::service::{CallRecord, Store, StoreError};
use crate::settings::RedisSettings;
use crate::telemetry::metrics::{self, RedisOperation};
use crate::telemetry::traces;

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
    /// Longest call record field read; a longer one is not fetched at all.
    max_field_bytes: usize,
    shared: Arc<SharedConnections>,
    /// Whether the call lookup goes by the script's hash ([`CallLookup`]);
    /// cleared for good when Redis refuses `EVALSHA` to the worker's user.
    lookup_by_hash: Arc<AtomicBool>,
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
    pub fn new(settings: &RedisSettings) -> Result<Self, PoolError> {
        let timeouts = pool::Timeouts {
            connect: CONNECT_TIMEOUT,
            response: RESPONSE_TIMEOUT,
            wait: POOL_WAIT_TIMEOUT,
        };
        let pool = RedisPool::new(settings, timeouts)?;
        let slots = (0..settings.pool_size).map(|_| Mutex::new(None)).collect();
        Ok(Self {
            pool,
            prefix: settings.key_prefix.clone(),
            max_list_bytes: usize::MAX,
            max_field_bytes: usize::MAX,
            shared: Arc::new(SharedConnections {
                slots,
                next: AtomicUsize::new(0),
            }),
            lookup_by_hash: Arc::new(AtomicBool::new(true)),
        })
    }

    /// Reads outcome lists of at most `max` bytes; a longer one is answered
    /// as unreadable (`BadData`) without being fetched, so that one oversized
    /// value cannot make every request that needs it hold a copy.
    pub fn with_max_list_bytes(mut self, max: usize) -> Self {
        self.max_list_bytes = max.max(1);
        self
    }

    /// Reads call record fields of at most `max` bytes; a record with a
    /// longer one is answered as unreadable (`BadData`) without the field
    /// being fetched (`limits.max_call_field_bytes`).
    pub fn with_max_field_bytes(mut self, max: usize) -> Self {
        self.max_field_bytes = max.max(1);
        self
    }

    /// With Sentinel, the master's `host:port` the sentinels name now;
    /// `None` for a plain `redis.url`.
    pub async fn sentinel_master(&self) -> Result<Option<String>, StoreError> {
        self.pool.sentinel_master().await.map_err(pool_error)
    }

    /// `P:call:<callid>`.
    pub(super) fn call_key(&self, callid: &str) -> String {
        // Built once a request: `concat` sizes it once, without `format!`'s
        // machinery (docs/performance.md, "The call lookup and the
        // request's properties").
        [&self.prefix, ":call:", callid].concat()
    }

    /// `P:campaign:<campaign_id>:outcomes`.
    pub(super) fn outcomes_key(&self, campaign_id: &str) -> String {
        [&self.prefix, ":campaign:", campaign_id, ":outcomes"].concat()
    }

    /// A pooled connection, for commands outside the serving path.
    pub(super) async fn connection(&self) -> Result<RedisConnection, StoreError> {
        self.pool.get().await.map_err(pool_error)
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

    /// Whether a request could be looked up now: every command of the
    /// lookup, in one round trip, on keys under the prefix that no request
    /// can name. Unlike `PING`, this fails for a Redis user that may not
    /// run the lookup's commands or read keys under the prefix (`NOPERM`).
    pub async fn probe_lookup(&self) -> Result<(), StoreError> {
        let call = self.call_key(PROBE_ID);
        let list = self.outcomes_key(PROBE_ID);
        let mut pipe = redis::pipe();
        pipe.add_command(call_lookup(Script::Text, &call, self.max_field_bytes));
        list_head(&mut pipe, &list, 0);
        list_whole(&mut pipe, &list);
        let mut conn = self.connection().await?;
        match pipe.query_async::<redis::Value>(&mut *conn).await {
            // Data at these keys (of any type) is none of readiness's business.
            Ok(_) => Ok(()),
            Err(error) => match store_error(error) {
                StoreError::BadData(_) => Ok(()),
                failed => Err(failed),
            },
        }
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
        command: &impl Command,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let span = traces::redis_span(operation);
        let result = async {
            let (slot, mut conn) = self.shared_connection().await?;
            let result = command.send::<T>(&mut conn).await.map_err(store_error);
            if let Err(StoreError::Unavailable(_)) = result {
                lock(&self.shared.slots[slot]).take();
            }
            result
        }
        .await;
        metrics::redis_round_trip(operation, started.elapsed(), result.is_err());
        traces::end_redis_span(span, result.is_err());
        result
    }
}

type SharedSlot = Mutex<Option<(Instant, MultiplexedConnection)>>;

/// What [`RedisStore::query`] sends: one command, or a pipeline of them.
/// The call lookup goes as one command, which redis-rs sends and reads
/// back with less work than a pipeline of one.
trait Command {
    fn send<T: redis::FromRedisValue>(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> impl std::future::Future<Output = redis::RedisResult<T>>;
}

impl Command for redis::Cmd {
    fn send<T: redis::FromRedisValue>(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> impl std::future::Future<Output = redis::RedisResult<T>> {
        self.query_async(conn)
    }
}

impl Command for redis::Pipeline {
    fn send<T: redis::FromRedisValue>(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> impl std::future::Future<Output = redis::RedisResult<T>> {
        self.query_async(conn)
    }
}

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

/// Server error codes of a refusal: the user may not run the command or
/// read the key (`NOPERM`), or is not, or cannot be, authenticated.
const REFUSALS: [&str; 3] = ["NOPERM", "NOAUTH", "WRONGPASS"];

/// How Redis words a command a script may not run for its user: with the
/// generic code `ERR` (7.2 and later, and Valkey: `ACL failure in script`;
/// 7.0: `The user executing the script can't run this command`), where a
/// command run directly would answer `NOPERM`. The call lookup is a script.
const SCRIPT_REFUSALS: [&str; 2] = [
    "ACL failure in script",
    "The user executing the script can't run this command",
];

/// Refusals and type errors are final: the first is the configuration's
/// fault, the second the data's. Everything else (I/O, time-outs, a server
/// busy loading) may pass.
fn store_error(error: redis::RedisError) -> StoreError {
    let kind = error.kind();
    let mut message = error.to_string();
    let mut codes = Vec::new();
    if let Some(errors) = error.into_server_errors() {
        // The server's own words, each once (a pipeline repeats them):
        // `NOPERM this user has no permissions to run the 'hmget' command`.
        let mut said: Vec<String> = Vec::new();
        for (_, error) in errors.iter() {
            let line = format!("{} {}", error.code(), error.details().unwrap_or_default());
            if !said.contains(&line) {
                said.push(line);
            }
            let details = error.details().unwrap_or_default();
            if SCRIPT_REFUSALS
                .iter()
                .any(|words| details.starts_with(words))
            {
                codes.push("NOPERM".to_owned());
            } else {
                codes.push(error.code().to_owned());
            }
        }
        message = said.join("; ");
    }
    let has = |wanted: &[&str]| codes.iter().any(|code| wanted.contains(&code.as_str()));
    if kind == redis::ErrorKind::AuthenticationFailed || has(&REFUSALS) {
        StoreError::Refused(format!("redis: {message}"))
    } else if kind == redis::ErrorKind::UnexpectedReturnType || has(&["WRONGTYPE"]) {
        StoreError::BadData(message)
    } else {
        StoreError::Unavailable(format!("redis: {message}"))
    }
}

/// A pool error as the service sees it: the Redis errors within are told
/// apart as [`store_error`] does; time-outs and a closed pool may pass.
fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Redis(error) => store_error(error),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// The fields of a call record the lookup reads (section 6).
const CAMPAIGN_ID: &str = "campaign_id";
const ACCOUNT_NUMBER: &str = "account_number";

/// The callid and campaign id of [`RedisStore::probe_lookup`]'s keys: a
/// control character, which no request's callid may hold.
const PROBE_ID: &str = "\u{1}lcm-worker readiness probe";

/// The call lookup, run by Redis in one step: the fields' lengths first,
/// so that an oversized field (another system writes the record) is never
/// sent whole, then the two fields, and only when both are absent whether
/// the record exists (a record without either field is another error than
/// no record). One round trip: each costs the worker about as much as the
/// rest of a request's Redis work (docs/performance.md), and a script is
/// atomic, so the record cannot change between the check and the read.
///
/// Returns the two fields (nil when absent), or their two lengths when
/// either is over `ARGV[1]` bytes, or nil when there is no record. As few
/// values as that: redis-rs parses each value of a reply at a cost of
/// about a thousand instructions (docs/performance.md, "The call lookup's
/// reply").
const CALL_LOOKUP: &str = r"
local max = tonumber(ARGV[1])
local campaign = redis.call('HSTRLEN', KEYS[1], 'campaign_id')
local account = redis.call('HSTRLEN', KEYS[1], 'account_number')
if campaign > max or account > max then
  return {campaign, account}
end
local fields = redis.call('HMGET', KEYS[1], 'campaign_id', 'account_number')
if not fields[1] and not fields[2] and redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
return fields
";

/// [`CALL_LOOKUP`]'s name in Redis's script cache.
static CALL_LOOKUP_SHA: LazyLock<String> = LazyLock::new(|| script_sha(CALL_LOOKUP));

/// The name Redis gives a script: the SHA-1 of its text, in lowercase hex.
fn script_sha(text: &str) -> String {
    hex::encode(Sha1::digest(text))
}

/// How the call lookup names its script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    /// `EVALSHA` and the hash: 40 bytes for Redis to read, not the text's
    /// 421 (docs/performance.md, "The call lookup by its hash").
    Hash,
    /// `EVAL` and the text, which Redis runs whether it holds the script or
    /// not, and then holds it.
    Text,
}

/// The call lookup's command. The readiness probe sends it with the text,
/// so that it needs no more than a lookup needs, and loads the script.
fn call_lookup(script: Script, key: &str, max_field_bytes: usize) -> redis::Cmd {
    let (command, body) = match script {
        Script::Hash => ("EVALSHA", CALL_LOOKUP_SHA.as_str()),
        Script::Text => ("EVAL", CALL_LOOKUP),
    };
    // Sized at once: grown argument by argument, the script's text made
    // the command's buffer reallocate twice on every request.
    const MAX_DIGITS: usize = 20;
    let bytes = command.len() + body.len() + 1 + key.len() + MAX_DIGITS;
    let mut cmd = redis::Cmd::with_capacity(5, bytes);
    cmd.arg(command)
        .arg(body)
        .arg(1)
        .arg(key)
        .arg(max_field_bytes);
    cmd
}

/// The call lookup as a request sends it: by the script's hash, and by
/// its text when Redis does not hold the script (`NOSCRIPT`: restarted,
/// failed over, flushed, or the script evicted) or the user may not run
/// `EVALSHA` (an ACL that grants `EVAL` alone). The first costs that
/// request one round trip more, and the `EVAL` makes Redis hold the script
/// again; the second turns hashes off for the life of the process.
struct CallLookup<'a> {
    key: &'a str,
    max_field_bytes: usize,
    by_hash: &'a AtomicBool,
}

impl Command for CallLookup<'_> {
    async fn send<T: redis::FromRedisValue>(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> redis::RedisResult<T> {
        if self.by_hash.load(Ordering::Relaxed) {
            let by_hash = call_lookup(Script::Hash, self.key, self.max_field_bytes);
            match by_hash.query_async(conn).await {
                Err(error) if error.kind() == NO_SCRIPT => {}
                Err(error) if refuses_evalsha(&error) => {
                    if self.by_hash.swap(false, Ordering::Relaxed) {
                        tracing::warn!(
                            %error,
                            "Redis refuses EVALSHA to the worker's user: the call lookup \
                             sends the script's text (EVAL) from now on; grant +evalsha \
                             to spare Redis reading it (docs/deployment.md)"
                        );
                    }
                }
                answered => return answered,
            }
        }
        let by_text = call_lookup(Script::Text, self.key, self.max_field_bytes);
        by_text.query_async(conn).await
    }
}

const NO_SCRIPT: redis::ErrorKind = redis::ErrorKind::Server(redis::ServerErrorKind::NoScript);

/// `NOPERM` for `EVALSHA` itself (`... no permissions to run the 'evalsha'
/// command`), not for a command the script runs, which is worded otherwise
/// (see [`SCRIPT_REFUSALS`]) and refused by `EVAL` alike.
fn refuses_evalsha(error: &redis::RedisError) -> bool {
    error.code() == Some("NOPERM")
        && error
            .detail()
            .is_some_and(|detail| detail.to_ascii_lowercase().contains("'evalsha'"))
}

/// What [`CALL_LOOKUP`] returns, read.
#[derive(Debug, PartialEq)]
enum CallReply {
    /// No record at the key.
    Absent,
    /// The record's `campaign_id` and `account_number`, each `None` when
    /// the record lacks it.
    Fields(RawValue, RawValue),
    /// The two fields' lengths, one of them over the limit.
    Oversized(usize, usize),
}

impl redis::FromRedisValue for CallReply {
    fn from_redis_value(value: redis::Value) -> Result<Self, redis::ParsingError> {
        use redis::Value;
        match value {
            Value::Nil => Ok(Self::Absent),
            Value::Array(values) => match <[Value; 2]>::try_from(values) {
                Ok([Value::Int(campaign), Value::Int(account)]) => {
                    // redis-rs would cast a negative length to a huge one.
                    let length = |n: i64| {
                        usize::try_from(n).map_err(|_| format!("call lookup answered length {n}"))
                    };
                    Ok(Self::Oversized(length(campaign)?, length(account)?))
                }
                Ok([campaign, account]) => Ok(Self::Fields(
                    redis::from_redis_value(campaign)?,
                    redis::from_redis_value(account)?,
                )),
                Err(values) => Err(format!("call lookup answered {} values", values.len()).into()),
            },
            other => Err(format!("call lookup answered {other:?}").into()),
        }
    }
}

fn list_head(pipe: &mut redis::Pipeline, key: &str, last: isize) {
    pipe.strlen(key).getrange(key, 0, last);
}

fn list_whole(pipe: &mut redis::Pipeline, key: &str) {
    pipe.get(key);
}

/// `Err` when a field of `length` bytes is over `max`.
fn field_within(field: &str, length: usize, max: usize) -> Result<(), StoreError> {
    if length > max {
        return Err(StoreError::BadData(format!(
            "the call record's {field} is {length} bytes, over limits.max_call_field_bytes"
        )));
    }
    Ok(())
}

impl Store for RedisStore {
    async fn call(&self, callid: &str) -> Result<Option<CallRecord>, StoreError> {
        let key = self.call_key(callid);
        let max = self.max_field_bytes;
        let lookup = CallLookup {
            key: &key,
            max_field_bytes: max,
            by_hash: &self.lookup_by_hash,
        };
        match self.query(RedisOperation::Call, &lookup).await? {
            CallReply::Absent => Ok(None),
            CallReply::Fields(campaign_id, account_number) => Ok(Some(CallRecord {
                campaign_id: text(campaign_id)?,
                account_number: text(account_number)?,
            })),
            CallReply::Oversized(campaign_length, account_length) => {
                field_within(CAMPAIGN_ID, campaign_length, max)?;
                field_within(ACCOUNT_NUMBER, account_length, max)?;
                Err(StoreError::BadData(
                    "the call lookup named no field over the limit".to_owned(),
                ))
            }
        }
    }

    async fn outcome_list(&self, campaign_id: &str) -> Result<Option<String>, StoreError> {
        let key = self.outcomes_key(campaign_id);
        // The length and at most the limit's worth of the value, in one
        // round trip: an oversized list is never read whole.
        let last = isize::try_from(self.max_list_bytes - 1).unwrap_or(isize::MAX);
        let mut pipe = redis::pipe();
        list_head(&mut pipe, &key, last);
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
        list_whole(&mut pipe, &key);
        let (list,): (RawValue,) = self.query(RedisOperation::Outcomes, &pipe).await?;
        text(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error Redis answers with `line` (`-CODE detail`).
    fn server_error(line: &str) -> redis::RedisError {
        let reply = redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap();
        match reply.extract_error() {
            Err(error) => error,
            Ok(value) => panic!("not an error: {value:?}"),
        }
    }

    #[test]
    fn refusals_and_type_errors_are_final_and_the_rest_may_pass() {
        let refused = [
            "NOPERM this user has no permissions to run the 'hmget' command",
            "NOAUTH Authentication required.",
            "WRONGPASS invalid username-password pair or user is disabled.",
            // Inside the call lookup's script, as Redis 8 and Valkey 9 say it ...
            "ERR ACL failure in script: User lcm has no permissions to run the 'hmget' command \
             script: d428573a4356bc6caa149dc925b0f2dba21022c7, on @user_script:1.",
            // ... and as Redis 7.0 does.
            "ERR The user executing the script can't run this command or subcommand script: \
             d428573a4356bc6caa149dc925b0f2dba21022c7, on @user_script:1.",
        ];
        for line in refused {
            match store_error(server_error(line)) {
                StoreError::Refused(message) => assert_eq!(message, format!("redis: {line}")),
                other => panic!("{line}: {other:?}"),
            }
        }
        let auth = redis::RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert!(matches!(store_error(auth), StoreError::Refused(_)));
        let wrong_type = "WRONGTYPE Operation against a key holding the wrong kind of value";
        assert!(matches!(
            store_error(server_error(wrong_type)),
            StoreError::BadData(_)
        ));
        for line in [
            "LOADING Redis is loading the dataset in memory",
            "ERR unknown",
        ] {
            assert!(
                matches!(store_error(server_error(line)), StoreError::Unavailable(_)),
                "{line}"
            );
        }
        let io = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(store_error(io), StoreError::Unavailable(_)));
    }

    #[test]
    fn only_a_refused_evalsha_or_a_missing_script_sends_the_scripts_text() {
        let missing = server_error("NOSCRIPT No matching script. Please use EVAL.");
        assert_eq!(missing.kind(), NO_SCRIPT);
        assert!(!refuses_evalsha(&missing));
        for line in [
            // Redis 7.0, and 7.2 and later (and Valkey), which name the user.
            "NOPERM this user has no permissions to run the 'evalsha' command",
            "NOPERM User lcm has no permissions to run the 'evalsha' command",
        ] {
            assert!(refuses_evalsha(&server_error(line)), "{line}");
        }
        for line in [
            "NOPERM this user has no permissions to run the 'hmget' command",
            "NOPERM No permissions to access a key",
            "ERR ACL failure in script: User lcm has no permissions to run the 'hmget' command",
            "ERR Error running script (call to f_1): 'evalsha' is not allowed",
        ] {
            let error = server_error(line);
            assert!(
                !refuses_evalsha(&error) && error.kind() != NO_SCRIPT,
                "{line}"
            );
        }
    }

    #[test]
    fn the_script_is_named_as_redis_names_it() {
        // `SCRIPT LOAD "return 1"`, as Redis's documentation shows it.
        assert_eq!(
            script_sha("return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
        let command = |script| call_lookup(script, "lcm:call:1", 4096).get_packed_command();
        let by_hash = String::from_utf8(command(Script::Hash)).unwrap();
        assert!(by_hash.starts_with("*5\r\n$7\r\nEVALSHA\r\n$40\r\n"));
        assert!(by_hash.contains(&*CALL_LOOKUP_SHA));
        let by_text = String::from_utf8(command(Script::Text)).unwrap();
        assert!(by_text.starts_with("*5\r\n$4\r\nEVAL\r\n") && by_text.contains(CALL_LOOKUP));
    }

    #[test]
    fn the_call_lookups_reply_is_read_by_its_shape() {
        let read = |resp: &str| {
            let value = redis::parse_redis_value(resp.as_bytes()).expect("a RESP value");
            redis::from_redis_value::<CallReply>(value)
        };
        assert_eq!(read("_\r\n").unwrap(), CallReply::Absent);
        assert_eq!(read("$-1\r\n").unwrap(), CallReply::Absent);
        assert_eq!(
            read("*2\r\n$2\r\n17\r\n$4\r\n1234\r\n").unwrap(),
            CallReply::Fields(Some(b"17".to_vec()), Some(b"1234".to_vec()))
        );
        assert_eq!(
            read("*2\r\n$-1\r\n$-1\r\n").unwrap(),
            CallReply::Fields(None, None)
        );
        assert_eq!(
            read("*2\r\n:5000\r\n:3\r\n").unwrap(),
            CallReply::Oversized(5000, 3)
        );
        for unexpected in ["*3\r\n:1\r\n:2\r\n:3\r\n", ":1\r\n", "*2\r\n:-1\r\n:3\r\n"] {
            assert!(read(unexpected).is_err(), "{unexpected:?}");
        }
    }

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
