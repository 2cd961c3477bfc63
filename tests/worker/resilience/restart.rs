//! A real broker restart. Consumers and publisher confirms have hung after
//! broker restarts in past lapin releases (amqp-rs/lapin issues 244-246,
//! 389, 420, 450), and lapin's own recovery does not re-apply `basic.qos`.
//! The shared RabbitMQ serves the other tests, so this test starts a
//! RabbitMQ node of its own from the local installation, on free ports and
//! with its own data directory, and restarts that node's broker
//! application (`rabbitmqctl stop_app` / `start_app`: every connection is
//! closed by the broker, the listener goes away, and comes back).

use std::path::PathBuf;
use std::process::Command as StdCommand;
use std::time::Duration;

use tokio::time::Instant;

use crate::harness::*;

/// The server script of the local installation; `LCM_TEST_RABBITMQ_SERVER`
/// points elsewhere.
fn server_script() -> String {
    std::env::var("LCM_TEST_RABBITMQ_SERVER")
        .unwrap_or_else(|_| "/usr/lib/rabbitmq/bin/rabbitmq-server".into())
}

/// `rabbitmqctl`, beside the server script.
fn ctl_script() -> String {
    let server = PathBuf::from(server_script());
    server.with_file_name("rabbitmqctl").display().to_string()
}

/// A RabbitMQ node of this test's own; stopped and removed on drop.
struct PrivateBroker {
    node: String,
    port: u16,
    dir: PathBuf,
}

/// A node boots in about 14 s on the 2-core CI machine, more while the
/// other tests run.
const BOOT: Duration = Duration::from_secs(90);

impl PrivateBroker {
    async fn start(name: &str) -> Self {
        let port = free_port();
        let dist_port = free_port();
        let node = format!("{name}{port}@localhost");
        let dir = std::env::temp_dir().join(format!("lcm-test-{name}-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        let broker = Self { node, port, dir };
        let status = broker
            .command(&server_script())
            .arg("-detached")
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "this test starts its own RabbitMQ node with {} ({e}); \
                     set LCM_TEST_RABBITMQ_SERVER to the rabbitmq-server script",
                    server_script()
                )
            });
        assert!(status.success(), "rabbitmq-server -detached: {status}");
        broker.wait_listening(BOOT).await;
        broker
    }

    /// The node's own environment: its name, files and Erlang cookie (in
    /// `HOME`), none of the system node's.
    fn command(&self, program: &str) -> StdCommand {
        let mut command = StdCommand::new(program);
        command
            .env("HOME", &self.dir)
            .env("RABBITMQ_CONF_ENV_FILE", self.dir.join("none.conf"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq.conf"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                self.dir.join("enabled_plugins"),
            )
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    }

    async fn ctl(&self, args: &[&str]) -> String {
        let mut command = self.command(&ctl_script());
        command.args(["-n", &self.node]).args(args);
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    async fn listening(&self) -> bool {
        tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_ok()
    }

    async fn wait_listening(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.listening().await {
            assert!(
                Instant::now() < deadline,
                "private RabbitMQ node {} not listening on {} after {within:?}",
                self.node,
                self.port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The prefetch of each consumer on `queue`, as the broker reports it.
    async fn prefetches(&self, queue: &str) -> Vec<u32> {
        self.ctl(&["list_consumers", "-q", "queue_name", "prefetch_count"])
            .await
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .filter(|(name, _)| *name == queue)
            .filter_map(|(_, prefetch)| prefetch.trim().parse().ok())
            .collect()
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self
            .command(&ctl_script())
            .args(["-n", &self.node, "stop"])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `lcm-worker request` for the sample call, through `broker`.
async fn sample_request(env: &TestEnv, broker: &PrivateBroker) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_lcm-worker"))
        .args([
            "request",
            "--callid",
            "12345",
            "--account",
            "5|3|1|0|0|44|1",
        ])
        .args(["--timeout", "10s"])
        .envs(env.worker_env())
        .env("LCM__AMQP__URL", broker.url())
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn after_a_real_broker_restart_the_worker_consumes_again_with_the_same_prefetch() {
    let broker = PrivateBroker::start("lcmrestart").await;
    let env = TestEnv::new("restart").await;
    env.seed_sample().await;
    let url = broker.url();
    let worker = env
        .start_worker(&[("LCM__AMQP__URL", &url), ("LCM__AMQP__PREFETCH", "7")])
        .await;
    let queue = env.names.request_queue.clone();
    assert_sample_cli_reply(&sample_request(&env, &broker).await);
    assert_eq!(broker.prefetches(&queue).await, [7]);

    broker.ctl(&["stop_app"]).await;
    assert!(!broker.listening().await, "the listener is gone");
    eventually("the worker notices and is not ready", || async {
        worker
            .get("/readyz")
            .await
            .is_some_and(|(status, body)| status == 503 && body.contains("not consuming"))
    })
    .await;

    broker.ctl(&["start_app"]).await;
    eventually("one consumer again, with the same prefetch", || async {
        broker.prefetches(&queue).await == [7]
    })
    .await;
    worker.wait_ready().await;
    assert_sample_cli_reply(&sample_request(&env, &broker).await);
    // Publisher confirms work on the new channel: the reply above was
    // published with one, and the request acknowledged after it.
    worker
        .wait_counter("lcm_requests_total", &["result=\"ok\""], 2.0)
        .await;
    assert!(worker.counter("lcm_amqp_reconnects_total", &[]).await >= 1.0);
    assert!(
        worker.logs().contains("AMQP connection lost"),
        "{}",
        worker.logs()
    );
}
