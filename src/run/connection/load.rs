//! The load phase of one connection: queue requests as the pacer and window allow, read replies
//! meanwhile (reading never waits on writing), time requests out, drain, close. Every wait is
//! bounded by the phase's deadline or the run's end.

use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::{self, Message};

use super::account::{Idle, Tallies};
use super::keepalive::Pinger;
use super::window::{Slot, Window};
use super::{
    CLOSE_LIMIT, Established, INTERRUPT_DRAIN, READ_BATCH, RunSpec, Stop, Timing, bucket, retry,
};
use crate::model::{ConnReport, Departure, Event, Sample};
use crate::protocol::RequestTemplate;
use crate::run::clock;
use crate::run::mix::Mix;
use crate::run::pacer::Pacer;
use crate::stats::Shard;
use crate::wsio::{BoxIo, Duplex, Io};

/// The load phase of one connection.
pub(super) struct Load<'a> {
    pub(super) ws: Duplex<BoxIo>,
    pub(super) spec: &'a RunSpec,
    pub(super) id: u32,
    pub(super) timing: Timing,
    /// One per call of the mix.
    pub(super) templates: Vec<RequestTemplate>,
    /// Steps: the result text of the session's last answer, for `{{previous.<pointer>}}`.
    pub(super) previous: Option<serde_json::Value>,
    pub(super) id_prefix: String,
    pub(super) window: Window,
    /// The first request queued since the socket last took everything, while it has not.
    pub(super) unflushed_from: Option<u64>,
    /// The last moment the connection could not send: window full, or a write flushing.
    pub(super) blocked_until: Instant,
    pub(super) buf: String,
    pub(super) samples: Vec<Sample>,
    pub(super) batch_started: Instant,
    pub(super) tallies: Tallies,
    pub(super) events: Shard,
    /// This connection's own response times, for its p99 in the per-connection table.
    pub(super) latency: Option<hdrhistogram::Histogram<u64>>,
    pub(super) report: ConnReport,
    /// Still in the sending phase (survives reconnects).
    pub(super) sending: bool,
    /// `-n` ran out: the schedule ended there, nothing after it was dropped.
    pub(super) budget_spent: bool,
    /// The interrupt has been seen (the drain is cut short once).
    pub(super) interrupted: bool,
    /// End of the current phase: `stop_at` while sending, then the end of the drain.
    pub(super) deadline: Instant,
    /// Sending paused until then (an honoured `retry_after`).
    pub(super) paused_until: Option<Instant>,
    pub(super) ping: Option<Pinger>,
    pub(super) rng: fastrand::Rng,
    /// Validation sampler: accumulates the sample share per success, checks at each whole.
    pub(super) sample_credit: f64,
    /// Frames being counted arrived before `hello_ack`: they go to the measured counts.
    pub(super) early: bool,
    /// The server sent its close frame: what still arrives is counted as after its close.
    pub(super) peer_closed: bool,
    /// Since when the connection has been up (set up and able to send), while it is.
    pub(super) up_since: Option<Instant>,
    /// A count run (`-n`): its end of sending is a cap, not the time asked, so a pause that
    /// reaches it ends this connection's sending instead of idling until then.
    pub(super) counted: bool,
    /// Error frames without a request id pinned on the one request in flight, provisionally:
    /// the request's own final reply, should it still come in time, wins.
    pub(super) pending_blame: Vec<Blame>,
}

/// An error frame without a request id, provisionally blamed on request `seq` (the only one in
/// flight when it came).
#[derive(Debug, Clone)]
pub(super) struct Blame {
    pub(super) seq: u64,
    pub(super) at: Instant,
    pub(super) code: String,
}

/// How a load phase ended.
pub(super) enum End {
    /// Sending and draining are over.
    Done,
    /// The connection dropped while sending; reconnecting may continue the run.
    Dropped(Instant),
}

