//! [`SledOutbox`]: the outbox on sled.

use super::ledger::{Admit, Entry, Ledger, Seq};
use super::record::{Kind, Record};
use super::{Appended, Depth, Outbox, OutboxError, Peeked};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const NEXT_SEQ: &[u8] = b"next_seq";

fn storage(e: sled::Error) -> OutboxError {
    OutboxError::Storage(e.to_string())
}

#[derive(Debug)]
struct State {
    ledger: Ledger,
    next: Seq,
}

/// How [`SledOutbox::open`] went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The existing outbox (or a new empty one) was opened.
    Clean {
        /// Stored records that failed their checksum and were deleted.
        corrupt_records: u64,
    },
    /// The outbox could not be opened; it was moved to `moved_to` and a fresh one created.
    MovedAside {
        /// Where the old one is now.
        moved_to: PathBuf,
        /// Why it could not be used.
        reason: String,
    },
}

/// The outbox in a sled database directory.
#[derive(Debug)]
pub struct SledOutbox {
    db: sled::Db,
    records: sled::Tree,
    meta: sled::Tree,
    max_bytes: u64,
    state: Mutex<State>,
    durable: AtomicU64,
    dirty: AtomicBool,
}

impl SledOutbox {
    /// Opens (or creates) the outbox in `dir`. An outbox that cannot be opened or read is moved
    /// aside to `<dir>.corrupt-<unix seconds>` and a fresh one created; a lock held by another
    /// process is an error.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        now_unix_s: u64,
    ) -> Result<(Self, Opened), OutboxError> {
        match Self::try_open(dir, max_bytes) {
            Ok((o, corrupt_records)) => Ok((o, Opened::Clean { corrupt_records })),
            Err(OutboxError::Locked(p)) => Err(OutboxError::Locked(p)),
            Err(e) => {
                let reason = e.to_string();
                let name = dir
                    .file_name()
                    .map_or_else(|| "outbox".into(), |n| n.to_string_lossy().into_owned());
                let mut moved_to = dir.with_file_name(format!("{name}.corrupt-{now_unix_s}"));
                let mut n = 1;
                while moved_to.exists() {
                    moved_to = dir.with_file_name(format!("{name}.corrupt-{now_unix_s}-{n}"));
                    n += 1;
                }
                std::fs::rename(dir, &moved_to).map_err(|source| OutboxError::MoveAside {
                    path: dir.display().to_string(),
                    source,
                })?;
                let (o, _) = Self::try_open(dir, max_bytes)?;
                Ok((o, Opened::MovedAside { moved_to, reason }))
            }
        }
    }

    fn try_open(dir: &Path, max_bytes: u64) -> Result<(Self, u64), OutboxError> {
        if dir.exists() && !dir.is_dir() {
            return Err(OutboxError::Storage(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        // sled opens a database whose files are garbage as an empty one, without an error. A
        // database this agent wrote always holds the high-water mark (written at creation), so
        // a non-empty `db` file without it is damage, not an empty outbox.
        let had_data = std::fs::metadata(dir.join("db")).is_ok_and(|m| m.len() > 0);
        let config = sled::Config::new().path(dir).flush_every_ms(None);
        // sled panics on some kinds of damaged files instead of returning an error.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()))
            .map_err(|_| OutboxError::Storage("sled panicked while opening the database".into()))?;
        let db = match opened {
            Ok(db) => db,
            Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(OutboxError::Locked(dir.display().to_string()));
            }
            Err(e) if e.to_string().contains("could not acquire lock") => {
                return Err(OutboxError::Locked(dir.display().to_string()));
            }
            Err(e) => return Err(storage(e)),
        };
        let records = db.open_tree("records").map_err(storage)?;
        let meta = db.open_tree("meta").map_err(storage)?;
        let scanned =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scan(&records, &meta)))
                .map_err(|_| {
                    OutboxError::Storage("sled panicked while reading the database".into())
                })??;
        let (ledger, next, corrupt) = scanned;
        let mark = meta.get(NEXT_SEQ).map_err(storage)?;
        if mark.is_none() && had_data && records.is_empty() {
            return Err(OutboxError::Storage(
                "the database files are not empty but hold no outbox data (unreadable)".into(),
            ));
        }
        // Everything found is visible to `peek` from here on (`durable` is `next`), so it must
        // be flushed and under the mark like a flushed record: appends can reach the files
        // without a flush (sled writes its whole log when it is dropped). Without this, a record
        // sent after this open and deleted, with the delete reaching the disk before any flush,
        // would give its sequence to a new record at the next open.
        if mark.as_deref() != Some(next.to_be_bytes().as_slice()) {
            meta.insert(NEXT_SEQ, next.to_be_bytes().to_vec())
                .map_err(storage)?;
            db.flush().map_err(storage)?;
        }
        Ok((
            Self {
                db,
                records,
                meta,
                max_bytes,
                state: Mutex::new(State { ledger, next }),
                durable: AtomicU64::new(next),
                dirty: AtomicBool::new(corrupt > 0),
            },
            corrupt,
        ))
    }

    /// The sequence the next append will get: every smaller number has been used.
    pub fn next_seq(&self) -> Seq {
        self.state.lock().expect("outbox lock").next
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
impl SledOutbox {
    /// Opens `dir` again after this process dropped the outbox in it. sled closes its files,
    /// and so releases its lock, from its background threads a moment after the drop: an open
    /// at once can find the directory `Locked` (a restarted agent is a new process, which only
    /// starts once the old one has exited).
    pub(super) fn reopen(dir: &Path, max_bytes: u64) -> (Self, Opened) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Self::open(dir, max_bytes, 0) {
                Err(OutboxError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                opened => return opened.expect("open the outbox again"),
            }
        }
    }
}

