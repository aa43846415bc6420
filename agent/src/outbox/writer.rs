//! The outbox writer: a dedicated thread that appends records from a bounded channel, flushes
//! alerts at once and everything else within the flush interval, and wakes the forwarder after
//! every flush (only flushed records are sent).
//!
//! A sender that must know when its record is on disk ([`WriterSender::send_durable`], the
//! feedback consumer: it commits a command's offset only then) gets an answer after the flush
//! that made it durable; such a record is flushed at once, like an alert.
//!
//! Shutdown: when every sender is dropped, the writer appends what is queued, flushes (deletes
//! included, so a clean restart sends nothing twice), and ends.

use super::record::Kind;
use super::{Outbox, Record, count_drop, publish_gauges};
use crate::clock::{Clock, Stopwatch};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;
use tokio::sync::Notify;

/// The writer's bounded input queue. A plain thread channel: the writer waits on it with a
/// timeout (its flush deadline) without an async runtime. When full, the sender decides
/// (the reporter: summaries and heartbeats are dropped and counted, an alert
/// waits up to 5 s).
pub fn queue(capacity: usize) -> (WriterSender, Receiver<Queued>) {
    let (tx, rx) = sync_channel(capacity.max(1));
    (WriterSender(tx), rx)
}

/// A record in the writer's queue, and whom to tell once it is durable.
#[derive(Debug)]
pub struct Queued {
    record: Record,
    /// Told `true` after the flush that made the record durable, `false` if it was not stored
    /// (storage error, refused by the cap).
    durable: Option<std::sync::mpsc::Sender<bool>>,
}

/// The sending side of [`queue`].
#[derive(Debug, Clone)]
pub struct WriterSender(SyncSender<Queued>);

/// Why a record was not queued.
#[derive(Debug)]
pub enum QueueError {
    /// The queue is full; the record is handed back.
    Full(Record),
    /// The writer has stopped.
    Closed,
}

impl WriterSender {
    /// Queues `record` if there is room, without waiting.
    pub fn try_send(&self, record: Record) -> Result<(), QueueError> {
        self.0
            .try_send(Queued {
                record,
                durable: None,
            })
            .map_err(|e| match e {
                TrySendError::Full(q) => QueueError::Full(q.record),
                TrySendError::Disconnected(_) => QueueError::Closed,
            })
    }

    /// Queues `record` (waiting for room) and blocks until it is on disk, at most `timeout`
    /// after it was queued. True once it is durable; false if it was not stored, the writer
    /// stopped, or the time ran out. For threads outside the async runtime only.
    pub fn send_durable(&self, record: Record, timeout: Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        let queued = Queued {
            record,
            durable: Some(tx),
        };
        if self.0.send(queued).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).unwrap_or(false)
    }
}

/// When to flush. Pure: time (ms of any monotonic clock) is an input.
#[derive(Debug, Clone)]
pub struct FlushPolicy {
    interval_ms: u64,
    dirty_since: Option<u64>,
}

impl FlushPolicy {
    /// Flush at most `interval_ms` after the first unflushed change.
    pub fn new(interval_ms: u64) -> Self {
        Self {
            interval_ms,
            dirty_since: None,
        }
    }

    /// Notes an unflushed change at `now`; returns true when it must be flushed at once.
    pub fn changed(&mut self, kind: Option<Kind>, now: u64) -> bool {
        self.dirty_since.get_or_insert(now);
        kind == Some(Kind::Alert) || self.interval_ms == 0
    }

    /// Whether the oldest unflushed change has waited its interval.
    pub fn due(&self, now: u64) -> bool {
        self.dirty_since
            .is_some_and(|t| now >= t.saturating_add(self.interval_ms))
    }

    /// How long to wait for input before checking again.
    pub fn wait_ms(&self, now: u64) -> u64 {
        match self.dirty_since {
            Some(t) => t.saturating_add(self.interval_ms).saturating_sub(now),
            None => self.interval_ms.clamp(10, 250),
        }
    }

    /// Notes a completed flush.
    pub fn flushed(&mut self) {
        self.dirty_since = None;
    }
}

