//! `reply_to` values that name RabbitMQ's Direct Reply-to but were never
//! issued by it. RabbitMQ 3.10 crashes the channel that publishes to
//! `amq.rabbitmq.reply-to.x.y`, and so the worker's connection: the request
//! came back after every reconnect, on every replica, and on a quorum queue
//! the requests in hand with it reached the delivery limit too.

use std::time::Duration;

use lapin::BasicProperties;
use serde_json::json;

use crate::support::*;

const UNISSUED: [&str; 3] = [
    "amq.rabbitmq.reply-to.x.y",
    "amq.rabbitmq.reply-to.bogus",
    "amq.rabbitmq.reply-toX",
];

async fn each_unissued_address_is_dead_lettered_and_the_rest_served(queue_type: &str) {
    let env = TestEnv::new(&format!("unissued-reply-to-{queue_type}")).await;
    env.seed_sample().await;
    let worker = env
        .start_worker(&[("LCM__AMQP__QUEUE_TYPE", queue_type)])
        .await;
    let mut requester = env.requester("desk").await;
    for (i, reply_to) in UNISSUED.iter().enumerate() {
        let body = json!({
            "channel": "LCM", "topic": "WebService", "subtopic": "GetBusinessOutcome",
            "data": {"callid": format!("poison-{i}"), "AccountNumber": "5|3|1|0|0|44|1"}
        });
        let properties = BasicProperties::default()
            .with_reply_to((*reply_to).into())
            .with_correlation_id(format!("poison-{i}").into());
        requester
            .publish(body.to_string().as_bytes(), properties)
            .await;
        requester
            .sample_answered_within(20, Duration::from_secs(10))
            .await;
    }
    let mut dead = Vec::new();
    for _ in UNISSUED {
        let body = env.dead_lettered().await.expect("a poison dead-lettered");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        dead.push(body["data"]["callid"].as_str().unwrap().to_owned());
    }
    dead.sort();
    assert_eq!(dead, ["poison-0", "poison-1", "poison-2"]);
    // Nothing else: the 60 sample requests were all answered.
    assert_eq!(env.ready_count(&env.names.dead_letter_queue).await, 0);
    worker
        .wait_counter("lcm_requests_total", &["result=\"dead_lettered\""], 3.0)
        .await;
    assert_eq!(worker.counter("lcm_amqp_reconnects_total", &[]).await, 0.0);
    let warned = "reply_to names a Direct Reply-to address RabbitMQ did not issue";
    let logs = worker.wait_logged_times(warned, 3).await;
    assert_eq!(logs.matches(warned).count(), 3, "{logs}");
}

#[tokio::test]
async fn an_unissued_direct_reply_to_address_is_dead_lettered_on_a_classic_queue() {
    each_unissued_address_is_dead_lettered_and_the_rest_served("classic").await;
}

#[tokio::test]
async fn an_unissued_direct_reply_to_address_is_dead_lettered_on_a_quorum_queue() {
    each_unissued_address_is_dead_lettered_and_the_rest_served("quorum").await;
}
