//! The metrics catalogue (docs/protocol.md section 8): every family named and
//! described once, with a small typed function for each thing recorded.
//! No other module writes a metric name.
//!
//! [`describe`] gives every family its HELP text and registers each series
//! a dashboard or alert expects at zero, so that a freshly started worker
//! already exposes them before its first request.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::protocol::KINDS;

/// Requests settled, by request kind (`subtopic`) and `result`.
pub const REQUESTS_TOTAL: &str = "lcm_requests_total";
/// Time from receipt to settlement, by request kind.
pub const REQUEST_DURATION_SECONDS: &str = "lcm_request_duration_seconds";
/// Redis round trips of the serving path, by operation.
pub const REDIS_DURATION_SECONDS: &str = "lcm_redis_duration_seconds";
/// Failed Redis round trips, by operation.
pub const REDIS_ERRORS_TOTAL: &str = "lcm_redis_errors_total";
/// Replies RabbitMQ returned as unroutable.
pub const REPLIES_UNROUTABLE_TOTAL: &str = "lcm_replies_unroutable_total";
/// Consuming resumed after a lost connection.
pub const AMQP_RECONNECTS_TOTAL: &str = "lcm_amqp_reconnects_total";
/// Deliveries being handled now.
pub const DELIVERIES_IN_HAND: &str = "lcm_deliveries_in_hand";
/// Replies of `[]` for a campaign with no stored list.
pub const EMPTY_OUTCOME_LISTS_TOTAL: &str = "lcm_empty_outcome_lists_total";
/// Finished spans not exported, by reason.
pub const SPANS_DROPPED_TOTAL: &str = "lcm_spans_dropped_total";
/// Always 1, labelled with the version.
pub const BUILD_INFO: &str = "lcm_build_info";

/// The `result` of a request answered with its outcomes.
pub const RESULT_OK: &str = "ok";
/// The `result` of a request put in the dead-letter queue.
pub const RESULT_DEAD_LETTERED: &str = "dead_lettered";
/// The `subtopic` label of a request whose kind is not known.
pub const UNKNOWN_KIND: &str = "unknown";

/// A Redis round trip of the serving path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisOperation {
    /// The call record (one script: the fields' lengths, then the fields).
    Call,
    /// A campaign's outcome list.
    Outcomes,
}

impl RedisOperation {
    const ALL: [Self; 2] = [Self::Call, Self::Outcomes];

    /// Its place in [`Self::ALL`].
    fn index(self) -> usize {
        self as usize
    }

    /// The `operation` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Outcomes => "outcomes",
        }
    }

    /// The Redis command (or pipeline) it sends, for its span.
    pub fn command(self) -> &'static str {
        match self {
            Self::Call => "EVALSHA",
            Self::Outcomes => "PIPELINE",
        }
    }
}

/// Why a finished span was not exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanDrop {
    /// The export queue was full: the collector is slower than the spans.
    QueueFull,
    /// The collector did not take the batch (refused, unreachable, timed out).
    ExportFailed,
}

impl SpanDrop {
    const ALL: [Self; 2] = [Self::QueueFull, Self::ExportFailed];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::ExportFailed => "export_failed",
        }
    }
}

/// Latency buckets in seconds, from a cache hit to the request deadline.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The process-wide Prometheus recorder, installed and described on first
/// use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; this one then
            // renders nothing, which is the best that can be done.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

