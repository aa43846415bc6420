//! Frames and their raw byte layout (all integers little-endian):
//!
//! ```text
//! struct Frame {            // offset
//!     version: u8,          // 0   = VERSION
//!     kind: u8,             // 1   FrameKind
//!     payload_len: u16,     // 2   N
//!     sensor_id: u32,       // 4
//!     sequence: u32,        // 8   per sensor, +1 per frame of any kind, wraps
//!     timestamp_us: u64,    // 12  sensor clock, µs
//!     payload: [u8; N],     // 20  layout by kind, see Payload
//!     crc32c: u32,          // 20+N over bytes 0..20+N
//! }
//! ```

use crate::error::{DecodeError, EncodeError, PayloadError};
use crate::{
    CRC_LEN, CRC32C, HEADER_LEN, MAX_AXES, MAX_FRAME_LEN, MAX_TEMPERATURE_CHANNELS,
    MAX_VIBRATION_SAMPLES, VERSION, VIBRATION_HEADER_LEN,
};
use heapless::Vec;

/// Kind of a frame, byte 1 of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A block of accelerometer samples.
    Vibration = 1,
    /// Temperature readings.
    Temperature = 2,
    /// Heartbeat with firmware version, error flags and supply voltage.
    Status = 3,
    /// The sensor's sampling plan: continuous, or bursts of N samples every T.
    Sampling = 4,
}

impl FrameKind {
    /// The kind for a header byte, if this version defines it.
    pub const fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Vibration),
            2 => Some(Self::Temperature),
            3 => Some(Self::Status),
            4 => Some(Self::Sampling),
            _ => None,
        }
    }
}

/// Fields every frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Header {
    /// Sensor node id, unique per gateway.
    pub sensor_id: u32,
    /// Per-sensor frame counter: +1 for every frame of any kind, wrapping at `u32::MAX`.
    /// Gaps reveal lost frames; repeats reveal duplicates.
    pub sequence: u32,
    /// Sensor clock at the first sample (vibration) or at the reading, in microseconds.
    pub timestamp_us: u64,
}

/// A block of accelerometer samples.
///
/// Payload layout:
/// ```text
/// sample_rate_hz: f32     // 0
/// axes: u8                // 4  1..=MAX_AXES
/// flags: u8               // 5  BlockFlags (0: continuous stream)
/// samples_per_axis: u16   // 6
/// scale_g_per_lsb: f32    // 8  acceleration in g = sample × scale
/// samples: [i16; axes × samples_per_axis]   // 12, interleaved: x0 y0 z0 x1 y1 z1 ...
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct VibrationBlock {
    /// Sample rate per axis in Hz.
    pub sample_rate_hz: f32,
    /// Number of axes, 1 to [`MAX_AXES`].
    pub axes: u8,
    /// Acceleration in g of one least significant bit.
    pub scale_g_per_lsb: f32,
    /// Where the block sits in the sensor's sampling: a continuous stream, or a burst.
    pub flags: BlockFlags,
    /// Interleaved samples (`x0 y0 z0 x1 ...`); the length is a multiple of `axes`.
    pub samples: Vec<i16, MAX_VIBRATION_SAMPLES>,
}

impl VibrationBlock {
    /// Samples per axis.
    pub fn samples_per_axis(&self) -> usize {
        if self.axes == 0 {
            0
        } else {
            self.samples.len() / usize::from(self.axes)
        }
    }

    /// The samples of one axis in g.
    pub fn axis_g(&self, axis: u8) -> impl Iterator<Item = f32> + '_ {
        let step = usize::from(self.axes.max(1));
        self.samples
            .iter()
            .skip(usize::from(axis))
            .step_by(step)
            .map(move |&s| f32::from(s) * self.scale_g_per_lsb)
    }

    /// Duration of the block in microseconds.
    pub fn duration_us(&self) -> f64 {
        self.samples_per_axis() as f64 * 1e6 / f64::from(self.sample_rate_hz)
    }

    fn check(&self) -> Result<(), PayloadError> {
        if self.axes == 0 || self.axes > MAX_AXES {
            return Err(PayloadError::Axes(self.axes));
        }
        let n = self.samples.len();
        if n == 0 {
            return Err(PayloadError::SampleCount(n));
        }
        if !n.is_multiple_of(usize::from(self.axes))
            || n / usize::from(self.axes) > usize::from(u16::MAX)
        {
            return Err(PayloadError::VibrationLength);
        }
        if !(self.sample_rate_hz.is_finite() && self.sample_rate_hz > 0.0) {
            return Err(PayloadError::SampleRate);
        }
        if !(self.scale_g_per_lsb.is_finite() && self.scale_g_per_lsb > 0.0) {
            return Err(PayloadError::Scale);
        }
        self.flags.check()
    }
}

