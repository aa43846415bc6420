//! Inference per window with the built-in classifier in tract (batch 1, one thread, the plan
//! optimised once at load), float and int8, on the committed golden inputs (real feature
//! vectors of simulated machines, `models/golden.json`); and the load itself (checksum,
//! parse, optimise, probe run), which the agent pays once at start and on a reload.
//!
//! `cargo bench -p edgewatch-agent --bench inference`; criterion prints the time per window.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use edgewatch_agent::analyze::features::MODEL_INPUT_LEN;
use edgewatch_agent::analyze::model::{Model, Variant};
use std::hint::black_box;

/// The golden cases' inputs.
fn golden_inputs() -> Vec<[f32; MODEL_INPUT_LEN]> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/golden.json");
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let golden: serde_json::Value = serde_json::from_slice(&text).expect("golden.json parses");
    golden["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let v: Vec<f32> = case["inputs"]
                .as_array()
                .expect("inputs")
                .iter()
                .map(|x| x.as_f64().expect("a number") as f32)
                .collect();
            v.try_into().expect("one value per model input")
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let inputs = golden_inputs();
    let mut group = c.benchmark_group("inference");
    // One element per window classified.
    group.throughput(Throughput::Elements(inputs.len() as u64));
    for variant in [Variant::Float, Variant::Int8] {
        let mut model = Model::builtin(variant).expect("the built-in model loads");
        group.bench_function(BenchmarkId::new("windows", variant.key()), |b| {
            b.iter(|| {
                for x in &inputs {
                    black_box(model.classify(black_box(x)).expect("classifies"));
                }
            })
        });
    }
    group.finish();

    let mut load = c.benchmark_group("model_load");
    load.sample_size(20);
    for variant in [Variant::Float, Variant::Int8] {
        load.bench_function(BenchmarkId::new("builtin", variant.key()), |b| {
            b.iter(|| Model::builtin(black_box(variant)).expect("loads"))
        });
    }
    load.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
