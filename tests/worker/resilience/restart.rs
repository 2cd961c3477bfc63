//! A real broker restart. Consumers and publisher confirms have hung after
//! broker restarts in past lapin releases (amqp-rs/lapin issues 244-246,
//! 389, 420, 450), and lapin's own recovery does not re-apply `basic.qos`.
//! The shared RabbitMQ serves the other tests, so this test starts a
//! RabbitMQ node of its own from the local installation, on free ports and
//! with its own data directory, and restarts that node's broker
//! application (`rabbitmqctl stop_app` / `start_app`: every connection is
//! closed by the broker, the listener goes away, and comes back).

use crate::support::*;

/// `lcm-worker request` for the sample call, through `broker`.
async fn sample_request(env: &TestEnv, broker: &PrivateBroker) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .args([
            "request",
            "--callid",
            "12345",
            "--account",
            "5|3|1|0|0|44|1",
        ])
        .args(["--timeout", "10s"])
        .envs(env.worker_env())
        .env("LCM__AMQP__URL", broker.url())
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn after_a_real_broker_restart_the_worker_consumes_again_with_the_same_prefetch() {
    let broker = PrivateBroker::start("lcmrestart").await;
    let env = TestEnv::new("restart").await;
    env.seed_sample().await;
    let url = broker.url();
    let worker = env
        .start_worker(&[("LCM__AMQP__URL", &url), ("LCM__AMQP__PREFETCH", "7")])
        .await;
    let queue = env.names.request_queue.clone();
    assert_sample_cli_reply(&sample_request(&env, &broker).await);
    assert_eq!(broker.prefetches(&queue).await, [7]);

    broker.ctl(&["stop_app"]).await;
    assert!(!broker.listening().await, "the listener is gone");
    eventually("the worker notices and is not ready", || async {
        worker
            .get("/readyz")
            .await
            .is_some_and(|(status, body)| status == 503 && body.contains("not consuming"))
    })
    .await;

    broker.ctl(&["start_app"]).await;
    eventually("one consumer again, with the same prefetch", || async {
        broker.prefetches(&queue).await == [7]
    })
    .await;
    worker.wait_ready().await;
    assert_sample_cli_reply(&sample_request(&env, &broker).await);
    // Publisher confirms work on the new channel: the reply above was
    // published with one, and the request acknowledged after it.
    worker
        .wait_counter("lcm_requests_total", &["result=\"ok\""], 2.0)
        .await;
    assert!(worker.counter("lcm_amqp_reconnects_total", &[]).await >= 1.0);
    worker.wait_logged("AMQP connection lost").await;
}
