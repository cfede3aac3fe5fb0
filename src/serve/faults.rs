//! Everything the reference server does on purpose that a healthy server would not: reply
//! delays and jitter, per-session slowness, read stalls. Kept in one place so the handler reads
//! as the protocol, and every fault is seeded (`--seed`) for repeatable runs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// Fault settings, validated (see `ServeConfig`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// Added to every tool reply.
    pub delay: Duration,
    /// Uniform extra delay in [0, jitter) per reply.
    pub jitter: Duration,
    /// Stop reading every `pause_every` (from server start) for `pause_for`.
    pub pause_every: Option<Duration>,
    pub pause_for: Duration,
    /// Extra reply delay for sessions whose id ends with the given suffix.
    pub session_delays: Vec<(String, Duration)>,
    /// Extra tools (echo-like) or extra delay for built-in ones, by tool name.
    pub tool_delays: Vec<(String, Duration)>,
    /// Seed of the per-connection random generators.
    pub seed: u64,
    /// Share of calls answered with `OVER_CAPACITY` (and `retry_after_s`).
    pub error_rate: f64,
    pub retry_after_s: u64,
    /// Share of calls never answered.
    pub drop_rate: f64,
    /// Share of calls preceded by a malformed frame.
    pub malformed_rate: f64,
    /// Share of calls whose final reply is sent twice.
    pub duplicate_rate: f64,
    /// Close a connection with 1011 after this many calls (the last one answered first).
    pub disconnect_after: Option<u64>,
    /// Stop reading and writing a connection after this many calls, leaving it open (a hung
    /// server: no replies, no pongs).
    pub freeze_after: Option<u64>,
    /// Outage: from `down_after` after start, for `down_for`, close every connection (1012)
    /// and refuse new ones.
    pub down_after: Option<Duration>,
    pub down_for: Duration,
    /// Send `call_tool_ack` before each reply.
    pub ack: bool,
    /// Send a `progress` frame before each reply.
    pub progress: bool,
    /// Precede each successful result with this many `stream_chunk` frames and a
    /// `stream_complete`.
    pub stream: u32,
    /// Send `stream_complete` before every successful `call_tool_res`, as the field's daemon
    /// does (implied by `stream`).
    pub stream_complete: bool,
    /// Share of calls rejected the way the field daemon's rate limiter does: an
    /// `{"op":"error","error":{"code":"OVER_CAPACITY",…}}` frame with no `request_id`, and no
    /// reply of the call's own.
    pub uncorrelated_error_rate: f64,
    /// Answer unknown tools as the field daemon does: `{"error":{"code":"TOOL_NOT_FOUND",…}}`
    /// with no `op` and no `request_id`.
    pub bare_tool_errors: bool,
    /// Answer a connection's calls one after another, in the order they came.
    pub in_order: bool,
    /// MCP: injected errors are JSON-RPC errors (-32603) instead of `isError` results.
    pub rpc_errors: bool,
    /// Ping every connection this often.
    pub ping_interval: Option<Duration>,
    /// At most this many calls are worked on at once, server-wide; the rest queue. With a
    /// `delay`, capacity is exactly `max_inflight / delay` calls per second.
    pub max_inflight: Option<u64>,
    /// Share of `echo` replies whose text is corrupted (no longer the arguments).
    pub corrupt_rate: f64,
    /// Share of echo replies given another session's arguments.
    pub mix_sessions_rate: f64,
    /// Each session's first tool call is never answered.
    pub first_call_stall: bool,
    /// Share of echo replies given a text of their own.
    pub diverge_rate: f64,
}

impl FaultConfig {
    /// Whether any reply can be delayed (and the delay thread is needed).
    pub fn delays_replies(&self) -> bool {
        !self.delay.is_zero()
            || !self.jitter.is_zero()
            || !self.session_delays.is_empty()
            || !self.tool_delays.is_empty()
            || self.max_inflight.is_some()
    }
}

