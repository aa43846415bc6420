//! What the outbox holds, in memory, and the byte-cap policy. Pure: no I/O, no clock.
//!
//! The ledger mirrors the stored records (sequence, kind, encoded size, creation time) so the
//! cap, the depth metrics and the oldest age never need a scan of the database.
//!
//! Cap policy, when a new record of kind `K` does not fit under `max_bytes`: records are evicted
//! in priority order — heartbeats first, then feature summaries, command statuses, model
//! statuses, alerts last — oldest first
//! within a kind, but only kinds of priority at most `K`'s: a summary never evicts an alert, a
//! heartbeat never evicts a summary. If the record still does not fit, the new record itself
//! is dropped. Every eviction and every refused record is a counted drop.

use super::record::Kind;
use std::collections::{BTreeMap, BTreeSet};

/// Outbox sequence number: the big-endian sled key.
pub type Seq = u64;

/// How much a kind is worth keeping under the cap (higher survives longer).
pub const fn priority(kind: Kind) -> u8 {
    match kind {
        Kind::Health => 0,
        Kind::Summary => 1,
        Kind::CommandStatus => 2,
        Kind::ModelStatus => 3,
        Kind::Alert => 4,
    }
}

/// One stored record as the ledger sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Kind.
    pub kind: Kind,
    /// Encoded size, bytes.
    pub bytes: u64,
    /// Wall clock at creation, ms since the Unix epoch.
    pub created_unix_ms: u64,
}

/// Records held and their total size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Records.
    pub records: u64,
    /// Encoded bytes.
    pub bytes: u64,
}

/// The decision for one append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Store it after removing these records (oldest, lowest priority first; may be empty).
    Store {
        /// Records to evict first.
        evict: Vec<(Seq, Kind)>,
    },
    /// Do not store it: it does not fit even after evicting every record it may evict.
    Refuse,
}

/// The in-memory mirror of the outbox.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    entries: BTreeMap<Seq, Entry>,
    by_kind: [BTreeSet<Seq>; Kind::EVICTION_ORDER.len()],
    depth: Depth,
}

fn slot(kind: Kind) -> usize {
    usize::from(priority(kind))
}

impl Ledger {
    /// Records and bytes held.
    pub fn depth(&self) -> Depth {
        self.depth
    }

    /// Records of one kind held.
    pub fn count(&self, kind: Kind) -> usize {
        self.by_kind[slot(kind)].len()
    }

    /// Creation time of the oldest record.
    pub fn oldest_created_unix_ms(&self) -> Option<u64> {
        self.entries.values().next().map(|e| e.created_unix_ms)
    }

    /// The entry of `seq`, if held.
    pub fn get(&self, seq: Seq) -> Option<&Entry> {
        self.entries.get(&seq)
    }

    /// Notes a stored record.
    pub fn insert(&mut self, seq: Seq, entry: Entry) {
        if let Some(old) = self.entries.insert(seq, entry) {
            self.forget(seq, old);
        }
        self.by_kind[slot(entry.kind)].insert(seq);
        self.depth.records += 1;
        self.depth.bytes += entry.bytes;
    }

    /// Notes a removed record; returns its entry if it was held.
    pub fn remove(&mut self, seq: Seq) -> Option<Entry> {
        let e = self.entries.remove(&seq)?;
        self.forget(seq, e);
        Some(e)
    }

    fn forget(&mut self, seq: Seq, e: Entry) {
        self.by_kind[slot(e.kind)].remove(&seq);
        self.depth.records -= 1;
        self.depth.bytes -= e.bytes;
    }

