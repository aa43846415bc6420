//! Liveness of the pipeline, for `/health` and (on systemd) watchdog pings.
//!
//! Stages stamp their progress into atomics; [`Health::report`] turns the stamps into a verdict
//! at a given time. The assembler ticks every 50 ms even without input, so a stale stamp means a
//! stuck task, not an idle sensor.

use crate::clock::Clock;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// How old the assembler's stamp may be before the pipeline counts as stalled.
pub const STALL_AFTER_MS: u64 = 2_000;

/// Progress stamps of the pipeline stages.
#[derive(Debug)]
pub struct Health {
    clock: Clock,
    assembler_ms: AtomicU64,
    last_window_ms: AtomicU64,
    windows: AtomicU64,
    frames_assembled: AtomicU64,
    windows_cut: AtomicU64,
    reports_consumed: AtomicU64,
}

/// What the pipeline handled since start, logged at shutdown: after a clean drain every frame
/// the sources took was assembled, and every window cut was scored and consumed.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Throughput {
    /// Frames taken from the ingest channel by the assembler.
    pub frames_assembled: u64,
    /// Windows cut by the assembler.
    pub windows_cut: u64,
    /// Windows whose features were extracted.
    pub windows_scored: u64,
    /// Reports handed to the consumer.
    pub reports_consumed: u64,
}

/// The health verdict.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HealthReport {
    /// `ok` or `stalled`.
    pub status: &'static str,
    /// Age of the assembler's last tick, ms.
    pub assembler_age_ms: u64,
    /// Age of the last scored window, ms; `None` before the first.
    pub last_window_age_ms: Option<u64>,
    /// Windows scored since start.
    pub windows_scored: u64,
}

impl Health {
    /// Stamps in the agent time of `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            assembler_ms: AtomicU64::new(0),
            last_window_ms: AtomicU64::new(u64::MAX),
            windows: AtomicU64::new(0),
            frames_assembled: AtomicU64::new(0),
            windows_cut: AtomicU64::new(0),
            reports_consumed: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The assembler loop is turning.
    pub fn assembler_alive(&self) {
        self.assembler_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A window was scored.
    pub fn window_scored(&self) {
        self.last_window_ms.store(self.now_ms(), Ordering::Relaxed);
        self.windows.fetch_add(1, Ordering::Relaxed);
    }

    /// The assembler took a frame and cut `windows` windows from it.
    pub fn frame_assembled(&self, windows: u64) {
        self.frames_assembled.fetch_add(1, Ordering::Relaxed);
        self.windows_cut.fetch_add(windows, Ordering::Relaxed);
    }

    /// The assembler cut `windows` windows without a new frame (timeouts, flush).
    pub fn windows_cut(&self, windows: u64) {
        self.windows_cut.fetch_add(windows, Ordering::Relaxed);
    }

    /// The consumer received a report.
    pub fn report_consumed(&self) {
        self.reports_consumed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts since start.
    pub fn throughput(&self) -> Throughput {
        Throughput {
            frames_assembled: self.frames_assembled.load(Ordering::Relaxed),
            windows_cut: self.windows_cut.load(Ordering::Relaxed),
            windows_scored: self.windows_scored(),
            reports_consumed: self.reports_consumed.load(Ordering::Relaxed),
        }
    }

    /// Windows scored since start.
    pub fn windows_scored(&self) -> u64 {
        self.windows.load(Ordering::Relaxed)
    }

    /// The verdict at `now_ms` (ms since the epoch).
    pub fn report_at(&self, now_ms: u64) -> HealthReport {
        let assembler_age_ms = now_ms.saturating_sub(self.assembler_ms.load(Ordering::Relaxed));
        let last = self.last_window_ms.load(Ordering::Relaxed);
        HealthReport {
            status: if assembler_age_ms <= STALL_AFTER_MS {
                "ok"
            } else {
                "stalled"
            },
            assembler_age_ms,
            last_window_age_ms: (last != u64::MAX).then(|| now_ms.saturating_sub(last)),
            windows_scored: self.windows_scored(),
        }
    }

    /// The verdict now.
    pub fn report(&self) -> HealthReport {
        self.report_at(self.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_assembler_stamp_means_stalled() {
        let h = Health::new(Clock::start());
        h.assembler_ms.store(1_000, Ordering::Relaxed);
        assert_eq!(h.report_at(2_500).status, "ok");
        assert_eq!(h.report_at(3_001).status, "stalled");
        assert_eq!(h.report_at(3_001).last_window_age_ms, None);
        h.last_window_ms.store(2_000, Ordering::Relaxed);
        assert_eq!(h.report_at(2_500).last_window_age_ms, Some(500));
    }
}
