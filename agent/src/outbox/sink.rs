//! From the pipeline to the outbox writer: alerts, summaries and heartbeats become records.
//!
//! Never blocks ingest indefinitely: when the writer's queue is full, summaries and heartbeats
//! are dropped (counted as `queue_full`) and an alert waits at most [`ALERT_WAIT`].

use super::message::{self, Heartbeat};
use super::summary::Summarizer;
use super::{Record, count_drop, unix_ms};
use crate::outbox::Kind;
use crate::pipeline::WindowReport;
use std::time::Duration;
use tokio::sync::mpsc;

/// Longest time an alert waits for room in the writer's queue.
pub const ALERT_WAIT: Duration = Duration::from_secs(5);

/// Turns pipeline output into records for the writer.
#[derive(Debug)]
pub struct Sink {
    agent_id: String,
    summarizer: Summarizer,
    tx: mpsc::Sender<Record>,
}

impl Sink {
    /// A sink sending to the writer through `tx`.
    pub fn new(agent_id: String, summary_interval_ms: u64, tx: mpsc::Sender<Record>) -> Self {
        Self {
            agent_id,
            summarizer: Summarizer::new(summary_interval_ms),
            tx,
        }
    }

    /// One window report at agent time `now_ms`.
    pub async fn on_report(&mut self, r: &WindowReport, now_ms: u64) {
        if let Some(event) = &r.alert {
            let rec =
                message::alert_record(&self.agent_id, &message::new_record_id(), event, unix_ms());
            self.send(rec).await;
        }
        for s in self.summarizer.push(r, now_ms) {
            let rec =
                message::summary_record(&self.agent_id, &message::new_record_id(), &s, unix_ms());
            self.send(rec).await;
        }
    }

    /// Closes the summaries whose interval ended at `now_ms`.
    pub async fn poll(&mut self, now_ms: u64) {
        for s in self.summarizer.poll(now_ms) {
            let rec =
                message::summary_record(&self.agent_id, &message::new_record_id(), &s, unix_ms());
            self.send(rec).await;
        }
    }

    /// Sends a heartbeat.
    pub async fn heartbeat(&mut self, h: &Heartbeat) {
        let rec = message::health_record(&self.agent_id, &message::new_record_id(), h, unix_ms());
        self.send(rec).await;
    }

    /// At shutdown: sends the open summaries and closes the writer's queue.
    pub async fn finish(mut self) {
        for s in self.summarizer.drain() {
            let rec =
                message::summary_record(&self.agent_id, &message::new_record_id(), &s, unix_ms());
            self.send(rec).await;
        }
    }

    async fn send(&mut self, rec: Record) {
        let kind = rec.kind;
        match self.tx.try_send(rec) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(rec)) if kind == Kind::Alert => {
                if self.tx.send_timeout(rec, ALERT_WAIT).await.is_err() {
                    tracing::error!("the outbox writer is stuck: alert dropped");
                    count_drop(kind, "queue_full");
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => count_drop(kind, "queue_full"),
            Err(mpsc::error::TrySendError::Closed(_)) => count_drop(kind, "closed"),
        }
    }
}
