//! What operators rely on: /metrics, /readyz, JSON logs, `check`.

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn metrics_count_each_request_kind_and_result() {
    let env = TestEnv::new("metrics").await;
    env.seed_sample().await;
    let worker = env.start_worker(&[]).await;
    let mut requester = env.requester("desk").await;
    requester.request(&sample_request("desk")).await;
    requester.request(&sample_request("desk")).await;
    requester.request(&request_for("404", "1")).await;
    let mut parent = sample_request("desk");
    parent["subtopic"] = json!("GetBusinessOutcomeParent");
    requester.request(&parent).await;
    env.publish_raw("desk", b"not json", BasicProperties::default())
        .await;
    env.dead_lettered().await.expect("dead-lettered");

    // All five settled; the gauge drops just after.
    worker.wait_counter("lcm_requests_total", &[], 5.0).await;
    worker
        .wait_counter("lcm_deliveries_in_hand", &[], 0.0)
        .await;
    // Each request by kind and result; a call lookup for each of the four
    // that reach Redis, one round trip each, and one outcome-list lookup:
    // campaign 1's list is then reused from the cache.
    #[rustfmt::skip]
    let expected: [(&str, &[&str], f64); 7] = [
        ("lcm_requests_total", &["subtopic=\"GetBusinessOutcome\"", "result=\"ok\""], 2.0),
        ("lcm_requests_total", &["subtopic=\"GetBusinessOutcome\"", "result=\"invalid_callid\""], 1.0),
        ("lcm_requests_total", &["subtopic=\"GetBusinessOutcomeParent\"", "result=\"parent_empty\""], 1.0),
        ("lcm_requests_total", &["subtopic=\"unknown\"", "result=\"dead_lettered\""], 1.0),
        ("lcm_request_duration_seconds_count", &[], 5.0),
        ("lcm_redis_duration_seconds_count", &["operation=\"call\""], 4.0),
        ("lcm_redis_duration_seconds_count", &["operation=\"outcomes\""], 1.0),
    ];
    for (family, labels, value) in expected {
        assert_eq!(
            worker.counter(family, labels).await,
            value,
            "{family} {labels:?}"
        );
    }
    let (_, text) = worker.get("/metrics").await.unwrap();
    assert!(
        text.contains("# TYPE lcm_request_duration_seconds histogram"),
        "{text}"
    );
}

#[tokio::test]
async fn a_fresh_worker_exposes_every_family_with_help_before_any_request() {
    let env = TestEnv::new("metrics-fresh").await;
    let worker = env.start_worker(&[]).await;
    let (status, text) = worker.get("/metrics").await.expect("scraped");
    assert_eq!(status, 200);
    for family in [
        "lcm_requests_total",
        "lcm_request_duration_seconds",
        "lcm_redis_duration_seconds",
        "lcm_redis_errors_total",
        "lcm_replies_unroutable_total",
        "lcm_amqp_reconnects_total",
        "lcm_deliveries_in_hand",
        "lcm_empty_outcome_lists_total",
        "lcm_build_info",
    ] {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "HELP of {family}:\n{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "TYPE of {family}:\n{text}"
        );
    }
    for series in [
        "lcm_requests_total{subtopic=\"GetBusinessOutcome\",result=\"ok\"} 0",
        "lcm_requests_total{subtopic=\"GetBusinessOutcomeParent\",result=\"ok\"} 0",
        "lcm_redis_errors_total{operation=\"call\"} 0",
        "lcm_redis_errors_total{operation=\"outcomes\"} 0",
        "lcm_replies_unroutable_total 0",
        "lcm_amqp_reconnects_total 0",
        "lcm_deliveries_in_hand 0",
        "lcm_empty_outcome_lists_total 0",
        "lcm_request_duration_seconds_count{subtopic=\"GetBusinessOutcome\"} 0",
        "lcm_redis_duration_seconds_count{operation=\"call\"} 0",
    ] {
        assert!(text.lines().any(|line| line == series), "{series}:\n{text}");
    }
    let version = format!(
        "lcm_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.lines().any(|line| line == version), "{text}");
}

