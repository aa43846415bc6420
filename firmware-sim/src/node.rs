//! A simulated sensor node: turns a signal source into the frames a real node would send.
//!
//! Pure: the node keeps a simulated clock and says when its next frame is due
//! ([`SensorNode::next_due_s`]); the driver decides whether to wait for that moment in real time
//! or not at all. Each node numbers its frames with one sequence counter across kinds, stamps
//! them with its own sensor clock (boot offset plus simulated time), and quantises acceleration
//! to int16 at a fixed full scale, clipping as a real ADC does.

use edgewatch_protocol::{
    BlockFlags, Frame, Header, MAX_VIBRATION_SAMPLES, Payload, SamplingMode, Status, StatusFlags,
    Temperature, VibrationBlock,
};
use serde::{Deserialize, Serialize};

/// What a node samples: vibration blocks and, optionally, temperature.
pub trait SignalSource: Send {
    /// Fills `out` with the next interleaved block of acceleration in g
    /// (`samples_per_axis × axes` values); returns false when the source is exhausted.
    fn next_vibration(&mut self, out: &mut [f32]) -> bool;
    /// Temperature in °C at simulated time `t_s`, if this source has a temperature probe.
    fn temperature_c(&mut self, t_s: f64) -> Option<f64>;
    /// Passes over the next `samples_per_axis` samples (a snapshot sensor asleep between
    /// bursts); returns false when the source is exhausted. The default synthesises and
    /// discards them, so the source's time, its rotating phases and its fault timeline go on
    /// exactly as if they had been sent; sources override it when they can move on without
    /// making every sample ([`AssetSim`](crate::physics::scenario::AssetSim) for long gaps, a
    /// [`Recording`](crate::replay::Recording) always).
    fn skip(&mut self, samples_per_axis: usize, axes: usize) -> bool {
        let mut scratch = vec![0.0f32; 1024 * axes.max(1)];
        let mut left = samples_per_axis;
        while left > 0 {
            let n = left.min(1024);
            if !self.next_vibration(&mut scratch[..n * axes.max(1)]) {
                return false;
            }
            left -= n;
        }
        true
    }
}

/// A snapshot (burst) sensor's plan: `samples` contiguous samples per axis every `period_s`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstPlan {
    /// Samples per axis in one burst, at least 1.
    pub samples: usize,
    /// Seconds from the start of one burst to the start of the next; longer than a burst.
    pub period_s: f64,
}

impl BurstPlan {
    /// As the protocol announces it.
    pub fn mode(&self) -> SamplingMode {
        SamplingMode::Burst {
            samples: u32::try_from(self.samples).unwrap_or(u32::MAX),
            period_ms: (self.period_s * 1e3)
                .round()
                .clamp(1.0, f64::from(u32::MAX)) as u32,
        }
    }
}

/// Fixed settings of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSettings {
    /// Sensor id written into every frame.
    pub sensor_id: u32,
    /// Asset the sensor is mounted on (used for MQTT topics).
    pub asset: String,
    /// Sample rate per axis in Hz.
    pub sample_rate_hz: f64,
    /// Samples per axis per vibration frame.
    pub block_size: usize,
    /// Number of axes, 1 to 3.
    pub axes: u8,
    /// Acceleration in g at int16 full scale.
    pub full_scale_g: f32,
    /// Seconds between temperature frames; `None`: no temperature frames.
    pub temperature_interval_s: Option<f64>,
    /// Seconds between status frames; `None`: no status frames.
    pub status_interval_s: Option<f64>,
    /// Sensor clock at simulated time 0, in µs (nodes boot at different times).
    pub clock_offset_us: u64,
    /// Snapshot mode: vibration only in bursts; `None`: a continuous stream.
    pub burst: Option<BurstPlan>,
}