/// Byte 5 of a vibration payload: where the block sits in the sensor's sampling.
///
/// `0` is a block of a continuous stream (every block follows the previous one without a gap).
/// A snapshot (burst) sensor sets [`BlockFlags::BURST`] on every block of a burst, and
/// [`BlockFlags::START`] on its first and [`BlockFlags::END`] on its last block (both on a burst
/// of one block). The silence between two bursts is expected, not lost data: the gateway analyses
/// each burst as a window of its own length. Other bits are reserved and must be 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BlockFlags(pub u8);

impl BlockFlags {
    /// A block of a continuous stream.
    pub const CONTINUOUS: Self = Self(0);
    /// The block belongs to a burst.
    pub const BURST: u8 = 1 << 0;
    /// The first block of a burst.
    pub const START: u8 = 1 << 1;
    /// The last block of a burst.
    pub const END: u8 = 1 << 2;
    const KNOWN: u8 = Self::BURST | Self::START | Self::END;

    /// Flags of a burst block: `first` and/or `last` of its burst.
    pub const fn burst(first: bool, last: bool) -> Self {
        let mut b = Self::BURST;
        if first {
            b |= Self::START;
        }
        if last {
            b |= Self::END;
        }
        Self(b)
    }

    /// Whether the block belongs to a burst.
    pub const fn is_burst(self) -> bool {
        self.0 & Self::BURST != 0
    }

    /// Whether the block starts a burst.
    pub const fn starts_burst(self) -> bool {
        self.0 & Self::START != 0
    }

    /// Whether the block ends a burst.
    pub const fn ends_burst(self) -> bool {
        self.0 & Self::END != 0
    }

    fn check(self) -> Result<(), PayloadError> {
        // Unknown bits, or a start or end mark on a block that is not in a burst.
        if self.0 & !Self::KNOWN != 0 || (self.0 != 0 && !self.is_burst()) {
            return Err(PayloadError::Reserved);
        }
        Ok(())
    }
}

/// How a sensor samples vibration, announced in a [`FrameKind::Sampling`] frame when the node
/// starts and with its heartbeats.
///
/// Payload layout (12 bytes): `mode: u8` (0 continuous, 1 burst), `reserved: [u8; 3] = 0`,
/// `burst_samples: u32` (samples per axis in a burst), `burst_period_ms: u32` (start to start);
/// both 0 for a continuous sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SamplingMode {
    /// One uninterrupted stream of blocks.
    #[default]
    Continuous,
    /// Bursts (snapshots) of `samples` samples per axis, one every `period_ms`.
    Burst {
        /// Samples per axis in one burst, at least 1.
        samples: u32,
        /// Time from the start of one burst to the start of the next, ms, at least 1.
        period_ms: u32,
    },
}

const SAMPLING_LEN: usize = 12;

/// Temperature readings in hundredths of a degree Celsius, one per channel.
///
/// Payload layout: `count: u8`, `reserved: u8 = 0`, `centi_celsius: [i16; count]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Temperature {
    /// Readings in 0.01 °C; channel index = position.
    pub centi_celsius: Vec<i16, MAX_TEMPERATURE_CHANNELS>,
}

impl Temperature {
    /// Reading of one channel in °C.
    pub fn celsius(&self, channel: usize) -> Option<f32> {
        self.centi_celsius
            .get(channel)
            .map(|&c| f32::from(c) / 100.0)
    }
}

/// Bits of [`Status::error_flags`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusFlags;

