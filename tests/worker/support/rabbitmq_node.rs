//! A RabbitMQ node of a test's own, started from the local installation
//! on free ports with its own data directory and Erlang cookie, so that a
//! test may stop, restart or kill it without touching the shared broker.
//! Nodes that share a cookie can be clustered (`rabbitmq_cluster`).
//! Killed by its OS pid and removed on drop.

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

/// A RabbitMQ node of this test's own; killed and removed on drop.
pub struct PrivateBroker {
    node: String,
    port: u16,
    dist_port: u16,
    dir: PathBuf,
}

/// A node boots in about 14 s on the 2-core CI machine, more while the
/// other tests run.
const BOOT: Duration = Duration::from_secs(90);

impl PrivateBroker {
    pub async fn start(name: &str) -> Self {
        Self::start_with_cookie(name, None).await
    }

    /// Starts a node whose Erlang cookie is `cookie` (written to the
    /// `.erlang.cookie` of its own `HOME`, mode 0400), so that nodes
    /// started with the same one can form a cluster.
    pub async fn start_with_cookie(name: &str, cookie: Option<&str>) -> Self {
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
        if let Some(cookie) = cookie {
            use std::os::unix::fs::PermissionsExt;
            let file = dir.join(".erlang.cookie");
            std::fs::write(&file, cookie).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
        }
        let broker = Self {
            node,
            port,
            dist_port,
            dir,
        };
        broker.launch().await;
        broker
    }

    /// Starts the node (again, after a kill: same name, ports and data).
    pub async fn launch(&self) {
        let mut command = self.command(&server_script());
        command
            .arg("-detached")
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string());
        let status = tokio::task::spawn_blocking(move || command.status())
            .await
            .unwrap()
            .unwrap_or_else(|e| {
                panic!(
                    "this test starts its own RabbitMQ node with {} ({e}); \
                     set LCM_TEST_RABBITMQ_SERVER to the rabbitmq-server script",
                    server_script()
                )
            });
        assert!(status.success(), "rabbitmq-server -detached: {status}");
        self.wait_listening(BOOT).await;
    }

    /// The Erlang node name, `name<port>@localhost`.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The OS pid of the running node's VM, from its pid file; `None`
    /// if that process is gone.
    pub fn os_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // The pid file outlives a killed node: check that the pid is still
        // this node's VM (its command line names the node's own HOME, not
        // the node name, which 3.10 sets after boot), never another
        // process that took the number.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        let home = self.dir.display().to_string();
        cmdline.split('\0').any(|arg| arg == home).then_some(pid)
    }

    /// SIGKILLs the node's VM, as a crash or a lost machine would, and
    /// waits until the process is gone.
    pub async fn kill(&self) {
        let Some(pid) = self.os_pid() else {
            return;
        };
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -KILL {pid}");
        eventually("the killed node's process is gone", || async {
            self.os_pid().is_none()
        })
        .await;
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
            .env("RABBITMQ_PID_FILE", self.dir.join("pid"))
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

    /// The AMQP port.
    pub fn port(&self) -> u16 {
        self.port
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
    /// Kills the node by its pid, also when the test failed, then removes
    /// its data directory. A test node's data is thrown away, so there is
    /// nothing to stop gracefully.
    fn drop(&mut self) {
        if let Some(pid) = self.os_pid() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while self.os_pid().is_some() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
