//! Batched acknowledgements for one channel (pure).
//!
//! A request is acknowledged only after its reply is confirmed; that rule
//! stays. What changes is how acks reach the broker: instead of one frame a
//! request, the tags settled on a channel are gathered and acknowledged
//! with `multiple = true` up to the highest tag below which every delivery
//! is settled (the watermark). A delivery still in hand holds the watermark
//! back, so the tags settled above it are acknowledged one by one at the
//! next flush rather than held.
//!
//! Rejected (dead-lettered) tags are rejected on their own, at once, and
//! only then recorded here: a multiple ack sent later covers them no more,
//! since the broker has already let them go. Tags are per channel, so each
//! channel has its own tracker, and tag 0 is never sent.

//!
//! The cost of each call is proportional to the acks it concerns, never to
//! how far the tags have run ahead of a stalled delivery: settling is
//! amortised O(1), and a flush walks only the acks due.

use std::collections::VecDeque;

/// An acknowledgement to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// `basic.ack` with `multiple = true`: every outstanding tag up to this one.
    UpTo(u64),
    /// `basic.ack` of this tag alone.
    One(u64),
}

/// What is known of a tag above the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not settled yet (or never delivered on this channel).
    InHand,
    /// To be acknowledged: its ack is due and not yet sent.
    Due,
    /// Settled and gone from the broker's unacknowledged set: rejected, or
    /// acknowledged on its own.
    Gone,
}

/// The settled tags of one channel, and what is still to be acknowledged.
#[derive(Debug, Default)]
pub struct AckTracker {
    /// Every tag at or below it is settled and covered by an ack sent or due.
    watermark: u64,
    /// The tags above the watermark, from `watermark + 1` on.
    above: VecDeque<Slot>,
    /// The highest tag at or below the watermark whose ack is due.
    due_up_to: Option<u64>,
    /// Tags acknowledged above the watermark since the last flush: sent on
    /// their own, in tag order, unless the watermark passes them first.
    due_alone: Vec<u64>,
    /// Acks due since the last flush.
    due: usize,
}

impl AckTracker {
    /// A tracker for a new channel.
    pub fn new() -> Self {
        Self::default()
    }

    /// The request of `tag` is to be acknowledged. Returns how many acks
    /// are due now, for the caller's flush-on-count.
    pub fn acked(&mut self, tag: u64) -> usize {
        if self.settle(tag, Slot::Due) {
            self.due += 1;
            self.due_alone.push(tag);
            self.advance();
        }
        self.due
    }

    /// The request of `tag` was rejected (or requeued) on its own, already
    /// sent.
    pub fn rejected(&mut self, tag: u64) {
        if self.settle(tag, Slot::Gone) {
            self.advance();
        }
    }

    /// The highest tag below which every delivery is settled.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Everything due, in the order to send it: one multiple ack up to the
    /// watermark, then each settled tag above it on its own.
    pub fn flush(&mut self) -> Vec<Ack> {
        let mut acks = Vec::with_capacity(self.due_alone.len() + 1);
        if let Some(tag) = self.due_up_to.take() {
            acks.push(Ack::UpTo(tag));
        }
        let mut alone = std::mem::take(&mut self.due_alone);
        alone.sort_unstable();
        for tag in alone {
            // At or below the watermark, the multiple ack covers it.
            if tag > self.watermark {
                let slot = self.slot(tag);
                *slot = Slot::Gone;
                acks.push(Ack::One(tag));
            }
        }
        self.due = 0;
        acks
    }

    /// Marks `tag` settled as `state`; false when it was settled already,
    /// is at or below the watermark, or is 0.
    fn settle(&mut self, tag: u64, state: Slot) -> bool {
        if tag <= self.watermark {
            return false;
        }
        let slot = self.slot(tag);
        if *slot != Slot::InHand {
            return false;
        }
        *slot = state;
        true
    }

    /// The slot of `tag`, which is above the watermark.
    fn slot(&mut self, tag: u64) -> &mut Slot {
        let index = usize::try_from(tag - self.watermark - 1).expect("tags in hand fit memory");
        if index >= self.above.len() {
            self.above.resize(index + 1, Slot::InHand);
        }
        &mut self.above[index]
    }

