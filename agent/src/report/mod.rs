//! Reporting: from window reports to the outbox writer. Alerts, per-sensor feature summaries
//! ([`summary`]) and heartbeats become Kafka messages ([`message`]) wrapped in records.
//!
//! Never blocks ingest indefinitely: when the writer's queue is full, summaries and heartbeats
//! are dropped (counted as `queue_full`) and an alert waits at most [`ALERT_WAIT`].

pub mod message;
pub mod summary;

#[cfg(test)]
mod cross_module_tests;

use crate::analyze::WindowReport;
use crate::clock::Now;
use crate::outbox::writer::{QueueError, WriterSender};
use crate::outbox::{Kind, Record, count_drop};
use message::Heartbeat;
use std::time::Duration;
use summary::Summarizer;

/// Longest time an alert waits for room in the writer's queue.
pub const ALERT_WAIT: Duration = Duration::from_secs(5);

/// Turns pipeline output into records for the writer.
#[derive(Debug)]
pub struct Reporter {
    agent_id: String,
    summarizer: Summarizer,
    tx: WriterSender,
}

impl Reporter {
    /// A reporter sending to the writer through `tx`.
    pub fn new(agent_id: String, summary_interval_ms: u64, tx: WriterSender) -> Self {
        Self {
            agent_id,
            summarizer: Summarizer::new(summary_interval_ms),
            tx,
        }
    }

    /// One window report at `now` (agent time for the summary intervals, wall time stamped
    /// into the records).
    pub async fn on_report(&mut self, r: &WindowReport, now: Now) {
        if let Some(event) = &r.alert {
            let rec = message::alert_record(
                &self.agent_id,
                &message::new_record_id(),
                event,
                now.unix_ms,
            );
            self.send(rec).await;
        }
        for s in self.summarizer.push(r, now.ms) {
            let rec =
                message::summary_record(&self.agent_id, &message::new_record_id(), &s, now.unix_ms);
            self.send(rec).await;
        }
    }

    /// Closes the summaries whose interval ended at `now`.
    pub async fn poll(&mut self, now: Now) {
        for s in self.summarizer.poll(now.ms) {
            let rec =
                message::summary_record(&self.agent_id, &message::new_record_id(), &s, now.unix_ms);
            self.send(rec).await;
        }
    }

    /// Sends a heartbeat made at `now`.
    pub async fn heartbeat(&mut self, h: &Heartbeat, now: Now) {
        let rec = message::health_record(&self.agent_id, &message::new_record_id(), h, now.unix_ms);
        self.send(rec).await;
    }

    /// Sends a model lifecycle event made at `now` (waits for room like an alert: the
    /// central side's record of which agent ran which model depends on each one).
    pub async fn model_status(&mut self, e: &crate::analyze::lifecycle::Event, now: Now) {
        let rec =
            message::model_status_record(&self.agent_id, &message::new_record_id(), e, now.unix_ms);
        self.send(rec).await;
    }

    /// At shutdown (`now`): sends the open summaries and closes the writer's queue.
    pub async fn finish(mut self, now: Now) {
        for s in self.summarizer.drain() {
            let rec =
                message::summary_record(&self.agent_id, &message::new_record_id(), &s, now.unix_ms);
            self.send(rec).await;
        }
    }

    async fn send(&mut self, rec: Record) {
        let kind = rec.kind;
        match self.tx.try_send(rec) {
            Ok(()) => {}
            Err(QueueError::Full(rec)) if matches!(kind, Kind::Alert | Kind::ModelStatus) => {
                if !self.wait_for_room(rec).await {
                    tracing::error!("the outbox writer is stuck: alert dropped");
                    count_drop(kind, "queue_full");
                }
            }
            Err(QueueError::Full(_)) => count_drop(kind, "queue_full"),
            Err(QueueError::Closed) => count_drop(kind, "closed"),
        }
    }

    /// Retries an alert every [`RETRY`] until the writer takes it, at most [`ALERT_WAIT`];
    /// false if it never did. Only while the writer's queue is full, which a healthy writer
    /// (appends take microseconds) never lets last.
    async fn wait_for_room(&mut self, mut rec: Record) -> bool {
        const RETRY: Duration = Duration::from_millis(5);
        let mut waited = Duration::ZERO;
        while waited < ALERT_WAIT {
            tokio::time::sleep(RETRY).await;
            waited += RETRY;
            match self.tx.try_send(rec) {
                Ok(()) => return true,
                Err(QueueError::Full(r)) => rec = r,
                Err(QueueError::Closed) => return false,
            }
        }
        false
    }
}
