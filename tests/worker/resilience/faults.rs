//! docs/protocol.md section 7, proven by breaking things on purpose: cut AMQP
//! connections, black-hole Redis, stop the worker under load.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::support::proxy::{Mode, Proxy};
use crate::support::*;

/// The rows of a `rabbitmqctl list_*` listing, split at the first tab.
async fn rabbitmqctl_rows(args: &[&str]) -> Vec<(String, String)> {
    rabbitmqctl_output(args)
        .await
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

/// The prefetch of each consumer on `queue`, as RabbitMQ reports it.
async fn consumer_prefetches(queue: &str) -> Vec<u32> {
    rabbitmqctl_rows(&["list_consumers", "queue_name", "prefetch_count"])
        .await
        .into_iter()
        .filter(|(name, _)| name == queue)
        .filter_map(|(_, prefetch)| prefetch.trim().parse().ok())
        .collect()
}

#[tokio::test]
async fn steady_load_survives_two_amqp_cuts_and_a_redis_black_hole() {
    const SENT: usize = 5000;
    const RATE_PER_MS: usize = 1; // 1,000 requests/s for 5 s
    let env = TestEnv::new("faults").await;
    env.seed_sample().await;
    let amqp = Arc::new(Proxy::start(&amqp_address(), Mode::Forward).await);
    let redis = Arc::new(Proxy::start(&redis_address(), Mode::Forward).await);
    let worker = env
        .start_worker(&[
            ("LCM__AMQP__URL", &amqp.amqp_url()),
            ("LCM__REDIS__URL", &redis.redis_url()),
        ])
        .await;
    let mut requester = env.requester("desk").await;

    let faults = {
        let (amqp, redis) = (amqp.clone(), redis.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            tokio::time::sleep_until(start + Duration::from_millis(1000)).await;
            amqp.cut();
            tokio::time::sleep_until(start + Duration::from_millis(2500)).await;
            amqp.cut();
            tokio::time::sleep_until(start + Duration::from_millis(3500)).await;
            redis.set_mode(Mode::BlackHole);
            tokio::time::sleep_until(start + Duration::from_millis(4500)).await;
            redis.set_mode(Mode::Forward);
        })
    };
    let started = Instant::now();
    let mut sent = HashSet::with_capacity(SENT);
    for i in 0..SENT {
        sent.insert(requester.send(&sample_request("desk")).await);
        let due = started + Duration::from_millis((i / RATE_PER_MS) as u64);
        tokio::time::sleep_until(due).await;
    }
    faults.await.unwrap();

    // Collect until every request has a reply, then until nothing is in
    // flight anywhere, so that late duplicates are counted too.
    let mut replies = ReplyTally::default();
    let mut kinds: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while replies.distinct() < SENT && Instant::now() < deadline {
        let Some(reply) = requester.next_reply().await else {
            break;
        };
        let kind = match reply.body["subtopic"].as_str() {
            Some("WS_Error") => reply.error_message().to_owned(),
            other => other.unwrap_or("?").to_owned(),
        };
        *kinds.entry(kind).or_default() += 1;
        replies.record(&reply);
    }
    eventually("request queue drained and nothing in hand", || async {
        env.ready_count(&env.names.request_queue).await == 0
            && worker.counter("lcm_deliveries_in_hand", &[]).await == 0.0
    })
    .await;
    eventually("reply queue drained", || async {
        requester.queued_replies().await == 0
    })
    .await;
    while let Some(reply) = requester.try_next_reply() {
        replies.record(&reply);
    }

    let answered = replies.answered(&sent);
    let duplicated = replies.duplicated();
    let unknown = replies.unknown(&sent);
    let lost = SENT - answered;
    let reconnects = worker.counter("lcm_amqp_reconnects_total", &[]).await;
    println!(
        "fault injection: sent {SENT}, answered {answered}, duplicated {duplicated}, lost {lost}, \
         AMQP reconnects {reconnects}, replies by kind {kinds:?}"
    );
    assert_eq!(lost, 0, "lost requests");
    assert!(
        unknown.is_empty(),
        "replies with unknown correlation ids: {unknown:?}"
    );
    assert!(
        reconnects >= 2.0,
        "the worker reconnected {reconnects} times"
    );
}

