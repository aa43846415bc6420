//! The sled outbox per record: append + flush + delete (what one record costs from the
//! pipeline to its acknowledgement), with flushes per record (alerts) and per batch of 100
//! (summaries within a flush interval). Besides criterion's times it prints the bytes sled
//! wrote to disk per record (`write_bytes` of /proc/self/io).
//!
//! `cargo bench -p edgewatch-agent --bench outbox`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use edgewatch_agent::outbox::{Kind, Outbox, Record, SledOutbox};
use std::hint::black_box;

/// A feature summary as the agent writes them (~700 bytes of JSON): the agent's field names,
/// a random record id and measurements with all their digits, so the outbox's compression sees
/// what it sees in service (a padded or repeated payload would compress to almost nothing).
fn record(n: u64) -> Record {
    // splitmix64: fixed pseudo-random digits per record.
    let mut state = n;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let unit = |x: u64| (x >> 11) as f64 / (1u64 << 53) as f64;
    let asset = n % 32;
    let payload = format!(
        "{{\"schema_version\":1,\"type\":\"summary\",\"record_id\":\"{:016x}{:016x}\",\
         \"agent_id\":\"gateway-01\",\"asset_id\":\"pump-{asset}\",\"sensor_id\":{asset},\
         \"window_start_us\":{},\"window_end_us\":{},\"model_version\":\"edgewatch-classifier-1\",\
         \"created_unix_ms\":{},\"windows\":15,\"rms_g_mean\":{},\"rms_g_max\":{},\
         \"velocity_rms_mm_s_mean\":{},\"velocity_rms_mm_s_max\":{},\"kurtosis_max\":{},\
         \"crest_factor_max\":{},\"bearing_line_db_max\":{},\"worst_zone\":\"A\",\
         \"worst_level\":\"normal\",\"anomaly_max\":{},\"temperature_c\":{},\
         \"class\":\"normal\",\"class_probability\":{},\"active_alert\":null}}",
        next(),
        next(),
        n * 5_000_000,
        n * 5_000_000 + 4_680_000,
        1_700_000_000_000 + n * 5_000,
        unit(next()) * 0.3,
        unit(next()) * 0.5,
        unit(next()) * 3.0,
        unit(next()) * 4.0,
        3.0 + unit(next()) * 2.0,
        3.0 + unit(next()) * 3.0,
        unit(next()) * 9.0,
        unit(next()) * 4.0,
        35.0 + unit(next()) * 20.0,
        0.5 + unit(next()) * 0.5,
    );
    Record {
        kind: Kind::Summary,
        created_unix_ms: 1_700_000_000_000 + n,
        key: format!("pump-{asset}"),
        payload: payload.into_bytes(),
    }
}

fn disk_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Appends `batch` records, flushes, deletes them, flushes: one acknowledged batch.
fn cycle(o: &SledOutbox, n: &mut u64, batch: u64) {
    let mut seqs = Vec::with_capacity(batch as usize);
    for _ in 0..batch {
        *n += 1;
        let a = o.append(&record(*n)).expect("append");
        seqs.push(a.seq.expect("under the cap"));
    }
    o.flush().expect("flush");
    o.delete(&seqs).expect("delete");
    o.flush().expect("flush");
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (outbox, _) = SledOutbox::open(&dir.path().join("outbox"), 64 << 20, 0).expect("open");
    let mut n = 0;
    let mut g = c.benchmark_group("outbox");
    for batch in [1_u64, 100] {
        g.throughput(Throughput::Elements(batch));
        g.bench_function(
            format!("append+flush+delete, flush every {batch} records"),
            |b| {
                b.iter_batched(
                    || (),
                    |()| cycle(black_box(&outbox), &mut n, batch),
                    BatchSize::SmallInput,
                );
            },
        );
        // Disk bytes per record for this flush pattern, over a fixed number of records.
        let before = disk_written();
        let records = 2000;
        for _ in 0..records / batch {
            cycle(&outbox, &mut n, batch);
        }
        let per_record = (disk_written() - before) as f64 / records as f64;
        println!(
            "outbox: flush every {batch} records: {per_record:.0} bytes written to disk per \
             record of {} bytes ({:.1}x)",
            record(0).payload.len(),
            per_record / record(0).payload.len() as f64
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
