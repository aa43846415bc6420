//! Typed internal events: each is one struct that both logs and counts, so a log line and its
//! metric cannot drift apart, and a reader finds every event the agent reports in one place.
//!
//! A stage builds the event where it happens and calls [`Event::emit`]. Fields are plain values
//! (ids, reasons, errors as text), so this module depends on no stage.

use std::fmt::Display;

/// Something the agent reports: a log line and a metric.
pub trait Event {
    /// Logs and counts the event.
    fn emit(&self);
}

/// Malformed input from a source, skipped: `edgewatch_frames_rejected_total{source,reason}`,
/// logged at debug (a noisy line must not flood the journal).
#[derive(Debug)]
pub struct FrameRejected<'a, E: Display> {
    /// The source (serial device or `mqtt`).
    pub source: &'a str,
    /// A stable reason label (`crc`, `truncated`, …).
    pub reason: &'static str,
    /// The decoder's error.
    pub error: &'a E,
}

impl<E: Display> Event for FrameRejected<'_, E> {
    fn emit(&self) {
        metrics::counter!("edgewatch_frames_rejected_total", "source" => self.source.to_string(), "reason" => self.reason)
            .increment(1);
        tracing::debug!(source = self.source, error = %self.error, "rejected malformed input");
    }
}

/// A source lost its device or broker and reconnects after `retry_ms`:
/// `edgewatch_source_reconnects_total{source}`, logged as a warning.
#[derive(Debug)]
pub struct SourceLost<'a, E: Display> {
    /// The source (serial device or `mqtt`).
    pub source: &'a str,
    /// Why.
    pub error: &'a E,
    /// The wait before the next attempt, ms, when known.
    pub retry_ms: Option<u64>,
}

impl<E: Display> Event for SourceLost<'_, E> {
    fn emit(&self) {
        metrics::counter!("edgewatch_source_reconnects_total", "source" => self.source.to_string())
            .increment(1);
        match self.retry_ms {
            Some(retry_ms) => {
                tracing::warn!(source = self.source, error = %self.error, retry_ms, "source lost; reconnecting")
            }
            None => {
                tracing::warn!(source = self.source, error = %self.error, "source lost; reconnecting")
            }
        }
    }
}

/// Why a window was not analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// No feature extractor can be made for the window's sample rate (a configuration
    /// problem: logged as an error).
    UnsupportedRate,
    /// Feature extraction refused the window.
    FeatureError,
}

impl DropReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnsupportedRate => "unsupported_rate",
            Self::FeatureError => "feature_error",
        }
    }
}

/// A window not analysed: `edgewatch_windows_dropped_total{reason}`.
#[derive(Debug)]
pub struct WindowDropped<'a, E: Display> {
    /// Why.
    pub reason: DropReason,
    /// The asset the window is from.
    pub asset: &'a str,
    /// The window's sample rate, Hz.
    pub sample_rate_hz: f64,
    /// The error.
    pub error: &'a E,
}

impl<E: Display> Event for WindowDropped<'_, E> {
    fn emit(&self) {
        metrics::counter!("edgewatch_windows_dropped_total", "reason" => self.reason.as_str())
            .increment(1);
        match self.reason {
            DropReason::UnsupportedRate => tracing::error!(
                asset = self.asset,
                error = %self.error,
                sample_rate_hz = self.sample_rate_hz,
                "cannot analyse windows at this rate"
            ),
            DropReason::FeatureError => {
                tracing::warn!(asset = self.asset, error = %self.error, "window not analysed")
            }
        }
    }
}

/// An alert raised, escalated, changed or cleared:
/// `edgewatch_alert_events_total{transition}`, logged as a warning.
#[derive(Debug)]
pub struct AlertTransition<'a> {
    /// The alert's id.
    pub id: &'a str,
    /// The asset.
    pub asset: &'a str,
    /// `raised`, `escalated`, `cleared`, … (the metric label).
    pub transition: &'a str,
    /// The alert's level after the transition.
    pub level: &'a dyn std::fmt::Debug,
    /// What kind of finding.
    pub kind: &'a str,
    /// Why, in words.
    pub reason: &'a str,
}

impl Event for AlertTransition<'_> {
    fn emit(&self) {
        metrics::counter!("edgewatch_alert_events_total", "transition" => self.transition.to_string())
            .increment(1);
        tracing::warn!(
            id = self.id,
            asset = self.asset,
            transition = self.transition,
            level = ?self.level,
            kind = self.kind,
            reason = self.reason,
            "alert"
        );
    }
}
