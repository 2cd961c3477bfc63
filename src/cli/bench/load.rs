//! Sending requests and receiving replies: one channel, one task, one
//! `select!` loop.
//!
//! Replies come back over Direct Reply-to rather than a private reply
//! queue: there is no queue to declare, store into or delete, so the broker
//! work per request is that of the worker under test and nothing of the
//! bench's, and a bench that dies leaves nothing behind. Direct Reply-to
//! asks for a no-ack consumer on the publishing channel, which one channel
//! gives for free.

use std::collections::HashMap;
use std::pin::pin;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::data::{correlation_id, sequence_of, DataSet};
use super::report::{latency_histogram, record_latency, Mode, Tally};
use crate::amqp::{ReceivedReply, Requester};

/// How many wrong replies are logged one by one; the rest are only counted.
const WRONG_LOGGED: u64 = 5;

/// When the load stops being offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this long.
    After(Duration),
    /// After this many requests.
    Count(u64),
}

/// What to offer, and where.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Closed or open loop.
    pub mode: Mode,
    /// Duration or count.
    pub stop: Stop,
    /// How long to wait for stragglers once sending stopped, and how long a
    /// closed loop may go without any reply before it gives up.
    pub timeout: Duration,
    /// Routing key (the body's `source` is in the data set's bodies).
    pub source: String,
    /// Compare each reply's body with the expected one.
    pub check_bodies: bool,
}

/// A request waiting for its reply.
struct InFlight {
    /// When it was due to be sent: latency counts from here, so that a
    /// sender that falls behind schedule does not hide the delay
    /// (coordinated omission).
    scheduled: Instant,
}

/// The loop's state, apart from the futures it waits on.
struct Load<'a> {
    data: &'a DataSet,
    plan: &'a Plan,
    in_flight: HashMap<u64, InFlight>,
    next_seq: u64,
    answered: u64,
    wrong: u64,
    duplicates: u64,
    latency: Histogram<u64>,
    start: Instant,
    last_send: Instant,
    last_reply: Instant,
    stop_at: Option<Instant>,
}

/// Offers the load and collects the replies. Returns when every request is
/// answered after sending stopped, when the stragglers' time-out passes,
/// when a closed loop stalls, or on `cancel` (then whatever is in flight is
/// lost).
pub async fn run(
    requester: &mut Requester,
    data: &DataSet,
    plan: &Plan,
    progress: &ProgressBar,
    cancel: &CancellationToken,
) -> anyhow::Result<Tally> {
    let start = Instant::now();
    let mut load = Load {
        data,
        plan,
        in_flight: HashMap::new(),
        next_seq: 0,
        answered: 0,
        wrong: 0,
        duplicates: 0,
        latency: latency_histogram().context("creating the latency histogram")?,
        start,
        last_send: start,
        last_reply: start,
        stop_at: match plan.stop {
            Stop::After(duration) => Some(start + duration),
            Stop::Count(_) => None,
        },
    };
    let (closed, period) = match plan.mode {
        Mode::Closed { concurrency } => (Some(concurrency), Duration::from_secs(1)),
        Mode::Open { rate } => (
            None,
            Duration::from_secs_f64(1.0 / rate).max(Duration::from_nanos(1)),
        ),
    };
    // Burst: a schedule that fell behind catches up, so the offered rate
    // holds on average; the latency of the late ones shows the delay.
    let mut ticker = tokio::time::interval_at(start, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut redraw = tokio::time::interval(Duration::from_millis(100));
    redraw.set_missed_tick_behavior(MissedTickBehavior::Skip);
    // One timer, re-armed only when it fires, serves the duration, the
    // closed loop's stall check and the stragglers' time-out: no timer per
    // request.
    let mut timer = pin!(tokio::time::sleep_until(load.next_deadline(closed)));
    let mut sending = true;
    let mut drain_until = None;

    if let Some(concurrency) = closed {
        for _ in 0..concurrency {
            let now = Instant::now();
            if !load.may_send(now) {
                break;
            }
            load.send(requester, now).await?;
        }
    }
    loop {
        if sending && load.count_reached() {
            sending = false;
        }
        if !sending && drain_until.is_none() {
            let until = Instant::now() + plan.timeout;
            drain_until = Some(until);
            timer.as_mut().reset(until);
        }
        if !sending && load.in_flight.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => {
                tracing::warn!("interrupted: what is in flight counts as lost");
                break;
            }
            reply = requester.next_reply() => {
                let reply = reply.context("during the run")?;
                let now = Instant::now();
                let answered_one = load.receive(&reply, now);
                if answered_one && sending && closed.is_some() && load.may_send(now) {
                    load.send(requester, now).await?;
                }
            }
            scheduled = ticker.tick(), if sending && closed.is_none() => {
                if load.may_send(scheduled) {
                    load.send(requester, scheduled).await?;
                } else {
                    sending = false;
                }
            }
            () = &mut timer => {
                if drain_until.is_some() {
                    break;
                }
                let now = Instant::now();
                if closed.is_some() && load.stalled(now) {
                    tracing::warn!(
                        in_flight = load.in_flight.len(),
                        "no reply for {}: giving up", humantime::format_duration(plan.timeout)
                    );
                    break;
                }
                if load.may_send(now) {
                    timer.as_mut().reset(load.next_deadline(closed));
                } else {
                    sending = false;
                }
            }
            _ = redraw.tick() => load.draw(progress, sending),
        }
    }
    load.draw(progress, false);
    Ok(load.tally())
}

