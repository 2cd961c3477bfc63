//! `amqp.queue_type = quorum`: the request queue is a quorum queue with a
//! delivery limit, and a poison message (one that keeps killing workers)
//! ends in the dead-letter queue instead of looping.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::support::*;

const QUORUM: [(&str, &str); 2] = [
    ("LCM__AMQP__QUEUE_TYPE", "quorum"),
    ("LCM__AMQP__DELIVERY_LIMIT", "2"),
];

/// `type` and `arguments` of `queue` as `rabbitmqctl` lists them.
async fn queue_type_and_arguments(queue: &str) -> String {
    rabbitmqctl_output(&["list_queues", "name", "type", "arguments"])
        .await
        .lines()
        .find(|line| line.split('\t').next() == Some(queue))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_quorum_request_queue_with_a_delivery_limit_serves_requests() {
    let env = TestEnv::new("quorum").await;
    env.seed_sample().await;
    let _worker = env.start_worker(&QUORUM).await;
    let mut requester = env.requester("desk").await;
    requester.sample_is_answered().await;

    let listed = queue_type_and_arguments(&env.names.request_queue).await;
    println!("quorum queue as listed: {listed}");
    assert!(listed.contains("quorum"), "{listed}");
    assert!(listed.contains("x-delivery-limit"), "{listed}");
}

/// Takes the next message of `queue` on a connection of its own, then
/// closes that connection without acknowledging it. Gives the message's
/// `x-delivery-count` (0 when absent), or `None` when no message came
/// within 2 s.
async fn take_and_crash(queue: &str) -> Option<i64> {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let delivery = match tokio::time::timeout(Duration::from_secs(2), consumer.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        _ => return None,
    };
    let count = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned());
    let _ = connection.close(200, "crashed".into()).await;
    Some(match count {
        Some(AMQPValue::LongLongInt(n)) => n,
        Some(AMQPValue::LongInt(n)) => i64::from(n),
        _ => 0,
    })
}

#[tokio::test]
async fn a_message_that_keeps_killing_workers_is_dead_lettered_after_the_delivery_limit() {
    let env = TestEnv::new("poison").await;
    // The worker declares the topology, then stops: the test plays the
    // crashing workers.
    let worker = env.start_worker(&QUORUM).await;
    assert!(worker.terminate().await.success());
    let body = br#"{"poison":"kills the handler"}"#;
    env.publish_raw("desk", body, BasicProperties::default())
        .await;

    // Each "crash" takes the message and drops the connection with it
    // unacknowledged, as a worker dying with it in hand does. (Not a
    // `basic.nack` with requeue: from RabbitMQ 4.3 on that no longer counts
    // toward the delivery limit, while a lost connection still does.)
    let mut deliveries = Vec::new();
    while let Some(count) = take_and_crash(&env.names.request_queue).await {
        deliveries.push(count);
        assert!(deliveries.len() <= 10, "the message keeps looping");
    }

    let dead = env.dead_lettered().await;
    println!(
        "poison message: delivered {} times (x-delivery-count {deliveries:?}), then dead-lettered: {}",
        deliveries.len(),
        dead.is_some()
    );
    assert_eq!(dead.as_deref(), Some(&body[..]));
    assert_eq!(
        deliveries.len(),
        3,
        "delivery limit 2: the first delivery and 2 redeliveries"
    );
    assert_eq!(env.ready_count(&env.names.request_queue).await, 0);
}

#[tokio::test]
async fn a_request_the_worker_dead_letters_leaves_a_quorum_queue_at_its_first_delivery() {
    // The worker dead-letters with `basic.reject` (no requeue): on every
    // RabbitMQ version, 4.3 included, that dead-letters at once, whatever
    // the delivery limit, and says "rejected".
    let env = TestEnv::new("quorum-reject").await;
    let _worker = env.start_worker(&QUORUM).await;
    let body = request_for("12345", "1").to_string();
    env.publish_raw("anyone", body.as_bytes(), BasicProperties::default())
        .await;
    let channel = env.channel.clone();
    let queue = env.names.dead_letter_queue.clone();
    let dead = eventually_some("the request in the dead-letter queue", || async {
        channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
    })
    .await;
    assert_eq!(dead.delivery.data, body.as_bytes());
    let headers = dead
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    let reason = match headers.inner().get("x-first-death-reason") {
        Some(AMQPValue::LongString(reason)) => reason.to_string(),
        other => format!("{other:?}"),
    };
    println!("dead-lettered from the quorum queue, x-first-death-reason: {reason}");
    assert_eq!(reason, "rejected");
    assert_eq!(env.ready_count(&env.names.request_queue).await, 0);
}

#[tokio::test]
async fn a_quorum_request_queue_declared_without_at_least_once_dead_lettering_stops_the_worker_naming_it(
) {
    // As an earlier version declared it: the README says how to migrate.
    let env = TestEnv::new("quorum-earlier").await;
    let mut arguments = FieldTable::default();
    let text = |value: &str| AMQPValue::LongString(value.into());
    arguments.insert("x-queue-type".into(), text("quorum"));
    arguments.insert(
        "x-dead-letter-exchange".into(),
        text(&env.names.dead_letter_exchange),
    );
    arguments.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(2));
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    env.channel
        .queue_declare(env.names.request_queue.as_str().into(), durable, arguments)
        .await
        .unwrap();
    let worker = env.spawn_worker(&QUORUM);
    let logs = worker.logs.clone();
    let status = worker.exit_status().await;
    let logs = logs.lock().unwrap().clone();
    assert!(!status.success(), "{logs}");
    let queue = format!("request queue `{}`", env.names.request_queue);
    assert!(logs.contains(&queue), "{logs}");
    assert!(logs.contains("inequivalent arg 'x-"), "{logs}");
    assert!(
        logs.contains("x-dead-letter-strategy=at-least-once"),
        "{logs}"
    );
}