/// Builds the ledger from the stored records, deleting corrupt ones; finds the next sequence.
fn scan(records: &sled::Tree, meta: &sled::Tree) -> Result<(Ledger, Seq, u64), OutboxError> {
    let mut ledger = Ledger::default();
    let mut corrupt = Vec::new();
    let mut last = None;
    for item in records.iter() {
        let (k, v) = item.map_err(storage)?;
        let Ok(key) = <[u8; 8]>::try_from(k.as_ref()) else {
            corrupt.push(k);
            continue;
        };
        let seq = u64::from_be_bytes(key);
        last = Some(seq);
        match Record::meta(&v) {
            Ok(r) => ledger.insert(
                seq,
                Entry {
                    kind: r.kind,
                    bytes: v.len() as u64,
                    created_unix_ms: r.created_unix_ms,
                },
            ),
            Err(e) => {
                tracing::error!(seq, error = %e, "corrupt outbox record deleted");
                metrics::counter!("edgewatch_outbox_dropped_total", "kind" => "unknown", "reason" => "corrupt")
                    .increment(1);
                corrupt.push(k);
            }
        }
    }
    for k in &corrupt {
        records.remove(k).map_err(storage)?;
    }
    let high_water = meta
        .get(NEXT_SEQ)
        .map_err(storage)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes);
    let next = last.map_or(0, |l| l + 1).max(high_water);
    Ok((ledger, next, corrupt.len() as u64))
}

