//! The forwarder's sans-IO core: which outbox record goes to Kafka next, and what to do about
//! every delivery report. No rdkafka, no tokio, no clock: time comes in as agent milliseconds
//! (`now_ms`, [`crate::clock::Clock::now_ms`]) and the one random draw (backoff jitter) comes
//! from a seeded generator, so the same inputs always give the same outputs and the tests run
//! a simulated clock without sleeping.
//!
//! # Driving it
//!
//! The driver (`forward::run`) feeds inputs (`handle_*`) and pulls outputs:
//! [`Forwarder::poll_action`] until it returns `None`, executing each [`Action`] before pulling
//! the next, [`Forwarder::poll_event`] for what to log, and [`Forwarder::poll_timeout`] for when
//! to wake the core if no input arrives first. Two answers are expected at once: an
//! [`Action::Send`] is answered with [`Forwarder::handle_sent`] or
//! [`Forwarder::handle_send_refused`] (rdkafka's `send_result` says synchronously), and an
//! [`Action::Fetch`] with [`Forwarder::handle_records`] or [`Forwarder::handle_fetch_failed`].
//! Actions are executed in the order they are returned: an [`Action::Delete`] of acknowledged
//! records must be done before a later [`Action::Fetch`], or a rewind would send them again.
//!
//! # Invariants
//!
//! - **Order.** Records are handed to the producer in sequence order, one at a time, each only
//!   after the previous one was accepted. After a failure nothing new is handed over until
//!   every record in flight has reported; then the cursor rewinds to the smallest failed
//!   sequence and, after a backoff, the records still in the outbox are sent again from there,
//!   in order. With the asset id as the Kafka key (one partition per asset) and librdkafka's
//!   idempotent producer, per-asset order holds in Kafka.
//! - **At most `max_in_flight`** records are with the producer (handed over, not reported).
//! - **Delete only on acknowledgement** (or on a broker rejection: such a record would block
//!   the outbox forever). A report for a record that is not in flight (already acknowledged,
//!   deleted, never sent) changes nothing.
//! - **Fatal producer error**: once everything in flight reported, the producer is recreated
//!   ([`Action::RecreateProducer`]) and everything unacknowledged is sent again, from the
//!   outbox, after a backoff and only once the new producer exists.
//! - **Rate cap**: sends go through [`Throttle`] (records/s and bytes/s), so replaying a
//!   backlog after an outage does not flood a thin uplink.
//! - **Read-ahead**: up to [`FETCH_BATCH`] records read from the outbox wait in the core until
//!   the window and the rate cap let them go. A rewind drops them and the outbox is read again
//!   from the rewind point, so nothing acknowledged meanwhile is sent again from a stale copy.
//!   The outbox is read again when a flush made new records durable
//!   ([`Forwarder::handle_flushed`]), and at the latest [`REFETCH_MS`] after it had nothing.
//! - **Shutdown**: after [`Forwarder::handle_stop`] sending goes on until nothing is in flight
//!   and the outbox has nothing more to send, or until the grace period ends; then
//!   [`Action::Stop`]. Unacknowledged records stay in the outbox for the next start. Without a
//!   producer (its creation failing) there is nothing to send with: the stop is immediate.

use super::config::KafkaConfig;
use super::pace::Throttle;
use super::window::{Phase, SendWindow};
use crate::backoff::Backoff;
use crate::outbox::{Kind, Record, Seq};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;

/// How long after librdkafka's queue was full the refused record is offered again, ms.
pub const QUEUE_FULL_RETRY_MS: u64 = 50;

/// How long after the outbox had nothing more (or could not be read) it is read again without
/// a flush notification, ms: a safety net, the notification normally comes first.
pub const REFETCH_MS: u64 = 1000;

/// Records read from the outbox at a time, at most.
pub const FETCH_BATCH: usize = 256;

/// The core's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Records with the producer and not yet reported, at most (≥ 1).
    pub max_in_flight: usize,
    /// Sending rate cap, records/s.
    pub records_per_s: f64,
    /// Sending rate cap, payload bytes/s; 0: no byte cap.
    pub bytes_per_s: u64,
    /// First retry delay, ms.
    pub retry_min_ms: u64,
    /// Longest retry delay, ms.
    pub retry_max_ms: u64,
    /// How long sending goes on after a stop, ms.
    pub grace_ms: u64,
}

impl From<&KafkaConfig> for Settings {
    fn from(cfg: &KafkaConfig) -> Self {
        Self {
            max_in_flight: cfg.max_in_flight,
            records_per_s: cfg.replay_records_per_s,
            bytes_per_s: cfg.replay_bytes_per_s,
            retry_min_ms: cfg.retry_min_ms,
            retry_max_ms: cfg.retry_max_ms,
            grace_ms: super::SHUTDOWN_GRACE.as_millis() as u64,
        }
    }
}

/// How a failed delivery report is handled. The driver sorts librdkafka's errors into these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Send it again after a backoff (from the oldest failed record, in order).
    Retriable,
    /// The producer is in its fatal state: send it again after a backoff, with a new producer.
    Fatal,
    /// The broker will never take this record (too large, invalid): drop it.
    Reject,
}

/// Why the producer did not take a record handed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// librdkafka's queue is full: the record is taken back and offered again shortly, first.
    QueueFull,
    /// Any other refusal: handled like a failed delivery, resent after a backoff.
    Retriable,
    /// Refused by a producer in its fatal state: resent after a backoff, with a new producer.
    Fatal,
}

