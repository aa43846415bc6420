//! The durable outbox: every alert, feature summary and heartbeat is stored here before it is
//! sent, and removed only when Kafka has acknowledged it.
//!
//! # Design
//!
//! - **Keys** are a big-endian `u64` sequence, so sled's key order is the order records were
//!   made. The next sequence is recovered at open from the larger of the last key + 1 and a
//!   persisted high-water mark, so numbers are never reused for anything that left the agent.
//! - **Values** are [`record::Record`]s: a format-version byte, the kind, the creation time, the
//!   Kafka key, the exact Kafka payload and a CRC-32C. A record that fails its checksum is
//!   deleted, logged and counted as a `corrupt` drop; it is never sent.
//! - **Durability.** An append is in sled's in-process log buffer until [`Outbox::flush`]; a
//!   flush writes and fsyncs it. The writer thread ([`writer`]) flushes **before an alert's
//!   append returns**, and flushes everything else (summaries, heartbeats, acknowledgements) at
//!   most `outbox.flush_interval_ms` after it was appended. [`Outbox::peek`] only returns records
//!   below the durable watermark (everything appended before the last completed flush), so a
//!   record is never sent before it is on disk: a power cut or SIGKILL can lose at most the
//!   summaries and heartbeats of the last flush interval, and those were never sent.
//! - **Acknowledgements** delete records; a delete lost in a crash only means the record is sent
//!   again after restart, with the same `record_id` (at-least-once delivery).
//! - **Bounds.** The encoded size of the records held is capped at `outbox.max_bytes`; see
//!   [`ledger`] for the eviction order (heartbeats, then summaries, alerts last). Appends never
//!   block on the cap. sled's files take more room than the records (it is log-structured and
//!   compacts in the background): budget about 3× `max_bytes` of disk.
//! - **Corruption at start.** A database that cannot be opened (not a lock held by another
//!   process) is renamed to `outbox.corrupt-<unix seconds>` beside it, reported in the log and
//!   the `edgewatch_outbox_moved_aside_total` counter, and a fresh one is created: the agent
//!   never crash-loops on its own outbox.

pub mod config;
pub mod ledger;
pub mod record;
pub mod sled_store;
pub mod writer;

#[cfg(test)]
mod model_tests;

pub use config::OutboxConfig;
pub use ledger::{Depth, Seq};
pub use record::{Kind, Record};
pub use sled_store::SledOutbox;

use ledger::{Admit, Entry, Ledger};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// An outbox failure. Storage errors are not recoverable by retrying the same call; the agent
/// logs them and carries on (the record is counted as dropped).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// sled failed.
    #[error("outbox storage: {0}")]
    Storage(String),
    /// The directory is locked by another running agent.
    #[error("the outbox {0} is in use by another process (is a second agent running?)")]
    Locked(String),
    /// Moving a corrupt outbox aside failed.
    #[error("cannot move the unreadable outbox {path} aside: {source}")]
    MoveAside {
        /// The outbox directory.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// What happened to an appended record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence, or `None` if the cap refused it (counted as a drop).
    pub seq: Option<Seq>,
    /// Older records evicted to make room (each counted as a drop).
    pub evicted: Vec<(Seq, Kind)>,
}

/// A durable, ordered, bounded queue of records.
pub trait Outbox: Send + Sync + std::fmt::Debug {
    /// Stores a record (not yet durable: see [`Outbox::flush`]), applying the byte cap.
    fn append(&self, record: &Record) -> Result<Appended, OutboxError>;
    /// Up to `max` durable records with sequence ≥ `from`, in sequence order. Records that fail
    /// their checksum are deleted and returned in the second list instead.
    fn peek(&self, from: Seq, max: usize) -> Result<Peeked, OutboxError>;
    /// Removes acknowledged records; unknown sequences are ignored.
    fn delete(&self, seqs: &[Seq]) -> Result<(), OutboxError>;
    /// Makes every append and delete so far durable; moves the durable watermark.
    fn flush(&self) -> Result<(), OutboxError>;
    /// Whether an append since the last flush waits for one. Deletes of acknowledged records
    /// do not ask for a flush of their own: they become durable with the next one (a crash
    /// before it only sends those records again), which saves disk writes.
    fn dirty(&self) -> bool;
    /// Records and bytes held.
    fn depth(&self) -> Depth;
    /// Records of one kind held.
    fn count(&self, kind: Kind) -> usize;
    /// Creation time of the oldest record held, ms since the Unix epoch.
    fn oldest_created_unix_ms(&self) -> Option<u64>;
}