    /// Whether a record of `kind` and `bytes` may be stored under `max_bytes`, and what must go.
    pub fn admit(&self, kind: Kind, bytes: u64, max_bytes: u64) -> Admit {
        if bytes > max_bytes {
            return Admit::Refuse;
        }
        let mut over = (self.depth.bytes + bytes).saturating_sub(max_bytes);
        let mut evict = Vec::new();
        for k in Kind::EVICTION_ORDER {
            if priority(k) > priority(kind) {
                break;
            }
            for &seq in &self.by_kind[slot(k)] {
                if over == 0 {
                    break;
                }
                let e = self.entries[&seq];
                over = over.saturating_sub(e.bytes);
                evict.push((seq, k));
            }
        }
        if over > 0 {
            Admit::Refuse
        } else {
            Admit::Store { evict }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(kind: Kind, bytes: u64) -> Entry {
        Entry {
            kind,
            bytes,
            created_unix_ms: 0,
        }
    }

    #[test]
    fn a_record_that_fits_evicts_nothing() {
        let mut l = Ledger::default();
        l.insert(0, entry(Kind::Summary, 40));
        assert_eq!(
            l.admit(Kind::Summary, 60, 100),
            Admit::Store { evict: vec![] }
        );
    }

    #[test]
    fn heartbeats_go_first_then_the_oldest_summaries_and_alerts_stay() {
        let mut l = Ledger::default();
        l.insert(0, entry(Kind::Alert, 30));
        l.insert(1, entry(Kind::Summary, 30));
        l.insert(2, entry(Kind::Health, 10));
        l.insert(3, entry(Kind::Summary, 30));
        assert_eq!(
            l.admit(Kind::Summary, 30, 100),
            Admit::Store {
                evict: vec![(2, Kind::Health), (1, Kind::Summary)]
            }
        );
    }

    #[test]
    fn a_summary_never_evicts_an_alert_and_is_refused_instead() {
        let mut l = Ledger::default();
        l.insert(0, entry(Kind::Alert, 60));
        l.insert(1, entry(Kind::Summary, 20));
        // 40 fits by evicting the older summary; 50 would need the alert to go: refused.
        assert_eq!(
            l.admit(Kind::Summary, 40, 100),
            Admit::Store {
                evict: vec![(1, Kind::Summary)]
            }
        );
        assert_eq!(l.admit(Kind::Summary, 50, 100), Admit::Refuse);
        assert_eq!(
            l.admit(Kind::Alert, 40, 100),
            Admit::Store {
                evict: vec![(1, Kind::Summary)]
            }
        );
    }

    #[test]
    fn an_alert_evicts_older_alerts_only_when_nothing_else_is_left() {
        let mut l = Ledger::default();
        l.insert(0, entry(Kind::Alert, 50));
        l.insert(1, entry(Kind::Alert, 50));
        assert_eq!(
            l.admit(Kind::Alert, 50, 100),
            Admit::Store {
                evict: vec![(0, Kind::Alert)]
            }
        );
    }

    #[test]
    fn a_record_larger_than_the_cap_is_refused() {
        assert_eq!(
            Ledger::default().admit(Kind::Alert, 101, 100),
            Admit::Refuse
        );
    }

    #[test]
    fn a_command_status_evicts_summaries_but_never_a_model_status() {
        let mut l = Ledger::default();
        l.insert(0, entry(Kind::ModelStatus, 50));
        l.insert(1, entry(Kind::Summary, 30));
        assert_eq!(
            l.admit(Kind::CommandStatus, 40, 100),
            Admit::Store {
                evict: vec![(1, Kind::Summary)]
            }
        );
        assert_eq!(l.admit(Kind::CommandStatus, 60, 100), Admit::Refuse);
        assert_eq!(
            Kind::EVICTION_ORDER.map(priority),
            [0, 1, 2, 3, 4],
            "the eviction order is the priority order"
        );
    }

    proptest! {
        /// Random appends and deletes against the policy: the cap always holds, evictions never
        /// take a kind of higher priority than the newcomer, alerts are refused only when the
        /// outbox holds nothing but alerts plus the newcomer would not fit, and the depth equals
        /// the sum of the entries.
        #[test]
        fn the_cap_and_the_priorities_always_hold(
            ops in proptest::collection::vec((0u8..6, 1u64..60), 1..300),
        ) {
            let max = 200;
            let mut l = Ledger::default();
            let mut next = 0;
            for (op, size) in ops {
                let kind = match op {
                    0 => Kind::Alert,
                    1 => Kind::Summary,
                    2 => Kind::Health,
                    3 => Kind::ModelStatus,
                    4 => Kind::CommandStatus,
                    _ => {
                    if let Some(&seq) = l.entries.keys().next() { l.remove(seq); }
                    continue;
                }};
                match l.admit(kind, size, max) {
                    Admit::Store { evict } => {
                        for (seq, k) in &evict {
                            prop_assert!(priority(*k) <= priority(kind));
                            prop_assert_eq!(l.remove(*seq).map(|e| e.kind), Some(*k));
                        }
                        l.insert(next, entry(kind, size));
                        next += 1;
                    }
                    Admit::Refuse => {
                        let evictable: u64 = l.entries.values()
                            .filter(|e| priority(e.kind) <= priority(kind)).map(|e| e.bytes).sum();
                        prop_assert!(l.depth().bytes - evictable + size > max);
                    }
                }
                prop_assert!(l.depth().bytes <= max);
                prop_assert_eq!(l.depth().bytes, l.entries.values().map(|e| e.bytes).sum::<u64>());
                prop_assert_eq!(l.depth().records as usize, l.entries.len());
            }
        }
    }
}
