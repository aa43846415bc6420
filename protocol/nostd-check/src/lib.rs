//! A `no_std` consumer of the protocol crate; see Cargo.toml for why it exists.
#![no_std]
#![forbid(unsafe_code)]

use core::panic::PanicInfo;
use edgewatch_protocol::{Decoder, Frame, Header, MAX_SERIAL_LEN, Payload, Status};

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {}
}

/// Encodes a heartbeat and decodes it again, as firmware and gateway would.
pub fn round_trip(sequence: u32) -> usize {
    let frame = Frame {
        header: Header {
            sensor_id: 1,
            sequence,
            timestamp_us: 0,
        },
        payload: Payload::Status(Status::default()),
    };
    let mut buf = [0u8; MAX_SERIAL_LEN];
    let n = frame.encode_stuffed(&mut buf).unwrap_or(0);
    Decoder::new().decode(&buf[..n]).filter(|r| r.is_ok()).count()
}
