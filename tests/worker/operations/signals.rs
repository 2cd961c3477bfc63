//! Signals sent to the worker process: SIGHUP drains like SIGTERM; a
//! second signal during the drain stops the process at once, and what was
//! in hand is redelivered.

use std::time::Duration;

use tokio::time::Instant;

use crate::support::proxy::{Mode, Proxy};
use crate::support::*;

const PREFETCH: usize = 5;
const SENT: usize = 30;

/// A worker whose Redis hangs, holding [`PREFETCH`] of [`SENT`] requests
/// in hand; each is answered `Cache unavailable` once its `deadline_ms` is
/// over, and the drain may take up to `grace_ms`.
async fn worker_with_deliveries_in_hand(
    env: &TestEnv,
    redis: &Proxy,
    deadline_ms: &str,
    grace_ms: &str,
) -> (Worker, Requester) {
    env.seed_sample().await;
    let redis_url = redis.redis_url();
    let prefetch = PREFETCH.to_string();
    let worker = env.spawn_worker(&[
        ("LCM__REDIS__URL", &redis_url),
        ("LCM__AMQP__PREFETCH", &prefetch),
        ("LCM__LIMITS__REQUEST_DEADLINE_MS", deadline_ms),
        ("LCM__SHUTDOWN__GRACE_MS", grace_ms),
    ]);
    worker.wait_consuming().await;
    let requester = env.requester("desk").await;
    for _ in 0..SENT {
        requester.send(&sample_request("desk")).await;
    }
    eventually("prefetch full", || async {
        worker.counter("lcm_deliveries_in_hand", &[]).await == PREFETCH as f64
    })
    .await;
    (worker, requester)
}

#[tokio::test]
async fn sighup_drains_the_deliveries_in_hand_like_sigterm_and_exits_zero() {
    let env = TestEnv::new("sighup").await;
    let redis = Proxy::start(&redis_address(), Mode::BlackHole).await;
    let (worker, mut requester) =
        worker_with_deliveries_in_hand(&env, &redis, "1500", "10000").await;
    worker.signal("HUP").await;
    let logs = worker.logs.clone();
    let status = worker.exit_status().await;
    assert!(status.success(), "{status:?}");
    let answered = requester
        .replies_until_quiet(Duration::from_millis(500))
        .await
        .iter()
        .inspect(|reply| assert_eq!(reply.error_message(), "Cache unavailable"))
        .count();
    assert_eq!(answered, PREFETCH, "the deliveries in hand are answered");
    let queued = env.ready_count(&env.names.request_queue).await as usize;
    assert_eq!(answered + queued, SENT, "nothing lost");
    let logs = logs.lock().unwrap();
    assert!(logs.contains("signal=\"SIGHUP\""), "{logs}");
    assert!(logs.contains("deliveries in hand finished"), "{logs}");
}

/// Sends `first`, waits until the worker drains, sends `second`, and
/// checks that the process ends at once with `status`, long before its
/// grace time, and that every request is back in the queue.
async fn a_second_signal_stops_at_once(test: &str, first: &str, second: &str, status: i32) {
    let env = TestEnv::new(test).await;
    let redis = Proxy::start(&redis_address(), Mode::BlackHole).await;
    // Neither the deadline nor the grace time ends the drain in this test.
    let (worker, _requester) =
        worker_with_deliveries_in_hand(&env, &redis, "120000", "120000").await;
    worker.signal(first).await;
    eventually("draining", || async {
        worker.logs().contains("stopping: draining")
    })
    .await;
    let logs = worker.logs.clone();
    let stopping = Instant::now();
    worker.signal(second).await;
    let exited = worker.exit_status().await;
    let took = stopping.elapsed();
    let logs = logs.lock().unwrap().clone();
    assert_eq!(exited.code(), Some(status), "{logs}");
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert!(logs.contains("second signal: stopping at once"), "{logs}");
    eventually("every request back in the queue", || async {
        env.ready_count(&env.names.request_queue).await as usize == SENT
    })
    .await;
}

#[tokio::test]
async fn a_second_sigint_during_the_drain_stops_at_once_with_status_130() {
    a_second_signal_stops_at_once("sigint-twice", "INT", "INT", 130).await;
}

#[tokio::test]
async fn a_sigterm_during_a_sighup_drain_stops_at_once_with_status_143() {
    a_second_signal_stops_at_once("sighup-sigterm", "HUP", "TERM", 143).await;
}