impl Load<'_> {
    fn may_send(&self, at: Instant) -> bool {
        match self.plan.stop {
            Stop::Count(count) => self.next_seq < count,
            Stop::After(_) => self.stop_at.is_some_and(|stop| at < stop),
        }
    }

    fn count_reached(&self) -> bool {
        matches!(self.plan.stop, Stop::Count(count) if self.next_seq >= count)
    }

    /// A closed loop with requests in flight that heard nothing for the
    /// time-out would wait for ever: its slots are all taken by lost requests.
    fn stalled(&self, now: Instant) -> bool {
        !self.in_flight.is_empty() && now >= self.last_reply.max(self.last_send) + self.plan.timeout
    }

    /// The sending phase's next check for a closed loop: the end of the
    /// duration, or the time it would have stalled. An open loop's ticker
    /// ends its duration by itself, tick by scheduled tick, so that ticks
    /// due before the end still go out when the sender runs late.
    fn next_deadline(&self, closed: Option<usize>) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        if closed.is_none() {
            return far;
        }
        let stall = self.last_reply.max(self.last_send) + self.plan.timeout;
        self.stop_at.map_or(stall, |stop| stop.min(stall))
    }

    async fn send(&mut self, requester: &Requester, scheduled: Instant) -> anyhow::Result<()> {
        let seq = self.next_seq;
        let call = self.data.call_for(seq);
        let correlation_id = correlation_id(&self.data.run_id, seq);
        // No publisher confirms: they would add broker work that a plain
        // requester does not need, and a request that goes nowhere shows up
        // as lost anyway.
        requester
            .send(&self.plan.source, &correlation_id, &call.body)
            .await?;
        self.in_flight.insert(seq, InFlight { scheduled });
        self.next_seq += 1;
        self.last_send = Instant::now();
        Ok(())
    }

    /// Counts one reply; true when it is the first reply to a request in
    /// flight, which frees a closed loop's slot.
    fn receive(&mut self, reply: &ReceivedReply, now: Instant) -> bool {
        let correlation_id = reply.correlation_id.as_deref();
        let seq = correlation_id.and_then(|id| sequence_of(id, &self.data.run_id));
        let Some(seq) = seq else {
            self.wrong(correlation_id, "unknown correlation id", &reply.body);
            return false;
        };
        let Some(request) = self.in_flight.remove(&seq) else {
            if seq < self.next_seq {
                self.duplicates += 1;
                self.wrong(correlation_id, "duplicate reply", &reply.body);
            } else {
                self.wrong(correlation_id, "unknown correlation id", &reply.body);
            }
            return false;
        };
        // Only a first reply counts as progress: a stray or duplicate one
        // frees no slot and must not stretch the run's elapsed time.
        self.last_reply = now;
        self.answered += 1;
        record_latency(
            &mut self.latency,
            now.saturating_duration_since(request.scheduled),
        );
        if self.plan.check_bodies {
            let call = self.data.call_for(seq);
            if let Err(mismatch) = self.data.check(call, &reply.body) {
                self.wrong(correlation_id, &mismatch.to_string(), &reply.body);
            }
        }
        true
    }

    fn wrong(&mut self, correlation_id: Option<&str>, why: &str, body: &[u8]) {
        self.wrong += 1;
        if self.wrong <= WRONG_LOGGED {
            let body = String::from_utf8_lossy(&body[..body.len().min(512)]);
            tracing::warn!(correlation_id, %body, "wrong reply: {why}");
        }
        if self.wrong == WRONG_LOGGED {
            tracing::warn!("further wrong replies are counted, not logged");
        }
    }

    fn draw(&self, progress: &ProgressBar, sending: bool) {
        if progress.is_hidden() {
            return;
        }
        match self.plan.stop {
            Stop::Count(_) => progress.set_position(self.next_seq),
            Stop::After(_) => {
                let elapsed = self.start.elapsed().as_millis();
                progress.set_position(u64::try_from(elapsed).unwrap_or(u64::MAX));
            }
        }
        let phase = if sending {
            ""
        } else {
            "waiting for stragglers; "
        };
        progress.set_message(format!(
            "{phase}sent {}, answered {}, in flight {}, wrong {}",
            self.next_seq,
            self.answered,
            self.in_flight.len(),
            self.wrong
        ));
    }

    fn tally(self) -> Tally {
        // `last_reply` starts at the start, so without replies this is the
        // last send.
        let end = self.last_reply.max(self.last_send);
        Tally {
            sent: self.next_seq,
            answered: self.answered,
            wrong: self.wrong,
            duplicates: self.duplicates,
            elapsed_s: end.saturating_duration_since(self.start).as_secs_f64(),
            latency: self.latency,
        }
    }
}