#[tokio::test]
async fn the_prefetch_is_the_same_after_a_reconnect() {
    let env = TestEnv::new("prefetch").await;
    env.seed_sample().await;
    let amqp = Proxy::start(&amqp_address(), Mode::Forward).await;
    let worker = env
        .start_worker(&[
            ("LCM__AMQP__URL", &amqp.amqp_url()),
            ("LCM__AMQP__PREFETCH", "7"),
        ])
        .await;
    assert_eq!(consumer_prefetches(&env.names.request_queue).await, [7]);
    amqp.cut();
    eventually("reconnected", || async {
        worker.counter("lcm_amqp_reconnects_total", &[]).await >= 1.0
            && worker.get("/readyz").await.map(|r| r.0) == Some(200)
    })
    .await;
    eventually("one consumer again, with the same prefetch", || async {
        consumer_prefetches(&env.names.request_queue).await == [7]
    })
    .await;
    let mut requester = env.requester("desk").await;
    requester.sample_is_answered().await;
}

/// The broker's ids (Erlang pids) of the open connections whose client
/// named them with a name containing `marker`.
async fn connections_named(marker: &str) -> Vec<String> {
    rabbitmqctl_rows(&["list_connections", "pid", "client_properties"])
        .await
        .into_iter()
        .filter(|(_, properties)| properties.contains(&format!("{{\"connection_name\",\"{marker}")))
        .map(|(pid, _)| pid)
        .collect()
}

#[tokio::test]
async fn a_connection_closed_by_the_broker_is_reopened() {
    let env = TestEnv::new("closed").await;
    env.seed_sample().await;
    let app_id = format!("app-{}", env.names.id);
    let worker = env.start_worker(&[("LCM__AMQP__APP_ID", &app_id)]).await;
    let connections = connections_named(&app_id).await;
    assert_eq!(connections.len(), 1, "{connections:?}");
    rabbitmqctl_output(&["close_connection", &connections[0], "closed by the test"]).await;
    eventually("reconnected and ready", || async {
        worker.counter("lcm_amqp_reconnects_total", &[]).await >= 1.0
            && worker.get("/readyz").await.map(|r| r.0) == Some(200)
    })
    .await;
    let mut requester = env.requester("desk").await;
    let reply = requester.sample_is_answered().await;
    assert_eq!(reply.app_id.as_deref(), Some(app_id.as_str()));
}

#[tokio::test]
async fn a_worker_started_before_the_broker_is_reachable_serves_once_it_is() {
    let env = TestEnv::new("late-broker").await;
    env.seed_sample().await;
    let amqp = Proxy::start(&amqp_address(), Mode::Refuse).await;
    let worker = env.spawn_worker(&[("LCM__AMQP__URL", &amqp.amqp_url())]);
    eventually("two logged connection attempts", || async {
        worker.logs().matches("reconnecting").count() >= 2
    })
    .await;
    let (status, reason) = worker.get("/readyz").await.unwrap();
    assert_eq!(
        (status, reason.trim()),
        (503, "not ready: not consuming from RabbitMQ")
    );
    assert!(!worker.logs().contains("guest:guest"), "password logged");

    amqp.set_mode(Mode::Forward);
    worker.wait_ready().await;
    let mut requester = env.requester("desk").await;
    requester.sample_is_answered().await;
}

#[tokio::test]
async fn a_black_holed_redis_answers_cache_unavailable_and_service_resumes() {
    let env = TestEnv::new("redis-hole").await;
    env.seed_sample().await;
    let redis = Proxy::start(&redis_address(), Mode::Forward).await;
    let worker = env
        .start_worker(&[
            ("LCM__REDIS__URL", &redis.redis_url()),
            ("LCM__LIMITS__REQUEST_DEADLINE_MS", "600"),
            ("LCM__REDIS__POOL_SIZE", "2"),
        ])
        .await;
    let mut requester = env.requester("desk").await;
    redis.set_mode(Mode::BlackHole);
    // More requests than pool connections: a hung call must not hold a slot for good.
    for _ in 0..4 {
        let reply = requester.request(&sample_request("desk")).await;
        assert_eq!(reply.error_message(), "Cache unavailable");
    }
    let (status, reason) = worker.get("/readyz").await.unwrap();
    assert_eq!(status, 503, "{reason}");
    assert!(reason.contains("Redis"), "{reason}");

    redis.set_mode(Mode::Forward);
    eventually("ready again", || async {
        worker.get("/readyz").await.map(|r| r.0) == Some(200)
    })
    .await;
    requester.sample_is_answered().await;
}

