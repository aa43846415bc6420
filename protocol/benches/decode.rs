//! Frame decoding throughput: the serial stream decoder (COBS unstuffing, CRC-32C, parsing)
//! and the bare frame parser used for MQTT payloads.
//!
//! `cargo bench -p edgewatch-protocol --bench decode`; criterion prints MiB/s per case.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use edgewatch_protocol::{
    Decoder, Frame, Header, MAX_SERIAL_LEN, Payload, VibrationBlock, decode_frame,
};
use std::hint::black_box;

/// A 3-axis vibration frame with `per_axis` samples per axis of a noisy-looking signal.
fn vibration_frame(sequence: u32, per_axis: usize) -> Frame {
    let mut samples = heapless::Vec::new();
    let mut state = 0x2545_f491_u32.wrapping_add(sequence);
    for _ in 0..per_axis * 3 {
        // xorshift: arbitrary bytes, including zeros, so COBS has work to do.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        samples.push((state >> 16) as i16).expect("fits");
    }
    Frame {
        header: Header {
            sensor_id: 7,
            sequence,
            timestamp_us: u64::from(sequence) * 20_000,
        },
        payload: Payload::Vibration(VibrationBlock {
            flags: edgewatch_protocol::BlockFlags::CONTINUOUS,
            sample_rate_hz: 12_800.0,
            axes: 3,
            scale_g_per_lsb: 0.001,
            samples,
        }),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for per_axis in [64usize, 256, 682] {
        let frames: Vec<Frame> = (0..64).map(|s| vibration_frame(s, per_axis)).collect();

        let mut stream = Vec::new();
        let mut buf = vec![0u8; MAX_SERIAL_LEN];
        for f in &frames {
            let n = f.encode_stuffed(&mut buf).expect("encodes");
            stream.extend_from_slice(&buf[..n]);
        }
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("serial_stream_3axis", per_axis),
            &stream,
            |b, stream| {
                b.iter(|| {
                    let mut decoder = Decoder::new();
                    let mut ok = 0usize;
                    for item in decoder.decode(black_box(stream)) {
                        ok += usize::from(item.is_ok());
                    }
                    assert_eq!(ok, 64);
                    ok
                })
            },
        );

        let raw: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| {
                let mut out = vec![0u8; f.encoded_len()];
                f.encode(&mut out).expect("encodes");
                out
            })
            .collect();
        let bytes: usize = raw.iter().map(Vec::len).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(
            BenchmarkId::new("mqtt_payload_3axis", per_axis),
            &raw,
            |b, raw| {
                b.iter(|| {
                    raw.iter()
                        .filter(|r| decode_frame(black_box(r)).is_ok())
                        .count()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
