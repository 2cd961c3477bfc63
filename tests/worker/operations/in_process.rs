//! The worker as a library: `worker::run` with a listener the caller bound
//! and a shutdown token the caller cancels, in this test's own process.

use std::collections::HashMap;

use lcm_worker::settings::{SecretUrl, Settings};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::*;

#[tokio::test]
async fn the_worker_runs_in_process_answers_and_stops_when_its_token_is_cancelled() {
    let env = TestEnv::new("in-process").await;
    env.seed_sample().await;
    let variables: HashMap<String, String> = env.worker_env().into_iter().collect();
    let settings = Settings::load_from(None, Some(variables)).expect("test settings");
    // Port 0, bound here: the test knows the address before the worker runs.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(lcm_worker::worker::run(
        settings,
        listener,
        shutdown.clone(),
    ));

    let readyz = format!("{base}/readyz");
    eventually("the in-process worker is ready", || async {
        reqwest::get(&readyz)
            .await
            .is_ok_and(|response| response.status() == 200)
    })
    .await;
    let mut requester = env.requester("in-process").await;
    requester.sample_is_answered().await;

    shutdown.cancel();
    let stopped = tokio::time::timeout(WAIT, running)
        .await
        .expect("the worker stops within the wait after its token is cancelled")
        .expect("the worker task does not panic");
    stopped.expect("a clean stop is Ok");
    assert!(
        reqwest::get(&readyz).await.is_err(),
        "the HTTP endpoints stop with the worker"
    );
}

#[tokio::test]
async fn a_bad_amqp_url_stops_the_in_process_worker_at_start_up_instead_of_retrying() {
    let env = TestEnv::new("in-process-bad-url").await;
    let mut variables: HashMap<String, String> = env.worker_env().into_iter().collect();
    // A URL lapin's parser refuses (no `//`), password and all.
    let bad = "amqp:guest:s3cret@127.0.0.1:5672";
    variables.insert("LCM__AMQP__URL".into(), bad.into());
    let error = Settings::load_from(None, Some(variables.clone()))
        .expect_err("loading refuses a URL the AMQP client cannot parse")
        .to_string();
    assert!(error.contains("amqp.url"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");

    // Settings changed in code after loading reach the worker unchecked by
    // loading; the worker checks them again before it connects.
    variables.remove("LCM__AMQP__URL");
    let mut settings = Settings::load_from(None, Some(variables)).expect("test settings");
    settings.amqp.urls = vec![SecretUrl::new(bad)];
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = lcm_worker::worker::run(settings, listener, CancellationToken::new());
    let error = tokio::time::timeout(WAIT, running)
        .await
        .expect("the worker returns at once rather than reconnecting forever")
        .expect_err("a bad URL is a start-up error")
        .to_string();
    assert!(error.contains("amqp.urls"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
}
