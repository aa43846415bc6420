//! The send window: which outbox records are with the producer, and where to resume after a
//! failure. Pure: time is an input.
//!
//! Records are handed to the producer in sequence order, at most `max_in_flight` at a time.
//! A successful delivery report deletes the record. On any failed report the window stops
//! sending, waits until every record in flight has reported (so nothing is handed over twice
//! while librdkafka may still deliver it), then rewinds the cursor to the smallest failed
//! sequence and resumes after a backoff. Records acknowledged meanwhile are already deleted
//! and are not sent again; the rest are resent in their original order.

use crate::outbox::Seq;
use std::collections::{BTreeMap, BTreeSet};

/// What the window is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Handing records to the producer.
    Sending,
    /// A delivery failed: waiting for the records in flight to report.
    Draining,
    /// Waiting out a backoff until this time, ms.
    Waiting {
        /// When sending resumes.
        until_ms: u64,
    },
}

/// The send window over the outbox.
#[derive(Debug, Clone)]
pub struct SendWindow<T> {
    max_in_flight: usize,
    next: Seq,
    in_flight: BTreeMap<Seq, T>,
    failed: BTreeSet<Seq>,
    phase: Phase,
}

impl<T> SendWindow<T> {
    /// A window starting at the outbox's first record.
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            max_in_flight: max_in_flight.max(1),
            next: 0,
            in_flight: BTreeMap::new(),
            failed: BTreeSet::new(),
            phase: Phase::Sending,
        }
    }

    /// The sequence to read from next.
    pub fn cursor(&self) -> Seq {
        self.next
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Records in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether `seq` is in flight.
    pub fn holds(&self, seq: Seq) -> bool {
        self.in_flight.contains_key(&seq)
    }

    /// How many more records may be handed to the producer at `now_ms` (ending a backoff that
    /// is over).
    pub fn room(&mut self, now_ms: u64) -> usize {
        if let Phase::Waiting { until_ms } = self.phase
            && now_ms >= until_ms
        {
            self.phase = Phase::Sending;
        }
        self.free()
    }

    /// How many more records may be handed to the producer in the current phase: 0 while
    /// waiting out a backoff, even one that is over ([`SendWindow::room`] ends it).
    pub fn free(&self) -> usize {
        match self.phase {
            Phase::Sending => self.max_in_flight.saturating_sub(self.in_flight.len()),
            _ => 0,
        }
    }

    /// Notes a record handed to the producer.
    pub fn sent(&mut self, seq: Seq, info: T) {
        self.in_flight.insert(seq, info);
        self.next = self.next.max(seq + 1);
    }

    /// Notes a successful delivery report; returns what was noted at send.
    pub fn acked(&mut self, seq: Seq) -> Option<T> {
        self.in_flight.remove(&seq)
    }

    /// Notes a record that will not be resent (deleted: rejected by the broker or evicted).
    pub fn forget(&mut self, seq: Seq) -> Option<T> {
        self.in_flight.remove(&seq)
    }

    /// Notes a failed delivery report (or a record the producer refused).
    pub fn failed(&mut self, seq: Seq) -> Option<T> {
        self.failed.insert(seq);
        if self.phase == Phase::Sending || matches!(self.phase, Phase::Waiting { .. }) {
            self.phase = Phase::Draining;
        }
        self.in_flight.remove(&seq)
    }

    /// When draining and nothing is in flight: rewinds to the smallest failed sequence and
    /// waits `backoff_ms`. Returns the sequence it rewound to.
    pub fn settle(&mut self, now_ms: u64, backoff_ms: u64) -> Option<Seq> {
        if self.phase != Phase::Draining || !self.in_flight.is_empty() {
            return None;
        }
        let from = self.failed.first().copied().unwrap_or(self.next);
        self.failed.clear();
        self.next = from;
        self.phase = Phase::Waiting {
            until_ms: now_ms + backoff_ms,
        };
        Some(from)
    }

    /// Forgets everything in flight and rewinds to the smallest of them and the failed ones
    /// (the producer was dropped: whatever it held is resent).
    pub fn reset(&mut self, now_ms: u64, backoff_ms: u64) -> Seq {
        let from = self
            .in_flight
            .keys()
            .chain(self.failed.iter())
            .min()
            .copied()
            .unwrap_or(self.next);
        self.in_flight.clear();
        self.failed.clear();
        self.next = from;
        self.phase = Phase::Waiting {
            until_ms: now_ms + backoff_ms,
        };
        from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_in_flight_records_are_handed_over() {
        let mut w = SendWindow::new(3);
        assert_eq!(w.room(0), 3);
        for s in 0..3 {
            w.sent(s, ());
        }
        assert_eq!(w.room(0), 0);
        w.acked(0);
        assert_eq!(w.room(0), 1);
        assert_eq!(w.cursor(), 3);
    }

    #[test]
    fn a_failure_stops_sending_until_everything_in_flight_reported_then_resends_in_order() {
        let mut w = SendWindow::new(10);
        for s in 0..6 {
            w.sent(s, ());
        }
        w.failed(2);
        assert_eq!(w.room(0), 0, "no new records while draining");
        assert_eq!(w.settle(0, 100), None, "3..5 still in flight");
        w.acked(0);
        w.acked(1);
        w.failed(3);
        w.acked(4);
        w.failed(5);
        assert_eq!(w.settle(10, 100), Some(2));
        assert_eq!(w.room(50), 0, "backing off");
        assert_eq!(w.room(110), 10);
        assert_eq!(w.cursor(), 2);
    }

    #[test]
    fn dropping_the_producer_resends_everything_it_held() {
        let mut w = SendWindow::new(10);
        for s in 4..9 {
            w.sent(s, ());
        }
        w.acked(4);
        w.failed(6);
        assert_eq!(w.reset(0, 0), 5);
        assert_eq!(w.in_flight(), 0);
        assert_eq!(w.room(0), 10);
    }

    #[test]
    fn a_failure_while_backing_off_keeps_the_earliest_rewind_point() {
        let mut w = SendWindow::new(10);
        w.sent(0, ());
        w.sent(1, ());
        w.failed(1);
        w.acked(0);
        assert_eq!(w.settle(0, 1000), Some(1));
        w.failed(1);
        assert_eq!(w.settle(5, 10), Some(1));
    }
}
