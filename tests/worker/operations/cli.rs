//! The command line as users run it.

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
