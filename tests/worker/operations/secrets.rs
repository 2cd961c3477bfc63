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
