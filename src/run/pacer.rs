//! When a connection may send its next request. Closed loop sends whenever the window has room;
//! open loop follows a [`RateSchedule`] (a fixed rate, or k6-style linear stages) that hands
//! every request an intended send time. Latency measured from those times counts the queueing a
//! stalled server causes, instead of letting the stall slow the client (coordinated omission).

use std::sync::Arc;
use std::time::{Duration, Instant};

/// One linear stage: the total rate moves from `from` to `to` requests/s over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub from: f64,
    pub to: f64,
}

/// The run's total request rate over time, piecewise linear, and its inverse: when the n-th
/// request (counting all connections) falls due.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSchedule {
    stages: Vec<Stage>,
}

impl RateSchedule {
    /// A constant rate for `duration`.
    pub fn constant(rate: f64, duration: Duration) -> Self {
        RateSchedule {
            stages: vec![Stage {
                duration,
                from: rate,
                to: rate,
            }],
        }
    }

    /// k6's ramping-arrival-rate: `10s:1k,30s:50k,10s:0` ramps linearly from 0 to 1k/s over
    /// 10 s, then to 50k/s over 30 s, then down to 0 over 10 s.
    pub fn parse_stages(spec: &str) -> Result<Self, String> {
        let mut stages = Vec::new();
        let mut from = 0.0;
        for part in spec.split(',').map(str::trim) {
            let (d, r) = part
                .split_once(':')
                .ok_or_else(|| format!("stage '{part}' is not DURATION:RATE (e.g. 30s:50k)"))?;
            let duration = crate::units::parse_duration(d)?;
            if duration.is_zero() {
                return Err(format!("stage '{part}' has no duration"));
            }
            let to = crate::units::parse_count(r).map_err(|e| format!("stage '{part}': {e}"))?;
            // The same bounds as --rate and --duration: beyond them it is a typo.
            if to > 10e6 {
                return Err(format!("stage '{part}': the rate must be at most 10M/s"));
            }
            if duration > Duration::from_secs(30 * 24 * 3600) {
                return Err(format!("stage '{part}': must be at most 30 days"));
            }
            stages.push(Stage { duration, from, to });
            from = to;
        }
        if stages.iter().all(|s| s.from == 0.0 && s.to == 0.0) {
            return Err("every stage has rate 0".into());
        }
        Ok(RateSchedule { stages })
    }

    /// The same schedule preceded by `warmup` at its starting rate.
    pub fn with_warmup(&self, warmup: Duration) -> Self {
        let mut stages = self.stages.clone();
        if !warmup.is_zero() {
            let rate = stages.first().map_or(0.0, |s| s.from);
            stages.insert(
                0,
                Stage {
                    duration: warmup,
                    from: rate,
                    to: rate,
                },
            );
        }
        RateSchedule { stages }
    }

    /// Total length of the schedule.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// The highest rate anywhere in the schedule.
    pub fn peak(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.from.max(s.to))
            .fold(0.0, f64::max)
    }

    /// Requests due by `t` after the start (the integral of the rate).
    pub fn count_at(&self, t: Duration) -> f64 {
        let mut left = t.as_secs_f64();
        let mut total = 0.0;
        for s in &self.stages {
            let d = s.duration.as_secs_f64();
            let x = left.min(d);
            total += s.from * x + (s.to - s.from) * x * x / (2.0 * d);
            left -= x;
            if left <= 0.0 {
                break;
            }
        }
        total
    }

    /// When request number `n` (0-based, all connections together) falls due, measured from
    /// the start; `None` when the schedule ends first. Request n is due when `count_at` reaches
    /// n + 0.5, so slots sit mid-interval and the first one is not at the very start.
    pub fn time_of(&self, n: u64) -> Option<Duration> {
        let mut target = n as f64 + 0.5;
        let mut offset = 0.0;
        for s in &self.stages {
            let d = s.duration.as_secs_f64();
            let area = (s.from + s.to) * d / 2.0;
            if target <= area {
                let slope = (s.to - s.from) / d;
                // Solve from*x + slope*x^2/2 = target for the smallest x >= 0.
                let x = if slope.abs() < 1e-12 {
                    target / s.from
                } else {
                    let disc = (s.from * s.from + 2.0 * slope * target).max(0.0);
                    (disc.sqrt() - s.from) / slope
                };
                return Some(Duration::from_secs_f64(offset + x.clamp(0.0, d)));
            }
            target -= area;
            offset += d;
        }
        None
    }
}

