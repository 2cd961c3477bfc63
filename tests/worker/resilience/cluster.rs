//! A real three-node RabbitMQ cluster under steady load (project issue 13):
//! the request and dead-letter queues are quorum queues with members on
//! every node; killing the node the worker uses, and then the queue's
//! leader, each costs at most a few seconds of consuming, and no request
//! is lost or dead-lettered.

use std::collections::HashMap;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::Channel;
use tokio::time::Instant;

use crate::support::*;

/// About 330 requests/s.
const INTERVAL: Duration = Duration::from_millis(3);
/// The most a kill may cost before the worker consumes again.
const RECOVERY: Duration = Duration::from_secs(5);
/// The worker's connection name: its default `amqp.app_id`.
const WORKER_CONNECTION: &str = "lcm-outcome-worker";

/// Messages in `queue`, as the node behind `channel` reports them.
async fn message_count(channel: &Channel, queue: &str) -> u32 {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

/// `name type arguments` of every queue, as `rabbitmqctl` lists them.
async fn listed_queues(cluster: &PrivateCluster) -> HashMap<String, String> {
    let listed = cluster
        .any_up()
        .ctl(&["list_queues", "-q", "name", "type", "arguments"])
        .await;
    listed
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(name, rest)| (name.to_owned(), rest.to_owned()))
        .collect()
}

/// After a kill at `killed`: how long until the worker consumed again (zero
/// if it never stopped), and the longest time it settled nothing.
fn cost_of_kill(samples: &[Sample], killed: Instant, next: Instant) -> (Duration, Duration) {
    let stopped = outages(samples)
        .into_iter()
        .filter(|o| o.from >= killed && o.from < next)
        .map(|o| o.until - killed)
        .max()
        .unwrap_or_default();
    (stopped, longest_idle(samples, killed, next))
}

/// Both queues are quorum queues with a member on every node, and the
/// request queue dead-letters at least once; the leader's name.
async fn assert_quorum_topology(cluster: &PrivateCluster, queue: &str, dead: &str) -> String {
    let (leader, online) = cluster.quorum_leader_and_online(queue).await.unwrap();
    assert_eq!(online.len(), 3, "members of {queue}: {online:?}");
    let queues = listed_queues(cluster).await;
    assert!(queues[dead].starts_with("quorum"), "{}", queues[dead]);
    for argument in ["x-dead-letter-strategy", "at-least-once", "reject-publish"] {
        assert!(queues[queue].contains(argument), "{}", queues[queue]);
    }
    leader
}

/// The node the worker's connection is on now.
async fn worker_node(cluster: &PrivateCluster) -> Option<String> {
    let node = cluster.connected_node(WORKER_CONNECTION).await;
    node.map(|n| n.node().to_owned())
}

/// Kill 1: the node the worker is connected to, `first`; waits until the
/// worker consumes elsewhere, then brings the node back and waits until
/// every member of `queue` is online again. When it was killed, and how
/// long it took to rejoin.
async fn kill_the_workers_node(
    cluster: &PrivateCluster,
    first: &str,
    queue: &str,
) -> (Instant, Duration) {
    let killed = Instant::now();
    cluster.by_name(first).unwrap().kill().await;
    eventually("the worker consumes on another node", || async {
        worker_node(cluster).await.is_some_and(|n| n != first)
    })
    .await;
    cluster.by_name(first).unwrap().launch().await;
    cluster.wait_running(3).await;
    eventually("every member of the request queue online again", || async {
        cluster
            .quorum_leader_and_online(queue)
            .await
            .is_some_and(|(_, online)| online.len() == 3)
    })
    .await;
    (killed, killed.elapsed())
}

/// Kill 2: the request queue's leader, on a node that holds neither the
/// requester (which must stay up) nor the worker: the leader is moved
/// there first if need be. (Kill 1 is the worker's node. On RabbitMQ 4.3
/// the requests a worker holds when its node dies come back only when that
/// node does, or a minute or more later: docs/protocol.md, section 2,
/// "What differs between broker and cache versions".) The node killed,
/// whether the worker was on it, and when.
async fn kill_the_leader(
    cluster: &PrivateCluster,
    queue: &str,
    requester_node: &str,
) -> (String, bool, Instant) {
    let on_worker = worker_node(cluster).await;
    let busy = |node: &str| node == requester_node || Some(node) == on_worker.as_deref();
    let (mut second, _) = cluster.quorum_leader_and_online(queue).await.unwrap();
    if busy(&second) {
        let to = cluster.nodes.iter().find(|n| !busy(n.node())).unwrap();
        cluster.transfer_leadership(queue, to.node()).await;
        eventually("the leader moved", || async {
            cluster
                .quorum_leader_and_online(queue)
                .await
                .is_some_and(|(leader, _)| leader == to.node())
        })
        .await;
        second = to.node().to_owned();
    }
    let worker_on_second = worker_node(cluster).await.as_deref() == Some(second.as_str());
    let killed = Instant::now();
    cluster.by_name(&second).unwrap().kill().await;
    (second, worker_on_second, killed)
}

