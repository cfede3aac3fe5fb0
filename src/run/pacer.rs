//! When a connection may send its next request. Closed loop sends whenever the window has room;
//! a fixed rate hands out intended send times on a schedule, and latency is measured from those
//! times, so a stalled server cannot hide its stall by slowing the client (coordinated omission).

use std::time::{Duration, Instant};

/// A connection's send schedule.
#[derive(Debug, Clone)]
pub enum Pacer {
    /// Send as soon as a reply frees a window slot; intended = actual send time.
    Closed,
    /// One request every `interval`, starting at `next`.
    Fixed { next: Instant, interval: Duration },
}

impl Pacer {
    /// A fixed-rate pacer for connection `index` of `conns` sharing `rate` requests/s in
    /// total; connections are phase-shifted so the aggregate schedule is evenly spread.
    pub fn fixed(start: Instant, rate: f64, index: u32, conns: u32) -> Pacer {
        let interval = Duration::from_secs_f64(f64::from(conns) / rate);
        let offset = interval.mul_f64(f64::from(index) / f64::from(conns));
        Pacer::Fixed {
            next: start + offset,
            interval,
        }
    }

    /// The intended send time of the next request if it is due at `now`.
    pub fn due(&mut self, now: Instant) -> Option<Instant> {
        match self {
            Pacer::Closed => Some(now),
            Pacer::Fixed { next, interval } => {
                if *next > now {
                    return None;
                }
                let intended = *next;
                *next += *interval;
                Some(intended)
            }
        }
    }

    /// When the next request falls due (for the wake-up timer); `None` in closed loop.
    pub fn next_due(&self) -> Option<Instant> {
        match self {
            Pacer::Closed => None,
            Pacer::Fixed { next, .. } => Some(*next),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_rate_spreads_connections_and_never_skips() {
        let t0 = Instant::now();
        let mut a = Pacer::fixed(t0, 1000.0, 0, 2);
        let mut b = Pacer::fixed(t0, 1000.0, 1, 2);
        assert_eq!(a.due(t0), Some(t0));
        assert_eq!(
            b.due(t0),
            None,
            "second connection is phase-shifted by 1 ms"
        );
        assert_eq!(
            b.due(t0 + Duration::from_millis(1)),
            Some(t0 + Duration::from_millis(1))
        );
        // A late caller gets every missed slot, each with its own intended time.
        let late = t0 + Duration::from_millis(10);
        let slots: Vec<_> = std::iter::from_fn(|| a.due(late)).collect();
        assert_eq!(slots.len(), 5);
        assert_eq!(slots[0], t0 + Duration::from_millis(2));
    }
}
