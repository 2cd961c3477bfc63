//! Shared code of the integration tests, apart from the tests themselves:
//! each test's own names and connections (`env`), the worker process
//! (`worker`), the requester (`requester`), waiting with a deadline
//! (`wait`), fault-injecting proxies (`proxy`, `tls`), and servers of a
//! test's own: a redis-server (`redis_server`) and a RabbitMQ node
//! (`rabbitmq_node`).

mod env;
mod poison;
pub mod proxy;
mod rabbitmq_node;
mod redis_server;
mod requester;
mod schemas;
pub mod tls;
mod wait;
mod worker;

pub use env::*;
pub use poison::*;
pub use rabbitmq_node::*;
pub use redis_server::*;
pub use requester::*;
pub use wait::*;
pub use worker::*;
