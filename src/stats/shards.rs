//! The run's recorders: one per runtime worker thread, each behind its own lock, so recording
//! runs on the connection's own thread in parallel with the others, each thread writing its own
//! histograms (no cache lines shared between cores), and nothing queues between a connection
//! and its histograms. At the end they are merged exactly (`Recorder::add`); live
//! progress reads them in place. Memory is fixed by the number of shards, never by how far
//! recording falls behind (there is no channel to fall behind in).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::recorder::{LastSecond, Live, LiveDetail, Recorder, new_small_histogram};
use crate::model::{Event, Sample};

/// Every recorder of one run. Cloning shares them.
#[derive(Debug, Clone)]
pub struct Recorders {
    shards: Arc<[Mutex<Recorder>]>,
    /// Once the books are closed (`finish`), the live view they ended with: what live metrics
    /// show from then on, so a scrape after the run reads the final figures.
    closed: Arc<Mutex<Option<(Live, LiveDetail)>>>,
}

/// What a connection records through: each event goes to the shard of the thread it runs on
/// (a task that moves threads just writes elsewhere; everything merges by addition). The lock is
/// taken once per batch of up to 512 samples or per tally.
#[derive(Debug, Clone)]
pub struct Shard {
    shards: Arc<[Mutex<Recorder>]>,
}

/// This thread's slot, handed out in order of first use, so a runtime's workers get different
/// shards.
fn slot() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static SLOT: Cell<Option<usize>> = const { Cell::new(None) });
    SLOT.with(|s| {
        s.get().unwrap_or_else(|| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            s.set(Some(n));
            n
        })
    })
}

fn lock(m: &Mutex<Recorder>) -> MutexGuard<'_, Recorder> {
    // A panic while recording leaves counts a recorder can still report.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recorders {
    /// `n` recorders (at least one).
    pub fn new(n: usize) -> Self {
        Recorders {
            shards: (0..n.max(1)).map(|_| Mutex::default()).collect(),
            closed: Arc::default(),
        }
    }

    /// One recorder per worker thread of the current tokio runtime (one outside a runtime).
    pub fn per_worker() -> Self {
        let n = tokio::runtime::Handle::try_current()
            .map(|h| h.metrics().num_workers())
            .unwrap_or(1);
        Recorders::new(n)
    }

    /// The handle connection tasks record through.
    pub fn shard(&self) -> Shard {
        Shard {
            shards: self.shards.clone(),
        }
    }

    /// Tells every recorder where the measured window starts.
    pub fn measure_from(&self, from: Instant) {
        for s in self.shards.iter() {
            lock(s).record(Event::Measure { from });
        }
    }

    /// The live view as of `now`: totals, open connections, the last complete second.
    pub fn live(&self, now: Instant) -> Live {
        if let Some((live, _)) = &*self.closed.lock().unwrap_or_else(|e| e.into_inner()) {
            return live.clone();
        }
        let mut live = Live::default();
        let mut open = 0i64;
        let mut last = new_small_histogram();
        let mut succeeded = 0;
        let mut seen = false;
        for s in self.shards.iter() {
            let r = lock(s);
            let (totals, opened, second) = r.live_share(now);
            live.totals += totals;
            open += opened;
            if let Some(second) = second {
                let _ = last.add(&second.latency);
                succeeded += second.tally.succeeded;
                seen = true;
            }
        }
        live.open_conns = open.max(0) as u32;
        live.last_second = seen.then(|| last_second(&last, succeeded));
        live
    }

    /// The live view with what metrics add: counts by tool, failures by code, response times
    /// so far. Costs a copy of the response-time histograms: for a scrape, not for a progress
    /// line.
    pub fn detail(&self, now: Instant) -> (Live, LiveDetail) {
        if let Some(closed) = &*self.closed.lock().unwrap_or_else(|e| e.into_inner()) {
            return closed.clone();
        }
        let live = self.live(now);
        let mut detail = LiveDetail::default();
        for s in self.shards.iter() {
            lock(s).detail_share(&mut detail);
        }
        detail.split();
        (live, detail)
    }

    /// Takes every recorder's figures and merges them into one, books closed.
    pub fn finish(&self) -> Recorder {
        // The first shard is the base, so the merge holds one more set of histograms at most.
        let mut shards = self.shards.iter().map(|s| std::mem::take(&mut *lock(s)));
        let mut all = shards.next().unwrap_or_default();
        for shard in shards {
            all.add(shard);
        }
        all.finish();
        let mut detail = LiveDetail::default();
        all.detail_share(&mut detail);
        detail.split();
        let (totals, open, _) = all.live_share(Instant::now());
        let live = Live {
            totals: *totals,
            open_conns: open.max(0) as u32,
            last_second: None,
        };
        *self.closed.lock().unwrap_or_else(|e| e.into_inner()) = Some((live, detail));
        all
    }
}

