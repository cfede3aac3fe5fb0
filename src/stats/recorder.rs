//! WHERE LATENCY IS RECORDED. Connection tasks send stamps (`run/sample.rs`) over a channel in
//! batches; this single recorder owns every histogram, so the hot path has no locks and no
//! shared histograms. All values are microseconds.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use crate::run::sample::{Event, Sample, SetupStamps};

/// Highest recordable value: one hour in microseconds. Longer values are clamped, not lost.
const MAX_US: u64 = 3_600_000_000;
/// Three significant figures: 0.1% value resolution.
const SIGFIG: u8 = 3;

/// The run's histograms.
#[derive(Debug, Clone)]
pub struct Histograms {
    /// Response time: final reply received minus intended send time. This is what the gate
    /// checks; in closed loop, intended = sent, so it equals service time.
    pub latency: Histogram<u64>,
    /// Service time: final reply received minus actual send time.
    pub service: Histogram<u64>,
    /// Connection setup: TCP connect + WebSocket upgrade.
    pub connect: Histogram<u64>,
    /// hello sent to hello_ack received.
    pub hello: Histogram<u64>,
}

/// A histogram with wsbench's bounds (1 us to 1 h, 3 significant figures).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, SIGFIG).expect("static bounds are valid")
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms {
            latency: new_histogram(),
            service: new_histogram(),
            connect: new_histogram(),
            hello: new_histogram(),
        }
    }
}

fn micros(later: Instant, earlier: Instant) -> u64 {
    let us = later.saturating_duration_since(earlier).as_micros();
    // Sub-microsecond values round up to the lowest bucket rather than vanish.
    (us as u64).clamp(1, MAX_US)
}

/// Owns the histograms while the run goes on.
#[derive(Debug, Default)]
pub struct Recorder {
    histograms: Histograms,
    /// When the last successful reply arrived; the measured window ends no earlier.
    pub last_received: Option<Instant>,
}

impl Recorder {
    pub fn record(&mut self, event: Event) {
        match event {
            Event::Samples(samples) => {
                for s in samples {
                    self.sample(&s);
                }
            }
            Event::Setup(s) => self.setup(&s),
        }
    }

    fn sample(&mut self, s: &Sample) {
        let h = &mut self.histograms;
        h.latency.saturating_record(micros(s.received, s.intended));
        h.service.saturating_record(micros(s.received, s.sent));
        if self.last_received.is_none_or(|t| s.received > t) {
            self.last_received = Some(s.received);
        }
    }

    fn setup(&mut self, s: &SetupStamps) {
        let h = &mut self.histograms;
        h.connect.saturating_record(micros(s.upgraded, s.started));
        h.hello.saturating_record(micros(s.acked, s.upgraded));
    }

    /// Records until every sender is gone, then hands back the histograms.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) -> Self {
        while let Some(event) = rx.recv().await {
            self.record(event);
        }
        self
    }

    pub fn into_histograms(self) -> Histograms {
        self.histograms
    }
}

/// Microseconds of a duration, as recorded.
pub fn duration_us(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_US)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_time_counts_from_the_intended_send() {
        let t0 = Instant::now();
        let mut r = Recorder::default();
        r.record(Event::Samples(vec![Sample {
            intended: t0,
            sent: t0 + Duration::from_millis(100),
            received: t0 + Duration::from_millis(101),
        }]));
        let h = r.into_histograms();
        assert!(h.latency.equivalent(h.latency.max(), 101_000));
        assert!(h.service.equivalent(h.service.max(), 1_000));
    }
}
