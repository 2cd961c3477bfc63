//! Watches a worker while a test breaks things: `/readyz` and a few
//! metrics, polled every few milliseconds, each sample time-stamped, so
//! that a test can measure how long the worker was not consuming, how long
//! it served nothing, and how many deliveries it held at most.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::worker::*;

/// One look at the worker.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// `/readyz` did not say "not consuming".
    pub consuming: bool,
    /// `lcm_requests_total`, every kind and result.
    pub settled: f64,
    /// `lcm_deliveries_in_hand`.
    pub in_hand: f64,
}

/// Samples a worker until dropped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    _stop: tokio_util::sync::DropGuard,
}

impl Sampler {
    /// Starts sampling `worker` (which must already serve HTTP) every `every`.
    pub fn start(worker: &Worker, every: Duration) -> Self {
        let base = worker.base.get().expect("the worker serves HTTP").clone();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (sink, stopped) = (samples.clone(), stop.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stopped.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Some(sample) = look(&client, &base).await {
                    sink.lock().unwrap().push(sample);
                }
            }
        });
        Self {
            samples,
            _stop: stop.drop_guard(),
        }
    }

    /// The samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }
}

async fn look(client: &reqwest::Client, base: &str) -> Option<Sample> {
    let at = Instant::now();
    let get = |path: &str| {
        let request = client
            .get(format!("{base}{path}"))
            .timeout(Duration::from_secs(1));
        async move { request.send().await.ok()?.text().await.ok() }
    };
    let ready = get("/readyz").await?;
    let metrics = get("/metrics").await?;
    Some(Sample {
        at,
        consuming: !ready.contains("not consuming"),
        settled: metric_sum(&metrics, "lcm_requests_total", &[]),
        in_hand: metric_sum(&metrics, "lcm_deliveries_in_hand", &[]),
    })
}

/// A stretch of time the worker was not consuming.
#[derive(Debug, Clone, Copy)]
pub struct Outage {
    /// The first sample that saw it not consuming.
    pub from: Instant,
    /// The first sample that saw it consuming again.
    pub until: Instant,
}

/// Every stretch of not consuming, in order; one still running at the
/// last sample ends there.
pub fn outages(samples: &[Sample]) -> Vec<Outage> {
    let mut outages = Vec::new();
    let mut down: Option<Instant> = None;
    for sample in samples {
        match (down, sample.consuming) {
            (None, false) => down = Some(sample.at),
            (Some(from), true) => {
                outages.push(Outage {
                    from,
                    until: sample.at,
                });
                down = None;
            }
            _ => {}
        }
    }
    if let (Some(from), Some(last)) = (down, samples.last()) {
        outages.push(Outage {
            from,
            until: last.at,
        });
    }
    outages
}

/// The longest time between `from` and `to` in which the worker settled
/// no request.
pub fn longest_idle(samples: &[Sample], from: Instant, to: Instant) -> Duration {
    let window: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .collect();
    let mut longest = Duration::ZERO;
    let mut since = from;
    for pair in window.windows(2) {
        if pair[1].settled > pair[0].settled {
            longest = longest.max(pair[1].at - since);
            since = pair[1].at;
        }
    }
    if let Some(last) = window.last() {
        longest = longest.max(last.at - since);
    }
    longest
}
