//! The settle policy: what becomes of a request once its reply has been
//! offered to RabbitMQ (docs/protocol.md section 4, acknowledgement rule).
//!
//! Pure, so that every row is tested without a broker. The delivery task
//! (`super::delivery`) carries the answer out.

/// How RabbitMQ took one publish of the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Routed and confirmed.
    Confirmed,
    /// Confirmed, but returned as unroutable: nobody is listening.
    Returned,
    /// Negatively confirmed: RabbitMQ could not take it.
    Refused,
    /// The publish or its confirm failed with an error.
    Failed,
}

/// The state of the channel the request came on, after the publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    /// Still open: the request can be acknowledged or rejected.
    Open,
    /// Closed or lost: the request can no longer be settled on it.
    Closed,
}

/// What to do with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Acknowledge it. `unroutable` when the reply was returned, which is
    /// logged and counted.
    Ack {
        /// The reply was returned as unroutable.
        unroutable: bool,
    },
    /// Publish the reply again after a pause.
    Retry,
    /// Reject it without requeue, into the dead-letter queue.
    DeadLetter,
    /// Leave it unacknowledged: RabbitMQ redelivers it when the channel
    /// closes.
    LeaveForRedelivery,
}

/// Decides from the publish `outcome`, the `channel` state and whether the
/// request's deadline is still ahead.
///
/// - A confirmed reply, or one returned unroutable (nobody listens, so
///   nobody would ever take it), acknowledges the request.
/// - A refused reply is published again until the deadline, then the
///   request is dead-lettered rather than held or looped.
/// - A failed publish on a lost channel leaves the request for
///   redelivery; on a channel still open the fault lies with this message,
///   so it is dead-lettered.
pub fn settle(outcome: PublishOutcome, channel: ChannelState, before_deadline: bool) -> Settle {
    match (outcome, channel) {
        (PublishOutcome::Confirmed, _) => Settle::Ack { unroutable: false },
        (PublishOutcome::Returned, _) => Settle::Ack { unroutable: true },
        (PublishOutcome::Refused, ChannelState::Open) if before_deadline => Settle::Retry,
        (PublishOutcome::Refused, ChannelState::Open) => Settle::DeadLetter,
        (PublishOutcome::Failed, ChannelState::Open) => Settle::DeadLetter,
        (PublishOutcome::Refused | PublishOutcome::Failed, ChannelState::Closed) => {
            Settle::LeaveForRedelivery
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChannelState::{Closed, Open};
    use PublishOutcome::{Confirmed, Failed, Refused, Returned};

    #[test]
    fn every_row_of_the_policy() {
        let ack = Settle::Ack { unroutable: false };
        let unroutable = Settle::Ack { unroutable: true };
        let rows = [
            // outcome, channel, before the deadline, decision
            (Confirmed, Open, true, ack),
            (Confirmed, Open, false, ack),
            // A confirm that arrived just before the channel went still
            // counts: the ack fails on its own and RabbitMQ redelivers.
            (Confirmed, Closed, true, ack),
            (Confirmed, Closed, false, ack),
            (Returned, Open, true, unroutable),
            (Returned, Open, false, unroutable),
            (Returned, Closed, true, unroutable),
            (Returned, Closed, false, unroutable),
            (Refused, Open, true, Settle::Retry),
            (Refused, Open, false, Settle::DeadLetter),
            (Refused, Closed, true, Settle::LeaveForRedelivery),
            (Refused, Closed, false, Settle::LeaveForRedelivery),
            (Failed, Open, true, Settle::DeadLetter),
            (Failed, Open, false, Settle::DeadLetter),
            (Failed, Closed, true, Settle::LeaveForRedelivery),
            (Failed, Closed, false, Settle::LeaveForRedelivery),
        ];
        for (outcome, channel, before_deadline, expected) in rows {
            assert_eq!(
                settle(outcome, channel, before_deadline),
                expected,
                "{outcome:?} on a channel {channel:?}, before the deadline: {before_deadline}"
            );
        }
    }

    #[test]
    fn nothing_is_retried_past_the_deadline() {
        for outcome in [Confirmed, Returned, Refused, Failed] {
            for channel in [Open, Closed] {
                assert_ne!(settle(outcome, channel, false), Settle::Retry);
            }
        }
    }
}
