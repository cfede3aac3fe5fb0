//! What a connection counts per second for the timeline and live progress, and the open-loop
//! schedule's slots it never sent (dropped), so that scheduled = sent + dropped exactly.

use std::time::{Duration, Instant};

use super::{Stop, Timing};
use crate::model::{ConnReport, Event, Tally};
use crate::run::clock;
use crate::run::pacer::Pacer;
use crate::stats::Shard;

/// The oldest a connection's unsent tally gets. Once a second at most: with 10,000 connections
/// each flush is an event for the recorder, and a wake-up for a connection that is otherwise
/// idle; progress is drawn every 0.5-2 s.
const TALLY_AGE: Duration = Duration::from_secs(1);

/// Per-second counts of one connection, sent to the recorder when the second turns and at
/// least every [`TALLY_AGE`], so live progress shows what happened even when traffic stops.
pub(super) struct Tallies {
    pub(super) measure_from: Instant,
    pub(super) sec: u32,
    pub(super) tally: Tally,
    /// The same counts by tool (`Mix::stat`), and failures' codes, for live metrics.
    tools: Vec<Tally>,
    errors: Vec<(u8, String)>,
    pub(super) flushed_at: Instant,
    pub(super) events: Shard,
}

impl Tallies {
    pub(super) fn new(measure_from: Instant, events: Shard) -> Self {
        Tallies {
            measure_from,
            sec: 0,
            tally: Tally::default(),
            tools: Vec::new(),
            errors: Vec::new(),
            flushed_at: clock::now(),
            events,
        }
    }

    /// The tally of the measured second `at` falls in, flushing the previous one first.
    pub(super) fn at(&mut self, at: Instant) -> &mut Tally {
        let sec = at.saturating_duration_since(self.measure_from).as_secs() as u32;
        if sec != self.sec {
            self.flush();
            self.sec = sec;
        }
        &mut self.tally
    }

    /// Counts one measured request of tool `stat` in the second `at` falls in: `field` of the
    /// totals and of the tool's.
    pub(super) fn count(&mut self, at: Instant, stat: u8, field: fn(&mut Tally) -> &mut u64) {
        *field(self.at(at)) += 1;
        let i = usize::from(stat);
        if self.tools.len() <= i {
            self.tools.resize_with(i + 1, Tally::default);
        }
        *field(&mut self.tools[i]) += 1;
    }

    /// A measured failure of tool `stat` with `code`, counted with [`Tallies::count`].
    pub(super) fn failure(&mut self, at: Instant, stat: u8, code: &str) {
        self.count(at, stat, |t| &mut t.failed);
        self.errors.push((stat, code.to_owned()));
    }

    pub(super) fn flush(&mut self) {
        self.flushed_at = clock::now();
        if self.tally != Tally::default() {
            self.events.record(Event::Tally {
                sec: self.sec,
                tally: std::mem::take(&mut self.tally),
                tools: std::mem::take(&mut self.tools),
                errors: std::mem::take(&mut self.errors),
            });
        }
    }

    /// When the tally should next go out, if it holds anything.
    pub(super) fn due(&self) -> Option<Instant> {
        (self.tally != Tally::default()).then(|| self.flushed_at + TALLY_AGE)
    }
}

/// What a connection without a socket still accounts for: its share of the schedule.
pub(super) struct Idle<'a> {
    pub(super) report: &'a mut ConnReport,
    pub(super) tallies: &'a mut Tallies,
    pub(super) timing: Timing,
}

