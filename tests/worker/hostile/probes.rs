//! Health probes beside a flood of idle and slow HTTP connections: an
//! orchestrator must never see a healthy worker fail its probes because
//! others hold connections open.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::support::*;

/// Connections the flood holds open, half idle, half slowloris.
const FLOOD: usize = 1000;
/// How long a probe may take.
const PROBE_WITHIN: Duration = Duration::from_secs(1);
/// Probes sent, spread over more than the worker's 5 s header time-out,
/// so that they meet the moments when the whole flood is closed and
/// reopened at once.
const PROBES: usize = 10;
const BETWEEN_PROBES: Duration = Duration::from_millis(700);

/// Raises this test process's soft file-descriptor limit, which the flood
/// (and the tests running beside it) must not exhaust.
fn enough_file_descriptors() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    let wanted = 8 * FLOOD as u64;
    if limit.current.is_some_and(|current| current < wanted) {
        limit.current = Some(limit.maximum.map_or(wanted, |maximum| maximum.min(wanted)));
        setrlimit(Resource::Nofile, limit).expect("raising RLIMIT_NOFILE");
    }
}

/// Holds `FLOOD` connections to `addr` open until `stop`: half send
/// nothing, half send a request head one byte every 500 ms, never ending
/// it. Each is reopened as soon as the server closes it. Returns the
/// count of connections open now, and of those ever opened.
fn flood(addr: String, stop: CancellationToken) -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let open = Arc::new(AtomicUsize::new(0));
    let opened = Arc::new(AtomicUsize::new(0));
    for i in 0..FLOOD {
        let (addr, stop) = (addr.clone(), stop.clone());
        let (open, opened) = (open.clone(), opened.clone());
        tokio::spawn(async move {
            let slow = i % 2 == 1;
            while !stop.is_cancelled() {
                let Ok(mut stream) = TcpStream::connect(&addr).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                open.fetch_add(1, Ordering::Relaxed);
                opened.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = hold(&mut stream, slow) => {}
                }
                open.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }
    (open, opened)
}

/// Keeps `stream` open until the server closes it.
async fn hold(stream: &mut TcpStream, slow: bool) {
    let head = b"GET /metrics HTTP/1.1\r\nHost: flood\r\nX-Slow: ";
    let mut sent = 0;
    let mut byte = [0u8; 1];
    loop {
        if slow {
            let next = head.get(sent).copied().unwrap_or(b'x');
            if stream.write_all(&[next]).await.is_err() {
                return;
            }
            sent += 1;
        }
        let read = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut byte));
        if let Ok(Ok(0) | Err(_)) = read.await {
            return;
        }
    }
}

/// One probe as an orchestrator sends it, from a thread of its own (a
/// process of its own, in production): connect, send the request at once,
/// read the answer. How long it took if it answered 200 within
/// [`PROBE_WITHIN`].
fn probe_once(addr: SocketAddr, path: &str) -> Option<Duration> {
    let started = std::time::Instant::now();
    let mut stream = std::net::TcpStream::connect_timeout(&addr, PROBE_WITHIN).ok()?;
    stream.set_read_timeout(Some(PROBE_WITHIN)).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let took = started.elapsed();
    (response.starts_with(b"HTTP/1.1 200") && took <= PROBE_WITHIN).then_some(took)
}

/// Sends [`PROBES`] probes, `/healthz` and `/readyz` in turn, each on a
/// connection of its own, and returns how long each took, or `None` for
/// one that failed or took longer than [`PROBE_WITHIN`].
async fn probe(addr: SocketAddr) -> Vec<Option<Duration>> {
    let mut took = Vec::new();
    for i in 0..PROBES {
        let path = if i % 2 == 0 { "/healthz" } else { "/readyz" };
        let answered = tokio::task::spawn_blocking(move || probe_once(addr, path));
        took.push(answered.await.unwrap());
        tokio::time::sleep(BETWEEN_PROBES).await;
    }
    took
}

/// The worker's open file descriptors.
fn descriptors(worker: &Worker) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", worker.child.id().unwrap()))
        .unwrap()
        .count()
}

/// Starts the flood against `worker` and waits until every flood
/// connection has been opened once; cancel the token to stop it. Raises
/// this process's file-descriptor limit first.
async fn flooded(worker: &Worker) -> (SocketAddr, Arc<AtomicUsize>, CancellationToken) {
    enough_file_descriptors();
    let base = worker.base.get().expect("address known once ready");
    let addr: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let stop = CancellationToken::new();
    let (open, opened) = flood(addr.to_string(), stop.clone());
    eventually("every flood connection opened", || async {
        opened.load(Ordering::Relaxed) >= FLOOD
    })
    .await;
    (addr, open, stop)
}

#[tokio::test]
async fn health_probes_answer_within_a_second_beside_a_thousand_idle_and_slow_connections() {
    let env = TestEnv::new("probes-flood").await;
    let worker = env.start_worker(&[]).await;
    let (addr, open, stop) = flooded(&worker).await;
    let took = probe(addr).await;
    let (held, fds) = (open.load(Ordering::Relaxed), descriptors(&worker));
    stop.cancel();
    println!("beside {held} flood connections ({fds} descriptors open in the worker), probes took {took:?}");
    assert!(took.iter().all(Option::is_some), "{took:?}");
    // The whole flood is held open, none closed early.
    assert!(held > FLOOD * 9 / 10, "{held} flood connections open");
    assert!(fds > FLOOD * 9 / 10, "{fds} descriptors open in the worker");
    let logs = worker.logs();
    assert!(
        !logs.contains("accepting an HTTP connection failed"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_flood_past_the_connection_limit_never_takes_the_descriptors_the_worker_needs() {
    let env = TestEnv::new("probes-few-fds").await;
    env.seed_sample().await;
    // 512 descriptors: the worker keeps 128 HTTP connections, 256 at
    // most, and lets 32 more wait for their request: the flood is four to
    // eight times what it holds, and is closed and reopened all the time.
    let worker = env.spawn_worker_with_fd_limit(512, &[]);
    worker.wait_ready().await;
    let (addr, _, stop) = flooded(&worker).await;
    // Meanwhile the worker answers requests; it needs descriptors for
    // that whenever it reconnects to the broker or Redis.
    let mut requester = env.requester("desk").await;
    requester.sample_is_answered().await;
    let took = probe(addr).await;
    let fds = descriptors(&worker);
    requester.sample_is_answered().await;
    stop.cancel();
    // Past the limit, a probe is served only if it gets in before the
    // flood takes its place: these figures are the record, not a promise.
    let answered = took.iter().flatten().count();
    println!("{fds} descriptors open in the worker; {answered} of {PROBES} probes answered in time: {took:?}");
    assert!(fds <= 330, "{fds} descriptors open in the worker");
    let logs = worker.logs();
    assert!(
        !logs.contains("accepting an HTTP connection failed"),
        "{logs}"
    );
    worker.wait_ready().await;
}