impl Outbox for SledOutbox {
    fn append(&self, record: &Record) -> Result<Appended, OutboxError> {
        let value = record.encode();
        let mut s = self.state.lock().expect("outbox lock");
        let evict = match s
            .ledger
            .admit(record.kind, value.len() as u64, self.max_bytes)
        {
            Admit::Refuse => {
                return Ok(Appended {
                    seq: None,
                    evicted: vec![],
                });
            }
            Admit::Store { evict } => evict,
        };
        let seq = s.next;
        // Single-key operations, not a `sled::Batch`: sled writes and syncs its log buffer
        // twice for every batch (to pin the batch's recovery point), which made every append
        // and every delete a separate disk write (13 disk bytes per forwarded byte, end to end).
        // Nothing here needs a batch's atomicity: the new record goes in first, so a crash
        // between it and the evictions leaves the outbox briefly over its cap, never short of a
        // record it has not forwarded. The high-water mark is written by `flush`.
        self.records
            .insert(seq.to_be_bytes(), value.as_slice())
            .map_err(storage)?;
        for (victim, _) in &evict {
            self.records.remove(victim.to_be_bytes()).map_err(storage)?;
        }
        for (victim, _) in &evict {
            s.ledger.remove(*victim);
        }
        s.ledger.insert(
            seq,
            Entry {
                kind: record.kind,
                bytes: value.len() as u64,
                created_unix_ms: record.created_unix_ms,
            },
        );
        s.next = seq + 1;
        self.dirty.store(true, Ordering::Release);
        Ok(Appended {
            seq: Some(seq),
            evicted: evict,
        })
    }

