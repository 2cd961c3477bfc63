//! No reply loops (docs/protocol.md section 4): a reply is never answered,
//! and neither is a message that only the worker's own `app_id` routes.
//! Before, a binding of the request queue to the reply exchange under the
//! worker's `app_id` made it answer its own replies, about 5,000 a second.

use std::time::Duration;

use lapin::options::QueueBindOptions;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use serde_json::json;

use crate::support::*;

const OWN_APP_ID: &str = "lcm-outcome-worker";

#[tokio::test]
async fn a_reply_routed_back_to_the_request_queue_is_dead_lettered_not_answered() {
    let env = TestEnv::new("reply-loop").await;
    env.seed_sample().await;
    let worker = env.start_worker(&[]).await;
    // The misconfiguration: replies to the worker's own app_id, and to the
    // source `loop`, come back as requests.
    for key in [OWN_APP_ID, "loop"] {
        env.channel
            .queue_bind(
                env.names.request_queue.as_str().into(),
                env.names.reply_exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    // A request answered by source `loop`: its reply comes back.
    env.publish_raw(
        "desk",
        sample_request("loop").to_string().as_bytes(),
        BasicProperties::default(),
    )
    .await;
    // A message only the worker's own app_id would route.
    env.publish_raw(
        "desk",
        b"not even JSON",
        BasicProperties::default().with_app_id(OWN_APP_ID.into()),
    )
    .await;

    // The first request is answered (1), its reply and the app_id message
    // are dead-lettered (2); a loop would pass 10 in well under a second.
    worker
        .wait_counter("lcm_requests_total", &["result=\"dead_lettered\""], 2.0)
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let handled = worker.counter("lcm_requests_total", &[]).await;
    assert!(handled < 10.0, "{handled} messages handled in 3 s");
    assert_eq!(handled, 3.0, "one answer, two dead-lettered");
    let first = env.dead_lettered().await.expect("dead-lettered");
    let second = env.dead_lettered().await.expect("dead-lettered");
    let reply: serde_json::Value = serde_json::from_slice(&first)
        .or_else(|_| serde_json::from_slice(&second))
        .expect("one of them is the reply");
    assert_eq!(reply["subtopic"], "BusinessOutCome");
    let logs = worker.logs();
    assert!(logs.contains("the message is itself a reply"), "{logs}");
    assert!(logs.contains("app_id is the worker's own"), "{logs}");
}

#[tokio::test]
async fn a_reply_is_never_answered_even_with_a_reply_to() {
    let env = TestEnv::new("reply-with-reply-to").await;
    let worker = env.start_worker(&[]).await;
    let mut requester = env.requester("desk").await;
    for subtopic in ["BusinessOutCome", "businessoutcomeparent", "WS_ERROR"] {
        requester
            .send(&json!({"channel": "LCM", "topic": "WebService", "subtopic": subtopic}))
            .await;
    }
    worker
        .wait_counter("lcm_requests_total", &["result=\"dead_lettered\""], 3.0)
        .await;
    assert_eq!(requester.queued_replies().await, 0);
    assert!(requester.try_next_reply().is_none(), "nothing was answered");
}
