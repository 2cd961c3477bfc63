//! The Redis client's own cost: the worker's one `HMGET` per request,
//! issued six ways against a live Redis, so that the instructions spent in
//! the client can be told from those of the request around it.
//!
//! ```sh
//! cargo bench --bench redis_cost                  # every way, 20,000 HMGETs each
//! cargo bench --bench redis_cost -- raw 20000     # one way
//! valgrind --tool=callgrind target/release/deps/redis_cost-* raw 0      # and 20000:
//! ```
//!
//! Under callgrind, the difference between a run of N and a run of 0,
//! divided by N, is the client's instructions per `HMGET` (connecting and
//! seeding cancel out; the kernel's work is not counted). The ways:
//!
//! - `multiplexed`: redis-rs's multiplexed connection, one pipeline of one
//!   `HMGET` at a time, as `RedisStore::call` sends it;
//! - `multiplexed64`: the same, 64 in flight at once (the worker's case
//!   under load: the connection batches them);
//! - `pipelined64`: one redis-rs pipeline of 64 `HMGET`s per round trip;
//! - `dedicated`: redis-rs's plain (not multiplexed) blocking connection;
//! - `raw`: the command's own RESP bytes written on a tokio `TcpStream`
//!   and the reply read by hand, one at a time: what any client must do;
//! - `raw64`: the same, 64 commands per write.
//!
//! Needs Redis at `LCM_BENCH_REDIS` (default `redis://127.0.0.1:6379/`);
//! uses one key of its own, removed at the end.

use std::time::Instant;

use deadpool_redis::redis::{self, AsyncCommands};
use futures_util::future::try_join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAYS: &[&str] = &[
    "multiplexed",
    "multiplexed64",
    "pipelined64",
    "dedicated",
    "raw",
    "raw64",
];
const BATCH: u64 = 64;
const ACCOUNT: &str = "5|3|1|0|0|44|1";

type Fields = (Option<String>, Option<String>);

fn hmget(key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("HMGET");
    cmd.arg(key).arg("campaign_id").arg("account_number");
    cmd
}

/// The RESP encoding of `HMGET key campaign_id account_number`.
fn encoded(key: &str) -> Vec<u8> {
    let mut bytes = b"*4\r\n$5\r\nHMGET\r\n".to_vec();
    for arg in [key, "campaign_id", "account_number"] {
        bytes.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    bytes
}

/// Reads `count` replies of two bulk strings each from `stream`, checking
/// the second is the account; `buffer` keeps what was read past them.
async fn read_replies(stream: &mut TcpStream, buffer: &mut Vec<u8>, count: u64) {
    let mut done = 0;
    let mut start = 0;
    loop {
        while done < count {
            match parse_reply(&buffer[start..]) {
                Some((used, account)) => {
                    assert_eq!(account, ACCOUNT.as_bytes(), "unexpected reply");
                    start += used;
                    done += 1;
                }
                None => break,
            }
        }
        if done == count {
            buffer.drain(..start);
            return;
        }
        let mut chunk = [0u8; 16384];
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "Redis closed the connection");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// One `*2` reply of two bulk strings: bytes used and the second string.
fn parse_reply(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let line = |at: usize| -> Option<(usize, &[u8])> {
        let end = at + bytes.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        Some((end + 2, &bytes[at..end]))
    };
    let (mut at, header) = line(0)?;
    assert_eq!(header, b"*2", "not a two-element reply");
    let mut last = &bytes[..0];
    for _ in 0..2 {
        let (next, size) = line(at)?;
        let size: usize = std::str::from_utf8(&size[1..]).ok()?.parse().ok()?;
        let end = next + size;
        last = bytes.get(next..end)?;
        bytes.get(end..end + 2)?;
        at = end + 2;
    }
    Some((at, last))
}

async fn run(way: &str, url: &str, key: &str, n: u64) {
    let client = redis::Client::open(url).expect("a Redis URL");
    match way {
        "multiplexed" | "multiplexed64" | "pipelined64" => {
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("connect");
            let one = || {
                let mut pipe = redis::pipe();
                pipe.add_command(hmget(key));
                pipe
            };
            match way {
                "multiplexed" => {
                    for _ in 0..n {
                        let (fields,): (Fields,) =
                            one().query_async(&mut conn).await.expect("HMGET");
                        assert_eq!(fields.1.as_deref(), Some(ACCOUNT));
                    }
                }
                "multiplexed64" => {
                    for _ in 0..n / BATCH {
                        let replies: Vec<(Fields,)> = try_join_all((0..BATCH).map(|_| {
                            let mut conn = conn.clone();
                            let pipe = one();
                            async move { pipe.query_async(&mut conn).await }
                        }))
                        .await
                        .expect("HMGET");
                        assert!(replies.iter().all(|(f,)| f.1.as_deref() == Some(ACCOUNT)));
                    }
                }
                _ => {
                    let mut pipe = redis::pipe();
                    for _ in 0..BATCH {
                        pipe.add_command(hmget(key));
                    }
                    for _ in 0..n / BATCH {
                        let replies: Vec<Fields> =
                            pipe.query_async(&mut conn).await.expect("HMGET");
                        assert!(replies.iter().all(|f| f.1.as_deref() == Some(ACCOUNT)));
                    }
                }
            }
        }
        "dedicated" => {
            let mut conn = client.get_connection().expect("connect");
            for _ in 0..n {
                let fields: Fields = hmget(key).query(&mut conn).expect("HMGET");
                assert_eq!(fields.1.as_deref(), Some(ACCOUNT));
            }
        }
        "raw" | "raw64" => {
            let address = url
                .trim_start_matches("redis://")
                .trim_end_matches('/')
                .to_owned();
            let mut stream = TcpStream::connect(address).await.expect("connect");
            let batch = if way == "raw" { 1 } else { BATCH };
            let command = encoded(key).repeat(batch as usize);
            let mut buffer = Vec::with_capacity(16384);
            for _ in 0..n / batch {
                stream.write_all(&command).await.expect("write");
                read_replies(&mut stream, &mut buffer, batch).await;
            }
        }
        other => panic!("unknown way {other:?}: {}", WAYS.join(", ")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: u64 = args.get(1).map_or(20_000, |n| n.parse().expect("a count"));
    let ways: Vec<&str> = match args.first() {
        Some(way) => vec![way.as_str()],
        None => WAYS.to_vec(),
    };
    let url = std::env::var("LCM_BENCH_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let key = format!("lcm-redis-cost-{}:call:12345", std::process::id());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let client = redis::Client::open(url.as_str()).expect("a Redis URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis answers");
        let _: () = conn
            .hset_multiple(&key, &[("campaign_id", "1"), ("account_number", ACCOUNT)])
            .await
            .expect("HSET");
        let _: () = conn.expire(&key, 600).await.expect("EXPIRE");
        for way in ways {
            let started = Instant::now();
            run(way, &url, &key, n).await;
            let elapsed = started.elapsed();
            println!(
                r#"{{"way":"{way}","hmgets":{n},"wall_us_per_hmget":{:.2}}}"#,
                elapsed.as_secs_f64() * 1e6 / n.max(1) as f64
            );
        }
        let _: () = conn.del(&key).await.expect("DEL");
    });
}
