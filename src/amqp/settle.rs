//! The settle policy: what becomes of a request once its reply has been
//! offered to RabbitMQ (docs/protocol.md section 4, acknowledgement rule).
//!
//! Pure, so that every row is tested without a broker. The delivery task
//! (`super::delivery`) carries the answer out. [`DeadLetter`] lists every
//! reason a request is dead-lettered rather than answered, wherever the
//! reason arises.

use super::publisher::PublishOutcome;
use crate::protocol::Unanswered;

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
    DeadLetter(DeadLetter),
    /// Give it back to RabbitMQ for redelivery (`basic.nack` with requeue,
    /// which RabbitMQ 4.3 and later do not count toward a quorum queue's
    /// delivery limit).
    Requeue,
    /// Leave it unacknowledged: RabbitMQ redelivers it when the channel
    /// closes.
    LeaveForRedelivery,
}

/// Why a request is dead-lettered (rejected without requeue) instead of
/// answered: every reason, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetter {
    /// The request is not to be answered (docs/protocol.md section 4).
    Unanswered(Unanswered),
    /// Deciding the reply panicked: one poisoned message never stops the
    /// worker (section 7).
    Panicked,
    /// RabbitMQ refused the reply (nack) until the request's deadline.
    ReplyRefused,
    /// Publishing the reply failed on a channel still open: the fault
    /// lies with this message.
    ReplyFailed,
}

impl DeadLetter {
    /// The reason, for the log.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unanswered(why) => why.reason(),
            Self::Panicked => "deciding the reply panicked",
            Self::ReplyRefused => "RabbitMQ refused the reply until the request's deadline",
            Self::ReplyFailed => "publishing the reply failed on an open channel",
        }
    }

    /// The property at fault, if any (empty otherwise).
    pub fn property(&self) -> &'static str {
        match self {
            Self::Unanswered(Unanswered::NotUtf8(name)) => name,
            _ => "",
        }
    }

    /// Whether the worker or the broker failed, rather than the request
    /// being one never to answer: logged as an error, not a warning.
    pub fn is_fault(&self) -> bool {
        !matches!(self, Self::Unanswered(_))
    }
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
/// - A reply whose confirm never came may or may not have been taken: the
///   request goes back for redelivery, at-least-once like a lost channel,
///   rather than holding its delivery tag for the life of the channel.
pub fn settle(outcome: PublishOutcome, channel: ChannelState, before_deadline: bool) -> Settle {
    match (outcome, channel) {
        (PublishOutcome::Confirmed, _) => Settle::Ack { unroutable: false },
        (PublishOutcome::Returned, _) => Settle::Ack { unroutable: true },
        (PublishOutcome::Refused, ChannelState::Open) if before_deadline => Settle::Retry,
        (PublishOutcome::Refused, ChannelState::Open) => {
            Settle::DeadLetter(DeadLetter::ReplyRefused)
        }
        (PublishOutcome::Failed, ChannelState::Open) => Settle::DeadLetter(DeadLetter::ReplyFailed),
        (PublishOutcome::Unconfirmed, ChannelState::Open) => Settle::Requeue,
        (
            PublishOutcome::Refused | PublishOutcome::Failed | PublishOutcome::Unconfirmed,
            ChannelState::Closed,
        ) => Settle::LeaveForRedelivery,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChannelState::{Closed, Open};
    use PublishOutcome::{Confirmed, Failed, Refused, Returned, Unconfirmed};

    #[test]
    fn every_row_of_the_policy() {
        let ack = Settle::Ack { unroutable: false };
        let unroutable = Settle::Ack { unroutable: true };
        let refused = Settle::DeadLetter(DeadLetter::ReplyRefused);
        let failed = Settle::DeadLetter(DeadLetter::ReplyFailed);
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
            (Refused, Open, false, refused),
            (Refused, Closed, true, Settle::LeaveForRedelivery),
            (Refused, Closed, false, Settle::LeaveForRedelivery),
            (Failed, Open, true, failed),
            (Failed, Open, false, failed),
            (Failed, Closed, true, Settle::LeaveForRedelivery),
            (Failed, Closed, false, Settle::LeaveForRedelivery),
            (Unconfirmed, Open, true, Settle::Requeue),
            (Unconfirmed, Open, false, Settle::Requeue),
            (Unconfirmed, Closed, true, Settle::LeaveForRedelivery),
            (Unconfirmed, Closed, false, Settle::LeaveForRedelivery),
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
        for outcome in [Confirmed, Returned, Refused, Failed, Unconfirmed] {
            for channel in [Open, Closed] {
                assert_ne!(settle(outcome, channel, false), Settle::Retry);
            }
        }
    }
}