impl NodeSettings {
    /// Checks the settings a frame depends on; returns a message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.sample_rate_hz.is_finite() && self.sample_rate_hz > 0.0) {
            return Err(format!(
                "sample_rate_hz: {} is not > 0",
                self.sample_rate_hz
            ));
        }
        if !(1..=edgewatch_protocol::MAX_AXES).contains(&self.axes) {
            return Err(format!("axes: {} is not between 1 and 3", self.axes));
        }
        let total = self.block_size * usize::from(self.axes);
        if self.block_size == 0 || total > MAX_VIBRATION_SAMPLES {
            return Err(format!(
                "block_size: {} samples x {} axes must be between 1 and {MAX_VIBRATION_SAMPLES}",
                self.block_size, self.axes
            ));
        }
        if !(self.full_scale_g.is_finite() && self.full_scale_g > 0.0) {
            return Err(format!("full_scale_g: {} is not > 0", self.full_scale_g));
        }
        for (name, v) in [
            ("temperature_interval", self.temperature_interval_s),
            ("status_interval", self.status_interval_s),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Err(format!("{name}: {v} s is not > 0"));
            }
        }
        if let Some(b) = self.burst {
            if b.samples == 0 || b.samples > u32::MAX as usize {
                return Err(format!("burst.samples: {} is not at least 1", b.samples));
            }
            let burst_s = b.samples as f64 / self.sample_rate_hz;
            if !(b.period_s.is_finite() && b.period_s > burst_s && b.period_s <= 86_400.0) {
                return Err(format!(
                    "burst.period_s: {} s is not longer than a burst ({burst_s:.4} s) and at \
                     most a day",
                    b.period_s
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Vibration,
    Temperature,
    Status,
    Sampling,
}

/// A sensor node.
pub struct SensorNode {
    settings: NodeSettings,
    source: Box<dyn SignalSource>,
    sequence: u32,
    blocks_sent: u64,
    next_temperature_s: f64,
    next_status_s: f64,
    exhausted: bool,
    scratch: Vec<f32>,
    clipped: bool,
    /// Burst mode: the current burst and the samples of it already sent.
    burst_index: u64,
    burst_sent: usize,
    /// Samples per axis taken from the source so far (sent or skipped).
    source_samples: u64,
    /// A sampling-plan frame is due at this time (at start, and after each status).
    sampling_due: Option<f64>,
}

impl std::fmt::Debug for SensorNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SensorNode")
            .field("settings", &self.settings)
            .field("sequence", &self.sequence)
            .field("blocks_sent", &self.blocks_sent)
            .finish_non_exhaustive()
    }
}

impl SensorNode {
    /// A node at simulated time 0. Settings must have passed [`NodeSettings::validate`].
    pub fn new(settings: NodeSettings, source: Box<dyn SignalSource>) -> Self {
        let n = settings.block_size * usize::from(settings.axes);
        Self {
            next_temperature_s: 0.0,
            next_status_s: 0.0,
            settings,
            source,
            sequence: 0,
            blocks_sent: 0,
            exhausted: false,
            scratch: vec![0.0; n],
            clipped: false,
            burst_index: 0,
            burst_sent: 0,
            source_samples: 0,
            sampling_due: Some(0.0),
        }
    }

    /// The next vibration block: its first sample's index on the source's clock, its samples
    /// per axis and its burst flags.
    fn next_block(&self) -> (u64, usize, BlockFlags) {
        let size = self.settings.block_size;
        match self.settings.burst {
            None => (self.blocks_sent * size as u64, size, BlockFlags::CONTINUOUS),
            Some(b) => {
                let start = (self.burst_index as f64 * b.period_s * self.settings.sample_rate_hz)
                    .round() as u64;
                let n = size.min(b.samples - self.burst_sent);
                let flags =
                    BlockFlags::burst(self.burst_sent == 0, self.burst_sent + n == b.samples);
                (start + self.burst_sent as u64, n, flags)
            }
        }
    }

    /// The node's settings.
    pub fn settings(&self) -> &NodeSettings {
        &self.settings
    }

    fn next(&self) -> Option<(f64, Due)> {
        if self.exhausted {
            return None;
        }
        if let Some(t) = self.sampling_due {
            return Some((t, Due::Sampling));
        }
        let mut best = (!self.exhausted).then(|| {
            // A block is sent when its last sample has been taken.
            let (first, n, _) = self.next_block();
            (
                (first + n as u64) as f64 / self.settings.sample_rate_hz,
                Due::Vibration,
            )
        });
        let others = [
            (
                self.settings
                    .temperature_interval_s
                    .map(|_| self.next_temperature_s),
                Due::Temperature,
            ),
            (
                self.settings.status_interval_s.map(|_| self.next_status_s),
                Due::Status,
            ),
        ];
        if self.exhausted {
            return None;
        }
        for (t, due) in others {
            if let Some(t) = t
                && best.is_none_or(|(b, _)| t < b)
            {
                best = Some((t, due));
            }
        }
        best
    }

    /// Simulated time in seconds at which the next frame is due; `None` once the source is
    /// exhausted (a replay that reached its end).
    pub fn next_due_s(&self) -> Option<f64> {
        self.next().map(|(t, _)| t)
    }

    fn header(&mut self, t_s: f64) -> Header {
        let header = Header {
            sensor_id: self.settings.sensor_id,
            sequence: self.sequence,
            timestamp_us: self.settings.clock_offset_us + (t_s * 1e6).round() as u64,
        };
        self.sequence = self.sequence.wrapping_add(1);
        header
    }

    /// Produces the frame that is due next, with its simulated time; `None` once exhausted.
    pub fn emit(&mut self) -> Option<(f64, Frame)> {
        let (t, due) = self.next()?;
        let frame = match due {
            Due::Sampling => {
                self.sampling_due = None;
                let mode = self
                    .settings
                    .burst
                    .map_or(SamplingMode::Continuous, |b| b.mode());
                Frame {
                    header: self.header(t),
                    payload: Payload::Sampling(mode),
                }
            }
            Due::Vibration => {
                let (first, n, flags) = self.next_block();
                let axes = usize::from(self.settings.axes);
                if first > self.source_samples {
                    // Asleep between bursts: the machine runs on, unsent.
                    let gap = (first - self.source_samples) as usize;
                    if !self.source.skip(gap, axes) {
                        self.exhausted = true;
                        return None;
                    }
                    self.source_samples = first;
                }
                if !self.source.next_vibration(&mut self.scratch[..n * axes]) {
                    self.exhausted = true;
                    return None;
                }
                self.source_samples += n as u64;
                let start_s = first as f64 / self.settings.sample_rate_hz;
                self.blocks_sent += 1;
                if let Some(b) = self.settings.burst {
                    self.burst_sent += n;
                    if self.burst_sent >= b.samples {
                        self.burst_sent = 0;
                        self.burst_index += 1;
                    }
                }
                let scale = self.settings.full_scale_g / f32::from(i16::MAX);
                let mut samples = edgewatch_protocol::heapless::Vec::new();
                for &g in &self.scratch[..n * axes] {
                    let q = (g / scale).round();
                    if q.abs() > f32::from(i16::MAX) {
                        self.clipped = true;
                    }
                    // `as` saturates: values beyond full scale clip like an ADC.
                    let _ = samples.push(q as i16);
                }
                Frame {
                    header: self.header(start_s),
                    payload: Payload::Vibration(VibrationBlock {
                        flags,
                        sample_rate_hz: self.settings.sample_rate_hz as f32,
                        axes: self.settings.axes,
                        scale_g_per_lsb: scale,
                        samples,
                    }),
                }
            }
            Due::Temperature => {
                self.next_temperature_s += self.settings.temperature_interval_s.unwrap_or(1.0);
                match self.source.temperature_c(t) {
                    Some(c) => {
                        let centi = (c * 100.0).round().clamp(-32768.0, 32767.0) as i16;
                        Frame {
                            header: self.header(t),
                            payload: Payload::Temperature(Temperature {
                                centi_celsius: edgewatch_protocol::heapless::Vec::from_slice(&[
                                    centi,
                                ])
                                .unwrap_or_default(),
                            }),
                        }
                    }
                    None => {
                        // No probe: stop asking.
                        self.settings.temperature_interval_s = None;
                        return self.emit();
                    }
                }
            }
            Due::Status => {
                self.next_status_s += self.settings.status_interval_s.unwrap_or(10.0);
                // The plan goes out again right after every heartbeat.
                self.sampling_due = Some(t);
                let mut error_flags = 0;
                if std::mem::take(&mut self.clipped) {
                    error_flags |= StatusFlags::ADC_OVERRUN;
                }
                Frame {
                    header: self.header(t),
                    payload: Payload::Status(Status {
                        firmware: (
                            env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0),
                            env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0),
                            env!("CARGO_PKG_VERSION_PATCH").parse().unwrap_or(0),
                        ),
                        error_flags,
                        uptime_s: t as u32,
                        supply_mv: 3300,
                    }),
                }
            }
        };
        Some((t, frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that counts: sample k of the stream is k (in g), temperature is t.
    struct Ramp {
        next: f32,
        left: usize,
    }

    impl SignalSource for Ramp {
        fn next_vibration(&mut self, out: &mut [f32]) -> bool {
            if self.left == 0 {
                return false;
            }
            self.left -= 1;
            for v in out {
                *v = self.next;
                self.next += 1.0;
            }
            true
        }
        fn temperature_c(&mut self, t_s: f64) -> Option<f64> {
            Some(20.0 + t_s)
        }
    }

    fn settings() -> NodeSettings {
        NodeSettings {
            sensor_id: 9,
            asset: "fan".into(),
            sample_rate_hz: 1000.0,
            block_size: 100,
            axes: 1,
            full_scale_g: 32767.0,
            temperature_interval_s: Some(0.25),
            status_interval_s: Some(1.0),
            clock_offset_us: 5_000_000,
            burst: None,
        }
    }

    #[test]
    fn frames_come_in_time_order_with_one_sequence_across_kinds() {
        let mut node = SensorNode::new(
            settings(),
            Box::new(Ramp {
                next: 0.0,
                left: 20,
            }),
        );
        let mut last_t = f64::MIN;
        let mut frames = Vec::new();
        while let Some((t, f)) = node.emit() {
            assert!(t >= last_t);
            last_t = t;
            frames.push(f);
        }
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.header.sequence, i as u32);
            assert_eq!(f.header.sensor_id, 9);
        }
        let vib: Vec<_> = frames
            .iter()
            .filter_map(|f| match &f.payload {
                Payload::Vibration(v) => Some((f.header.timestamp_us, v)),
                _ => None,
            })
            .collect();
        assert_eq!(vib.len(), 20);
        // Blocks are contiguous: 100 samples at 1 kHz = 100 ms apart, samples continue.
        for (k, (ts, v)) in vib.iter().enumerate() {
            assert_eq!(*ts, 5_000_000 + k as u64 * 100_000);
            assert_eq!(v.samples[0], (k * 100) as i16);
        }
        let temps = frames
            .iter()
            .filter(|f| matches!(f.payload, Payload::Temperature(_)))
            .count();
        // Readings at 0, 0.25, ..., 2.0 s: the last one is due with the last block.
        assert_eq!(temps, 9);
    }

    #[test]
    fn acceleration_beyond_full_scale_clips_and_is_flagged() {
        let mut s = settings();
        s.full_scale_g = 100.0;
        s.temperature_interval_s = None;
        let mut node = SensorNode::new(
            s,
            Box::new(Ramp {
                next: 0.0,
                left: 30,
            }),
        );
        let mut saw_flag = false;
        while let Some((_, f)) = node.emit() {
            match f.payload {
                Payload::Vibration(v) => assert!(v.samples.iter().all(|&q| q >= 0)),
                Payload::Status(st) => saw_flag |= st.error_flags & StatusFlags::ADC_OVERRUN != 0,
                _ => {}
            }
        }
        assert!(saw_flag);
    }

    #[test]
    fn a_snapshot_node_sends_whole_bursts_and_the_source_runs_on_between_them() {
        let mut s = settings();
        s.temperature_interval_s = None;
        s.burst = Some(BurstPlan {
            samples: 250,
            period_s: 1.0,
        });
        s.validate().unwrap();
        let mut node = SensorNode::new(
            s,
            Box::new(Ramp {
                next: 0.0,
                left: usize::MAX,
            }),
        );
        let mut blocks = Vec::new();
        let mut kinds = Vec::new();
        while let Some((t, f)) = node.emit() {
            if t > 3.5 {
                break;
            }
            kinds.push(f.kind());
            if let Payload::Vibration(v) = f.payload {
                blocks.push((
                    f.header.timestamp_us,
                    v.samples_per_axis(),
                    v.flags,
                    v.samples[0],
                ));
            }
        }
        assert_eq!(kinds[0], edgewatch_protocol::FrameKind::Sampling);
        // Bursts of 100 + 100 + 50 samples at 0, 1, 2 and 3 s; sample values count the
        // source's samples, so those skipped between bursts show.
        assert_eq!(blocks.len(), 12);
        for (k, burst) in blocks.chunks(3).enumerate() {
            let start = k as u64 * 1_000_000 + 5_000_000;
            assert_eq!(
                burst[0],
                (
                    start,
                    100,
                    BlockFlags::burst(true, false),
                    (k * 1000) as i16
                )
            );
            assert_eq!(burst[1].0, start + 100_000);
            assert_eq!(burst[1].2, BlockFlags::burst(false, false));
            assert_eq!(
                (burst[2].1, burst[2].2),
                (50, BlockFlags::burst(false, true))
            );
            assert_eq!(burst[2].3, (k * 1000 + 200) as i16);
        }
        // The plan goes out after each status heartbeat (every second here).
        let plans = kinds
            .iter()
            .filter(|k| **k == edgewatch_protocol::FrameKind::Sampling)
            .count();
        assert!(plans >= 4, "{kinds:?}");
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let mut s = settings();
        s.block_size = 5000;
        assert!(s.validate().unwrap_err().starts_with("block_size"));
        let mut s = settings();
        s.axes = 4;
        assert!(s.validate().unwrap_err().starts_with("axes"));
        let mut s = settings();
        s.burst = Some(BurstPlan {
            samples: 2000,
            period_s: 1.5,
        });
        assert!(s.validate().unwrap_err().starts_with("burst.period_s"));
        s.burst = Some(BurstPlan {
            samples: 0,
            period_s: 1.5,
        });
        assert!(s.validate().unwrap_err().starts_with("burst.samples"));
    }
}
