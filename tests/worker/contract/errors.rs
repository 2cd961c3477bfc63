//! docs/protocol.md section 5: every row of the error table, through the real
//! broker and cache.

use lapin::BasicProperties;
use serde_json::{json, Value};

use crate::support::*;

/// Sends each body and checks `errorMessage`, `msg` and the echoed callid.
async fn expect_errors(
    env: &TestEnv,
    requester: &mut Requester,
    cases: &[(Value, &str, &str, &str)],
) {
    for (body, error_message, msg, callid) in cases {
        let reply = requester.request(body).await;
        assert_eq!(reply.body["subtopic"], "WS_Error", "{body}");
        assert_eq!(reply.body["channel"], "LCM");
        assert_eq!(reply.body["topic"], "WebService");
        assert_eq!(reply.body["message"]["errorType"], "WS_Error");
        assert_eq!(reply.error_message(), *error_message, "{body}");
        assert_eq!(reply.msg(), *msg, "{body}");
        assert_eq!(reply.body["message"]["callid"], *callid, "{body}");
        let keys: Vec<&String> = reply.body["message"].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
    }
    let _ = env;
}

#[tokio::test]
async fn every_call_and_account_error_row_is_answered() {
    let env = TestEnv::new("errors").await;
    env.seed_sample().await;
    env.seed_call("nocampaign", &[("account_number", "1")])
        .await;
    // Neither field the worker reads: told apart from a missing record.
    env.seed_call("otherfields", &[("agent", "7")]).await;
    env.seed_call("corrupt", &[("campaign_id", "9")]).await;
    env.seed_outcomes("9", r#"[{"OutComeID":"1"}]"#).await;
    let _worker = env.start_worker(&[]).await;
    let mut requester = env.requester("desk").await;
    let long = "7".repeat(300);
    let cases = [
        (
            request_for("   ", "1"),
            "Callid is empty",
            "Invalid Call ID.",
            "",
        ),
        (
            json!({"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcome","data":{"AccountNumber":"1"}}),
            "Callid is empty",
            "Invalid Call ID.",
            "",
        ),
        (
            json!({"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcome","data":{"callid":null,"AccountNumber":"1"}}),
            "Callid is empty",
            "Invalid Call ID.",
            "",
        ),
        (
            request_for(" 999 ", "1"),
            "Invalid Call ID:999",
            "Invalid Call ID.",
            "999",
        ),
        (
            request_for(&long, "1"),
            &format!("Invalid Call ID:{}", &long[..128]),
            "Invalid Call ID.",
            &long[..128],
        ),
        (
            request_for("12\u{1}3", "1"),
            "Invalid Call ID:12\u{1}3",
            "Invalid Call ID.",
            "12\u{1}3",
        ),
        (
            request_for("nocampaign", "1"),
            "No campaign for Call ID:nocampaign",
            "Invalid Call ID.",
            "nocampaign",
        ),
        (
            request_for("otherfields", "1"),
            "No campaign for Call ID:otherfields",
            "Invalid Call ID.",
            "otherfields",
        ),
        (
            request_for("12345", " "),
            "AccountNumber is empty",
            "Invalid Account Number.",
            "12345",
        ),
        (
            json!({"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutcome","data":{"callid":"12345"}}),
            "AccountNumber is empty",
            "Invalid Account Number.",
            "12345",
        ),
        (
            request_for("12345", "5|3|1"),
            "Invalid AccountNumber:5|3|1",
            "Invalid Account Number.",
            "12345",
        ),
        (
            request_for("12345", &"4".repeat(1000)),
            &format!("Invalid AccountNumber:{}", "4".repeat(128)),
            "Invalid Account Number.",
            "12345",
        ),
        (
            request_for("corrupt", "x"),
            "Corrupt business outcome data for Campaign ID:9",
            "Business Outcomes unavailable.",
            "corrupt",
        ),
    ];
    expect_errors(&env, &mut requester, &cases).await;
}

#[tokio::test]
async fn every_request_shape_error_row_is_answered() {
    let env = TestEnv::new("shape").await;
    env.seed_sample().await;
    let _worker = env
        .start_worker(&[("LCM__LIMITS__MAX_MESSAGE_BYTES", "2048")])
        .await;
    let mut requester = env.requester("desk").await;
    let mut wrong_channel = sample_request("desk");
    wrong_channel["channel"] = json!("CRM");
    let mut wrong_topic = sample_request("desk");
    wrong_topic["topic"] = json!("Other");
    let mut unsupported = sample_request("desk");
    unsupported["subtopic"] = json!("GetCampaigns");
    let mut bad_data = sample_request("desk");
    bad_data["data"] = json!([1]);
    let mut oversized = sample_request("desk");
    oversized["padding"] = json!("x".repeat(4096));
    let cases = [
        (
            wrong_channel,
            "Malformed request: channel is not LCM",
            "Invalid Request.",
            "12345",
        ),
        (
            wrong_topic,
            "Malformed request: topic is not WebService",
            "Invalid Request.",
            "12345",
        ),
        (
            unsupported,
            "Unsupported subtopic:GetCampaigns",
            "Invalid Request.",
            "12345",
        ),
        (
            bad_data,
            "Malformed request: data is not a JSON object",
            "Invalid Request.",
            "",
        ),
        (
            oversized,
            "Malformed request: body exceeds the size limit",
            "Invalid Request.",
            "",
        ),
        (
            json!([1, 2]),
            "Malformed request: body is not a JSON object",
            "Invalid Request.",
            "",
        ),
    ];
    expect_errors(&env, &mut requester, &cases).await;

    let deep = "[".repeat(2000);
    for (bytes, reason) in [
        (&b"{not json"[..], "body is not JSON"),
        (&b"\xff\xfe\x00"[..], "body is not UTF-8"),
        (deep.as_bytes(), "body is not JSON"),
    ] {
        let properties = BasicProperties::default()
            .with_reply_to(requester.reply_queue.as_str().into())
            .with_correlation_id(reason.into());
        requester.publish(bytes, properties).await;
        let reply = requester.reply_for(reason).await.expect("reply to garbage");
        assert_eq!(
            reply.error_message(),
            format!("Malformed request: {reason}")
        );
        assert_eq!(reply.msg(), "Invalid Request.");
    }
}

#[tokio::test]
async fn a_dead_cache_answers_cache_unavailable_after_the_deadline() {
    let env = TestEnv::new("nocache").await;
    // Nothing listens on port 1: every Redis call fails at once.
    let worker = env.spawn_worker(&[
        ("LCM__REDIS__URL", "redis://127.0.0.1:1"),
        ("LCM__LIMITS__REQUEST_DEADLINE_MS", "300"),
    ]);
    worker.wait_consuming().await;
    let (status, reason) = worker.get("/readyz").await.unwrap();
    assert_eq!(status, 503);
    assert!(reason.contains("Redis not answering"), "{reason}");
    let mut requester = env.requester("desk").await;
    let started = std::time::Instant::now();
    let reply = requester.request(&sample_request("desk")).await;
    assert_eq!(reply.error_message(), "Cache unavailable");
    assert_eq!(reply.msg(), "Service temporarily unavailable.");
    assert_eq!(reply.body["message"]["callid"], "12345");
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}
