//! docs/protocol.md section 4: the four reply routes, in order, and the reply
//! properties.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Confirmation};

use crate::support::*;

#[tokio::test]
async fn reply_to_is_answered_through_the_default_exchange_with_the_correlation_id() {
    let env = TestEnv::new("replyto").await;
    env.seed_sample().await;
    let _worker = env.start_worker(&[]).await;
    let mut requester = env.requester("not-bound-elsewhere").await;
    let correlation_id = requester.send(&sample_request("some-other-source")).await;
    let reply = requester.reply_for(&correlation_id).await.expect("reply");
    assert_eq!(
        reply.correlation_id.as_deref(),
        Some(correlation_id.as_str())
    );
    assert_eq!(reply.body["subtopic"], "BusinessOutCome");
}

#[tokio::test]
async fn direct_reply_to_is_answered() {
    let env = TestEnv::new("direct").await;
    env.seed_sample().await;
    let _worker = env.start_worker(&[]).await;
    let requester = env.requester("unused").await;
    // Direct Reply-to: consume the pseudo-queue and publish on the same channel.
    let mut replies = direct_reply_to(&requester.channel).await;
    let properties = BasicProperties::default()
        .with_reply_to("amq.rabbitmq.reply-to".into())
        .with_correlation_id("direct-1".into());
    requester
        .publish(sample_request("unused").to_string().as_bytes(), properties)
        .await;
    let reply = tokio::time::timeout(WAIT, checked_recv(&mut replies))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.correlation_id.as_deref(), Some("direct-1"));
    assert_eq!(reply.body["message"]["callid"], "12345");
}

#[tokio::test]
async fn without_reply_to_the_body_source_routes_through_the_reply_exchange() {
    let env = TestEnv::new("source").await;
    env.seed_sample().await;
    let _worker = env.start_worker(&[]).await;
    let mut requester = env.requester("agent-desktop-eu").await;
    let properties = BasicProperties::default()
        .with_correlation_id("by-source".into())
        .with_app_id("ignored-app".into());
    requester
        .publish(
            sample_request("agent-desktop-eu").to_string().as_bytes(),
            properties,
        )
        .await;
    let reply = requester
        .reply_for("by-source")
        .await
        .expect("reply by source");
    assert_eq!(reply.body["subtopic"], "BusinessOutCome");
}

#[tokio::test]
async fn without_reply_to_or_source_the_app_id_routes_and_message_id_correlates() {
    let env = TestEnv::new("appid").await;
    env.seed_sample().await;
    let _worker = env.start_worker(&[]).await;
    let mut requester = env.requester("dialer-7").await;
    let properties = BasicProperties::default()
        .with_app_id("dialer-7".into())
        .with_message_id("msg-42".into());
    let body = request_for("12345", "5|3|1|0|0|44|1");
    requester
        .publish(body.to_string().as_bytes(), properties)
        .await;
    let reply = requester
        .reply_for("msg-42")
        .await
        .expect("reply by app_id");
    assert_eq!(reply.body["message"]["callid"], "12345");
}

#[tokio::test]
async fn a_request_nobody_can_be_answered_is_dead_lettered() {
    let env = TestEnv::new("deadletter").await;
    let worker = env.start_worker(&[]).await;
    let body = request_for("12345", "1").to_string();
    env.publish_raw("anyone", body.as_bytes(), BasicProperties::default())
        .await;
    let dead = env
        .dead_lettered()
        .await
        .expect("request in the dead-letter queue");
    assert_eq!(dead, body.as_bytes());
    eventually("dead-letter counted", || async {
        worker
            .counter("lcm_requests_total", &["result=\"dead_lettered\""])
            .await
            == 1.0
    })
    .await;
    worker.wait_logged("no reply_to, source or app_id").await;
}

#[tokio::test]
async fn an_unroutable_reply_is_counted_and_its_request_acknowledged() {
    let env = TestEnv::new("unroutable").await;
    env.seed_sample().await;
    let worker = env.start_worker(&[]).await;
    let properties = BasicProperties::default()
        .with_reply_to("no-such-queue-anywhere".into())
        .with_correlation_id("lost".into());
    let body = sample_request("x").to_string();
    env.publish_raw("x", body.as_bytes(), properties).await;
    eventually("unroutable reply counted", || async {
        worker.counter("lcm_replies_unroutable_total", &[]).await == 1.0
    })
    .await;
    eventually("request acknowledged, not requeued", || async {
        worker
            .counter("lcm_requests_total", &["result=\"ok\""])
            .await
            == 1.0
            && env.ready_count(&env.names.request_queue).await == 0
    })
    .await;
    assert_eq!(env.ready_count(&env.names.dead_letter_queue).await, 0);
    worker.wait_logged("reply returned unroutable").await;
}

#[tokio::test]
async fn a_request_published_straight_to_the_queue_is_served() {
    let env = TestEnv::new("direct-queue").await;
    env.seed_sample().await;
    let _worker = env.start_worker(&[]).await;
    let mut requester = env.requester("desk").await;
    let properties = BasicProperties::default()
        .with_reply_to(requester.reply_queue.as_str().into())
        .with_correlation_id("straight".into());
    requester
        .channel
        .basic_publish(
            "".into(),
            env.names.request_queue.as_str().into(),
            BasicPublishOptions::default(),
            sample_request("desk").to_string().as_bytes(),
            properties,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let reply = requester.reply_for("straight").await.expect("reply");
    assert_eq!(reply.body["subtopic"], "BusinessOutCome");
}

#[tokio::test]
async fn bindings_limit_the_sources_a_deployment_serves() {
    let env = TestEnv::new("bindings").await;
    env.seed_sample().await;
    let worker = env
        .start_worker(&[("LCM__AMQP__BINDINGS", "served-a,served-b")])
        .await;
    let mut served = env.requester("served-b").await;
    let reply = served.request(&sample_request("served-b")).await;
    assert_eq!(reply.body["subtopic"], "BusinessOutCome");

    // Another source's request is not routed to the queue at all: a
    // mandatory publish comes back unroutable.
    let other = env.requester("other").await;
    other
        .channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirmation = other
        .channel
        .basic_publish(
            env.names.request_exchange.as_str().into(),
            "other".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            sample_request("other").to_string().as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        matches!(confirmation, Confirmation::Ack(Some(_))),
        "{confirmation:?}"
    );
    worker.wait_counter("lcm_requests_total", &[], 1.0).await;
}
