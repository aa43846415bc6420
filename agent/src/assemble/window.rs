//! Cuts one sensor's in-order vibration blocks into overlapping windows per axis.
//!
//! # Window size
//!
//! `[window]` sizes windows by physics, not by sample count, so that sensors of any sample rate
//! get comparable evidence (the same number of bearing impacts, the same envelope-spectrum
//! resolution): a duration (`duration_s`, the default, 1 s), a number of revolutions of the
//! sensor's asset's shaft (`revolutions`), or, for compatibility and tests, a fixed sample
//! count (`length`). At most one of the three is given ([`WindowConfig::problems`]).
//!
//! A sensor's sample count is fixed when its sample rate is known, at its first block, and
//! computed again after a format change ([`WindowConfig::length_for`]): the smallest
//! FFT-friendly even count (2^a·3^b·5^c, a ≥ 1) of at least `ceil(duration × sample rate)`,
//! clamped to [`MIN_WINDOW_LEN`]..=[`MAX_WINDOW_LEN`]. A fixed `length` is used as given.
//!
//! # Invariant
//!
//! A window holds only samples that were contiguous at the sensor. Continuity is checked on
//! every block: its timestamp must follow the previous block's end (within half a sample period
//! plus a small clock tolerance), and its sample rate and axis count must not change. On a break
//! (a sequence gap reported by the [`crate::assemble::sequencer`], a timestamp jump, a rate or
//! axis change, a sensor restart) the partial window is dropped and counted, never stitched to
//! what follows.
//!
//! # Snapshot (burst) sensors
//!
//! Blocks flagged as a burst ([`edgewatch_protocol::BlockFlags`]) are cut burst by burst. The
//! silence between two bursts is expected: the timestamp jump at a burst's first block is not a
//! break. A burst at least a window long is cut into windows like a stream; a shorter one is
//! analysed whole, as one window of its own length (rounded down to an even count), when its last
//! block arrives. A burst with a break inside it, or one the assembler joined after its first
//! block, is dropped and counted ([`WindowStats::bursts_incomplete`]); one shorter than
//! [`MIN_WINDOW_LEN`] cannot be analysed and is counted too ([`WindowStats::bursts_short`]).

use edgewatch_protocol::VibrationBlock;
use serde::{Deserialize, Serialize};

use crate::field::FieldError;

/// Shortest window, samples: the feature extractor's `MIN_WINDOW_LEN` (the configuration
/// checks at compile time that the two agree; this stage does not name the analysis stage).
pub const MIN_WINDOW_LEN: usize = 256;

/// Longest window, samples (2^16: 1.34 s at 48.8 kHz, 2.56 s at 25.6 kHz, 5.46 s at 12 kHz).
///
/// The cap bounds memory on a gateway: per sensor the assembler holds up to a window plus a
/// block per axis (f32: 256 KiB per axis at the cap), every window queued for analysis is
/// 256 KiB (a full `[pipeline] window_capacity` of 256 would be 64 MiB), and the analysis
/// stage keeps one feature extractor per (window length, sample rate), about 8 MiB at this
/// length. When it bites, windows are shorter than asked (65536 samples, whatever the duration
/// or revolutions), which the assembler logs for each sensor when it sizes its windows.
pub const MAX_WINDOW_LEN: usize = 65_536;

/// How long a window is: exactly one of these (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WindowSize {
    /// Seconds of signal.
    DurationS(f64),
    /// Revolutions of the asset's shaft at its nominal speed.
    Revolutions(f64),
    /// A fixed number of samples per axis, whatever the sample rate.
    Length(usize),
}

impl std::fmt::Display for WindowSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DurationS(s) => write!(f, "duration_s = {s}"),
            Self::Revolutions(r) => write!(f, "revolutions = {r}"),
            Self::Length(n) => write!(f, "length = {n}"),
        }
    }
}

/// `[window]`: window size and overlap. The size is one of `duration_s`, `revolutions` and
/// `length`, as in the TOML (none given: [`WindowConfig::DEFAULT_DURATION_S`]); giving more
/// than one is refused by [`WindowConfig::problems`] (which `Config::validate` runs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Seconds of signal per window, above 0 and at most 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Revolutions of the sensor's asset's shaft (`[[asset]] shaft_rpm`) per window, above 0
    /// and at most 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revolutions: Option<f64>,
    /// Samples per axis in a window, whatever the sample rate: even, 256 to 65536.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    /// Fraction of a window shared with the next one, 0 to 0.9.
    #[serde(default = "WindowConfig::default_overlap")]
    pub overlap: f64,
}

