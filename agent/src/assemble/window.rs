//! Cuts one sensor's in-order vibration blocks into fixed-length, overlapping windows per axis.
//!
//! Invariant: a window holds only samples that were contiguous at the sensor. Continuity is
//! checked on every block: its timestamp must follow the previous block's end (within half a
//! sample period plus a small clock tolerance), and its sample rate and axis count must not
//! change. On a break (a sequence gap reported by the [`crate::assemble::sequencer`], a timestamp jump, a
//! rate or axis change, a sensor restart) the partial window is dropped and counted, never
//! stitched to what follows.

use edgewatch_protocol::VibrationBlock;
use serde::{Deserialize, Serialize};

/// Window length and overlap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Samples per axis in a window (a power of two is fastest for the FFTs).
    #[serde(default = "WindowConfig::default_length")]
    pub length: usize,
    /// Fraction of a window shared with the next one, 0 to 0.9.
    #[serde(default = "WindowConfig::default_overlap")]
    pub overlap: f64,
}

impl WindowConfig {
    /// 8192 samples: 0.64 s at 12.8 kHz, enough resolution (1.6 Hz) to separate bearing lines.
    pub const fn default_length() -> usize {
        8192
    }

    /// 0.5.
    pub const fn default_overlap() -> f64 {
        0.5
    }

    /// Samples between the starts of two windows (at least 1).
    pub fn hop(&self) -> usize {
        ((self.length as f64 * (1.0 - self.overlap)).round() as usize).clamp(1, self.length)
    }
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            length: Self::default_length(),
            overlap: Self::default_overlap(),
        }
    }
}

/// One window of one axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Sensor id.
    pub sensor_id: u32,
    /// Axis index (0 radial horizontal, 1 radial vertical, 2 axial).
    pub axis: u8,
    /// Sensor timestamp of the first sample, µs.
    pub start_us: u64,
    /// Sensor timestamp just after the last sample, µs.
    pub end_us: u64,
    /// Sample rate in Hz.
    pub sample_rate_hz: f64,
    /// Acceleration in g.
    pub samples: Vec<f32>,
}

/// Why a partial window was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// Frames were lost (sequence gap).
    Gap,
    /// The block's timestamp does not follow the previous block.
    TimestampJump,
    /// The sample rate or the number of axes changed.
    FormatChange,
    /// The sensor restarted.
    Restart,
}

/// Counters of one assembler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Windows emitted (per axis).
    pub windows: u64,
    /// Partial windows dropped at a break, by any cause.
    pub dropped: u64,
    /// Breaks by cause: gap, timestamp jump, format change, restart.
    pub gaps: u64,
    /// See [`Break::TimestampJump`].
    pub timestamp_jumps: u64,
    /// See [`Break::FormatChange`].
    pub format_changes: u64,
    /// See [`Break::Restart`].
    pub restarts: u64,
}

/// Assembles windows for one sensor.
#[derive(Debug)]
pub struct WindowAssembler {
    cfg: WindowConfig,
    sensor_id: u32,
    /// Per axis, samples not yet emitted (front = oldest).
    buf: Vec<Vec<f32>>,
    /// Timestamp of `buf[..][0]`.
    buf_start_us: f64,
    /// Expected timestamp of the next block; None before the first block or after a break.
    next_us: Option<f64>,
    sample_rate_hz: f64,
    axes: u8,
    stats: WindowStats,
}

/// Allowed disagreement between a block's timestamp and the expected one, beyond half a sample.
const CLOCK_TOLERANCE_US: f64 = 50.0;

