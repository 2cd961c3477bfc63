//! docs/protocol.md section 7: a Redis error that retrying cannot cure (the
//! worker's Redis user may not run the lookup, or its password is refused)
//! is answered `Cache unavailable` at once, not at the deadline, with one
//! warning naming the Redis error per interval; `/readyz` reports it,
//! because it runs the lookup's commands, not a PING; and the worker
//! recovers once the user is mended.

use std::time::{Duration, Instant};

use crate::support::*;

/// Far beyond [`WAIT`]: a reply within `WAIT` was not retried until it.
const DEADLINE_MS: &str = "60000";

/// The warning of a refusal, once per interval (src/service/retry.rs).
const REFUSED: &str = "Redis refuses the worker's lookup";
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A worker connecting to Redis at `url`, once it consumes; refused, it
/// is not ready.
async fn worker_as(env: &TestEnv, url: &str) -> Worker {
    let worker = env.spawn_worker(&[
        ("LCM__REDIS__URL", url),
        ("LCM__LIMITS__REQUEST_DEADLINE_MS", DEADLINE_MS),
    ]);
    worker.wait_consuming().await;
    worker
}

/// Waits until `/readyz` answers 503 with `reason` in its body.
async fn not_ready_because(worker: &Worker, reason: &str) -> String {
    eventually_some("/readyz gives the reason", || async {
        match worker.get("/readyz").await {
            Some((503, body)) if body.contains(reason) => Some(body),
            _ => None,
        }
    })
    .await
}

/// Sends `n` sample requests; each is answered `Cache unavailable`.
async fn all_answered_cache_unavailable(env: &TestEnv, n: usize) {
    let mut requester = env.requester("desk").await;
    for _ in 0..n {
        let reply = requester.request(&sample_request("desk")).await;
        assert_eq!(reply.error_message(), "Cache unavailable");
        assert_eq!(reply.msg(), "Service temporarily unavailable.");
    }
}

/// The refusal warnings so far: at least one, and not one per request,
/// each naming the Redis error by one of `words`.
async fn assert_refusals_warned(worker: &Worker, words: &[&str], since: Instant) {
    let logs = worker.wait_logged_times(REFUSED, 1).await;
    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains(REFUSED)).collect();
    let allowed = 1 + since.elapsed().as_secs() / WARN_EVERY.as_secs();
    assert!(!warnings.is_empty(), "no warning:\n{logs}");
    assert!(warnings.len() as u64 <= allowed, "{warnings:#?}");
    assert!(
        warnings
            .iter()
            .all(|l| l.contains("WARN") && words.iter().any(|w| l.contains(w))),
        "{warnings:#?}"
    );
}

#[tokio::test]
async fn a_user_without_permission_for_the_lookup_is_refused_at_once_and_not_ready() {
    let env = TestEnv::new("noperm").await;
    env.seed_sample().await;
    // First its keys are elsewhere, then it may not run HMGET: both
    // answer PING, and both refuse the lookup.
    let user = RedisUser::create(&env, &["~elsewhere:*", "+@all"]).await;
    let worker = worker_as(&env, &user.url()).await;
    let reason = not_ready_because(&worker, "Redis refuses the lookup").await;
    assert!(reason.contains("NOPERM"), "{reason}");

    let prefix = format!("~{}:*", env.names.key_prefix);
    user.set(&env, &["resetkeys", &prefix, "-hmget"]).await;
    // HMGET runs inside the call lookup's script, where Redis words a
    // refused command with ERR: `ACL failure in script: ... 'hmget'`
    // (7.2 and later, Valkey) or `The user executing the script can't run
    // this command` (7.0).
    let reason = not_ready_because(&worker, "script").await;
    assert!(reason.contains("ERR"), "{reason}");
    let started = Instant::now();
    all_answered_cache_unavailable(&env, 20).await;
    assert_refusals_warned(&worker, &["NOPERM", "script"], started).await;

    // Mended, without a restart.
    user.set(&env, &["+hmget"]).await;
    worker.wait_ready().await;
    env.requester("desk").await.sample_is_answered().await;
}

#[tokio::test]
async fn a_refused_password_is_cache_unavailable_at_once_and_not_ready() {
    let env = TestEnv::new("wrongpass").await;
    env.seed_sample().await;
    let prefix = format!("~{}:*", env.names.key_prefix);
    let user = RedisUser::create(&env, &[&prefix, "+@all"]).await;
    let worker = worker_as(&env, &user.url_with("not-the-password")).await;
    let reason = not_ready_because(&worker, "Redis refuses the lookup").await;
    assert!(reason.contains("authentication failed"), "{reason}");
    assert!(!reason.contains("not-the-password"), "{reason}");
    let started = Instant::now();
    all_answered_cache_unavailable(&env, 5).await;
    assert_refusals_warned(&worker, &["authentication failed"], started).await;

    // The worker's password becomes valid: it recovers.
    user.set(&env, &[">not-the-password"]).await;
    worker.wait_ready().await;
    env.requester("desk").await.sample_is_answered().await;
    assert!(!worker.logs().contains("not-the-password"));
}
