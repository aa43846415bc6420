//! `lab replay-features`: a firmware-sim recording through the agent's decoder, windowing and
//! features offline. The cross-build check (`cross/qemu-test.sh`) compares its output between
//! architectures, so it must produce windows, name them, and be deterministic.

use edgewatch_tests::workspace_bin;
use std::process::Command;

const CONFIG: &str = r#"
[mqtt]
url = "mqtt://127.0.0.1:1883"

[[asset]]
id = "pump-1"
shaft_rpm = 1480
bearing = "skf-6205"
sensors = [1]

[[asset]]
id = "pump-2"
shaft_rpm = 1480
bearing = "skf-6205"
sensors = [2]
"#;

fn replay(dir: &std::path::Path, frames: &std::path::Path, name: &str) -> String {
    let out = dir.join(name);
    let run = Command::new(workspace_bin("lab"))
        .args(["replay-features", "--config"])
        .arg(dir.join("agent.toml"))
        .arg("--frames")
        .arg(frames)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn a_recording_replays_to_the_same_named_windows_every_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agent.toml"), CONFIG).unwrap();
    let frames = dir.path().join("frames.bin");
    let sim = Command::new(workspace_bin("firmware-sim"))
        .args(["run", "--scenario", "demo", "--output", "file", "--fast"])
        .args(["--duration-s", "6", "--path"])
        .arg(&frames)
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );

    let first = replay(dir.path(), &frames, "a.jsonl");
    let second = replay(dir.path(), &frames, "b.jsonl");
    assert_eq!(first, second, "replay is not deterministic");
    let lines: Vec<serde_json::Value> = first
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 4, "only {} windows", lines.len());
    for l in &lines {
        let asset = l["asset"].as_str().unwrap();
        assert!(asset == "pump-1" || asset == "pump-2", "{l}");
        assert!(l["features"]["rms_g"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l["end_us"].as_u64() > l["start_us"].as_u64(), "{l}");
    }
    // Sensors the config does not list (3, 4, 5 in the demo scenario) give no windows.
    assert!(lines.iter().all(|l| l["sensor_id"].as_u64() <= Some(2)));
}