/// A record to hand to the producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Its outbox sequence (the `edgewatch-seq` header).
    pub seq: Seq,
    /// The record: kind (topic), key, payload.
    pub record: Record,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the producer; answer with [`Forwarder::handle_producer_created`] or
    /// [`Forwarder::handle_producer_failed`].
    CreateProducer,
    /// The producer is in its fatal state and nothing it holds can still report: drop it and
    /// create a new one (answered like [`Action::CreateProducer`]).
    RecreateProducer,
    /// Read up to `max` durable records with sequence ≥ `from`; answer with
    /// [`Forwarder::handle_records`] or [`Forwarder::handle_fetch_failed`].
    Fetch {
        /// First sequence wanted.
        from: Seq,
        /// Records wanted, at most.
        max: usize,
    },
    /// Hand this record to the producer; answer with [`Forwarder::handle_sent`] or
    /// [`Forwarder::handle_send_refused`] before anything else.
    Send(Outgoing),
    /// Delete these records from the outbox (acknowledged, or rejected by the broker).
    Delete {
        /// The sequences, ascending within one batch of reports.
        seqs: Vec<Seq>,
    },
    /// Stop: the outbox is sent, or the grace period is over. Nothing follows.
    Stop,
}

/// What a delivery report did, for the driver's metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered; an [`Action::Delete`] follows.
    Acked {
        /// What it was.
        kind: Kind,
        /// Payload bytes.
        bytes: u64,
        /// From handing it over to the report, ms.
        latency_ms: u64,
        /// When the record was made, Unix ms (for its age).
        created_unix_ms: u64,
    },
    /// Rejected by the broker and dropped; an [`Action::Delete`] follows.
    Rejected {
        /// What it was.
        kind: Kind,
    },
    /// Failed: it will be sent again.
    Failed,
    /// Not in flight (already reported, deleted, or never sent): nothing changed.
    Ignored,
}

/// Something the driver logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A delivery failed and everything in flight has reported: sending resumes from `from`
    /// after `wait_ms` (with the same producer; a fatal error asks for a new one instead).
    Resending {
        /// The sequence sending resumes from.
        from: Seq,
        /// The backoff, ms.
        wait_ms: u64,
    },
}

/// What the window remembers about a record in flight.
#[derive(Debug, Clone, Copy)]
struct Sent {
    kind: Kind,
    sent_ms: u64,
    created_unix_ms: u64,
    bytes: u64,
}

/// A record handed over whose acceptance is not known yet.
#[derive(Debug, Clone, Copy)]
struct Handed {
    seq: Seq,
    kind: Kind,
    created_unix_ms: u64,
    bytes: u64,
}