/// Describes every family and registers its expected series at zero.
fn describe() {
    describe_counter!(
        REQUESTS_TOTAL,
        "Requests settled, by request kind (subtopic) and result: ok, a WS_Error kind, or dead_lettered."
    );
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time from receipt of a request to its settlement, by request kind."
    );
    describe_histogram!(
        REDIS_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Redis round trips of the serving path, by operation."
    );
    describe_counter!(
        REDIS_ERRORS_TOTAL,
        "Redis round trips that failed or timed out, by operation."
    );
    describe_counter!(
        REPLIES_UNROUTABLE_TOTAL,
        "Replies RabbitMQ returned as unroutable: nobody was listening."
    );
    describe_counter!(
        AMQP_RECONNECTS_TOTAL,
        "Times consuming resumed after the AMQP connection or channel was lost."
    );
    describe_gauge!(DELIVERIES_IN_HAND, "Deliveries being handled now.");
    describe_counter!(
        EMPTY_OUTCOME_LISTS_TOTAL,
        "Replies of [] for a campaign with no stored outcome list."
    );
    describe_counter!(
        SPANS_DROPPED_TOTAL,
        "Finished spans not exported, by reason: queue_full or export_failed."
    );
    describe_gauge!(BUILD_INFO, "Always 1; the version is in the label.");

    for kind in KINDS {
        counter!(REQUESTS_TOTAL, "subtopic" => kind.label(), "result" => RESULT_OK).absolute(0);
        let _ = histogram!(REQUEST_DURATION_SECONDS, "subtopic" => kind.label());
    }
    for operation in RedisOperation::ALL {
        let _ = histogram!(REDIS_DURATION_SECONDS, "operation" => operation.label());
        counter!(REDIS_ERRORS_TOTAL, "operation" => operation.label()).absolute(0);
    }
    counter!(REPLIES_UNROUTABLE_TOTAL).absolute(0);
    counter!(AMQP_RECONNECTS_TOTAL).absolute(0);
    gauge!(DELIVERIES_IN_HAND).set(0.0);
    counter!(EMPTY_OUTCOME_LISTS_TOTAL).absolute(0);
    for reason in SpanDrop::ALL {
        counter!(SPANS_DROPPED_TOTAL, "reason" => reason.label()).absolute(0);
    }
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Folds buffered histogram samples into their buckets four times a second
/// until `shutdown`. The exporter keeps every sample until a scrape or an
/// upkeep, so without this an unscraped worker's memory grows with its
/// traffic.
pub async fn metrics_upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => handle.run_upkeep(),
        }
    }
}

/// The handles of the series every delivery records, registered once
/// (those of a request's kind and result are in [`SETTLED`]). `counter!`
/// and its kin find their series in the exporter's registry on every call,
/// hashing and comparing its name and labels (what that cost a request is
/// in docs/performance.md, "The delivery's task and its metrics").
struct Hot {
    in_hand: Gauge,
    /// By [`RedisOperation::index`].
    redis_duration: [Histogram; 2],
}

fn hot() -> &'static Hot {
    static HOT: OnceLock<Hot> = OnceLock::new();
    HOT.get_or_init(|| {
        // Installed first: a handle taken before the recorder is a no-op
        // for good.
        let _ = metrics_handle();
        Hot {
            in_hand: gauge!(DELIVERIES_IN_HAND),
            redis_duration: RedisOperation::ALL.map(
                |operation| histogram!(REDIS_DURATION_SECONDS, "operation" => operation.label()),
            ),
        }
    })
}

/// A request's two series, by its kind and result.
struct Settled {
    kind: &'static str,
    result: &'static str,
    requests: Counter,
    duration: Histogram,
}

thread_local! {
    /// The series of each (kind, result) seen on this thread: a few kinds
    /// times a few results, all `'static`, so a short list.
    static SETTLED: RefCell<Vec<Settled>> = const { RefCell::new(Vec::new()) };
}

/// A request was settled with `result`, `elapsed` after its receipt.
pub fn request_settled(kind: &'static str, result: &'static str, elapsed: Duration) {
    SETTLED.with_borrow_mut(|seen| {
        let at = match seen
            .iter()
            .position(|s| s.kind == kind && s.result == result)
        {
            Some(at) => at,
            None => {
                // The recorder first, as in `hot`.
                let _ = hot();
                seen.push(Settled {
                    kind,
                    result,
                    requests: counter!(REQUESTS_TOTAL, "subtopic" => kind, "result" => result),
                    duration: histogram!(REQUEST_DURATION_SECONDS, "subtopic" => kind),
                });
                seen.len() - 1
            }
        };
        seen[at].requests.increment(1);
        seen[at].duration.record(elapsed.as_secs_f64());
    });
}

/// A Redis round trip took `elapsed`; `failed` when it gave no answer.
pub fn redis_round_trip(operation: RedisOperation, elapsed: Duration, failed: bool) {
    hot().redis_duration[operation.index()].record(elapsed.as_secs_f64());
    if failed {
        counter!(REDIS_ERRORS_TOTAL, "operation" => operation.label()).increment(1);
    }
}

/// `spans` finished spans were not exported, for `reason`.
pub fn spans_dropped(reason: SpanDrop, spans: u64) {
    counter!(SPANS_DROPPED_TOTAL, "reason" => reason.label()).increment(spans);
}

/// A reply came back unroutable.
pub fn reply_unroutable() {
    counter!(REPLIES_UNROUTABLE_TOTAL).increment(1);
}

/// Consuming resumed after a loss.
pub fn amqp_reconnected() {
    counter!(AMQP_RECONNECTS_TOTAL).increment(1);
}

/// An empty list was answered for a campaign with none stored.
pub fn empty_outcome_list() {
    counter!(EMPTY_OUTCOME_LISTS_TOTAL).increment(1);
}

