//! Integration tests: the real `lcm-worker` binary against the real
//! RabbitMQ and Redis (override with LCM_TEST_AMQP_URL, LCM_TEST_REDIS_URL).

mod bench;
mod cli;
mod errors;
mod harness;
mod load;
mod normalisation;
mod parent;
mod routes;
mod sample;
mod topology;
