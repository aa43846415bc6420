//! Property tests of the codec: round trips, garbage between frames, truncation, bit flips and
//! arbitrary chunking of the byte stream.

use edgewatch_protocol::{
    BlockFlags, DecodeError, Decoder, Frame, Header, MAX_SERIAL_LEN, MAX_TEMPERATURE_CHANNELS,
    MAX_VIBRATION_SAMPLES, Payload, SamplingMode, Status, Temperature, VibrationBlock,
    decode_frame,
};
use proptest::prelude::*;

fn header() -> impl Strategy<Value = Header> {
    (any::<u32>(), any::<u32>(), any::<u64>()).prop_map(|(sensor_id, sequence, timestamp_us)| {
        Header {
            sensor_id,
            sequence,
            timestamp_us,
        }
    })
}

fn vibration() -> impl Strategy<Value = Payload> {
    (1u8..=3)
        .prop_flat_map(|axes| {
            let max_per_axis = MAX_VIBRATION_SAMPLES / usize::from(axes);
            (
                Just(axes),
                1.0f32..100_000.0,
                1e-6f32..1.0,
                (1..=max_per_axis).prop_flat_map(move |n| {
                    prop::collection::vec(any::<i16>(), n * usize::from(axes))
                }),
                prop_oneof![
                    Just(BlockFlags::CONTINUOUS),
                    any::<(bool, bool)>().prop_map(|(first, last)| BlockFlags::burst(first, last)),
                ],
            )
        })
        .prop_map(|(axes, sample_rate_hz, scale_g_per_lsb, samples, flags)| {
            Payload::Vibration(VibrationBlock {
                flags,
                sample_rate_hz,
                axes,
                scale_g_per_lsb,
                samples: heapless::Vec::from_slice(&samples).unwrap(),
            })
        })
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        vibration(),
        prop::collection::vec(any::<i16>(), 1..=MAX_TEMPERATURE_CHANNELS).prop_map(|c| {
            Payload::Temperature(Temperature {
                centi_celsius: heapless::Vec::from_slice(&c).unwrap(),
            })
        }),
        (
            any::<(u8, u8, u8)>(),
            any::<u32>(),
            any::<u32>(),
            any::<u16>()
        )
            .prop_map(
                |(firmware, error_flags, uptime_s, supply_mv)| Payload::Status(Status {
                    firmware,
                    error_flags,
                    uptime_s,
                    supply_mv,
                })
            ),
        prop_oneof![
            Just(SamplingMode::Continuous),
            (1u32.., 1u32..)
                .prop_map(|(samples, period_ms)| SamplingMode::Burst { samples, period_ms }),
        ]
        .prop_map(Payload::Sampling),
    ]
}

/// Writes a correct CRC-32C over a raw frame edited by hand, so the decoder judges its content.
fn reseal(raw: &mut [u8]) {
    let body = raw.len() - 4;
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&raw[..body]);
    raw[body..].copy_from_slice(&crc.to_le_bytes());
}

fn frame() -> impl Strategy<Value = Frame> {
    (header(), payload()).prop_map(|(header, payload)| Frame { header, payload })
}