/// Every reply to `sent`, each correct, within 30 s; then those left once
/// the queue is drained and the worker holds nothing.
async fn replies_to(
    requester: &mut Requester,
    worker: &Worker,
    queue: &str,
    sent: &Sent,
) -> ReplyTally {
    let mut replies = ReplyTally::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent.ids.iter().any(|id| !replies.has(id)) && Instant::now() < deadline {
        let Some(reply) = requester.next_reply().await else {
            break;
        };
        let body = &reply.body;
        assert_eq!(
            body["message"]["response"][1]["OutComeID"], "102",
            "{body:?}"
        );
        replies.record(&reply);
    }
    let channel = requester.channel.clone();
    eventually("request queue drained and nothing in hand", || async {
        message_count(&channel, queue).await == 0
            && worker.counter("lcm_deliveries_in_hand", &[]).await == 0.0
    })
    .await;
    while let Some(reply) = requester.try_next_reply() {
        replies.record(&reply);
    }
    replies
}

/// For a failed run: when each lost request was sent, in seconds after
/// each kill (the fault a loss follows), and the worker's first warnings.
async fn print_the_losses(worker: &Worker, sent: &Sent, replies: &ReplyTally, kills: [Instant; 2]) {
    let after = |at: Instant, kill: Instant| {
        if at >= kill {
            (at - kill).as_secs_f64()
        } else {
            -(kill - at).as_secs_f64()
        }
    };
    let mut lost: Vec<(f64, f64)> = sent
        .ids
        .iter()
        .filter(|id| !replies.has(id))
        .map(|id| (after(sent.at[id], kills[0]), after(sent.at[id], kills[1])))
        .collect();
    lost.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!("lost requests, sent (s after kill 1, s after kill 2): {lost:.2?}");
    let unroutable = worker.counter("lcm_replies_unroutable_total", &[]).await;
    let logs = worker.logs();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        .take(20)
        .collect();
    println!(
        "worker: replies unroutable {unroutable}; first warnings:\n{}",
        warnings.join("\n")
    );
}

#[tokio::test]
async fn losing_any_one_node_of_three_costs_the_worker_at_most_a_few_seconds() {
    let began = Instant::now();
    let cluster = PrivateCluster::start("lcmcluster", 3).await;
    let booted = began.elapsed();
    let env = TestEnv::new("cluster").await;
    env.seed_sample().await;
    let urls = cluster.urls();
    let settings = [
        ("LCM__AMQP__URLS", urls.as_str()),
        ("LCM__AMQP__QUEUE_TYPE", "quorum"),
    ];
    let worker = env.start_worker(&settings).await;
    let (queue, dead) = (&env.names.request_queue, &env.names.dead_letter_queue);
    let leader = assert_quorum_topology(&cluster, queue, dead).await;

    // The requester stays on a node that is killed neither time.
    let first = eventually_some("the worker's connection is listed", || {
        worker_node(&cluster)
    })
    .await;
    let requester_node = cluster.nodes.iter().find(|n| n.node() != first).unwrap();
    let mut requester = env.requester_at(&requester_node.url(), "desk").await;
    let sampler = Sampler::start(&worker, Duration::from_millis(25));
    let load = Load::start(&requester, INTERVAL).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // load before the fault
    let (killed_first, rejoined) = kill_the_workers_node(&cluster, &first, queue).await;
    let (second, worker_on_second, killed_second) =
        kill_the_leader(&cluster, queue, requester_node.node()).await;
    tokio::time::sleep(Duration::from_secs(5)).await; // load after the fault
    let sent = load.stop().await;
    let loaded_until = Instant::now();

    let replies = replies_to(&mut requester, &worker, queue, &sent).await;
    let total = sent.ids.len();
    let answered = replies.answered(&sent.ids);
    let dead_lettered = message_count(&requester.channel, dead).await;
    let reconnects = worker.counter("lcm_amqp_reconnects_total", &[]).await;
    let samples = sampler.samples();
    let stops = outages(&samples).len();
    let (first_cost, first_idle) = cost_of_kill(&samples, killed_first, killed_second);
    let (second_cost, second_idle) = cost_of_kill(&samples, killed_second, loaded_until);
    println!(
        "cluster: 3 nodes up and joined in {booted:.1?}; initial leader {leader}; \
         sent {total} ({} resent unconfirmed), answered {answered}, duplicated {}, lost {}, \
         dead-lettered {dead_lettered}, AMQP reconnects {reconnects}, not-consuming stretches {stops}",
        sent.resent,
        replies.duplicated(),
        total - answered
    );
    println!(
        "cluster kill 1 (the worker's node {first}): consuming again after {first_cost:.2?}, \
         longest time settling nothing {first_idle:.2?}; node back in the cluster after {rejoined:.1?}"
    );
    println!(
        "cluster kill 2 (the leader {second}, worker connected to it: {worker_on_second}): \
         consuming again after {second_cost:.2?}, longest time settling nothing {second_idle:.2?}"
    );
    if answered != total {
        print_the_losses(&worker, &sent, &replies, [killed_first, killed_second]).await;
    }
    assert_eq!(answered, total, "lost requests");
    assert!(
        replies.unknown(&sent.ids).is_empty(),
        "replies with unknown correlation ids"
    );
    assert_eq!(dead_lettered, 0, "requests dead-lettered");
    assert!(first_cost <= RECOVERY, "kill 1 cost {first_cost:?}");
    assert!(second_cost <= RECOVERY, "kill 2 cost {second_cost:?}");
    assert!(
        first_cost > Duration::ZERO,
        "kill 1 did not stop the worker"
    );
    // Counted per resumed consuming, not per attempt.
    assert_eq!(
        reconnects, stops as f64,
        "reconnects vs. stretches not consuming"
    );
    let logs = worker.logs();
    assert!(!logs.contains("topology declaration refused"), "{logs}");
}
