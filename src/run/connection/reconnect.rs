//! Getting a connection back: exponential backoff with full jitter, every attempt asked of the
//! shared circuit breaker first, and nothing outliving the end of sending.

use std::time::{Duration, Instant};

use super::setup::{fail, setup};
use super::{Established, RunSpec, Stop};
use crate::model::{ConnReport, SetupFailure};
use crate::run::breaker::Call;

/// Reconnect backoff: attempt n waits a uniform random time in [0, min(max, base * 2^n)].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub(super) fn delay(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        cap.mul_f64(rng.f64())
    }
}

/// One connect attempt, if the breaker lets it through, with its outcome told to the breaker.
pub(super) async fn connect_through_breaker(
    spec: &RunSpec,
    id: u32,
) -> Result<Established, SetupFailure> {
    if !spec.breaker.try_connect() {
        return Err(fail(
            "connect",
            "blocked: circuit breaker open".into(),
            None,
            false,
        ));
    }
    let s = setup(spec, id).await;
    spec.breaker.record(Call::Connect, s.is_ok(), false);
    s
}

/// Connects again with backoff, through the breaker, until `stop_at`; `None` when the run
/// ended (or sending stopped) first. No attempt outlives `stop_at`: a server that accepts TCP
/// and then hangs the upgrade cannot hold the run past its end.
#[allow(
    clippy::too_many_arguments,
    reason = "the connection's parts a retry touches"
)]
pub(super) async fn retry(
    spec: &RunSpec,
    id: u32,
    stop: &Stop,
    stop_at: Instant,
    backoff: Backoff,
    rng: &mut fastrand::Rng,
    report: &mut ConnReport,
) -> Option<Established> {
    let mut attempt = 0;
    let mut at = Instant::now() + backoff.delay(attempt, rng);
    loop {
        if at >= stop_at {
            return None;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => {}
            _ = stop.either() => return None,
        }
        // Asked right before the attempt: the breaker may have opened during the backoff.
        if !spec.breaker.try_connect() {
            // Open: no attempt at all until the breaker says so.
            at = spec.breaker.retry_at();
            continue;
        }
        report.resilience.reconnect_attempts += 1;
        let result = tokio::select! {
            r = setup(spec, id) => r,
            _ = stop.either() => return None,
            _ = tokio::time::sleep_until(stop_at.into()) => return None,
        };
        spec.breaker.record(Call::Connect, result.is_ok(), false);
        match result {
            Ok(established) => {
                report.resilience.reconnects += 1;
                return Some(established);
            }
            Err(f) => {
                *report.reconnect_failures.entry(f.describe()).or_default() += 1;
                attempt += 1;
                at = Instant::now() + backoff.delay(attempt, rng);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        let mut rng = fastrand::Rng::with_seed(7);
        for attempt in 0..40 {
            let cap = Duration::from_millis(100 * (1u64 << attempt.min(20))).min(b.max);
            let draws: Vec<_> = (0..200).map(|_| b.delay(attempt, &mut rng)).collect();
            assert!(draws.iter().all(|d| *d <= cap), "attempt {attempt}");
            // Full jitter: the draws spread over the whole range, not just near the cap.
            assert!(draws.iter().any(|d| *d < cap / 4), "attempt {attempt}");
            assert!(draws.iter().any(|d| *d > cap * 3 / 4), "attempt {attempt}");
        }
    }
}
