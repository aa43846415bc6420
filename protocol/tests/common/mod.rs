//! Frames shared by the protocol's integration tests.
#![allow(dead_code)]

use edgewatch_protocol::{
    BlockFlags, Frame, Header, Payload, SamplingMode, Status, StatusFlags, Temperature,
    VibrationBlock,
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
            flags: BlockFlags::CONTINUOUS,
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
    let burst = Frame {
        header: Header {
            sensor_id: 9,
            sequence: 5,
            timestamp_us: 10_000_000,
        },
        payload: Payload::Vibration(VibrationBlock {
            flags: BlockFlags::burst(true, false),
            sample_rate_hz: 25600.0,
            axes: 1,
            scale_g_per_lsb: 16.0 / 32767.0,
            samples: heapless::Vec::from_slice(&[100, -100, 7]).unwrap(),
        }),
    };
    let sampling = Frame {
        header: Header {
            sensor_id: 9,
            sequence: 4,
            timestamp_us: 9_999_000,
        },
        payload: Payload::Sampling(SamplingMode::Burst {
            samples: 2560,
            period_ms: 10_000,
        }),
    };
    vec![
        ("vibration", vibration),
        ("temperature", temperature),
        ("status", status),
        ("burst", burst),
        ("sampling", sampling),
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
