//! Trace context across the hop (docs/protocol.md section 11): spans
//! exported to a real OTLP/HTTP receiver, the reply's `traceparent`, the
//! log lines' ids, hostile values, and a collector that is gone or slow.

use std::collections::HashSet;
use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use serde_json::Value;
use tokio::time::Instant;

use crate::support::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// proto `Span.kind`: CLIENT, PRODUCER, CONSUMER.
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;
/// proto `Span.flags`: the parent's remoteness is known (0x100) and it is
/// remote (0x200).
const REMOTE_PARENT: u32 = 0x300;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// `traceparent` split into trace id, parent id and flags.
fn fields(traceparent: &str) -> (String, String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

/// Sends the sample request with `headers`; its correlation id.
async fn send_with(requester: &Requester, headers: &[(&str, AMQPValue)]) -> String {
    let mut table = FieldTable::default();
    for (key, value) in headers {
        table.insert((*key).into(), value.clone());
    }
    let correlation_id = new_correlation_id();
    let properties = BasicProperties::default()
        .with_reply_to(requester.reply_queue.as_str().into())
        .with_correlation_id(correlation_id.as_str().into())
        .with_headers(table);
    let body = sample_request(&requester.source).to_string();
    requester.publish(body.as_bytes(), properties).await;
    correlation_id
}

fn long(text: &str) -> AMQPValue {
    AMQPValue::LongString(text.into())
}

#[tokio::test]
async fn worker_spans_continue_the_requesters_trace_and_the_reply_carries_it_on() {
    let env = TestEnv::new("traces").await;
    env.seed_sample().await;
    let receiver = OtlpReceiver::start().await;
    let _worker = env.start_worker(&receiver.worker_env()).await;
    let mut requester = env.requester("desk").await;
    let traceparent = long(TRACEPARENT);
    let correlation_id = send_with(
        &requester,
        &[
            ("traceparent", traceparent),
            ("tracestate", long("vendor=1")),
        ],
    )
    .await;
    let reply = requester.reply_for(&correlation_id).await.expect("reply");
    assert_eq!(reply.body["subtopic"], "BusinessOutCome");

    // process, the call lookup, the outcome list, the reply's send.
    let spans = receiver.spans_of(&bytes(TRACE_ID), 4).await;
    let named = |prefix: &str| {
        spans
            .iter()
            .find(|s| s.span.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} span in {spans:#?}"))
    };
    let process = named("process ");
    let names = &env.names;
    assert_eq!(
        process.span.name,
        format!("process {}:desk", names.request_exchange)
    );
    assert_eq!(process.span.kind, CONSUMER);
    assert_eq!(hex(&process.span.parent_span_id), PARENT_ID);
    assert_eq!(process.service, "lcm-worker");
    #[rustfmt::skip]
    let expected = [
        ("messaging.system", "rabbitmq".to_owned()),
        ("messaging.operation.type", "process".to_owned()),
        ("messaging.destination.name", format!("{}:desk", names.request_exchange)),
        ("messaging.destination.subscription.name", names.request_queue.clone()),
        ("messaging.rabbitmq.destination.routing_key", "desk".to_owned()),
        ("messaging.message.conversation_id", correlation_id.clone()),
    ];
    for (key, value) in expected {
        assert_eq!(
            process.attribute(key).as_deref(),
            Some(value.as_str()),
            "{key}"
        );
    }
    // By the script's hash (src/redis/store.rs, `CallLookup`).
    let lookup = named("EVALSHA");
    assert_eq!(lookup.span.name, "EVALSHA");
    assert_eq!(
        lookup.attribute("db.operation.name").as_deref(),
        Some("EVALSHA")
    );
    assert_eq!(
        (lookup.span.kind, lookup.span.parent_span_id.clone()),
        (CLIENT, process.span.span_id.clone())
    );
    assert_eq!(lookup.attribute("db.system.name").as_deref(), Some("redis"));
    let send = named("send ");
    // The requester's server-named reply queue, by its template.
    assert!(requester.reply_queue.starts_with("amq.gen-"));
    assert_eq!(send.span.name, "send amq.default:amq.gen-*");
    let queue = format!("amq.default:{}", requester.reply_queue);
    assert_eq!(send.attribute("messaging.destination.name"), Some(queue));
    assert_eq!(
        send.attribute("messaging.destination.temporary").as_deref(),
        Some("true")
    );
    assert_eq!(
        (send.span.kind, send.span.parent_span_id.clone()),
        (PRODUCER, process.span.span_id.clone())
    );
    assert_eq!(
        send.attribute("messaging.message.conversation_id"),
        Some(correlation_id)
    );
    // Only the process span's parent is remote (the requester's); the
    // worker's own children have a parent in this process.
    let parent_is_remote = |span: &ReceivedSpan| span.span.flags & REMOTE_PARENT == REMOTE_PARENT;
    assert!(parent_is_remote(process), "{:#x}", process.span.flags);
    assert!(!parent_is_remote(lookup), "{:#x}", lookup.span.flags);
    assert!(!parent_is_remote(send), "{:#x}", send.span.flags);

    // The requester's trace goes on from the worker's send span.
    let (trace, parent, flags) = fields(reply.traceparent.as_deref().expect("reply traceparent"));
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE_ID, "01"));
    assert_eq!(parent, hex(&send.span.span_id));
    assert_eq!(reply.tracestate.as_deref(), Some("vendor=1"));
}