impl StatusFlags {
    /// The ADC or accelerometer FIFO overran: samples were lost inside the sensor.
    pub const ADC_OVERRUN: u32 = 1 << 0;
    /// The accelerometer reported a self-test or communication fault.
    pub const SENSOR_FAULT: u32 = 1 << 1;
    /// The supply dropped below the brown-out threshold since the last status.
    pub const BROWNOUT: u32 = 1 << 2;
    /// The node restarted because of its watchdog.
    pub const WATCHDOG_RESET: u32 = 1 << 3;
    /// The sensor clock was stepped (resynchronised); timestamps jump.
    pub const CLOCK_STEP: u32 = 1 << 4;
    /// The node's transmit buffer overflowed: frames were dropped before sending.
    pub const TX_OVERFLOW: u32 = 1 << 5;
    /// A temperature probe is open or shorted.
    pub const PROBE_FAULT: u32 = 1 << 6;
}

/// Heartbeat of a sensor node.
///
/// Payload layout: `fw_major: u8, fw_minor: u8, fw_patch: u8, reserved: u8 = 0,
/// error_flags: u32, uptime_s: u32, supply_mv: u16` (14 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Status {
    /// Firmware version `(major, minor, patch)`.
    pub firmware: (u8, u8, u8),
    /// Bit set of [`StatusFlags`].
    pub error_flags: u32,
    /// Seconds since the node started.
    pub uptime_s: u32,
    /// Supply voltage in millivolts.
    pub supply_mv: u16,
}

const STATUS_LEN: usize = 14;

/// The typed content of a frame.
#[derive(Debug, Clone, PartialEq)]
// Fixed-capacity storage without an allocator: every frame reserves room for the largest block.
#[allow(clippy::large_enum_variant)]
pub enum Payload {
    /// A vibration block.
    Vibration(VibrationBlock),
    /// Temperature readings.
    Temperature(Temperature),
    /// A heartbeat.
    Status(Status),
    /// The sensor's sampling plan.
    Sampling(SamplingMode),
}

/// One sensor frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Sensor, sequence and time.
    pub header: Header,
    /// Content.
    pub payload: Payload,
}

impl Frame {
    /// The kind byte of this frame.
    pub fn kind(&self) -> FrameKind {
        match self.payload {
            Payload::Vibration(_) => FrameKind::Vibration,
            Payload::Temperature(_) => FrameKind::Temperature,
            Payload::Status(_) => FrameKind::Status,
            Payload::Sampling(_) => FrameKind::Sampling,
        }
    }

    fn payload_len(&self) -> usize {
        match &self.payload {
            Payload::Vibration(v) => VIBRATION_HEADER_LEN + 2 * v.samples.len(),
            Payload::Temperature(t) => 2 + 2 * t.centi_celsius.len(),
            Payload::Status(_) => STATUS_LEN,
            Payload::Sampling(_) => SAMPLING_LEN,
        }
    }

    fn check(&self) -> Result<(), PayloadError> {
        match &self.payload {
            Payload::Vibration(v) => v.check(),
            Payload::Temperature(t) if t.centi_celsius.is_empty() => {
                Err(PayloadError::TemperatureChannels(0))
            }
            Payload::Sampling(SamplingMode::Burst { samples, period_ms })
                if *samples == 0 || *period_ms == 0 =>
            {
                Err(PayloadError::Sampling)
            }
            _ => Ok(()),
        }
    }