#[tokio::test]
async fn sigterm_finishes_deliveries_in_hand_and_leaves_the_rest_queued() {
    const SENT: usize = 300;
    let env = TestEnv::new("drain").await;
    env.seed_sample().await;
    let redis = Proxy::start(&redis_address(), Mode::Forward).await;
    let worker = env
        .start_worker(&[
            ("LCM__REDIS__URL", &redis.redis_url()),
            ("LCM__AMQP__PREFETCH", "10"),
            ("LCM__SHUTDOWN__GRACE_MS", "5000"),
            ("LCM__LIMITS__REQUEST_DEADLINE_MS", "1500"),
        ])
        .await;
    let mut requester = env.requester("desk").await;
    // Redis hangs: the first 10 deliveries are in hand, the rest queued.
    redis.set_mode(Mode::BlackHole);
    for _ in 0..SENT {
        requester.send(&sample_request("desk")).await;
    }
    eventually("prefetch full", || async {
        worker.counter("lcm_deliveries_in_hand", &[]).await == 10.0
    })
    .await;
    let stopping = Instant::now();
    let status = worker.terminate().await;
    let took = stopping.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_millis(5000), "stopping took {took:?}");

    let answered = requester
        .replies_until_quiet(Duration::from_millis(500))
        .await
        .iter()
        .inspect(|reply| assert_eq!(reply.error_message(), "Cache unavailable"))
        .count();
    let queued = env.ready_count(&env.names.request_queue).await as usize;
    println!(
        "SIGTERM drain: sent {SENT}, answered {answered}, still queued {queued}, took {took:?}"
    );
    assert_eq!(answered, 10, "the deliveries in hand are answered");
    assert_eq!(answered + queued, SENT, "nothing lost");
}

#[tokio::test]
async fn deliveries_not_finished_within_the_grace_time_are_redelivered_later() {
    const SENT: usize = 50;
    let env = TestEnv::new("grace").await;
    env.seed_sample().await;
    let redis = Proxy::start(&redis_address(), Mode::BlackHole).await;
    let worker = env.spawn_worker(&[
        ("LCM__REDIS__URL", &redis.redis_url()),
        ("LCM__AMQP__PREFETCH", "5"),
        ("LCM__SHUTDOWN__GRACE_MS", "300"),
        ("LCM__LIMITS__REQUEST_DEADLINE_MS", "30000"),
    ]);
    worker.wait_consuming().await;
    let requester = env.requester("desk").await;
    for _ in 0..SENT {
        requester.send(&sample_request("desk")).await;
    }
    eventually("prefetch full", || async {
        worker.counter("lcm_deliveries_in_hand", &[]).await == 5.0
    })
    .await;
    let status = worker.terminate().await;
    assert!(status.success(), "{status:?}");
    eventually("every request back in the queue", || async {
        env.ready_count(&env.names.request_queue).await as usize == SENT
    })
    .await;
}

#[tokio::test]
async fn unreadable_cache_values_are_answered_and_the_next_request_is_served() {
    let env = TestEnv::new("bad-values").await;
    env.seed_sample().await;
    env.seed_call("badlist", &[("campaign_id", "8")]).await;
    let mut redis = env.redis.clone();
    let prefix = &env.names.key_prefix;
    // Not UTF-8, and a call record that is a list instead of a hash.
    let _: () = deadpool_redis::redis::cmd("SET")
        .arg(format!("{prefix}:campaign:8:outcomes"))
        .arg(&b"\xff\xfe[{\"OutComeID\":1}]"[..])
        .arg("EX")
        .arg(600)
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: () = deadpool_redis::redis::cmd("RPUSH")
        .arg(format!("{prefix}:call:listcall"))
        .arg("x")
        .query_async(&mut redis)
        .await
        .unwrap();
    let _worker = env.start_worker(&[]).await;
    let mut requester = env.requester("desk").await;
    let reply = requester.request(&request_for("badlist", "1")).await;
    assert_eq!(
        reply.error_message(),
        "Corrupt business outcome data for Campaign ID:8"
    );
    let reply = requester.request(&request_for("listcall", "1")).await;
    assert_eq!(reply.error_message(), "Invalid Call ID:listcall");
    requester.sample_is_answered().await;
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_once_not_requeued_in_a_loop() {
    let env = TestEnv::new("poison").await;
    let worker = env.start_worker(&[]).await;
    for body in [&b"\xff\x00garbage"[..], b"{}", b"[]"] {
        env.publish_raw("nobody", body, lapin::BasicProperties::default())
            .await;
    }
    for _ in 0..3 {
        assert!(
            env.dead_lettered().await.is_some(),
            "poison message dead-lettered"
        );
    }
    eventually("three settled", || async {
        worker
            .counter("lcm_requests_total", &["result=\"dead_lettered\""])
            .await
            == 3.0
    })
    .await;
    assert_eq!(env.ready_count(&env.names.request_queue).await, 0);
    assert_eq!(
        worker.counter("lcm_requests_total", &[]).await,
        3.0,
        "handled once each"
    );
}
