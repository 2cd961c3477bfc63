//! A log sink that goes away: the reader of the worker's standard error is
//! gone (a log shipper restarts; `lcm-worker 2>&1 | head -1`). Logging is
//! best-effort: lines are lost, requests never, and `/readyz` says 200 only
//! while the worker answers.

use std::collections::HashSet;

use lapin::BasicProperties;

use crate::support::proxy::{Mode, Proxy};
use crate::support::*;

/// Answered requests per round.
const ANSWERED: usize = 20;
/// Requests per round whose handling logs a warning, besides the debug
/// line that every request logs: the reply is returned unroutable (and
/// the request acknowledged), or nobody can be answered (dead-lettered).
const WARNED: usize = 3;

/// Sends a round of requests, [`ANSWERED`] to be answered and `2 *`
/// [`WARNED`] that log a warning, and checks each comes out as it should:
/// every reply arrives, the broker holds nothing unacknowledged, and the
/// worker is still running and ready.
async fn a_round_is_answered_and_settled(
    env: &TestEnv,
    worker: &mut Worker,
    requester: &mut Requester,
    dead_lettered_before: usize,
) {
    let mut sent = HashSet::new();
    for i in 0..ANSWERED {
        sent.insert(requester.send(&sample_request("desk")).await);
        if i < WARNED {
            let unroutable = BasicProperties::default()
                .with_reply_to("nobody-listens-here".into())
                .with_correlation_id(format!("unroutable-{i}").into());
            env.publish_raw(
                "desk",
                sample_request("").to_string().as_bytes(),
                unroutable,
            )
            .await;
            // No reply_to, no source, no app_id: dead-lettered with a warning.
            env.publish_raw(
                "desk",
                sample_request("").to_string().as_bytes(),
                BasicProperties::default(),
            )
            .await;
        }
    }
    let mut replies = ReplyTally::default();
    while replies.distinct() < ANSWERED {
        let reply = requester.next_reply().await.unwrap_or_else(|| {
            panic!(
                "{} of {ANSWERED} answered; worker running: {}",
                replies.answered(&sent),
                worker.running()
            )
        });
        assert_eq!(
            reply.body["subtopic"], "BusinessOutCome",
            "{:?}",
            reply.body
        );
        replies.record(&reply);
    }
    assert_eq!(replies.answered(&sent), ANSWERED);
    for _ in 0..WARNED {
        assert!(env.dead_lettered().await.is_some(), "dead-lettered");
    }
    let settled = (dead_lettered_before + WARNED) as f64;
    worker
        .wait_counter("lcm_requests_total", &["result=\"dead_lettered\""], settled)
        .await;
    eventually("nothing left unacknowledged", || async {
        unacknowledged(&env.names.request_queue).await == 0
    })
    .await;
    assert_eq!(env.ready_count(&env.names.request_queue).await, 0);
    assert!(worker.running(), "the worker exited");
    assert_eq!(worker.get("/readyz").await.map(|(s, _)| s), Some(200));
}

#[tokio::test]
async fn a_worker_whose_log_pipe_is_closed_from_the_start_serves_and_settles_every_request() {
    let env = TestEnv::new("log-pipe-start").await;
    env.seed_sample().await;
    let mut worker = env.spawn_worker_with_closed_log_pipe(&[]);
    worker.wait_ready().await;
    let mut requester = env.requester("desk").await;
    a_round_is_answered_and_settled(&env, &mut worker, &mut requester, 0).await;
}

#[tokio::test]
async fn a_log_pipe_closing_mid_run_loses_lines_not_requests_across_a_reconnection() {
    let env = TestEnv::new("log-pipe-mid").await;
    env.seed_sample().await;
    let broker = Proxy::start(&amqp_address(), Mode::Forward).await;
    let url = broker.amqp_url();
    let mut worker = env.start_worker(&[("LCM__AMQP__URL", &url)]).await;
    let mut requester = env.requester("desk").await;
    a_round_is_answered_and_settled(&env, &mut worker, &mut requester, 0).await;

    worker.close_log_pipe().await;
    a_round_is_answered_and_settled(&env, &mut worker, &mut requester, WARNED).await;

    // The connection drops: the worker reconnects, logging as it goes
    // (lapin's I/O thread included), into the closed pipe.
    let reconnects = worker.counter("lcm_amqp_reconnects_total", &[]).await;
    broker.cut();
    eventually("reconnected", || async {
        worker.counter("lcm_amqp_reconnects_total", &[]).await > reconnects
    })
    .await;
    worker.wait_ready().await;
    a_round_is_answered_and_settled(&env, &mut worker, &mut requester, 2 * WARNED).await;
}
