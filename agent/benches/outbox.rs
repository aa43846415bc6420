//! The sled outbox per record: append + flush + delete (what one record costs from the
//! pipeline to its acknowledgement), with flushes per record (alerts) and per batch of 100
//! (summaries within a flush interval). Besides criterion's times it prints the bytes sled
//! wrote to disk per record (`write_bytes` of /proc/self/io).
//!
//! `cargo bench -p edgewatch-agent --bench outbox`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use edgewatch_agent::outbox::{Kind, Outbox, Record, SledOutbox};
use std::hint::black_box;

/// A feature summary of the size the agent produces (~700 bytes of JSON).
fn record(n: u64) -> Record {
    Record {
        kind: Kind::Summary,
        created_unix_ms: 1_700_000_000_000 + n,
        key: format!("pump-{}", n % 32),
        payload: format!(
            "{{\"schema_version\":1,\"n\":{n},\"pad\":\"{}\"}}",
            "x".repeat(660)
        )
        .into_bytes(),
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