/// A connection's send schedule.
#[derive(Debug, Clone)]
pub enum Pacer {
    /// Send as soon as a reply frees a window slot.
    Closed,
    /// Open loop: this connection owns every `stride`-th slot of the schedule, from `next`.
    Open {
        schedule: Arc<RateSchedule>,
        start: Instant,
        next: u64,
        stride: u64,
        /// The due time of slot `next`, cached; `None` once the schedule is over.
        due: Option<Instant>,
    },
}

impl Pacer {
    /// Connection `index` of `conns` takes slots index, index + conns, ...: the aggregate
    /// schedule is spread evenly over the connections.
    pub fn open(schedule: Arc<RateSchedule>, start: Instant, index: u32, conns: u32) -> Pacer {
        let due = schedule.time_of(u64::from(index)).map(|t| start + t);
        Pacer::Open {
            schedule,
            start,
            next: u64::from(index),
            stride: u64::from(conns.max(1)),
            due,
        }
    }

    /// The scheduled time of the next request if it is due at `now` (closed loop: `now`).
    pub fn due(&mut self, now: Instant) -> Option<Instant> {
        match self {
            Pacer::Closed => Some(now),
            Pacer::Open {
                schedule,
                start,
                next,
                stride,
                due,
            } => {
                let at = (*due).filter(|d| *d <= now)?;
                *next += *stride;
                *due = schedule.time_of(*next).map(|t| *start + t);
                Some(at)
            }
        }
    }

    /// When the next request falls due (for the wake-up timer); `None` in closed loop.
    pub fn next_due(&self) -> Option<Instant> {
        match self {
            Pacer::Closed => None,
            Pacer::Open { due, .. } => *due,
        }
    }

    /// Whether an open-loop schedule has run out.
    pub fn finished(&self) -> bool {
        matches!(self, Pacer::Open { due: None, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn constant_rate_slots_are_evenly_spaced() {
        let s = RateSchedule::constant(1000.0, secs(1.0));
        assert_eq!(s.time_of(0), Some(secs(0.0005)));
        let d = s.time_of(1).unwrap() - s.time_of(0).unwrap();
        assert!((d.as_secs_f64() - 0.001).abs() < 1e-9);
        assert_eq!(s.time_of(999).map(|t| t < secs(1.0)), Some(true));
        assert_eq!(s.time_of(1000), None);
        assert!((s.count_at(secs(1.0)) - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn stages_ramp_linearly_and_invert_exactly() {
        let s = RateSchedule::parse_stages("10s:1k,30s:50k,10s:0").unwrap();
        assert_eq!(s.duration(), secs(50.0));
        assert_eq!(s.peak(), 50_000.0);
        // Ramp 0 -> 1000/s over 10 s: 5,000 requests; then 30 s averaging 25.5k/s; then 250k.
        let total = 5_000.0 + 765_000.0 + 250_000.0;
        assert!((s.count_at(secs(50.0)) - total).abs() < 1e-6);
        for n in [0u64, 1, 4_999, 5_000, 400_000, 1_019_999] {
            let t = s.time_of(n).unwrap();
            assert!((s.count_at(t) - (n as f64 + 0.5)).abs() < 1e-3, "slot {n}");
        }
        assert_eq!(s.time_of(1_020_000), None);
        assert!(RateSchedule::parse_stages("10s").is_err());
        assert!(RateSchedule::parse_stages("10s:0").is_err());
        assert!(RateSchedule::parse_stages("0s:5").is_err());
    }

    #[test]
    fn connections_share_the_schedule_without_overlap() {
        let t0 = Instant::now();
        let s = Arc::new(RateSchedule::constant(1000.0, secs(0.01)));
        let mut all = Vec::new();
        for i in 0..3 {
            let mut p = Pacer::open(s.clone(), t0, i, 3);
            all.extend(std::iter::from_fn(|| p.due(t0 + secs(1.0))));
            assert!(p.finished());
        }
        all.sort();
        assert_eq!(all.len(), 10, "every slot once, none skipped");
        assert!(all.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn a_late_caller_gets_every_missed_slot_with_its_own_time() {
        let t0 = Instant::now();
        let s = Arc::new(RateSchedule::constant(1000.0, secs(1.0)));
        let mut p = Pacer::open(s, t0, 0, 1);
        assert_eq!(p.due(t0), None);
        let slots: Vec<_> = std::iter::from_fn(|| p.due(t0 + secs(0.005))).collect();
        assert_eq!(slots.len(), 5);
        assert_eq!(slots[0], t0 + secs(0.0005));
    }
}