impl WindowConfig {
    /// The window's duration when no size is given: 1 s (12 000 samples at 12 kHz, 49 152 at
    /// 48.8 kHz): 1 Hz envelope-spectrum resolution and some 90 outer-race impacts at 1500
    /// rpm, whatever the sensor.
    pub const DEFAULT_DURATION_S: f64 = 1.0;

    /// Windows of `duration_s` seconds, half overlap.
    pub const fn from_duration_s(duration_s: f64) -> Self {
        Self {
            duration_s: Some(duration_s),
            revolutions: None,
            length: None,
            overlap: Self::default_overlap(),
        }
    }

    /// Windows of `revolutions` shaft revolutions, half overlap.
    pub const fn from_revolutions(revolutions: f64) -> Self {
        Self {
            duration_s: None,
            revolutions: Some(revolutions),
            length: None,
            overlap: Self::default_overlap(),
        }
    }

    /// Windows of a fixed `length` samples, half overlap.
    pub const fn from_length(length: usize) -> Self {
        Self {
            duration_s: None,
            revolutions: None,
            length: Some(length),
            overlap: Self::default_overlap(),
        }
    }

    /// The same size with another overlap.
    pub const fn with_overlap(self, overlap: f64) -> Self {
        Self { overlap, ..self }
    }

    /// 0.5.
    pub const fn default_overlap() -> f64 {
        0.5
    }

    /// The configured size; none given: [`Self::DEFAULT_DURATION_S`]. Should several be given
    /// (which [`Self::problems`] refuses), the first of `duration_s`, `revolutions`, `length`.
    pub fn size(&self) -> WindowSize {
        match (self.duration_s, self.revolutions, self.length) {
            (Some(s), _, _) => WindowSize::DurationS(s),
            (None, Some(r), _) => WindowSize::Revolutions(r),
            (None, None, Some(n)) => WindowSize::Length(n),
            (None, None, None) => WindowSize::DurationS(Self::DEFAULT_DURATION_S),
        }
    }

    /// The window's duration for a shaft turning at `shaft_hz`, s; `None` for a fixed length
    /// (its duration depends on the sample rate) and for revolutions without a shaft speed.
    pub fn duration_for(&self, shaft_hz: Option<f64>) -> Option<f64> {
        match self.size() {
            WindowSize::DurationS(s) => Some(s),
            WindowSize::Revolutions(r) => shaft_hz
                .filter(|hz| hz.is_finite() && *hz > 0.0)
                .map(|hz| r / hz),
            WindowSize::Length(_) => None,
        }
    }

    /// Samples the size asks for at `sample_rate_hz` (for a shaft at `shaft_hz`), before
    /// rounding up to an FFT-friendly count and clamping: `duration × rate`, or the fixed length.
    /// Revolutions without a shaft speed count as [`Self::DEFAULT_DURATION_S`] (the agent always
    /// knows it: every sensor is on an asset with a `shaft_rpm`).
    pub fn wanted_samples(&self, sample_rate_hz: f64, shaft_hz: Option<f64>) -> f64 {
        match self.size() {
            WindowSize::Length(n) => n as f64,
            _ => {
                let duration_s = self
                    .duration_for(shaft_hz)
                    .unwrap_or(Self::DEFAULT_DURATION_S);
                duration_s * sample_rate_hz
            }
        }
    }

    /// Samples per axis of a window at `sample_rate_hz`, for a shaft at `shaft_hz`: a fixed
    /// `length` as given; otherwise the smallest FFT-friendly even count (2^a·3^b·5^c, a ≥ 1)
    /// of at least `ceil(duration × sample_rate_hz)`, clamped to
    /// [`MIN_WINDOW_LEN`]..=[`MAX_WINDOW_LEN`]. Pure: 12 kHz and 1 s give 12 000, 48.8 kHz
    /// and 1 s give 49 152.
    pub fn length_for(&self, sample_rate_hz: f64, shaft_hz: Option<f64>) -> usize {
        if let WindowSize::Length(n) = self.size() {
            return n;
        }
        // A millionth of a sample is floating-point noise (0.1 s × 12 kHz), not a sample more.
        let wanted = (self.wanted_samples(sample_rate_hz, shaft_hz) - 1e-6).ceil();
        // NaN (a rate of 0 times an infinite duration) lands on the minimum.
        if wanted.is_nan() || wanted <= MIN_WINDOW_LEN as f64 {
            return MIN_WINDOW_LEN;
        }
        if wanted >= MAX_WINDOW_LEN as f64 {
            return MAX_WINDOW_LEN;
        }
        fft_friendly_at_least(wanted as usize).min(MAX_WINDOW_LEN)
    }