#[tokio::test]
async fn hostile_trace_context_starts_a_new_trace_and_never_fails_the_request() {
    let env = TestEnv::new("traces-hostile").await;
    env.seed_sample().await;
    let receiver = OtlpReceiver::start().await;
    let _worker = env.start_worker(&receiver.worker_env()).await;
    let mut requester = env.requester("desk").await;
    #[rustfmt::skip]
    let hostile: [AMQPValue; 7] = [
        long("garbage"),
        long("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        long("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        long(&format!("{TRACEPARENT}-{}", "0".repeat(100_000))),
        AMQPValue::LongString(LongString::from(b"00-\xff\xfe\xfd".to_vec())),
        AMQPValue::LongLongInt(42),
        AMQPValue::FieldTable(FieldTable::default()),
    ];
    for value in hostile {
        let correlation_id = send_with(&requester, &[("traceparent", value.clone())]).await;
        let reply = requester
            .reply_for(&correlation_id)
            .await
            .expect("answered");
        assert_eq!(reply.body["subtopic"], "BusinessOutCome", "{value:?}");
        // A new trace, recorded, which the reply carries on.
        let (trace, _, flags) = fields(reply.traceparent.as_deref().expect("a traceparent"));
        assert_ne!(trace, TRACE_ID, "{value:?}");
        assert_eq!(flags, "01");
        let process = receiver.span_named(&bytes(&trace), "process ").await;
        assert!(
            process.span.parent_span_id.is_empty(),
            "{value:?}: a root span"
        );
        assert_eq!(
            process.attribute("messaging.message.conversation_id"),
            Some(correlation_id)
        );
    }
    // A trace state over the W3C limits is dropped; the trace goes on.
    let members = (0..40)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",");
    let correlation_id = send_with(
        &requester,
        &[
            ("traceparent", long(TRACEPARENT)),
            ("tracestate", long(&members)),
        ],
    )
    .await;
    let reply = requester
        .reply_for(&correlation_id)
        .await
        .expect("answered");
    assert_eq!(fields(reply.traceparent.as_deref().unwrap()).0, TRACE_ID);
    assert_eq!(reply.tracestate, None);
}

#[tokio::test]
async fn with_export_off_the_trace_still_goes_on_and_every_delivery_line_carries_its_ids() {
    let env = TestEnv::new("traces-off").await;
    env.seed_sample().await;
    let worker = env.start_worker(&[("LCM__LOG__FORMAT", "json")]).await;
    let mut requester = env.requester("desk").await;
    let correlation_id = send_with(&requester, &[("traceparent", long(TRACEPARENT))]).await;
    let reply = requester.reply_for(&correlation_id).await.expect("reply");
    let (trace, parent, flags) = fields(reply.traceparent.as_deref().expect("reply traceparent"));
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE_ID, "01"));
    assert_ne!(parent, PARENT_ID, "the worker's own span id");
    // No context in, none out: export is off, nothing was recorded.
    let plain = requester.request(&sample_request("desk")).await;
    assert_eq!(plain.traceparent, None);

    eventually("both answered lines are logged", || async {
        worker.logs().matches("\"answered\"").count() >= 2
    })
    .await;
    let logs = worker.logs();
    let answered: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "answered")
        .collect();
    let traced = answered
        .iter()
        .find(|l| l["span"]["correlation_id"] == correlation_id.as_str())
        .unwrap();
    assert_eq!(traced["span"]["trace_id"], TRACE_ID);
    assert_eq!(traced["span"]["span_id"], parent.as_str());
    for line in &answered {
        let ids = (
            line["span"]["trace_id"].as_str(),
            line["span"]["span_id"].as_str(),
        );
        assert!(
            matches!(ids, (Some(t), Some(s)) if t.len() == 32 && s.len() == 16),
            "{line}"
        );
    }
}