impl Handed {
    fn sent(self, now_ms: u64) -> Sent {
        Sent {
            kind: self.kind,
            sent_ms: now_ms,
            created_unix_ms: self.created_unix_ms,
            bytes: self.bytes,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Producer {
    /// None; create one when this time has come (`None`: at once).
    Absent { retry_at_ms: Option<u64> },
    /// Asked for; waiting for the answer.
    Creating,
    /// Ready to take records.
    Ready,
    /// In its fatal state: to be replaced.
    Doomed,
}

/// An outstanding [`Action::Fetch`].
#[derive(Debug, Clone, Copy)]
struct Fetching {
    /// The rewind count when it was asked for: an answer from before a rewind is stale.
    rewinds: u64,
    max: usize,
    /// The flush count when it was asked for: a flush since may have made more records durable.
    flushes: u64,
}

/// The forwarder's state machine. See the module docs.
#[derive(Debug)]
pub struct Forwarder {
    grace_ms: u64,
    window: SendWindow<Sent>,
    throttle: Throttle,
    backoff: Backoff,
    rng: ChaCha8Rng,
    producer: Producer,
    /// A failure since the last settle came from a producer in its fatal state.
    fatal: bool,
    /// Records read from the outbox and not yet handed over, in order, from the cursor on.
    buffer: VecDeque<Outgoing>,
    /// The front of `buffer` may not be offered before this time (rate cap, full queue).
    blocked_until_ms: Option<u64>,
    handed: Option<Handed>,
    fetching: Option<Fetching>,
    /// The last fetch reached the end of the durable records, and nothing was flushed since.
    exhausted: bool,
    /// When an exhausted (or unreadable) outbox is read again anyway.
    refetch_at_ms: u64,
    rewinds: u64,
    flushes: u64,
    to_delete: Vec<Seq>,
    events: VecDeque<Event>,
    stop_at_ms: Option<u64>,
    stopped: bool,
}

impl Forwarder {
    /// A forwarder starting at the outbox's first record, without a producer. `seed` seeds the
    /// backoff jitter.
    pub fn new(settings: &Settings, seed: u64) -> Self {
        Self {
            grace_ms: settings.grace_ms,
            window: SendWindow::new(settings.max_in_flight),
            throttle: Throttle::new(settings.records_per_s, settings.bytes_per_s),
            backoff: Backoff::new(settings.retry_min_ms, settings.retry_max_ms),
            rng: ChaCha8Rng::seed_from_u64(seed),
            producer: Producer::Absent { retry_at_ms: None },
            fatal: false,
            buffer: VecDeque::new(),
            blocked_until_ms: None,
            handed: None,
            fetching: None,
            exhausted: false,
            refetch_at_ms: 0,
            rewinds: 0,
            flushes: 0,
            to_delete: Vec::new(),
            events: VecDeque::new(),
            stop_at_ms: None,
            stopped: false,
        }
    }

    /// Records with the producer, not yet reported.
    pub fn in_flight(&self) -> usize {
        self.window.in_flight()
    }

    /// The producer exists.
    pub fn handle_producer_created(&mut self) {
        if self.producer == Producer::Creating {
            self.producer = Producer::Ready;
        }
    }

    /// The producer could not be created: try again after a backoff (at once to
    /// [`Action::Stop`] if stopping: there is nothing to send with).
    pub fn handle_producer_failed(&mut self, now_ms: u64) {
        if self.producer == Producer::Creating {
            let wait = self.backoff.next_delay_ms(self.rng.random());
            self.producer = Producer::Absent {
                retry_at_ms: Some(now_ms + wait),
            };
        }
    }

    /// New records became durable.
    pub fn handle_flushed(&mut self) {
        self.flushes += 1;
        self.exhausted = false;
    }

    /// The answer to [`Action::Fetch`]: durable records in sequence order.
    pub fn handle_records(&mut self, now_ms: u64, records: Vec<(Seq, Record)>) {
        let Some(f) = self.fetching.take() else {
            return;
        };
        if f.rewinds != self.rewinds {
            // Read before a rewind, from a cursor that no longer holds: read again.
            return;
        }
        self.exhausted = records.len() < f.max && f.flushes == self.flushes;
        if self.exhausted {
            self.refetch_at_ms = now_ms + REFETCH_MS;
        }
        let from = self
            .buffer
            .back()
            .map_or(self.window.cursor(), |o| o.seq + 1);
        self.buffer.extend(
            records
                .into_iter()
                .filter(|(seq, _)| *seq >= from)
                .map(|(seq, record)| Outgoing { seq, record }),
        );
    }

    /// The outbox could not be read: counts as nothing to send; read again after
    /// [`REFETCH_MS`].
    pub fn handle_fetch_failed(&mut self, now_ms: u64) {
        if self.fetching.take().is_some() {
            self.exhausted = true;
            self.refetch_at_ms = now_ms + REFETCH_MS;
        }
    }

    /// The producer took the record of the last [`Action::Send`]: it is in flight.
    pub fn handle_sent(&mut self, now_ms: u64, seq: Seq) {
        if let Some(h) = self.handed.take_if(|h| h.seq == seq) {
            self.window.sent(seq, h.sent(now_ms));
        }
    }

    /// The producer did not take the record of the last [`Action::Send`]; the driver hands it
    /// back.
    pub fn handle_send_refused(&mut self, now_ms: u64, refused: Outgoing, why: Refusal) {
        let Some(h) = self.handed.take_if(|h| h.seq == refused.seq) else {
            return;
        };
        match why {
            Refusal::QueueFull => {
                self.buffer.push_front(refused);
                self.blocked_until_ms = Some(now_ms + QUEUE_FULL_RETRY_MS);
            }
            Refusal::Retriable | Refusal::Fatal => {
                self.fatal |= why == Refusal::Fatal;
                self.window.sent(h.seq, h.sent(now_ms));
                self.window.failed(h.seq);
            }
        }
        self.settle(now_ms);
    }

    /// A delivery report. Ignored (and says so) for a record not in flight.
    pub fn handle_delivery(
        &mut self,
        now_ms: u64,
        seq: Seq,
        result: Result<(), ErrorClass>,
    ) -> Delivery {
        let outcome = match result {
            Ok(()) => match self.window.acked(seq) {
                Some(s) => {
                    self.backoff.reset();
                    self.to_delete.push(seq);
                    Delivery::Acked {
                        kind: s.kind,
                        bytes: s.bytes,
                        latency_ms: now_ms.saturating_sub(s.sent_ms),
                        created_unix_ms: s.created_unix_ms,
                    }
                }
                None => Delivery::Ignored,
            },
            Err(ErrorClass::Reject) => match self.window.forget(seq) {
                Some(s) => {
                    self.to_delete.push(seq);
                    Delivery::Rejected { kind: s.kind }
                }
                None => Delivery::Ignored,
            },
            Err(class) => {
                if self.window.holds(seq) {
                    self.fatal |= class == ErrorClass::Fatal;
                    self.window.failed(seq);
                    Delivery::Failed
                } else {
                    Delivery::Ignored
                }
            }
        };
        self.settle(now_ms);
        outcome
    }

    /// Stop was asked for: the grace period starts.
    pub fn handle_stop(&mut self, now_ms: u64) {
        if self.stop_at_ms.is_none() {
            self.stop_at_ms = Some(now_ms + self.grace_ms);
        }
    }

    /// The next thing to do at `now_ms`, if any.
    pub fn poll_action(&mut self, now_ms: u64) -> Option<Action> {
        if self.stopped {
            return None;
        }
        if !self.to_delete.is_empty() {
            return Some(Action::Delete {
                seqs: std::mem::take(&mut self.to_delete),
            });
        }
        if let Some(stop_at) = self.stop_at_ms
            && (now_ms >= stop_at || self.finished(now_ms))
        {
            self.stopped = true;
            return Some(Action::Stop);
        }
        match self.producer {
            Producer::Absent { retry_at_ms } => {
                if retry_at_ms.is_none_or(|at| now_ms >= at) {
                    self.producer = Producer::Creating;
                    return Some(Action::CreateProducer);
                }
                return None;
            }
            Producer::Doomed => {
                self.producer = Producer::Creating;
                return Some(Action::RecreateProducer);
            }
            Producer::Creating => return None,
            Producer::Ready => {}
        }
        if self.handed.is_some() || self.fetching.is_some() {
            return None;
        }
        let room = self.window.room(now_ms);
        if room == 0 {
            return None;
        }
        if let Some(next) = self.buffer.front() {
            if self.blocked_until_ms.is_some_and(|t| now_ms < t) {
                return None;
            }
            let bytes = next.record.payload.len() as u64;
            if let Err(wait) = self.throttle.take(now_ms, bytes) {
                self.blocked_until_ms = Some(now_ms + wait);
                return None;
            }
            self.blocked_until_ms = None;
            let next = self.buffer.pop_front()?;
            self.handed = Some(Handed {
                seq: next.seq,
                kind: next.record.kind,
                created_unix_ms: next.record.created_unix_ms,
                bytes,
            });
            return Some(Action::Send(next));
        }
        if self.exhausted && now_ms < self.refetch_at_ms {
            return None;
        }
        let max = room.min(FETCH_BATCH);
        self.fetching = Some(Fetching {
            rewinds: self.rewinds,
            max,
            flushes: self.flushes,
        });
        Some(Action::Fetch {
            from: self.window.cursor(),
            max,
        })
    }

    /// The next thing to log, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When (agent ms) the core must be woken if no input comes first; `None`: only an input
    /// can make progress. Valid after [`Forwarder::poll_action`] returned `None`.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.stopped {
            return None;
        }
        let own = match self.producer {
            Producer::Absent { retry_at_ms } => retry_at_ms,
            Producer::Ready if self.handed.is_none() && self.fetching.is_none() => {
                match self.window.phase() {
                    Phase::Waiting { until_ms } => Some(until_ms),
                    Phase::Sending if self.window.free() > 0 => {
                        if self.buffer.is_empty() {
                            self.exhausted.then_some(self.refetch_at_ms)
                        } else {
                            self.blocked_until_ms
                        }
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match (own, self.stop_at_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether a stopping forwarder is done: no producer to send with, or nothing in flight,
    /// nothing being handed over and nothing more in the outbox.
    fn finished(&mut self, now_ms: u64) -> bool {
        match self.producer {
            Producer::Absent { .. } => true,
            Producer::Ready => {
                self.handed.is_none()
                    && self.fetching.is_none()
                    && self.buffer.is_empty()
                    && self.exhausted
                    && self.window.in_flight() == 0
                    && self.window.room(now_ms) > 0
            }
            Producer::Creating | Producer::Doomed => false,
        }
    }

    /// After a failure, once nothing is in flight or being handed over: rewind and back off.
    fn settle(&mut self, now_ms: u64) {
        if self.handed.is_some()
            || self.window.in_flight() > 0
            || self.window.phase() != Phase::Draining
        {
            return;
        }
        let wait = self.backoff.next_delay_ms(self.rng.random());
        let Some(from) = self.window.settle(now_ms, wait) else {
            return;
        };
        self.rewinds += 1;
        self.buffer.clear();
        self.blocked_until_ms = None;
        self.exhausted = false;
        if std::mem::take(&mut self.fatal) {
            if self.producer == Producer::Ready {
                self.producer = Producer::Doomed;
            }
        } else {
            self.events.push_back(Event::Resending {
                from,
                wait_ms: wait,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{MemoryOutbox, Outbox};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn settings() -> Settings {
        Settings {
            max_in_flight: 100,
            records_per_s: 1e6,
            bytes_per_s: 0,
            retry_min_ms: 200,
            retry_max_ms: 5000,
            grace_ms: 3000,
        }
    }

    /// A simulated driver: the in-memory outbox, a producer that takes every record unless told
    /// otherwise and reports only when told, and a clock that moves only when told.
    struct Sim {
        core: Forwarder,
        max_in_flight: usize,
        outbox: MemoryOutbox,
        now: u64,
        appended: u64,
        /// Every record the producer took: (time, sequence).
        sent: Vec<(u64, Seq)>,
        /// Taken and not reported yet, in order.
        in_producer: Vec<Seq>,
        deleted: Vec<Seq>,
        /// Acknowledged or rejected: may be deleted.
        done: BTreeSet<Seq>,
        log: Vec<String>,
        events: Vec<Event>,
        creates: usize,
        recreates: usize,
        stopped_at: Option<u64>,
        /// How many of the next creations fail.
        producer_failures: usize,
        /// How many of the next sends find the queue full.
        queue_full: usize,
        /// The next send is refused so.
        refuse: Option<Refusal>,
        /// Acknowledge everything the producer took before the clock moves on.
        auto_ack: bool,
        /// The last sequence handed over since the last rewind (for the order check).
        last_in_run: Option<Seq>,
    }

    impl Sim {
        fn new(settings: Settings) -> Self {
            let mut sim = Sim {
                core: Forwarder::new(&settings, 7),
                max_in_flight: settings.max_in_flight,
                outbox: MemoryOutbox::new(1 << 30),
                now: 0,
                appended: 0,
                sent: vec![],
                in_producer: vec![],
                deleted: vec![],
                done: BTreeSet::new(),
                log: vec![],
                events: vec![],
                creates: 0,
                recreates: 0,
                stopped_at: None,
                producer_failures: 0,
                queue_full: 0,
                refuse: None,
                auto_ack: false,
                last_in_run: None,
            };
            sim.run();
            sim
        }

        /// Appends `n` summaries of 100 bytes over two keys, makes them durable without telling
        /// the core.
        fn append_quietly(&mut self, n: u64) {
            for _ in 0..n {
                let i = self.appended;
                let r = Record {
                    kind: Kind::Summary,
                    created_unix_ms: 1_700_000_000_000 + i,
                    key: if i.is_multiple_of(2) {
                        "pump-1"
                    } else {
                        "fan-2"
                    }
                    .into(),
                    payload: vec![b'x'; 100],
                };
                assert_eq!(self.outbox.append(&r).unwrap().seq, Some(i));
                self.appended += 1;
            }
            self.outbox.flush().unwrap();
        }

        /// Appends `n` records, flushes, notifies the core.
        fn append(&mut self, n: u64) {
            self.append_quietly(n);
            self.core.handle_flushed();
            self.run();
        }

        /// Executes every action the core has at `now`, checking the invariants on the way.
        fn run(&mut self) {
            for _ in 0..1_000_000 {
                while let Some(e) = self.core.poll_event() {
                    self.last_in_run = None;
                    self.events.push(e);
                }
                let Some(action) = self.core.poll_action(self.now) else {
                    if self.auto_ack && !self.in_producer.is_empty() {
                        for seq in std::mem::take(&mut self.in_producer) {
                            self.report(seq, Ok(()));
                        }
                        continue;
                    }
                    return;
                };
                self.execute(action);
                assert!(self.in_producer.len() <= self.max_in_flight);
                assert_eq!(self.core.in_flight(), self.in_producer.len());
            }
            panic!("the core does not settle");
        }

        fn execute(&mut self, action: Action) {
            let now = self.now;
            match action {
                Action::CreateProducer | Action::RecreateProducer => {
                    if action == Action::RecreateProducer {
                        self.log.push("recreate".into());
                        self.recreates += 1;
                        self.last_in_run = None;
                        assert!(
                            self.in_producer.is_empty(),
                            "recreated with records in flight"
                        );
                    }
                    self.creates += 1;
                    if self.producer_failures > 0 {
                        self.producer_failures -= 1;
                        self.log.push("create failed".into());
                        self.core.handle_producer_failed(now);
                    } else {
                        self.log.push("created".into());
                        self.core.handle_producer_created();
                    }
                }
                Action::Fetch { from, max } => {
                    let peeked = self.outbox.peek(from, max).unwrap();
                    self.core.handle_records(now, peeked.records);
                }
                Action::Send(out) => {
                    let seq = out.seq;
                    if self.queue_full > 0 {
                        self.queue_full -= 1;
                        self.log.push(format!("queue full {seq}"));
                        self.core.handle_send_refused(now, out, Refusal::QueueFull);
                        return;
                    }
                    // Order: the next durable record after the last one handed over since the
                    // last rewind; after a rewind, the first one in the outbox.
                    let expected = self
                        .outbox
                        .peek(self.last_in_run.map_or(0, |s| s + 1), 1)
                        .unwrap()
                        .records
                        .first()
                        .map(|(s, _)| *s);
                    assert_eq!(Some(seq), expected, "out of order");
                    self.last_in_run = Some(seq);
                    if let Some(why) = self.refuse.take() {
                        self.log.push(format!("refused {seq}"));
                        self.core.handle_send_refused(now, out, why);
                        return;
                    }
                    self.log.push(format!("send {seq}"));
                    self.sent.push((now, seq));
                    self.in_producer.push(seq);
                    self.core.handle_sent(now, seq);
                }
                Action::Delete { seqs } => {
                    self.log.push(format!("delete {seqs:?}"));
                    for seq in &seqs {
                        assert!(self.done.contains(seq), "{seq} deleted unacknowledged");
                        assert!(!self.deleted.contains(seq), "{seq} deleted twice");
                    }
                    self.outbox.delete(&seqs).unwrap();
                    self.deleted.extend(seqs);
                }
                Action::Stop => {
                    self.log.push("stop".into());
                    self.stopped_at = Some(now);
                }
            }
        }

        fn report(&mut self, seq: Seq, result: Result<(), ErrorClass>) -> Delivery {
            self.in_producer.retain(|s| *s != seq);
            let d = self.core.handle_delivery(self.now, seq, result);
            if matches!(d, Delivery::Acked { .. } | Delivery::Rejected { .. }) {
                self.done.insert(seq);
            }
            d
        }

        fn ack(&mut self, seq: Seq) -> Delivery {
            let d = self.report(seq, Ok(()));
            self.run();
            d
        }

        fn fail(&mut self, seq: Seq, class: ErrorClass) -> Delivery {
            let d = self.report(seq, Err(class));
            self.run();
            d
        }

        fn ack_all(&mut self) {
            for seq in self.in_producer.clone() {
                self.ack(seq);
            }
        }

        fn stop(&mut self) {
            self.core.handle_stop(self.now);
            self.run();
        }

        fn advance(&mut self, ms: u64) {
            self.now += ms;
            self.run();
        }

        /// Jumps to the core's next timeout; false if it has none.
        fn wake_at_timeout(&mut self) -> bool {
            let Some(t) = self.core.poll_timeout() else {
                return false;
            };
            assert!(
                t > self.now,
                "asked to be woken in the past: {t} at {}",
                self.now
            );
            self.now = t;
            self.run();
            true
        }

        fn sent_seqs(&self) -> Vec<Seq> {
            self.sent.iter().map(|(_, s)| *s).collect()
        }

        fn held(&self) -> Vec<Seq> {
            let peeked = self.outbox.peek(0, usize::MAX).unwrap();
            peeked.records.iter().map(|(s, _)| *s).collect()
        }

        /// Sends per simulated second, from second 0 to the last send.
        fn sends_per_second(&self) -> Vec<usize> {
            let last = self.sent.last().map_or(0, |(t, _)| t / 1000) as usize;
            let mut per = vec![0; last + 1];
            for (t, _) in &self.sent {
                per[(t / 1000) as usize] += 1;
            }
            per
        }
    }

    #[test]
    fn a_retriable_failure_backs_off_then_resends_what_is_left_in_sequence_order() {
        let mut sim = Sim::new(settings());
        sim.append(6);
        assert_eq!(sim.sent_seqs(), [0, 1, 2, 3, 4, 5]);
        sim.ack(0);
        sim.ack(1);
        assert_eq!(sim.fail(2, ErrorClass::Retriable), Delivery::Failed);
        sim.append(2);
        assert_eq!(
            sim.sent.len(),
            6,
            "nothing new while records in flight may still fail"
        );
        sim.ack(3);
        sim.fail(4, ErrorClass::Retriable);
        assert!(
            sim.events.is_empty(),
            "no rewind before everything reported"
        );
        sim.now = 1000;
        sim.ack(5);
        // The first backoff is exactly `retry_min_ms`; it starts when the last report came.
        assert_eq!(
            sim.events,
            [Event::Resending {
                from: 2,
                wait_ms: 200
            }]
        );
        assert_eq!(sim.deleted, [0, 1, 3, 5]);
        assert_eq!(sim.core.poll_timeout(), Some(1200));
        sim.advance(199);
        assert_eq!(sim.sent.len(), 6, "nothing before the backoff is over");
        sim.advance(1);
        assert_eq!(sim.sent_seqs()[6..], [2, 4, 6, 7], "the rest, in order");

        // Failing again without a success in between: a longer backoff, the same order.
        for seq in [2, 4, 6, 7] {
            sim.fail(seq, ErrorClass::Retriable);
        }
        let Some(&Event::Resending { from, wait_ms }) = sim.events.last() else {
            panic!("{:?}", sim.events)
        };
        assert_eq!(from, 2);
        assert!((200..=400).contains(&wait_ms), "{wait_ms}");
        assert_eq!(sim.core.poll_timeout(), Some(1200 + wait_ms));
        assert!(sim.wake_at_timeout());
        assert_eq!(sim.sent_seqs()[10..], [2, 4, 6, 7]);
        assert_eq!(sim.sent.last().unwrap().0, 1200 + wait_ms);
    }

    #[test]
    fn a_fatal_error_recreates_the_producer_and_resends_everything_unacknowledged_once_it_exists() {
        let mut sim = Sim::new(settings());
        assert_eq!(sim.creates, 1);
        sim.append(5);
        sim.ack(0);
        sim.fail(1, ErrorClass::Fatal);
        sim.ack(2);
        sim.fail(3, ErrorClass::Fatal);
        assert_eq!(
            sim.recreates, 0,
            "not while the old producer may still report"
        );
        sim.producer_failures = 1;
        sim.fail(4, ErrorClass::Fatal);
        assert_eq!(sim.recreates, 1);
        assert!(
            sim.events.is_empty(),
            "the driver logs the fatal error itself"
        );
        assert_eq!(sim.log[sim.log.len() - 2..], ["recreate", "create failed"]);
        let before = sim.sent.len();
        while sim.sent.len() == before {
            assert!(sim.wake_at_timeout(), "stalled: {:?}", sim.log);
        }
        assert_eq!(sim.creates, 3);
        let created = sim.log.iter().rposition(|l| l == "created").unwrap();
        let first_resend = sim.log.iter().rposition(|l| l == "send 1").unwrap();
        assert!(created < first_resend, "{:?}", sim.log);
        assert_eq!(sim.sent_seqs()[before..], [1, 3, 4]);
        assert_eq!(sim.deleted, [0, 2]);
        sim.ack_all();
        assert!(sim.held().is_empty());
    }

    #[test]
    fn a_backlog_is_replayed_no_faster_than_the_record_rate() {
        let mut sim = Sim::new(Settings {
            records_per_s: 50.0,
            max_in_flight: 1000,
            ..settings()
        });
        sim.auto_ack = true;
        sim.append(500);
        while sim.sent.len() < 500 {
            assert!(sim.wake_at_timeout());
        }
        let per = sim.sends_per_second();
        // A second of burst, then the rate.
        assert!(per[0] <= 100, "{per:?}");
        assert!(per[1..].iter().all(|n| *n <= 50), "{per:?}");
        // And no slower: every full second after the burst sends the rate.
        assert!(per[1..per.len() - 1].iter().all(|n| *n >= 49), "{per:?}");
        assert!(per.len() >= 9, "{per:?}");
        assert_eq!(sim.sent_seqs(), (0..500).collect::<Vec<_>>());
        assert!(sim.held().is_empty());
    }

    #[test]
    fn a_backlog_is_replayed_no_faster_than_the_byte_rate() {
        let mut sim = Sim::new(Settings {
            bytes_per_s: 1000,
            max_in_flight: 1000,
            ..settings()
        });
        sim.auto_ack = true;
        // 100-byte records at 1000 bytes/s: 10 a second.
        sim.append(100);
        while sim.sent.len() < 100 {
            assert!(sim.wake_at_timeout());
        }
        let per = sim.sends_per_second();
        assert!(per[0] <= 20, "{per:?}");
        assert!(per[1..].iter().all(|n| *n <= 10), "{per:?}");
        assert!(per[1..per.len() - 1].iter().all(|n| *n >= 9), "{per:?}");
        assert!(per.len() >= 9, "{per:?}");
    }

    #[test]
    fn after_stop_sending_goes_on_while_records_remain_and_stops_once_nothing_is_in_flight() {
        let mut sim = Sim::new(Settings {
            records_per_s: 10.0,
            ..settings()
        });
        sim.auto_ack = true;
        sim.append(25);
        assert_eq!(sim.sent.len(), 10, "the first second's burst");
        sim.stop();
        assert_eq!(sim.stopped_at, None);
        while sim.stopped_at.is_none() {
            assert!(sim.wake_at_timeout());
        }
        let stopped = sim.stopped_at.unwrap();
        assert_eq!(sim.sent_seqs(), (0..25).collect::<Vec<_>>());
        assert!(stopped < 3000, "before the grace period ends: {stopped}");
        assert_eq!(
            stopped,
            sim.sent.last().unwrap().0,
            "as soon as the last is acknowledged"
        );
        assert!(sim.held().is_empty());
        assert_eq!(sim.log[sim.log.len() - 2..], ["delete [24]", "stop"]);
        assert_eq!(sim.core.poll_action(stopped + 10_000), None);
        assert_eq!(sim.core.poll_timeout(), None);
    }

    #[test]
    fn the_grace_period_ends_the_forwarder_with_records_still_in_flight() {
        let mut sim = Sim::new(settings());
        sim.append(3);
        sim.now = 1000;
        sim.stop();
        sim.advance(1999);
        sim.ack(0);
        assert_eq!(sim.deleted, [0]);
        while sim.stopped_at.is_none() {
            assert!(sim.wake_at_timeout());
            assert!(sim.now <= 4000, "woken past the grace period");
        }
        assert_eq!(sim.stopped_at, Some(4000), "1 and 2 were still in flight");
        assert_eq!(
            sim.held(),
            [1, 2],
            "unacknowledged records stay for the next start"
        );
    }

    #[test]
    fn a_stop_while_no_producer_can_be_created_stops_at_once() {
        let mut sim = Sim::new(settings());
        sim.append(1);
        sim.producer_failures = 1;
        sim.fail(0, ErrorClass::Fatal);
        assert_eq!(sim.log[sim.log.len() - 2..], ["recreate", "create failed"]);
        sim.stop();
        assert_eq!(sim.stopped_at, Some(sim.now));
        assert_eq!(sim.held(), [0]);
    }

    #[test]
    fn a_report_for_a_record_already_deleted_or_never_sent_changes_nothing() {
        let mut sim = Sim::new(settings());
        sim.append(3);
        sim.ack(0);
        assert_eq!(sim.deleted, [0]);
        let log = sim.log.len();
        let timeout = sim.core.poll_timeout();
        for seq in [0, 99] {
            for result in [
                Ok(()),
                Err(ErrorClass::Retriable),
                Err(ErrorClass::Fatal),
                Err(ErrorClass::Reject),
            ] {
                assert_eq!(
                    sim.core.handle_delivery(sim.now, seq, result),
                    Delivery::Ignored
                );
                sim.run();
            }
        }
        assert_eq!(sim.log.len(), log, "no action: {:?}", &sim.log[log..]);
        assert!(sim.events.is_empty());
        assert_eq!(sim.core.poll_timeout(), timeout);
        assert_eq!(sim.core.in_flight(), 2);
        // Sending goes on unhindered.
        sim.append(1);
        assert_eq!(sim.sent_seqs(), [0, 1, 2, 3]);
        sim.ack_all();
        assert_eq!(sim.deleted, [0, 1, 2, 3]);
    }

    #[test]
    fn acknowledgements_become_deletes_and_at_most_max_in_flight_records_are_out() {
        let mut sim = Sim::new(Settings {
            max_in_flight: 3,
            ..settings()
        });
        sim.append(10);
        assert_eq!(sim.sent_seqs(), [0, 1, 2]);
        sim.ack(1);
        assert_eq!(sim.log[sim.log.len() - 2..], ["delete [1]", "send 3"]);
        // Reports that are in together: one delete, then the window refills.
        sim.report(0, Ok(()));
        sim.report(2, Ok(()));
        sim.run();
        assert_eq!(
            sim.log[sim.log.len() - 3..],
            ["delete [0, 2]", "send 4", "send 5"]
        );
        while !sim.in_producer.is_empty() {
            sim.ack_all();
        }
        assert_eq!(sim.sent_seqs(), (0..10).collect::<Vec<_>>());
        let mut deleted = sim.deleted.clone();
        deleted.sort_unstable();
        assert_eq!(deleted, (0..10).collect::<Vec<_>>());
        assert!(sim.held().is_empty());
    }

    #[test]
    fn a_full_producer_queue_takes_the_record_back_and_offers_it_again_first() {
        let mut sim = Sim::new(settings());
        sim.queue_full = 1;
        sim.append(3);
        assert!(sim.sent.is_empty());
        assert_eq!(sim.core.poll_timeout(), Some(QUEUE_FULL_RETRY_MS));
        sim.advance(QUEUE_FULL_RETRY_MS - 1);
        assert!(sim.sent.is_empty());
        sim.advance(1);
        assert_eq!(sim.sent_seqs(), [0, 1, 2]);
        assert!(sim.events.is_empty(), "not a failure");
    }

    #[test]
    fn a_refused_send_is_retried_after_a_backoff() {
        let mut sim = Sim::new(settings());
        sim.refuse = Some(Refusal::Retriable);
        sim.append(2);
        assert!(sim.sent.is_empty());
        assert_eq!(
            sim.events,
            [Event::Resending {
                from: 0,
                wait_ms: 200
            }]
        );
        sim.advance(200);
        assert_eq!(sim.sent_seqs(), [0, 1]);
    }

    #[test]
    fn a_record_the_broker_rejects_is_deleted_and_sending_goes_on() {
        let mut sim = Sim::new(settings());
        sim.append(3);
        assert_eq!(
            sim.fail(1, ErrorClass::Reject),
            Delivery::Rejected {
                kind: Kind::Summary
            }
        );
        assert_eq!(sim.deleted, [1]);
        sim.append(1);
        assert_eq!(sim.sent_seqs(), [0, 1, 2, 3], "no backoff");
        assert!(sim.events.is_empty());
    }

    #[test]
    fn records_made_durable_without_a_notification_are_read_within_a_second() {
        let mut sim = Sim::new(settings());
        sim.append(2);
        sim.append_quietly(2);
        sim.run();
        assert_eq!(sim.sent.len(), 2);
        assert_eq!(sim.core.poll_timeout(), Some(REFETCH_MS));
        assert!(sim.wake_at_timeout());
        assert_eq!(sim.sent_seqs(), [0, 1, 2, 3]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(u64),
        Ack(usize),
        Fail(usize, ErrorClass),
        Advance(u64),
        QueueFull,
        Refuse(Refusal),
        ProducerFails,
        Flushed,
    }

    fn op() -> impl Strategy<Value = Op> {
        let class = prop_oneof![
            4 => Just(ErrorClass::Retriable),
            1 => Just(ErrorClass::Fatal),
            1 => Just(ErrorClass::Reject)
        ];
        prop_oneof![
            3 => (1u64..6).prop_map(Op::Append),
            6 => (0usize..8).prop_map(Op::Ack),
            2 => ((0usize..8), class).prop_map(|(i, c)| Op::Fail(i, c)),
            3 => (1u64..700).prop_map(Op::Advance),
            1 => Just(Op::QueueFull),
            1 => prop_oneof![Just(Refusal::Retriable), Just(Refusal::Fatal)].prop_map(Op::Refuse),
            1 => Just(Op::ProducerFails),
            1 => Just(Op::Flushed),
        ]
    }

    proptest! {
        /// Random reports, refusals, producer failures and clock jumps: every record handed
        /// over is the next one in the outbox (or, after a rewind, the first), the window limit
        /// holds, only acknowledged or rejected records are deleted (once), the core never asks
        /// to be woken in the past, and once the broker acknowledges everything the outbox
        /// empties.
        #[test]
        fn no_record_is_lost_reordered_or_deleted_unacknowledged(
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            let mut sim = Sim::new(Settings {
                max_in_flight: 4,
                records_per_s: 20.0,
                bytes_per_s: 3000,
                ..settings()
            });
            for op in ops {
                match op {
                    Op::Append(n) => sim.append(n),
                    Op::Ack(i) | Op::Fail(i, _) if sim.in_producer.is_empty() => {
                        let _ = i;
                    }
                    Op::Ack(i) => {
                        let seq = sim.in_producer[i % sim.in_producer.len()];
                        sim.ack(seq);
                    }
                    Op::Fail(i, class) => {
                        let seq = sim.in_producer[i % sim.in_producer.len()];
                        sim.fail(seq, class);
                    }
                    Op::Advance(ms) => sim.advance(ms),
                    Op::QueueFull => sim.queue_full += 1,
                    Op::Refuse(why) => sim.refuse = Some(why),
                    Op::ProducerFails => sim.producer_failures += 1,
                    Op::Flushed => {
                        sim.core.handle_flushed();
                        sim.run();
                    }
                }
            }
            sim.auto_ack = true;
            sim.run();
            for _ in 0..100_000 {
                if sim.held().is_empty() {
                    break;
                }
                prop_assert!(sim.wake_at_timeout(), "stalled: {:?}", sim.log);
            }
            prop_assert!(sim.held().is_empty(), "left: {:?}", sim.held());
            let mut deleted = sim.deleted.clone();
            deleted.sort_unstable();
            prop_assert_eq!(deleted, (0..sim.appended).collect::<Vec<_>>());
        }
    }
}
