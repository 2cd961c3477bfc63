//! docs/protocol.md section 2: what the worker declares.

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};

use crate::support::*;

#[tokio::test]
async fn a_quorum_request_queue_serves_requests() {
    let env = TestEnv::new("quorum").await;
    env.seed_sample().await;
    let _worker = env
        .start_worker(&[("LCM__AMQP__QUEUE_TYPE", "quorum")])
        .await;
    let mut requester = env.requester("desk").await;
    let reply = requester.request(&sample_request("desk")).await;
    assert_eq!(reply.body["subtopic"], "BusinessOutCome");
    // Declared as quorum: a passive declare works, a classic one is refused.
    let mut classic = FieldTable::default();
    classic.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("classic".into()),
    );
    let channel = requester.channel.clone();
    let refused = channel
        .queue_declare(
            env.names.request_queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            classic,
        )
        .await;
    assert!(refused.is_err(), "the request queue is not a quorum queue");
}

#[tokio::test]
async fn a_queue_declared_with_another_type_is_a_start_up_error_naming_it() {
    let env = TestEnv::new("mismatch").await;
    let mut quorum = FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    env.channel
        .queue_declare(
            env.names.request_queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            quorum,
        )
        .await
        .unwrap();
    let worker = env.spawn_worker(&[("LCM__AMQP__QUEUE_TYPE", "classic")]);
    let logs = worker.logs.clone();
    let status = worker.exit_status().await;
    assert!(!status.success());
    let logs = logs.lock().unwrap().clone();
    assert!(
        logs.contains(&format!("request queue `{}`", env.names.request_queue)),
        "{logs}"
    );
    assert!(logs.contains("x-queue-type"), "{logs}");
}