fn serial(frame: &Frame) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_SERIAL_LEN];
    let n = frame.encode_stuffed(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn decode_all(decoder: &mut Decoder, bytes: &[u8]) -> Vec<Result<Frame, DecodeError>> {
    decoder.decode(bytes).collect()
}

/// Number of non-empty chunks between zero bytes: each is one rejected chunk.
fn chunks(garbage: &[u8]) -> usize {
    garbage.split(|&b| b == 0).filter(|c| !c.is_empty()).count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn raw_encoding_round_trips(f in frame()) {
        let mut buf = vec![0u8; f.encoded_len()];
        let n = f.encode(&mut buf).unwrap();
        prop_assert_eq!(n, f.encoded_len());
        prop_assert_eq!(decode_frame(&buf), Ok(f));
    }

    #[test]
    fn serial_stream_round_trips_in_any_chunking(
        frames in prop::collection::vec(frame(), 1..6),
        cut in prop::collection::vec(1usize..700, 1..40),
    ) {
        let stream: Vec<u8> = frames.iter().flat_map(serial).collect();
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        let mut rest = &stream[..];
        for size in cut.iter().cycle() {
            if rest.is_empty() { break; }
            let (now, later) = rest.split_at((*size).min(rest.len()));
            got.extend(decode_all(&mut decoder, now));
            rest = later;
        }
        prop_assert_eq!(got, frames.into_iter().map(Ok).collect::<Vec<_>>());
        prop_assert_eq!(decoder.pending(), 0);
    }

    #[test]
    fn garbage_between_frames_is_counted_and_skipped(
        frames in prop::collection::vec(frame(), 1..5),
        garbage in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 5),
    ) {
        let mut stream = Vec::new();
        let mut expected_errors = 0;
        for (f, g) in frames.iter().zip(&garbage) {
            stream.extend_from_slice(g);
            expected_errors += chunks(g);
            stream.extend(serial(f));
        }
        let mut decoder = Decoder::new();
        let got = decode_all(&mut decoder, &stream);
        let decoded: Vec<Frame> = got.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
        let errors = got.iter().filter(|r| r.is_err()).count();
        prop_assert_eq!(decoded, frames);
        prop_assert_eq!(errors, expected_errors);
    }

    #[test]
    fn a_truncated_frame_is_an_error_and_the_next_frame_survives(
        a in frame(), b in frame(), keep in 0.0f64..1.0,
    ) {
        let first = serial(&a);
        // Keep the leading delimiter and part of the body, then the line breaks off.
        let cut = 2 + ((first.len() - 3) as f64 * keep) as usize;
        let mut stream = first[..cut].to_vec();
        stream.extend(serial(&b));
        let got = decode_all(&mut Decoder::new(), &stream);
        prop_assert_eq!(got.len(), 2);
        prop_assert!(got[0].is_err());
        prop_assert_eq!(&got[1], &Ok(b));
    }

    #[test]
    fn a_flipped_bit_never_yields_a_different_frame(
        a in frame(), b in frame(), bit in any::<prop::sample::Index>(),
    ) {
        let mut first = serial(&a);
        let i = bit.index(first.len() * 8);
        first[i / 8] ^= 1 << (i % 8);
        let mut stream = first;
        stream.extend(serial(&b));
        let got = decode_all(&mut Decoder::new(), &stream);
        let decoded: Vec<Frame> = got.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
        // The corrupted frame is rejected (a flip of a delimiter can merge or split chunks,
        // costing the neighbour too), and nothing else is ever invented.
        prop_assert!(!decoded.contains(&a) || a == b);
        for f in &decoded {
            prop_assert_eq!(f, &b);
        }
        prop_assert!(got.iter().any(|r| r.is_err()));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_every_chunk_is_reported(
        bytes in prop::collection::vec(any::<u8>(), 0..10_000),
    ) {
        let got = decode_all(&mut Decoder::new(), &bytes);
        // Every complete chunk (terminated by a zero) gives exactly one result.
        let complete = match bytes.iter().rposition(|&b| b == 0) {
            Some(end) => chunks(&bytes[..end]),
            None => 0,
        };
        prop_assert_eq!(got.len(), complete);
        let _ = decode_frame(&bytes);
    }
}

#[test]
fn an_oversize_chunk_is_reported_once_and_the_next_frame_survives() {
    let next = Frame {
        header: Header::default(),
        payload: Payload::Status(Status::default()),
    };
    let mut stream = vec![0xAA; 10_000];
    stream.extend(serial(&next));
    let mut decoder = Decoder::new();
    // Feed the oversize run in pieces: the error comes once, at its delimiter.
    let mut got = Vec::new();
    for piece in stream.chunks(997) {
        got.extend(decode_all(&mut decoder, piece));
    }
    assert_eq!(got, vec![Err(DecodeError::Oversize), Ok(next)]);
}

#[test]
fn a_frame_that_breaks_payload_rules_is_refused_by_the_encoder() {
    let f = Frame {
        header: Header::default(),
        payload: Payload::Vibration(VibrationBlock {
            flags: edgewatch_protocol::BlockFlags::CONTINUOUS,
            sample_rate_hz: f32::NAN,
            axes: 1,
            scale_g_per_lsb: 1.0,
            samples: heapless::Vec::from_slice(&[1, 2]).unwrap(),
        }),
    };
    let mut buf = [0u8; 64];
    assert!(f.encode(&mut buf).is_err());
    let odd = Frame {
        header: Header::default(),
        payload: Payload::Vibration(VibrationBlock {
            flags: edgewatch_protocol::BlockFlags::CONTINUOUS,
            sample_rate_hz: 100.0,
            axes: 2,
            scale_g_per_lsb: 1.0,
            samples: heapless::Vec::from_slice(&[1, 2, 3]).unwrap(),
        }),
    };
    assert!(odd.encode(&mut buf).is_err());
}

#[test]
fn an_unknown_kind_with_a_good_crc_is_reported_as_such() {
    let f = Frame {
        header: Header::default(),
        payload: Payload::Status(Status::default()),
    };
    let mut buf = vec![0u8; f.encoded_len()];
    f.encode(&mut buf).unwrap();
    buf[1] = 9;
    reseal(&mut buf);
    assert_eq!(decode_frame(&buf), Err(DecodeError::UnknownKind(9)));
}

#[test]
fn a_too_small_output_buffer_is_an_error_not_a_panic() {
    let f = Frame {
        header: Header::default(),
        payload: Payload::Status(Status::default()),
    };
    let mut small = [0u8; 10];
    assert!(f.encode(&mut small).is_err());
    assert!(f.encode_stuffed(&mut small).is_err());
}

#[test]
fn burst_marks_without_the_burst_bit_and_impossible_plans_are_refused() {
    let common = |payload| Frame {
        header: Header::default(),
        payload,
    };
    let block = |flags| {
        Payload::Vibration(VibrationBlock {
            flags: BlockFlags(flags),
            sample_rate_hz: 100.0,
            axes: 1,
            scale_g_per_lsb: 0.001,
            samples: heapless::Vec::from_slice(&[1, 2]).unwrap(),
        })
    };
    let mut buf = vec![0u8; 256];
    for bad in [BlockFlags::START, BlockFlags::END, 1 << 3, 0x80] {
        assert!(
            common(block(bad)).encode(&mut buf).is_err(),
            "flags {bad:#x}"
        );
        // The same bytes written by hand (flags at payload offset 5) are refused by the decoder.
        let n = common(block(BlockFlags::BURST)).encode(&mut buf).unwrap();
        buf[20 + 5] = bad;
        reseal(&mut buf[..n]);
        assert_eq!(
            decode_frame(&buf[..n]),
            Err(DecodeError::Payload(
                edgewatch_protocol::PayloadError::Reserved
            )),
            "flags {bad:#x}"
        );
    }
    for plan in [
        SamplingMode::Burst {
            samples: 0,
            period_ms: 10,
        },
        SamplingMode::Burst {
            samples: 10,
            period_ms: 0,
        },
    ] {
        assert!(common(Payload::Sampling(plan)).encode(&mut buf).is_err());
    }
    // A continuous plan with counts is refused on decoding.
    let n = common(Payload::Sampling(SamplingMode::Continuous))
        .encode(&mut buf)
        .unwrap();
    buf[20 + 4] = 1;
    reseal(&mut buf[..n]);
    assert_eq!(
        decode_frame(&buf[..n]),
        Err(DecodeError::Payload(
            edgewatch_protocol::PayloadError::Sampling
        ))
    );
}
