//! Frames shared by the protocol's integration tests.
#![allow(dead_code)]

use edgewatch_protocol::{
    Frame, Header, Payload, Status, StatusFlags, Temperature, VibrationBlock,
};

/// The frames whose encodings `docs/protocol.md` lists as test vectors, by name.
pub fn vector_frames() -> Vec<(&'static str, Frame)> {
    let vibration = Frame {
        header: Header {
            sensor_id: 7,
            sequence: 42,
            timestamp_us: 1_000_000,
        },
        payload: Payload::Vibration(VibrationBlock {
            sample_rate_hz: 12800.0,
            axes: 2,
            scale_g_per_lsb: 16.0 / 32767.0,
            samples: heapless::Vec::from_slice(&[0, 1, -1, 256, 32767, -32768]).unwrap(),
        }),
    };
    let temperature = Frame {
        header: Header {
            sensor_id: 7,
            sequence: 43,
            timestamp_us: 1_040_000,
        },
        payload: Payload::Temperature(Temperature {
            centi_celsius: heapless::Vec::from_slice(&[4235, -1250]).unwrap(),
        }),
    };
    let status = Frame {
        header: Header {
            sensor_id: 0x0102_0304,
            sequence: 0xFFFF_FFFF,
            timestamp_us: 0x0000_0001_0000_0000,
        },
        payload: Payload::Status(Status {
            firmware: (1, 2, 3),
            error_flags: StatusFlags::BROWNOUT | StatusFlags::CLOCK_STEP,
            uptime_s: 3600,
            supply_mv: 3300,
        }),
    };
    vec![
        ("vibration", vibration),
        ("temperature", temperature),
        ("status", status),
    ]
}

pub fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| {
            line.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
