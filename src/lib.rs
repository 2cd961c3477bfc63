//! # lcm-worker
//!
//! Answers LCM `GetBusinessOutcome` requests arriving over RabbitMQ with the
//! campaign's business outcomes from a Redis cache. The wire contract is
//! PROTOCOL.md; this crate keeps it.
//!
//! # Layout
//!
//! Pure logic (no broker, no cache):
//! - [`protocol`]: request parsing and validation, reply and `WS_Error` rendering.
//! - [`requests`]: the request kinds (one handler each) and the subtopic dispatch.
//! - [`outcomes`]: stored outcome lists to normalised reply entries.
//! - [`cache`]: parsed outcome lists shared between requests for a short TTL.
//! - [`routing`]: where a reply goes, and its correlation id.
//! - [`service`]: the request -> reply decision over a [`service::Store`],
//!   with the cache retry policy.
//! - [`backoff`]: capped exponential backoff with jitter.
//!
//! I/O:
//! - [`store`]: the Redis store (the only module that speaks Redis).
//! - [`amqp`]: topology, confirmed publishing, the consumer loop (the only
//!   modules that speak AMQP).
//! - [`http`] and [`health`]: `/healthz`, `/readyz`, `/metrics`.
//!
//! - [`tls`]: rustls configurations from the `*.tls.*` files, for lapin and Redis.
//!
//! Plumbing: [`settings`] (layered configuration), [`secrets`] (password
//! files into URLs), [`telemetry`] (logs and
//! metrics), [`shutdown`] (signals), [`worker`] (the entry point that wires
//! it all), [`seed`] (the `seed` command), [`client`] (the `request` command),
//! [`check`] (the `check` command), [`bench`] (the `bench` command: load
//! generator, its own data set and reply check, latency report).

pub mod amqp;
pub mod backoff;
pub mod bench;
pub mod cache;
pub mod check;
pub mod client;
pub mod health;
pub mod http;
pub mod outcomes;
pub mod protocol;
pub mod requests;
pub mod routing;
pub mod secrets;
pub mod seed;
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod worker;