    /// Length of the raw encoding ([`Frame::encode`]): header, payload and CRC.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload_len() + CRC_LEN
    }

    /// Length of the serial encoding ([`Frame::encode_stuffed`]), delimiters included.
    pub fn stuffed_len(&self) -> usize {
        cobs::max_encoding_length(self.encoded_len()) + 2
    }

    /// Writes the raw frame (header, payload, CRC-32C) to the start of `out`; returns its length.
    /// This is the MQTT message payload.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        self.check().map_err(EncodeError::Invalid)?;
        let len = self.encoded_len();
        let out = out
            .get_mut(..len)
            .ok_or(EncodeError::BufferTooSmall { needed: len })?;
        let payload_len = self.payload_len();
        out[0] = VERSION;
        out[1] = self.kind() as u8;
        // payload_len <= MAX_PAYLOAD_LEN < u16::MAX, checked by `check`.
        out[2..4].copy_from_slice(&(payload_len as u16).to_le_bytes());
        out[4..8].copy_from_slice(&self.header.sensor_id.to_le_bytes());
        out[8..12].copy_from_slice(&self.header.sequence.to_le_bytes());
        out[12..20].copy_from_slice(&self.header.timestamp_us.to_le_bytes());
        let p = &mut out[HEADER_LEN..HEADER_LEN + payload_len];
        match &self.payload {
            Payload::Vibration(v) => {
                p[0..4].copy_from_slice(&v.sample_rate_hz.to_le_bytes());
                p[4] = v.axes;
                p[5] = v.flags.0;
                p[6..8].copy_from_slice(&(v.samples_per_axis() as u16).to_le_bytes());
                p[8..12].copy_from_slice(&v.scale_g_per_lsb.to_le_bytes());
                for (chunk, s) in p[VIBRATION_HEADER_LEN..]
                    .chunks_exact_mut(2)
                    .zip(&v.samples)
                {
                    chunk.copy_from_slice(&s.to_le_bytes());
                }
            }
            Payload::Temperature(t) => {
                p[0] = t.centi_celsius.len() as u8;
                p[1] = 0;
                for (chunk, c) in p[2..].chunks_exact_mut(2).zip(&t.centi_celsius) {
                    chunk.copy_from_slice(&c.to_le_bytes());
                }
            }
            Payload::Status(s) => {
                p[0] = s.firmware.0;
                p[1] = s.firmware.1;
                p[2] = s.firmware.2;
                p[3] = 0;
                p[4..8].copy_from_slice(&s.error_flags.to_le_bytes());
                p[8..12].copy_from_slice(&s.uptime_s.to_le_bytes());
                p[12..14].copy_from_slice(&s.supply_mv.to_le_bytes());
            }
            Payload::Sampling(m) => {
                let (mode, samples, period_ms) = match *m {
                    SamplingMode::Continuous => (0, 0, 0),
                    SamplingMode::Burst { samples, period_ms } => (1, samples, period_ms),
                };
                p[0] = mode;
                p[1..4].fill(0);
                p[4..8].copy_from_slice(&samples.to_le_bytes());
                p[8..12].copy_from_slice(&period_ms.to_le_bytes());
            }
        }
        let body = HEADER_LEN + payload_len;
        let crc = CRC32C.checksum(&out[..body]);
        out[body..body + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
        Ok(len)
    }

    /// Writes the serial encoding to the start of `out`: `0x00`, the COBS-stuffed raw frame,
    /// `0x00`. Returns its length. The leading delimiter isolates any garbage that preceded the
    /// frame on the line, so the frame itself survives it.
    pub fn encode_stuffed(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut raw = [0u8; MAX_FRAME_LEN];
        let raw_len = self.encode(&mut raw)?;
        stuff(&raw[..raw_len], out)
    }
}

