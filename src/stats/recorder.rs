//! WHERE LATENCY IS RECORDED: one recorder's histograms, per-second timeline and
//! per-connection histograms, fed with the stamps connection tasks take (`model::Event`).
//! A run has one recorder per runtime worker (`stats::shards`), merged exactly with `add` at
//! the end. All values are microseconds.

use std::collections::BTreeMap;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::model::{Event, Sample, SetupStamps, Tally};

/// Highest recordable value: one hour in microseconds. Longer values are clamped, not lost.
const MAX_US: u64 = 3_600_000_000;
/// Three significant figures (0.1% resolution) for the run's histograms.
const SIGFIG: u8 = 3;
/// Two (1%) for per-second and per-connection ones: there are many, so they stay small.
const SIGFIG_SMALL: u8 = 2;

/// A histogram with wsbench's precision (3 significant figures) that grows to the largest value
/// it is given (at most [`MAX_US`], where `micros` clamps), so one that holds 10 ms latencies
/// costs ~40 KiB, not the ~190 KiB of one sized for an hour up front.
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 2, SIGFIG).expect("static bounds are valid");
    h.auto(true);
    h
}

/// A small, self-resizing histogram for per-second and per-connection figures.
pub fn new_small_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 2, SIGFIG_SMALL).expect("static bounds are valid");
    h.auto(true);
    h
}

/// The run's histograms.
#[derive(Debug, Clone)]
pub struct Histograms {
    /// Response time: final reply received minus the request's response start (its scheduled
    /// slot when the server held it up, else its send). This is what the gate checks; in closed
    /// loop it equals service time.
    pub latency: Histogram<u64>,
    /// Service time: final reply received minus actual send time.
    pub service: Histogram<u64>,
    /// Connection setup: TCP connect (+ TLS) + WebSocket upgrade.
    pub connect: Histogram<u64>,
    /// TCP connect alone.
    pub tcp: Histogram<u64>,
    /// TLS handshake (wss:// only).
    pub tls: Histogram<u64>,
    /// WebSocket upgrade alone.
    pub upgrade: Histogram<u64>,
    /// hello sent to hello_ack received.
    pub hello: Histogram<u64>,
    /// Send to first `call_tool_ack` (only requests that got one).
    pub ack: Histogram<u64>,
    /// Send to first `progress` / `stream_chunk` (only requests that got one).
    pub first_chunk: Histogram<u64>,
    /// Send to `stream_complete` (the stream's end; the result follows).
    pub stream_end: Histogram<u64>,
    /// Schedule lag: actual send minus scheduled slot (open loop).
    pub schedule_lag: Histogram<u64>,
    /// Client lag: actual send minus the moment it could have been sent. Large values mean the
    /// client itself fell behind.
    pub client_lag: Histogram<u64>,
    /// Drop to hello_ack on the new connection.
    pub reconnect: Histogram<u64>,
    /// Client ping to pong.
    pub pong: Histogram<u64>,
}

impl Histograms {
    /// Every histogram with its name in the result file.
    pub fn named(&self) -> [(&'static str, &Histogram<u64>); 14] {
        [
            ("latency", &self.latency),
            ("service", &self.service),
            ("connect", &self.connect),
            ("tcp", &self.tcp),
            ("tls", &self.tls),
            ("upgrade", &self.upgrade),
            ("hello", &self.hello),
            ("ack", &self.ack),
            ("first_chunk", &self.first_chunk),
            ("stream_end", &self.stream_end),
            ("schedule_lag", &self.schedule_lag),
            ("client_lag", &self.client_lag),
            ("reconnect", &self.reconnect),
            ("pong", &self.pong),
        ]
    }

    /// The histogram stored under `name`, for filling from a result file.
    pub fn by_name_mut(&mut self, name: &str) -> Option<&mut Histogram<u64>> {
        Some(match name {
            "latency" => &mut self.latency,
            "service" => &mut self.service,
            "connect" => &mut self.connect,
            "tcp" => &mut self.tcp,
            "tls" => &mut self.tls,
            "upgrade" => &mut self.upgrade,
            "hello" => &mut self.hello,
            "ack" => &mut self.ack,
            "first_chunk" => &mut self.first_chunk,
            "stream_end" => &mut self.stream_end,
            "schedule_lag" => &mut self.schedule_lag,
            "client_lag" => &mut self.client_lag,
            "reconnect" => &mut self.reconnect,
            "pong" => &mut self.pong,
            _ => return None,
        })
    }
}

impl Histograms {
    /// Adds every histogram of `other` (same bounds: nothing out of range).
    pub fn add(&mut self, other: &Histograms) {
        for (name, from) in other.named() {
            if let Some(into) = self.by_name_mut(name) {
                let _ = into.add(from);
            }
        }
    }

