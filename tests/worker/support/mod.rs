//! Shared code of the integration tests, apart from the tests themselves:
//! each test's own names and connections (`env`), the worker process
//! (`worker`), the requester (`requester`), the reply schemas (`schemas`),
//! steady load (`load`), waiting with a deadline (`wait`), watching a
//! worker over time (`sampler`), fault-injecting proxies (`proxy`, `tls`),
//! a hostile publisher (`poison`), an OTLP trace receiver (`otlp`), and servers of a test's own: a
//! redis-server (`redis_server`), a Redis ACL user (`redis_user`), a RabbitMQ node (`rabbitmq_node`) and a
//! cluster of them (`rabbitmq_cluster`).

mod broker;
mod cancel_proxy;
mod env;
mod load;
mod otlp;
mod poison;
pub mod proxy;
mod rabbitmq_cluster;
mod rabbitmq_node;
mod redis_server;
mod redis_user;
mod requester;
mod sampler;
mod schemas;
pub mod tls;
mod wait;
mod worker;

pub use broker::{connection_names, rabbitmqctl_output, unacknowledged};
pub use cancel_proxy::CancelProxy;
pub use env::{amqp_address, amqp_url, redis_address, TestEnv};
pub use load::{Load, Sent};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use poison::{nested_table, PoisonPublisher, Swap};
pub use rabbitmq_cluster::PrivateCluster;
pub use rabbitmq_node::PrivateBroker;
pub use redis_server::{redis_server_program, PrivateRedis};
pub use redis_user::RedisUser;
pub use requester::{
    assert_sample_cli_reply, checked_recv, direct_reply_to, new_correlation_id, request_for,
    sample_request, Reply, ReplyTally, Requester,
};
pub use sampler::{longest_idle, outages, Sample, Sampler};
pub use wait::{eventually, eventually_some, free_port, WAIT};
pub use worker::{metric_sum, Worker};
