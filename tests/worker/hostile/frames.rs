//! Bytes a publisher controls beyond the body: properties that are not
//! UTF-8 and header tables nested thousands deep. Unpatched, lapin's frame
//! parser dropped the connection on the first (a reconnect loop over the
//! redelivered message, on every replica) and overflowed its thread's
//! stack on the second (a crash loop). See patches/amq-protocol-types.

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use serde_json::json;

use crate::support::*;

/// A sample request for `callid` (stored like the sample call), so that the
/// dead-lettered poison can be told apart.
fn poison_body(callid: &str) -> Vec<u8> {
    json!({
        "channel": "LCM", "topic": "WebService", "subtopic": "GetBusinessOutcome",
        "source": "poison",
        "data": {"callid": callid, "AccountNumber": "5|3|1|0|0|44|1"}
    })
    .to_string()
    .into_bytes()
}

/// 20 sample requests, each answered within 10 s of sending.
async fn twenty_requests_are_answered(requester: &mut Requester) {
    requester
        .sample_answered_within(20, Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn a_property_or_header_key_that_is_not_utf8_is_dead_lettered_and_the_rest_served() {
    let env = TestEnv::new("not-utf8").await;
    env.seed_sample().await;
    let worker = env.start_worker(&[]).await;
    let mut requester = env.requester("desk").await;
    // The placeholders are swapped on the wire for the bytes of the report.
    // The bytes of the report take the place of the placeholder's first ones.
    let cases: [(&str, &[u8], &[u8]); 3] = [
        ("correlation_id", b"PLACE-CORRELATION", b"\xff\xfe-bad"),
        ("reply_to", b"PLACE-REPLY-TO-QUEUE", b"q\xff"),
        ("header key", b"PLACE-HEADER-KEY", b"\xc3\x28"),
    ];
    let swaps = cases
        .iter()
        .map(|(_, placeholder, bad)| {
            let mut poison = placeholder.to_vec();
            poison[..bad.len()].copy_from_slice(bad);
            Swap {
                placeholder: placeholder.to_vec(),
                poison,
            }
        })
        .collect();
    let poisoner = PoisonPublisher::connect(swaps).await;
    for (i, (case, placeholder, _)) in cases.iter().enumerate() {
        let placeholder = std::str::from_utf8(placeholder).unwrap();
        let mut properties = BasicProperties::default()
            .with_reply_to(requester.reply_queue.as_str().into())
            .with_correlation_id(format!("poison-{i}").into());
        match *case {
            "correlation_id" => properties = properties.with_correlation_id(placeholder.into()),
            "reply_to" => properties = properties.with_reply_to(placeholder.into()),
            _ => {
                let mut headers = FieldTable::default();
                headers.insert(placeholder.into(), AMQPValue::LongString("x".into()));
                properties = properties.with_headers(headers);
            }
        }
        let callid = format!("poison-{i}");
        poisoner
            .publish(
                &env.names.request_exchange,
                "poison",
                &poison_body(&callid),
                properties,
            )
            .await;
        assert_eq!(poisoner.swapped(), i + 1, "the {case} poison went out");

        twenty_requests_are_answered(&mut requester).await;
        let dead = env
            .dead_lettered()
            .await
            .expect("the poison is dead-lettered");
        let dead: serde_json::Value = serde_json::from_slice(&dead).unwrap();
        assert_eq!(dead["data"]["callid"], callid.as_str(), "{case}");
    }
    let logs = worker.wait_logged_times("a property is not UTF-8", 3).await;
    assert_eq!(logs.matches("a property is not UTF-8").count(), 3, "{logs}");
    assert!(!logs.contains("connection lost"), "no reconnect: {logs}");
    worker
        .wait_counter("lcm_requests_total", &["result=\"dead_lettered\""], 3.0)
        .await;
    assert_eq!(worker.counter("lcm_amqp_reconnects_total", &[]).await, 0.0);
}

#[tokio::test]
async fn a_u_fffd_sent_as_such_in_a_correlation_id_or_header_key_is_answered() {
    let env = TestEnv::new("real-fffd").await;
    env.seed_sample().await;
    let worker = env.start_worker(&[]).await;
    let mut requester = env.requester("desk").await;
    let body = sample_request("desk").to_string();
    // Valid UTF-8: the character U+FFFD itself, not bytes the parser replaced.
    let in_correlation_id = "real-\u{FFFD}-correlation";
    requester
        .publish(
            body.as_bytes(),
            BasicProperties::default()
                .with_reply_to(requester.reply_queue.as_str().into())
                .with_correlation_id(in_correlation_id.into()),
        )
        .await;
    let mut headers = FieldTable::default();
    headers.insert("key-\u{FFFD}".into(), AMQPValue::LongString("x".into()));
    requester
        .publish(
            body.as_bytes(),
            BasicProperties::default()
                .with_reply_to(requester.reply_queue.as_str().into())
                .with_correlation_id("real-fffd-header".into())
                .with_headers(headers),
        )
        .await;
    for correlation_id in [in_correlation_id, "real-fffd-header"] {
        let reply = requester
            .reply_for(correlation_id)
            .await
            .unwrap_or_else(|| panic!("{correlation_id} answered; logs:\n{}", worker.logs()));
        assert_eq!(reply.body["subtopic"], "BusinessOutCome");
    }
    worker
        .wait_counter("lcm_requests_total", &["result=\"ok\""], 2.0)
        .await;
    assert_eq!(
        worker
            .counter("lcm_requests_total", &["result=\"dead_lettered\""])
            .await,
        0.0
    );
}

#[tokio::test]
async fn headers_nested_three_thousand_deep_neither_crash_nor_stop_the_worker() {
    let env = TestEnv::new("nested").await;
    env.seed_sample().await;
    let worker = env.start_worker(&[]).await;
    let mut requester = env.requester("desk").await;
    // A long-string header of exactly the size of the nested table, the
    // incident's 3,000 levels (about 21 KB), swapped for it on the wire.
    const SIZE: usize = 21_100;
    let marker: Vec<u8> = b"PLACE-NESTED-HEADER-"
        .iter()
        .copied()
        .cycle()
        .take(SIZE)
        .collect();
    let mut placeholder = vec![b'S'];
    placeholder.extend_from_slice(&(SIZE as u32).to_be_bytes());
    placeholder.extend_from_slice(&marker);
    let mut poison = vec![b'F'];
    poison.extend_from_slice(&(SIZE as u32).to_be_bytes());
    poison.extend_from_slice(&nested_table(3000, SIZE));
    let poisoner = PoisonPublisher::connect(vec![Swap {
        placeholder,
        poison,
    }])
    .await;
    let mut headers = FieldTable::default();
    headers.insert("nest".into(), AMQPValue::LongString(marker.into()));
    let properties = BasicProperties::default()
        .with_reply_to(requester.reply_queue.as_str().into())
        .with_correlation_id("nested".into())
        .with_headers(headers);
    poisoner
        .publish(
            &env.names.request_exchange,
            "poison",
            &poison_body("12345"),
            properties,
        )
        .await;
    assert_eq!(poisoner.swapped(), 1, "the nested poison went out");

    // Its headers are cut at 64 levels; the request itself is a good one.
    let reply = requester.reply_for("nested").await.expect("answered");
    assert_eq!(reply.body["subtopic"], "BusinessOutCome");
    twenty_requests_are_answered(&mut requester).await;
    assert_eq!(worker.counter("lcm_amqp_reconnects_total", &[]).await, 0.0);
    assert!(worker.get("/healthz").await.is_some(), "still up");
}