    /// Takes every histogram of `other` away (it must be a part of these).
    pub fn subtract(&mut self, other: &Histograms) {
        for (name, from) in other.named() {
            if let Some(into) = self.by_name_mut(name) {
                let _ = into.subtract(from);
            }
        }
    }
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms {
            latency: new_histogram(),
            service: new_histogram(),
            connect: new_histogram(),
            tcp: new_histogram(),
            tls: new_histogram(),
            upgrade: new_histogram(),
            hello: new_histogram(),
            ack: new_histogram(),
            first_chunk: new_histogram(),
            stream_end: new_histogram(),
            schedule_lag: new_histogram(),
            client_lag: new_histogram(),
            reconnect: new_histogram(),
            pong: new_histogram(),
        }
    }
}

/// One second of the measured window.
#[derive(Debug, Clone)]
pub struct Second {
    pub tally: Tally,
    /// Response times of the successes received in this second.
    pub latency: Histogram<u64>,
    /// Connections open at the end of this second.
    pub open_conns: u32,
}

impl Default for Second {
    fn default() -> Self {
        Second {
            tally: Tally::default(),
            latency: new_small_histogram(),
            open_conns: 0,
        }
    }
}

/// Running totals for live progress, read off the recorders (`Recorders::live`).
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub totals: Tally,
    pub open_conns: u32,
    /// The last complete second's response times, if any.
    pub last_second: Option<LastSecond>,
}

/// The last complete second of the measured window, as live views show it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastSecond {
    /// Successes received in it.
    pub count: u64,
    /// Response-time percentiles in ms (NaN when it had no success).
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// What live metrics add to [`Live`]: counts by tool, failures by tool and code, and the
/// response times so far (microseconds), all of the measured window.
#[derive(Debug, Clone, Default)]
pub struct LiveDetail {
    /// By tool (`Mix::stat`).
    pub tools: Vec<Tally>,
    /// Failures by (tool, code).
    pub errors: BTreeMap<(u8, String), u64>,
    /// Response times by tool (`Mix::stat`): the run's split as the result file splits it.
    pub latency: Vec<Histogram<u64>>,
}

impl LiveDetail {
    /// Turns the first entry from the run's response times into the first tool's own (the
    /// recorder keeps only the other tools' apart).
    pub(super) fn split(&mut self) {
        if let Some((first, rest)) = self.latency.split_first_mut() {
            for other in rest.iter() {
                let _ = first.subtract(other);
            }
        }
    }
}

/// Adds `from` into `into` index by index, growing it.
fn add_tallies(into: &mut Vec<Tally>, from: &[Tally]) {
    if into.len() < from.len() {
        into.resize_with(from.len(), Tally::default);
    }
    for (into, from) in into.iter_mut().zip(from) {
        *into += from;
    }
}

/// Recording a value already clamped by [`micros`] into a growing histogram.
trait RecordClamped {
    fn record_clamped(&mut self, us: u64);
}

impl RecordClamped for Histogram<u64> {
    fn record_clamped(&mut self, us: u64) {
        // Auto-resizing: only an allocation failure could refuse it.
        let _ = self.record(us.min(MAX_US));
    }
}

/// A request's response time in microseconds: what the run's latency histogram and each
/// connection's own record.
pub fn response_us(s: &Sample) -> u64 {
    micros(s.received, s.response_start())
}

fn micros(later: Instant, earlier: Instant) -> u64 {
    let us = later.saturating_duration_since(earlier).as_micros();
    // Sub-microsecond values round up to the lowest bucket rather than vanish.
    (us as u64).clamp(1, MAX_US)
}

/// One request's lags, whatever its outcome: every request sent is measured.
fn record_lags(h: &mut Histograms, s: &Sample) {
    h.schedule_lag.record_clamped(micros(s.sent, s.scheduled));
    // The client's own lateness: from when it could send to when it did (a socket the
    // server was slow to drain is not the client's, and is in schedule lag instead).
    h.client_lag.record_clamped(micros(s.queued, s.ready));
}

/// One request's histograms: response and service time, lags and phases (only the lags for a
/// request that did not succeed).
fn record_request(h: &mut Histograms, s: &Sample, response: u64) {
    record_lags(h, s);
    if !s.succeeded {
        return;
    }
    h.latency.record_clamped(response);
    h.service.record_clamped(micros(s.received, s.sent));
    if let Some(acked) = s.acked {
        h.ack.record_clamped(micros(acked, s.sent));
    }
    if let Some(chunk) = s.first_chunk {
        h.first_chunk.record_clamped(micros(chunk, s.sent));
    }
    if let Some(end) = s.stream_end {
        h.stream_end.record_clamped(micros(end, s.sent));
    }
}

