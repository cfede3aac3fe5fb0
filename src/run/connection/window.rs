//! The requests one connection has in flight, by sequence number, and the ones that ended
//! without a reply (so that a reply still coming is late, not a duplicate).

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

/// Unanswered ids remembered to tell late replies from duplicates; beyond, the set restarts.
const MAX_REMEMBERED_UNANSWERED: usize = 1 << 20;

/// In-flight requests of one connection, by sequence number. Requests are sent in sequence
/// order, so a ring indexed by `seq - base` finds a reply's slot without hashing or allocating,
/// and its front is always the oldest request (the next to time out).
#[derive(Debug, Default)]
pub(super) struct Window {
    pub(super) slots: VecDeque<Option<Slot>>,
    /// Sequence number of `slots[0]`.
    pub(super) base: u64,
    /// Sequence number the next request gets.
    pub(super) next: u64,
    pub(super) outstanding: usize,
    /// Requests that ended without a reply (timed out, lost, unfinished): a reply that still
    /// comes for one is late (once), not a duplicate.
    pub(super) unanswered: HashSet<u64>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) scheduled: Instant,
    pub(super) ready: Instant,
    /// Handed to the writer (the client's own send time).
    pub(super) queued: Instant,
    /// Taken by the socket: the flush that carried it completed.
    pub(super) sent: Instant,
    /// Sent during warmup: counted apart, never sampled.
    pub(super) warm: bool,
    /// Which call of the mix.
    pub(super) call: u8,
    pub(super) acked: Option<Instant>,
    pub(super) first_chunk: Option<Instant>,
    pub(super) stream_end: Option<Instant>,
}

/// What a final reply's id turned out to be.
pub(super) enum Match {
    InFlight(Slot),
    Late,
    Duplicate,
    Unknown,
}

impl Window {
    pub(super) fn push(&mut self, slot: Slot) {
        self.slots.push_back(Some(slot));
        self.next += 1;
        self.outstanding += 1;
    }

