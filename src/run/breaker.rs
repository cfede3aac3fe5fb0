//! The circuit breaker shared by every connection of a run (one target). CLOSED lets
//! everything through; `failure_threshold` consecutive failures open it; while OPEN no connect
//! attempt or request is made; after `open_timeout` it turns HALF_OPEN and lets
//! `half_open_max_calls` probe connects through; `success_threshold` successes close it, any
//! failure reopens it. Which failures count is configurable. Every transition is kept, stamped.
//! An OPEN caused by failed connects stops connect attempts but not requests on connections
//! that are up and healthy (a server at its connection limit still serves those); an OPEN
//! caused by failed requests stops both.

use crate::run::clock;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Breaker settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    pub enabled: bool,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub open_timeout: Duration,
    pub half_open_max_calls: u32,
    /// Count request timeouts as failures (connect and handshake failures always count).
    pub count_timeouts: bool,
    /// Count error replies as failures.
    pub count_errors: bool,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            failure_threshold: 5,
            success_threshold: 2,
            open_timeout: Duration::from_secs(5),
            half_open_max_calls: 3,
            count_timeouts: false,
            count_errors: false,
        }
    }
}

pub use crate::model::BreakerState as State;

/// One state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub at: Instant,
    pub from: State,
    pub to: State,
    /// An OPEN caused by failed requests: it holds requests back as well as connects.
    pub holds_requests: bool,
}

#[derive(Debug)]
struct Inner {
    successes: u32,
    probes: u32,
    opened_at: Instant,
    transitions: Vec<Transition>,
}

/// A run's breaker. Requests check one atomic in the CLOSED state; the lock is taken only on
/// failures and state changes.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: AtomicU8,
    /// Whether the current OPEN was caused by request failures (and so holds requests back).
    requests_blocked: std::sync::atomic::AtomicBool,
    consecutive_failures: AtomicU32,
    inner: Mutex<Inner>,
}

