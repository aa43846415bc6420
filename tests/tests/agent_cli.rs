//! The agent's command line: `validate` exit codes and messages, the demo, and a clean drain
//! on SIGTERM.

use edgewatch_protocol::MAX_SERIAL_LEN;
use edgewatch_tests::{Agent, Proc, metric, pty_pair, workspace_bin};
use firmware_sim::link::{Injector, LinkFaults, Wire};
use serialport::SerialPort;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn validate(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(workspace_bin("agent"))
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

const GOOD: &str = r#"
[mqtt]
url = "mqtt://127.0.0.1:1883"

[[asset]]
id = "pump-1"
shaft_rpm = 1480
bearing = "skf-6205"
sensors = [1]
"#;

#[test]
fn validate_exits_0_for_a_good_file_and_2_naming_the_field_for_a_bad_one() {
    let (code, out) = validate(GOOD);
    assert_eq!(code, 0, "{out}");
    for (bad, field) in [
        (
            GOOD.replace("sensors = [1]", "sensors = [1]\ncolour = \"red\""),
            "colour",
        ),
        (
            GOOD.replace("shaft_rpm = 1480", "shaft_rpm = \"1480\""),
            "shaft_rpm",
        ),
        (
            GOOD.replace("shaft_rpm = 1480", "shaft_rpm = 1"),
            "asset[0].shaft_rpm",
        ),
        (GOOD.replace("sensors = [1]", ""), "asset"),
    ] {
        let (code, out) = validate(&bad);
        assert_eq!(code, 2, "{bad}\n{out}");
        assert!(out.contains(field), "`{field}` not named in:\n{out}");
    }
    // A device not plugged in is a warning: the service starts and waits for it.
    let (code, out) =
        validate(&GOOD.replace("[mqtt]", "[[serial]]\ndevice = \"/dev/ttyNOPE7\"\n[mqtt]"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning: serial[0].device"), "{out}");
    let (code, out) = validate("this is = = not toml");
    assert_eq!(code, 2, "{out}");
    let missing = Command::new(workspace_bin("agent"))
        .args(["validate", "--config", "/nonexistent/agent.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/agent.toml"));
}

#[test]
fn the_example_configurations_parse_and_the_laptop_one_matches_the_simulator_demo() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/");
    let laptop = std::fs::read_to_string(format!("{root}laptop-demo.toml")).unwrap();
    let (code, out) = validate(&laptop);
    assert_eq!(code, 0, "{out}");
    let pi = std::fs::read_to_string(format!("{root}raspberry-pi.toml")).unwrap();
    let (code, out) = validate(&pi);
    // The Pi's USB serial adapter is not plugged into the test machine: a warning, nothing else.
    assert_eq!(code, 0, "{out}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(warnings[0].contains("serial[0].device"), "{out}");
    let config = edgewatch_agent::config::Config::parse(&laptop).unwrap();
    let demo = firmware_sim::physics::scenario::Scenario::builtin("demo").unwrap();
    assert_eq!(config.assets.len(), demo.assets.len());
    for (a, s) in config.assets.iter().zip(&demo.assets) {
        assert_eq!(a.id, s.id);
        assert_eq!(a.sensors, vec![s.sensor_id]);
        assert_eq!(a.shaft_rpm, s.machine.rpm);
        assert_eq!(a.bearing, s.machine.bearing);
    }
}

#[test]
fn the_demo_runs_the_whole_pipeline_and_shows_every_asset() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Proc::spawn(
        "lab demo",
        Command::new(workspace_bin("lab"))
            .args([
                "demo",
                "--duration-s",
                "8",
                "--metrics-listen",
                "",
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let status = demo.wait_exit(Duration::from_secs(60));
    let mut out = String::new();
    demo.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "{out}");
    let last = out.rsplit("edgewatch demo:").next().unwrap();
    let scenario = firmware_sim::physics::scenario::Scenario::builtin("demo").unwrap();
    for asset in &scenario.assets {
        let row = last
            .lines()
            .find(|l| l.starts_with(&asset.id))
            .unwrap_or_else(|| panic!("no row for {} in:\n{last}", asset.id));
        let windows: u64 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(windows > 0, "{row}");
        assert!(row.contains(" Hz "), "no bearing peak in {row}");
    }
}

#[test]
fn sigterm_drains_every_window_already_cut() {
    let (mut master, slave) = pty_pair();
    let config = format!(
        "[agent]\ndata_dir = \"{{data_dir}}\"\n[metrics]\nlisten = \"{{metrics}}\"\n\
         [pipeline]\ndrain_timeout_ms = 120000\n\
         [[serial]]\ndevice = \"{}\"\n\
         [[asset]]\nid = \"pump-1\"\nshaft_rpm = 1480\nbearing = \"skf-6205\"\nsensors = [1]\n",
        slave.name().unwrap()
    );
    let mut agent = Agent::start(&config);
    let scenario = firmware_sim::physics::scenario::Scenario::builtin("healthy").unwrap();
    let mut nodes = firmware_sim::nodes_for(&scenario).unwrap();
    let mut injector = Injector::new(LinkFaults::default(), 1);
    let mut buf = vec![0u8; MAX_SERIAL_LEN];
    let wire = firmware_sim::driver::collect(&mut nodes, &mut injector, 3000);
    for (_, w) in &wire {
        if let Wire::Frame { raw, .. } = w {
            let n = edgewatch_protocol::stuff(raw, &mut buf).unwrap();
            master.write_all(&buf[..n]).unwrap();
        }
    }
    // Let the assembler catch up with the line, then stop while windows are still queued.
    let m = agent
        .wait_metrics(Duration::from_secs(60), |m| {
            metric(m, "edgewatch_frames_received_total") >= 2990.0
        })
        .unwrap_or_else(|m| panic!("frames not received:\n{m}"));
    let scored_before = metric(&m, "edgewatch_feature_seconds_count");
    // Every histogram is exported with buckets (they add up across gateways), none as a
    // summary.
    for name in [
        "edgewatch_window_latency_seconds",
        "edgewatch_inference_seconds",
        "edgewatch_feature_seconds",
    ] {
        assert!(m.contains(&format!("{name}_bucket{{le=")), "{name}:\n{m}");
    }
    assert!(!m.contains("quantile=\""), "a summary is exported:\n{m}");
    assert!(agent.terminate().success(), "{}", agent.log());
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("pipeline totals"))
        .unwrap_or_else(|| panic!("no totals in the log:\n{log}"));
    let json = line
        .split("summary=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let totals: serde_json::Value = serde_json::from_str(json).unwrap();
    let cut = totals["windows_cut"].as_u64().unwrap();
    assert!(cut > 100, "{line}");
    assert_eq!(totals["windows_scored"].as_u64(), Some(cut), "{line}");
    assert_eq!(totals["reports_consumed"].as_u64(), Some(cut), "{line}");
    assert!(
        totals["frames_assembled"].as_u64().unwrap() >= 2990,
        "{line}"
    );
    assert!(
        (cut as f64) > scored_before,
        "windows were still in flight at SIGTERM ({scored_before} scored of {cut}) and were drained"
    );
    drop(slave);
}

#[test]
fn sigterm_during_start_up_still_stops_the_agent_cleanly() {
    // The signal arrives as soon as the metrics endpoint answers, while the rest of the
    // pipeline (model, outbox, sources) may still be starting: it must wait for the shutdown
    // path (drain, exit 0), not kill the process by the default action (signal 15).
    let (_master, slave) = pty_pair();
    let config = format!(
        "[agent]\ndata_dir = \"{{data_dir}}\"\n[metrics]\nlisten = \"{{metrics}}\"\n\
         [[serial]]\ndevice = \"{}\"\n\
         [[asset]]\nid = \"pump-1\"\nshaft_rpm = 1480\nbearing = \"skf-6205\"\nsensors = [1]\n",
        slave.name().unwrap()
    );
    for _ in 0..5 {
        let mut agent = Agent::start(&config);
        let status = agent.terminate();
        assert!(status.success(), "exit {status:?}\n{}", agent.log());
        assert!(agent.log().contains("stopped cleanly"), "{}", agent.log());
    }
}