/// Result of [`Outbox::peek`].
#[derive(Debug, Default)]
pub struct Peeked {
    /// Good records in order.
    pub records: Vec<(Seq, Record)>,
    /// Sequences of corrupt records that were deleted.
    pub corrupt: Vec<Seq>,
}

#[derive(Debug, Default, Clone)]
struct MemoryState {
    records: BTreeMap<Seq, Record>,
    ledger: Ledger,
    next: Seq,
    durable: Seq,
    dirty: bool,
}

/// An outbox in memory, for unit tests of the code around the outbox, and the model the sled one
/// is tested against (`model_tests`). `flush` moves the durable watermark like the sled one;
/// [`MemoryOutbox::crash`] forgets what was not flushed, [`MemoryOutbox::restart`] chooses.
#[derive(Debug)]
pub struct MemoryOutbox {
    max_bytes: u64,
    state: Mutex<MemoryState>,
    flushed: Mutex<BTreeMap<Seq, Record>>,
}

impl MemoryOutbox {
    /// An empty outbox capped at `max_bytes`.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            state: Mutex::default(),
            flushed: Mutex::default(),
        }
    }

    /// Simulates a power cut and restart: only what was flushed remains.
    pub fn crash(&self) {
        self.restart(Unflushed::Lost);
    }

    /// Simulates a restart that finds what `unflushed` says of the changes made since the last
    /// flush. Everything found is durable from then on (visible to `peek`), and the sequence
    /// goes on from the larger of the last record found + 1 and the last flush's high-water
    /// mark, as [`SledOutbox::open`] does.
    pub fn restart(&self, unflushed: Unflushed) {
        let mut s = self.state.lock().expect("lock");
        let mut flushed = self.flushed.lock().expect("lock");
        let records = match unflushed {
            Unflushed::Lost => flushed.clone(),
            Unflushed::Kept => s.records.clone(),
        };
        let mut ledger = Ledger::default();
        for (seq, r) in &records {
            ledger.insert(*seq, entry_of(r));
        }
        let next = records
            .keys()
            .next_back()
            .map_or(0, |last| last + 1)
            .max(s.durable);
        flushed.clone_from(&records);
        *s = MemoryState {
            records,
            ledger,
            next,
            durable: next,
            dirty: false,
        };
    }

    /// The sequence the next append will get.
    pub fn next_seq(&self) -> Seq {
        self.state.lock().expect("lock").next
    }
}

/// A copy of the whole state, unflushed changes included: the model-based tests try both
/// outcomes of a restart on copies and keep the one the store under test shows.
impl Clone for MemoryOutbox {
    fn clone(&self) -> Self {
        Self {
            max_bytes: self.max_bytes,
            state: Mutex::new(self.state.lock().expect("lock").clone()),
            flushed: Mutex::new(self.flushed.lock().expect("lock").clone()),
        }
    }
}

/// What a restart finds of the appends and deletes made since the last flush. [`Outbox`]
/// promises only what was flushed, so both are correct outcomes, and a test of a store must
/// accept either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unflushed {
    /// None of them: the power was cut before they reached the disk.
    Lost,
    /// All of them: they reached the disk without a flush (sled writes its whole log when it
    /// is dropped, so a clean close keeps them).
    Kept,
}

fn entry_of(r: &Record) -> Entry {
    Entry {
        kind: r.kind,
        bytes: r.encoded_len() as u64,
        created_unix_ms: r.created_unix_ms,
    }
}

impl Outbox for MemoryOutbox {
    fn append(&self, record: &Record) -> Result<Appended, OutboxError> {
        let mut s = self.state.lock().expect("lock");
        let e = entry_of(record);
        match s.ledger.admit(record.kind, e.bytes, self.max_bytes) {
            Admit::Refuse => Ok(Appended {
                seq: None,
                evicted: vec![],
            }),
            Admit::Store { evict } => {
                for (seq, _) in &evict {
                    s.records.remove(seq);
                    s.ledger.remove(*seq);
                }
                let seq = s.next;
                s.next += 1;
                s.records.insert(seq, record.clone());
                s.ledger.insert(seq, e);
                s.dirty = true;
                Ok(Appended {
                    seq: Some(seq),
                    evicted: evict,
                })
            }
        }
    }

    fn peek(&self, from: Seq, max: usize) -> Result<Peeked, OutboxError> {
        let s = self.state.lock().expect("lock");
        // Any cursor is allowed, one past the watermark too (`range` would panic on it).
        if from >= s.durable {
            return Ok(Peeked::default());
        }
        Ok(Peeked {
            records: s
                .records
                .range(from..s.durable)
                .take(max)
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            corrupt: vec![],
        })
    }

