//! A redis-server of a test's own, on a port of its own, to stop and start
//! under a worker.

use std::process::Stdio;

use super::wait::*;

/// The program tests start their own Redis servers and sentinels with:
/// `LCM_TEST_REDIS_SERVER` (Valkey's `valkey-server` takes the same
/// arguments and configuration), else `redis-server` on the `PATH`.
pub fn redis_server_program() -> String {
    std::env::var("LCM_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// A private redis-server on `port`, stopped when dropped.
pub struct PrivateRedis(tokio::process::Child);

impl PrivateRedis {
    pub async fn start(port: u16) -> PrivateRedis {
        let child = tokio::process::Command::new(redis_server_program())
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the redis-server program (LCM_TEST_REDIS_SERVER)");
        let url = format!("redis://127.0.0.1:{port}");
        eventually("private Redis answers", || async {
            match deadpool_redis::redis::Client::open(url.as_str()) {
                Ok(client) => client.get_multiplexed_async_connection().await.is_ok(),
                Err(_) => false,
            }
        })
        .await;
        PrivateRedis(child)
    }

    pub async fn stop(mut self) {
        self.0.kill().await.unwrap();
    }
}
