//! The acknowledgements the broker sees: batched acks reach it all, with a
//! prefetch large enough that one batch holds many; a shutdown with many
//! deliveries in hand acknowledges every request it answered; a reply whose
//! confirm does not come in time sends its request back for redelivery.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::support::proxy::{Mode, Proxy};
use crate::support::*;

const PREFETCH: &str = "256";

/// Sends `count` sample requests without waiting; their correlation ids.
async fn send_samples(requester: &Requester, count: usize) -> HashSet<String> {
    let mut sent = HashSet::new();
    for _ in 0..count {
        sent.insert(requester.send(&sample_request("desk")).await);
    }
    sent
}

#[tokio::test]
async fn with_a_large_prefetch_the_broker_holds_nothing_unacknowledged_once_all_are_answered() {
    let env = TestEnv::new("acks-all-reach-the-broker").await;
    env.seed_sample().await;
    let worker = env.start_worker(&[("LCM__AMQP__PREFETCH", PREFETCH)]).await;
    let mut requester = env.requester("desk").await;
    let sent = send_samples(&requester, 2_000).await;
    let mut replies = ReplyTally::default();
    while replies.answered(&sent) < sent.len() {
        let reply = requester.next_reply().await.expect("every reply in time");
        replies.record(&reply);
    }
    let queue = &env.names.request_queue;
    eventually("the broker holds no unacknowledged request", || async {
        unacknowledged(queue).await == 0
    })
    .await;
    // Still connected and consuming: the acks went out, not a closing
    // channel's implicit requeue.
    assert_eq!(worker.get("/readyz").await.map(|(s, _)| s), Some(200));
    assert_eq!(worker.counter("lcm_amqp_reconnects_total", &[]).await, 0.0);
    assert_eq!(replies.duplicated(), 0);
    assert_eq!(env.ready_count(queue).await, 0);
}

#[tokio::test]
async fn a_shutdown_with_many_in_hand_acknowledges_every_request_it_answered() {
    let env = TestEnv::new("acks-at-shutdown").await;
    env.seed_sample().await;
    // Redis answers late, so that many deliveries are in hand at SIGTERM.
    let redis = Proxy::start(&redis_address(), Mode::Delay(Duration::from_millis(300))).await;
    let url = redis.redis_url();
    let settings = [
        ("LCM__AMQP__PREFETCH", PREFETCH),
        ("LCM__REDIS__URL", url.as_str()),
        ("LCM__LIMITS__REQUEST_DEADLINE_MS", "5000"),
    ];
    // Ready means Redis answers a PING within 500 ms, which it does late:
    // consuming is what counts here.
    let worker = env.spawn_worker(&settings);
    worker.wait_consuming().await;
    let mut requester = env.requester("desk").await;
    let sent = send_samples(&requester, 600).await;
    let held = eventually_some("many deliveries in hand", || async {
        let held = worker.counter("lcm_deliveries_in_hand", &[]).await;
        (held >= 100.0).then_some(held)
    })
    .await;
    let status = worker.terminate().await;
    assert!(status.success(), "exited {status}");
    // What the first worker answered it acknowledged: a second one
    // answers only the rest, and nothing twice.
    let _second = env.start_worker(&[("LCM__AMQP__PREFETCH", PREFETCH)]).await;
    let mut replies = ReplyTally::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while replies.answered(&sent) < sent.len() && Instant::now() < deadline {
        if let Some(reply) = requester.next_reply().await {
            replies.record(&reply);
        }
    }
    println!(
        "shutdown with {held} in hand (prefetch {PREFETCH}): sent {}, answered {}, duplicated {}",
        sent.len(),
        replies.answered(&sent),
        replies.duplicated()
    );
    assert_eq!(replies.answered(&sent), sent.len(), "lost requests");
    assert_eq!(replies.duplicated(), 0, "answered twice");
}

#[tokio::test]
async fn a_reply_not_confirmed_in_time_sends_its_request_back_for_redelivery() {
    let env = TestEnv::new("confirm-deadline").await;
    env.seed_sample().await;
    let broker = Proxy::start(&amqp_address(), Mode::Forward).await;
    let url = broker.amqp_url();
    let worker = env
        .start_worker(&[
            ("LCM__AMQP__URL", url.as_str()),
            ("LCM__LIMITS__REQUEST_DEADLINE_MS", "500"),
        ])
        .await;
    let mut requester = env.requester("desk").await;
    requester.sample_is_answered().await;
    // Whatever the broker sends now reaches the worker 1.5 s late: the
    // confirm of the next reply among it, past the 500 ms wait.
    broker.set_mode(Mode::Delay(Duration::from_millis(1500)));
    let id = requester.send(&sample_request("desk")).await;
    let warned = "reply not confirmed in time; the request goes back for redelivery";
    eventually("the confirm wait ran out", || async {
        worker.logs().contains(warned)
    })
    .await;
    broker.set_mode(Mode::Forward);
    // Redelivered and answered again: at-least-once, with the same
    // correlation id.
    let mut replies = ReplyTally::default();
    while !(replies.has(&id) && replies.duplicated() > 0) {
        let reply = requester.next_reply().await.expect("both replies in time");
        replies.record(&reply);
    }
    let queue = &env.names.request_queue;
    eventually("nothing left unacknowledged or ready", || async {
        unacknowledged(queue).await == 0 && env.ready_count(queue).await == 0
    })
    .await;
    assert_eq!(worker.counter("lcm_amqp_reconnects_total", &[]).await, 0.0);
}

#[tokio::test]
async fn a_consumer_the_broker_cancels_finishes_and_acknowledges_what_it_holds() {
    let env = TestEnv::new("broker-cancel").await;
    env.seed_sample().await;
    let broker = CancelProxy::start(&amqp_address()).await;
    // Redis answers late, so that deliveries are in hand at the cancel.
    let redis = Proxy::start(&redis_address(), Mode::Delay(Duration::from_millis(300))).await;
    let (amqp_url, redis_url) = (broker.amqp_url(), redis.redis_url());
    let worker = env.spawn_worker(&[
        ("LCM__AMQP__URL", amqp_url.as_str()),
        ("LCM__AMQP__PREFETCH", "64"),
        ("LCM__REDIS__URL", redis_url.as_str()),
        ("LCM__LIMITS__REQUEST_DEADLINE_MS", "5000"),
    ]);
    worker.wait_consuming().await;
    let mut requester = env.requester("desk").await;
    let sent = send_samples(&requester, 300).await;
    let held = eventually_some("deliveries in hand", || async {
        let held = worker.counter("lcm_deliveries_in_hand", &[]).await;
        (held >= 20.0).then_some(held)
    })
    .await;
    broker.cancel_consumers();
    eventually("the worker consumes again after the cancel", || async {
        worker.counter("lcm_amqp_reconnects_total", &[]).await == 1.0
    })
    .await;
    let mut replies = ReplyTally::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while replies.answered(&sent) < sent.len() && Instant::now() < deadline {
        if let Some(reply) = requester.next_reply().await {
            replies.record(&reply);
        }
    }
    println!(
        "broker cancel with {held} in hand (prefetch 64): sent {}, answered {}, duplicated {}",
        sent.len(),
        replies.answered(&sent),
        replies.duplicated()
    );
    assert_eq!(broker.injected(), 1);
    worker.wait_logged("consumer cancelled by the broker").await;
    assert_eq!(replies.answered(&sent), sent.len(), "lost requests");
    assert_eq!(replies.duplicated(), 0, "answered twice");
}
