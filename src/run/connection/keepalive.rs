//! Client keepalive: one ping at a time; a pong not back within the timeout means the peer is
//! gone even when the socket says otherwise.

use std::time::{Duration, Instant};

/// Client keepalive: one ping at a time, every `every`; no pong within `timeout` = dead.
#[derive(Debug)]
pub(super) struct Pinger {
    pub(super) every: Duration,
    pub(super) timeout: Duration,
    pub(super) next_at: Instant,
    pub(super) outstanding: Option<(u64, Instant)>,
    pub(super) seq: u64,
}

impl Pinger {
    /// The first ping goes `phase` (0..=1] of an interval after `start`: connections that
    /// start together spread their pings over the interval instead of all pinging at once (at
    /// 100,000 connections, a burst of 100,000 pings every interval put pong p99 at 1.2 s and
    /// held up the requests queued behind them).
    pub(super) fn new(every: Duration, timeout: Duration, start: Instant, phase: f64) -> Self {
        Pinger {
            every,
            timeout,
            next_at: start + every.mul_f64(phase.clamp(0.0, 1.0)),
            outstanding: None,
            seq: 0,
        }
    }

    /// When the pinger next needs the loop awake.
    pub(super) fn wake_at(&self) -> Instant {
        match self.outstanding {
            Some((_, sent)) => sent + self.timeout,
            None => self.next_at,
        }
    }

    pub(super) fn overdue(&self, now: Instant) -> bool {
        self.outstanding
            .is_some_and(|(_, sent)| now >= sent + self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ping_at_a_time_and_overdue_after_the_timeout() {
        let t0 = Instant::now();
        let (every, timeout) = (Duration::from_secs(1), Duration::from_millis(200));
        let mut p = Pinger::new(every, timeout, t0, 1.0);
        assert_eq!(p.wake_at(), t0 + every, "first ping one interval in");
        let spread = Pinger::new(every, timeout, t0, 0.25);
        assert_eq!(spread.wake_at(), t0 + every / 4, "or its phase of one");
        assert!(
            !p.overdue(t0 + every * 10),
            "nothing outstanding is never overdue"
        );
        p.outstanding = Some((1, t0 + every));
        assert_eq!(p.wake_at(), t0 + every + timeout, "then the pong deadline");
        assert!(!p.overdue(t0 + every + timeout / 2));
        assert!(p.overdue(t0 + every + timeout));
    }
}
