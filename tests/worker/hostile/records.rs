//! Redis data others write, whatever its size or type: a call record
//! field over `limits.max_call_field_bytes` makes the record unusable
//! (`Invalid Call ID`) and is never read whole; a key of the wrong type is
//! answered at once by section 5's row for it, not retried.

use deadpool_redis::redis::{self, aio::MultiplexedConnection};

use crate::support::*;

/// What Redis has sent to all its clients so far, in bytes.
async fn bytes_sent(redis: &mut MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(redis)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("total_net_output_bytes:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("total_net_output_bytes in INFO stats")
}

#[tokio::test]
async fn a_thirty_megabyte_call_field_is_an_invalid_call_id_and_never_read_whole() {
    let env = TestEnv::new("big-field").await;
    // A Redis of the test's own, so that what it sends is the worker's.
    let port = free_port();
    let _private = PrivateRedis::start(port).await;
    let url = format!("redis://127.0.0.1:{port}");
    // Time enough to write 60 MB.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(WAIT));
    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let big = "7".repeat(30 << 20);
    let call = |callid: &str| format!("{}:call:{callid}", env.names.key_prefix);
    let _: () = redis::pipe()
        .hset_multiple(
            call("bigaccount"),
            &[("campaign_id", "1"), ("account_number", big.as_str())],
        )
        .hset(call("bigcampaign"), "campaign_id", big.as_str())
        .hset_multiple(
            call("12345"),
            &[("campaign_id", "1"), ("account_number", "5|3|1|0|0|44|1")],
        )
        .set(
            format!("{}:campaign:1:outcomes", env.names.key_prefix),
            r#"[{"OutComeID":"101","Description":"Payment Done"}]"#,
        )
        .query_async(&mut redis)
        .await
        .unwrap();
    drop(big);
    let worker = env.start_worker(&[("LCM__REDIS__URL", &url)]).await;
    let mut requester = env.requester("desk").await;
    let before = bytes_sent(&mut redis).await;
    for callid in ["bigaccount", "bigcampaign"] {
        let reply = requester
            .request(&request_for(callid, "5|3|1|0|0|44|1"))
            .await;
        assert_eq!(reply.error_message(), format!("Invalid Call ID:{callid}"));
        assert_eq!(reply.msg(), "Invalid Call ID.");
    }
    requester.sample_is_answered().await;
    let sent = bytes_sent(&mut redis).await - before;
    assert!(sent < 1 << 20, "Redis sent {sent} bytes");
    worker
        .wait_logged("account_number is 31457280 bytes, over limits.max_call_field_bytes")
        .await;
}

#[tokio::test]
async fn keys_of_the_wrong_type_are_answered_at_once_by_their_rows() {
    let env = TestEnv::new("wrong-type").await;
    let prefix = &env.names.key_prefix;
    let mut redis = env.redis.clone();
    let _: () = redis::pipe()
        .set(format!("{prefix}:call:stringcall"), "campaign_id=1")
        .expire(format!("{prefix}:call:stringcall"), 600)
        .hset(format!("{prefix}:campaign:5:outcomes"), "OutComeID", "1")
        .expire(format!("{prefix}:campaign:5:outcomes"), 600)
        .query_async(&mut redis)
        .await
        .unwrap();
    env.seed_call("hashlist", &[("campaign_id", "5")]).await;
    // Far beyond WAIT: a reply within WAIT was not retried until it.
    let worker = env
        .start_worker(&[("LCM__LIMITS__REQUEST_DEADLINE_MS", "60000")])
        .await;
    let mut requester = env.requester("desk").await;
    let reply = requester.request(&request_for("stringcall", "1")).await;
    assert_eq!(reply.error_message(), "Invalid Call ID:stringcall");
    let reply = requester.request(&request_for("hashlist", "1")).await;
    assert_eq!(
        reply.error_message(),
        "Corrupt business outcome data for Campaign ID:5"
    );
    worker.wait_logged("WRONGTYPE").await;
}

#[tokio::test]
async fn a_burst_of_lookups_gets_each_its_own_row() {
    // The lookups of deliveries handed over together are in flight on one
    // multiplexed connection at once: a record of the wrong type, an absent
    // one and another account among them must not answer for the rest.
    let env = TestEnv::new("lookup-burst").await;
    env.seed_sample().await;
    let prefix = &env.names.key_prefix;
    let mut redis = env.redis.clone();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:call:stringcall"))
        .arg("campaign_id=1")
        .arg("EX")
        .arg(600)
        .query_async(&mut redis)
        .await
        .unwrap();
    // Requests queued while no worker consumes reach the next one in one
    // burst, up to its prefetch.
    let first = env.start_worker(&[]).await;
    assert!(first.terminate().await.success());
    let mut requester = env.requester("desk").await;
    let cases = [
        ("12345", "5|3|1|0|0|44|1", None),
        ("stringcall", "1", Some("Invalid Call ID:stringcall")),
        ("absent", "1", Some("Invalid Call ID:absent")),
        ("12345", "5|3|1", Some("Invalid AccountNumber:5|3|1")),
    ];
    let mut sent = Vec::new();
    for _ in 0..10 {
        for (callid, account, error) in cases {
            let id = requester.send(&request_for(callid, account)).await;
            sent.push((id, callid, error));
        }
    }
    let _worker = env.start_worker(&[("LCM__AMQP__PREFETCH", "64")]).await;
    for (id, callid, error) in sent {
        let reply = requester.reply_for(&id).await.expect("a reply in time");
        match error {
            Some(error) => assert_eq!(reply.error_message(), error, "{callid}"),
            None => assert_eq!(
                reply.body["message"]["response"][0]["OutComeID"], "101",
                "{callid}: {}",
                reply.body
            ),
        }
    }
}
