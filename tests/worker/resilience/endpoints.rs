//! Several broker endpoints: the worker fails over to another when the one
//! it uses goes away, re-declares its topology there, and loses nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::support::proxy::{Mode, Proxy};
use crate::support::*;

#[tokio::test]
async fn the_worker_fails_over_to_the_second_endpoint_mid_load_and_loses_nothing() {
    const SENT: usize = 1000;
    const INTERVAL: Duration = Duration::from_millis(2); // 500 requests/s
    let env = TestEnv::new("endpoints").await;
    env.seed_sample().await;
    let a = Arc::new(Proxy::start(&amqp_address(), Mode::Forward).await);
    let b = Arc::new(Proxy::start(&amqp_address(), Mode::Forward).await);
    let urls = format!("{},{}", a.amqp_url(), b.amqp_url());
    let worker = env.start_worker(&[("LCM__AMQP__URLS", &urls)]).await;

    // The start is shuffled: whichever endpoint the worker chose is cut.
    eventually("the worker connected through one proxy", || async {
        a.connections() + b.connections() == 1
    })
    .await;
    let (used, other) = if a.connections() == 1 {
        ("A", "B")
    } else {
        ("B", "A")
    };
    let (first, second) = if used == "A" {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    };
    let mut requester = env.requester("desk").await;

    let fault = {
        let first = first.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            first.set_mode(Mode::Refuse);
            first.cut();
        })
    };
    let started = Instant::now();
    let mut sent = HashSet::with_capacity(SENT);
    for i in 0..SENT {
        sent.insert(requester.send(&sample_request("desk")).await);
        tokio::time::sleep_until(started + INTERVAL * (i as u32 + 1)).await;
    }
    fault.await.unwrap();

    let mut replies = ReplyTally::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while replies.distinct() < SENT && Instant::now() < deadline {
        let Some(reply) = requester.next_reply().await else {
            break;
        };
        assert_eq!(
            reply.body["subtopic"], "BusinessOutCome",
            "{:?}",
            reply.body
        );
        replies.record(&reply);
    }
    eventually("request queue drained and nothing in hand", || async {
        env.ready_count(&env.names.request_queue).await == 0
            && worker.counter("lcm_deliveries_in_hand", &[]).await == 0.0
    })
    .await;
    while let Some(reply) = requester.try_next_reply() {
        replies.record(&reply);
    }

    let answered = replies.answered(&sent);
    let duplicated = replies.duplicated();
    let unknown = replies.unknown(&sent).len();
    let lost = SENT - answered;
    let reconnects = worker.counter("lcm_amqp_reconnects_total", &[]).await;
    let ready = worker.get("/readyz").await.map(|r| r.0);
    println!(
        "endpoint fail-over: first endpoint {used}, sent {SENT}, answered {answered}, \
         duplicated {duplicated}, lost {lost}, AMQP reconnects {reconnects}, \
         connections now: {used} {}, {other} {}, /readyz {ready:?}",
        first.connections(),
        second.connections()
    );
    assert_eq!(lost, 0, "lost requests");
    assert_eq!(unknown, 0, "replies with unknown correlation ids");
    assert_eq!(
        first.connections(),
        0,
        "the cut endpoint still carries a connection"
    );
    assert_eq!(
        second.connections(),
        1,
        "the worker is not connected through {other}"
    );
    assert_eq!(ready, Some(200));
    assert!(
        worker.logs().contains(&second.host_port()),
        "the attempts' URLs are logged"
    );
    assert!(
        !worker.logs().contains("guest:guest@"),
        "a password was logged"
    );
}
