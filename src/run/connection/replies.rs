//! What a frame from the server means for the requests in flight: exact-id matching, phases,
//! final replies and their outcome, error frames without an id, validation, close codes.

use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::{self, Message};

use super::bucket;
use super::load::Blame;
use super::load::{Alive, Load};
use super::validate::{Isolation, MAX_EXAMPLES, isolation};
use super::window::{Match, Slot};
use crate::model::{Counts, Event, Sample};
use crate::protocol::{Kind, RetryAfter};
use crate::run::breaker::Call;
use crate::run::clock;
use crate::run::mix::Mix;

impl Load<'_> {
    pub(super) fn on_message(&mut self, msg: Option<Result<Message, tungstenite::Error>>) -> Alive {
        match msg {
            Some(Ok(Message::Text(text))) => {
                self.on_text(text.as_str());
                true
            }
            Some(Ok(Message::Binary(_))) => {
                self.frame_counts().malformed += 1;
                true
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
                let reason = frame.as_ref().map_or("", |f| f.reason.as_str());
                tracing::info!(
                    conn = self.id,
                    code,
                    reason,
                    "the server closed the connection"
                );
                *self.report.close_codes.entry(code).or_default() += 1;
                if code == 1002 && reason == "Protocol violation" {
                    // tungstenite puts this in place of a code RFC 6455 does not allow (999,
                    // 1004-1006, 1015, ...): the server's own code is lost, the fault is not.
                    self.saw("an invalid close code (reported as 1002)".into());
                } else if !reason.is_empty() {
                    // The server's own words say why, with the code they came with.
                    let reason: String = reason.chars().take(120).collect();
                    self.saw(format!("closed by the server: {code} '{reason}'"));
                }
                self.peer_closed = true;
                false
            }
            Some(Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ReceivedAfterClosing,
            ))) => {
                // A frame after the server's own close: counted, not taken.
                self.frame_counts().after_close += 1;
                true
            }
            Some(Ok(Message::Pong(payload))) => {
                if let Some(p) = &mut self.ping
                    && let Some((seq, sent)) = p.outstanding
                    && payload.as_ref() == seq.to_be_bytes()
                {
                    p.outstanding = None;
                    p.next_at = sent + p.every;
                    self.events.record(Event::Pong {
                        sent,
                        received: clock::now(),
                    });
                }
                true
            }
            Some(Ok(_)) => true, // pings: tungstenite queues the pong and sends it as it reads
            Some(Err(tungstenite::Error::Capacity(_))) => {
                // Over --max-frame-size: the connection cannot go on; 1009 is "message too big".
                self.report.resilience.oversized_frames += 1;
                *self.report.close_codes.entry(1009).or_default() += 1;
                false
            }
            Some(Err(e)) => {
                tracing::info!(conn = self.id, "connection lost: {e}");
                *self.report.close_codes.entry(1006).or_default() += 1;
                let why = match &e {
                    tungstenite::Error::Utf8(_) => "invalid UTF-8 in a text frame".to_owned(),
                    tungstenite::Error::Protocol(p) => format!("protocol violation: {p}"),
                    tungstenite::Error::Io(io) => format!("I/O error: {}", io.kind()),
                    other => other.to_string(),
                };
                self.saw(why);
                false
            }
            None => {
                tracing::info!(conn = self.id, "connection ended without a close frame");
                *self.report.close_codes.entry(1006).or_default() += 1;
                false
            }
        }
    }

    /// Why a connection ended, as the client saw it.
    fn saw(&mut self, why: String) {
        *self.report.close_reasons.entry(why).or_default() += 1;
    }

    /// Frame-level counters go to warmup or measured by when the frame arrived; frames from
    /// before `hello_ack` always count as measured.
    pub(super) fn frame_counts(&mut self) -> &mut Counts {
        let warm = !self.early && clock::now() < self.timing.measure_from;
        bucket(&mut self.report, warm)
    }

    /// The sequence number in one of this connection's request ids, only when the id is
    /// byte for byte one it sent: the prefix, then the decimal number as rendered (no sign, no
    /// leading zero, nothing after).
    pub(super) fn seq_of(&self, id: &str) -> Option<u64> {
        seq_in(&self.id_prefix, id)
    }

    pub(super) fn on_text(&mut self, text: &str) {
        let received = clock::now();
        let c = self.spec.wire.classify(text);
        if !c.kind.is_final() {
            if c.kind.is_non_final() {
                self.on_non_final(c.kind, c.request_id.as_deref(), received);
            } else if matches!(c.kind, Kind::Malformed | Kind::Binary) {
                self.frame_counts().malformed += 1;
            } else {
                self.frame_counts().unexpected += 1;
            }
            return;
        }
        let Some(id) = c.request_id.as_deref() else {
            if c.kind == Kind::Error {
                let code = c.code.as_deref().unwrap_or("UNKNOWN").to_owned();
                self.on_uncorrelated(code, c.retry_after, received);
            } else {
                self.frame_counts().unmatched += 1;
            }
            return;
        };
        let was_full = self.window.outstanding >= self.spec.window;
        let seq = self.seq_of(id);
        let found = match seq {
            Some(seq) => self.window.take(seq),
            None => Match::Unknown,
        };
        match found {
            Match::InFlight(slot) => {
                if was_full {
                    self.blocked_until = received;
                }
                if let Some(seq) = seq {
                    // Its own reply came: an error pinned on it without an id was another's.
                    self.unblame(seq);
                }
                let mut ok = c.kind.is_success();
                let mut code = c.code.as_deref();
                if ok
                    && c.kind == Kind::Result
                    && let Err((bucket, why)) = self.check_result(text, seq, &slot)
                {
                    ok = false;
                    code = Some(bucket);
                    if self.report.invalid_examples.len() < MAX_EXAMPLES {
                        self.report.invalid_examples.push(format!("{id}: {why}"));
                    }
                }
                self.spec.breaker.record(Call::Request, ok, false);
                if !ok {
                    self.honor_retry_after(c.retry_after, received);
                }
                if ok && self.spec.mix.is_steps() {
                    // The next step may take from this answer.
                    self.previous = self
                        .spec
                        .wire
                        .result_text(text)
                        .and_then(|t| serde_json::from_str(&t).ok());
                }
                if ok && c.replayed {
                    bucket(&mut self.report, slot.warm).replayed += 1;
                    if !slot.warm {
                        self.report.tool(Mix::stat(slot.call)).counts.replayed += 1;
                    }
                }
                let code = code.map(str::to_owned);
                self.complete(slot, received, ok, code.as_deref());
            }
            Match::Late => self.frame_counts().late += 1,
            Match::Duplicate => self.frame_counts().duplicates += 1,
            Match::Unknown => self.frame_counts().unmatched += 1,
        }
    }

    /// A progress, ack, chunk or stream end: a phase of a request in flight (or of one that
    /// ended unanswered); for an id never sent, or one already answered, it is unmatched.
    fn on_non_final(&mut self, kind: Kind, id: Option<&str>, received: Instant) {
        let seq = id.and_then(|id| self.seq_of(id));
        if let Some(slot) = seq.and_then(|seq| self.window.get_mut(seq)) {
            let stamp = match kind {
                Kind::CallToolAck => &mut slot.acked,
                Kind::StreamComplete => &mut slot.stream_end,
                _ => &mut slot.first_chunk,
            };
            stamp.get_or_insert(received);
            self.frame_counts().non_final += 1;
        } else if seq.is_some_and(|seq| self.window.unanswered.contains(&seq)) {
            // About a request that timed out or was lost: its own, if late.
            self.frame_counts().non_final += 1;
        } else {
            self.frame_counts().unmatched += 1;
        }
    }

    /// An error frame without a request id (PROTOCOL.md section 5). With one request in
    /// flight it is pinned on that one, provisionally; with `--uncorrelated-errors oldest` it
    /// fails the oldest in flight at once; otherwise nobody's.
    fn on_uncorrelated(&mut self, code: String, retry_after: Option<RetryAfter>, at: Instant) {
        use crate::protocol::Uncorrelated;
        let target = match self.spec.uncorrelated {
            Uncorrelated::Oldest => self.window.oldest(),
            Uncorrelated::Single => self.window.only(),
        };
        let Some(seq) = target else {
            self.count_uncorrelated(code);
            return;
        };
        // The server asked for a pause whoever the error is about.
        self.honor_retry_after(retry_after, at);
        if self.spec.uncorrelated == Uncorrelated::Oldest {
            if let Match::InFlight(slot) = self.window.take(seq) {
                self.spec.breaker.record(Call::Request, false, false);
                self.complete(slot, at, false, Some(&code));
            }
        } else {
            self.pending_blame.push(Blame { seq, at, code });
        }
    }

    /// An error frame tied to no request.
    fn count_uncorrelated(&mut self, code: String) {
        self.frame_counts().uncorrelated_errors += 1;
        *self.report.conn_errors_by_code.entry(code).or_default() += 1;
    }

    /// Request `seq` got its own final reply: errors pinned on it were not about it.
    pub(super) fn unblame(&mut self, seq: u64) {
        if self.pending_blame.is_empty() {
            return;
        }
        let (mine, rest): (Vec<Blame>, Vec<Blame>) = std::mem::take(&mut self.pending_blame)
            .into_iter()
            .partition(|b| b.seq == seq);
        self.pending_blame = rest;
        for b in mine {
            self.count_uncorrelated(b.code);
        }
    }

    /// Request `seq` ended without its own reply (timed out, lost, unfinished): the first
    /// error pinned on it is its failure (when and with what code); any more were others'.
    pub(super) fn take_blame(&mut self, seq: u64) -> Option<(Instant, String)> {
        if self.pending_blame.is_empty() {
            return None;
        }
        let i = self.pending_blame.iter().position(|b| b.seq == seq)?;
        let first = self.pending_blame.remove(i);
        self.unblame(seq);
        Some((first.at, first.code))
    }

    /// The checks asked of a successful result, in order: sampled validation, `--check
    /// isolation`, `--check consistent`. The first that fails gives its bucket and why. The
    /// result's text is read once, and only when a check needs it.
    fn check_result(
        &mut self,
        text: &str,
        seq: Option<u64>,
        slot: &Slot,
    ) -> Result<(), (&'static str, String)> {
        if let (Some(seq), Some(v)) = (seq, &self.spec.validation) {
            self.sample_credit += v.sample;
            if self.sample_credit >= 1.0 {
                self.sample_credit -= 1.0;
                bucket(&mut self.report, slot.warm).validated += 1;
                let template = &self.templates[usize::from(slot.call)];
                v.check(text, || {
                    let mut buf = String::new();
                    template.render_args(seq, &mut buf);
                    buf
                })
                .map_err(|why| ("invalid_reply", why))?;
            }
        }
        let reference = self.spec.consistent.as_ref().and_then(|r| r.get());
        let isolation_on = seq.is_some() && self.spec.isolation.is_some();
        if !isolation_on && reference.is_none() {
            return Ok(());
        }
        let got = self.spec.wire.result_text(text);
        if let (Some(seq), Some(pointer)) = (seq, &self.spec.isolation) {
            let own = format!("{}{seq}", self.id_prefix);
            let run = format!("{}-", self.spec.run_id);
            match isolation(got.clone(), pointer, &own, &self.id_prefix, &run) {
                Isolation::Own => {}
                Isolation::CrossSession(why) => return Err(("cross_session", why)),
                Isolation::Wrong(why) => return Err(("invalid_reply", why)),
            }
        }
        if let Some(reference) = reference {
            let want = reference.get(usize::from(slot.call));
            if got.as_ref() != want {
                let got = got.as_deref().unwrap_or("no text");
                let want = want.map_or("?", |w| w.as_str());
                return Err((
                    "divergent",
                    format!("divergent: {got:.80} where the others got {want:.80}"),
                ));
            }
        }
        Ok(())
    }

    /// `--retry-after honor`: an error's `retry_after` pauses this connection's sending, for
    /// at most `--retry-after-max` and never past the end of sending. A value that cannot be
    /// honoured as written is counted: a negative or non-numeric one pauses nothing, an absurd
    /// one (not finite, over a day) the longest allowed. A pause that reaches the end of
    /// sending ends this connection's sending (a count run then ends with what it has).
    pub(super) fn honor_retry_after(&mut self, retry_after: Option<RetryAfter>, received: Instant) {
        let (Some(max), Some(asked)) = (self.spec.retry_after, retry_after) else {
            return;
        };
        let pause = match asked {
            RetryAfter::Secs(s) => Duration::from_secs_f64(s).min(max),
            RetryAfter::Absurd => {
                self.report.resilience.retry_after_invalid += 1;
                max
            }
            RetryAfter::Invalid => {
                self.report.resilience.retry_after_invalid += 1;
                return;
            }
        };
        if pause.is_zero() || !self.sending {
            return;
        }
        let until = (received + pause).min(self.timing.stop_at);
        let from = self.paused_until.map_or(received, |p| p.max(received));
        self.report.resilience.retry_after_paused_ms +=
            until.saturating_duration_since(from).as_millis() as u64;
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        self.report.resilience.retry_after_pauses += 1;
    }

    pub(super) fn complete(
        &mut self,
        slot: Slot,
        received: Instant,
        success: bool,
        code: Option<&str>,
    ) {
        let counts = bucket(&mut self.report, slot.warm);
        if success {
            counts.succeeded += 1;
        } else {
            counts.failed += 1;
        }
        if self.spec.schedule.is_none()
            && let Some(think) = self.spec.mix.calls()[usize::from(slot.call)].think
        {
            // A step's think time: the session pauses before its next step (closed loop).
            self.paused_until = Some(received + think);
        }
        if slot.warm {
            return;
        }
        let stat = Mix::stat(slot.call);
        let tool = self.report.tool(stat);
        if success {
            tool.counts.succeeded += 1;
        } else {
            tool.counts.failed += 1;
            let code = code.unwrap_or("UNKNOWN");
            *tool.errors_by_code.entry(code.to_owned()).or_default() += 1;
            *self
                .report
                .errors_by_code
                .entry(code.to_owned())
                .or_default() += 1;
            self.tallies.failure(received, stat, code);
        }
        if success {
            // A later call served after the first one hung: the first-call stall class.
            self.report.first_call_stall |= self.report.first_call_timed_out;
            self.tallies.count(received, stat, |t| &mut t.succeeded);
            self.push_sample(Sample {
                conn: self.id,
                succeeded: true,
                call: stat,
                scheduled: slot.scheduled,
                ready: slot.ready,
                queued: slot.queued,
                sent: slot.sent,
                received,
                acked: slot.acked,
                first_chunk: slot.first_chunk,
                stream_end: slot.stream_end,
            });
        } else {
            self.lag_sample(&slot, received);
        }
    }
}

/// The sequence number in `id` when it is exactly `prefix` followed by a number as rendered.
fn seq_in(prefix: &str, id: &str) -> Option<u64> {
    let digits = id.strip_prefix(prefix)?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits.len() == 1 || !digits.starts_with('0'));
    if canonical { digits.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::seq_in;

    #[test]
    fn only_the_id_as_rendered_matches() {
        let p = "a1b2-w-3-";
        assert_eq!(seq_in(p, "a1b2-w-3-17"), Some(17));
        assert_eq!(seq_in(p, "a1b2-w-3-0"), Some(0));
        for other in [
            "a1b2-w-3-017",
            "a1b2-w-3-+17",
            "a1b2-w-3-17 ",
            "a1b2-w-3- 17",
            "a1b2-w-3-",
            "a1b2-w-3-1e3",
            "a1b2-w-4-17",
            "A1B2-w-3-17",
            "a1b2-w-3-99999999999999999999999",
        ] {
            assert_eq!(seq_in(p, other), None, "{other:?}");
        }
    }
}
