//! Integration tests: the real `lcm-worker` binary against the real
//! RabbitMQ and Redis (override with LCM_TEST_AMQP_URL, LCM_TEST_REDIS_URL).

mod bench;
mod cli;
mod endpoints;
mod errors;
mod faults;
mod harness;
mod load;
mod normalisation;
mod operations;
mod parent;
mod proxy;
mod quorum;
mod restart;
mod routes;
mod sample;
mod secrets;
mod sentinel;
mod tls;
mod tls_proxy;
mod topology;
