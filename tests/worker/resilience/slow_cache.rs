//! A slow cache: Redis answers every command half a request deadline late,
//! under load. Each request gets its outcomes or `Cache unavailable`,
//! never silence and never past its deadline; the worker holds no more
//! deliveries than its prefetch; once Redis is quick again, so is the
//! worker.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::support::proxy::{Mode, Proxy};
use crate::support::*;

const DEADLINE_MS: u64 = 800;
/// Half the deadline.
const SLOW: Duration = Duration::from_millis(DEADLINE_MS / 2);
const PREFETCH: usize = 8;
/// 100 requests/s.
const INTERVAL: Duration = Duration::from_millis(10);

#[tokio::test]
async fn a_cache_answering_half_a_deadline_late_gets_replies_or_cache_unavailable_never_silence() {
    let env = TestEnv::new("slow-cache").await;
    env.seed_sample().await;
    let redis = Proxy::start(&redis_address(), Mode::Forward).await;
    let url = redis.redis_url();
    let worker = env
        .start_worker(&[
            ("LCM__REDIS__URL", &url),
            ("LCM__AMQP__PREFETCH", &PREFETCH.to_string()),
            ("LCM__LIMITS__REQUEST_DEADLINE_MS", &DEADLINE_MS.to_string()),
        ])
        .await;
    let mut requester = env.requester("desk").await;
    requester.sample_is_answered().await;
    let sampler = Sampler::start(&worker, Duration::from_millis(20));

    redis.set_mode(Mode::Delay(SLOW));
    let load = Load::start(&requester, INTERVAL).await;
    tokio::time::sleep(Duration::from_secs(4)).await; // the slow stretch
    redis.set_mode(Mode::Forward);
    let quick_again = Instant::now();
    let sent = load.stop().await;

    let mut replies = ReplyTally::default();
    let mut kinds: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent.ids.iter().any(|id| !replies.has(id)) && Instant::now() < deadline {
        let Some(reply) = requester.next_reply().await else {
            break;
        };
        let kind = match reply.body["subtopic"].as_str() {
            Some("WS_Error") => reply.error_message().to_owned(),
            other => other.unwrap_or("?").to_owned(),
        };
        assert!(
            kind == "BusinessOutCome" || kind == "Cache unavailable",
            "{:?}",
            reply.body
        );
        *kinds.entry(kind).or_default() += 1;
        replies.record(&reply);
    }
    let backlog_answered = quick_again.elapsed();
    let asked = Instant::now();
    requester.sample_is_answered().await;
    let fresh = asked.elapsed();

    let total = sent.ids.len();
    let answered = replies.answered(&sent.ids);
    let max_in_hand = sampler
        .samples()
        .iter()
        .map(|s| s.in_hand)
        .fold(0.0, f64::max);
    let (_, metrics) = worker.get("/metrics").await.unwrap();
    let settled = metric_sum(&metrics, "lcm_request_duration_seconds_count", &[]);
    let within_1s = metric_sum(
        &metrics,
        "lcm_request_duration_seconds_bucket",
        &["le=\"1\""],
    );
    println!(
        "slow cache ({SLOW:?} per Redis answer, deadline {DEADLINE_MS} ms, prefetch {PREFETCH}): \
         sent {total}, answered {answered}, replies {kinds:?}; most deliveries in hand {max_in_hand}; \
         settled {settled}, of which within 1 s {within_1s}; backlog answered {backlog_answered:.2?} \
         after Redis was quick again, a fresh request then in {fresh:.2?}"
    );
    assert_eq!(answered, total, "requests without a reply");
    assert!(max_in_hand <= PREFETCH as f64, "{max_in_hand} in hand");
    assert!(max_in_hand >= 1.0, "the sampler saw no delivery in hand");
    assert_eq!(within_1s, settled, "a request settled past its deadline");
    assert!(kinds.contains_key("BusinessOutCome"), "{kinds:?}");
    assert!(
        fresh < Duration::from_millis(250),
        "fresh request took {fresh:?}"
    );
}