    /// Moves the watermark over the settled tags that follow it.
    fn advance(&mut self) {
        while let Some(&slot) = self.above.front() {
            if slot == Slot::InHand {
                break;
            }
            self.above.pop_front();
            self.watermark += 1;
            if slot == Slot::Due {
                self.due_up_to = Some(self.watermark);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_completions_are_one_multiple_ack() {
        let mut acks = AckTracker::new();
        for tag in 1..=5 {
            assert_eq!(acks.acked(tag), tag as usize);
        }
        assert_eq!(acks.flush(), [Ack::UpTo(5)]);
        assert_eq!(acks.flush(), []);
    }

    #[test]
    fn out_of_order_completions_wait_for_the_gap_to_close() {
        let mut acks = AckTracker::new();
        acks.acked(3);
        acks.acked(2);
        // Tag 1 is still in hand: 2 and 3 go on their own.
        assert_eq!(acks.flush(), [Ack::One(2), Ack::One(3)]);
        acks.acked(1);
        acks.acked(4);
        // 1 to 4 settled; 2 and 3 were acknowledged already, and a multiple
        // ack up to 4 covers only what is still outstanding.
        assert_eq!(acks.flush(), [Ack::UpTo(4)]);
    }

    #[test]
    fn a_rejected_tag_lets_the_watermark_pass_but_is_never_acked() {
        let mut acks = AckTracker::new();
        acks.acked(1);
        acks.rejected(2);
        acks.acked(3);
        assert_eq!(acks.flush(), [Ack::UpTo(3)]);
        // Rejected after the last ack: nothing is due for it.
        acks.rejected(4);
        assert_eq!(acks.flush(), []);
        acks.acked(5);
        assert_eq!(acks.flush(), [Ack::UpTo(5)]);
    }

    #[test]
    fn the_multiple_ack_ends_on_an_acked_tag_not_a_rejected_one() {
        let mut acks = AckTracker::new();
        acks.acked(1);
        acks.rejected(2);
        assert_eq!(acks.flush(), [Ack::UpTo(1)]);
    }

    #[test]
    fn a_stalled_delivery_holds_the_watermark_but_not_the_acks() {
        let mut acks = AckTracker::new();
        acks.acked(1);
        // Tag 2 stalls (the cache is slow); 3 to 6 finish meanwhile.
        for tag in 3..=6 {
            acks.acked(tag);
        }
        assert_eq!(
            acks.flush(),
            [
                Ack::UpTo(1),
                Ack::One(3),
                Ack::One(4),
                Ack::One(5),
                Ack::One(6)
            ]
        );
        acks.acked(7);
        assert_eq!(acks.flush(), [Ack::One(7)]);
        // Tag 2 finishes: the watermark jumps to 7, and only 2 is due.
        acks.acked(2);
        assert_eq!(acks.flush(), [Ack::UpTo(2)]);
        acks.acked(8);
        assert_eq!(acks.flush(), [Ack::UpTo(8)]);
    }

    #[test]
    fn a_new_channel_starts_again_from_tag_one_and_tag_zero_is_never_sent() {
        let mut old = AckTracker::new();
        old.acked(1);
        old.acked(2);
        // The channel is lost: its tracker goes with it, unflushed.
        drop(old);
        let mut acks = AckTracker::new();
        acks.acked(0);
        assert_eq!(acks.flush(), []);
        acks.acked(1);
        assert_eq!(acks.flush(), [Ack::UpTo(1)]);
    }

    #[test]
    fn a_tag_settled_twice_counts_once() {
        let mut acks = AckTracker::new();
        acks.acked(1);
        acks.acked(1);
        assert_eq!(acks.flush(), [Ack::UpTo(1)]);
        acks.acked(1);
        assert_eq!(acks.flush(), []);
    }

    #[test]
    fn the_watermark_shows_when_nothing_else_is_in_hand() {
        let mut acks = AckTracker::new();
        acks.acked(2);
        assert_eq!(acks.watermark(), 0);
        acks.acked(1);
        assert_eq!(acks.watermark(), 2);
    }

    #[test]
    fn the_due_count_drives_the_flush_on_count() {
        let mut acks = AckTracker::new();
        assert_eq!(acks.acked(2), 1);
        assert_eq!(acks.acked(1), 2);
        acks.flush();
        assert_eq!(acks.acked(3), 1);
    }

    #[test]
    fn a_reject_above_the_watermark_is_never_acked_at_the_flush() {
        let mut acks = AckTracker::new();
        acks.acked(1);
        // Tag 2 in hand; 3 rejected, 4 acked, then the flush.
        acks.rejected(3);
        acks.acked(4);
        assert_eq!(acks.flush(), [Ack::UpTo(1), Ack::One(4)]);
        acks.acked(2);
        // The watermark passes 3 and 4, gone already: only 2 is due.
        assert_eq!(acks.flush(), [Ack::UpTo(2)]);
        assert_eq!(acks.watermark(), 4);
    }

    #[test]
    fn a_stuck_delivery_later_rejected_releases_the_watermark_without_an_ack() {
        let mut acks = AckTracker::new();
        for tag in 2..=5 {
            acks.acked(tag);
        }
        assert_eq!(
            acks.flush(),
            [Ack::One(2), Ack::One(3), Ack::One(4), Ack::One(5)]
        );
        acks.rejected(1);
        assert_eq!(acks.watermark(), 5);
        assert_eq!(acks.flush(), []);
        acks.acked(6);
        assert_eq!(acks.flush(), [Ack::UpTo(6)]);
    }

    #[test]
    fn a_flush_behind_a_long_stall_sends_only_what_is_due() {
        let mut acks = AckTracker::new();
        // Tag 1 stalls while 100,000 others are settled and flushed.
        for tag in 2..=100_001 {
            acks.acked(tag);
            if tag % 64 == 0 {
                assert!(acks.flush().len() <= 64);
            }
        }
        acks.flush();
        acks.acked(100_002);
        assert_eq!(acks.flush(), [Ack::One(100_002)]);
        acks.acked(1);
        assert_eq!(acks.flush(), [Ack::UpTo(1)]);
        assert_eq!(acks.watermark(), 100_002);
    }

    mod against_the_broker {
        //! The tracker driven at random against a model of the broker's
        //! set of unacknowledged tags on one channel. RabbitMQ closes the
        //! channel on an ack of a tag that is not outstanding, so every ack
        //! must name one; a multiple ack must cover only settled tags; and
        //! once everything settled is flushed, only the tags in hand remain.

        use std::collections::BTreeSet;

        use proptest::prelude::*;

        use super::super::*;

        #[derive(Debug, Clone)]
        enum Step {
            Deliver,
            Ack(usize),
            Reject(usize),
            Flush,
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                3 => Just(Step::Deliver),
                3 => any::<usize>().prop_map(Step::Ack),
                1 => any::<usize>().prop_map(Step::Reject),
                2 => Just(Step::Flush),
            ]
        }

        /// Sends `acks` to the model: the broker's unacknowledged tags.
        fn send(acks: Vec<Ack>, outstanding: &mut BTreeSet<u64>, acked: &BTreeSet<u64>) {
            for ack in acks {
                match ack {
                    Ack::One(tag) => {
                        assert!(outstanding.remove(&tag), "ack of {tag}, not outstanding");
                        assert!(acked.contains(&tag), "ack of {tag}, not settled");
                    }
                    Ack::UpTo(tag) => {
                        assert!(
                            outstanding.contains(&tag),
                            "multiple ack of {tag}, not outstanding"
                        );
                        let covered: Vec<u64> = outstanding.range(..=tag).copied().collect();
                        for covered in covered {
                            assert!(
                                acked.contains(&covered),
                                "multiple ack up to {tag} covers {covered}, in hand"
                            );
                            outstanding.remove(&covered);
                        }
                    }
                }
            }
        }

        proptest! {
            #[test]
            fn every_ack_names_an_outstanding_settled_tag(steps in prop::collection::vec(step(), 1..300)) {
                let mut tracker = AckTracker::new();
                let mut outstanding = BTreeSet::new();
                let mut in_hand: Vec<u64> = Vec::new();
                let mut acked = BTreeSet::new();
                let mut next = 1;
                for step in steps {
                    match step {
                        Step::Deliver => {
                            outstanding.insert(next);
                            in_hand.push(next);
                            next += 1;
                        }
                        Step::Ack(pick) if !in_hand.is_empty() => {
                            let tag = in_hand.swap_remove(pick % in_hand.len());
                            acked.insert(tag);
                            tracker.acked(tag);
                        }
                        Step::Reject(pick) if !in_hand.is_empty() => {
                            let tag = in_hand.swap_remove(pick % in_hand.len());
                            // Sent at once, before it is recorded.
                            prop_assert!(outstanding.remove(&tag));
                            tracker.rejected(tag);
                        }
                        Step::Flush => send(tracker.flush(), &mut outstanding, &acked),
                        Step::Ack(_) | Step::Reject(_) => {}
                    }
                }
                send(tracker.flush(), &mut outstanding, &acked);
                let left: BTreeSet<u64> = in_hand.into_iter().collect();
                prop_assert_eq!(outstanding, left);
            }
        }
    }
}
