//! The accelerated run-to-failure scenarios, continuous and snapshot: frames as a snapshot
//! sensor sends them, and a life whose vibration grows several times over after a steady
//! healthy first part.

use edgewatch_protocol::{Payload, SamplingMode};
use firmware_sim::physics::scenario::Scenario;

fn load(name: &str) -> Scenario {
    let path = format!("{}/scenarios/{name}", env!("CARGO_MANIFEST_DIR"));
    Scenario::from_toml_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Every frame of the scenario's only sensor, with its simulated time.
fn frames(s: &Scenario) -> Vec<(f64, edgewatch_protocol::Frame)> {
    let mut nodes = firmware_sim::nodes_for(s).unwrap();
    let node = &mut nodes[0];
    let mut out = Vec::new();
    while let Some((t, f)) = node.emit() {
        if t > s.duration_s.unwrap() {
            break;
        }
        out.push((t, f));
    }
    out
}

/// RMS in g of each run of contiguous vibration samples, cut every `len` samples, with the
/// start time of each, s since the sensor's first sample.
fn rms_by_chunk(frames: &[(f64, edgewatch_protocol::Frame)], len: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let (mut acc, mut n, mut start) = (0.0, 0, None);
    let t0 = frames
        .iter()
        .find_map(|(_, f)| {
            matches!(f.payload, Payload::Vibration(_)).then_some(f.header.timestamp_us)
        })
        .unwrap();
    for (_, f) in frames {
        if let Payload::Vibration(v) = &f.payload {
            start.get_or_insert(f.header.timestamp_us);
            for g in v.axis_g(0) {
                acc += f64::from(g).powi(2);
                n += 1;
                if n == len {
                    out.push(((start.unwrap() - t0) as f64 / 1e6, (acc / n as f64).sqrt()));
                    (acc, n, start) = (0.0, 0, None);
                }
            }
        }
    }
    out
}

/// Mean RMS of the chunks starting within `[from, to)` of a life.
fn mean_rms(chunks: &[(f64, f64)], from: f64, to: f64) -> f64 {
    let v: Vec<f64> = chunks
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|c| c.1)
        .collect();
    v.iter().sum::<f64>() / v.len() as f64
}

fn check_life(name: &str, chunks: &[(f64, f64)], life_s: f64) {
    let start = mean_rms(chunks, 0.0, 0.1 * life_s);
    let end = mean_rms(chunks, 0.95 * life_s, life_s);
    let worst_early = chunks
        .iter()
        .filter(|(t, _)| *t < 0.3 * life_s)
        .map(|(_, r)| (r / start - 1.0).abs())
        .fold(0.0, f64::max);
    let mid = mean_rms(chunks, 0.7 * life_s, 0.75 * life_s);
    println!(
        "{name}: RMS at start {start:.4} g; at 70-75 % of life {:.2}x; over the last 5 % {:.2}x; \
         first 30 % within {:.1} % of the start",
        mid / start,
        end / start,
        100.0 * worst_early
    );
    assert!(end >= 4.0 * start, "{name}: end {end} start {start}");
    assert!(worst_early <= 0.2, "{name}: {worst_early}");
    assert!(mid > 1.2 * start && mid < end, "{name}: grows through life");
}

#[test]
fn a_continuous_life_grows_several_times_after_a_steady_start() {
    let s = load("run-to-failure.toml");
    let f = frames(&s);
    assert!(matches!(
        f[0].1.payload,
        Payload::Sampling(SamplingMode::Continuous)
    ));
    check_life("continuous", &rms_by_chunk(&f, 2560), s.duration_s.unwrap());
}

#[test]
fn the_snapshot_life_comes_in_whole_bursts_and_grows_the_same() {
    let s = load("run-to-failure-burst.toml");
    let plan = s.burst.unwrap();
    let f = frames(&s);
    // The plan precedes the first vibration, and numbering runs on across kinds and bursts.
    assert_eq!(
        f[0].1.payload,
        Payload::Sampling(SamplingMode::Burst {
            samples: 2560,
            period_ms: 2000
        })
    );
    for (k, (_, frame)) in f.iter().enumerate() {
        assert_eq!(frame.header.sequence, k as u32);
    }
    // Bursts: each starts with a START block, ends with an END block, holds exactly
    // `samples` samples, contiguous inside, and starts `period_s` after the previous one.
    let mut bursts: Vec<(u64, usize)> = Vec::new();
    let mut next_us = None;
    for (_, frame) in &f {
        let Payload::Vibration(v) = &frame.payload else {
            continue;
        };
        assert!(v.flags.is_burst());
        let ts = frame.header.timestamp_us;
        if v.flags.starts_burst() {
            assert!(next_us.is_none(), "a burst started inside another");
            bursts.push((ts, 0));
        } else {
            let expected: u64 = next_us.expect("a block outside a burst");
            assert!(ts.abs_diff(expected) <= 1, "{ts} {expected}");
        }
        let n = v.samples_per_axis();
        bursts.last_mut().unwrap().1 += n;
        next_us = (!v.flags.ends_burst()).then(|| ts + (n as f64 * 1e6 / 25_600.0).round() as u64);
    }
    assert_eq!(bursts.len(), 120, "a burst every 2 s over 240 s");
    for w in bursts.windows(2) {
        assert_eq!(w[0].1, plan.samples);
        assert_eq!(w[1].0 - w[0].0, 2_000_000);
    }
    check_life("burst", &rms_by_chunk(&f, 2560), s.duration_s.unwrap());
}

#[test]
fn a_snapshot_holds_exactly_what_the_continuous_sensor_sends_at_that_time() {
    // The two files describe the same machine with the same seed; bursts start on block
    // boundaries, and gaps of 1.9 s are synthesised rather than fast-forwarded.
    let (stream, snapshot) = (
        load("run-to-failure.toml"),
        load("run-to-failure-burst.toml"),
    );
    let mut wanted = std::collections::HashMap::new();
    for (_, frame) in frames(&snapshot) {
        if let Payload::Vibration(v) = frame.payload {
            wanted.insert(frame.header.timestamp_us, v.samples);
        }
    }
    let mut node = firmware_sim::nodes_for(&stream).unwrap().remove(0);
    let mut matched = 0;
    while let Some((t, frame)) = node.emit() {
        if t > stream.duration_s.unwrap() {
            break;
        }
        if let Payload::Vibration(v) = frame.payload
            && let Some(samples) = wanted.get(&frame.header.timestamp_us)
        {
            assert_eq!(*samples, v.samples, "at {} us", frame.header.timestamp_us);
            matched += 1;
        }
    }
    assert_eq!(matched, wanted.len());
    assert_eq!(matched, 120 * 5);
}
