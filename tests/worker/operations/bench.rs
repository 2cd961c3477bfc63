//! `lcm-worker bench`: the load generator checks every reply, and says so
//! when replies do not come.

use deadpool_redis::redis::AsyncCommands;
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::Value;

use crate::support::*;

/// Runs `bench` with this test's configuration; exit code and the JSON report.
async fn run_bench(env: &TestEnv, args: &[&str]) -> (Option<i32>, Value) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .arg("bench")
        .args(args)
        .args(["--json", "--no-progress"])
        .envs(env.worker_env())
        .env_remove("LCM_CONFIG")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not the JSON report ({e}); stderr:\n{stderr}"));
    (output.status.code(), report)
}

/// The bench's keys still in Redis.
async fn bench_keys(env: &TestEnv) -> Vec<String> {
    let mut redis = env.redis.clone();
    let mut keys: Vec<String> = redis
        .keys(format!("{}:call:bench-*", env.names.key_prefix))
        .await
        .unwrap();
    let campaigns: Vec<String> = redis
        .keys(format!("{}:campaign:bench-*", env.names.key_prefix))
        .await
        .unwrap();
    keys.extend(campaigns);
    keys
}

#[tokio::test]
async fn bench_closed_and_open_loop_get_every_reply_right_and_remove_their_data() {
    let env = TestEnv::new("bench").await;
    let _worker = env.start_worker(&[]).await;

    let (code, report) = run_bench(
        &env,
        &[
            "--concurrency",
            "16",
            "--count",
            "2000",
            "--calls",
            "200",
            "--campaigns",
            "5",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["mode"], "closed");
    assert_eq!(report["concurrency"], 16);
    assert_eq!(report["sent"], 2000);
    assert_eq!(report["answered"], 2000);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["wrong"], 0);
    assert_eq!(report["duplicates"], 0);
    assert!(
        report["latency_us"]["p50"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(bench_keys(&env).await.is_empty());

    let (code, report) = run_bench(
        &env,
        &[
            "--rate",
            "500",
            "--duration",
            "2s",
            "--calls",
            "200",
            "--campaigns",
            "5",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["mode"], "open");
    assert_eq!(report["rate"], 500.0);
    let sent = report["sent"].as_u64().unwrap();
    assert!((900..=1100).contains(&sent), "{report}");
    assert_eq!(report["answered"], sent);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["wrong"], 0);
    assert!(bench_keys(&env).await.is_empty());
}

#[tokio::test]
async fn bench_without_a_worker_counts_every_request_lost_and_fails() {
    let env = TestEnv::new("bench-none").await;
    // No worker: declare the exchange and bind a queue so that the
    // requests route and sit unanswered. The harness deletes both. Durable,
    // as the worker declares it: RabbitMQ 4.3 refuses a transient queue
    // that is not exclusive.
    env.channel
        .exchange_declare(
            env.names.request_exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    env.channel
        .queue_declare(
            env.names.request_queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    env.channel
        .queue_bind(
            env.names.request_queue.as_str().into(),
            env.names.request_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let (code, report) = run_bench(&env, &["--count", "10", "--timeout", "1s"]).await;
    assert_ne!(code, Some(0), "{report}");
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["sent"], 10);
    assert_eq!(report["answered"], 0);
    assert_eq!(report["lost"], 10);
    assert_eq!(report["wrong"], 0);
    assert_eq!(env.ready_count(&env.names.request_queue).await, 10);
    assert!(bench_keys(&env).await.is_empty());
}

#[tokio::test]
async fn bench_without_the_request_exchange_fails_with_a_message_naming_it() {
    let env = TestEnv::new("bench-noexchange").await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .args(["bench", "--count", "1", "--no-progress"])
        .envs(env.worker_env())
        .env_remove("LCM_CONFIG")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("`{}`", env.names.request_exchange)),
        "{stderr}"
    );
    assert!(bench_keys(&env).await.is_empty());
}
