//! docs/protocol.md section 5: every row of the error table, through the real
//! broker and cache.

use lapin::BasicProperties;
use serde_json::{json, Value};

use crate::support::*;

const CALLID: &str = "Invalid Call ID.";
const ACCOUNT: &str = "Invalid Account Number.";
const REQUEST: &str = "Invalid Request.";

/// One row of the error table: the request, then `errorMessage`, `msg`
/// and the echoed callid.
type Row = (Value, String, &'static str, String);

fn row(body: Value, error_message: &str, msg: &'static str, callid: &str) -> Row {
    (body, error_message.to_owned(), msg, callid.to_owned())
}

/// Sends each body and checks `errorMessage`, `msg` and the echoed callid.
async fn expect_errors(requester: &mut Requester, rows: &[Row]) {
    for (body, error_message, msg, callid) in rows {
        let reply = requester.request(body).await;
        assert_eq!(reply.body["subtopic"], "WS_Error", "{body}");
        assert_eq!(reply.body["channel"], "LCM");
        assert_eq!(reply.body["topic"], "WebService");
        assert_eq!(reply.body["message"]["errorType"], "WS_Error");
        assert_eq!(reply.error_message(), error_message, "{body}");
        assert_eq!(reply.msg(), *msg, "{body}");
        assert_eq!(reply.body["message"]["callid"], callid.as_str(), "{body}");
        let keys: Vec<&String> = reply.body["message"].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
    }
}

/// A GetBusinessOutcome request whose `data` is exactly `data`.
fn with_data(data: Value) -> Value {
    json!({"channel": "LCM", "topic": "WebService", "subtopic": "GetBusinessOutcome", "data": data})
}

/// The sample request with `key` set to `value`.
fn sample_with(key: &str, value: Value) -> Value {
    let mut body = sample_request("desk");
    body[key] = value;
    body
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
    let (long, account) = ("7".repeat(300), "4".repeat(1000));
    let (long_cut, account_cut) = (&long[..128], &account[..128]);
    let empty = "Callid is empty";
    #[rustfmt::skip]
    let rows = [
        row(request_for("   ", "1"), empty, CALLID, ""),
        row(with_data(json!({"AccountNumber": "1"})), empty, CALLID, ""),
        row(with_data(json!({"callid": null, "AccountNumber": "1"})), empty, CALLID, ""),
        row(request_for(" 999 ", "1"), "Invalid Call ID:999", CALLID, "999"),
        row(request_for(&long, "1"), &format!("Invalid Call ID:{long_cut}"), CALLID, long_cut),
        row(request_for("12\u{1}3", "1"), "Invalid Call ID:12\u{1}3", CALLID, "12\u{1}3"),
        row(request_for("nocampaign", "1"), "No campaign for Call ID:nocampaign", CALLID, "nocampaign"),
        row(request_for("otherfields", "1"), "No campaign for Call ID:otherfields", CALLID, "otherfields"),
        row(request_for("12345", " "), "AccountNumber is empty", ACCOUNT, "12345"),
        row(with_data(json!({"callid": "12345"})), "AccountNumber is empty", ACCOUNT, "12345"),
        row(request_for("12345", "5|3|1"), "Invalid AccountNumber:5|3|1", ACCOUNT, "12345"),
        row(request_for("12345", &account), &format!("Invalid AccountNumber:{account_cut}"), ACCOUNT, "12345"),
        row(request_for("corrupt", "x"), "Corrupt business outcome data for Campaign ID:9", "Business Outcomes unavailable.", "corrupt"),
    ];
    expect_errors(&mut requester, &rows).await;
}

#[tokio::test]
async fn every_request_shape_error_row_is_answered() {
    let env = TestEnv::new("shape").await;
    env.seed_sample().await;
    let _worker = env
        .start_worker(&[("LCM__LIMITS__MAX_MESSAGE_BYTES", "2048")])
        .await;
    let mut requester = env.requester("desk").await;
    let malformed = |reason: &str| format!("Malformed request: {reason}");
    #[rustfmt::skip]
    let rows = [
        row(sample_with("channel", json!("CRM")), &malformed("channel is not LCM"), REQUEST, "12345"),
        row(sample_with("topic", json!("Other")), &malformed("topic is not WebService"), REQUEST, "12345"),
        row(sample_with("subtopic", json!("GetCampaigns")), "Unsupported subtopic:GetCampaigns", REQUEST, "12345"),
        row(sample_with("data", json!([1])), &malformed("data is not a JSON object"), REQUEST, ""),
        row(sample_with("padding", json!("x".repeat(4096))), &malformed("body exceeds the size limit"), REQUEST, ""),
        row(json!([1, 2]), &malformed("body is not a JSON object"), REQUEST, ""),
    ];
    expect_errors(&mut requester, &rows).await;

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
        assert_eq!(reply.error_message(), malformed(reason));
        assert_eq!(reply.msg(), REQUEST);
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
