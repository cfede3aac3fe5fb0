//! How requests end without a reply of their own (timed out, lost with their connection, or
//! failed by an error pinned on them), and the samples every request leaves as it ends: a
//! success all its stamps, any other ending its lags.

use std::time::Instant;

use super::load::Load;
use super::window::Slot;
use super::{BATCH, BATCH_AGE, bucket};
use crate::model::Sample;
use crate::run::breaker::Call;
use crate::run::clock;
use crate::run::mix::Mix;
use crate::stats::recorder::{new_small_histogram, response_us};
use tokio_tungstenite::tungstenite::Message;

impl Load<'_> {
    /// Per-call timeouts (`[[scenario.call]] timeout`): each request against its own limit.
    pub(super) fn expire_each(&mut self, now: Instant) {
        let (mix, timeout) = (&self.spec.mix, self.spec.timeout);
        let mut expired = Vec::new();
        self.window.expire_each(
            now,
            |c| mix.timeout(c, timeout),
            |seq, slot| expired.push((seq, *slot)),
        );
        self.end_expired(expired, now);
    }

    pub(super) fn expire(&mut self, cutoff: Instant, now: Instant) {
        let mut expired = Vec::new();
        self.window
            .expire(cutoff, |seq, slot| expired.push((seq, *slot)));
        self.end_expired(expired, now);
    }

    /// Counts requests that ran out of time, and tells the server where the dialect can. One
    /// with an error pinned on it (an error frame without an id, while it was alone in flight)
    /// failed with that error: its own reply never came to say otherwise.
    fn end_expired(&mut self, expired: Vec<(u64, Slot)>, now: Instant) {
        let was_full = self.window.outstanding + expired.len() >= self.spec.window;
        for (seq, slot) in expired {
            if let Some((at, code)) = self.take_blame(seq) {
                self.spec.breaker.record(Call::Request, false, false);
                self.complete(slot, at, false, Some(&code));
                continue;
            }
            let (warm, call) = (slot.warm, slot.call);
            self.lag_sample(&slot, now);
            // Tell the server the call was given up on, where the dialect can (a frame the
            // connection may fail to take is no loss: it is going anyway).
            if let Some(cancel) = self.spec.wire.cancel(&self.id_prefix, seq)
                && self.ws.queue(Message::text(cancel)).is_ok()
            {
                self.report.resilience.cancels_sent += 1;
            }
            self.spec.breaker.record(Call::Request, false, true);
            bucket(&mut self.report, warm).timed_out += 1;
            if seq == 0 {
                self.report.first_call_timed_out = true;
            }
            if !warm {
                self.tallies
                    .count(now, Mix::stat(call), |t| &mut t.timed_out);
                self.report.tool(Mix::stat(call)).counts.timed_out += 1;
            }
        }
        if was_full && self.window.outstanding < self.spec.window {
            self.blocked_until = now;
        }
    }

    pub(super) fn flush_samples(&mut self) {
        if !self.samples.is_empty() {
            // Made on the first success, so an idle connection carries none.
            for s in self.samples.iter().filter(|s| s.succeeded) {
                let latency = self.latency.get_or_insert_with(new_small_histogram);
                // Auto-resizing: it grows to what it is given.
                let _ = latency.record(response_us(s));
            }
            self.events.samples(&self.samples);
            self.samples.clear();
        }
    }

    /// The connection dropped: whatever was in flight is lost (a reply that still comes on a
    /// new connection of this session is late, not a duplicate), unless an error was pinned on
    /// it: then it failed with that error.
    pub(super) fn lost(&mut self) {
        let now = clock::now();
        self.unflushed_from = None;
        for (seq, slot) in self.window.clear() {
            if let Some((at, code)) = self.take_blame(seq) {
                self.complete(slot, at, false, Some(&code));
                continue;
            }
            bucket(&mut self.report, slot.warm).lost += 1;
            if !slot.warm {
                self.tallies
                    .count(now, Mix::stat(slot.call), |t| &mut t.lost);
                self.report.tool(Mix::stat(slot.call)).counts.lost += 1;
            }
            self.lag_sample(&slot, now);
        }
        self.pending_blame.clear();
        self.flush_samples();
    }

    /// A request that ended without success at `at`: only its lags are recorded (every
    /// request sent is measured for them). Warmup requests are not measured.
    pub(super) fn lag_sample(&mut self, slot: &Slot, at: Instant) {
        if slot.warm {
            return;
        }
        self.push_sample(Sample {
            conn: self.id,
            succeeded: false,
            call: Mix::stat(slot.call),
            scheduled: slot.scheduled,
            ready: slot.ready,
            queued: slot.queued,
            sent: slot.sent,
            received: at,
            acked: None,
            first_chunk: None,
            stream_end: None,
        });
    }

    /// Adds a sample to the batch, handing the batch to the recorder when it is full or old.
    pub(super) fn push_sample(&mut self, sample: Sample) {
        if self.samples.is_empty() {
            self.batch_started = sample.received;
        }
        let at = sample.received;
        self.samples.push(sample);
        if self.samples.len() >= BATCH
            || at.saturating_duration_since(self.batch_started) >= BATCH_AGE
        {
            self.flush_samples();
        }
    }
}
