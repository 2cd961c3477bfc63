//! A redis-server of a test's own, on a port of its own, to stop and start
//! under a worker; or on a Unix socket of its own, with a password.

use std::path::PathBuf;
use std::process::Stdio;

use super::wait::*;

/// The program tests start their own Redis servers and sentinels with:
/// `LCM_TEST_REDIS_SERVER` (Valkey's `valkey-server` takes the same
/// arguments and configuration), else `redis-server` on the `PATH`.
pub fn redis_server_program() -> String {
    std::env::var("LCM_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// A private redis-server, stopped when dropped; its socket's directory,
/// if any, removed then too.
pub struct PrivateRedis {
    child: tokio::process::Child,
    socket_dir: Option<PathBuf>,
}

impl PrivateRedis {
    /// On 127.0.0.1:`port`, without a password.
    pub async fn start(port: u16) -> PrivateRedis {
        let args = ["--port", &port.to_string(), "--bind", "127.0.0.1"];
        Self::spawn(&args, &format!("redis://127.0.0.1:{port}"), None).await
    }

    /// On a Unix socket only (no TCP port), requiring `password`; its URL
    /// with the password is [`PrivateRedis::socket_url`].
    pub async fn start_on_socket(name: &str, password: &str) -> PrivateRedis {
        let dir = std::env::temp_dir().join(format!("lcm-redis-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("redis.sock");
        let socket_text = socket.to_string_lossy().into_owned();
        let dir_text = dir.to_string_lossy().into_owned();
        let args = [
            "--port",
            "0",
            "--unixsocket",
            &socket_text,
            "--unixsocketperm",
            "700",
            "--requirepass",
            password,
            "--dir",
            &dir_text,
        ];
        let url = format!("redis+unix://{socket_text}?pass={password}");
        Self::spawn(&args, &url, Some(dir)).await
    }

    async fn spawn(args: &[&str], url: &str, socket_dir: Option<PathBuf>) -> PrivateRedis {
        let child = tokio::process::Command::new(redis_server_program())
            .args(args)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the redis-server program (LCM_TEST_REDIS_SERVER)");
        let redis = PrivateRedis { child, socket_dir };
        eventually("private Redis answers", || async {
            match deadpool_redis::redis::Client::open(url) {
                Ok(client) => client.get_multiplexed_async_connection().await.is_ok(),
                Err(_) => false,
            }
        })
        .await;
        redis
    }

    /// The URL of the socket of [`PrivateRedis::start_on_socket`], with
    /// `query` (`pass=...`, say).
    pub fn socket_url(&self, query: &str) -> String {
        let dir = self.socket_dir.as_ref().expect("started on a socket");
        format!("redis+unix://{}/redis.sock?{query}", dir.display())
    }

    pub async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if let Some(dir) = &self.socket_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