    fn delete(&self, seqs: &[Seq]) -> Result<(), OutboxError> {
        let mut s = self.state.lock().expect("lock");
        for seq in seqs {
            if s.records.remove(seq).is_some() {
                s.ledger.remove(*seq);
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), OutboxError> {
        let mut s = self.state.lock().expect("lock");
        s.durable = s.next;
        s.dirty = false;
        *self.flushed.lock().expect("lock") = s.records.clone();
        Ok(())
    }

    fn dirty(&self) -> bool {
        self.state.lock().expect("lock").dirty
    }

    fn depth(&self) -> Depth {
        self.state.lock().expect("lock").ledger.depth()
    }

    fn count(&self, kind: Kind) -> usize {
        self.state.lock().expect("lock").ledger.count(kind)
    }

    fn oldest_created_unix_ms(&self) -> Option<u64> {
        self.state
            .lock()
            .expect("lock")
            .ledger
            .oldest_created_unix_ms()
    }
}

/// Publishes the depth gauges and the oldest record's age at wall-clock `now_unix_ms`.
pub fn publish_gauges(outbox: &dyn Outbox, now_unix_ms: u64) {
    let d = outbox.depth();
    metrics::gauge!("edgewatch_outbox_records").set(d.records as f64);
    metrics::gauge!("edgewatch_outbox_bytes").set(d.bytes as f64);
    for kind in Kind::EVICTION_ORDER {
        metrics::gauge!("edgewatch_outbox_records_by_kind", "kind" => kind.as_str())
            .set(outbox.count(kind) as f64);
    }
    let age = outbox
        .oldest_created_unix_ms()
        .map_or(0.0, |t| now_unix_ms.saturating_sub(t) as f64 / 1000.0);
    metrics::gauge!("edgewatch_outbox_oldest_age_seconds").set(age);
}

static DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Records dropped by this process so far (for heartbeats).
pub fn dropped_total() -> u64 {
    DROPPED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts a dropped record.
pub fn count_drop(kind: Kind, reason: &'static str) {
    DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    metrics::counter!("edgewatch_outbox_dropped_total", "kind" => kind.as_str(), "reason" => reason)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: Kind, key: &str, n: usize) -> Record {
        Record {
            kind,
            created_unix_ms: 1000 + n as u64,
            key: key.into(),
            payload: format!("{{\"n\":{n}}}").into_bytes(),
        }
    }

    #[test]
    fn nothing_is_visible_to_the_sender_before_a_flush() {
        let o = MemoryOutbox::new(1 << 20);
        o.append(&rec(Kind::Summary, "a", 0)).unwrap();
        assert!(o.peek(0, 10).unwrap().records.is_empty());
        o.flush().unwrap();
        assert_eq!(o.peek(0, 10).unwrap().records.len(), 1);
    }

    /// Found by `model_tests`: the cursor may be anywhere, as with the sled outbox.
    #[test]
    fn a_cursor_past_the_durable_watermark_finds_nothing() {
        let o = MemoryOutbox::new(1 << 20);
        o.append(&rec(Kind::Alert, "a", 0)).unwrap();
        assert!(o.peek(1, 10).unwrap().records.is_empty());
        o.flush().unwrap();
        assert!(o.peek(Seq::MAX, 10).unwrap().records.is_empty());
    }

    #[test]
    fn records_come_back_in_append_order_from_the_cursor() {
        let o = MemoryOutbox::new(1 << 20);
        for n in 0..10 {
            o.append(&rec(Kind::Summary, if n % 2 == 0 { "a" } else { "b" }, n))
                .unwrap();
        }
        o.flush().unwrap();
        let seqs: Vec<_> = o
            .peek(3, 4)
            .unwrap()
            .records
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(seqs, vec![3, 4, 5, 6]);
        o.delete(&[3, 4]).unwrap();
        let after: Vec<_> = o
            .peek(2, 2)
            .unwrap()
            .records
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(after, vec![2, 5], "deleted records are skipped");
        assert_eq!(o.depth().records, 8);
        assert_eq!(o.oldest_created_unix_ms(), Some(1000));
    }

    #[test]
    fn a_crash_loses_only_what_was_not_flushed_and_never_reuses_a_sent_sequence() {
        let o = MemoryOutbox::new(1 << 20);
        o.append(&rec(Kind::Alert, "a", 0)).unwrap();
        o.flush().unwrap();
        o.append(&rec(Kind::Summary, "a", 1)).unwrap();
        o.crash();
        assert_eq!(o.depth().records, 1);
        let next = o.append(&rec(Kind::Summary, "a", 2)).unwrap();
        assert_eq!(next.seq, Some(1));
    }
}
