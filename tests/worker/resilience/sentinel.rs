//! Redis high availability: the worker finds the master through Redis
//! Sentinel and follows a fail-over. Each test starts its own master,
//! replica and three sentinels on free ports.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use deadpool_redis::redis::{self, aio::MultiplexedConnection, AsyncCommands};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::support::*;

const MASTER_NAME: &str = "mymaster";

/// How long a fail-over may take, from the trigger to the sentinels naming
/// the new master (killing the master costs `down-after-milliseconds`
/// plus an election first).
const FAILOVER_WAIT: Duration = Duration::from_secs(30);

/// A master, a replica of it and three sentinels watching them, all
/// killed when dropped; their files live in a private directory.
struct RedisHa {
    dir: PathBuf,
    master: Option<Child>,
    master_port: u16,
    _replica: Child,
    replica_port: u16,
    _sentinels: Vec<Child>,
    sentinel_ports: Vec<u16>,
}

impl Drop for RedisHa {
    fn drop(&mut self) {
        // The children are killed by `kill_on_drop`.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn redis_server(dir: &PathBuf, args: &[&str]) -> Child {
    Command::new(redis_server_program())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the redis-server program (LCM_TEST_REDIS_SERVER)")
}

async fn connect(port: u16) -> Option<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    client.get_multiplexed_async_connection().await.ok()
}

async fn info(port: u16, section: &str) -> String {
    match connect(port).await {
        Some(mut conn) => redis::cmd("INFO")
            .arg(section)
            .query_async(&mut conn)
            .await
            .unwrap_or_default(),
        None => String::new(),
    }
}

/// A counter of `INFO commandstats`, for example the calls of `hmget`.
async fn command_calls(port: u16, command: &str) -> u64 {
    let stats = info(port, "commandstats").await;
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn sentinel_query<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> Option<T> {
    let mut conn = connect(port).await?;
    let mut cmd = redis::cmd("SENTINEL");
    for arg in args {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut conn).await.ok()
}

async fn role(port: u16) -> Option<String> {
    let mut conn = connect(port).await?;
    let role: redis::Value = redis::cmd("ROLE").query_async(&mut conn).await.ok()?;
    match role {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::BulkString(name)) => Some(String::from_utf8_lossy(name).into()),
            _ => None,
        },
        _ => None,
    }
}

