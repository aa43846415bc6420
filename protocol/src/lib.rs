//! The edgewatch sensor frame: one versioned binary format shared by sensor firmware, the
//! `firmware-sim` simulator and the gateway agent.
//!
//! The crate is `#![no_std]`, never allocates and does no I/O (sans-IO): callers hand it bytes and
//! get frames back, or hand it a frame and a buffer and get bytes back. The byte layout, the CRC
//! choice and test vectors are specified in `docs/protocol.md`; the tests check those vectors.
//!
//! # Layers
//! - [`Frame`]: a header ([`Header`]: sensor id, sequence number, sensor timestamp) and a typed
//!   [`Payload`]: a vibration block, temperature readings, or a status heartbeat.
//! - Raw frame bytes ([`Frame::encode`], [`decode_frame`]): header, payload and a CRC-32C. MQTT
//!   carries exactly these bytes as the message payload, since MQTT delimits messages itself.
//! - Serial framing ([`Frame::encode_stuffed`], [`Decoder`]): the raw bytes COBS-stuffed so they
//!   contain no `0x00`, with a `0x00` delimiter before and after. A reader that joins mid-stream,
//!   or that sees garbage on the line, resynchronises at the next delimiter.
//!
//! # Invariants
//! - Decoding never panics and never allocates, whatever the input (fuzzed, property-tested).
//! - Every rejected chunk of bytes is reported once as a typed [`DecodeError`], so the caller can
//!   count it; the bytes after it are decoded normally.
//! - A frame that decodes is bit-for-bit the frame that was encoded, unless corruption also
//!   produced a matching CRC-32C (probability about 2^-32 for random corruption).
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod decoder;
mod error;
mod frame;

pub use decoder::{DecodeIter, Decoder, Feed};
pub use error::{DecodeError, EncodeError, PayloadError};
pub use frame::{
    BlockFlags, Frame, FrameKind, Header, Payload, SamplingMode, Status, StatusFlags, Temperature,
    VibrationBlock, decode_frame, stuff,
};
/// The fixed-capacity collections used in frames, re-exported so users build frames with the
/// same version.
pub use heapless;

/// Frame format version written in byte 0 of every frame. A decoder refuses other versions with
/// [`DecodeError::UnknownVersion`]; later versions keep the version in byte 0.
pub const VERSION: u8 = 1;

/// Length of the fixed frame header in bytes.
pub const HEADER_LEN: usize = 20;

/// Length of the CRC-32C trailer in bytes.
pub const CRC_LEN: usize = 4;

/// Most int16 samples one vibration block carries, over all axes (e.g. 3 axes × 682, or
/// 1 axis × 2048). Bounds every buffer in the crate.
pub const MAX_VIBRATION_SAMPLES: usize = 2048;

/// Most axes in one vibration block.
pub const MAX_AXES: u8 = 3;

/// Most temperature channels in one temperature frame.
pub const MAX_TEMPERATURE_CHANNELS: usize = 8;

/// Length of the fixed part of a vibration payload, before the samples.
pub const VIBRATION_HEADER_LEN: usize = 12;

/// Largest payload of any frame kind.
pub const MAX_PAYLOAD_LEN: usize = VIBRATION_HEADER_LEN + 2 * MAX_VIBRATION_SAMPLES;

/// Largest raw frame: header, payload and CRC.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_PAYLOAD_LEN + CRC_LEN;

/// Largest COBS-stuffed frame, without its delimiters.
pub const MAX_STUFFED_LEN: usize = cobs::max_encoding_length(MAX_FRAME_LEN);

/// Largest serial encoding of a frame: a delimiter, the stuffed frame, a delimiter.
pub const MAX_SERIAL_LEN: usize = MAX_STUFFED_LEN + 2;

/// The frame delimiter on serial links.
pub const DELIMITER: u8 = 0x00;

/// CRC-32C (Castagnoli, as iSCSI), over the header and payload. See `docs/protocol.md` for why.
pub(crate) static CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
