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

use std::collections::BTreeMap;

/// An acknowledgement to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// `basic.ack` with `multiple = true`: every outstanding tag up to this one.
    UpTo(u64),
    /// `basic.ack` of this tag alone.
    One(u64),
}

/// The settled tags of one channel, and what is still to be acknowledged.
#[derive(Debug, Default)]
pub struct AckTracker {
    /// Every tag at or below it is settled and covered by an ack sent or due.
    watermark: u64,
    /// Settled tags above the watermark: `true` while an ack is due,
    /// `false` once rejected or acknowledged on their own.
    above: BTreeMap<u64, bool>,
    /// The highest tag at or below the watermark whose ack is due.
    due_up_to: Option<u64>,
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
        if tag <= self.watermark || tag == 0 || self.above.contains_key(&tag) {
            return self.due;
        }
        self.above.insert(tag, true);
        self.due += 1;
        self.advance();
        self.due
    }

    /// The request of `tag` was rejected on its own, already sent.
    pub fn rejected(&mut self, tag: u64) {
        if tag <= self.watermark || tag == 0 || self.above.contains_key(&tag) {
            return;
        }
        self.above.insert(tag, false);
        self.advance();
    }

    /// The highest tag below which every delivery is settled.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Everything due, in the order to send it: one multiple ack up to the
    /// watermark, then each settled tag above it on its own.
    pub fn flush(&mut self) -> Vec<Ack> {
        let mut acks = Vec::new();
        if let Some(tag) = self.due_up_to.take() {
            acks.push(Ack::UpTo(tag));
        }
        for (tag, due) in &mut self.above {
            if *due {
                acks.push(Ack::One(*tag));
                *due = false;
            }
        }
        self.due = 0;
        acks
    }

    /// Moves the watermark over the settled tags that follow it.
    fn advance(&mut self) {
        while let Some(due) = self.above.remove(&(self.watermark + 1)) {
            self.watermark += 1;
            if due {
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
}