impl WindowAssembler {
    /// An assembler for `sensor_id`.
    pub fn new(sensor_id: u32, cfg: WindowConfig) -> Self {
        Self {
            cfg,
            sensor_id,
            buf: Vec::new(),
            buf_start_us: 0.0,
            next_us: None,
            sample_rate_hz: 0.0,
            axes: 0,
            stats: WindowStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> WindowStats {
        self.stats
    }

    /// Records a break: the partial window (if any) is dropped.
    pub fn interrupt(&mut self, why: Break) {
        let had_samples = self.buf.iter().any(|b| !b.is_empty());
        if had_samples {
            self.stats.dropped += 1;
        }
        match why {
            Break::Gap => self.stats.gaps += 1,
            Break::TimestampJump => self.stats.timestamp_jumps += 1,
            Break::FormatChange => self.stats.format_changes += 1,
            Break::Restart => self.stats.restarts += 1,
        }
        for b in &mut self.buf {
            b.clear();
        }
        self.next_us = None;
    }

    /// Adds the next in-order block stamped `timestamp_us`; appends completed windows to `out`.
    pub fn push(&mut self, timestamp_us: u64, block: &VibrationBlock, out: &mut Vec<Window>) {
        let rate = f64::from(block.sample_rate_hz);
        if self.axes != 0 && (block.axes != self.axes || rate != self.sample_rate_hz) {
            self.interrupt(Break::FormatChange);
        }
        self.axes = block.axes;
        self.sample_rate_hz = rate;
        let ts = timestamp_us as f64;
        if let Some(next) = self.next_us {
            let tolerance = 0.5e6 / rate + CLOCK_TOLERANCE_US;
            if (ts - next).abs() > tolerance {
                self.interrupt(Break::TimestampJump);
            }
        }
        if self.buf.len() != usize::from(block.axes) {
            self.buf = vec![Vec::with_capacity(self.cfg.length * 2); usize::from(block.axes)];
        }
        if self.buf[0].is_empty() {
            self.buf_start_us = ts;
        }
        for axis in 0..block.axes {
            self.buf[usize::from(axis)].extend(block.axis_g(axis));
        }
        let n = block.samples_per_axis();
        self.next_us = Some(ts + n as f64 * 1e6 / rate);
        let hop = self.cfg.hop();
        let us_per_sample = 1e6 / rate;
        while self.buf[0].len() >= self.cfg.length {
            let start_us = self.buf_start_us.round() as u64;
            let end_us =
                (self.buf_start_us + self.cfg.length as f64 * us_per_sample).round() as u64;
            for (axis, b) in self.buf.iter_mut().enumerate() {
                out.push(Window {
                    sensor_id: self.sensor_id,
                    axis: axis as u8,
                    start_us,
                    end_us,
                    sample_rate_hz: rate,
                    samples: b[..self.cfg.length].to_vec(),
                });
                b.drain(..hop);
                self.stats.windows += 1;
            }
            self.buf_start_us += hop as f64 * us_per_sample;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgewatch_protocol::heapless;

    /// Block `k` of a ramp: sample i of the stream has value i (scale 1).
    fn block(k: usize, n: usize, axes: u8, rate: f32) -> (u64, VibrationBlock) {
        let samples: Vec<i16> = (0..n * usize::from(axes))
            .map(|i| ((k * n + i / usize::from(axes)) % 30000) as i16)
            .collect();
        let ts = (k as f64 * n as f64 * 1e6 / f64::from(rate)).round() as u64;
        (
            ts,
            VibrationBlock {
                sample_rate_hz: rate,
                axes,
                scale_g_per_lsb: 1.0,
                samples: heapless::Vec::from_slice(&samples).unwrap(),
            },
        )
    }

    fn cfg(length: usize, overlap: f64) -> WindowConfig {
        WindowConfig { length, overlap }
    }

    #[test]
    fn contiguous_blocks_make_overlapping_windows_of_contiguous_samples() {
        let mut w = WindowAssembler::new(1, cfg(1000, 0.5));
        let mut out = Vec::new();
        for k in 0..20 {
            let (ts, b) = block(k, 256, 1, 12800.0);
            w.push(ts, &b, &mut out);
        }
        // 5120 samples, windows of 1000 every 500: starts 0, 500, ..., 4000 => 9 windows.
        assert_eq!(out.len(), 9);
        for (i, win) in out.iter().enumerate() {
            let first = i * 500;
            assert_eq!(win.samples[0], first as f32);
            assert!(win.samples.windows(2).all(|p| p[1] - p[0] == 1.0));
            assert_eq!(win.start_us, (first as f64 * 1e6 / 12800.0).round() as u64);
        }
    }

    #[test]
    fn every_axis_gets_its_own_window() {
        let mut w = WindowAssembler::new(1, cfg(512, 0.0));
        let mut out = Vec::new();
        for k in 0..4 {
            let (ts, b) = block(k, 128, 3, 12800.0);
            w.push(ts, &b, &mut out);
        }
        assert_eq!(out.len(), 3);
        assert_eq!(out.iter().map(|w| w.axis).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn a_gap_drops_the_partial_window_instead_of_stitching() {
        let mut w = WindowAssembler::new(1, cfg(1024, 0.0));
        let mut out = Vec::new();
        for k in 0..3 {
            let (ts, b) = block(k, 256, 1, 12800.0);
            w.push(ts, &b, &mut out);
        }
        w.interrupt(Break::Gap);
        for k in 4..8 {
            let (ts, b) = block(k, 256, 1, 12800.0);
            w.push(ts, &b, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].samples[0], 1024.0, "the window starts after the gap");
        assert_eq!(w.stats().dropped, 1);
        assert_eq!(w.stats().gaps, 1);
    }

    #[test]
    fn a_timestamp_jump_is_a_break() {
        let mut w = WindowAssembler::new(1, cfg(1024, 0.0));
        let mut out = Vec::new();
        for k in [0, 1, 2, 10, 11, 12, 13] {
            let (ts, b) = block(k, 256, 1, 12800.0);
            w.push(ts, &b, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].samples[0], 2560.0);
        assert_eq!(w.stats().timestamp_jumps, 1);
    }

    #[test]
    fn a_sample_rate_change_is_a_break() {
        let mut w = WindowAssembler::new(1, cfg(1024, 0.0));
        let mut out = Vec::new();
        for k in 0..3 {
            let (ts, b) = block(k, 256, 1, 12800.0);
            w.push(ts, &b, &mut out);
        }
        let (ts, b) = block(3, 256, 1, 25600.0);
        w.push(ts, &b, &mut out);
        assert!(out.is_empty());
        assert_eq!(w.stats().format_changes, 1);
        assert_eq!(w.stats().dropped, 1);
    }

    #[test]
    fn the_hop_follows_the_overlap() {
        assert_eq!(cfg(1000, 0.5).hop(), 500);
        assert_eq!(cfg(1000, 0.0).hop(), 1000);
        assert_eq!(cfg(1000, 0.9).hop(), 100);
    }
}
