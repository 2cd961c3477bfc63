//! What the broker itself says, through `rabbitmqctl` (`LCM_TEST_RABBITMQCTL`
//! names another one, for a broker other than the machine's own): the
//! things a client cannot see, such as connection names and
//! unacknowledged counts.

use tokio::process::Command;

/// The `rabbitmqctl` of the broker at `LCM_TEST_AMQP_URL`.
fn rabbitmqctl() -> String {
    std::env::var("LCM_TEST_RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".into())
}

/// Runs `rabbitmqctl -q <args>` and returns its standard output.
pub async fn rabbitmqctl_output(args: &[&str]) -> String {
    let output = Command::new(rabbitmqctl())
        .arg("-q")
        .args(args)
        .output()
        .await
        .expect("run rabbitmqctl (LCM_TEST_RABBITMQCTL)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `connection_name` client properties of the open connections that
/// start with `prefix`.
pub async fn connection_names(prefix: &str) -> Vec<String> {
    let listing = rabbitmqctl_output(&["list_connections", "client_properties"]).await;
    let quoted = format!("\"{prefix}");
    let mut names: Vec<String> = listing
        .match_indices(&quoted)
        .filter_map(|(at, _)| {
            let rest = &listing[at + 1..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .collect();
    names.sort();
    names
}

/// Messages of `queue` delivered and not yet acknowledged, as the broker
/// counts them.
pub async fn unacknowledged(queue: &str) -> u64 {
    let listing = rabbitmqctl_output(&["list_queues", "name", "messages_unacknowledged"]).await;
    listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .find(|(name, _)| *name == queue)
        .and_then(|(_, count)| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("queue {queue} not listed: {listing}"))
}
