//! Forwarding the outbox to Kafka.
//!
//! A thin async loop around [`window::SendWindow`] (which records are with the producer, where
//! to resume after a failure), [`pace::Throttle`] (the sending-rate cap) and
//! [`crate::backoff::Backoff`].
//! The producer is rdkafka's `FutureProducer` with `enable.idempotence=true` and `acks=all`, so
//! librdkafka itself retries in order and without duplicates while the connection comes and
//! goes; the key is the asset id, so each asset's records share a partition and keep their
//! order.
//!
//! - A record is deleted from the outbox only on a successful delivery report.
//! - A failed report (retriable, or a message timeout if one is configured) stops sending,
//!   waits for everything in flight, and resends from the oldest failed record after a backoff.
//! - A record the broker rejects for what it is (too large, invalid) is dropped and counted as
//!   `rejected`: it would block the outbox forever otherwise.
//! - A fatal producer error (the idempotent producer's fatal state) drops the producer, creates
//!   a new one, and resends everything not acknowledged, from the outbox, in order.
//! - After a restart the cursor starts at the first record in the outbox: records that were
//!   delivered but not yet deleted are sent again with the same `record_id`.
//!
//! Shutdown: after `stop` the loop keeps sending and collecting reports until the outbox is
//! empty and nothing is in flight, at most [`SHUTDOWN_GRACE`]; anything unacknowledged stays
//! in the outbox for the next start.

pub mod config;
pub mod pace;
pub mod window;

pub use config::KafkaConfig;

use crate::backoff::Backoff;
use crate::outbox::{Kind, Outbox, Seq, count_drop};
use pace::Throttle;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use window::{Phase, SendWindow};

/// How long the forwarder keeps sending after it was told to stop.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Kafka header carrying the record's outbox sequence (8 bytes, big-endian): lets a consumer
/// check per-agent completeness and order. Not part of the message schema.
pub const SEQ_HEADER: &str = "edgewatch-seq";

/// What the window remembers about a record in flight.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    kind: Kind,
    at: Instant,
    created_unix_ms: u64,
    bytes: u64,
}

type Report = (Seq, Result<(), KafkaError>);

/// How a failed delivery is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The broker will never take this record: drop it (counted).
    Reject,
    /// Try again after a backoff.
    Retry,
}

/// Sorts a delivery error.
pub fn classify(e: &KafkaError) -> Verdict {
    match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord,
        ) => Verdict::Reject,
        _ => Verdict::Retry,
    }
}

