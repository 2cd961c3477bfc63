//! Replicas die under load: three workers share one queue with a small
//! prefetch; one is SIGKILLed and another SIGTERMed (a rolling restart)
//! while each holds deliveries, and a replacement starts. Every request
//! is answered, correctly, and nothing is dead-lettered.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::support::proxy::{Mode, Proxy};
use crate::support::*;

/// 200 requests/s.
const INTERVAL: Duration = Duration::from_millis(5);
const PREFETCH: &str = "4";
/// Redis answers a replica about to be hit this late, so that deliveries
/// are in its hand when it dies, yet well within the request deadline.
const SLOW: Duration = Duration::from_millis(200);
/// Generous, so that a machine busy with other tests cannot turn a
/// delayed request into `Cache unavailable`: this test is about replicas.
const DEADLINE_MS: &str = "5000";

async fn start_replica(env: &TestEnv, redis: &Proxy) -> Worker {
    let url = redis.redis_url();
    env.start_worker(&[
        ("LCM__AMQP__PREFETCH", PREFETCH),
        ("LCM__REDIS__URL", &url),
        ("LCM__LIMITS__REQUEST_DEADLINE_MS", DEADLINE_MS),
    ])
    .await
}

/// Slows `replica`'s Redis and waits until it holds deliveries; how many.
async fn holding(replica: &Worker, redis: &Proxy) -> f64 {
    redis.set_mode(Mode::Delay(SLOW));
    eventually_some("the replica holds deliveries", || async {
        let held = replica.counter("lcm_deliveries_in_hand", &[]).await;
        (held > 0.0).then_some(held)
    })
    .await
}

#[tokio::test]
async fn replicas_killed_and_replaced_under_load_answer_every_request_once_correctly() {
    let env = TestEnv::new("replicas-die").await;
    env.seed_sample().await;
    let mut proxies = Vec::new();
    for _ in 0..4 {
        proxies.push(Proxy::start(&redis_address(), Mode::Forward).await);
    }
    let killed = start_replica(&env, &proxies[0]).await;
    let terminated = start_replica(&env, &proxies[1]).await;
    let survivor = start_replica(&env, &proxies[2]).await;
    let mut requester = env.requester("desk").await;
    let load = Load::start(&requester, INTERVAL).await;
    tokio::time::sleep(Duration::from_secs(1)).await; // load before the faults

    let held_by_killed = holding(&killed, &proxies[0]).await;
    let mut killed = killed;
    killed.child.start_kill().unwrap();
    killed.child.wait().await.unwrap();

    let held_by_terminated = holding(&terminated, &proxies[1]).await;
    let stopping = tokio::spawn(terminated.terminate());
    let replacement = start_replica(&env, &proxies[3]).await;
    let status = stopping.await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await; // load after the faults
    let sent = load.stop().await;

    let mut replies = ReplyTally::default();
    let mut kinds: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent.ids.iter().any(|id| !replies.has(id)) && Instant::now() < deadline {
        let Some(reply) = requester.next_reply().await else {
            break;
        };
        let body = &reply.body;
        let correct = body["subtopic"] == "BusinessOutCome"
            && body["message"]["callid"] == "12345"
            && body["message"]["response"][0]["Description"] == "Payment Done"
            && body["message"]["response"][1]["OutComeID"] == "102";
        let kind = if correct { "correct" } else { "wrong" };
        *kinds.entry(kind.to_owned()).or_default() += 1;
        assert!(correct, "{body}");
        replies.record(&reply);
    }
    let survivors = [&survivor, &replacement];
    eventually("request queue drained and nothing in hand", || async {
        let mut in_hand = 0.0;
        for worker in survivors {
            in_hand += worker.counter("lcm_deliveries_in_hand", &[]).await;
        }
        env.ready_count(&env.names.request_queue).await == 0 && in_hand == 0.0
    })
    .await;
    while let Some(reply) = requester.try_next_reply() {
        replies.record(&reply);
    }
    let total = sent.ids.len();
    let answered = replies.answered(&sent.ids);
    let dead_lettered = env.ready_count(&env.names.dead_letter_queue).await;
    let mut served = Vec::new();
    let mut dead_counted = 0.0;
    for worker in survivors {
        served.push(
            worker
                .counter("lcm_requests_total", &["result=\"ok\""])
                .await,
        );
        dead_counted += worker
            .counter("lcm_requests_total", &["result=\"dead_lettered\""])
            .await;
    }
    println!(
        "replicas: sent {total}, answered {answered}, duplicated {}, replies {kinds:?}; \
         SIGKILLed replica held {held_by_killed}, SIGTERMed replica held {held_by_terminated} \
         and exited {status}; survivor and replacement served {served:?}; dead-lettered {dead_lettered}",
        replies.duplicated()
    );
    assert_eq!(answered, total, "lost requests");
    assert!(
        replies.unknown(&sent.ids).is_empty(),
        "unknown correlation ids"
    );
    assert!(status.success(), "the SIGTERMed replica exited {status}");
    assert_eq!(dead_lettered, 0, "requests in the dead-letter queue");
    assert_eq!(dead_counted, 0.0, "requests dead-lettered by a survivor");
    assert!(served[1] > 0.0, "the replacement served nothing");
}
