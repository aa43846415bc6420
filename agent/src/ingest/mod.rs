//! Sources: serial ports and an MQTT broker, each feeding decoded frames into one bounded
//! channel towards the pipeline.
//!
//! Every source is a thin driver around the sans-IO decoder of `edgewatch-protocol`:
//! read bytes, decode, hand frames on. Malformed input is counted per source and reason
//! (`edgewatch_frames_rejected_total{source,reason}`) and never stops a source. The channel's
//! when-full policy is named in the configuration ([`WhenFull`]).

pub mod config;
pub mod credentials;
pub mod mqtt;
pub mod serial;

use crate::clock::Clock;
use crate::ops::events::{Event, FrameRejected};
use crate::queue::WhenFull;
use edgewatch_protocol::{DecodeError, Frame};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A decoded frame and where and when it arrived.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// Where the frame came from: `serial:/dev/ttyUSB0`, or `mqtt:<topic>` (the records'
    /// `lineage.source`).
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
    clock: Clock,
}

/// The pipeline's input has closed: the agent is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline has stopped")]
pub struct Closed;

impl IngestSender {
    /// Wraps a channel; `received_ms` is the agent time of `clock`.
    pub fn new(tx: mpsc::Sender<Ingest>, policy: WhenFull, clock: Clock) -> Self {
        Self { tx, policy, clock }
    }

    fn ingest(&self, source: &Arc<str>, origin: &Arc<str>, frame: Frame) -> Ingest {
        metrics::counter!("edgewatch_frames_received_total", "source" => source.to_string())
            .increment(1);
        Ingest {
            source: origin.clone(),
            frame,
            received_ms: self.clock.now_ms(),
        }
    }

    /// Sends from async code, waiting or dropping as the policy says.
    pub async fn send(&self, source: &Arc<str>, frame: Frame) -> Result<(), Closed> {
        self.send_from(source, source, frame).await
    }

    /// Like [`Self::send`] for a source whose frames come from several places (`origin`, e.g.
    /// the MQTT topic); metrics stay per `source`.
    pub async fn send_from(
        &self,
        source: &Arc<str>,
        origin: &Arc<str>,
        frame: Frame,
    ) -> Result<(), Closed> {
        let item = self.ingest(source, origin, frame);
        match self.policy {
            WhenFull::Block => self.tx.send(item).await.map_err(|_| Closed),
            WhenFull::DropNewest => self.try_or_drop(source, item),
        }
    }

    /// Sends from a blocking thread (serial readers), waiting or dropping as the policy says.
    pub fn blocking_send(&self, source: &Arc<str>, frame: Frame) -> Result<(), Closed> {
        let item = self.ingest(source, source, frame);
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
    FrameRejected {
        source,
        reason: reject_reason(e),
        error: e,
    }
    .emit();
}