/// The server-wide side of fault injection.
#[derive(Debug)]
pub struct Faults {
    pub config: FaultConfig,
    started: Instant,
    scheduler: Option<Mutex<std_mpsc::Sender<Delayed>>>,
    next_conn: std::sync::atomic::AtomicU64,
    /// `--max-inflight`: when each simulated worker is next free (a min-heap).
    workers: Option<Mutex<BinaryHeap<Reverse<Instant>>>>,
    /// `--mix-sessions-rate`: the last echo's arguments and the connection that sent them.
    last_echo: Mutex<Option<(u64, String)>>,
}

/// A reply to deliver to a connection at `due`.
struct Delayed {
    due: Instant,
    deliver: Box<dyn FnOnce() + Send>,
}

impl std::fmt::Debug for Delayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delayed").field("due", &self.due).finish()
    }
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        let scheduler = config
            .delays_replies()
            .then(|| Mutex::new(spawn_scheduler()));
        let now = Instant::now();
        let workers = config
            .max_inflight
            .map(|n| Mutex::new((0..n.max(1)).map(|_| Reverse(now)).collect()));
        Faults {
            config,
            started: now,
            scheduler,
            next_conn: Default::default(),
            last_echo: Mutex::default(),
            workers,
        }
    }

    /// Per-connection state: its own seeded generator and its extra delay.
    pub fn connection(&self) -> ConnFaults {
        let n = self
            .next_conn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ConnFaults {
            rng: fastrand::Rng::with_seed(
                self.config
                    .seed
                    .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            ),
            extra_delay: Duration::ZERO,
            calls: 0,
            serial: n,
        }
    }

    /// `--mix-sessions-rate`: remembers these echo arguments as connection `serial`'s, and
    /// gives back the last ones another connection sent, if any.
    pub fn swap_echo(&self, serial: u64, args: &str) -> Option<String> {
        let mut last = self.last_echo.lock().unwrap_or_else(|e| e.into_inner());
        let other = match last.as_ref() {
            Some((from, text)) if *from != serial => Some(text.clone()),
            _ => None,
        };
        *last = Some((serial, args.to_owned()));
        other
    }

    /// When a call that arrives at `now` and takes `work` is done. Without a worker limit that
    /// is `now + work`; with one, the call waits for the first worker to come free (FIFO), so
    /// the server's capacity is `workers / work` by construction.
    pub fn finish_time(&self, now: Instant, work: Duration) -> Instant {
        let Some(workers) = &self.workers else {
            return now + work;
        };
        let mut heap = workers.lock().unwrap_or_else(|e| e.into_inner());
        let Reverse(free_at) = heap.pop().unwrap_or(Reverse(now));
        let done = free_at.max(now) + work;
        heap.push(Reverse(done));
        done
    }

    /// The outage window, if one is configured: (start, end).
    pub fn down_window(&self) -> Option<(Instant, Instant)> {
        let after = self.config.down_after?;
        let start = self.started + after;
        Some((start, start + self.config.down_for))
    }

    /// Whether the server is in its outage window at `now`.
    pub fn is_down(&self, now: Instant) -> bool {
        self.down_window().is_some_and(|(a, b)| a <= now && now < b)
    }

    /// When a read stall in progress at `now` ends, if one is.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        let every = self.config.pause_every?;
        let since = now.saturating_duration_since(self.started);
        let cycles = since.as_nanos() / every.as_nanos().max(1);
        if cycles == 0 {
            return None;
        }
        let pause_start = self.started + every * cycles as u32;
        let resume = pause_start + self.config.pause_for;
        (now < resume).then_some(resume)
    }

    /// Delivers `item` through `tx` at `due`, precisely (not on tokio's 1 ms timer wheel).
    pub fn deliver_at<T: Send + 'static>(
        &self,
        due: Instant,
        tx: mpsc::UnboundedSender<T>,
        item: T,
    ) {
        let deliver = Box::new(move || {
            let _ = tx.send(item);
        });
        let mut item = Delayed { due, deliver };
        if let Some(s) = &self.scheduler {
            let sender = s.lock().unwrap_or_else(|e| e.into_inner());
            match sender.send(item) {
                Ok(()) => return,
                // The scheduler is gone (shutting down): deliver now rather than never.
                Err(e) => item = e.0,
            }
        }
        (item.deliver)();
    }
}

