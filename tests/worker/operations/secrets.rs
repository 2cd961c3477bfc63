//! Credentials from files: `LCM__AMQP__PASSWORD_FILE` fills the password
//! of the broker URL, and the password never reaches the logs.

use crate::support::tls::TempFile;
use crate::support::*;

#[tokio::test]
async fn the_worker_takes_the_broker_password_from_a_file_and_never_logs_it() {
    let env = TestEnv::new("secrets").await;
    env.seed_sample().await;
    let password = TempFile::new("amqp-password", "guest\n");
    let worker = env
        .start_worker(&[
            ("LCM__AMQP__URL", "amqp://guest@127.0.0.1:5672/%2f"),
            ("LCM__AMQP__PASSWORD_FILE", &password.path()),
        ])
        .await;
    let mut requester = env.requester("desk").await;
    requester.sample_is_answered().await;
    let logs = worker.logs();
    assert!(logs.contains("guest:***@"), "{logs}");
    assert!(
        !logs.contains("guest:guest"),
        "the password was logged:\n{logs}"
    );
}

/// `lcm-worker check` with the test's names and `extra` settings.
async fn check(env: &TestEnv, extra: &[(&str, &str)]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .arg("check")
        .envs(env.worker_env())
        .env("RUST_LOG", "debug")
        .env_remove("LCM_CONFIG")
        .envs(extra.iter().copied())
        .output()
        .await
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

#[tokio::test]
async fn a_unix_socket_password_in_the_url_query_is_in_no_log_metric_or_check_output() {
    const SECRET: &str = "s3cret-of-the-socket";
    let env = TestEnv::new("socket-secret").await;
    let redis = PrivateRedis::start_on_socket(&env.names.id, SECRET).await;
    let url = redis.socket_url(&format!("pass={SECRET}"));
    // The sample, in the private Redis behind the socket.
    let client = deadpool_redis::redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let prefix = &env.names.key_prefix;
    let _: () = deadpool_redis::redis::pipe()
        .hset(format!("{prefix}:call:12345"), "campaign_id", "1")
        .set(
            format!("{prefix}:campaign:1:outcomes"),
            r#"[{"OutComeID":"101","Description":"Payment Done"}]"#,
        )
        .query_async(&mut conn)
        .await
        .unwrap();

    // Every crate's debug lines too: a client library may print its URL.
    let settings = [("LCM__REDIS__URL", url.as_str()), ("RUST_LOG", "debug")];
    let worker = env.start_worker(&settings).await;
    let reply = env
        .requester("desk")
        .await
        .request(&request_for("12345", "any"))
        .await;
    assert_eq!(reply.body["message"]["response"][0]["OutComeID"], "101");
    let (_, metrics) = worker.get("/metrics").await.unwrap();
    assert!(!metrics.contains(SECRET));
    let logs = worker.logs();
    assert!(logs.contains("redis.sock?pass=***"), "{logs}");
    assert!(!logs.contains(SECRET), "the password was logged:\n{logs}");

    let (passed, stdout, stderr) = check(&env, &[("LCM__REDIS__URL", &url)]).await;
    assert!(passed, "{stdout}{stderr}");
    assert!(stdout.contains("redis.sock?pass=***"), "{stdout}");
    assert!(
        !format!("{stdout}{stderr}").contains(SECRET),
        "{stdout}{stderr}"
    );

    // Refused, the password is not shown either, and check says what failed.
    let wrong = redis.socket_url("pass=wrong-s3cret&db=0");
    let (passed, stdout, stderr) = check(&env, &[("LCM__REDIS__URL", &wrong)]).await;
    assert!(!passed, "{stdout}{stderr}");
    assert!(stderr.contains("redis.sock?pass=***&db=0"), "{stderr}");
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(
        !format!("{stdout}{stderr}").contains("wrong-s3cret"),
        "{stdout}{stderr}"
    );
}
