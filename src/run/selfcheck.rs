//! The client measuring itself: CPU time (getrusage), memory (peak and current RSS), and
//! whether it was the bottleneck. An embedded server runs on threads of its own whose CPU is
//! read per thread and subtracted, so the figures are the load generator's alone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::model::ClientCheck;

/// CPU time (user + system) of the whole process so far.
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass; RUSAGE_SELF is always valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

pub use crate::resources::{current_rss_kb, peak_rss_kb};

/// Threads whose CPU time is not the client's (the embedded server's runtime).
#[derive(Debug, Clone, Default)]
pub struct ThreadSet(Arc<Mutex<Vec<libc::pthread_t>>>);

impl ThreadSet {
    /// Called on each such thread as it starts.
    pub fn register_current(&self) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(me);
    }

    /// Total CPU time of the registered threads that are still alive.
    pub fn cpu(&self) -> Duration {
        let threads = self.0.lock().unwrap_or_else(|e| e.into_inner());
        threads
            .iter()
            .map(|t| {
                let mut clock: libc::clockid_t = 0;
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // SAFETY: the threads belong to a runtime that is still running (the server is
                // shut down only after the last reading); both calls only write to our locals.
                let ok = unsafe {
                    libc::pthread_getcpuclockid(*t, &mut clock) == 0
                        && libc::clock_gettime(clock, &mut ts) == 0
                };
                if ok {
                    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
                } else {
                    Duration::ZERO
                }
            })
            .sum()
    }
}

/// A CPU reading of the client alone: process CPU minus the excluded threads.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    process: Duration,
    excluded: Duration,
}

impl CpuMark {
    pub fn now(excluded: Option<&ThreadSet>) -> Self {
        CpuMark {
            process: process_cpu(),
            excluded: excluded.map(ThreadSet::cpu).unwrap_or_default(),
        }
    }

    /// The client's CPU time from `self` to `later`.
    pub fn until(&self, later: &CpuMark) -> Duration {
        let process = later.process.saturating_sub(self.process);
        let excluded = later.excluded.saturating_sub(self.excluded);
        process.saturating_sub(excluded)
    }
}

/// Above this share of its cores the client may have been the bottleneck.
pub const CPU_SATURATION: f64 = 0.90;
/// CPU share over a shorter load is too noisy to call saturation.
pub const MIN_JUDGED_LOAD: Duration = Duration::from_secs(1);
/// Open loop: a client-lag p99 above this means the pacer could not keep its schedule.
pub const LAG_LIMIT_MS: f64 = 10.0;

impl ClientCheck {
    /// Judges the figures. `lag_p99_ms` and the rates are for open loop only.
    pub fn judge(
        cpu: Duration,
        wall: Duration,
        completed: u64,
        rss_per_conn_kb: Option<f64>,
        open_loop: Option<(f64, f64, f64)>,
    ) -> ClientCheck {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let wall_s = wall.as_secs_f64().max(1e-9);
        let cpu_share = cpu.as_secs_f64() / (wall_s * cores as f64);
        let mut reasons = Vec::new();
        if cpu_share > CPU_SATURATION && wall >= MIN_JUDGED_LOAD {
            reasons.push(format!(
                "client CPU at {:.0}% of its {cores} cores",
                cpu_share * 100.0
            ));
        }
        // Only the client's own lateness counts: client lag is send time minus the moment the
        // request could have gone (its slot, or later when the server held it up with a full
        // window or a socket it was not reading). Sending less than the schedule asked because
        // the server pushed back is the server's result, never "client saturated".
        if let Some((lag_p99_ms, _target, _achieved)) = open_loop
            && lag_p99_ms > LAG_LIMIT_MS
        {
            reasons.push(format!(
                "the pacer lagged its schedule (client lag p99 {lag_p99_ms:.1} ms)"
            ));
        }
        ClientCheck {
            cpu_ms: cpu.as_secs_f64() * 1e3,
            cores,
            cpu_share,
            cpu_us_per_request: (completed > 0).then(|| cpu.as_secs_f64() * 1e6 / completed as f64),
            peak_rss_mb: peak_rss_kb() as f64 / 1024.0,
            rss_per_conn_kb,
            saturated: !reasons.is_empty(),
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This thread's own CPU time.
    fn thread_cpu() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: writes into our local.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    /// Burns `cpu` of this thread's CPU time, however contended the machine is.
    fn burn(cpu: Duration) {
        let start = thread_cpu();
        let mut x = 0u64;
        while thread_cpu() - start < cpu {
            for _ in 0..1000 {
                x = x.wrapping_mul(31).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
    }

    #[test]
    fn cpu_of_busy_work_is_seen() {
        let before = CpuMark::now(None);
        burn(Duration::from_millis(50));
        let spent = before.until(&CpuMark::now(None));
        assert!(spent >= Duration::from_millis(45), "{spent:?}");
        assert!(peak_rss_kb() > 0);
    }

    #[test]
    fn excluded_threads_are_subtracted() {
        let set = ThreadSet::default();
        let s2 = set.clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            s2.register_current();
            burn(Duration::from_millis(60));
            done_tx.send(()).ok();
            rx.recv().ok();
        });
        done_rx.recv().unwrap();
        assert!(set.cpu() >= Duration::from_millis(55), "{:?}", set.cpu());
        tx.send(()).unwrap();
        h.join().unwrap();
    }

    #[test]
    fn saturation_has_reasons() {
        let c = ClientCheck::judge(
            Duration::from_secs(19),
            Duration::from_secs(10),
            1000,
            None,
            None,
        );
        assert!(c.cpu_share > 0.0);
        let lagging = ClientCheck::judge(
            Duration::ZERO,
            Duration::from_secs(1),
            10,
            None,
            Some((50.0, 1000.0, 500.0)),
        );
        assert!(
            lagging.saturated && lagging.reasons.len() == 1,
            "{:?}",
            lagging.reasons
        );
        // Sending half the schedule on time: the server held it up, the client kept up.
        let held = ClientCheck::judge(
            Duration::ZERO,
            Duration::from_secs(1),
            10,
            None,
            Some((0.2, 10_000.0, 5_000.0)),
        );
        assert!(!held.saturated, "{:?}", held.reasons);
    }
}