/// Whether the socket is still usable.
pub(super) type Alive = bool;

/// Bytes a connection queues before it waits for the socket to take them: a server that stops
/// reading holds the connection's sending up (its queueing, counted from the schedule), while
/// the connection goes on reading replies.
pub(super) const WRITE_BACKLOG: usize = 256 << 10;

/// The longest a connection reads on after the server's close frame, counting what comes.
const AFTER_CLOSE: Duration = Duration::from_millis(100);

impl Load<'_> {
    /// The connection came up (`open`) or went down at `at`: told to the recorder, and its
    /// time up within the measured window kept for the per-connection availability.
    pub(super) fn conn_event(&mut self, at: Instant, open: bool) {
        self.events.record(Event::Conn { at, open });
        if open {
            self.up_since.get_or_insert(at);
        } else if let Some(since) = self.up_since.take() {
            let (from, to) = (self.timing.measure_from, self.timing.stop_at);
            let (a, b) = (since.clamp(from, to), at.clamp(from, to));
            self.report.up += b.saturating_duration_since(a);
        }
    }

    /// Sending stops at `now`: the drain begins, and open-loop slots due by then are dropped.
    pub(super) fn stop_sending(&mut self, pacer: &mut Pacer, now: Instant) {
        if self.sending {
            self.sending = false;
            self.deadline = now + self.spec.drain;
            if !self.budget_spent {
                self.skip_due(pacer, now.min(self.timing.stop_at));
            }
        }
    }

    /// The first signal: stop sending and give what is in flight at most [`INTERRUPT_DRAIN`].
    pub(super) fn interrupt(&mut self, pacer: &mut Pacer, now: Instant) {
        if !self.interrupted {
            self.interrupted = true;
            self.stop_sending(pacer, now);
            self.deadline = self.deadline.min(now + INTERRUPT_DRAIN);
        }
    }

    /// Whether sending is held back right now: breaker open, or an honoured `retry_after`.
    pub(super) fn held(&mut self, now: Instant) -> bool {
        if self.paused_until.is_some_and(|t| now < t) {
            return true;
        }
        self.paused_until = None;
        !self.spec.breaker.allows_request()
    }

    /// Open loop: slots that fall due while sending is held back are not made, but counted.
    pub(super) fn skip_due(&mut self, pacer: &mut Pacer, until: Instant) {
        Idle {
            report: &mut self.report,
            tallies: &mut self.tallies,
            timing: self.timing,
        }
        .drop_due(pacer, until);
    }

    /// Back on a fresh connection after a reconnect.
    pub(super) fn resume(&mut self, pacer: &mut Pacer, now: Instant) {
        self.skip_due(pacer, now.min(self.timing.stop_at));
        self.blocked_until = now;
        self.unflushed_from = None;
        if let Some(p) = &mut self.ping {
            // Reconnects are spread by their jittered backoff already.
            *p = Pinger::new(p.every, p.timeout, now, 1.0);
        }
    }

    /// Counts the frames a server sent before its `hello_ack`, like any other frames.
    pub(super) fn early_frames(&mut self, frames: Vec<Message>) {
        self.early = true;
        for msg in frames {
            self.on_message(Some(Ok(msg)));
        }
        self.early = false;
    }

    /// Runs the load until it is over or the connection drops. Reading never waits on writing:
    /// requests are queued on the socket and flushed as it takes them, while replies are read.
    pub(super) async fn run(&mut self, pacer: &mut Pacer, stop: &Stop) -> End {
        let stop_at = self.timing.stop_at;
        let wake = tokio::time::sleep_until(self.deadline.into());
        tokio::pin!(wake);
        let mut wake_at = self.deadline;
        loop {
            let now = clock::now();
            if stop.end.is_cancelled() {
                return self.finish(false, stop).await;
            }
            if stop.interrupt.is_cancelled() {
                self.interrupt(pacer, now);
            }
            if self.spec.mix.has_timeouts() {
                self.expire_each(now);
            } else if let Some(cutoff) = now.checked_sub(self.spec.timeout) {
                self.expire(cutoff, now);
            }
            if self.ping.as_ref().is_some_and(|p| p.overdue(now)) {
                // No pong in time: the peer is gone even if the socket says otherwise.
                self.report.resilience.pong_timeouts += 1;
                return self.dropped(now);
            }
            if self.sending
                && self.counted
                && self.paused_until.is_some_and(|p| p >= self.timing.stop_at)
            {
                // Asked to pause past the end of sending: nothing more to send here.
                self.report.departed = Some(Departure::Paused);
                self.stop_sending(pacer, now);
            }
            // An open-loop schedule ends at `stop_at`, so slots that fell due just before it
            // still go out after the timer wakes late; a closed loop stops at once.
            let held = self.sending && self.held(now);
            if self.sending && (now < stop_at || matches!(pacer, Pacer::Open { .. })) {
                if held {
                    self.skip_due(pacer, now.min(stop_at));
                } else if self.ws.backlog_bytes() < WRITE_BACKLOG {
                    match self.fill(pacer, stop, now.min(stop_at)) {
                        Ok(true) => {}
                        // The budget is spent: what is in flight gets the drain.
                        Ok(false) => {
                            self.budget_spent = true;
                            self.stop_sending(pacer, clock::now());
                        }
                        Err(()) => return self.dropped(clock::now()),
                    }
                }
            }
            // A connection whose share of the schedule is done (at a low rate over many
            // connections, most have few slots or none) stays open, idle, until the end: a run
            // of N connections holds N sessions for its whole length.
            if self.sending && now >= stop_at {
                self.stop_sending(pacer, now);
            }
            if !self.sending && (self.window.outstanding == 0 || now >= self.deadline) {
                return self.finish(true, stop).await;
            }
            if let Some(p) = &mut self.ping
                && p.outstanding.is_none()
                && now >= p.next_at
            {
                p.seq += 1;
                p.outstanding = Some((p.seq, now));
                let payload = p.seq.to_be_bytes().to_vec();
                if self.ws.queue(Message::Ping(payload.into())).is_err()
                    || self.ws.try_flush().is_err()
                {
                    return self.dropped(now);
                }
            }
            if self.tallies.due().is_some_and(|t| now >= t) {
                self.tallies.flush();
            }

            // Wake for whichever comes first: end of phase, next timeout, next pacer slot,
            // the keepalive, the end of a hold, the live tally.
            let mut target = self.deadline;
            if self.spec.mix.has_timeouts() {
                let (mix, timeout) = (&self.spec.mix, self.spec.timeout);
                if let Some(next) = self.window.next_limit(|c| mix.timeout(c, timeout)) {
                    target = target.min(next);
                }
            } else if let Some(oldest) = self.window.oldest_sent() {
                target = target.min(oldest + self.spec.timeout);
            }
            if self.sending
                && self.window.outstanding < self.spec.window
                && let Some(due) = pacer.next_due()
            {
                target = target.min(due);
            }
            if let Some(p) = &self.ping {
                target = target.min(p.wake_at());
            }
            if let Some(t) = self.tallies.due() {
                target = target.min(t);
            }
            if held {
                let until = self
                    .paused_until
                    .unwrap_or_else(|| self.spec.breaker.retry_at());
                target = target.min(until);
            }
            if target < wake_at || wake.is_elapsed() {
                wake.as_mut().reset(target.into());
                wake_at = target;
            }

            tokio::select! {
                biased;
                io = self.ws.next_io(true) => match io {
                    Io::Frame(msg) => {
                        if !self.on_message(msg) || !self.read_ready() {
                            self.after_close().await;
                            return self.dropped(clock::now());
                        }
                    }
                    // The socket took a backlog it could not take at once: what fell due
                    // meanwhile was held up by the server not reading.
                    Io::Flushed => {
                        let now = clock::now();
                        self.blocked_until = now;
                        if let Some(from) = self.unflushed_from.take() {
                            self.window.flushed(from, now);
                        }
                    }
                    Io::WriteFailed(_) => {
                        *self.report.close_codes.entry(1006).or_default() += 1;
                        return self.dropped(clock::now());
                    }
                },
                _ = &mut wake => {}
                _ = stop.interrupt.cancelled(), if !self.interrupted => {}
                _ = stop.end.cancelled() => {}
            }
        }
    }

    /// Sending and draining are over: what is still in flight is unfinished. With `close`, the
    /// close handshake follows (briefly): frames that arrive before the server's close reply
    /// are still this run's and are counted; the reply itself is the echo of our own close.
    pub(super) async fn finish(&mut self, close: bool, stop: &Stop) -> End {
        let now = clock::now();
        for (seq, slot) in self.window.clear() {
            if let Some((at, code)) = self.take_blame(seq) {
                self.complete(slot, at, false, Some(&code));
                continue;
            }
            bucket(&mut self.report, slot.warm).unfinished += 1;
            if !slot.warm {
                self.report.tool(Mix::stat(slot.call)).counts.unfinished += 1;
            }
            self.lag_sample(&slot, now);
        }
        self.flush_samples();
        if close && self.await_close_turn(stop).await {
            let mut trailing = Vec::new();
            let mut answer = None;
            let ended = self
                .ws
                .close(None, CLOSE_LIMIT, |msg| match msg {
                    Message::Close(frame) => {
                        answer = Some(frame.map_or(1005, |f| u16::from(f.code)));
                    }
                    msg if trailing.len() < READ_BATCH => trailing.push(msg),
                    _ => {}
                })
                .await;
            let r = &mut self.report.resilience;
            match (answer, ended) {
                (Some(code), _) => {
                    r.closes_answered += 1;
                    if code != 1000 {
                        // Our close was 1000 (no code: 1005); another answer is the server's.
                        *self
                            .report
                            .close_reasons
                            .entry(format!("answered our close with {code}"))
                            .or_default() += 1;
                    }
                }
                (None, true) => r.closes_dropped += 1,
                (None, false) => r.closes_unanswered += 1,
            }
            for msg in trailing {
                self.on_message(Some(Ok(msg)));
            }
            self.flush_samples();
        }
        self.tallies.flush();
        End::Done
    }

    /// `--close-rate`: connection `id` closes at `id / rate` after the drain, reading (and
    /// counting) what arrives meanwhile. False when the server ended the connection first (it
    /// is counted as dropped) or the run's end came first; an interrupt closes at once.
    async fn await_close_turn(&mut self, stop: &Stop) -> bool {
        let Some(rate) = self.spec.close_rate else {
            return true;
        };
        let turn = self.timing.stop_at
            + self.spec.drain
            + Duration::from_secs_f64(f64::from(self.id) / rate);
        loop {
            tokio::select! {
                biased;
                _ = stop.end.cancelled() => return true,
                _ = stop.interrupt.cancelled() => return true,
                _ = tokio::time::sleep_until(turn.into()) => return true,
                io = self.ws.next_io(true) => match io {
                    Io::Frame(msg) => {
                        if !self.on_message(msg) {
                            self.report.resilience.closes_dropped += 1;
                            return false;
                        }
                    }
                    Io::Flushed => {}
                    Io::WriteFailed(_) => {
                        self.report.resilience.closes_dropped += 1;
                        return false;
                    }
                },
            }
        }
    }

    /// The connection is gone: in-flight requests are lost; reconnect if still sending.
    pub(super) fn dropped(&mut self, at: Instant) -> End {
        self.lost();
        self.report.resilience.disconnects += 1;
        self.tallies.flush();
        if self.sending && self.spec.reconnect.is_some() {
            End::Dropped(at)
        } else {
            if self.sending {
                // Nothing brings it back: it leaves the run before the end of sending.
                self.report.departed = Some(Departure::ServerClosed);
            } else {
                self.report.resilience.disconnects_after_stop += 1;
            }
            End::Done
        }
    }

    /// Connects again with backoff, through the breaker; `None` when the run ended first.
    pub(super) async fn reconnect(&mut self, stop: &Stop) -> Option<Established> {
        let backoff = self.spec.reconnect?;
        // Boxed, as the first setup: its state lives only while it runs.
        Box::pin(retry(
            self.spec,
            self.id,
            stop,
            self.timing.stop_at,
            backoff,
            &mut self.rng,
            &mut self.report,
        ))
        .await
    }

    /// Queues requests while the window has room, the pacer allows and the socket keeps up.
    /// Never waits. `Ok(false)`: budget spent; `Err`: the connection is unusable.
    pub(super) fn fill(
        &mut self,
        pacer: &mut Pacer,
        stop: &Stop,
        now: Instant,
    ) -> Result<bool, ()> {
        let mut queued = false;
        let mut more = true;
        let first = self.window.next;
        while self.window.outstanding < self.spec.window && self.ws.backlog_bytes() < WRITE_BACKLOG
        {
            let seq = self.window.next;
            let call = self.spec.mix.pick(self.id, self.spec.conns, seq);
            if self.templates[call].exhausted(seq) {
                // `--data-mode unique`: this connection's rows are all sent.
                self.report.rows_ran_out = true;
                more = false;
                break;
            }
            let Some(scheduled) = pacer.due(now) else {
                break;
            };
            if !stop.take_ticket() {
                more = false;
                break;
            }
            self.templates[call].render_after(seq, self.previous.as_ref(), &mut self.buf);
            if self.ws.queue(Message::text(self.buf.as_str())).is_err() {
                return Err(());
            }
            let sent = clock::now();
            let warm = sent < self.timing.measure_from;
            self.window.push(Slot {
                scheduled,
                ready: scheduled.max(self.blocked_until),
                queued: sent,
                sent,
                warm,
                call: call as u8,
                acked: None,
                first_chunk: None,
                stream_end: None,
            });
            if warm {
                self.report.warmup.sent += 1;
            } else {
                self.report.counts.sent += 1;
                self.report.tool(Mix::stat(call as u8)).counts.sent += 1;
                self.tallies
                    .count(sent, Mix::stat(call as u8), |t| &mut t.sent);
            }
            queued = true;
        }
        if queued {
            // `sent` is when the socket took the frame: now, or when the flush completes.
            match self.ws.try_flush() {
                Ok(true) => self.window.flushed(first, clock::now()),
                Ok(false) => {
                    self.unflushed_from.get_or_insert(first);
                }
                Err(_) => return Err(()),
            }
        }
        Ok(more)
    }

    /// After the server's close frame: frames it still sends are counted (a protocol
    /// violation), for as long as it takes to end the stream and at most [`AFTER_CLOSE`].
    async fn after_close(&mut self) {
        if !std::mem::take(&mut self.peer_closed) {
            return;
        }
        let deadline = tokio::time::Instant::now() + AFTER_CLOSE;
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, self.ws.ws.next()).await {
            match msg {
                Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ReceivedAfterClosing,
                ))
                | Ok(_) => self.frame_counts().after_close += 1,
                Err(_) => break,
            }
        }
    }

    /// Reads the frames already buffered, without waiting; at most a batch, so a server that
    /// floods frames cannot keep the loop from sending, timing out or stopping.
    pub(super) fn read_ready(&mut self) -> Alive {
        for _ in 0..READ_BATCH {
            let Some(msg) = self.ws.ws.next().now_or_never() else {
                break;
            };
            if !self.on_message(msg) {
                return false;
            }
        }
        true
    }
}
