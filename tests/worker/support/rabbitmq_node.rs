//! A RabbitMQ node of a test's own, started from the local installation
//! on free ports with its own data directory and Erlang cookie, so that a
//! test may stop, restart or kill it without touching the shared broker.
//! Stopped and removed on drop.

use std::path::PathBuf;
use std::process::Command as StdCommand;
use std::time::Duration;

use tokio::time::Instant;

use super::wait::*;

/// The server script of the local installation; `LCM_TEST_RABBITMQ_SERVER`
/// points elsewhere.
pub fn server_script() -> String {
    std::env::var("LCM_TEST_RABBITMQ_SERVER")
        .unwrap_or_else(|_| "/usr/lib/rabbitmq/bin/rabbitmq-server".into())
}

/// `rabbitmqctl`, beside the server script.
pub fn ctl_script() -> String {
    let server = PathBuf::from(server_script());
    server.with_file_name("rabbitmqctl").display().to_string()
}

/// A RabbitMQ node of this test's own; stopped and removed on drop.
pub struct PrivateBroker {
    node: String,
    port: u16,
    dir: PathBuf,
}

/// A node boots in about 14 s on the 2-core CI machine, more while the
/// other tests run.
const BOOT: Duration = Duration::from_secs(90);

impl PrivateBroker {
    pub async fn start(name: &str) -> Self {
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
    pub fn command(&self, program: &str) -> StdCommand {
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

    pub async fn ctl(&self, args: &[&str]) -> String {
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

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub async fn listening(&self) -> bool {
        tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_ok()
    }

    pub async fn wait_listening(&self, within: Duration) {
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
    pub async fn prefetches(&self, queue: &str) -> Vec<u32> {
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