#[tokio::test]
async fn a_reply_refused_until_the_deadline_counts_as_dead_lettered_not_ok() {
    let env = TestEnv::new("refused").await;
    env.seed_sample().await;
    let worker = env
        .start_worker(&[("LCM__LIMITS__REQUEST_DEADLINE_MS", "500")])
        .await;
    // A reply queue that is always full and refuses what comes: RabbitMQ
    // answers every publish to it with a negative confirm. Exclusive, so it
    // goes with the test's connection (RabbitMQ 4.3 refuses a transient
    // queue that is not exclusive).
    let queue = format!("{}.full", env.names.request_queue);
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongInt(0));
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    env.channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            arguments,
        )
        .await
        .unwrap();
    env.publish_raw(
        "desk",
        sample_request("desk").to_string().as_bytes(),
        BasicProperties::default()
            .with_reply_to(queue.as_str().into())
            .with_correlation_id("refused".into()),
    )
    .await;
    let dead = env.dead_lettered().await.expect("dead-lettered");
    assert_eq!(
        serde_json::from_slice::<Value>(&dead).unwrap(),
        sample_request("desk")
    );
    worker
        .wait_counter("lcm_requests_total", &["result=\"dead_lettered\""], 1.0)
        .await;
    assert_eq!(
        worker
            .counter("lcm_requests_total", &["result=\"ok\""])
            .await,
        0.0
    );
    worker.wait_logged("reply refused by RabbitMQ").await;
    env.channel
        .queue_delete(queue.as_str().into(), Default::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn readyz_is_503_while_redis_is_stopped_and_200_once_it_is_back() {
    let env = TestEnv::new("readyz").await;
    let port = free_port();
    let redis = PrivateRedis::start(port).await;
    let worker = env
        .start_worker(&[("LCM__REDIS__URL", &format!("redis://127.0.0.1:{port}"))])
        .await;
    assert_eq!(worker.get("/healthz").await.map(|r| r.0), Some(200));

    redis.stop().await;
    eventually("not ready", || async {
        matches!(worker.get("/readyz").await, Some((503, reason)) if reason.contains("Redis not answering"))
    })
    .await;
    assert_eq!(
        worker.get("/healthz").await.map(|r| r.0),
        Some(200),
        "alive all the same"
    );

    let _redis = PrivateRedis::start(port).await;
    eventually("ready again", || async {
        worker.get("/readyz").await.map(|r| r.0) == Some(200)
    })
    .await;
}

#[tokio::test]
async fn json_log_lines_parse_and_carry_the_correlation_id() {
    let env = TestEnv::new("jsonlogs").await;
    env.seed_sample().await;
    let worker = env.start_worker(&[("LCM__LOG__FORMAT", "json")]).await;
    let mut requester = env.requester("agent-desktop-eu").await;
    let correlation_id = requester.send(&sample_request("agent-desktop-eu")).await;
    requester.reply_for(&correlation_id).await.expect("reply");
    eventually("the answered line is logged", || async {
        worker.logs().contains("answered")
    })
    .await;
    let logs = worker.logs();
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let answered = lines
        .iter()
        .find(|line| line["message"] == "answered")
        .unwrap_or_else(|| panic!("no answered line in {logs}"));
    assert_eq!(answered["span"]["correlation_id"], correlation_id.as_str());
    assert_eq!(answered["span"]["callid"], "12345");
    assert_eq!(answered["span"]["source"], "agent-desktop-eu");
    assert!(!logs.contains("guest:guest"), "password logged");
}

#[tokio::test]
async fn at_level_warn_text_lines_of_a_delivery_still_name_its_correlation_id_callid_and_source() {
    let env = TestEnv::new("textlogs").await;
    env.seed_call("no-list", &[("campaign_id", "9")]).await;
    // Warnings and errors only (and the line naming the HTTP address, which
    // the harness reads): the delivery's fields must not go with the
    // lines below them.
    let worker = env
        .start_worker(&[("RUST_LOG", "warn,lcm_worker::worker=info")])
        .await;
    let mut requester = env.requester("desk").await;
    // A campaign without a stored list: answered [] with a warning,
    // logged while the request is decided.
    let mut body = request_for("no-list", "1");
    body["source"] = json!("desk");
    let correlation_id = requester.send(&body).await;
    let reply = requester.reply_for(&correlation_id).await.expect("reply");
    assert_eq!(reply.body["message"]["response"], json!([]));
    let warned = "campaign has no stored outcome list";
    let logs = worker.wait_logged_times(warned, 1).await;
    let line = logs.lines().find(|l| l.contains(warned)).unwrap();
    for field in [
        format!("correlation_id=\"{correlation_id}\""),
        "callid=\"no-list\"".to_owned(),
        "source=\"desk\"".to_owned(),
        "redelivered=false".to_owned(),
    ] {
        assert!(line.contains(&field), "{field} not in {line}");
    }
}

async fn check(env: &TestEnv, extra: &[(&str, &str)]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .arg("check")
        .envs(env.worker_env())
        .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn check_reports_what_it_found() {
    let env = TestEnv::new("check-ok").await;
    let output = check(&env, &[]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("queue `{}` (classic", env.names.request_queue)),
        "{stdout}"
    );
    assert!(stdout.contains("redis: PING answered"), "{stdout}");
    assert!(!stdout.contains("guest:guest"), "{stdout}");
}

#[tokio::test]
async fn check_names_the_broker_when_the_amqp_url_points_nowhere() {
    let env = TestEnv::new("check-fail").await;
    let output = check(
        &env,
        &[("LCM__AMQP__URL", "amqp://guest:s3cret@127.0.0.1:1/%2f")],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("RabbitMQ at amqp://guest:***@127.0.0.1:1/%2f"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[tokio::test]
async fn replicas_name_their_connections_apart_by_app_id_host_and_pid() {
    let env = TestEnv::new("connection-names").await;
    let app_id = format!("{}-app", env.names.id);
    let settings = [("LCM__AMQP__APP_ID", app_id.as_str())];
    let first = env.start_worker(&settings).await;
    let second = env.start_worker(&settings).await;
    let host = gethostname_for_test();
    let expected: Vec<String> = {
        let mut names: Vec<String> = [&first, &second]
            .iter()
            .map(|w| format!("{app_id}@{host} pid {}", w.child.id().unwrap()))
            .collect();
        names.sort();
        names
    };
    let names = eventually_some("both replicas' connections are listed", || async {
        let names = connection_names(&format!("{app_id}@")).await;
        (names.len() == 2).then_some(names)
    })
    .await;
    assert_eq!(names, expected);
}

/// The host name as the kernel gives it, which is what the worker reads.
fn gethostname_for_test() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the host name")
        .trim()
        .to_owned()
}
