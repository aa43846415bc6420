//! Sources: serial ports and an MQTT broker, each feeding decoded frames into one bounded
//! channel towards the pipeline.
//!
//! Every source is a thin driver around the sans-IO decoder of `edgewatch-protocol`:
//! read bytes, decode, hand frames on. Malformed input is counted per source and reason
//! (`edgewatch_frames_rejected_total{source,reason}`) and never stops a source. The channel's
//! when-full policy is named in the configuration ([`WhenFull`]).

pub mod mqtt;
pub mod serial;

use crate::config::WhenFull;
use edgewatch_protocol::{DecodeError, Frame};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// A decoded frame and where and when it arrived.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// Source name, e.g. `serial:/dev/ttyUSB0` or `mqtt`.
    pub source: Arc<str>,
    /// The frame.
    pub frame: Frame,
    /// Arrival time, ms since the agent started (monotonic).
    pub received_ms: u64,
}

/// The sending side shared by sources: applies the when-full policy and counts.
#[derive(Debug, Clone)]
pub struct IngestSender {
    tx: mpsc::Sender<Ingest>,
    policy: WhenFull,
    epoch: Instant,
}

/// The pipeline's input has closed: the agent is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline has stopped")]
pub struct Closed;

impl IngestSender {
    /// Wraps a channel; `epoch` is the agent's start, the origin of `received_ms`.
    pub fn new(tx: mpsc::Sender<Ingest>, policy: WhenFull, epoch: Instant) -> Self {
        Self { tx, policy, epoch }
    }

    fn ingest(&self, source: &Arc<str>, frame: Frame) -> Ingest {
        metrics::counter!("edgewatch_frames_received_total", "source" => source.to_string())
            .increment(1);
        Ingest {
            source: source.clone(),
            frame,
            received_ms: self.epoch.elapsed().as_millis() as u64,
        }
    }

    /// Sends from async code, waiting or dropping as the policy says.
    pub async fn send(&self, source: &Arc<str>, frame: Frame) -> Result<(), Closed> {
        let item = self.ingest(source, frame);
        match self.policy {
            WhenFull::Block => self.tx.send(item).await.map_err(|_| Closed),
            WhenFull::DropNewest => self.try_or_drop(source, item),
        }
    }

    /// Sends from a blocking thread (serial readers), waiting or dropping as the policy says.
    pub fn blocking_send(&self, source: &Arc<str>, frame: Frame) -> Result<(), Closed> {
        let item = self.ingest(source, frame);
        match self.policy {
            WhenFull::Block => self.tx.blocking_send(item).map_err(|_| Closed),
            WhenFull::DropNewest => self.try_or_drop(source, item),
        }
    }

    fn try_or_drop(&self, source: &Arc<str>, item: Ingest) -> Result<(), Closed> {
        match self.tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("edgewatch_frames_dropped_total", "source" => source.to_string(), "reason" => "channel_full")
                    .increment(1);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Closed),
        }
    }

    /// Whether the pipeline has stopped taking frames.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The metric label for a decode error.
pub fn reject_reason(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::Oversize => "oversize",
        DecodeError::Stuffing => "stuffing",
        DecodeError::Truncated { .. } => "truncated",
        DecodeError::TrailingBytes { .. } => "trailing_bytes",
        DecodeError::Crc { .. } => "crc",
        DecodeError::UnknownVersion(_) => "unknown_version",
        DecodeError::UnknownKind(_) => "unknown_kind",
        DecodeError::Payload(_) => "payload",
    }
}

/// Counts a rejected frame or chunk.
pub fn count_reject(source: &str, e: &DecodeError) {
    metrics::counter!("edgewatch_frames_rejected_total", "source" => source.to_string(), "reason" => reject_reason(e))
        .increment(1);
    tracing::debug!(source, error = %e, "rejected malformed input");
}

/// Exponential backoff with full jitter: the n-th delay is uniform in `[min, min·2^n]`, capped
/// at `max`. Pure apart from the random draw, which the caller supplies.
#[derive(Debug, Clone)]
pub struct Backoff {
    min_ms: u64,
    max_ms: u64,
    attempt: u32,
}

impl Backoff {
    /// A backoff between `min_ms` and `max_ms`.
    pub fn new(min_ms: u64, max_ms: u64) -> Self {
        Self {
            min_ms: min_ms.max(1),
            max_ms: max_ms.max(min_ms.max(1)),
            attempt: 0,
        }
    }

    /// The next delay in ms; `unit` is a random number in `[0, 1)`.
    pub fn next_delay_ms(&mut self, unit: f64) -> u64 {
        let ceiling = self
            .min_ms
            .saturating_mul(1u64 << self.attempt.min(30))
            .min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        self.min_ms + ((ceiling - self.min_ms) as f64 * unit.clamp(0.0, 1.0)) as u64
    }

    /// Back to the shortest delay, after a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut b = Backoff::new(100, 1000);
        let highs: Vec<u64> = (0..6).map(|_| b.next_delay_ms(0.999_999)).collect();
        assert_eq!(highs, [99 + 1, 199, 399, 799, 999, 999]);
        b.reset();
        assert_eq!(b.next_delay_ms(0.0), 100);
    }

    #[test]
    fn jitter_spreads_delays_between_min_and_ceiling() {
        let mut b = Backoff::new(100, 10_000);
        b.next_delay_ms(0.5);
        b.next_delay_ms(0.5);
        // Third attempt: ceiling 400.
        assert_eq!(b.next_delay_ms(0.0), 100);
        let mut c = Backoff::new(100, 10_000);
        c.next_delay_ms(0.5);
        c.next_delay_ms(0.5);
        assert_eq!(c.next_delay_ms(0.5), 250);
    }
}
