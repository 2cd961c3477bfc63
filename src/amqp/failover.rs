//! What the supervisor does after a session failed: try the next endpoint
//! at once, pause, or stop. Pure: the supervisor feeds it each failure and
//! sleeps or connects as told, so every case is a plain `#[test]`.
//!
//! The aim (project issue 13): losing one node of a cluster costs a few
//! seconds of consuming, not a backoff step per failed declaration.

use super::topology::Refusal;

/// How a session ended short of shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// The connection could not be made, or it or the channel was lost;
    /// `consumed` if the session got as far as consuming.
    Lost {
        /// The session consumed before it was lost.
        consumed: bool,
    },
    /// The broker answered and refused a declaration.
    Refused(Refusal),
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Connect to the next endpoint now.
    OtherEndpoint,
    /// Every endpoint failed in a row: pause, then start another round.
    Pause(Pace),
    /// A start-up error: the broker refused the topology before anything
    /// was served, and every node would say the same.
    Stop,
}

/// How long the pause after a failed round grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pace {
    /// No endpoint answered, or every one refused the configuration:
    /// the full capped backoff, so that a worker does not hammer a
    /// cluster that is down.
    Full,
    /// Some node answered and refused for a reason of its own (a queue's
    /// home node down): that clears as soon as the node is back, so the
    /// pause stays short and the worker sees the node's return at once.
    Short,
}

/// The supervisor's memory between sessions.
#[derive(Debug, Clone)]
pub(super) struct FailOver {
    endpoints: usize,
    served_once: bool,
    failed_in_round: usize,
    node_local_in_round: bool,
}

impl FailOver {
    /// Fail-over between `endpoints` endpoints (at least one).
    pub fn new(endpoints: usize) -> Self {
        Self {
            endpoints: endpoints.max(1),
            served_once: false,
            failed_in_round: 0,
            node_local_in_round: false,
        }
    }

    /// Whether some session has consumed: reaching consuming again is a
    /// reconnection.
    pub fn served_once(&self) -> bool {
        self.served_once
    }

    /// Records `failure` and says what to do next.
    pub fn after(&mut self, failure: Failure) -> Next {
        match failure {
            // Only the configuration is wrong everywhere: before anything
            // was served, that is a start-up error. Afterwards the worker
            // keeps trying, since an operator may be fixing it.
            Failure::Refused(Refusal::Configuration) if !self.served_once => return Next::Stop,
            Failure::Refused(Refusal::Configuration) => {}
            Failure::Refused(Refusal::NodeLocal) => self.node_local_in_round = true,
            Failure::Lost { consumed } => {
                if consumed {
                    // A new round starts with the endpoint just lost.
                    self.served_once = true;
                    self.failed_in_round = 0;
                    self.node_local_in_round = false;
                }
            }
        }
        self.failed_in_round += 1;
        if self.failed_in_round < self.endpoints {
            return Next::OtherEndpoint;
        }
        let pace = if self.node_local_in_round {
            Pace::Short
        } else {
            Pace::Full
        };
        self.failed_in_round = 0;
        self.node_local_in_round = false;
        Next::Pause(pace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOST: Failure = Failure::Lost { consumed: false };
    const LOST_AFTER_CONSUMING: Failure = Failure::Lost { consumed: true };
    const HOME_NODE_DOWN: Failure = Failure::Refused(Refusal::NodeLocal);
    const MISMATCH: Failure = Failure::Refused(Refusal::Configuration);

    fn run(endpoints: usize, failures: &[Failure]) -> Vec<Next> {
        let mut failover = FailOver::new(endpoints);
        failures.iter().map(|f| failover.after(*f)).collect()
    }

    #[test]
    fn a_mismatch_before_serving_stops_the_worker() {
        assert_eq!(run(3, &[MISMATCH]), [Next::Stop]);
        assert_eq!(run(3, &[LOST, MISMATCH]), [Next::OtherEndpoint, Next::Stop]);
    }

    #[test]
    fn a_node_local_refusal_before_serving_tries_the_next_node_at_once() {
        assert_eq!(
            run(3, &[HOME_NODE_DOWN, HOME_NODE_DOWN]),
            [Next::OtherEndpoint, Next::OtherEndpoint]
        );
    }

    #[test]
    fn a_refusal_on_a_reconnect_tries_the_next_node_at_once() {
        for refusal in [HOME_NODE_DOWN, MISMATCH] {
            assert_eq!(
                run(3, &[LOST_AFTER_CONSUMING, refusal]),
                [Next::OtherEndpoint, Next::OtherEndpoint],
                "{refusal:?}"
            );
        }
    }

    #[test]
    fn a_lost_node_then_a_home_node_refusal_pauses_briefly_after_the_round() {
        // The node the worker used died; the survivors refuse a queue whose
        // home was on it.
        let next = run(3, &[LOST_AFTER_CONSUMING, HOME_NODE_DOWN, HOME_NODE_DOWN]);
        assert_eq!(
            next,
            [
                Next::OtherEndpoint,
                Next::OtherEndpoint,
                Next::Pause(Pace::Short)
            ]
        );
    }

    #[test]
    fn rounds_where_no_node_answers_take_the_full_backoff() {
        assert_eq!(
            run(2, &[LOST, LOST, LOST, LOST]),
            [
                Next::OtherEndpoint,
                Next::Pause(Pace::Full),
                Next::OtherEndpoint,
                Next::Pause(Pace::Full)
            ]
        );
    }

    #[test]
    fn rounds_where_every_node_refuses_the_configuration_take_the_full_backoff() {
        assert_eq!(
            run(2, &[LOST_AFTER_CONSUMING, MISMATCH]),
            [Next::OtherEndpoint, Next::Pause(Pace::Full)]
        );
    }

    #[test]
    fn the_pace_is_decided_per_round() {
        let next = run(2, &[LOST, HOME_NODE_DOWN, LOST, LOST]);
        assert_eq!(next[1], Next::Pause(Pace::Short));
        assert_eq!(next[3], Next::Pause(Pace::Full));
    }

    #[test]
    fn consuming_starts_a_new_round() {
        // Two failures, then a session that consumed and was lost: the
        // round counts from that loss, so the next node is tried at once.
        let next = run(3, &[LOST, LOST, LOST_AFTER_CONSUMING, LOST]);
        assert_eq!(next[2], Next::OtherEndpoint);
        assert_eq!(next[3], Next::OtherEndpoint);
    }

    #[test]
    fn one_endpoint_pauses_after_every_failure() {
        assert_eq!(
            run(1, &[LOST_AFTER_CONSUMING, HOME_NODE_DOWN, LOST]),
            [
                Next::Pause(Pace::Full),
                Next::Pause(Pace::Short),
                Next::Pause(Pace::Full)
            ]
        );
    }

    #[test]
    fn a_mismatch_after_serving_never_stops_the_worker() {
        let mut failover = FailOver::new(1);
        failover.after(LOST_AFTER_CONSUMING);
        assert!(failover.served_once());
        for _ in 0..5 {
            assert_eq!(failover.after(MISMATCH), Next::Pause(Pace::Full));
        }
    }
}