/// Per-connection fault state.
#[derive(Debug)]
pub struct ConnFaults {
    rng: fastrand::Rng,
    pub extra_delay: Duration,
    /// Calls seen on this connection.
    pub calls: u64,
    /// This connection's number among the server's.
    pub serial: u64,
}

/// What to do to one call's reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallFaults {
    /// Answer an echo with another session's arguments.
    pub mix_sessions: bool,
    /// Answer an echo with a text that differs from the arguments.
    pub diverge: bool,
    pub drop: bool,
    pub error: bool,
    pub malformed: bool,
    pub duplicate: bool,
    /// Close (1011) once this call's reply is out.
    pub disconnect: bool,
    /// Corrupt an echo reply's text.
    pub corrupt: bool,
    /// Stop serving this connection after this call.
    pub freeze: bool,
    /// Reject this call with an error frame that carries no `request_id`.
    pub uncorrelated: bool,
}

impl ConnFaults {
    /// Applies per-session settings once the session id is known.
    pub fn on_session(&mut self, config: &FaultConfig, session_id: &str) {
        self.extra_delay = config
            .session_delays
            .iter()
            .filter(|(suffix, _)| session_id.ends_with(suffix.as_str()))
            .map(|(_, d)| *d)
            .sum();
    }

    /// Draws this call's faults. Every draw happens in a fixed order, so a seed repeats a run.
    pub fn on_call(&mut self, config: &FaultConfig) -> CallFaults {
        self.calls += 1;
        let mut roll = |p: f64| p > 0.0 && self.rng.f64() < p;
        let drop = roll(config.drop_rate);
        let error = roll(config.error_rate);
        let malformed = roll(config.malformed_rate);
        let duplicate = roll(config.duplicate_rate);
        let corrupt = roll(config.corrupt_rate);
        let uncorrelated = roll(config.uncorrelated_error_rate);
        let mix_sessions = roll(config.mix_sessions_rate);
        let diverge = roll(config.diverge_rate);
        CallFaults {
            diverge: diverge && !drop && !error && !corrupt,
            mix_sessions: mix_sessions && !drop && !error && !corrupt,
            uncorrelated: uncorrelated && !drop && !error,
            corrupt,
            drop,
            error: error && !drop,
            malformed,
            duplicate: duplicate && !drop,
            disconnect: config.disconnect_after == Some(self.calls),
            freeze: config.freeze_after == Some(self.calls),
        }
    }

    /// This reply's delay: fixed + session extra + the tool's own + jitter.
    pub fn reply_delay(&mut self, config: &FaultConfig, tool: &str) -> Duration {
        let mut d = config.delay + self.extra_delay;
        if let Some((_, extra)) = config.tool_delays.iter().find(|(t, _)| t == tool) {
            d += *extra;
        }
        if !config.jitter.is_zero() {
            d += config.jitter.mul_f64(self.rng.f64());
        }
        d
    }
}