/// Owns the histograms while the run goes on.
#[derive(Debug, Default)]
pub struct Recorder {
    pub histograms: Histograms,
    measure_from: Option<Instant>,
    /// When the last successful reply arrived; the measured window ends no earlier.
    pub last_received: Option<Instant>,
    pub seconds: Vec<Second>,
    /// Open/close stamps, replayed into `seconds` at the end.
    pub conn_changes: Vec<(Instant, bool)>,
    /// For live progress: every tally so far, and connections opened minus closed.
    totals: Tally,
    open: i64,
    /// For live metrics: counts by tool and failures by (tool, code).
    live_tools: Vec<Tally>,
    live_errors: BTreeMap<(u8, String), u64>,
    /// By call of the mix (its per-tool place, `Mix::stat`): the per-request histograms of
    /// every call but the first (the first's are the run's minus these, at the end: a run of
    /// one tool records nothing twice).
    pub per_tool: Vec<Histograms>,
}

impl Recorder {
    pub fn record(&mut self, event: Event) {
        match event {
            Event::Measure { from } => self.measure_from = Some(from),
            Event::Setup(s) => self.setup(&s),
            Event::Samples(samples) => self.samples(&samples),
            Event::Tally {
                sec,
                tally,
                tools,
                errors,
            } => {
                self.second(sec).tally += &tally;
                self.totals += &tally;
                add_tallies(&mut self.live_tools, &tools);
                for key in errors {
                    *self.live_errors.entry(key).or_default() += 1;
                }
            }
            Event::Reconnect { dropped, up } => {
                self.histograms
                    .reconnect
                    .record_clamped(micros(up, dropped));
            }
            Event::Pong { sent, received } => {
                self.histograms.pong.record_clamped(micros(received, sent));
            }
            Event::Conn { at, open } => {
                self.conn_changes.push((at, open));
                self.open += if open { 1 } else { -1 };
            }
        }
    }

    /// A batch of completed requests (the connection keeps its buffer).
    pub fn samples(&mut self, samples: &[Sample]) {
        for s in samples {
            self.sample(s);
        }
    }

    /// Adds everything `other` recorded: histograms exactly (same bounds, counts summed),
    /// seconds by index.
    pub fn add(&mut self, other: Recorder) {
        for (name, from) in other.histograms.named() {
            if let Some(into) = self.histograms.by_name_mut(name) {
                // Same bounds on both sides, so nothing can be out of range.
                let _ = into.add(from);
            }
        }
        if self.seconds.len() < other.seconds.len() {
            self.seconds
                .resize_with(other.seconds.len(), Second::default);
        }
        for (into, from) in self.seconds.iter_mut().zip(&other.seconds) {
            into.tally += &from.tally;
            // Small histograms grow to what they are given.
            let _ = into.latency.add(&from.latency);
        }
        if self.per_tool.len() < other.per_tool.len() {
            self.per_tool
                .resize_with(other.per_tool.len(), Histograms::default);
        }
        for (into, from) in self.per_tool.iter_mut().zip(&other.per_tool) {
            into.add(from);
        }
        self.conn_changes.extend(other.conn_changes);
        self.last_received = self.last_received.max(other.last_received);
        self.measure_from = self.measure_from.or(other.measure_from);
        self.totals += &other.totals;
        self.open += other.open;
        add_tallies(&mut self.live_tools, &other.live_tools);
        for (key, n) in other.live_errors {
            *self.live_errors.entry(key).or_default() += n;
        }
    }

    /// Adds this recorder's share of the live metrics to `into`: by-tool counts, failures and
    /// response times (the first tool's own are the run's minus the others', at the end:
    /// `LiveDetail::split`).
    pub(super) fn detail_share(&self, into: &mut LiveDetail) {
        add_tallies(&mut into.tools, &self.live_tools);
        for (key, n) in &self.live_errors {
            *into.errors.entry(key.clone()).or_default() += n;
        }
        let needed = self.per_tool.len().max(1);
        if into.latency.len() < needed {
            into.latency.resize_with(needed, new_histogram);
        }
        let _ = into.latency[0].add(&self.histograms.latency);
        for (into, from) in into.latency.iter_mut().zip(&self.per_tool).skip(1) {
            let _ = into.add(&from.latency);
        }
    }

    /// This recorder's share of the live view: its totals, its open connections, and the last
    /// complete second as of `now`. Complete means every connection has handed its counts of it
    /// over: a tally goes out when its second turns or within a second of its first count, so
    /// the second that ended more than a second ago (its count can then never exceed the
    /// totals shown beside it).
    pub(super) fn live_share(&self, now: Instant) -> (&Tally, i64, Option<&Second>) {
        let last = self.measure_from.and_then(|from| {
            let now = now.saturating_duration_since(from).as_secs() as usize;
            now.checked_sub(2).and_then(|i| self.seconds.get(i))
        });
        (&self.totals, self.open, last)
    }

