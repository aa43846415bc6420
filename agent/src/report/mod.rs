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

/// Per asset, the latest anomaly and drift scores as gauges (NaN while there is none).
fn set_asset_gauges(r: &WindowReport) {
    let a = &r.assessment;
    metrics::gauge!("edgewatch_anomaly_score", "asset" => r.asset.to_string())
        .set(a.anomaly.unwrap_or(f64::NAN));
    metrics::gauge!("edgewatch_drift_score", "asset" => r.asset.to_string())
        .set(a.drift.unwrap_or(f64::NAN));
}

/// Turns pipeline output into records for the writer.
#[derive(Debug)]
pub struct Reporter {
    origin: message::Origin,
    summarizer: Summarizer,
    tx: WriterSender,
}

impl Reporter {
    /// A reporter sending to the writer through `tx`, with a sample of at most
    /// `input_sample` windows' inputs per summary.
    pub fn new(
        origin: message::Origin,
        summary_interval_ms: u64,
        input_sample: usize,
        tx: WriterSender,
    ) -> Self {
        Self {
            origin,
            summarizer: Summarizer::new(summary_interval_ms).with_input_sample(input_sample),
            tx,
        }
    }

    /// One window report at `now` (agent time for the summary intervals, wall time stamped
    /// into the records).
    pub async fn on_report(&mut self, r: &WindowReport, now: Now) {
        if let Some(event) = &r.alert {
            let rec = message::alert_record(
                &self.origin,
                &message::new_record_id(),
                event,
                now.unix_ms,
                r.assessment.baseline_learned_us,
                Some(&r.source),
            );
            self.send(rec).await;
        }
        set_asset_gauges(r);
        for s in self.summarizer.push(r, now.ms) {
            self.send_summary(&s, now).await;
        }
    }

    /// Closes the summaries whose interval ended at `now`.
    pub async fn poll(&mut self, now: Now) {
        for s in self.summarizer.poll(now.ms) {
            self.send_summary(&s, now).await;
        }
    }

    /// Sends a heartbeat made at `now`.
    pub async fn heartbeat(&mut self, h: &Heartbeat, now: Now) {
        let rec = message::health_record(&self.origin, &message::new_record_id(), h, now.unix_ms);
        self.send(rec).await;
    }

    /// Sends a model lifecycle event made at `now` (waits for room like an alert: the
    /// central side's record of which agent ran which model depends on each one).
    pub async fn model_status(&mut self, e: &crate::analyze::lifecycle::Event, now: Now) {
        let rec =
            message::model_status_record(&self.origin, &message::new_record_id(), e, now.unix_ms);
        self.send(rec).await;
    }

    /// At shutdown (`now`): sends the open summaries and closes the writer's queue.
    pub async fn finish(mut self, now: Now) {
        for s in self.summarizer.drain() {
            self.send_summary(&s, now).await;
        }
    }

    async fn send_summary(&mut self, s: &summary::Summary, now: Now) {
        if let Some(d) = &s.input_drift {
            metrics::gauge!("edgewatch_input_psi", "asset" => s.asset.clone()).set(d.psi_max);
        }
        let rec = message::summary_record(&self.origin, &message::new_record_id(), s, now.unix_ms);
        self.send(rec).await;
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
