//! A simulated sensor node: turns a signal source into the frames a real node would send.
//!
//! Pure: the node keeps a simulated clock and says when its next frame is due
//! ([`SensorNode::next_due_s`]); the driver decides whether to wait for that moment in real time
//! or not at all. Each node numbers its frames with one sequence counter across kinds, stamps
//! them with its own sensor clock (boot offset plus simulated time), and quantises acceleration
//! to int16 at a fixed full scale, clipping as a real ADC does.

use edgewatch_protocol::{
    Frame, Header, MAX_VIBRATION_SAMPLES, Payload, Status, StatusFlags, Temperature, VibrationBlock,
};

/// What a node samples: vibration blocks and, optionally, temperature.
pub trait SignalSource: Send {
    /// Fills `out` with the next interleaved block of acceleration in g
    /// (`samples_per_axis × axes` values); returns false when the source is exhausted.
    fn next_vibration(&mut self, out: &mut [f32]) -> bool;
    /// Temperature in °C at simulated time `t_s`, if this source has a temperature probe.
    fn temperature_c(&mut self, t_s: f64) -> Option<f64>;
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
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Vibration,
    Temperature,
    Status,
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
        }
    }

    /// The node's settings.
    pub fn settings(&self) -> &NodeSettings {
        &self.settings
    }

    fn block_duration_s(&self) -> f64 {
        self.settings.block_size as f64 / self.settings.sample_rate_hz
    }

    fn next(&self) -> Option<(f64, Due)> {
        let mut best = (!self.exhausted).then(|| {
            // A block is sent when its last sample has been taken.
            (
                (self.blocks_sent + 1) as f64 * self.block_duration_s(),
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
            Due::Vibration => {
                if !self.source.next_vibration(&mut self.scratch) {
                    self.exhausted = true;
                    return None;
                }
                let start_s = self.blocks_sent as f64 * self.block_duration_s();
                self.blocks_sent += 1;
                let scale = self.settings.full_scale_g / f32::from(i16::MAX);
                let mut samples = edgewatch_protocol::heapless::Vec::new();
                for &g in &self.scratch {
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
    fn invalid_settings_name_the_field() {
        let mut s = settings();
        s.block_size = 5000;
        assert!(s.validate().unwrap_err().starts_with("block_size"));
        let mut s = settings();
        s.axes = 4;
        assert!(s.validate().unwrap_err().starts_with("axes"));
    }
}