    fn peek(&self, from: Seq, max: usize) -> Result<Peeked, OutboxError> {
        let durable = self.durable.load(Ordering::Acquire);
        let mut out = Peeked::default();
        if from >= durable {
            return Ok(out);
        }
        for item in self
            .records
            .range(from.to_be_bytes()..durable.to_be_bytes())
        {
            if out.records.len() >= max {
                break;
            }
            let (k, v) = item.map_err(storage)?;
            let seq = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0xff; 8]));
            match Record::decode(&v) {
                Ok(r) => out.records.push((seq, r)),
                Err(e) => {
                    tracing::error!(seq, error = %e, "corrupt outbox record deleted");
                    out.corrupt.push(seq);
                }
            }
        }
        if !out.corrupt.is_empty() {
            self.delete(&out.corrupt)?;
        }
        Ok(out)
    }

    fn delete(&self, seqs: &[Seq]) -> Result<(), OutboxError> {
        let mut s = self.state.lock().expect("outbox lock");
        // One by one (see `append` on batches): each delete stands alone; a crash that keeps a
        // deleted record only sends it again.
        for seq in seqs {
            self.records.remove(seq.to_be_bytes()).map_err(storage)?;
            s.ledger.remove(*seq);
        }
        // Not `dirty`: see `Outbox::dirty`.
        Ok(())
    }

    fn flush(&self) -> Result<(), OutboxError> {
        let upto = self.state.lock().expect("outbox lock").next;
        self.dirty.store(false, Ordering::Release);
        // The high-water mark goes with the flush that makes records up to it durable. sled
        // recovers a prefix of its log, and the scan at open takes the larger of the last
        // stored sequence + 1 and the mark, so a mark older than the records is harmless.
        let flushed = self
            .meta
            .insert(NEXT_SEQ, upto.to_be_bytes().to_vec())
            .and_then(|_| self.db.flush());
        if let Err(e) = flushed {
            self.dirty.store(true, Ordering::Release);
            return Err(storage(e));
        }
        self.durable.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    fn dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    fn depth(&self) -> Depth {
        self.state.lock().expect("outbox lock").ledger.depth()
    }

    fn count(&self, kind: Kind) -> usize {
        self.state.lock().expect("outbox lock").ledger.count(kind)
    }

    fn oldest_created_unix_ms(&self) -> Option<u64> {
        self.state
            .lock()
            .expect("outbox lock")
            .ledger
            .oldest_created_unix_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: Kind, n: usize) -> Record {
        Record {
            kind,
            created_unix_ms: n as u64,
            key: "pump-1".into(),
            payload: vec![b'x'; 100],
        }
    }

    #[test]
    fn records_and_the_sequence_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox");
        {
            let (o, opened) = SledOutbox::open(&path, 1 << 20, 0).unwrap();
            assert_eq!(opened, Opened::Clean { corrupt_records: 0 });
            for n in 0..5 {
                o.append(&rec(Kind::Summary, n)).unwrap();
            }
            o.delete(&[3, 4]).unwrap();
            o.flush().unwrap();
        }
        let (o, _) = SledOutbox::reopen(&path, 1 << 20);
        assert_eq!(o.depth().records, 3);
        let seqs: Vec<_> = o
            .peek(0, 10)
            .unwrap()
            .records
            .into_iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(seqs, vec![0, 1, 2]);
        // 3 and 4 were sent and deleted: their numbers are not reused.
        assert_eq!(o.append(&rec(Kind::Alert, 9)).unwrap().seq, Some(5));
    }

    /// Found by `model_tests`: an unflushed append that a reopen finds (sled writes its log
    /// when dropped) is visible to the sender at once, so its number must never be reused, even
    /// after its delete reaches the disk without a flush.
    #[test]
    fn a_sequence_made_visible_by_a_reopen_is_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox");
        {
            let (o, _) = SledOutbox::open(&path, 1 << 20, 0).unwrap();
            assert_eq!(o.append(&rec(Kind::Summary, 0)).unwrap().seq, Some(0));
        }
        {
            let (o, _) = SledOutbox::reopen(&path, 1 << 20);
            let sent: Vec<_> = o.peek(0, 10).unwrap().records.iter().map(|r| r.0).collect();
            assert_eq!(sent, vec![0]);
            o.delete(&sent).unwrap();
        }
        let (o, _) = SledOutbox::reopen(&path, 1 << 20);
        assert_eq!(o.append(&rec(Kind::Summary, 1)).unwrap().seq, Some(1));
    }

    #[test]
    fn the_cap_is_applied_on_append() {
        let dir = tempfile::tempdir().unwrap();
        let one = rec(Kind::Summary, 0).encoded_len() as u64;
        let (o, _) = SledOutbox::open(&dir.path().join("o"), one * 3, 0).unwrap();
        o.append(&rec(Kind::Alert, 0)).unwrap();
        o.append(&rec(Kind::Summary, 1)).unwrap();
        o.append(&rec(Kind::Summary, 2)).unwrap();
        let a = o.append(&rec(Kind::Summary, 3)).unwrap();
        assert_eq!(a.evicted, vec![(1, Kind::Summary)]);
        assert_eq!(o.count(Kind::Alert), 1);
        assert_eq!(o.depth().bytes, one * 3);
    }

    #[test]
    fn a_directory_of_garbage_is_moved_aside_and_a_fresh_outbox_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("conf"), b"\x00\xffnot a sled config").unwrap();
        std::fs::write(path.join("db"), vec![0xa5u8; 4096]).unwrap();
        let (o, opened) = SledOutbox::open(&path, 1 << 20, 1234).unwrap();
        match opened {
            Opened::MovedAside { moved_to, .. } => {
                assert_eq!(moved_to, dir.path().join("outbox.corrupt-1234"));
                assert!(moved_to.join("db").exists());
            }
            other => panic!("expected the outbox to be moved aside, got {other:?}"),
        }
        o.append(&rec(Kind::Alert, 0)).unwrap();
        o.flush().unwrap();
        assert_eq!(o.peek(0, 1).unwrap().records.len(), 1);
    }

    #[test]
    fn a_file_where_the_directory_should_be_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox");
        std::fs::write(&path, b"oops").unwrap();
        let (_, opened) = SledOutbox::open(&path, 1 << 20, 5).unwrap();
        assert!(matches!(opened, Opened::MovedAside { .. }), "{opened:?}");
        assert!(path.is_dir());
    }

    #[test]
    fn an_outbox_in_use_is_an_error_not_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox");
        let (_held, _) = SledOutbox::open(&path, 1 << 20, 0).unwrap();
        // sled's lock is per process (fcntl), so a second open in this process may succeed;
        // what must never happen is the live outbox being renamed away.
        let _ = SledOutbox::open(&path, 1 << 20, 0);
        assert!(path.is_dir());
        assert!(!dir.path().join("outbox.corrupt-0").exists());
    }
}
