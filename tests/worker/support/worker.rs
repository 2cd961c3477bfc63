//! The real `lcm-worker` binary as a child process: started with a test's
//! names, its HTTP address learnt from its log, its logs kept.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::env::*;
use super::wait::*;

impl TestEnv {
    /// Starts a worker and waits until `/readyz` answers 200.
    pub async fn start_worker(&self, extra: &[(&str, &str)]) -> Worker {
        let worker = self.spawn_worker(extra);
        worker.wait_ready().await;
        worker
    }

    /// Starts a worker without waiting for it.
    pub fn spawn_worker(&self, extra: &[(&str, &str)]) -> Worker {
        self.spawn_worker_in(Path::new(env!("CARGO_MANIFEST_DIR")), extra)
    }

    /// Starts a worker in `directory` without waiting for it.
    pub fn spawn_worker_in(&self, directory: &Path, extra: &[(&str, &str)]) -> Worker {
        spawn_logged(self.worker_command(directory, extra, &[]))
    }

    /// Starts a worker that may open at most `limit` file descriptors
    /// (`prlimit --nofile`), without waiting for it.
    pub fn spawn_worker_with_fd_limit(&self, limit: u32, extra: &[(&str, &str)]) -> Worker {
        let nofile = format!("--nofile={limit}");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        spawn_logged(self.worker_command(manifest, extra, &["prlimit", &nofile, "--"]))
    }

    /// Starts a worker whose standard error is a pipe that nobody reads
    /// any more: its read end is closed before the worker starts, so every
    /// write to it fails (`EPIPE`). The worker serves HTTP on a free port
    /// chosen here, since its log cannot say which.
    pub fn spawn_worker_with_closed_log_pipe(&self, extra: &[(&str, &str)]) -> Worker {
        let mut command = self.worker_command(Path::new(env!("CARGO_MANIFEST_DIR")), extra, &[]);
        let addr = format!("127.0.0.1:{}", free_port());
        command.env("LCM__HTTP__ADDR", &addr);
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        command.stderr(writer);
        let child = command.spawn().expect("spawn lcm-worker");
        let base = Arc::new(OnceLock::new());
        let _ = base.set(format!("http://{addr}"));
        Worker {
            child,
            base,
            logs: Arc::default(),
            log_reader: None,
        }
    }

    /// The worker's command: this test's names, `extra` on top; run
    /// through `wrapper` (a program and its arguments) if not empty.
    fn worker_command(
        &self,
        directory: &Path,
        extra: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Command {
        let worker = env!("CARGO_BIN_EXE_lcm-worker");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(worker);
                command
            }
            None => Command::new(worker),
        };
        command
            .current_dir(directory)
            .envs(self.worker_env())
            .env("RUST_LOG", "info,lcm_worker=debug")
            .env_remove("LCM_CONFIG")
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdout(Stdio::null())
            .kill_on_drop(true);
        command
    }
}

/// Starts `command` with its standard error read into the worker's logs,
/// and its HTTP address learnt from them.
fn spawn_logged(mut command: Command) -> Worker {
    // Port 0: the worker binds a free port itself and logs it, so no two
    // tests race for one.
    command.env("LCM__HTTP__ADDR", "127.0.0.1:0");
    command.stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn lcm-worker");
    let logs = Arc::new(Mutex::new(String::new()));
    let base = Arc::new(OnceLock::new());
    let stderr = child.stderr.take().unwrap();
    let sink = logs.clone();
    let found = base.clone();
    let log_reader = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = http_addr(&line) {
                let _ = found.set(format!("http://{addr}"));
            }
            let mut logs = sink.lock().unwrap();
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    Worker {
        child,
        base,
        logs,
        log_reader: Some(log_reader),
    }
}

/// A running `lcm-worker` process.
pub struct Worker {
    pub child: Child,
    /// `http://<addr>` once the worker has logged where it serves.
    pub base: Arc<OnceLock<String>>,
    pub logs: Arc<Mutex<String>>,
    /// Reads the worker's standard error into `logs`, until
    /// [`Worker::close_log_pipe`].
    log_reader: Option<tokio::task::JoinHandle<()>>,
}

impl Worker {
    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.get("/readyz").await.map(|(s, _)| s) == Some(200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("worker not ready in time; logs:\n{}", self.logs());
    }

    /// Waits until the worker consumes, whatever Redis does: `/readyz`
    /// then gives any reason but "not consuming".
    pub async fn wait_consuming(&self) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some((_, body)) = self.get("/readyz").await {
                if !body.contains("not consuming") {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("worker not consuming in time; logs:\n{}", self.logs());
    }

    /// GET a path of the worker's HTTP endpoint: status and body.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let base = self.base.get()?;
        let response = reqwest::get(format!("{base}{path}")).await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// The sum of a Prometheus counter over the series whose labels contain
    /// every one of `labels` (for example `result="ok"`).
    pub async fn counter(&self, name: &str, labels: &[&str]) -> f64 {
        let (_, text) = self.get("/metrics").await.unwrap_or_default();
        metric_sum(&text, name, labels)
    }

    /// Waits until a counter reaches `expected`. Counters move just after
    /// a request is settled, so a test may see the reply first.
    pub async fn wait_counter(&self, name: &str, labels: &[&str], expected: f64) {
        let deadline = Instant::now() + WAIT;
        let mut seen = self.counter(name, labels).await;
        while seen != expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            seen = self.counter(name, labels).await;
        }
        assert_eq!(seen, expected, "{name} {labels:?}");
    }

    /// Everything the worker has logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Waits, up to [`WAIT`], until the worker has logged `text`. Its lines
    /// go through a writer thread and a pipe, so a reply can arrive before
    /// the line about its request has been read here.
    pub async fn wait_logged(&self, text: &str) {
        self.wait_logged_times(text, 1).await;
    }

    /// Waits, up to [`WAIT`], until the worker has logged `text` at least
    /// `times` times, and returns the logs then.
    pub async fn wait_logged_times(&self, text: &str, times: usize) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let logs = self.logs();
            if logs.matches(text).count() >= times {
                return logs;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} not logged {times} times within {WAIT:?}; logs:\n{logs}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes the read end of the worker's standard error, as a log
    /// shipper that goes away: the worker's next writes fail (`EPIPE`).
    pub async fn close_log_pipe(&mut self) {
        if let Some(reader) = self.log_reader.take() {
            reader.abort();
            // Dropped with the task: the pipe's read end is closed.
            let _ = reader.await;
        }
    }

    /// Sends the signal `name` (`TERM`, `INT`, `HUP`, ...) to the worker.
    pub async fn signal(&self, name: &str) {
        let pid = self.child.id().expect("worker still running");
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(self) -> ExitStatus {
        self.signal("TERM").await;
        self.exit_status().await
    }

    /// Waits for the process to exit by itself.
    pub async fn exit_status(mut self) -> ExitStatus {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("worker did not exit in time")
            .unwrap()
    }
}

/// The sum of metric `name` in Prometheus text `text` over the series
/// whose labels contain every one of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter(|line| {
            let series = line.split_whitespace().next().unwrap_or("");
            series == name || series.starts_with(&format!("{name}{{"))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The address in the worker's "serving /healthz" line, text or JSON.
fn http_addr(line: &str) -> Option<&str> {
    if !line.contains("serving /healthz") {
        return None;
    }
    let rest = &line[line.find("addr")? + 4..];
    let start = rest.find(|c: char| c.is_ascii_digit())?;
    let rest = &rest[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}
