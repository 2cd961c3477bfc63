//! What a run measured: counters and the latency histogram, rendered as a
//! table for people or as one JSON object for machines.
//!
//! Pure: no broker, no cache, no clock.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The slowest latency the histogram tells apart: one hour, in microseconds.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds, 1 µs to one hour, 3 significant
/// figures. Fixed bounds rather than `Histogram::new`'s auto-resizing one:
/// `saturating_record` clamps to the *current* maximum and never resizes,
/// so an auto-resizing histogram would record every latency as 2 µs.
pub fn latency_histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
}

/// Records one latency; longer than an hour counts as an hour.
pub fn record_latency(histogram: &mut Histogram<u64>, latency: std::time::Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros);
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest answered request.
    pub max: u64,
}

impl Latency {
    /// Reads the percentiles off a histogram of microseconds; all zero
    /// when nothing was recorded.
    pub fn from_histogram(histogram: &Histogram<u64>) -> Self {
        Self {
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }
}

/// How the load was offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Closed loop: this many requests in flight.
    Closed {
        /// Requests in flight.
        concurrency: usize,
    },
    /// Open loop: this many requests per second, whatever the replies do.
    Open {
        /// Requests per second.
        rate: f64,
    },
}

/// The outcome of one run. Serialises to the `--json` object, whose field
/// names are a stable interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Requests published.
    pub sent: u64,
    /// Requests that got a reply (the first one, right or wrong).
    pub answered: u64,
    /// Requests without a reply when the run ended.
    pub lost: u64,
    /// Replies that differ from the expected one, or whose correlation id
    /// is unknown or was answered before (duplicates included).
    pub wrong: u64,
    /// Second and later replies to one request (also counted in `wrong`).
    pub duplicates: u64,
    /// From the first send to the last reply (or the last send, if later).
    pub elapsed_s: f64,
    /// `answered / elapsed_s`.
    pub throughput_per_s: f64,
    /// Latency from each request's scheduled send time to its reply.
    pub latency_us: Latency,
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Requests in flight (closed loop only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Requests per second offered (open loop only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

/// The raw counts a run ends with.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Requests published.
    pub sent: u64,
    /// Requests answered at least once.
    pub answered: u64,
    /// Wrong replies, duplicates and unknown correlation ids included.
    pub wrong: u64,
    /// Repeated replies.
    pub duplicates: u64,
    /// Seconds from the first send to the last event.
    pub elapsed_s: f64,
    /// Latency of the answered requests, microseconds.
    pub latency: Histogram<u64>,
}

impl Report {
    /// Summarises a run.
    pub fn new(mode: Mode, tally: &Tally) -> Self {
        let (mode_name, concurrency, rate) = match mode {
            Mode::Closed { concurrency } => ("closed", Some(concurrency), None),
            Mode::Open { rate } => ("open", None, Some(rate)),
        };
        let throughput = if tally.elapsed_s > 0.0 {
            tally.answered as f64 / tally.elapsed_s
        } else {
            0.0
        };
        Self {
            sent: tally.sent,
            answered: tally.answered,
            lost: tally.sent.saturating_sub(tally.answered),
            wrong: tally.wrong,
            duplicates: tally.duplicates,
            elapsed_s: round(tally.elapsed_s, 1e3),
            throughput_per_s: round(throughput, 10.0),
            latency_us: Latency::from_histogram(&tally.latency),
            mode: mode_name,
            concurrency,
            rate,
        }
    }

    /// Whether every request got exactly the expected reply.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.wrong == 0
    }

    /// The table printed without `--json`: latencies in milliseconds.
    pub fn table(&self) -> String {
        let mode = match (self.concurrency, self.rate) {
            (Some(n), _) => format!("closed loop, concurrency {n}"),
            (_, Some(rate)) => format!("open loop, {rate} requests/s"),
            _ => self.mode.to_owned(),
        };
        let l = &self.latency_us;
        let rows = [
            ("mode", mode),
            ("sent", self.sent.to_string()),
            ("answered", self.answered.to_string()),
            ("lost", self.lost.to_string()),
            ("wrong", self.wrong.to_string()),
            ("duplicates", self.duplicates.to_string()),
            ("elapsed", format!("{:.3} s", self.elapsed_s)),
            (
                "throughput",
                format!("{:.1} answered/s", self.throughput_per_s),
            ),
            ("latency p50", ms(l.p50)),
            ("latency p90", ms(l.p90)),
            ("latency p99", ms(l.p99)),
            ("latency p99.9", ms(l.p999)),
            ("latency max", ms(l.max)),
        ];
        let mut table = String::new();
        for (name, value) in rows {
            // Writing to a String cannot fail.
            let _ = writeln!(table, "{name:<14} {value}");
        }
        table
    }
}