/// Counts a delivery in hand from its receipt until it is settled, or
/// until the guard is dropped.
#[derive(Debug)]
pub struct InHand {
    released: AtomicBool,
}

impl InHand {
    /// A delivery is taken in hand.
    pub fn take() -> Self {
        in_hand(1.0);
        Self {
            released: AtomicBool::new(false),
        }
    }

    /// The delivery is settled: it counts no more, though its task may
    /// still be sending the ack. Called before the ack or reject goes
    /// out, so that the count never exceeds the deliveries RabbitMQ
    /// holds unacknowledged (at most the prefetch).
    pub fn release(&self) {
        if !self.released.swap(true, Ordering::Relaxed) {
            in_hand(-1.0);
        }
    }
}

impl Drop for InHand {
    fn drop(&mut self) {
        self.release();
    }
}

fn in_hand(change: f64) {
    hot().in_hand.increment(change);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Set in the copy of this test binary that
    /// [`series_recorded_before_the_exporter_is_asked_for_still_reach_it`]
    /// starts: the recorder is process-wide, and its absence is the case
    /// under test.
    const CHILD: &str = "LCM_METRICS_TEST_CHILD";

    #[test]
    fn series_recorded_before_the_exporter_is_asked_for_still_reach_it() {
        const NAME: &str =
            "telemetry::metrics::tests::series_recorded_before_the_exporter_is_asked_for_still_reach_it";
        if std::env::var_os(CHILD).is_some() {
            // Nothing has installed the recorder yet in this process: a
            // handle taken now from the global recorder would be a no-op.
            let in_hand = InHand::take();
            redis_round_trip(RedisOperation::Call, Duration::from_micros(50), false);
            request_settled("metrics_test_child", RESULT_OK, Duration::from_millis(1));
            let text = metrics_handle().render();
            let counted = [
                ("lcm_deliveries_in_hand", 1.0),
                (r#"lcm_redis_duration_seconds_count{operation="call"}"#, 1.0),
                (
                    r#"lcm_requests_total{subtopic="metrics_test_child",result="ok"}"#,
                    1.0,
                ),
            ];
            for (series, value) in counted {
                assert_eq!(sample(&text, series), value, "{series} in {text}");
            }
            drop(in_hand);
            return;
        }
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--test-threads=1"])
            .env(CHILD, "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // One test's few lines fit the pipe, so the child never waits on it.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the child test did not finish within 60 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut output = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut output).unwrap();
        assert!(status.success(), "{output}");
        assert!(output.contains("1 passed"), "{output}");
    }

    #[test]
    fn recorded_series_count_into_their_own_labels_and_a_settled_delivery_counts_down_once() {
        let handle = metrics_handle();
        let lengths = r#"lcm_redis_duration_seconds_count{operation="call"}"#;
        let lists = r#"lcm_redis_duration_seconds_count{operation="outcomes"}"#;
        let before = sample(&handle.render(), lengths);
        let lists_before = sample(&handle.render(), lists);
        let in_hand_before = sample(&handle.render(), "lcm_deliveries_in_hand");
        for _ in 0..2 {
            request_settled("metrics_test_a", RESULT_OK, Duration::from_millis(1));
            redis_round_trip(RedisOperation::Call, Duration::from_micros(50), false);
        }
        redis_round_trip(RedisOperation::Outcomes, Duration::from_micros(50), false);
        request_settled("metrics_test_a", "InvalidCallId", Duration::from_millis(1));
        request_settled("metrics_test_b", RESULT_OK, Duration::from_millis(1));
        let in_hand = InHand::take();
        let held = InHand::take();
        held.release();
        held.release();
        drop(held);
        let text = handle.render();
        let requests = |kind: &str, result: &str| {
            sample(
                &text,
                &format!(r#"lcm_requests_total{{subtopic="{kind}",result="{result}"}}"#),
            )
        };
        assert_eq!(requests("metrics_test_a", RESULT_OK), 2.0);
        assert_eq!(requests("metrics_test_a", "InvalidCallId"), 1.0);
        assert_eq!(requests("metrics_test_b", RESULT_OK), 1.0);
        let durations = r#"lcm_request_duration_seconds_count{subtopic="metrics_test_a"}"#;
        assert_eq!(sample(&text, durations), 3.0);
        assert_eq!(sample(&text, lengths) - before, 2.0);
        // Each operation's kept handle is its own label's series.
        assert_eq!(sample(&text, lists) - lists_before, 1.0);
        // One still in hand; the released one counted down once only.
        assert_eq!(
            sample(&text, "lcm_deliveries_in_hand") - in_hand_before,
            1.0
        );
        drop(in_hand);
    }
}