#[tokio::test]
async fn text_log_lines_of_a_delivery_carry_its_trace_id() {
    let env = TestEnv::new("traces-text").await;
    let worker = env.start_worker(&[]).await;
    let requester = env.requester("desk").await;
    let mut headers = FieldTable::default();
    headers.insert("traceparent".into(), long(TRACEPARENT));
    // Not JSON: dead-lettered with a warning, inside the delivery's span.
    let properties = BasicProperties::default().with_headers(headers);
    requester.publish(b"not json", properties).await;
    env.dead_lettered().await.expect("dead-lettered");
    eventually("the dead-letter line is logged", || async {
        worker.logs().contains("request dead-lettered")
    })
    .await;
    let logs = worker.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("request dead-lettered"))
        .unwrap();
    assert!(line.contains(&format!("trace_id={TRACE_ID}")), "{line}");
    assert!(line.contains("span_id="), "{line}");
}

#[tokio::test]
async fn a_dead_or_stalled_collector_never_delays_a_reply_and_lost_spans_are_counted() {
    let env = TestEnv::new("traces-dead").await;
    env.seed_sample().await;
    let receiver = OtlpReceiver::start().await;
    // A collector that takes connections and never answers.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stalled_endpoint = format!("http://{}", stalled.local_addr().unwrap());
    let dead = env.start_worker(&receiver.worker_env()).await;
    let slow = env
        .start_worker(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &stalled_endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "16"),
        ])
        .await;
    receiver.stop();
    let mut requester = env.requester("desk").await;
    let started = Instant::now();
    let mut sent = HashSet::new();
    for _ in 0..300 {
        sent.insert(send_with(&requester, &[("traceparent", long(TRACEPARENT))]).await);
    }
    let within = Duration::from_secs(10);
    let replies = requester
        .replies_to_all(
            &sent,
            within,
            |r| assert_eq!(r.body["subtopic"], "BusinessOutCome"),
            || async { env.ready_count(&env.names.request_queue).await == 0 },
        )
        .await;
    assert_eq!(replies.answered(&sent), 300);
    assert!(started.elapsed() < within, "{:?}", started.elapsed());
    eventually("the dead collector's lost spans are counted", || async {
        dead.counter("lcm_spans_dropped_total", &["reason=\"export_failed\""])
            .await
            > 0.0
    })
    .await;
    eventually("the stalled collector's full queue is counted", || async {
        slow.counter("lcm_spans_dropped_total", &["reason=\"queue_full\""])
            .await
            > 0.0
    })
    .await;
    drop(stalled);
}

/// `lcm-worker ARGS` with this test's names and `vars`, to its end.
async fn run_with(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .args(args)
        .envs(env.worker_env())
        .envs(vars.iter().copied())
        .env("LCM__HTTP__ADDR", "127.0.0.1:0")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(WAIT, command)
        .await
        .expect("exits")
        .unwrap()
}

#[tokio::test]
async fn a_trace_setting_that_cannot_be_honoured_stops_start_up_and_check_names_it() {
    let env = TestEnv::new("traces-refused").await;
    let grpc = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ];
    for args in [&[][..], &["check", "--offline"], &["check"]] {
        let output = run_with(&env, args, &grpc).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("OTLP protocol grpc: only http/protobuf"),
            "{args:?}: {stderr}"
        );
    }
    let endpoint = [(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://user:s3cret@collector:4318",
    )];
    let output = run_with(&env, &["check", "--offline"], &endpoint).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("# traces: OTLP/HTTP to http://collector:4318/, queue of 2048 spans"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret"), "{stdout}");
    let output = run_with(&env, &["check", "--offline"], &[]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("# traces: export off (no OTEL_EXPORTER_OTLP_ENDPOINT)"),
        "{stdout}"
    );
}