impl Idle<'_> {
    /// Counts open-loop slots that fall due by `until` and will never be sent as dropped.
    pub(super) fn drop_due(&mut self, pacer: &mut Pacer, until: Instant) {
        if !matches!(pacer, Pacer::Open { .. }) {
            return;
        }
        while let Some(slot) = pacer.due(until) {
            if slot < self.timing.measure_from {
                self.report.warmup.dropped += 1;
            } else {
                self.report.counts.dropped += 1;
                self.tallies.at(slot).dropped += 1;
            }
        }
    }

    /// The end of a connection's schedule: every slot due until sending stopped for the run
    /// (its end, or the interrupt) that was not sent is dropped. A connection that ended early
    /// waits for that moment, so the count is exact: scheduled = sent + dropped.
    pub(super) async fn finish_schedule(
        &mut self,
        pacer: &mut Pacer,
        stop: &Stop,
        budget_spent: bool,
    ) {
        if !matches!(pacer, Pacer::Open { .. }) || budget_spent || pacer.finished() {
            return;
        }
        let stop_at = self.timing.stop_at;
        if clock::now() < stop_at {
            tokio::select! {
                _ = tokio::time::sleep_until(stop_at.into()) => {}
                _ = stop.either() => {}
            }
        }
        self.drop_due(pacer, clock::now().min(stop_at));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::run::pacer::RateSchedule;
    use crate::stats::Recorders;

    fn timing(t0: Instant, warmup_ms: u64, total_ms: u64) -> Timing {
        Timing {
            start: t0,
            measure_from: t0 + Duration::from_millis(warmup_ms),
            stop_at: t0 + Duration::from_millis(total_ms),
        }
    }

    #[test]
    fn slots_never_sent_are_dropped_exactly_once_by_second() {
        let t0 = Instant::now();
        let recorders = Recorders::new(1);
        let mut tallies = Tallies::new(t0, recorders.shard());
        let mut report = ConnReport::default();
        // 1,000/s for 2 s on one connection: 2,000 slots.
        let schedule = Arc::new(RateSchedule::constant(1000.0, Duration::from_secs(2)));
        let mut pacer = Pacer::open(schedule, t0, 0, 1);
        let mut idle = Idle {
            report: &mut report,
            tallies: &mut tallies,
            timing: timing(t0, 0, 2000),
        };
        idle.drop_due(&mut pacer, t0 + Duration::from_millis(1500));
        idle.drop_due(&mut pacer, t0 + Duration::from_millis(1500));
        assert_eq!(idle.report.counts.dropped, 1500, "each slot once");
        idle.drop_due(&mut pacer, t0 + Duration::from_secs(5));
        assert_eq!(idle.report.counts.dropped, 2000);
        tallies.flush();
        let by_sec: Vec<u64> = recorders
            .finish()
            .seconds
            .iter()
            .map(|s| s.tally.dropped)
            .collect();
        assert_eq!(by_sec, [1000, 1000]);
    }

    #[test]
    fn warmup_slots_are_dropped_apart_and_closed_loop_has_none() {
        let t0 = Instant::now();
        let mut tallies = Tallies::new(t0 + Duration::from_millis(500), Recorders::new(1).shard());
        let mut report = ConnReport::default();
        let schedule = Arc::new(RateSchedule::constant(100.0, Duration::from_secs(1)));
        let mut pacer = Pacer::open(schedule, t0, 0, 1);
        let mut idle = Idle {
            report: &mut report,
            tallies: &mut tallies,
            timing: timing(t0, 500, 1000),
        };
        idle.drop_due(&mut pacer, t0 + Duration::from_secs(1));
        assert_eq!(
            (idle.report.warmup.dropped, idle.report.counts.dropped),
            (50, 50)
        );
        let mut closed = Pacer::Closed;
        idle.drop_due(&mut closed, t0 + Duration::from_secs(9));
        assert_eq!(idle.report.counts.dropped, 50);
    }

    #[test]
    fn a_tally_goes_out_when_it_is_old_enough() {
        let t0 = Instant::now();
        let recorders = Recorders::new(1);
        let mut tallies = Tallies::new(t0, recorders.shard());
        assert_eq!(tallies.due(), None, "nothing to send");
        tallies.at(t0).sent += 3;
        let due = tallies.due().expect("something to send");
        assert!(due <= Instant::now() + TALLY_AGE);
        tallies.flush();
        assert_eq!(recorders.live(Instant::now()).totals.sent, 3);
        assert_eq!(tallies.due(), None);
    }
}
