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

pub use broker::*;
pub use cancel_proxy::*;
pub use env::*;
pub use load::*;
pub use otlp::*;
pub use poison::*;
pub use rabbitmq_cluster::*;
pub use rabbitmq_node::*;
pub use redis_server::*;
pub use redis_user::*;
pub use requester::*;
pub use sampler::*;
pub use wait::*;
pub use worker::*;