/// What went through the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Connect,
    Request,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Breaker {
            config,
            state: AtomicU8::new(0),
            requests_blocked: std::sync::atomic::AtomicBool::new(false),
            consecutive_failures: AtomicU32::new(0),
            inner: Mutex::new(Inner {
                successes: 0,
                probes: 0,
                opened_at: clock::now(),
                transitions: Vec::new(),
            }),
        }
    }

    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, inner: &mut Inner, to: State, now: Instant) {
        let from = self.state();
        if from == to {
            return;
        }
        self.state.store(to as u8, Relaxed);
        let holds_requests = to == State::Open && self.requests_blocked.load(Relaxed);
        inner.transitions.push(Transition {
            at: now,
            from,
            to,
            holds_requests,
        });
        inner.successes = 0;
        inner.probes = 0;
        self.consecutive_failures.store(0, Relaxed);
        if to == State::Open {
            inner.opened_at = now;
        }
        tracing::info!(?from, ?to, "circuit breaker");
    }

    /// OPEN turns HALF_OPEN once `open_timeout` has passed.
    fn refresh(&self, inner: &mut Inner, now: Instant) {
        if self.state() == State::Open && now >= inner.opened_at + self.config.open_timeout {
            self.set(inner, State::HalfOpen, now);
        }
    }

    /// Whether a request may be sent now. Only OPEN blocks requests.
    pub fn allows_request(&self) -> bool {
        if !self.config.enabled || self.state() == State::Closed {
            return true;
        }
        let mut inner = self.lock();
        self.refresh(&mut inner, clock::now());
        self.state() != State::Open || !self.requests_blocked.load(Relaxed)
    }

    /// Whether a connect attempt may start now; in HALF_OPEN it takes one of the probe slots.
    pub fn try_connect(&self) -> bool {
        if !self.config.enabled || self.state() == State::Closed {
            return true;
        }
        let mut inner = self.lock();
        self.refresh(&mut inner, clock::now());
        match self.state() {
            State::Closed => true,
            State::Open => false,
            State::HalfOpen if inner.probes < self.config.half_open_max_calls => {
                inner.probes += 1;
                true
            }
            State::HalfOpen => false,
        }
    }

    /// When a blocked caller should look again.
    pub fn retry_at(&self) -> Instant {
        let inner = self.lock();
        match self.state() {
            State::Open => inner.opened_at + self.config.open_timeout,
            _ => clock::now() + Duration::from_millis(20),
        }
    }

    /// Reports the outcome of a call that went through.
    pub fn record(&self, call: Call, ok: bool, timeout: bool) {
        if !self.config.enabled {
            return;
        }
        let counts = match call {
            Call::Connect => true,
            Call::Request if ok => self.config.count_timeouts || self.config.count_errors,
            Call::Request if timeout => self.config.count_timeouts,
            Call::Request => self.config.count_errors,
        };
        if !counts {
            return;
        }
        // The hot path: a success while CLOSED with no failure streak touches nothing shared.
        if ok && self.state() == State::Closed && self.consecutive_failures.load(Relaxed) == 0 {
            return;
        }
        let now = clock::now();
        let mut inner = self.lock();
        self.refresh(&mut inner, now);
        match (self.state(), ok) {
            (State::Closed, true) => self.consecutive_failures.store(0, Relaxed),
            (State::Closed, false) => {
                let n = self.consecutive_failures.fetch_add(1, Relaxed) + 1;
                if n >= self.config.failure_threshold {
                    self.requests_blocked.store(call == Call::Request, Relaxed);
                    self.set(&mut inner, State::Open, now);
                }
            }
            (State::HalfOpen, true) => {
                if call == Call::Connect {
                    inner.probes = inner.probes.saturating_sub(1);
                }
                inner.successes += 1;
                if inner.successes >= self.config.success_threshold {
                    self.set(&mut inner, State::Closed, now);
                }
            }
            (State::HalfOpen, false) => {
                self.requests_blocked.store(call == Call::Request, Relaxed);
                self.set(&mut inner, State::Open, now)
            }
            // A late result of a call started before the breaker opened.
            (State::Open, _) => {}
        }
    }

    /// Every transition so far.
    pub fn transitions(&self) -> Vec<Transition> {
        self.lock().transitions.clone()
    }

    /// Whether the breaker is in use at all.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(open_timeout_ms: u64) -> Breaker {
        Breaker::new(BreakerConfig {
            open_timeout: Duration::from_millis(open_timeout_ms),
            ..BreakerConfig::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn goes_closed_open_half_open_closed() {
        let b = breaker(30);
        for _ in 0..4 {
            b.record(Call::Connect, false, false);
        }
        assert_eq!(
            b.state(),
            State::Closed,
            "4 failures are under the threshold"
        );
        b.record(Call::Connect, false, false);
        assert_eq!(b.state(), State::Open);
        assert!(!b.try_connect(), "no connect attempt while open");
        assert!(
            b.allows_request(),
            "connections that are up keep sending: connects failed, not requests"
        );
        // Virtual time: exactly at the boundary, not a sleep that hopes to be long enough.
        tokio::time::advance(Duration::from_millis(29)).await;
        assert!(!b.try_connect(), "still open 1 ms before the timeout");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(b.try_connect(), "half-open lets a probe through");
        assert_eq!(b.state(), State::HalfOpen);
        assert!(b.try_connect() && b.try_connect());
        assert!(!b.try_connect(), "three probes at most");
        b.record(Call::Connect, true, false);
        assert_eq!(b.state(), State::HalfOpen);
        b.record(Call::Connect, true, false);
        assert_eq!(b.state(), State::Closed);
        let path: Vec<_> = b.transitions().iter().map(|t| t.to).collect();
        assert_eq!(path, [State::Open, State::HalfOpen, State::Closed]);
    }

    #[tokio::test(start_paused = true)]
    async fn any_failure_in_half_open_reopens() {
        let b = breaker(10);
        for _ in 0..5 {
            b.record(Call::Connect, false, false);
        }
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(b.try_connect());
        b.record(Call::Connect, false, false);
        assert_eq!(b.state(), State::Open);
    }

    #[test]
    fn a_success_resets_the_streak() {
        let b = breaker(10);
        for _ in 0..4 {
            b.record(Call::Connect, false, false);
        }
        b.record(Call::Connect, true, false);
        for _ in 0..4 {
            b.record(Call::Connect, false, false);
        }
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn request_failures_count_only_when_asked() {
        let b = breaker(10);
        for _ in 0..10 {
            b.record(Call::Request, false, true);
        }
        assert_eq!(b.state(), State::Closed);
        let b = Breaker::new(BreakerConfig {
            count_timeouts: true,
            ..BreakerConfig::default()
        });
        for _ in 0..5 {
            b.record(Call::Request, false, true);
        }
        assert_eq!(b.state(), State::Open);
        assert!(!b.allows_request(), "opened by requests: requests wait too");
    }
}