/// A second's successes (as counted by the tallies) and its percentiles.
fn last_second(h: &hdrhistogram::Histogram<u64>, count: u64) -> LastSecond {
    let ms = |q| {
        if h.is_empty() {
            f64::NAN
        } else {
            h.value_at_quantile(q) as f64 / 1e3
        }
    };
    LastSecond {
        count,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
    }
}

impl Shard {
    fn mine(&self) -> &Mutex<Recorder> {
        &self.shards[slot() % self.shards.len()]
    }

    pub fn record(&self, event: Event) {
        lock(self.mine()).record(event);
    }

    pub fn samples(&self, samples: &[Sample]) {
        lock(self.mine()).samples(samples);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{SetupStamps, Tally};

    fn sample(conn: u32, t0: Instant, received_ms: u64) -> Sample {
        Sample {
            call: 0,
            conn,
            succeeded: true,
            scheduled: t0,
            ready: t0,
            queued: t0,
            sent: t0,
            received: t0 + Duration::from_millis(received_ms),
            acked: None,
            first_chunk: None,
            stream_end: None,
        }
    }

    #[test]
    fn shards_merge_to_exactly_what_one_recorder_would_hold() {
        let t0 = Instant::now();
        let sharded = Recorders::new(3);
        let mut single = Recorder::default();
        sharded.measure_from(t0);
        single.record(Event::Measure { from: t0 });
        for conn in 0..7u32 {
            let batch: Vec<Sample> = (0..50)
                .map(|i| sample(conn, t0, 1 + (i * 37 + conn as u64 * 11) % 2500))
                .collect();
            let stamps = SetupStamps {
                started: t0,
                tcp: t0 + Duration::from_micros(100 + conn as u64),
                tls: None,
                upgraded: t0 + Duration::from_micros(300 + conn as u64),
                acked: t0 + Duration::from_micros(400 + conn as u64),
            };
            let tally = Tally {
                sent: 50,
                succeeded: 50,
                ..Tally::default()
            };
            let events = [
                Event::Setup(stamps),
                Event::Conn { at: t0, open: true },
                Event::Tally {
                    sec: 1,
                    tally,
                    tools: vec![tally],
                    errors: Vec::new(),
                },
            ];
            // Each connection's events from a thread of its own, some split across two
            // threads (a task that moved): they land in different shards.
            let shard = sharded.shard();
            let (first, rest) = events.split_at(1);
            let (first, rest) = (first.to_vec(), rest.to_vec());
            std::thread::scope(|t| {
                t.spawn(|| {
                    shard.samples(&batch);
                    first.into_iter().for_each(|e| shard.record(e));
                });
                t.spawn(|| rest.into_iter().for_each(|e| shard.record(e)));
            });
            single.samples(&batch);
            for e in events {
                single.record(e);
            }
        }
        // At 3.5 s the last complete second is second 1 (one more second for its tallies).
        let live = sharded.live(t0 + Duration::from_millis(3500));
        assert_eq!((live.totals.sent, live.open_conns), (350, 7));
        assert_eq!(live.last_second.map(|l| l.count), Some(350));
        single.finish();
        let merged = sharded.finish();
        for ((name, a), (_, b)) in merged
            .histograms
            .named()
            .into_iter()
            .zip(single.histograms.named())
        {
            assert_eq!(a, b, "{name}");
        }
        assert_eq!(merged.seconds.len(), single.seconds.len());
        for (a, b) in merged.seconds.iter().zip(&single.seconds) {
            assert_eq!(
                (&a.tally, &a.latency, a.open_conns),
                (&b.tally, &b.latency, b.open_conns)
            );
        }
        assert_eq!(merged.last_received, single.last_received);
    }
}
