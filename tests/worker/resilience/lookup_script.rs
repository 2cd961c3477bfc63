//! The call lookup goes to Redis by its script's hash (`EVALSHA`), and by
//! the script's text (`EVAL`) where that cannot work: a Redis that lost the
//! script (flushed, restarted, failed over) is sent the text once, and a
//! user that may not run `EVALSHA` is sent it from then on. Neither costs a
//! request its answer (src/redis/store.rs, `CallLookup`).

use std::collections::HashMap;

use deadpool_redis::redis::{self, aio::MultiplexedConnection, Value};

use crate::support::*;

/// The worker's warning when Redis refuses it `EVALSHA`.
const EVALSHA_REFUSED: &str = "Redis refuses EVALSHA";

/// `cmdstat_<command>`'s `calls` and `failed_calls` since the last
/// `CONFIG RESETSTAT`; zeros when Redis saw none.
async fn command_stats(redis: &mut MultiplexedConnection, command: &str) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:");
    let Some(line) = info.lines().find(|line| line.starts_with(&prefix)) else {
        return (0, 0);
    };
    let field = |name: &str| -> u64 {
        line[prefix.len()..]
            .split(',')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .parse()
            .unwrap()
    };
    (field("calls"), field("failed_calls"))
}

/// How many times Redis refused `user` the command `command`, from the
/// shared Redis's `ACL LOG` (which counts repeats in one entry).
async fn refusals_logged(env: &TestEnv, user: &str, command: &str) -> i64 {
    let mut redis = env.redis.clone();
    let entries: Vec<HashMap<String, Value>> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut redis)
        .await
        .unwrap();
    fn is(entry: &HashMap<String, Value>, key: &str, wanted: &str) -> bool {
        matches!(entry.get(key), Some(Value::BulkString(text)) if text == wanted.as_bytes())
    }
    entries
        .iter()
        .filter(|entry| is(entry, "username", user) && is(entry, "object", command))
        .map(|entry| match entry.get("count") {
            Some(Value::Int(count)) => *count,
            other => panic!("ACL LOG count {other:?}"),
        })
        .sum()
}

#[tokio::test]
async fn a_redis_that_lost_the_script_is_sent_its_text_once_then_its_hash() {
    let mut env = TestEnv::new("noscript").await;
    let port = free_port();
    let _private = PrivateRedis::start(port).await;
    let url = format!("redis://127.0.0.1:{port}");
    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // The sample goes to this test's own Redis, whose script cache and
    // command counts no other test touches.
    env.redis = redis.clone();
    env.seed_sample().await;
    let _worker = env.start_worker(&[("LCM__REDIS__URL", &url)]).await;
    let mut requester = env.requester("desk").await;
    requester.sample_is_answered().await;

    for round in 0..2 {
        // As after a restart or a failover to a replica that never ran it.
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut redis)
            .await
            .unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut redis)
            .await
            .unwrap();
        for _ in 0..5 {
            requester.sample_is_answered().await;
        }
        // Each request sent EVALSHA; the first was answered NOSCRIPT and
        // sent the text, which Redis keeps again for the other four.
        assert_eq!(
            command_stats(&mut redis, "evalsha").await,
            (5, 1),
            "round {round}"
        );
        assert_eq!(
            command_stats(&mut redis, "eval").await,
            (1, 0),
            "round {round}"
        );
    }
}

#[tokio::test]
async fn a_user_that_may_not_run_evalsha_is_sent_the_scripts_text_from_then_on() {
    let env = TestEnv::new("noevalsha").await;
    env.seed_sample().await;
    let prefix = format!("~{}:*", env.names.key_prefix);
    // An ACL written for EVAL alone.
    let user = RedisUser::create(&env, &[&prefix, "+@all", "-evalsha"]).await;
    let worker = env.start_worker(&[("LCM__REDIS__URL", &user.url())]).await;
    let mut requester = env.requester("desk").await;
    for _ in 0..5 {
        requester.sample_is_answered().await;
    }
    let logs = worker.wait_logged_times(EVALSHA_REFUSED, 1).await;
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains(EVALSHA_REFUSED))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("WARN") && warnings[0].contains("run the 'evalsha' command"),
        "{warnings:#?}"
    );
    assert!(!logs.contains(&user.password), "password logged");
    // Refused once: the four requests after it went as EVAL at once.
    assert_eq!(refusals_logged(&env, &user.name, "evalsha").await, 1);
}