    /// Samples between the starts of two windows of `length` samples (at least 1).
    pub fn hop_for(&self, length: usize) -> usize {
        ((length as f64 * (1.0 - self.overlap)).round() as usize).clamp(1, length.max(1))
    }

    /// What is wrong with these values, each naming its field (`window.duration_s`, ...).
    pub fn problems(&self) -> Vec<FieldError> {
        let mut p = Vec::new();
        let given: Vec<&str> = [
            ("duration_s", self.duration_s.is_some()),
            ("revolutions", self.revolutions.is_some()),
            ("length", self.length.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        // The first one given stands; each further one is the error, named.
        for extra in given.iter().skip(1) {
            p.push(FieldError::new(
                format!("window.{extra}"),
                format!(
                    "give one of duration_s, revolutions and length, not several ({} is also \
                     set)",
                    given[0]
                ),
            ));
        }
        if let Some(s) = self.duration_s
            && !(s.is_finite() && s > 0.0 && s <= 60.0)
        {
            p.push(FieldError::new(
                "window.duration_s",
                format!("{s} s is not above 0 and at most 60"),
            ));
        }
        if let Some(r) = self.revolutions
            && !(r.is_finite() && r > 0.0 && r <= 1000.0)
        {
            p.push(FieldError::new(
                "window.revolutions",
                format!("{r} revolutions is not above 0 and at most 1000"),
            ));
        }
        if let Some(n) = self.length
            && !((MIN_WINDOW_LEN..=MAX_WINDOW_LEN).contains(&n) && n.is_multiple_of(2))
        {
            p.push(FieldError::new(
                "window.length",
                format!(
                    "{n} samples is not an even number between {MIN_WINDOW_LEN} and \
                     {MAX_WINDOW_LEN}"
                ),
            ));
        }
        if !(0.0..=0.9).contains(&self.overlap) {
            p.push(FieldError::new(
                "window.overlap",
                format!("{} is not between 0 and 0.9", self.overlap),
            ));
        }
        p
    }
}

impl Default for WindowConfig {
    /// 1 s windows (no size given), half overlap.
    fn default() -> Self {
        Self {
            duration_s: None,
            revolutions: None,
            length: None,
            overlap: Self::default_overlap(),
        }
    }
}

/// The smallest even number of the form 2^a·3^b·5^c (a ≥ 1) that is at least `n`: FFT lengths
/// rustfft and realfft split into radix-2, -3 and -5 passes, never into slow large primes; even,
/// as the feature extractor requires.
fn fft_friendly_at_least(n: usize) -> usize {
    let n = n.max(2);
    let mut best = n.next_power_of_two();
    let mut p5 = 1usize;
    while p5 < best {
        let mut p35 = p5;
        while p35 < best {
            let mut x = p35 * 2;
            while x < n {
                x *= 2;
            }
            best = best.min(x);
            p35 *= 3;
        }
        p5 *= 5;
    }
    best
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
    /// Bursts received whole (snapshot sensors).
    pub bursts: u64,
    /// Bursts dropped because a break cut them or their start was never seen.
    pub bursts_incomplete: u64,
    /// Whole bursts too short to analyse (fewer than [`MIN_WINDOW_LEN`] samples).
    pub bursts_short: u64,
}

/// Assembles windows for one sensor.
#[derive(Debug)]
pub struct WindowAssembler {
    cfg: WindowConfig,
    /// Shaft speed of the sensor's asset, Hz (for windows sized in revolutions).
    shaft_hz: Option<f64>,
    sensor_id: u32,
    /// Samples per axis in a window at the current sample rate; 0 before the first block.
    len: usize,
    /// Samples between window starts at that length.
    hop: usize,
    /// Per axis, samples not yet emitted (front = oldest).
    buf: Vec<Vec<f32>>,
    /// Timestamp of `buf[..][0]`.
    buf_start_us: f64,
    /// Expected timestamp of the next block; None before the first block or after a break.
    next_us: Option<f64>,
    sample_rate_hz: f64,
    axes: u8,
    stats: WindowStats,
    /// Inside a burst whose first block was seen and that has not been broken.
    in_burst: bool,
    /// A window has already been cut from the current burst.
    burst_cut: bool,
    /// Passing over the rest of a burst already counted as incomplete.
    skipping_burst: bool,
}

/// Allowed disagreement between a block's timestamp and the expected one, beyond half a sample.
const CLOCK_TOLERANCE_US: f64 = 50.0;

impl WindowAssembler {
    /// An assembler for `sensor_id`; windows sized in revolutions need
    /// [`Self::with_shaft_hz`].
    pub fn new(sensor_id: u32, cfg: WindowConfig) -> Self {
        Self {
            cfg,
            shaft_hz: None,
            sensor_id,
            len: 0,
            hop: 1,
            buf: Vec::new(),
            buf_start_us: 0.0,
            next_us: None,
            sample_rate_hz: 0.0,
            axes: 0,
            stats: WindowStats::default(),
            in_burst: false,
            burst_cut: false,
            skipping_burst: false,
        }
    }

    /// The same assembler for a sensor on a shaft turning at `shaft_hz` (its asset's nominal
    /// speed), which sizes windows given in revolutions.
    pub fn with_shaft_hz(mut self, shaft_hz: Option<f64>) -> Self {
        self.shaft_hz = shaft_hz;
        self
    }

    /// Counters so far.
    pub fn stats(&self) -> WindowStats {
        self.stats
    }

    /// Samples per axis in this sensor's windows, once its sample rate is known (first block).
    pub fn window_len(&self) -> Option<usize> {
        (self.len > 0).then_some(self.len)
    }

    /// The sample rate windows are cut at, Hz, once known.
    pub fn sample_rate_hz(&self) -> Option<f64> {
        (self.axes > 0).then_some(self.sample_rate_hz)
    }

    /// Records a break: the partial window (if any) is dropped.
    pub fn interrupt(&mut self, why: Break) {
        let had_samples = self.buf.iter().any(|b| !b.is_empty());
        if had_samples {
            self.stats.dropped += 1;
        }
        if std::mem::take(&mut self.in_burst) {
            self.stats.bursts_incomplete += 1;
            self.skipping_burst = true;
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
        let format_changed = block.axes != self.axes || rate != self.sample_rate_hz;
        if self.axes != 0 && format_changed {
            self.interrupt(Break::FormatChange);
        }
        if self.len == 0 || format_changed {
            // The first block or a new format: size the windows for this rate.
            self.len = self.cfg.length_for(rate, self.shaft_hz);
            self.hop = self.cfg.hop_for(self.len);
            let capacity = self.len + edgewatch_protocol::MAX_VIBRATION_SAMPLES;
            self.buf = vec![Vec::with_capacity(capacity); usize::from(block.axes)];
        }
        self.axes = block.axes;
        self.sample_rate_hz = rate;
        let ts = timestamp_us as f64;
        let flags = block.flags;
        if flags.is_burst() {
            if flags.starts_burst() {
                if self.in_burst {
                    // The previous burst never ended (its last block was not marked).
                    self.interrupt(Break::TimestampJump);
                }
                for b in &mut self.buf {
                    b.clear();
                }
                // The silence before a burst is expected: no continuity to check.
                self.next_us = None;
                self.in_burst = true;
                self.burst_cut = false;
                self.skipping_burst = false;
            } else if !self.in_burst {
                // The rest of a burst whose start was never seen (counted once) or that broke
                // (counted when it broke).
                if !self.skipping_burst {
                    self.stats.bursts_incomplete += 1;
                }
                self.skipping_burst = !flags.ends_burst();
                return;
            }
        } else if self.in_burst {
            // A burst sensor that went over to streaming in the middle of a burst.
            self.interrupt(Break::FormatChange);
        }
        if let Some(next) = self.next_us {
            let tolerance = 0.5e6 / rate + CLOCK_TOLERANCE_US;
            if (ts - next).abs() > tolerance {
                self.interrupt(Break::TimestampJump);
            }
        }
        if self.buf[0].is_empty() {
            self.buf_start_us = ts;
        }
        for axis in 0..block.axes {
            self.buf[usize::from(axis)].extend(block.axis_g(axis));
        }
        let n = block.samples_per_axis();
        self.next_us = Some(ts + n as f64 * 1e6 / rate);
        let (len, hop) = (self.len, self.hop);
        let us_per_sample = 1e6 / rate;
        while self.buf[0].len() >= len {
            let start_us = self.buf_start_us.round() as u64;
            let end_us = (self.buf_start_us + len as f64 * us_per_sample).round() as u64;
            for (axis, b) in self.buf.iter_mut().enumerate() {
                out.push(Window {
                    sensor_id: self.sensor_id,
                    axis: axis as u8,
                    start_us,
                    end_us,
                    sample_rate_hz: rate,
                    samples: b[..len].to_vec(),
                });
                b.drain(..hop);
                self.stats.windows += 1;
            }
            self.buf_start_us += hop as f64 * us_per_sample;
            self.burst_cut = true;
        }
        if flags.is_burst() && flags.ends_burst() && self.in_burst {
            self.end_burst(rate, out);
        }
    }

    /// At a burst's last block: a burst no window was cut from is one window of its own length.
    fn end_burst(&mut self, rate: f64, out: &mut Vec<Window>) {
        self.in_burst = false;
        self.next_us = None;
        self.stats.bursts += 1;
        // Even, as the feature extractor requires.
        let n = self.buf[0].len() & !1;
        if !self.burst_cut {
            if n >= MIN_WINDOW_LEN {
                let start_us = self.buf_start_us.round() as u64;
                let end_us = (self.buf_start_us + n as f64 * 1e6 / rate).round() as u64;
                for (axis, b) in self.buf.iter().enumerate() {
                    out.push(Window {
                        sensor_id: self.sensor_id,
                        axis: axis as u8,
                        start_us,
                        end_us,
                        sample_rate_hz: rate,
                        samples: b[..n].to_vec(),
                    });
                    self.stats.windows += 1;
                }
            } else {
                self.stats.bursts_short += 1;
                self.stats.dropped += 1;
            }
        }
        for b in &mut self.buf {
            b.clear();
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
                flags: edgewatch_protocol::BlockFlags::CONTINUOUS,
                sample_rate_hz: rate,
                axes,
                scale_g_per_lsb: 1.0,
                samples: heapless::Vec::from_slice(&samples).unwrap(),
            },
        )
    }

    fn cfg(length: usize, overlap: f64) -> WindowConfig {
        WindowConfig::from_length(length).with_overlap(overlap)
    }

    /// Whether `n` is even and has no prime factor above 5.
    fn fft_friendly(mut n: usize) -> bool {
        if n == 0 || !n.is_multiple_of(2) {
            return false;
        }
        for p in [2, 3, 5] {
            while n.is_multiple_of(p) {
                n /= p;
            }
        }
        n == 1
    }

    #[test]
    fn one_second_is_the_default_and_fits_common_sample_rates_exactly() {
        let one_s = WindowConfig::default();
        assert_eq!(one_s.size(), WindowSize::DurationS(1.0));
        assert_eq!(one_s.overlap, 0.5);
        assert_eq!(one_s.length_for(12_000.0, None), 12_000);
        assert_eq!(one_s.length_for(20_000.0, None), 20_000);
        assert_eq!(one_s.length_for(25_600.0, None), 25_600);
        assert_eq!(one_s.length_for(12_800.0, None), 12_800);
        // 48 800 = 2^5 · 5^2 · 61: the next FFT-friendly count is 2^14 · 3.
        assert_eq!(one_s.length_for(48_800.0, None), 49_152);
        assert_eq!(
            WindowConfig::from_duration_s(1.0).length_for(48_800.0, None),
            49_152
        );
    }

    #[test]
    fn a_duration_rounds_up_to_the_next_fft_friendly_even_count() {
        for (duration_s, rate, expected) in [
            (0.5, 12_000.0, 6_000),
            // 0.1 s × 12 kHz is 1200.0000000000002 in floating point: still 1200.
            (0.1, 12_000.0, 1_200),
            // 7 001 samples: 7 200 = 2^5 · 3^2 · 5^2.
            (7_001.0 / 12_000.0, 12_000.0, 7_200),
            // 370 samples: 375 = 3 · 5^3 is odd, 384 = 2^7 · 3 is the answer.
            (370.0 / 10_000.0, 10_000.0, 384),
        ] {
            let n = WindowConfig::from_duration_s(duration_s).length_for(rate, None);
            assert_eq!(n, expected, "{duration_s} s at {rate} Hz");
        }
        // Every count between the bounds lands on the smallest FFT-friendly even count above.
        for wanted in (MIN_WINDOW_LEN..=MAX_WINDOW_LEN).step_by(97) {
            let n =
                WindowConfig::from_duration_s(wanted as f64 / 10_000.0).length_for(10_000.0, None);
            assert!(n >= wanted && fft_friendly(n), "{wanted} -> {n}");
            assert!(!(wanted..n).any(fft_friendly), "{wanted} -> {n}");
        }
    }

    #[test]
    fn the_window_length_is_capped_for_memory_and_floored_for_the_features() {
        // 2 s at 48.8 kHz would be 97 600 samples.
        assert_eq!(
            WindowConfig::from_duration_s(2.0).length_for(48_800.0, None),
            MAX_WINDOW_LEN
        );
        assert_eq!(
            WindowConfig::from_duration_s(60.0).length_for(100_000.0, None),
            MAX_WINDOW_LEN
        );
        // Just under the cap still rounds up onto it, never above.
        assert_eq!(
            WindowConfig::from_duration_s(65_000.0 / 48_800.0).length_for(48_800.0, None),
            MAX_WINDOW_LEN
        );
        // 1 ms at 12 kHz is 12 samples: too few for the feature extractor.
        assert_eq!(
            WindowConfig::from_duration_s(0.001).length_for(12_000.0, None),
            MIN_WINDOW_LEN
        );
        assert_eq!(
            WindowConfig::from_duration_s(1.0).length_for(0.0, None),
            MIN_WINDOW_LEN
        );
        assert_eq!(
            WindowConfig::from_duration_s(f64::INFINITY).length_for(0.0, None),
            MIN_WINDOW_LEN
        );
    }

    #[test]
    fn revolutions_follow_the_shaft_speed() {
        let thirty = WindowConfig::from_revolutions(30.0);
        // 30 revolutions at 1800 rpm (30 Hz) are 1 s.
        assert_eq!(thirty.duration_for(Some(30.0)), Some(1.0));
        assert_eq!(thirty.length_for(12_000.0, Some(30.0)), 12_000);
        // At 900 rpm they are 2 s; at 3600 rpm 0.5 s.
        assert_eq!(thirty.length_for(12_000.0, Some(15.0)), 24_000);
        assert_eq!(thirty.length_for(25_600.0, Some(60.0)), 12_800);
        // 20 revolutions at 1480 rpm: 0.8108 s, 9 730 samples at 12 kHz, rounded up to 10 000.
        assert_eq!(
            WindowConfig::from_revolutions(20.0).length_for(12_000.0, Some(1480.0 / 60.0)),
            10_000
        );
        // Slow shafts hit the cap: 100 revolutions at 60 rpm are 100 s.
        assert_eq!(
            WindowConfig::from_revolutions(100.0).length_for(12_000.0, Some(1.0)),
            MAX_WINDOW_LEN
        );
        // Without a known speed, the default duration.
        assert_eq!(thirty.duration_for(None), None);
        assert_eq!(thirty.length_for(12_000.0, None), 12_000);
    }

    #[test]
    fn a_fixed_length_is_used_as_given_whatever_the_rate() {
        let fixed = WindowConfig::from_length(8192);
        assert_eq!(fixed.size(), WindowSize::Length(8192));
        assert_eq!(fixed.length_for(12_000.0, None), 8192);
        assert_eq!(fixed.length_for(48_800.0, Some(25.0)), 8192);
        assert_eq!(fixed.duration_for(Some(25.0)), None);
    }

    #[test]
    fn the_toml_gives_at_most_one_size_and_names_each_extra_one() {
        let parse = |text: &str| toml::from_str::<WindowConfig>(text).unwrap();
        let fields = |w: WindowConfig| {
            w.problems()
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(parse(""), WindowConfig::default());
        assert_eq!(parse("duration_s = 2.5").size(), WindowSize::DurationS(2.5));
        assert_eq!(
            parse("revolutions = 40").size(),
            WindowSize::Revolutions(40.0)
        );
        assert_eq!(parse("length = 4096").size(), WindowSize::Length(4096));
        assert!(
            parse("duration_s = 2.5\noverlap = 0.75")
                .problems()
                .is_empty()
        );
        assert_eq!(
            fields(parse("duration_s = 1.0\nlength = 8192")),
            ["window.length"]
        );
        assert_eq!(
            fields(parse("revolutions = 10\nlength = 8192")),
            ["window.length"]
        );
        assert_eq!(
            fields(parse("duration_s = 1\nrevolutions = 10\nlength = 8192")),
            ["window.revolutions", "window.length"]
        );
        let e = &parse("duration_s = 1.0\nrevolutions = 10").problems()[0];
        assert!(e.to_string().contains("duration_s is also set"), "{e}");
        assert!(toml::from_str::<WindowConfig>("seconds = 1").is_err());
    }

    #[test]
    fn sizes_out_of_range_are_named() {
        let fields = |w: WindowConfig| {
            w.problems()
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
        };
        for bad in [0.0, -1.0, f64::NAN, 61.0] {
            assert_eq!(
                fields(WindowConfig::from_duration_s(bad)),
                ["window.duration_s"]
            );
        }
        for bad in [0.0, -3.0, f64::INFINITY, 1001.0] {
            assert_eq!(
                fields(WindowConfig::from_revolutions(bad)),
                ["window.revolutions"]
            );
        }
        for bad in [128, 8191, 131_072] {
            assert_eq!(fields(WindowConfig::from_length(bad)), ["window.length"]);
        }
        assert_eq!(
            fields(WindowConfig::default().with_overlap(0.95)),
            ["window.overlap"]
        );
        assert!(
            WindowConfig::from_length(MAX_WINDOW_LEN)
                .problems()
                .is_empty()
        );
        assert!(WindowConfig::from_duration_s(60.0).problems().is_empty());
    }

    #[test]
    fn windows_are_sized_at_the_first_block_and_again_after_a_rate_change() {
        let mut w = WindowAssembler::new(1, WindowConfig::from_duration_s(0.1).with_overlap(0.0));
        assert_eq!(w.window_len(), None);
        let mut out = Vec::new();
        // 0.1 s at 12.8 kHz: 1280 samples, five blocks of 256.
        for k in 0..10 {
            let (ts, b) = block(k, 256, 1, 12_800.0);
            w.push(ts, &b, &mut out);
        }
        assert_eq!(w.window_len(), Some(1280));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|win| win.samples.len() == 1280));
        assert_eq!(out[1].end_us - out[1].start_us, 100_000);
        // The sensor switches to 25.6 kHz: 2560-sample windows, still 0.1 s.
        out.clear();
        for k in 0..20 {
            let (ts, b) = block(k, 256, 1, 25_600.0);
            w.push(2_000_000 + ts, &b, &mut out);
        }
        assert_eq!(w.stats().format_changes, 1);
        assert_eq!(w.window_len(), Some(2560));
        assert_eq!(w.sample_rate_hz(), Some(25_600.0));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|win| win.samples.len() == 2560));
        assert_eq!(out[0].end_us - out[0].start_us, 100_000);
    }

    #[test]
    fn windows_in_revolutions_use_the_sensors_shaft_speed() {
        // 6 revolutions at 3600 rpm: 0.1 s, 1280 samples at 12.8 kHz.
        let mut w = WindowAssembler::new(1, WindowConfig::from_revolutions(6.0).with_overlap(0.5))
            .with_shaft_hz(Some(60.0));
        let mut out = Vec::new();
        for k in 0..10 {
            let (ts, b) = block(k, 256, 1, 12_800.0);
            w.push(ts, &b, &mut out);
        }
        assert_eq!(w.window_len(), Some(1280));
        // 2560 samples, windows of 1280 every 640: starts 0, 640, 1280 => 3 windows.
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].samples[0], 640.0);
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
        assert_eq!(cfg(1000, 0.5).hop_for(1000), 500);
        assert_eq!(cfg(1000, 0.0).hop_for(1000), 1000);
        assert_eq!(cfg(1000, 0.9).hop_for(1000), 100);
        assert_eq!(WindowConfig::default().hop_for(12_000), 6_000);
    }

    /// The blocks of burst `k` of a 25.6 kHz sensor: `samples` samples in blocks of `block_len`,
    /// bursts `period_s` apart; sample values count within the burst.
    fn burst(
        k: usize,
        samples: usize,
        block_len: usize,
        period_s: f64,
    ) -> Vec<(u64, VibrationBlock)> {
        let rate = 25_600.0;
        let start_us = k as f64 * period_s * 1e6;
        let blocks = samples.div_ceil(block_len);
        (0..blocks)
            .map(|j| {
                let n = block_len.min(samples - j * block_len);
                let values: Vec<i16> = (0..n).map(|i| (j * block_len + i) as i16).collect();
                let ts = (start_us + (j * block_len) as f64 * 1e6 / rate).round() as u64;
                (
                    ts,
                    VibrationBlock {
                        flags: edgewatch_protocol::BlockFlags::burst(j == 0, j + 1 == blocks),
                        sample_rate_hz: rate as f32,
                        axes: 1,
                        scale_g_per_lsb: 1.0,
                        samples: heapless::Vec::from_slice(&values).unwrap(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn each_short_burst_is_one_window_of_its_own_length_and_the_silence_is_no_break() {
        // 0.1 s bursts every 10 s against 1 s windows: every burst is one 2560-sample window.
        let mut w = WindowAssembler::new(1, WindowConfig::default());
        let mut out = Vec::new();
        for k in 0..5 {
            for (ts, b) in burst(k, 2560, 1000, 10.0) {
                w.push(ts, &b, &mut out);
            }
        }
        assert_eq!(out.len(), 5);
        for (k, win) in out.iter().enumerate() {
            assert_eq!(win.samples.len(), 2560);
            assert_eq!(win.samples[0], 0.0);
            assert_eq!(win.samples[2559], 2559.0);
            assert_eq!(win.start_us, k as u64 * 10_000_000);
            assert_eq!(win.end_us, k as u64 * 10_000_000 + 100_000);
        }
        let st = w.stats();
        assert_eq!(
            (st.bursts, st.bursts_incomplete, st.bursts_short),
            (5, 0, 0)
        );
        assert_eq!((st.timestamp_jumps, st.dropped, st.gaps), (0, 0, 0));
    }

    #[test]
    fn a_burst_longer_than_a_window_is_cut_like_a_stream() {
        // 2 s bursts, 1 s windows (25 600 samples), half overlap: 3 windows per burst.
        let mut w = WindowAssembler::new(1, WindowConfig::default());
        let mut out = Vec::new();
        for k in 0..2 {
            for (ts, b) in burst(k, 51_200, 2048, 60.0) {
                w.push(ts, &b, &mut out);
            }
        }
        assert_eq!(out.len(), 6);
        assert!(out.iter().all(|w| w.samples.len() == 25_600));
        assert_eq!(out[3].start_us, 60_000_000);
        assert_eq!(w.stats().bursts, 2);
    }

    #[test]
    fn a_broken_or_joined_burst_is_dropped_and_counted_and_the_next_one_is_whole() {
        let mut w = WindowAssembler::new(1, WindowConfig::default());
        let mut out = Vec::new();
        // Joined in the middle of burst 0: its remaining blocks are not analysed.
        for (ts, b) in burst(0, 2560, 512, 10.0).into_iter().skip(2) {
            w.push(ts, &b, &mut out);
        }
        // Burst 1 loses a frame (the sequencer reports a gap) after its second block.
        for (j, (ts, b)) in burst(1, 2560, 512, 10.0).into_iter().enumerate() {
            if j == 2 {
                w.interrupt(Break::Gap);
                continue;
            }
            w.push(ts, &b, &mut out);
        }
        assert!(out.is_empty());
        // A burst of 200 samples is too short to analyse.
        for (ts, b) in burst(2, 200, 512, 10.0) {
            w.push(ts, &b, &mut out);
        }
        for (ts, b) in burst(3, 2561, 512, 10.0) {
            w.push(ts, &b, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].samples.len(), 2560, "an odd burst is cut to even");
        let st = w.stats();
        assert_eq!(st.bursts_incomplete, 2, "{st:?}");
        assert_eq!(st.bursts_short, 1, "{st:?}");
        assert_eq!(st.bursts, 2, "{st:?}");
        assert_eq!(st.gaps, 1);
        assert_eq!(st.timestamp_jumps, 0);
    }
}