/// Writes already encoded raw frame bytes in serial form to the start of `out`: `0x00`, the
/// COBS-stuffed bytes, `0x00`. Returns the length written. Used by [`Frame::encode_stuffed`], and
/// by test tools that put deliberately damaged raw frames on a line.
pub fn stuff(raw: &[u8], out: &mut [u8]) -> Result<usize, EncodeError> {
    let max = cobs::max_encoding_length(raw.len()) + 2;
    if out.len() < max {
        return Err(EncodeError::BufferTooSmall { needed: max });
    }
    out[0] = crate::DELIMITER;
    let n = cobs::encode(raw, &mut out[1..max - 1]);
    out[1 + n] = crate::DELIMITER;
    Ok(n + 2)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes one raw frame (header, payload, CRC: an MQTT message payload, or a serial chunk after
/// unstuffing). Checks, in order: version, length, CRC, kind, payload rules.
pub fn decode_frame(raw: &[u8]) -> Result<Frame, DecodeError> {
    let Some(&version) = raw.first() else {
        return Err(DecodeError::Truncated {
            len: 0,
            needed: HEADER_LEN + CRC_LEN,
        });
    };
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    if raw.len() < HEADER_LEN + CRC_LEN {
        return Err(DecodeError::Truncated {
            len: raw.len(),
            needed: HEADER_LEN + CRC_LEN,
        });
    }
    let payload_len = usize::from(u16_at(raw, 2));
    let expected = HEADER_LEN + payload_len + CRC_LEN;
    if raw.len() < expected {
        return Err(DecodeError::Truncated {
            len: raw.len(),
            needed: expected,
        });
    }
    if raw.len() > expected {
        return Err(DecodeError::TrailingBytes {
            len: raw.len(),
            expected,
        });
    }
    let body = HEADER_LEN + payload_len;
    let received = u32_at(raw, body);
    let computed = CRC32C.checksum(&raw[..body]);
    if received != computed {
        return Err(DecodeError::Crc { received, computed });
    }
    let kind = FrameKind::from_u8(raw[1]).ok_or(DecodeError::UnknownKind(raw[1]))?;
    let header = Header {
        sensor_id: u32_at(raw, 4),
        sequence: u32_at(raw, 8),
        timestamp_us: u64::from_le_bytes([
            raw[12], raw[13], raw[14], raw[15], raw[16], raw[17], raw[18], raw[19],
        ]),
    };
    let p = &raw[HEADER_LEN..body];
    let payload = match kind {
        FrameKind::Vibration => Payload::Vibration(decode_vibration(p)?),
        FrameKind::Temperature => Payload::Temperature(decode_temperature(p)?),
        FrameKind::Status => Payload::Status(decode_status(p)?),
        FrameKind::Sampling => Payload::Sampling(decode_sampling(p)?),
    };
    Ok(Frame { header, payload })
}

fn decode_vibration(p: &[u8]) -> Result<VibrationBlock, PayloadError> {
    if p.len() < VIBRATION_HEADER_LEN {
        return Err(PayloadError::VibrationLength);
    }
    let sample_rate_hz = f32::from_bits(u32_at(p, 0));
    let axes = p[4];
    let flags = BlockFlags(p[5]);
    let per_axis = usize::from(u16_at(p, 6));
    let scale_g_per_lsb = f32::from_bits(u32_at(p, 8));
    if axes == 0 || axes > MAX_AXES {
        return Err(PayloadError::Axes(axes));
    }
    let count = per_axis * usize::from(axes);
    if count == 0 || count > MAX_VIBRATION_SAMPLES {
        return Err(PayloadError::SampleCount(count));
    }
    if p.len() != VIBRATION_HEADER_LEN + 2 * count {
        return Err(PayloadError::VibrationLength);
    }
    let mut samples = Vec::new();
    for c in p[VIBRATION_HEADER_LEN..].chunks_exact(2) {
        // Cannot fail: count <= MAX_VIBRATION_SAMPLES was checked above.
        let _ = samples.push(i16::from_le_bytes([c[0], c[1]]));
    }
    let block = VibrationBlock {
        sample_rate_hz,
        axes,
        scale_g_per_lsb,
        flags,
        samples,
    };
    block.check()?;
    Ok(block)
}

fn decode_temperature(p: &[u8]) -> Result<Temperature, PayloadError> {
    if p.len() < 2 {
        return Err(PayloadError::Length);
    }
    let count = p[0];
    if count == 0 || usize::from(count) > MAX_TEMPERATURE_CHANNELS {
        return Err(PayloadError::TemperatureChannels(count));
    }
    if p[1] != 0 {
        return Err(PayloadError::Reserved);
    }
    if p.len() != 2 + 2 * usize::from(count) {
        return Err(PayloadError::Length);
    }
    let mut centi_celsius = Vec::new();
    for c in p[2..].chunks_exact(2) {
        let _ = centi_celsius.push(i16::from_le_bytes([c[0], c[1]]));
    }
    Ok(Temperature { centi_celsius })
}

fn decode_status(p: &[u8]) -> Result<Status, PayloadError> {
    if p.len() != STATUS_LEN {
        return Err(PayloadError::Length);
    }
    if p[3] != 0 {
        return Err(PayloadError::Reserved);
    }
    Ok(Status {
        firmware: (p[0], p[1], p[2]),
        error_flags: u32_at(p, 4),
        uptime_s: u32_at(p, 8),
        supply_mv: u16_at(p, 12),
    })
}

fn decode_sampling(p: &[u8]) -> Result<SamplingMode, PayloadError> {
    if p.len() != SAMPLING_LEN {
        return Err(PayloadError::Length);
    }
    if p[1..4] != [0, 0, 0] {
        return Err(PayloadError::Reserved);
    }
    let (samples, period_ms) = (u32_at(p, 4), u32_at(p, 8));
    match p[0] {
        0 if samples == 0 && period_ms == 0 => Ok(SamplingMode::Continuous),
        1 if samples > 0 && period_ms > 0 => Ok(SamplingMode::Burst { samples, period_ms }),
        _ => Err(PayloadError::Sampling),
    }
}
