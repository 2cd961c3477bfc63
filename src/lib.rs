//! # lcm-worker
//!
//! Answers LCM `GetBusinessOutcome` requests arriving over RabbitMQ with the
//! campaign's business outcomes from a Redis cache. The wire contract is
//! `docs/protocol.md`; this crate keeps it.
//!
//! # Layout
//!
//! The folders show the architecture: a pure contract and decision in the
//! middle, one adapter for each system around it, operator tools and
//! plumbing at the edge. Dependencies point inwards only; there are no
//! cycles between modules.
//!
//! Pure (no broker, no cache; plain `#[test]`s cover every row of the
//! error table):
//! - `protocol`: the wire contract: request parsing and the check order,
//!   the request kinds and the one dispatch on `subtopic`, replies and
//!   `WS_Error`, where a reply goes.
//! - `outcomes`: a stored outcome list -> normalised reply entries.
//! - `json`: reading JSON into borrowed, typed fields without a
//!   `serde_json::Value` tree, as the tree would read it (for `protocol`
//!   and `outcomes`).
//! - `service`: the request -> reply decision over the `Store` port,
//!   the cache retry policy, the outcome-list cache.
//!
//! Adapters (all I/O):
//! - `amqp`: every line that speaks AMQP (lapin): connect and fail over,
//!   topology, the supervisor (reconnects), one session (a connection's
//!   life), one delivery's task, the pure settle policy it follows,
//!   confirmed publishing, and the Direct Reply-to requester of the
//!   `request` and `bench` commands.
//! - `redis`: every line that speaks Redis (redis-rs, deadpool): the store
//!   behind the `Store` port, the pool, Sentinel, and the writes of `seed`
//!   and `bench`.
//! - `http`: `/healthz`, `/readyz`, `/metrics`.
//!
//! Operator tools: `cli`: the command line: `run`, `check`, `seed`,
//! `request`, and `bench` (behind the default cargo feature `bench`).
//!
//! Plumbing: `settings` (layered configuration, validation section by
//! section, secret URLs, password files, TLS files), `telemetry` (logs; the
//! metrics catalogue, the only place a metric is named; each delivery's
//! trace and its OTLP export), `worker` (wires it
//! all and runs until shutdown), `shutdown` (signals), `panics` (what a
//! panic means for the process), `backoff`, `memory` (gives freed heap
//! memory back after a spike).
//!
//! The boundaries can be checked with grep; each prints nothing:
//!
//! ```sh
//! grep -rnE 'lapin[:]{2}' src --include=*.rs | grep -v '^src/amqp/'
//! grep -rnE '(deadpool|redis)(_redis)?::|use (deadpool|redis)' src --include=*.rs \
//!   | grep -v '^src/redis/' | grep -vE 'crate::redis::'
//! ```

#![warn(missing_docs)]
// Standard output and standard error may be a closed or full pipe: the
// print macros panic on a failed write. Logs go through `telemetry`, a
// command's answer through `cli`'s writer, which returns the error.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod amqp;
mod backoff;
pub mod cli;
mod http;
mod json;
mod memory;
pub mod outcomes;
mod panics;
pub mod protocol;
mod redis;
pub mod service;
pub mod settings;
mod shutdown;
mod telemetry;
pub mod worker;

/// The Redis store the worker reads, for examples/echo.rs's lookup.
pub use self::redis::RedisStore;
