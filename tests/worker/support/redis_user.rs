//! A Redis ACL user of a test's own on the shared Redis (a unique name),
//! deleted again on drop, also when the test panicked.

use deadpool_redis::redis;

use super::env::*;

/// An ACL user named after the test, with a password of its own.
pub struct RedisUser {
    pub name: String,
    pub password: String,
}

impl RedisUser {
    /// Creates the user, enabled, with its password and `rules` (ACL
    /// SETUSER syntax: `~prefix:*`, `+@all`, `-hmget`, ...).
    pub async fn create(env: &TestEnv, rules: &[&str]) -> RedisUser {
        let user = RedisUser {
            name: format!("lcm-test-{}", env.names.id),
            password: format!("pw-{}", env.names.id),
        };
        let password = format!(">{}", user.password);
        let mut all = vec!["reset", "on", password.as_str()];
        all.extend_from_slice(rules);
        user.set(env, &all).await;
        user
    }

    /// Applies more `rules` to the user.
    pub async fn set(&self, env: &TestEnv, rules: &[&str]) {
        let mut redis = env.redis.clone();
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&self.name)
            .arg(rules)
            .query_async(&mut redis)
            .await
            .unwrap();
    }

    /// The test Redis's URL, as this user with `password`.
    pub fn url_with(&self, password: &str) -> String {
        let mut url = url::Url::parse(&redis_url()).unwrap();
        url.set_username(&self.name).unwrap();
        url.set_password(Some(password)).unwrap();
        url.to_string()
    }

    /// The test Redis's URL, as this user.
    pub fn url(&self) -> String {
        self.url_with(&self.password)
    }
}

impl Drop for RedisUser {
    fn drop(&mut self) {
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let client = redis::Client::open(redis_url()).unwrap();
                if let Ok(mut redis) = client.get_multiplexed_async_connection().await {
                    let _: Result<(), _> = redis::cmd("ACL")
                        .arg("DELUSER")
                        .arg(&name)
                        .query_async(&mut redis)
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}
