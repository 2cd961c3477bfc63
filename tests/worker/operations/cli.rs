//! The command line as users run it.

use std::collections::HashMap;

use deadpool_redis::redis::AsyncCommands;

use crate::support::tls::TempFile;
use crate::support::*;

async fn run_request(env: &TestEnv, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .arg("request")
        .args(args)
        .envs(env.worker_env())
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn request_prints_the_sample_reply_alone_on_stdout_and_exits_zero() {
    let env = TestEnv::new("cli-ok").await;
    env.seed_sample().await;
    let _worker = env.start_worker(&[]).await;
    let output = run_request(&env, &["--callid", "12345", "--account", "5|3|1|0|0|44|1"]).await;
    assert_sample_cli_reply(&output);
}

#[tokio::test]
async fn request_exits_non_zero_with_the_ws_error_for_an_unknown_call() {
    let env = TestEnv::new("cli-err").await;
    let _worker = env.start_worker(&[]).await;
    let output = run_request(&env, &["--callid", "404", "--account", "1"]).await;
    assert_eq!(output.status.code(), Some(1));
    let reply: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(reply["message"]["errorMessage"], "Invalid Call ID:404");
}

#[tokio::test]
async fn request_whose_standard_output_is_closed_fails_with_a_message_not_a_panic() {
    let env = TestEnv::new("cli-closed-stdout").await;
    env.seed_sample().await;
    let _worker = env.start_worker(&[]).await;
    // As `lcm-worker request ... | head -c 0`: nobody reads the answer.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .args([
            "request",
            "--callid",
            "12345",
            "--account",
            "5|3|1|0|0|44|1",
        ])
        .envs(env.worker_env())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("writing to standard output"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn request_without_a_worker_says_no_queue_takes_the_source() {
    let env = TestEnv::new("cli-none").await;
    // The exchange exists but nothing is bound to it.
    env.channel
        .exchange_declare(
            env.names.request_exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    let output = run_request(
        &env,
        &["--callid", "1", "--account", "1", "--timeout", "2s"],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no queue takes source `lcm-cli`"));
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn the_binary_runs_from_an_empty_directory_without_any_config_file() {
    let env = TestEnv::new("cli-anywhere").await;
    env.seed_sample().await;
    // As `cargo install`, a systemd unit or a plain copy runs it: no
    // config/default.toml in the working directory.
    let empty = std::env::temp_dir().join(format!("lcm-empty-{}", env.names.id));
    std::fs::create_dir_all(&empty).unwrap();
    let check = tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .arg("check")
        .current_dir(&empty)
        .envs(env.worker_env())
        .env_remove("LCM_CONFIG")
        .output()
        .await
        .unwrap();
    let worker = env.spawn_worker_in(&empty, &[]);
    worker.wait_ready().await;
    let mut requester = env.requester("desk").await;
    requester.sample_is_answered().await;
    std::fs::remove_dir(&empty).unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[tokio::test]
async fn a_number_out_of_bounds_or_not_whole_and_an_empty_binding_list_stop_start_up_naming_the_key(
) {
    let env = TestEnv::new("cli-bounds").await;
    for (var, value, key) in [
        // Once an allocation of 11 TB, which aborted the process.
        ("LCM__REDIS__POOL_SIZE", "100000000000", "`redis.pool_size`"),
        // Once rounded to 2.
        ("LCM__AMQP__PREFETCH", "1.5", "`amqp.prefetch`"),
        // Once a binding of the key "".
        ("LCM__AMQP__BINDINGS", "", "`amqp.bindings`"),
    ] {
        let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
            .envs(env.worker_env())
            .env("LCM__HTTP__ADDR", "127.0.0.1:0")
            .env_remove("LCM_CONFIG")
            .env(var, value)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(WAIT, run)
            .await
            .unwrap_or_else(|_| panic!("{var}={value}: the worker ran"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(key), "{var}={value}: {stderr}");
        assert!(stderr.starts_with("lcm-worker: configuration:"), "{stderr}");
    }
}

/// `lcm-worker check --offline` with exactly `vars` in its environment.
async fn check_offline(vars: &[(&str, &str)]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .args(["check", "--offline"])
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn check_offline_prints_the_effective_configuration_without_contacting_anything() {
    let config = TempFile::new(
        "offline.toml",
        "[http]\naddr = \"0.0.0.0:9187\"\n[shutdown]\ngrace_ms = 25000\n",
    );
    let redis_password = TempFile::new("offline-redis-password", "hunter2\n");
    // Nothing listens on port 1: `check` without --offline fails there.
    let output = check_offline(&[
        ("LCM_CONFIG", &config.path()),
        ("LCM__AMQP__URL", "amqp://lcm:pw-from-env@127.0.0.1:1/%2f"),
        ("LCM__REDIS__URL", "redis://127.0.0.1:1"),
        ("LCM__REDIS__PASSWORD_FILE", &redis_password.path()),
        ("LCM__AMQP__PREFETCH", "32"),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("# configuration: valid"), "{stdout}");
    let effective: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(effective["http"]["addr"].as_str(), Some("0.0.0.0:9187"));
    assert_eq!(effective["shutdown"]["grace_ms"].as_integer(), Some(25000));
    assert_eq!(effective["amqp"]["prefetch"].as_integer(), Some(32));
    assert_eq!(
        effective["amqp"]["url"].as_str(),
        Some("amqp://lcm:***@127.0.0.1:1/%2f")
    );
    assert_eq!(
        effective["redis"]["url"].as_str(),
        Some("redis://:***@127.0.0.1:1")
    );
    // Every key of the built-in defaults is there (unchanged ones too).
    assert_eq!(
        effective["redis"]["key_prefix"].as_str(),
        Some("lcm"),
        "{stdout}"
    );
    for secret in ["pw-from-env", "hunter2"] {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
        assert!(!stderr.contains(secret), "{secret} logged:\n{stderr}");
    }
}

#[tokio::test]
async fn check_offline_refuses_an_unknown_key_from_the_file_or_the_environment() {
    let config = TempFile::new("offline-typo.toml", "[amqp]\nprefetchh = 4\n");
    let cases = [
        (("LCM_CONFIG", config.path()), "unknown field `prefetchh`"),
        (
            ("LCM__SHUTDOWN__GRACE_SECONDS", "30".to_owned()),
            "unknown field `grace_seconds`",
        ),
    ];
    for ((var, value), expected) in cases {
        let output = check_offline(&[(var, &value)]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(expected), "{var}={value}: {stderr}");
        assert!(output.stdout.is_empty(), "{var}={value}");
    }
}

async fn run_seed(env: &TestEnv, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .arg("seed")
        .args(args)
        .envs(env.worker_env())
        .output()
        .await
        .unwrap()
}

fn stdout_of(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test]
async fn seed_keep_existing_writes_only_the_missing_records_and_run_again_nothing() {
    let env = TestEnv::new("cli-seed-keep").await;
    let prefix = env.names.key_prefix.clone();
    let file = std::env::temp_dir().join(format!("lcm-seed-{}.json", env.names.id));
    std::fs::write(
        &file,
        r#"{"calls": {"c1": {"campaign_id": "1", "account_number": "A"},
                      "c2": {"campaign_id": 2}},
            "campaigns": {"1": [{"OutComeID": "101", "Description": "From the file"}],
                          "2": [{"OutComeID": "201", "Description": "Two"}]}}"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    // Already there, and edited since: call c1 and campaign 1.
    env.seed_call("c1", &[("campaign_id", "1"), ("account_number", "edited")])
        .await;
    env.seed_outcomes("1", r#"[{"OutComeID":"101","Description":"Edited"}]"#)
        .await;
    let mut redis = env.redis.clone();

    let first = stdout_of(&run_seed(&env, &["--keep-existing", file]).await);
    assert_eq!(
        first,
        format!("seeded 1 calls and 1 campaigns under key prefix `{prefix}`; kept 1 calls and 1 campaigns already there\n")
    );
    let c1: HashMap<String, String> = redis.hgetall(format!("{prefix}:call:c1")).await.unwrap();
    assert_eq!(c1["account_number"], "edited");
    let c2: HashMap<String, String> = redis.hgetall(format!("{prefix}:call:c2")).await.unwrap();
    assert_eq!(c2, HashMap::from([("campaign_id".into(), "2".into())]));
    let list1: String = redis
        .get(format!("{prefix}:campaign:1:outcomes"))
        .await
        .unwrap();
    assert_eq!(list1, r#"[{"OutComeID":"101","Description":"Edited"}]"#);
    let list2: String = redis
        .get(format!("{prefix}:campaign:2:outcomes"))
        .await
        .unwrap();
    assert_eq!(list2, r#"[{"OutComeID":"201","Description":"Two"}]"#);

    let again = stdout_of(&run_seed(&env, &["--keep-existing", file]).await);
    assert_eq!(
        again,
        format!("seeded 0 calls and 0 campaigns under key prefix `{prefix}`; kept 2 calls and 2 campaigns already there\n")
    );
    let c1_again: HashMap<String, String> =
        redis.hgetall(format!("{prefix}:call:c1")).await.unwrap();
    assert_eq!(c1_again, c1);

    // Without the option the file's records replace what is there.
    let replaced = stdout_of(&run_seed(&env, &[file]).await);
    assert_eq!(
        replaced,
        format!("seeded 2 calls and 2 campaigns under key prefix `{prefix}`\n")
    );
    let c1: HashMap<String, String> = redis.hgetall(format!("{prefix}:call:c1")).await.unwrap();
    assert_eq!(c1["account_number"], "A");
    std::fs::remove_file(file).unwrap();
}