    pub(super) fn get_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        let i = seq.checked_sub(self.base)?;
        self.slots.get_mut(usize::try_from(i).ok()?)?.as_mut()
    }

    pub(super) fn take(&mut self, seq: u64) -> Match {
        if seq >= self.next {
            return Match::Unknown;
        }
        match self.get_mut(seq).map(|s| *s) {
            Some(slot) => {
                self.slots[(seq - self.base) as usize] = None;
                self.outstanding -= 1;
                while let Some(None) = self.slots.front() {
                    self.slots.pop_front();
                    self.base += 1;
                }
                Match::InFlight(slot)
            }
            None if self.unanswered.remove(&seq) => Match::Late,
            None => Match::Duplicate,
        }
    }

    /// The sequence number of the one request in flight, when exactly one is.
    pub(super) fn only(&self) -> Option<u64> {
        if self.outstanding != 1 {
            return None;
        }
        let i = self.slots.iter().position(Option::is_some)?;
        Some(self.base + i as u64)
    }

    pub(super) fn remember_unanswered(&mut self, seq: u64) {
        if self.unanswered.len() >= MAX_REMEMBERED_UNANSWERED {
            self.unanswered.clear();
        }
        self.unanswered.insert(seq);
    }

    /// Pops requests sent at or before `cutoff`, calling `expired` for each.
    pub(super) fn expire(&mut self, cutoff: Instant, mut expired: impl FnMut(u64, &Slot)) {
        while let Some(front) = self.slots.front() {
            match front {
                Some(slot) if slot.sent > cutoff => break,
                Some(slot) => {
                    let seq = self.base;
                    expired(seq, slot);
                    self.remember_unanswered(seq);
                    self.outstanding -= 1;
                }
                None => {}
            }
            self.slots.pop_front();
            self.base += 1;
        }
    }

    /// Per-call timeouts: ends every request in flight whose own limit (`limit(call)`) has
    /// passed since it was sent, wherever it is in the window (a short-limit call may be
    /// behind a long-limit one), calling `expired` for each.
    pub(super) fn expire_each(
        &mut self,
        now: Instant,
        limit: impl Fn(u8) -> std::time::Duration,
        mut expired: impl FnMut(u64, &Slot),
    ) {
        for (i, entry) in self.slots.iter_mut().enumerate() {
            if let Some(slot) = entry
                && now.saturating_duration_since(slot.sent) >= limit(slot.call)
            {
                let seq = self.base + i as u64;
                expired(seq, slot);
                *entry = None;
                self.unanswered.insert(seq);
                self.outstanding -= 1;
            }
        }
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
        if self.unanswered.len() > MAX_REMEMBERED_UNANSWERED {
            self.unanswered.clear();
        }
    }

    /// The earliest moment a request in flight reaches its own limit.
    pub(super) fn next_limit(&self, limit: impl Fn(u8) -> std::time::Duration) -> Option<Instant> {
        self.slots
            .iter()
            .flatten()
            .map(|s| s.sent + limit(s.call))
            .min()
    }

    /// Stamps `sent` on the requests from sequence `from` on that are still in flight: the
    /// socket has just taken them.
    pub(super) fn flushed(&mut self, from: u64, at: Instant) {
        let start = from.saturating_sub(self.base) as usize;
        for slot in self.slots.iter_mut().skip(start).flatten() {
            slot.sent = at;
        }
    }

    pub(super) fn oldest_sent(&self) -> Option<Instant> {
        self.slots.iter().flatten().next().map(|s| s.sent)
    }

    /// The sequence number of the oldest request in flight.
    pub(super) fn oldest(&self) -> Option<u64> {
        let i = self.slots.iter().position(Option::is_some)?;
        Some(self.base + i as u64)
    }

    /// Empties the window, returning what was in flight with its sequence number; each is
    /// remembered as unanswered.
    pub(super) fn clear(&mut self) -> Vec<(u64, Slot)> {
        self.outstanding = 0;
        let base = self.base;
        self.base = self.next;
        let slots: Vec<(u64, Slot)> = std::mem::take(&mut self.slots)
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| (base + i as u64, s)))
            .collect();
        for (seq, _) in &slots {
            self.remember_unanswered(*seq);
        }
        slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn slot(sent: Instant) -> Slot {
        Slot {
            call: 0,
            scheduled: sent,
            ready: sent,
            queued: sent,
            sent,
            warm: false,
            acked: None,
            first_chunk: None,
            stream_end: None,
        }
    }

    #[test]
    fn replies_in_any_order_free_their_slots_once() {
        let t0 = Instant::now();
        let mut w = Window::default();
        for i in 0..4 {
            w.push(slot(t0 + Duration::from_millis(i)));
        }
        assert_eq!(w.outstanding, 4);
        assert!(matches!(w.take(2), Match::InFlight(_)));
        assert!(matches!(w.take(2), Match::Duplicate), "a second reply");
        assert!(matches!(w.take(9), Match::Unknown), "never sent");
        assert!(matches!(w.take(0), Match::InFlight(_)));
        assert_eq!(w.base, 1, "the ring front moves past answered slots");
        assert_eq!(w.oldest_sent(), Some(t0 + Duration::from_millis(1)));
        assert_eq!(w.outstanding, 2);
    }

    #[test]
    fn only_names_the_single_request_in_flight() {
        let t0 = Instant::now();
        let mut w = Window::default();
        assert_eq!(w.only(), None);
        w.push(slot(t0));
        w.push(slot(t0));
        assert_eq!(w.only(), None, "two in flight: ambiguous");
        assert!(matches!(w.take(0), Match::InFlight(_)));
        assert_eq!(w.only(), Some(1));
    }

    #[test]
    fn expired_and_cleared_requests_answer_late_once() {
        let t0 = Instant::now();
        let mut w = Window::default();
        for i in 0..3 {
            w.push(slot(t0 + Duration::from_millis(10 * i)));
        }
        let mut expired = 0;
        w.expire(t0 + Duration::from_millis(10), |_, _| expired += 1);
        assert_eq!((expired, w.outstanding), (2, 1));
        assert!(matches!(w.take(0), Match::Late));
        assert!(
            matches!(w.take(0), Match::Duplicate),
            "late once, then a duplicate"
        );
        // A connection drop clears the rest: their replies on a new connection are late too.
        assert_eq!(w.clear().len(), 1);
        assert_eq!(w.outstanding, 0);
        assert!(matches!(w.take(2), Match::Late));
        w.push(slot(t0));
        assert!(matches!(w.take(3), Match::InFlight(_)), "numbering goes on");
    }

    #[test]
    fn a_flush_stamps_sent_on_the_requests_it_carried() {
        let t0 = Instant::now();
        let mut w = Window::default();
        for _ in 0..4 {
            w.push(slot(t0));
        }
        assert!(matches!(w.take(0), Match::InFlight(_)));
        let later = t0 + Duration::from_millis(5);
        w.flushed(2, later);
        let sent: Vec<_> = (1..4).map(|seq| w.get_mut(seq).unwrap().sent).collect();
        assert_eq!(sent, [t0, later, later]);
        assert_eq!(
            w.get_mut(3).unwrap().queued,
            t0,
            "the client's own send time stays"
        );
    }
}
