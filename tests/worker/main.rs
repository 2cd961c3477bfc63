//! Integration tests: the real `lcm-worker` against the real RabbitMQ and
//! Redis (override with LCM_TEST_AMQP_URL, LCM_TEST_REDIS_URL), grouped by
//! what they prove. Shared code is in `support`.

/// The contract: replies, errors, routing and topology as docs/protocol.md says.
mod contract {
    mod errors;
    mod normalisation;
    mod parent;
    mod routes;
    mod sample;
    mod topology;
}

/// Hostile input: whatever bytes a publisher sends, one message never
/// stops the service, loops, or floods the logs.
mod hostile {
    mod bounds;
    mod frames;
    mod loops;
    mod probes;
    mod records;
    mod reply_to;
}

/// Running it: commands, metrics, health, logs, secrets, the in-process worker.
mod operations {
    mod bench;
    mod cli;
    mod in_process;
    mod observability;
    mod secrets;
    mod signals;
    mod traces;
}

/// Faults survived: lost connections, broker restarts, fail-over, Redis
/// outages, refusals and Sentinel, load, TLS.
mod resilience {
    mod acks;
    mod cluster;
    mod endpoints;
    mod faults;
    mod load;
    mod log_pipe;
    mod lookup_script;
    mod quorum;
    mod refusals;
    mod replicas;
    mod restart;
    mod sentinel;
    mod slow_cache;
    mod tls;
}

mod support;
