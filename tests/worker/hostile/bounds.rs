//! Bounded per message and per connection: the log of a returned reply,
//! and the HTTP endpoints' idle and slow connections.

use std::time::Duration;

use lapin::BasicProperties;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::*;

#[tokio::test]
async fn a_returned_one_megabyte_reply_adds_a_bounded_line_without_outcome_text() {
    let env = TestEnv::new("returned-log").await;
    // A campaign whose reply is over 1 MB, with text to look for.
    let outcomes: Vec<serde_json::Value> = (0..4000)
        .map(|i| {
            serde_json::json!({
                "OutComeID": i.to_string(),
                "Description": format!("CONFIDENTIAL-OUTCOME-TEXT {i} {}", "x".repeat(200)),
            })
        })
        .collect();
    let list = serde_json::Value::Array(outcomes).to_string();
    assert!(list.len() > 1_000_000);
    env.seed_call("big", &[("campaign_id", "big")]).await;
    env.seed_outcomes("big", &list).await;
    let worker = env
        .start_worker(&[("LCM__LIMITS__MAX_OUTCOME_LIST_BYTES", "4194304")])
        .await;
    let before = worker.logs().len();
    // reply_to names a queue that does not exist: RabbitMQ returns it.
    env.publish_raw(
        "desk",
        request_for("big", "1").to_string().as_bytes(),
        BasicProperties::default()
            .with_reply_to("nobody-listens-here".into())
            .with_correlation_id("returned".into()),
    )
    .await;
    worker
        .wait_counter("lcm_replies_unroutable_total", &[], 1.0)
        .await;
    worker
        .wait_counter("lcm_requests_total", &["result=\"ok\""], 1.0)
        .await;
    worker.wait_logged("reply returned unroutable").await;
    let logs = worker.logs();
    let added = &logs[before..];
    assert!(added.len() < 16 * 1024, "{} bytes logged", added.len());
    assert!(!added.contains("CONFIDENTIAL"), "{added}");
    assert!(added.contains("reply returned unroutable"), "{added}");
}

#[tokio::test]
async fn an_outcome_list_over_the_limit_is_answered_corrupt_and_never_read_whole() {
    let env = TestEnv::new("list-limit").await;
    let item = r#"{"OutComeID":"1","Description":"x"}"#;
    let stored = format!("[{}]", vec![item; 100].join(","));
    env.seed_call("c", &[("campaign_id", "9")]).await;
    env.seed_outcomes("9", &stored).await;
    env.seed_call("small", &[("campaign_id", "10")]).await;
    env.seed_outcomes("10", &format!("[{item}]")).await;
    let worker = env
        .start_worker(&[("LCM__LIMITS__MAX_OUTCOME_LIST_BYTES", "1000")])
        .await;
    let mut requester = env.requester("desk").await;
    let reply = requester.request(&request_for("c", "1")).await;
    assert_eq!(
        reply.error_message(),
        "Corrupt business outcome data for Campaign ID:9"
    );
    // A list within the limit is served as ever.
    let reply = requester.request(&request_for("small", "1")).await;
    assert_eq!(reply.body["subtopic"], "BusinessOutCome");
    worker
        .wait_logged("over limits.max_outcome_list_bytes")
        .await;
}

/// Whether the server closed `stream` (end of file or reset).
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

#[tokio::test]
async fn idle_and_slow_http_connections_are_closed() {
    let env = TestEnv::new("http-idle").await;
    let worker = env.start_worker(&[]).await;
    let addr = worker
        .base
        .get()
        .expect("address known once ready")
        .trim_start_matches("http://")
        .to_owned();
    let started = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Meanwhile the endpoints answer.
    assert_eq!(worker.get("/healthz").await.map(|(s, _)| s), Some(200));
    // The slow one keeps sending a header byte a second, never finishing.
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "slow connection still open");
        if slow.write_all(b"X").await.is_err() || closed_by_server(&mut slow).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    for stream in &mut idle {
        let deadline = Instant::now() + WAIT;
        while !closed_by_server(stream).await {
            assert!(Instant::now() < deadline, "idle connection still open");
        }
    }
    let took = started.elapsed();
    println!("idle and slow HTTP connections closed after {took:?}");
    assert!(
        took >= Duration::from_secs(4),
        "closed by the header time-out"
    );
}
