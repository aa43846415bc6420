//! firmware-sim end to end: the real binary writes to a real pty and to a real mosquitto, and a
//! reader in the test decodes every frame.

use edgewatch_protocol::{Decoder, Frame, decode_frame};
use edgewatch_tests::{Mosquitto, Proc, sim_summary, workspace_bin};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn count(v: &Value, path: &[&str]) -> u64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("summary lacks {path:?}"))
}

/// Asserts that per sensor the sequence numbers run without gaps or repeats from 0.
fn assert_sequences_intact(frames: &[Frame]) -> BTreeMap<u32, u32> {
    let mut next: BTreeMap<u32, u32> = BTreeMap::new();
    for f in frames {
        let n = next.entry(f.header.sensor_id).or_insert(0);
        assert_eq!(
            f.header.sequence, *n,
            "sensor {}: sequence {} where {} was due",
            f.header.sensor_id, f.header.sequence, n
        );
        *n += 1;
    }
    next
}

#[test]
fn every_frame_crosses_a_real_pty_and_garbage_is_skipped_and_counted() {
    let mut sim = Proc::spawn(
        "firmware-sim",
        Command::new(workspace_bin("firmware-sim"))
            .args([
                "run",
                "--scenario",
                "demo",
                "--output",
                "pty",
                "--fast",
                "--max-frames",
                "3000",
                "--inject",
                "garbage=0.05,garbage-max=200",
                "--inject-seed",
                "11",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let path = sim.read_stdout_until(Duration::from_secs(20), |l| {
        l.strip_prefix("pty: ").map(str::to_string)
    });
    let mut port = serialport::new(&path, 921_600)
        .timeout(Duration::from_millis(200))
        .open()
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    let mut errors = 0u64;
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut exited = None;
    loop {
        assert!(Instant::now() < deadline, "timed out reading the pty");
        match port.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => {
                for r in decoder.decode(&buf[..n]) {
                    match r {
                        Ok(f) => frames.push(f),
                        Err(_) => errors += 1,
                    }
                }
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            // The master side closed: the simulator is gone and the line is drained.
            Err(_) => {}
        }
        if exited.is_none() {
            exited = sim.child.try_wait().expect("try_wait");
        }
        if exited.is_some() {
            break;
        }
    }
    let status = exited.expect("simulator exited");
    let stderr = sim.stderr_text();
    assert!(status.success(), "simulator failed: {stderr}");
    let s = sim_summary(&stderr);
    assert_eq!(count(&s, &["frames_generated"]), 3000);
    assert_eq!(
        frames.len() as u64,
        count(&s, &["injection", "frames_out"]),
        "frames decoded vs sent; first and last decoded: {:?} .. {:?}, decode errors {errors}, \
         garbage chunks {}, summary {s}",
        frames
            .first()
            .map(|f| (f.header.sensor_id, f.header.sequence)),
        frames
            .last()
            .map(|f| (f.header.sensor_id, f.header.sequence)),
        count(&s, &["injection", "garbage_chunks"]),
    );
    assert_eq!(frames.len(), 3000, "no frame may be lost on the pty");
    let garbage = count(&s, &["injection", "garbage_chunks"]);
    assert!(garbage > 50, "the test must inject garbage: {garbage}");
    assert_eq!(errors, garbage, "every garbage chunk is rejected once");
    let per_sensor = assert_sequences_intact(&frames);
    assert!(per_sensor.len() >= 2, "the demo has several sensors");
}

#[test]
fn every_frame_reaches_a_subscriber_through_a_real_mosquitto() {
    let broker = Mosquitto::start();
    // Subscribe first so no message is published before the subscription exists.
    let mut opts = MqttOptions::new("sim-test-sub", "127.0.0.1", broker.port);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_max_packet_size(64 * 1024, 64 * 1024);
    let (client, mut connection) = Client::new(opts, 64);
    client
        .subscribe("sensors/#", QoS::AtLeastOnce)
        .expect("subscribe");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = tx.send(None);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx
                        .send(Some((p.topic.clone(), p.payload.to_vec())))
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).expect("suback"),
        None
    );
    let mut sim = Proc::spawn(
        "firmware-sim",
        Command::new(workspace_bin("firmware-sim"))
            .args([
                "run",
                "--scenario",
                "demo",
                "--output",
                "mqtt",
                "--mqtt-url",
                &broker.url(),
                "--fast",
                "--max-frames",
                "1500",
                "--inject",
                "corrupt=0.02",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let status = sim.wait_exit(Duration::from_secs(120));
    let stderr = sim.stderr_text();
    assert!(status.success(), "simulator failed: {stderr}");
    let s = sim_summary(&stderr);
    let expected_ok = count(&s, &["injection", "frames_out"]);
    let expected_bad = count(&s, &["injection", "corrupted"]);
    assert!(expected_bad > 0, "the test must inject corrupted frames");
    let mut frames = Vec::new();
    let mut bad = 0u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while (frames.len() as u64) + bad < expected_ok + expected_bad {
        let left = deadline.saturating_duration_since(Instant::now());
        let (topic, payload) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| {
                panic!(
                    "received {} frames and {bad} rejects of {expected_ok} + {expected_bad}",
                    frames.len()
                )
            })
            .expect("a publish");
        match decode_frame(&payload) {
            Ok(f) => {
                let parts: Vec<&str> = topic.split('/').collect();
                assert_eq!(parts.len(), 3, "topic {topic}");
                assert_eq!(parts[0], "sensors");
                assert_eq!(parts[2], f.header.sensor_id.to_string(), "topic {topic}");
                frames.push(f);
            }
            Err(_) => bad += 1,
        }
    }
    assert_eq!(frames.len() as u64, expected_ok);
    assert_eq!(bad, expected_bad);
    // QoS 1 from one publisher keeps order per topic; corrupted frames leave sequence gaps, so
    // check order, not contiguity.
    let mut last: BTreeMap<u32, u32> = BTreeMap::new();
    for f in &frames {
        if let Some(prev) = last.insert(f.header.sensor_id, f.header.sequence) {
            assert!(
                f.header.sequence > prev,
                "sensor {} out of order",
                f.header.sensor_id
            );
        }
    }
    drop(client);
    drop(reader);
}

#[test]
fn a_replayed_recording_arrives_as_frames_carrying_its_samples() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec.f32");
    let out = dir.path().join("frames.bin");
    // 2.5 blocks of a known signal in g; the half block at the end is not sent.
    let samples: Vec<f32> = (0..1280).map(|i| ((i as f32) * 0.37).sin() * 2.5).collect();
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&recording, bytes).unwrap();
    let status = Command::new(workspace_bin("firmware-sim"))
        .args(["replay"])
        .arg(&recording)
        .args([
            "--sample-rate-hz",
            "48828.125",
            "--block-size",
            "512",
            "--sensor-id",
            "9",
        ])
        .args(["--output", "file", "--fast", "--path"])
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let stream = std::fs::read(&out).unwrap();
    let frames: Vec<Frame> = Decoder::new()
        .decode(&stream)
        .map(|r| r.expect("only valid frames"))
        .collect();
    let blocks: Vec<_> = frames
        .iter()
        .filter_map(|f| match &f.payload {
            edgewatch_protocol::Payload::Vibration(v) => Some((f.header, v)),
            _ => None,
        })
        .collect();
    assert_eq!(blocks.len(), 2);
    for (k, (header, v)) in blocks.iter().enumerate() {
        assert_eq!(header.sensor_id, 9);
        assert_eq!(v.sample_rate_hz, 48828.125);
        assert_eq!(
            header.timestamp_us,
            (k as f64 * 512.0 / 48828.125 * 1e6).round() as u64
        );
        for (i, g) in v.axis_g(0).enumerate() {
            let want = samples[k * 512 + i];
            // int16 quantisation at a full scale just above the recording's peak.
            assert!(
                (g - want).abs() < 2.7 / 32767.0 + 1e-6,
                "sample {i}: {g} vs {want}"
            );
        }
    }
}