/// One thread for every delayed reply of the server: a min-heap of due times, woken by
/// `recv_timeout`, which sleeps on a futex with sub-millisecond precision.
fn spawn_scheduler() -> std_mpsc::Sender<Delayed> {
    let (tx, rx) = std_mpsc::channel::<Delayed>();
    std::thread::Builder::new()
        .name("wsbench-delays".into())
        .spawn(move || {
            let mut heap: BinaryHeap<(Reverse<Instant>, Reverse<u64>)> = BinaryHeap::new();
            let mut items: std::collections::HashMap<u64, Delayed> = Default::default();
            let mut seq = 0u64;
            loop {
                let now = Instant::now();
                while let Some((Reverse(due), Reverse(id))) = heap.peek().copied() {
                    if due > now {
                        break;
                    }
                    heap.pop();
                    if let Some(item) = items.remove(&id) {
                        (item.deliver)();
                    }
                }
                let wait = heap
                    .peek()
                    .map(|(Reverse(due), _)| due.saturating_duration_since(now));
                let got = match wait {
                    Some(w) => rx.recv_timeout(w),
                    None => rx
                        .recv()
                        .map_err(|_| std_mpsc::RecvTimeoutError::Disconnected),
                };
                match got {
                    Ok(item) => {
                        heap.push((Reverse(item.due), Reverse(seq)));
                        items.insert(seq, item);
                        seq += 1;
                    }
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                        // Server gone: deliver what is left, in order, and stop.
                        while let Some((_, Reverse(id))) = heap.pop() {
                            if let Some(item) = items.remove(&id) {
                                (item.deliver)();
                            }
                        }
                        return;
                    }
                }
            }
        })
        .expect("spawn the delay thread");
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_repeat_every_period_after_the_first() {
        let f = Faults::new(FaultConfig {
            pause_every: Some(Duration::from_millis(100)),
            pause_for: Duration::from_millis(20),
            ..FaultConfig::default()
        });
        let t0 = f.started;
        assert_eq!(f.paused_until(t0 + Duration::from_millis(50)), None);
        assert_eq!(
            f.paused_until(t0 + Duration::from_millis(105)),
            Some(t0 + Duration::from_millis(120))
        );
        assert_eq!(f.paused_until(t0 + Duration::from_millis(121)), None);
        assert!(f.paused_until(t0 + Duration::from_millis(210)).is_some());
    }

    #[test]
    fn delayed_items_arrive_in_due_order_and_on_time() {
        let f = Faults::new(FaultConfig {
            delay: Duration::from_millis(1),
            ..FaultConfig::default()
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        let t0 = Instant::now();
        f.deliver_at(t0 + Duration::from_millis(30), tx.clone(), 2);
        f.deliver_at(t0 + Duration::from_millis(10), tx.clone(), 1);
        assert_eq!(rx.blocking_recv(), Some(1));
        assert!(t0.elapsed() >= Duration::from_millis(10));
        assert_eq!(rx.blocking_recv(), Some(2));
        assert!(t0.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_worker_limit_queues_calls_first_come_first_served() {
        let f = Faults::new(FaultConfig {
            delay: Duration::from_millis(10),
            max_inflight: Some(2),
            ..FaultConfig::default()
        });
        let t0 = Instant::now();
        let ms = |n| Duration::from_millis(n);
        let done: Vec<_> = (0..5)
            .map(|_| f.finish_time(t0, ms(10)).duration_since(t0))
            .collect();
        // Two workers: 2 calls finish at 10 ms, 2 at 20 ms, 1 at 30 ms.
        let mut sorted = done.clone();
        sorted.sort();
        assert!(sorted[0] >= ms(10) && sorted[1] < ms(11));
        assert!(sorted[2] >= ms(20) && sorted[3] < ms(21));
        assert!(sorted[4] >= ms(30));
    }

    #[test]
    fn jitter_is_seeded_and_bounded() {
        let cfg = FaultConfig {
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(2),
            session_delays: vec![("-3".into(), Duration::from_millis(40))],
            seed: 7,
            ..FaultConfig::default()
        };
        let f = Faults::new(cfg.clone());
        let mut a = f.connection();
        a.on_session(&cfg, "bench-x-3");
        let d = a.reply_delay(&cfg, "echo");
        assert!(
            d >= Duration::from_millis(45) && d < Duration::from_millis(47),
            "{d:?}"
        );
        let mut b = f.connection();
        b.on_session(&cfg, "bench-x-13");
        assert!(b.reply_delay(&cfg, "echo") < Duration::from_millis(7));
    }
}
