//! A RabbitMQ cluster of a test's own: nodes started in parallel from the
//! local installation (see `rabbitmq_node`) with one shared Erlang cookie,
//! joined with `rabbitmqctl join_cluster`. Every node is killed by its pid
//! and removed on drop, also when the test fails.

use std::time::Duration;

use super::rabbitmq_node::*;
use super::wait::*;

/// Nodes of one cluster; the first is the one the others joined.
pub struct PrivateCluster {
    pub nodes: Vec<PrivateBroker>,
}

impl PrivateCluster {
    /// Starts `size` nodes named `name…` at once and joins them.
    pub async fn start(name: &str, size: usize) -> Self {
        let cookie = format!("LCMTEST{}{}", std::process::id(), free_port());
        let starts = (0..size).map(|i| {
            let name = format!("{name}{i}x");
            let cookie = cookie.clone();
            async move { PrivateBroker::start_with_cookie(&name, Some(&cookie)).await }
        });
        let nodes = futures_util::future::join_all(starts).await;
        let cluster = Self { nodes };
        let first = cluster.nodes[0].node().to_owned();
        // One at a time: joins change the cluster's schema, and RabbitMQ
        // serialises them anyway.
        for node in &cluster.nodes[1..] {
            node.ctl(&["stop_app"]).await;
            node.ctl(&["join_cluster", &first]).await;
            node.ctl(&["start_app"]).await;
            node.wait_listening(Duration::from_secs(60)).await;
        }
        cluster.wait_running(size).await;
        cluster
    }

    /// The AMQP URLs of every node, comma-separated, for `LCM__AMQP__URLS`.
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(|n| n.url()).collect();
        urls.join(",")
    }

    /// The node named `node`.
    pub fn by_name(&self, node: &str) -> Option<&PrivateBroker> {
        self.nodes.iter().find(|n| n.node() == node)
    }

    /// A node whose VM runs, to ask `rabbitmqctl` through.
    pub fn any_up(&self) -> &PrivateBroker {
        self.nodes
            .iter()
            .find(|n| n.os_pid().is_some())
            .expect("a node of the cluster is up")
    }

    /// Waits until `count` nodes run the broker application.
    pub async fn wait_running(&self, count: usize) {
        eventually(&format!("{count} cluster nodes running"), || async {
            self.running_nodes().await.len() == count
        })
        .await;
    }

    /// The nodes running the broker application, as `cluster_status` says.
    pub async fn running_nodes(&self) -> Vec<String> {
        let status = self
            .any_up()
            .ctl(&["cluster_status", "--formatter", "json"])
            .await;
        let status: serde_json::Value = serde_json::from_str(&status).unwrap_or_default();
        status["running_nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The node that holds the AMQP connection named `connection_name`.
    pub async fn connected_node(&self, connection_name: &str) -> Option<&PrivateBroker> {
        let listed = self
            .any_up()
            .ctl(&["list_connections", "-q", "port", "client_properties"])
            .await;
        let port = listed
            .lines()
            .filter(|line| line.contains(connection_name))
            .find_map(|line| line.split('\t').next()?.trim().parse::<u16>().ok())?;
        self.nodes.iter().find(|n| n.port() == port)
    }

    /// The leader and the online members of quorum queue `queue`.
    pub async fn quorum_leader_and_online(&self, queue: &str) -> Option<(String, Vec<String>)> {
        let listed = self
            .any_up()
            .ctl(&["list_queues", "-q", "name", "leader", "online"])
            .await;
        let line = listed
            .lines()
            .find(|line| line.split('\t').next() == Some(queue))?;
        let mut columns = line.split('\t').skip(1);
        let leader = columns.next()?.trim().to_owned();
        let online = columns
            .next()?
            .trim_matches(|c| c == '[' || c == ']' || c == ' ')
            .split(',')
            .map(|n| n.trim().trim_matches('\'').to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        Some((leader, online))
    }

    /// Moves the leadership of quorum queue `queue` (vhost `/`) to `node`.
    pub async fn transfer_leadership(&self, queue: &str, node: &str) {
        let expression = format!(
            "{{ok, Q}} = rabbit_amqqueue:lookup(rabbit_misc:r(<<\"/\">>, queue, <<\"{queue}\">>)), \
             rabbit_quorum_queue:transfer_leadership(Q, '{node}')."
        );
        let answer = self.any_up().ctl(&["eval", &expression]).await;
        // RabbitMQ 3.x answers `{migrated, Node}` (or `{not_migrated, Why}`),
        // 4.x `{ok, Node}` (or `{error, Why}`). The caller waits for the
        // leader to be `node`.
        let answer = answer.trim();
        let migrated = answer.starts_with("{migrated,") || answer.starts_with("{ok,");
        assert!(migrated, "transfer_leadership to {node}: {answer}");
    }
}