    fn second(&mut self, sec: u32) -> &mut Second {
        let i = sec as usize;
        if self.seconds.len() <= i {
            self.seconds.resize_with(i + 1, Second::default);
        }
        &mut self.seconds[i]
    }

    fn sample(&mut self, s: &Sample) {
        let response = response_us(s);
        record_request(&mut self.histograms, s, response);
        let call = usize::from(s.call);
        if call > 0 {
            if self.per_tool.len() <= call {
                self.per_tool.resize_with(call + 1, Histograms::default);
            }
            record_request(&mut self.per_tool[call], s, response);
        }
        if !s.succeeded {
            return;
        }
        if let Some(from) = self.measure_from {
            let sec = s.received.saturating_duration_since(from).as_secs() as u32;
            let _ = self.second(sec).latency.record(response);
        }
        if self.last_received.is_none_or(|t| s.received > t) {
            self.last_received = Some(s.received);
        }
    }

    fn setup(&mut self, s: &SetupStamps) {
        let h = &mut self.histograms;
        h.connect.record_clamped(micros(s.upgraded, s.started));
        h.tcp.record_clamped(micros(s.tcp, s.started));
        if let Some(tls) = s.tls {
            h.tls.record_clamped(micros(tls, s.tcp));
        }
        h.upgrade
            .record_clamped(micros(s.upgraded, s.tls.unwrap_or(s.tcp)));
        h.hello.record_clamped(micros(s.acked, s.upgraded));
    }

    /// Replays connection opens and closes into the per-second open counts.
    pub fn finish(&mut self) {
        let Some(from) = self.measure_from else {
            return;
        };
        self.conn_changes.sort_by_key(|(at, _)| *at);
        let mut open: i64 = 0;
        let mut changes = self.conn_changes.iter().peekable();
        for (i, sec) in self.seconds.iter_mut().enumerate() {
            let end = from + std::time::Duration::from_secs(i as u64 + 1);
            while let Some((at, opened)) = changes.next_if(|(at, _)| *at < end) {
                let _ = at;
                open += if *opened { 1 } else { -1 };
            }
            sec.open_conns = open.max(0) as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample(t0: Instant, scheduled: u64, ready: u64, sent: u64, received: u64) -> Sample {
        let at = |ms| t0 + Duration::from_millis(ms);
        Sample {
            call: 0,
            conn: 0,
            succeeded: true,
            scheduled: at(scheduled),
            ready: at(ready),
            queued: at(sent),
            sent: at(sent),
            received: at(received),
            acked: None,
            first_chunk: None,
            stream_end: None,
        }
    }

    #[test]
    fn response_time_counts_queueing_the_server_caused() {
        let t0 = Instant::now();
        let mut r = Recorder::default();
        // Held up by a full window from 0 to 100 ms, sent at 100, answered at 101.
        r.record(Event::Samples(vec![sample(t0, 0, 100, 100, 101)]));
        let h = &r.histograms;
        assert!(h.latency.equivalent(h.latency.max(), 101_000));
        assert!(h.service.equivalent(h.service.max(), 1_000));
    }

    #[test]
    fn client_timer_lateness_is_lag_not_latency() {
        let t0 = Instant::now();
        let mut r = Recorder::default();
        // Free to send at its slot (0), but the client's timer woke 1 ms late.
        r.record(Event::Samples(vec![sample(t0, 0, 0, 1, 2)]));
        let h = &r.histograms;
        assert!(h.latency.equivalent(h.latency.max(), 1_000));
        assert!(h.client_lag.equivalent(h.client_lag.max(), 1_000));
    }

    #[test]
    fn small_histograms_grow_instead_of_clamping() {
        let mut h = new_small_histogram();
        h.record(5_000_000).unwrap();
        assert!(h.equivalent(h.max(), 5_000_000));
    }

    #[test]
    fn seconds_bucket_by_receive_time_and_track_open_connections() {
        let t0 = Instant::now();
        let mut r = Recorder::default();
        r.record(Event::Measure { from: t0 });
        r.record(Event::Conn { at: t0, open: true });
        r.record(Event::Samples(vec![
            sample(t0, 0, 0, 0, 10),
            sample(t0, 1000, 1000, 1000, 1500),
        ]));
        r.record(Event::Conn {
            at: t0 + Duration::from_millis(1200),
            open: false,
        });
        r.finish();
        assert_eq!(r.seconds.len(), 2);
        assert_eq!(r.seconds[0].latency.len(), 1);
        assert_eq!(r.seconds[1].latency.len(), 1);
        assert_eq!((r.seconds[0].open_conns, r.seconds[1].open_conns), (1, 0));
    }
}