/// Starts the writer thread. `flushed` is notified after every successful flush.
pub fn spawn(
    outbox: Arc<dyn Outbox>,
    flush_interval_ms: u64,
    rx: Receiver<Queued>,
    flushed: Arc<Notify>,
    clock: Clock,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("outbox-writer".into())
        .spawn(move || {
            let now = || clock.now_ms();
            let mut policy = FlushPolicy::new(flush_interval_ms);
            let mut gauges_at = 0;
            // Senders waiting for the next flush.
            let mut waiting: Vec<std::sync::mpsc::Sender<bool>> = Vec::new();
            loop {
                let wait = Duration::from_millis(policy.wait_ms(now()).max(1));
                let got = rx.recv_timeout(wait);
                let closed = matches!(got, Err(RecvTimeoutError::Disconnected));
                let mut urgent = !waiting.is_empty();
                let mut take = |q: Queued, urgent: &mut bool| {
                    let stored = append(&*outbox, &q.record, &mut policy, now());
                    *urgent |= stored == Some(true);
                    if let Some(tx) = q.durable {
                        if stored.is_some() {
                            *urgent = true;
                            waiting.push(tx);
                        } else {
                            let _ = tx.send(false);
                        }
                    }
                };
                if let Ok(q) = got {
                    take(q, &mut urgent);
                    // Take whatever else is queued before deciding to flush.
                    while let Ok(q) = rx.try_recv() {
                        take(q, &mut urgent);
                    }
                }
                if outbox.dirty() {
                    policy.changed(None, now());
                }
                if (urgent || policy.due(now()) || closed) && flush(&*outbox, &mut policy, &flushed)
                {
                    for tx in waiting.drain(..) {
                        // The sender may have given up waiting.
                        let _ = tx.send(true);
                    }
                }
                if closed {
                    break;
                }
                if now() >= gauges_at {
                    publish_gauges(&*outbox, clock.unix_ms());
                    gauges_at = now() + 500;
                }
            }
            publish_gauges(&*outbox, clock.unix_ms());
            tracing::info!(
                records = outbox.depth().records,
                "outbox writer flushed and stopped"
            );
        })
}

/// Flushes; true when it succeeded.
fn flush(outbox: &dyn Outbox, policy: &mut FlushPolicy, flushed: &Notify) -> bool {
    let started = Stopwatch::start();
    match outbox.flush() {
        Ok(()) => {
            policy.flushed();
            metrics::histogram!("edgewatch_outbox_flush_seconds")
                .record(started.elapsed().as_secs_f64());
            flushed.notify_one();
            true
        }
        Err(e) => {
            metrics::counter!("edgewatch_outbox_errors_total", "op" => "flush").increment(1);
            tracing::error!(error = %e, "outbox flush failed; retrying");
            false
        }
    }
}

/// Appends one record and counts what happened: `None` when it was not stored, else whether it
/// must be flushed at once.
fn append(
    outbox: &dyn Outbox,
    record: &Record,
    policy: &mut FlushPolicy,
    now: u64,
) -> Option<bool> {
    match outbox.append(record) {
        Ok(a) => {
            for (_, kind) in &a.evicted {
                count_drop(*kind, "cap_evicted");
            }
            if a.seq.is_none() {
                count_drop(record.kind, "cap_refused");
                return None;
            }
            metrics::counter!("edgewatch_outbox_appended_total", "kind" => record.kind.as_str())
                .increment(1);
            Some(policy.changed(Some(record.kind), now))
        }
        Err(e) => {
            count_drop(record.kind, "storage");
            tracing::error!(error = %e, kind = record.kind.as_str(), "record not stored");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_flushed_at_once_and_summaries_wait_for_the_interval() {
        let mut p = FlushPolicy::new(1000);
        assert!(!p.changed(Some(Kind::Summary), 100));
        assert!(!p.due(1099));
        assert_eq!(p.wait_ms(600), 500);
        assert!(p.due(1100));
        assert!(p.changed(Some(Kind::Alert), 1100));
        p.flushed();
        assert!(!p.due(5000));
    }

    #[test]
    fn a_durable_send_returns_once_its_record_is_flushed_even_with_a_long_interval() {
        let outbox = Arc::new(crate::outbox::MemoryOutbox::new(1 << 20));
        let (tx, rx) = queue(4);
        let writer = spawn(
            outbox.clone(),
            60_000,
            rx,
            Arc::new(Notify::new()),
            Clock::start(),
        )
        .unwrap();
        let rec = |kind| Record {
            kind,
            created_unix_ms: 1,
            key: "gw".into(),
            payload: b"{}".to_vec(),
        };
        tx.try_send(rec(Kind::Summary)).unwrap();
        assert!(tx.send_durable(rec(Kind::CommandStatus), Duration::from_secs(10)));
        // Durable: peek only returns records below the flushed watermark, both are there.
        let peeked = outbox.peek(0, 10).unwrap();
        assert_eq!(peeked.records.len(), 2);
        assert_eq!(peeked.records[1].1.kind, Kind::CommandStatus);
        drop(tx);
        writer.join().unwrap();
    }

    #[test]
    fn a_zero_interval_flushes_every_append() {
        let mut p = FlushPolicy::new(0);
        assert!(p.changed(Some(Kind::Summary), 0));
        assert!(p.changed(Some(Kind::Health), 0));
    }

    #[test]
    fn the_oldest_change_sets_the_deadline() {
        let mut p = FlushPolicy::new(1000);
        p.changed(None, 0);
        p.changed(Some(Kind::Summary), 900);
        assert!(p.due(1000));
    }
}
