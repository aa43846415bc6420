//! Feature extraction per window (spectrum, velocity, shaft orders, envelope spectrum and
//! fault-frequency peaks, band energies, moments) by window length.
//!
//! `cargo bench -p edgewatch-agent --bench features`; criterion prints the time per window
//! and windows per second. Group `features`: fixed lengths at 12.8 kHz; group
//! `one_second`: the agent's default window (`[window] duration_s = 1`) at the sample rates
//! sensors use, one per second of signal per axis at half overlap twice that.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use edgewatch_agent::analyze::features::{
    FaultOrders, FeatureConfig, FeatureExtractor, MachineContext,
};
use edgewatch_agent::assemble::window::WindowConfig;
use std::f64::consts::TAU;
use std::hint::black_box;

const SAMPLE_RATE_HZ: f64 = 12_800.0;
const SHAFT_HZ: f64 = 29.95;

/// Shaft tone, an outer-race impact train ringing at 3 kHz, and noise: the work a faulty
/// window takes (the extractor does the same work on any input).
fn window(len: usize, sample_rate_hz: f64) -> Vec<f32> {
    let bpfo = 3.585 * SHAFT_HZ;
    let mut state = 0x9e37_79b9_u32;
    (0..len)
        .map(|i| {
            let t = i as f64 / sample_rate_hz;
            let since_impact = t % (1.0 / bpfo);
            let ring = 0.5 * (-since_impact * 600.0).exp() * (TAU * 3000.0 * since_impact).sin();
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = (f64::from(state) / f64::from(u32::MAX) - 0.5) * 0.1;
            (0.2 * (TAU * SHAFT_HZ * t).sin() + ring + noise) as f32
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let ctx = MachineContext {
        shaft_hz: SHAFT_HZ,
        orders: FaultOrders {
            bpfo: 3.585,
            bpfi: 5.415,
            bsf: 2.357,
            ftf: 0.398,
        },
    };
    let cfg = FeatureConfig::default();
    let mut group = c.benchmark_group("features");
    group.throughput(Throughput::Elements(1));
    for len in [1024usize, 4096, 8192, 16384] {
        let mut extractor = FeatureExtractor::new(len, SAMPLE_RATE_HZ, &cfg).expect("valid");
        let samples = window(len, SAMPLE_RATE_HZ);
        group.bench_with_input(BenchmarkId::new("window", len), &samples, |b, s| {
            b.iter(|| extractor.extract(black_box(s), &ctx).expect("extracts"))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("one_second");
    group.throughput(Throughput::Elements(1));
    for rate in [12_000.0, 20_000.0, 25_600.0, 48_800.0] {
        let len = WindowConfig::default().length_for(rate, None);
        let mut extractor = FeatureExtractor::new(len, rate, &cfg).expect("valid");
        let samples = window(len, rate);
        let id = format!("{rate} Hz, {len} samples");
        group.bench_with_input(BenchmarkId::new("window", id), &samples, |b, s| {
            b.iter(|| extractor.extract(black_box(s), &ctx).expect("extracts"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