fn ms(micros: u64) -> String {
    format!("{}.{:03} ms", micros / 1000, micros % 1000)
}

fn round(value: f64, scale: f64) -> f64 {
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn tally() -> Tally {
        let mut latency = latency_histogram().unwrap();
        // Below 2048 a 3-figure histogram is exact, so the percentiles are too.
        for micros in 1..=1000 {
            record_latency(&mut latency, Duration::from_micros(micros));
        }
        Tally {
            sent: 1002,
            answered: 1000,
            wrong: 1,
            duplicates: 1,
            elapsed_s: 2.000_4,
            latency,
        }
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let latency = Latency::from_histogram(&tally().latency);
        assert_eq!(
            latency,
            Latency {
                p50: 500,
                p90: 900,
                p99: 990,
                p999: 999,
                max: 1000
            }
        );
    }

    #[test]
    fn long_latencies_are_recorded_as_they_are_up_to_an_hour() {
        let mut latency = latency_histogram().unwrap();
        record_latency(&mut latency, Duration::from_millis(1500));
        let max = Latency::from_histogram(&latency).max;
        assert!((1_499_000..=1_501_000).contains(&max), "{max}");
        record_latency(&mut latency, Duration::from_secs(7200));
        let max = Latency::from_histogram(&latency).max;
        assert!((3_599_000_000..=3_601_000_000).contains(&max), "{max}");
    }

    #[test]
    fn an_empty_run_reports_zeros_not_nan() {
        let tally = Tally {
            sent: 0,
            answered: 0,
            wrong: 0,
            duplicates: 0,
            elapsed_s: 0.0,
            latency: latency_histogram().unwrap(),
        };
        let report = Report::new(Mode::Closed { concurrency: 1 }, &tally);
        assert_eq!(report.throughput_per_s, 0.0);
        assert_eq!(report.latency_us.max, 0);
        assert!(report.passed());
    }

    #[test]
    fn lost_or_wrong_fails_the_run() {
        let report = Report::new(Mode::Closed { concurrency: 4 }, &tally());
        assert_eq!(report.lost, 2);
        assert!(!report.passed());
        let mut t = tally();
        t.sent = 1000;
        assert!(!Report::new(Mode::Closed { concurrency: 4 }, &t).passed());
        t.wrong = 0;
        assert!(Report::new(Mode::Closed { concurrency: 4 }, &t).passed());
    }

    #[test]
    fn the_json_field_names_are_stable() {
        let report = Report::new(Mode::Open { rate: 500.0 }, &tally());
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            serde_json::json!({
                "sent": 1002, "answered": 1000, "lost": 2, "wrong": 1, "duplicates": 1,
                "elapsed_s": 2.0, "throughput_per_s": 499.9,
                "latency_us": {"p50": 500, "p90": 900, "p99": 990, "p999": 999, "max": 1000},
                "mode": "open", "rate": 500.0
            })
        );
        let closed = Report::new(Mode::Closed { concurrency: 64 }, &tally());
        let json = serde_json::to_value(&closed).unwrap();
        assert_eq!(json["mode"], "closed");
        assert_eq!(json["concurrency"], 64);
        assert!(json.get("rate").is_none());
    }

    #[test]
    fn the_table_shows_milliseconds_with_three_decimals() {
        let report = Report::new(Mode::Closed { concurrency: 64 }, &tally());
        assert_eq!(
            report.table(),
            "\
mode           closed loop, concurrency 64
sent           1002
answered       1000
lost           2
wrong          1
duplicates     1
elapsed        2.000 s
throughput     499.9 answered/s
latency p50    0.500 ms
latency p90    0.900 ms
latency p99    0.990 ms
latency p99.9  0.999 ms
latency max    1.000 ms
"
        );
        assert_eq!(ms(12_345), "12.345 ms");
        assert_eq!(ms(7), "0.007 ms");
    }
}
