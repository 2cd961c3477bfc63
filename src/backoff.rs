//! Capped exponential backoff with jitter, shared by every retry loop.

use std::time::Duration;

use rand::Rng;

/// Successive pauses: `start`, doubling up to `cap`, each spread by ±20 %
/// so that replicas that lost the same broker do not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    start: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff starting at `start` and never pausing longer than `cap`.
    pub fn new(start: Duration, cap: Duration) -> Self {
        Self {
            start,
            cap,
            next: start,
        }
    }

    /// The next pause.
    pub fn next_pause(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.cap);
        base.mul_f64(rand::rng().random_range(0.8..1.2))
    }

    /// Starts again from the first pause, after a success.
    pub fn reset(&mut self) {
        self.next = self.start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let pauses: Vec<u128> = (0..5).map(|_| backoff.next_pause().as_millis()).collect();
        for (pause, base) in pauses.iter().zip([100u128, 200, 400, 400, 400]) {
            assert!(
                *pause >= base * 8 / 10 && *pause <= base * 12 / 10,
                "{pauses:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_pause() <= Duration::from_millis(120));
    }
}
