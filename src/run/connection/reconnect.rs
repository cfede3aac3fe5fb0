//! Getting a connection back: exponential backoff with full jitter, every attempt asked of the
//! shared circuit breaker first, and nothing outliving the end of sending.

use std::time::{Duration, Instant};

use super::setup::{fail, setup};
use super::{Established, RunSpec, Stop};
use crate::model::{ConnReport, SetupFailure};
use crate::run::breaker::Call;
use crate::run::clock;

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
            crate::model::SetupKind::Breaker,
        ));
    }
    let s = setup(spec, id).await;
    spec.breaker.record(Call::Connect, s.is_ok(), false);
    s
}

/// Connects again with backoff, through the breaker, until `stop_at`; `None` when the run
/// ended (or sending stopped) first. It keeps trying until `stop_at` whatever the waits: each
/// is bounded by the backoff cap or the breaker's open time, never the whole; a wait that
/// would end past `stop_at` waits until then and gives up, so a connection that never comes
/// back is down for the whole of the time asked. No attempt outlives `stop_at`: a server that
/// accepts TCP and then hangs the upgrade cannot hold the run past its end.
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
    let mut at = clock::now() + backoff.delay(attempt, rng);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(at.min(stop_at).into()) => {}
            _ = stop.either() => return None,
        }
        if at >= stop_at {
            return None;
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
                tracing::debug!(conn = id, attempt, "reconnected");
                report.resilience.reconnects += 1;
                return Some(established);
            }
            Err(f) => {
                tracing::debug!(conn = id, attempt, "reconnect failed: {}", f.describe());
                *report.reconnect_failures.entry(f.describe()).or_default() += 1;
                attempt += 1;
                at = clock::now() + backoff.delay(attempt, rng);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::run::breaker::{Breaker, BreakerConfig};

    /// A spec aimed at `port` on loopback with this breaker; nothing else matters to a retry.
    fn spec(port: u16, breaker: BreakerConfig) -> RunSpec {
        RunSpec {
            url: format!("ws://127.0.0.1:{port}"),
            host: "127.0.0.1".into(),
            port,
            run_id: "r".into(),
            worker_id: "w".into(),
            session_prefix: "s".into(),
            hello_token: crate::net::secret::Secret::default(),
            wire: Arc::new(crate::protocol::ToolCall),
            versions: Default::default(),
            mix: crate::run::mix::Mix::single("echo", None),
            data: None,
            isolation: None,
            consistent: None,
            window: 1,
            schedule: None,
            conns: 1,
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            drain: Duration::from_secs(1),
            close_rate: None,
            max_message_size: 1 << 20,
            breaker: Arc::new(Breaker::new(breaker)),
            reconnect: None,
            ping: None,
            retry_after: None,
            uncorrelated: Default::default(),
            http: false,
            http2: false,
            command: None,
            stderr_log: None,
            bind_ips: Vec::new(),
            tls: None,
            headers: Vec::new(),
            subprotocol: None,
            validation: None,
        }
    }

    fn stop() -> Stop {
        Stop {
            interrupt: CancellationToken::new(),
            end: CancellationToken::new(),
            budget: None,
        }
    }

    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_millis(400),
    };

    #[tokio::test(start_paused = true)]
    async fn a_retry_stops_at_the_end_of_sending_and_the_breaker_caps_the_attempts() {
        // Every attempt is refused (or, should the paused clock jump first, times out: a
        // failure either way). Five failures open the breaker for 5 s, longer than the 3 s
        // left, so exactly five attempts are made and the retry gives up at stop_at.
        let spec = spec(closed_port(), BreakerConfig::default());
        let t0 = clock::now();
        let stop_at = t0 + Duration::from_secs(3);
        let mut report = ConnReport::default();
        let mut rng = fastrand::Rng::with_seed(1);
        let real = std::time::Instant::now();
        let got = retry(&spec, 0, &stop(), stop_at, BACKOFF, &mut rng, &mut report).await;
        assert!(got.is_none());
        assert_eq!(report.resilience.reconnect_attempts, 5);
        assert_eq!(report.resilience.reconnects, 0);
        assert_eq!(report.reconnect_failures.values().sum::<u64>(), 5);
        // With the breaker open past stop_at nothing more can happen, but the connection is
        // down until then: it gives up at stop_at, not before (the run lasts its asked time)
        // and never after.
        let virtual_elapsed = clock::now() - t0;
        assert_eq!(
            virtual_elapsed,
            Duration::from_secs(3),
            "gave up at the end of sending"
        );
        assert!(
            real.elapsed() < Duration::from_secs(2),
            "virtual time, not real"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_means_no_attempt_until_it_half_opens() {
        let spec = spec(closed_port(), BreakerConfig::default());
        for _ in 0..5 {
            spec.breaker.record(Call::Connect, false, false);
        }
        let t0 = clock::now();
        let mut report = ConnReport::default();
        let mut rng = fastrand::Rng::with_seed(2);
        // Open for 5 s; sending ends at 4 s: not one attempt.
        let got = retry(
            &spec,
            0,
            &stop(),
            t0 + Duration::from_secs(4),
            BACKOFF,
            &mut rng,
            &mut report,
        )
        .await;
        assert!(got.is_none());
        assert_eq!(report.resilience.reconnect_attempts, 0);
        // Sending ends at 7 s: at 5 s the breaker half-opens and lets its probes through
        // (three by default), each refused; the failed probe opens it again until 10 s.
        let got = retry(
            &spec,
            0,
            &stop(),
            t0 + Duration::from_secs(7),
            BACKOFF,
            &mut rng,
            &mut report,
        )
        .await;
        assert!(got.is_none());
        assert!(
            (1..=3).contains(&report.resilience.reconnect_attempts),
            "{}",
            report.resilience.reconnect_attempts
        );
        let elapsed = clock::now() - t0;
        assert!(
            elapsed >= Duration::from_secs(5) && elapsed <= Duration::from_secs(7),
            "probed once half-open, gave up by the end: {elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_signal_cuts_a_backoff_short() {
        let spec = spec(closed_port(), BreakerConfig::default());
        let stop = stop();
        let t0 = clock::now();
        let end = stop.end.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            end.cancel();
        });
        let slow = Backoff {
            base: Duration::from_secs(30),
            max: Duration::from_secs(30),
        };
        let mut rng = fastrand::Rng::with_seed(3);
        let mut report = ConnReport::default();
        let got = retry(
            &spec,
            0,
            &stop,
            t0 + Duration::from_secs(3600),
            slow,
            &mut rng,
            &mut report,
        )
        .await;
        assert!(got.is_none());
        assert!(
            clock::now() - t0 < Duration::from_secs(1),
            "returned on the signal"
        );
    }

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