fn create_producer(cfg: &KafkaConfig) -> Result<FutureProducer, String> {
    let config = cfg.client_config().map_err(|p| {
        p.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    config.create().map_err(|e| e.to_string())
}

/// Runs the forwarder until `stop` is cancelled. `flushed` is notified when new records became
/// durable.
pub async fn run(
    cfg: KafkaConfig,
    outbox: Arc<dyn Outbox>,
    flushed: Arc<Notify>,
    stop: CancellationToken,
    clock: crate::clock::Clock,
) {
    let now_ms = || clock.now_ms();
    let mut window: SendWindow<Sent> = SendWindow::new(cfg.max_in_flight);
    let mut throttle = Throttle::new(cfg.replay_records_per_s, cfg.replay_bytes_per_s);
    let mut backoff = Backoff::new(cfg.retry_min_ms, cfg.retry_max_ms);
    let mut reports: JoinSet<Report> = JoinSet::new();
    let mut producer: Option<FutureProducer> = None;
    let mut recreate = false;
    let topics = [Kind::Alert, Kind::Summary, Kind::Health].map(|k| (k, cfg.topic(k)));
    let topic = |k: Kind| {
        topics
            .iter()
            .find(|(t, _)| *t == k)
            .map(|(_, n)| n.as_str())
    };
    tracing::info!(brokers = %cfg.brokers.join(","), prefix = %cfg.topic_prefix, "kafka forwarder started");

    // After `stop`: keep sending until nothing is left or the grace period ends.
    let mut stopping: Option<Instant> = None;
    let mut idle = false;
    loop {
        if let Some(deadline) = stopping
            && ((idle && window.in_flight() == 0) || Instant::now() >= deadline)
        {
            break;
        }
        if producer.is_none() || recreate {
            if recreate {
                // Only reached when nothing the old producer holds can still be reported.
                if let Some(old) = producer.take() {
                    let _ = tokio::task::spawn_blocking(move || drop(old)).await;
                }
                recreate = false;
                metrics::counter!("edgewatch_kafka_producer_recreated_total").increment(1);
            }
            match create_producer(&cfg) {
                Ok(p) => producer = Some(p),
                Err(e) => {
                    tracing::error!(error = %e, "cannot create the Kafka producer; retrying");
                    let wait = backoff.next_delay_ms(rand::random());
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(wait)) => continue,
                    }
                }
            }
        }
        let Some(p) = producer.as_ref() else { continue };

        // Hand over as many durable records as the window and the rate cap allow.
        let mut wake: Option<u64> = None;
        let mut room = window.room(now_ms());
        idle = room > 0;
        while room > 0 {
            let peeked = match outbox.peek(window.cursor(), room.min(256)) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    wake = Some(1000);
                    break;
                }
            };
            for _ in &peeked.corrupt {
                count_drop(Kind::Summary, "corrupt");
            }
            if peeked.records.is_empty() {
                break;
            }
            idle = false;
            let mut blocked = false;
            for (seq, record) in peeked.records {
                if let Err(wait) = throttle.take(now_ms(), record.payload.len() as u64) {
                    wake = Some(wait);
                    blocked = true;
                    break;
                }
                let Some(topic) = topic(record.kind) else {
                    continue;
                };
                let seq_bytes = seq.to_be_bytes();
                let fr = FutureRecord::to(topic)
                    .key(record.key.as_bytes())
                    .payload(record.payload.as_slice())
                    .headers(OwnedHeaders::new().insert(Header {
                        key: SEQ_HEADER,
                        value: Some(&seq_bytes[..]),
                    }));
                let sent = Sent {
                    kind: record.kind,
                    at: Instant::now(),
                    created_unix_ms: record.created_unix_ms,
                    bytes: record.payload.len() as u64,
                };
                match p.send_result(fr) {
                    Ok(delivery) => {
                        window.sent(seq, sent);
                        reports.spawn(async move {
                            let r = match delivery.await {
                                Ok(Ok(_)) => Ok(()),
                                Ok(Err((e, _))) => Err(e),
                                Err(_) => Err(KafkaError::Canceled),
                            };
                            (seq, r)
                        });
                        room -= 1;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // librdkafka's queue is full: poll and try this record again shortly.
                        wake = Some(50);
                        blocked = true;
                        break;
                    }
                    Err((e, _)) => {
                        tracing::warn!(seq, error = %e, "the producer refused a record");
                        metrics::counter!("edgewatch_kafka_retries_total").increment(1);
                        window.sent(seq, sent);
                        window.failed(seq);
                        blocked = true;
                        break;
                    }
                }
            }
            if blocked {
                break;
            }
        }
        metrics::gauge!("edgewatch_kafka_in_flight").set(window.in_flight() as f64);
        if let Some(from) = window.settle(now_ms(), 0) {
            let fatal = p.client().fatal_error();
            let wait = backoff.next_delay_ms(rand::random());
            if let Some((code, reason)) = fatal {
                tracing::error!(?code, %reason, "fatal producer error: recreating the producer and resending from the outbox");
                recreate = true;
            } else {
                tracing::warn!(
                    from,
                    wait_ms = wait,
                    "delivery failed; resending from the outbox after a backoff"
                );
            }
            window.reset(now_ms(), wait);
            continue;
        }
        if let Phase::Waiting { until_ms } = window.phase() {
            let left = until_ms.saturating_sub(now_ms()).max(1);
            wake = Some(wake.map_or(left, |w| w.min(left)));
        }

        let idle_wait = if stopping.is_some() { 50 } else { 1000 };
        let sleep = tokio::time::sleep(Duration::from_millis(wake.unwrap_or(idle_wait)));
        tokio::select! {
            _ = stop.cancelled(), if stopping.is_none() => {
                stopping = Some(Instant::now() + SHUTDOWN_GRACE);
            }
            Some(joined) = reports.join_next(), if !reports.is_empty() => {
                let Ok(report) = joined else { continue };
                let mut acked = Vec::new();
                handle(report, &mut window, &mut backoff, &mut acked);
                while let Some(Ok(report)) = reports.try_join_next() {
                    handle(report, &mut window, &mut backoff, &mut acked);
                }
                if let Err(e) = outbox.delete(&acked) {
                    tracing::error!(error = %e, "cannot delete acknowledged records (they will be sent again)");
                }
            }
            _ = flushed.notified() => {}
            _ = sleep => {}
        }
    }

    let _ = outbox.flush();
    reports.abort_all();
    // Dropping a producer purges its queue and waits up to 500 ms: not on a runtime thread.
    if let Some(p) = producer.take() {
        let _ = tokio::task::spawn_blocking(move || drop(p)).await;
    }
    tracing::info!(
        left_in_flight = window.in_flight(),
        "kafka forwarder stopped"
    );
}

fn handle(
    (seq, result): Report,
    window: &mut SendWindow<Sent>,
    backoff: &mut Backoff,
    acked: &mut Vec<Seq>,
) {
    match result {
        Ok(()) => {
            if let Some(s) = window.acked(seq) {
                backoff.reset();
                acked.push(seq);
                metrics::counter!("edgewatch_kafka_delivered_total", "kind" => s.kind.as_str())
                    .increment(1);
                metrics::counter!("edgewatch_kafka_delivered_bytes_total").increment(s.bytes);
                metrics::histogram!("edgewatch_kafka_delivery_seconds")
                    .record(s.at.elapsed().as_secs_f64());
                let age = crate::outbox::unix_ms().saturating_sub(s.created_unix_ms);
                metrics::histogram!("edgewatch_kafka_record_age_seconds")
                    .record(age as f64 / 1000.0);
            }
        }
        Err(e) => match classify(&e) {
            Verdict::Reject => {
                if let Some(s) = window.forget(seq) {
                    tracing::error!(seq, error = %e, kind = s.kind.as_str(), "the broker rejected a record; dropped");
                    count_drop(s.kind, "rejected");
                    acked.push(seq);
                }
            }
            Verdict::Retry => {
                if window.failed(seq).is_some() {
                    metrics::counter!("edgewatch_kafka_retries_total").increment(1);
                    tracing::debug!(seq, error = %e, "delivery failed; will resend");
                }
            }
        },
    }
}
