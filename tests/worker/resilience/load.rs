//! Concurrency: many requests at once, and replicas sharing one queue.

use std::collections::HashMap;

use crate::support::*;

const BURST: usize = 500;

#[tokio::test]
async fn five_hundred_requests_at_once_are_each_answered_exactly_once() {
    let env = TestEnv::new("burst").await;
    env.seed_sample().await;
    let worker = env.start_worker(&[]).await;
    let mut requester = env.requester("desk").await;
    let mut sent = Vec::with_capacity(BURST);
    for _ in 0..BURST {
        sent.push(requester.send(&sample_request("desk")).await);
    }
    let mut replies: HashMap<String, usize> = HashMap::new();
    while replies.len() < BURST {
        let reply = requester.next_reply().await.expect("all replies in time");
        assert_eq!(reply.body["message"]["response"][1]["OutComeID"], "102");
        *replies.entry(reply.correlation_id.unwrap()).or_default() += 1;
    }
    for id in &sent {
        assert_eq!(replies.get(id), Some(&1), "correlation id {id}");
    }
    // The worker handled each request once: no redelivery, no duplicate.
    eventually("500 requests counted", || async {
        worker
            .counter("lcm_requests_total", &["result=\"ok\""])
            .await
            == BURST as f64
    })
    .await;
    assert_eq!(
        worker.counter("lcm_requests_total", &[]).await,
        BURST as f64
    );
}

#[tokio::test]
async fn two_replicas_on_one_queue_share_the_load() {
    let env = TestEnv::new("replicas").await;
    env.seed_sample().await;
    // A small prefetch so that neither replica can take the whole burst.
    let settings = [("LCM__AMQP__PREFETCH", "2")];
    let first = env.start_worker(&settings).await;
    let second = env.start_worker(&settings).await;
    let mut requester = env.requester("desk").await;
    let total = 200;
    for _ in 0..total {
        requester.send(&sample_request("desk")).await;
    }
    for _ in 0..total {
        requester.next_reply().await.expect("every reply");
    }
    eventually(
        "every request counted by one replica or the other",
        || async {
            let ok = ["result=\"ok\""];
            first.counter("lcm_requests_total", &ok).await
                + second.counter("lcm_requests_total", &ok).await
                == total as f64
        },
    )
    .await;
    let a = first
        .counter("lcm_requests_total", &["result=\"ok\""])
        .await;
    let b = second
        .counter("lcm_requests_total", &["result=\"ok\""])
        .await;
    assert_eq!(a + b, total as f64);
    assert!(a > 0.0 && b > 0.0, "first answered {a}, second {b}");
}