impl RedisHa {
    async fn start(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("lcm-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let master_port = free_port();
        let replica_port = free_port();
        let common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        let master_port_text = master_port.to_string();
        let master = redis_server(
            &dir,
            &[&["--port", &master_port_text][..], &common].concat(),
        );
        let replica = redis_server(
            &dir,
            &[
                &["--port", &replica_port.to_string()][..],
                &common,
                &["--replicaof", "127.0.0.1", &master_port_text],
            ]
            .concat(),
        );
        eventually("the replica is in sync with the master", || async {
            info(master_port, "replication")
                .await
                .contains("connected_slaves:1")
                && info(replica_port, "replication")
                    .await
                    .contains("master_link_status:up")
        })
        .await;

        let mut sentinels = Vec::new();
        let mut sentinel_ports = Vec::new();
        for n in 0..3 {
            let port = free_port();
            // Sentinel rewrites its configuration file: it must be writable.
            let conf = dir.join(format!("sentinel-{n}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                     sentinel failover-timeout {MASTER_NAME} 5000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n",
                    dir = dir.display()
                ),
            )
            .unwrap();
            sentinels.push(redis_server(&dir, &[conf.to_str().unwrap(), "--sentinel"]));
            sentinel_ports.push(port);
        }
        for &port in &sentinel_ports {
            eventually(
                "each sentinel knows the two others and the replica",
                || async {
                    let others: Vec<redis::Value> =
                        sentinel_query(port, &["sentinels", MASTER_NAME])
                            .await
                            .unwrap_or_default();
                    let replicas: Vec<redis::Value> =
                        sentinel_query(port, &["replicas", MASTER_NAME])
                            .await
                            .unwrap_or_default();
                    let quorum: Option<String> =
                        sentinel_query(port, &["ckquorum", MASTER_NAME]).await;
                    others.len() == 2
                        && replicas.len() == 1
                        && quorum.is_some_and(|q| q.starts_with("OK"))
                },
            )
            .await;
        }
        Self {
            dir,
            master: Some(master),
            master_port,
            _replica: replica,
            replica_port,
            _sentinels: sentinels,
            sentinel_ports,
        }
    }

    /// `LCM__REDIS__SENTINELS` for the worker.
    fn sentinels_env(&self) -> String {
        self.sentinel_ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The master's port as the first sentinel that answers names it.
    async fn master_named(&self) -> Option<u16> {
        for &port in &self.sentinel_ports {
            let address: Option<Vec<String>> =
                sentinel_query(port, &["get-master-addr-by-name", MASTER_NAME]).await;
            if let Some(port) = address.and_then(|a| a.get(1)?.parse().ok()) {
                return Some(port);
            }
        }
        None
    }

    /// Whether every sentinel that answers names the replica as master.
    async fn replica_promoted(&self) -> bool {
        for &port in &self.sentinel_ports {
            let address: Option<Vec<String>> =
                sentinel_query(port, &["get-master-addr-by-name", MASTER_NAME]).await;
            let named: Option<u16> = address.and_then(|a| a.get(1)?.parse().ok());
            if named.is_some_and(|named| named != self.replica_port) {
                return false;
            }
        }
        true
    }

    /// The sample call and campaign, written to the master under `prefix`.
    async fn seed_sample(&self, prefix: &str) {
        let mut master = connect(self.master_port).await.expect("master");
        let call = format!("{prefix}:call:12345");
        let _: () = master
            .hset_multiple(
                &call,
                &[("campaign_id", "1"), ("account_number", "5|3|1|0|0|44|1")],
            )
            .await
            .unwrap();
        let _: () = master
            .set(
                format!("{prefix}:campaign:1:outcomes"),
                r#"[{"OutComeID":"101","Description":"Payment Done","LeadScore":"0","ParentID":null},{"OutComeID":"102","Description":"Payment Failure"}]"#,
            )
            .await
            .unwrap();
        // Written before the fail-over, so it must be on the replica first.
        let _: () = redis::cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query_async(&mut master)
            .await
            .unwrap();
    }

    async fn kill_master(&mut self) {
        let mut master = self.master.take().expect("master running");
        master.kill().await.unwrap();
    }
}

/// What one request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Answered,
    CacheUnavailable,
}

fn outcome_of(reply: &Reply) -> Outcome {
    if reply.body["subtopic"] == "BusinessOutCome" {
        let ids: Vec<&str> = reply.body["message"]["response"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|o| o["OutComeID"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(ids, ["101", "102"], "{:?}", reply.body);
        Outcome::Answered
    } else {
        assert_eq!(
            reply.error_message(),
            "Cache unavailable",
            "{:?}",
            reply.body
        );
        Outcome::CacheUnavailable
    }
}

/// Sends the sample request and waits for its reply: the outcome and how
/// long the reply took.
async fn serve_one(requester: &mut Requester) -> (Outcome, Duration) {
    let sent = Instant::now();
    let reply = requester.request(&sample_request("desk")).await;
    (outcome_of(&reply), sent.elapsed())
}

/// A request every [`PACE`] while the fail-over runs.
const PACE: Duration = Duration::from_millis(100);

/// Sends a request every [`PACE`] until the sentinels name the replica as
/// master and every request sent has its reply; prints what they got.
/// Then checks that a request sent right after the switch is answered.
async fn serve_through_the_failover(
    ha: &RedisHa,
    requester: &mut Requester,
    started: Instant,
    how: &str,
) {
    let deadline = started + FAILOVER_WAIT;
    let mut sent_at: HashMap<String, Duration> = HashMap::new();
    // (sent, outcome, took), in reply order.
    let mut got: Vec<(Duration, Outcome, Duration)> = Vec::new();
    let mut switched = None;
    while switched.is_none() || got.len() < sent_at.len() {
        if switched.is_none() {
            let id = requester.send(&sample_request("desk")).await;
            sent_at.insert(id, started.elapsed());
        }
        let tick = Instant::now() + PACE;
        while let Some(reply) = requester
            .next_reply_within(tick.saturating_duration_since(Instant::now()))
            .await
        {
            let id = reply.correlation_id.clone().unwrap_or_default();
            let sent = sent_at[&id];
            got.push((sent, outcome_of(&reply), started.elapsed() - sent));
        }
        if switched.is_none() && ha.master_named().await == Some(ha.replica_port) {
            switched = Some(started.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "no fail-over within {FAILOVER_WAIT:?}"
        );
    }
    let switched = switched.unwrap_or_default();

    // Right after the switch: answered, within the request deadline.
    let (outcome, took) = serve_one(requester).await;
    assert_eq!(
        outcome,
        Outcome::Answered,
        "the first request after the switch"
    );
    assert!(took < Duration::from_millis(2000), "took {took:?}");

    got.sort_by_key(|(sent, _, _)| *sent);
    let failed: Vec<Duration> = got
        .iter()
        .filter(|(_, outcome, _)| *outcome == Outcome::CacheUnavailable)
        .map(|(sent, _, _)| *sent)
        .collect();
    let answered = got.len() - failed.len();
    let slowest = got
        .iter()
        .map(|(_, _, took)| *took)
        .max()
        .unwrap_or_default();
    let ms = |d: Duration| d.as_millis();
    let interruption = match (failed.first(), failed.last()) {
        (Some(first), Some(last)) => {
            let after: Vec<_> = got
                .iter()
                .filter(|(sent, outcome, _)| sent > last && *outcome == Outcome::Answered)
                .collect();
            let resumed = after
                .first()
                .map(|(sent, _, _)| format!("{} ms", ms(*sent)))
                .unwrap_or_else(|| "the switch".to_owned());
            let replied = after
                .iter()
                .map(|(sent, _, took)| *sent + *took)
                .min()
                .map(|at| format!("{} ms", ms(at)))
                .unwrap_or_else(|| "after the switch".to_owned());
            format!(
                "requests sent from {} ms to {} ms got Cache unavailable, every request \
                 sent from {resumed} on was answered, the first of them at {replied}",
                ms(*first),
                ms(*last)
            )
        }
        _ => "no request got Cache unavailable".to_owned(),
    };
    println!(
        "fail-over ({how}): one request every {} ms; the sentinels named the new master \
         {} ms after the trigger; {} requests meanwhile: {answered} answered, {} Cache \
         unavailable; {interruption}; slowest reply {} ms; a request sent right after \
         the switch was answered in {} ms",
        ms(PACE),
        ms(switched),
        got.len(),
        failed.len(),
        ms(slowest),
        ms(took),
    );
}

/// Starts the set-up, seeds it and a worker that knows only the sentinels
/// (`redis.url` points nowhere: it supplies the database only), and checks
/// a first request.
async fn serving(test: &str) -> (RedisHa, TestEnv, Worker, Requester) {
    let ha = RedisHa::start(test).await;
    let env = TestEnv::new(test).await;
    ha.seed_sample(&env.names.key_prefix).await;
    let sentinels = ha.sentinels_env();
    let worker = env
        .start_worker(&[
            ("LCM__REDIS__URL", "redis://127.0.0.1:1/0"),
            ("LCM__REDIS__SENTINELS", &sentinels),
            ("LCM__REDIS__SENTINEL_MASTER", MASTER_NAME),
        ])
        .await;
    let mut requester = env.requester("desk").await;
    assert_eq!(serve_one(&mut requester).await.0, Outcome::Answered);
    let found = format!("127.0.0.1:{}", ha.master_port);
    worker.wait_logged(&found).await;
    (ha, env, worker, requester)
}

#[tokio::test]
async fn a_sentinel_failover_is_followed_and_the_old_master_is_left() {
    let (ha, _env, worker, mut requester) = serving("sentinel-failover").await;

    let started = Instant::now();
    let trigger = ha.sentinel_ports[0];
    eventually("SENTINEL FAILOVER accepted", || async {
        // -NOGOODSLAVE until the sentinel has the replica's details.
        sentinel_query::<String>(trigger, &["failover", MASTER_NAME])
            .await
            .is_some()
    })
    .await;
    serve_through_the_failover(&ha, &mut requester, started, "SENTINEL FAILOVER").await;

    // The old master keeps its role until Sentinel demotes it, seconds
    // later; the worker's re-check of the master (every second) must move
    // its reads before that.
    let old = ha.master_port;
    let new = ha.replica_port;
    let limit = Instant::now() + Duration::from_secs(5);
    loop {
        let (reads_on_old, reads_on_new) = (
            command_calls(old, "hmget").await,
            command_calls(new, "hmget").await,
        );
        for _ in 0..3 {
            assert_eq!(serve_one(&mut requester).await.0, Outcome::Answered);
        }
        if command_calls(old, "hmget").await == reads_on_old
            && command_calls(new, "hmget").await >= reads_on_new + 3
        {
            break;
        }
        assert!(Instant::now() < limit, "reads still go to the old master");
        tokio::time::sleep(PACE).await;
    }
    println!(
        "reads moved to the new master {} ms after the trigger; the old master's role then: {}",
        started.elapsed().as_millis(),
        role(old).await.unwrap_or_default()
    );

    // Once Sentinel has demoted the old master, it stays left.
    let deadline = Instant::now() + FAILOVER_WAIT;
    while role(old).await.as_deref() != Some("slave") {
        assert!(Instant::now() < deadline, "old master not demoted");
        tokio::time::sleep(PACE).await;
    }
    let demoted_after = started.elapsed();
    let reads_on_old = command_calls(old, "hmget").await;
    let reads_on_new = command_calls(new, "hmget").await;
    for _ in 0..5 {
        assert_eq!(serve_one(&mut requester).await.0, Outcome::Answered);
    }
    assert_eq!(
        command_calls(old, "hmget").await,
        reads_on_old,
        "a read went to the demoted master"
    );
    assert!(command_calls(new, "hmget").await >= reads_on_new + 5);
    println!(
        "old master demoted {} ms after the trigger; the next 5 requests read the new master",
        demoted_after.as_millis()
    );
    eventually("ready again", || async {
        worker.get("/readyz").await.map(|r| r.0) == Some(200)
    })
    .await;
}

#[tokio::test]
async fn the_master_killed_is_replaced_and_service_resumes_by_itself() {
    let (mut ha, env, worker, mut requester) = serving("sentinel-kill").await;

    let started = Instant::now();
    ha.kill_master().await;
    serve_through_the_failover(&ha, &mut requester, started, "master killed").await;
    assert!(ha.replica_promoted().await);
    for _ in 0..5 {
        assert_eq!(serve_one(&mut requester).await.0, Outcome::Answered);
    }
    eventually("ready again", || async {
        worker.get("/readyz").await.map(|r| r.0) == Some(200)
    })
    .await;
    let (status, _) = worker.get("/readyz").await.unwrap();
    assert_eq!(status, 200);

    // `check` names the master the sentinels give now.
    let sentinels = ha.sentinels_env();
    let output = Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .arg("check")
        .envs(env.worker_env())
        .env("LCM__REDIS__SENTINELS", &sentinels)
        .env_remove("LCM_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected = format!(
        "redis sentinel: master `{MASTER_NAME}` is 127.0.0.1:{}",
        ha.replica_port
    );
    assert!(stdout.contains(&expected), "{stdout}");
    println!("{stdout}");
}
