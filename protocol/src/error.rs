//! Typed errors. All are recoverable: a decode error concerns one chunk of bytes only, and the
//! decoder carries on with the bytes after it.

use core::fmt;

/// Why a chunk of bytes was rejected. Each rejected chunk is reported exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A serial chunk grew past [`crate::MAX_STUFFED_LEN`] bytes without a delimiter; the decoder
    /// dropped it up to the next delimiter.
    Oversize,
    /// The chunk is not valid COBS (a stuffing code points past the end of the chunk).
    Stuffing,
    /// Fewer bytes than the header and CRC need, or fewer than the header's payload length says.
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes the frame needs.
        needed: usize,
    },
    /// More bytes than the header's payload length accounts for.
    TrailingBytes {
        /// Bytes present.
        len: usize,
        /// Bytes the header describes.
        expected: usize,
    },
    /// The CRC-32C over header and payload does not match the trailer.
    Crc {
        /// CRC carried in the frame.
        received: u32,
        /// CRC computed over the bytes received.
        computed: u32,
    },
    /// Byte 0 holds a frame format version this decoder does not know.
    UnknownVersion(u8),
    /// The header's frame kind is not one this version defines.
    UnknownKind(u8),
    /// The CRC matched but the payload breaks a rule of its kind.
    Payload(PayloadError),
}

/// A payload that is well delimited and checksummed but not valid for its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadError {
    /// A vibration block names 0 or more than [`crate::MAX_AXES`] axes.
    Axes(u8),
    /// A vibration block's payload length does not match axes × samples.
    VibrationLength,
    /// A vibration block with more than [`crate::MAX_VIBRATION_SAMPLES`] samples, or none.
    SampleCount(usize),
    /// A sample rate that is not a finite positive number.
    SampleRate,
    /// A scale factor that is not a finite positive number.
    Scale,
    /// A temperature frame with no channels or more than [`crate::MAX_TEMPERATURE_CHANNELS`].
    TemperatureChannels(u8),
    /// A temperature or status payload whose length does not match its content.
    Length,
    /// A reserved byte or bit is not zero (for a vibration block: unknown flag bits, or a
    /// burst start or end mark without the burst bit).
    Reserved,
    /// A sampling plan with an unknown mode, or a burst of no samples or no period.
    Sampling,
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is shorter than the encoding; the needed length is given.
    BufferTooSmall {
        /// Bytes the encoding needs.
        needed: usize,
    },
    /// The frame itself breaks a payload rule (e.g. a vibration block with no samples).
    Invalid(PayloadError),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Oversize => write!(
                f,
                "oversize frame: more than {} bytes before a delimiter",
                crate::MAX_STUFFED_LEN
            ),
            Self::Stuffing => write!(f, "invalid COBS stuffing"),
            Self::Truncated { len, needed } => {
                write!(f, "truncated frame: {len} bytes, {needed} needed")
            }
            Self::TrailingBytes { len, expected } => {
                write!(f, "frame length {len} bytes, header describes {expected}")
            }
            Self::Crc { received, computed } => write!(
                f,
                "CRC-32C mismatch: frame carries {received:#010x}, computed {computed:#010x}"
            ),
            Self::UnknownVersion(v) => write!(f, "unknown frame version {v}"),
            Self::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            Self::Payload(e) => write!(f, "invalid payload: {e}"),
        }
    }
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Axes(n) => write!(f, "{n} axes (1 to {} allowed)", crate::MAX_AXES),
            Self::VibrationLength => write!(f, "vibration length does not match axes x samples"),
            Self::SampleCount(n) => write!(
                f,
                "{n} samples (1 to {} allowed)",
                crate::MAX_VIBRATION_SAMPLES
            ),
            Self::SampleRate => write!(f, "sample rate is not a finite positive number"),
            Self::Scale => write!(f, "scale factor is not a finite positive number"),
            Self::TemperatureChannels(n) => write!(
                f,
                "{n} temperature channels (1 to {} allowed)",
                crate::MAX_TEMPERATURE_CHANNELS
            ),
            Self::Length => write!(f, "payload length does not match its content"),
            Self::Reserved => write!(f, "reserved byte or flag bit is not zero"),
            Self::Sampling => write!(
                f,
                "sampling plan is neither continuous (0, 0, 0) nor a burst of samples > 0 every \
                 period > 0"
            ),
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
            Self::Invalid(e) => write!(f, "frame cannot be encoded: {e}"),
        }
    }
}

impl core::error::Error for DecodeError {}
impl core::error::Error for PayloadError {}
impl core::error::Error for EncodeError {}

impl From<PayloadError> for DecodeError {
    fn from(e: PayloadError) -> Self {
        Self::Payload(e)
    }
}
