//! The agent's sources end to end: a serial device that disappears and returns, a real
//! mosquitto restarted mid-stream, the agent killed and restarted while sensors stream (the
//! broker's queue as docs/deploy.md sizes it), and MQTT over TLS with client certificates.

mod common;

use common::{sim_frames, write_frames};
use edgewatch_tests::{
    Agent, Mosquitto, Proc, metric, pty_pair, sim_mqtt_command, sim_summary, sim_to_mqtt,
};
use firmware_sim::link::{Injector, LinkFaults, Wire};
use serialport::{SerialPort, TTYPort};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// A pty pair whose slave is reachable under a stable symlink, like a udev by-id name.
fn plug(link: &Path) -> (TTYPort, TTYPort) {
    let (master, slave) = pty_pair();
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(slave.name().unwrap(), link).unwrap();
    (master, slave)
}

const ASSET: &str = r#"
[[asset]]
id = "pump-1"
shaft_rpm = 1480
bearing = "skf-6205"
sensors = [1]
"#;

#[test]
fn a_serial_device_missing_at_start_is_a_warning_and_is_used_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyLATE");
    let config = format!(
        "[agent]\ndata_dir = \"{{data_dir}}\"\n[metrics]\nlisten = \"{{metrics}}\"\n\
         [[serial]]\ndevice = \"{}\"\nreconnect_min_ms = 50\nreconnect_max_ms = 200\n{ASSET}",
        link.display()
    );
    // `validate` (the unit's ExecStartPre) warns and lets the service start.
    let path = dir.path().join("check.toml");
    std::fs::write(
        &path,
        config
            .replace("{metrics}", "127.0.0.1:1")
            .replace("{data_dir}", &dir.path().join("data").display().to_string()),
    )
    .unwrap();
    let out = std::process::Command::new(edgewatch_tests::workspace_bin("agent"))
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("warning: serial[0].device"), "{stderr}");
    // `run` starts without it and keeps trying.
    let mut agent = Agent::start(&config);
    agent
        .wait_metrics(Duration::from_secs(10), |m| {
            m.contains("edgewatch_source_connected{source=\"serial:")
                && metric(m, "edgewatch_source_connected") == 0.0
        })
        .unwrap_or_else(|m| panic!("no serial source reported:\n{m}"));
    std::thread::sleep(Duration::from_millis(500));
    let log = agent.log();
    assert!(log.contains("starting degraded"), "{log}");
    assert!(
        log.matches("cannot open serial device").count() >= 2,
        "not retrying:\n{log}"
    );
    // The adapter is plugged in: frames flow.
    let (mut master, _slave) = plug(&link);
    agent
        .wait_metrics(Duration::from_secs(10), |m| {
            metric(m, "edgewatch_source_connected") == 1.0
        })
        .unwrap_or_else(|m| panic!("the agent did not open the device:\n{m}"));
    write_frames(&mut master, &sim_frames(0, 300));
    let received = r#"edgewatch_frames_received_total{source="serial:"#;
    agent
        .wait_metrics(Duration::from_secs(30), |m| metric(m, received) >= 300.0)
        .unwrap_or_else(|m| panic!("frames not received:\n{m}"));
    assert!(agent.terminate().success());
}

#[test]
fn the_serial_source_reconnects_when_the_device_disappears_and_returns() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttySENSOR");
    let (mut master, slave) = plug(&link);
    let config = format!(
        "[agent]\ndata_dir = \"{{data_dir}}\"\n[metrics]\nlisten = \"{{metrics}}\"\n\
         [[serial]]\ndevice = \"{}\"\nreconnect_min_ms = 50\nreconnect_max_ms = 200\n{ASSET}",
        link.display()
    );
    let mut agent = Agent::start(&config);
    let frames = sim_frames(0, 600);
    write_frames(&mut master, &frames[..300]);
    let received = r#"edgewatch_frames_received_total{source="serial:"#;
    agent
        .wait_metrics(Duration::from_secs(30), |m| metric(m, received) >= 300.0)
        .unwrap_or_else(|m| panic!("first 300 frames not received:\n{m}"));

    // Unplug: the device goes away, and its name with it.
    drop(master);
    drop(slave);
    std::fs::remove_file(&link).unwrap();
    agent
        .wait_metrics(Duration::from_secs(10), |m| {
            metric(m, "edgewatch_source_reconnects_total") >= 1.0
                && metric(m, "edgewatch_source_connected") == 0.0
        })
        .unwrap_or_else(|m| panic!("the agent did not notice the unplug:\n{m}"));
    std::thread::sleep(Duration::from_millis(500));

    // Plug back in: a new device under the same name; the sensor carries on counting.
    let (mut master, _slave) = plug(&link);
    agent
        .wait_metrics(Duration::from_secs(10), |m| {
            metric(m, "edgewatch_source_connected") == 1.0
        })
        .unwrap_or_else(|m| panic!("the agent did not reopen the device:\n{m}"));
    write_frames(&mut master, &frames[300..]);
    let m = agent
        .wait_metrics(Duration::from_secs(30), |m| metric(m, received) >= 600.0)
        .unwrap_or_else(|m| panic!("frames after the replug not received:\n{m}"));
    assert_eq!(metric(&m, received), 600.0);
    assert_eq!(metric(&m, "edgewatch_frames_rejected_total"), 0.0);
    assert!(metric(&m, "edgewatch_windows_total") > 0.0);
    assert!(agent.terminate().success());
}

#[test]
fn no_frame_is_lost_when_mosquitto_restarts_mid_stream() {
    let mut broker = Mosquitto::start();
    let config = format!(
        "[agent]\ndata_dir = \"{{data_dir}}\"\n[metrics]\nlisten = \"{{metrics}}\"\n\
         [mqtt]\nurl = \"{}\"\nclient_id = \"agent-restart-test\"\nqos = 1\n\
         reconnect_min_ms = 100\nreconnect_max_ms = 500\n{ASSET}",
        broker.url()
    );
    let agent = Agent::start(&config);
    agent
        .wait_metrics(Duration::from_secs(10), |m| {
            metric(m, "edgewatch_source_connected") == 1.0
        })
        .unwrap_or_else(|m| panic!("the agent did not connect:\n{m}"));
    // About 26 frames a second for 12 s, in real time, so the restart falls mid-stream.
    let mut sim = sim_to_mqtt(&broker.url(), "sim-restart-test", 12);
    std::thread::sleep(Duration::from_secs(4));
    let before = metric(&agent.metrics(), "edgewatch_frames_received_total");
    assert!(before > 50.0, "frames flowed before the restart: {before}");
    broker.restart();
    let status = sim.wait_exit(Duration::from_secs(90));
    let stderr = sim.stderr_text();
    assert!(status.success(), "simulator failed:\n{stderr}");
    let summary = sim_summary(&stderr);
    let sent = summary["frames_generated"].as_f64().unwrap();
    let m = agent
        .wait_metrics(Duration::from_secs(30), |m| {
            metric(m, "edgewatch_frames_received_total")
                - metric(m, "edgewatch_frames_duplicate_total")
                >= sent
        })
        .unwrap_or_else(|m| panic!("not every frame arrived ({sent} sent):\n{m}"));
    let unique = metric(&m, "edgewatch_frames_received_total")
        - metric(&m, "edgewatch_frames_duplicate_total");
    assert_eq!(
        unique, sent,
        "every frame exactly once after removing duplicates"
    );
    assert_eq!(metric(&m, "edgewatch_frames_lost_total"), 0.0);
    assert!(
        metric(&m, "edgewatch_source_reconnects_total") >= 1.0,
        "the agent saw the restart"
    );
}

/// Sensors for the restart test: `SENSORS` nodes at 3.2 kHz in 128-sample frames, 25 frames a
/// second each, so the broker's queue fills as fast as with 16 sensors on a gateway.
const SENSORS: u32 = 16;
const FRAMES_PER_S: f64 = SENSORS as f64 * 25.0;

fn many_sensors_scenario() -> String {
    let mut s = String::from(
        "name = \"many\"\nseed = 3\nsample_rate_hz = 3200\nblock_size = 128\naxes = 1\n\
         temperature_interval_ms = 60000\nstatus_interval_ms = 60000\nfull_scale_g = 16.0\n",
    );
    for i in 1..=SENSORS {
        s += &format!(
            "[[asset]]\nid = \"m-{i}\"\nsensor_id = {i}\n[asset.machine]\nrpm = 1480\n\
             bearing = \"skf-6205\"\nresonance_hz = 900\ndamping_ratio = 0.05\n\
             noise_g = 0.02\nshaft_harmonics_g = [0.02, 0.008, 0.004]\nslip_fraction = 0.015\n\
             [[asset.phase]]\nat_s = 0.0\nload = 0.8\n"
        );
    }
    s
}

/// The `max_queued_messages` of the gateway's mosquitto configuration in docs/deploy.md.
fn documented_queue_limit() -> u32 {
    let doc = include_str!("../../docs/deploy.md");
    let line = doc
        .lines()
        .find_map(|l| l.trim().strip_prefix("max_queued_messages "))
        .expect("docs/deploy.md gives max_queued_messages for the gateway's mosquitto");
    line.trim().parse().expect("a number")
}

/// What the restarted agent saw after being killed for `down` while the sensors streamed.
struct AfterRestart {
    received: f64,
    lost: f64,
}

/// Streams the sensors through a broker holding at most `limit` messages for an absent client,
/// SIGKILLs the agent for `down` (its persistent session stays) and starts it again on the same
/// data directory; returns the second agent's counts once the stream has ended.
fn kill_agent_while_streaming(limit: u32, down: Duration) -> AfterRestart {
    let broker = Mosquitto::start_with_queue_limit(limit);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("many.toml"), many_sensors_scenario()).unwrap();
    let mut config = format!(
        "[agent]\ndata_dir = \"{{data_dir}}\"\n[metrics]\nlisten = \"{{metrics}}\"\n\
         [mqtt]\nurl = \"{}\"\nclient_id = \"agent-kill-test\"\nqos = 1\n",
        broker.url()
    );
    for i in 1..=SENSORS {
        config += &format!(
            "[[asset]]\nid = \"m-{i}\"\nshaft_rpm = 1480\nbearing = \"skf-6205\"\nsensors = [{i}]\n"
        );
    }
    let mut agent = Agent::start_in(&config, dir.path());
    agent
        .wait_metrics(Duration::from_secs(10), |m| {
            metric(m, "edgewatch_source_connected") == 1.0
        })
        .unwrap_or_else(|m| panic!("the agent did not connect:\n{m}"));
    let stream_s = 4 + down.as_secs() + 4;
    let mut sim = Proc::spawn(
        "firmware-sim",
        sim_mqtt_command(&broker.url(), "sim-kill-test", dir.path().join("many.toml"))
            .args(["--duration-s", &stream_s.to_string()])
            .stderr(Stdio::piped()),
    );
    agent
        .wait_metrics(Duration::from_secs(10), |m| {
            metric(m, "edgewatch_frames_received_total") >= FRAMES_PER_S
        })
        .unwrap_or_else(|m| panic!("frames did not flow:\n{m}"));
    agent.proc.kill();
    std::thread::sleep(down);
    let agent = Agent::start_in(&config, dir.path());
    let status = sim.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "simulator failed:\n{}", sim.stderr_text());
    // Settled: nothing more arrives for a second.
    let mut last = -1.0;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = metric(&agent.metrics(), "edgewatch_frames_received_total");
        if now == last {
            break;
        }
        last = now;
    }
    let m = agent.metrics();
    AfterRestart {
        received: metric(&m, "edgewatch_frames_received_total")
            - metric(&m, "edgewatch_frames_duplicate_total"),
        lost: metric(&m, "edgewatch_frames_lost_total"),
    }
}

#[test]
fn no_frame_is_lost_while_the_agent_is_killed_and_restarted_with_the_documented_broker_queue() {
    // Down as long as systemd's RestartSec: 5 s of 400 frames/s is twice mosquitto's default
    // queue of 1000 messages.
    let down = Duration::from_secs(5);
    let limit = documented_queue_limit();
    assert!(
        f64::from(limit) >= 32.0 * 25.0 * 60.0,
        "the documented queue rides out a minute of 32 sensors: {limit}"
    );
    let kept = kill_agent_while_streaming(limit, down);
    assert_eq!(kept.lost, 0.0, "no frame lost with the documented queue");
    assert!(
        kept.received >= 0.9 * FRAMES_PER_S * (down.as_secs_f64() + 4.0),
        "the restarted agent got the queued frames and the rest of the stream: {}",
        kept.received
    );

    // mosquitto's default queue overflows in the same outage: the broker drops frames and the
    // restarted agent sees the gap in every sensor's sequence numbers.
    let default = kill_agent_while_streaming(1000, down);
    println!(
        "killed for {down:?} at {FRAMES_PER_S} frames/s: queue {limit}: {} received after the \
         restart, {} lost; queue 1000: {} received, {} lost",
        kept.received, kept.lost, default.received, default.lost
    );
    let overflow = FRAMES_PER_S * down.as_secs_f64() - 1000.0;
    assert!(
        default.lost >= 0.5 * overflow,
        "frames dropped by a default-sized queue are counted as lost: {} lost, {} received",
        default.lost,
        default.received
    );
}

#[test]
fn malformed_input_is_counted_per_source_and_never_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyNOISY");
    let (mut master, _slave) = plug(&link);
    let config = format!(
        "[agent]\ndata_dir = \"{{data_dir}}\"\n[metrics]\nlisten = \"{{metrics}}\"\n\
         [[serial]]\ndevice = \"{}\"\n{ASSET}",
        link.display()
    );
    let agent = Agent::start(&config);
    let scenario = firmware_sim::physics::scenario::Scenario::builtin("healthy").unwrap();
    let mut nodes = firmware_sim::nodes_for(&scenario).unwrap();
    let faults: LinkFaults = "garbage=0.1,corrupt=0.05".parse().unwrap();
    let mut injector = Injector::new(faults, 5);
    let wire = firmware_sim::driver::collect(&mut nodes, &mut injector, 800);
    let stats = injector.stats();
    for (_, w) in &wire {
        master.write_all(&w.serial_bytes()).unwrap();
    }
    // A final delimiter closes a garbage burst that might end the stream.
    master.write_all(&[0]).unwrap();
    master.flush().unwrap();
    let expected_bad = (stats.garbage_chunks + stats.corrupted) as f64;
    let source = format!("source=\"serial:{}\"", link.display());
    let m = agent
        .wait_metrics(Duration::from_secs(30), |m| {
            metric(m, &format!("edgewatch_frames_received_total{{{source}}}"))
                >= stats.frames_out as f64
                && metric(m, "edgewatch_frames_rejected_total") >= expected_bad
        })
        .unwrap_or_else(|m| {
            panic!(
                "expected {} frames, {expected_bad} rejects:\n{m}",
                stats.frames_out
            )
        });
    assert!(
        stats.garbage_chunks > 20 && stats.corrupted > 10,
        "{stats:?}"
    );
    assert_eq!(
        metric(&m, &format!("edgewatch_frames_received_total{{{source}}}")),
        stats.frames_out as f64
    );
    assert_eq!(metric(&m, "edgewatch_frames_rejected_total"), expected_bad);
    assert_eq!(
        metric(
            &m,
            &format!("edgewatch_frames_rejected_total{{{source},reason=\"crc\"")
        ),
        stats.corrupted as f64,
        "every corrupted frame is a CRC reject"
    );
    // Corrupted frames leave sequence gaps: the agent counts them as lost once a later frame
    // shows the gap (corrupted frames after the last good one cannot be noticed).
    let good = |w: &Wire| matches!(w, Wire::Frame { raw, .. } if edgewatch_protocol::decode_frame(raw).is_ok());
    let last_good = wire.iter().rposition(|(_, w)| good(w)).unwrap();
    let noticeable = wire[..last_good]
        .iter()
        .filter(|(_, w)| matches!(w, Wire::Frame { .. }) && !good(w))
        .count() as f64;
    let m = agent
        .wait_metrics(Duration::from_secs(5), |m| {
            metric(m, "edgewatch_frames_lost_total") >= noticeable
        })
        .unwrap_or_else(|m| panic!("expected {noticeable} lost frames:\n{m}"));
    assert_eq!(metric(&m, "edgewatch_frames_lost_total"), noticeable);
    let (status, body) = edgewatch_tests::http_get(agent.metrics_port, "/health").unwrap();
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert!(health["windows_scored"].as_u64().unwrap() > 0, "{body}");
}

/// `mqtts://` with a client certificate against mosquitto's TLS listener: frames flow. An agent
/// that trusts another CA refuses the broker, says why, and receives nothing.
#[test]
fn the_mqtt_source_speaks_tls_with_a_client_certificate_and_refuses_an_unknown_ca() {
    let broker = Mosquitto::start_tls();
    let tls = broker.tls.clone().unwrap();
    let config = |client_id: &str, ca: &Path| {
        format!(
            "[agent]\ndata_dir = \"{{data_dir}}\"\n[metrics]\nlisten = \"{{metrics}}\"\n\
             [mqtt]\nurl = \"mqtts://localhost:{port}\"\nclient_id = \"{client_id}\"\nqos = 1\n\
             ca_file = \"{ca}\"\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
             reconnect_min_ms = 100\nreconnect_max_ms = 500\n{ASSET}",
            port = tls.port,
            ca = ca.display(),
            cert = tls.cert_file.display(),
            key = tls.key_file.display(),
        )
    };
    let trusted = Agent::start(&config("agent-tls", &tls.ca_file));
    let wrong_ca = Agent::start(&config("agent-wrong-ca", &tls.other_ca_file));
    trusted
        .wait_metrics(Duration::from_secs(10), |m| {
            metric(m, "edgewatch_source_connected") == 1.0
        })
        .unwrap_or_else(|m| {
            panic!(
                "the agent did not connect over TLS:\n{m}\n{}",
                trusted.log()
            )
        });
    // The simulator publishes on the plain listener; the agent reads over TLS.
    let mut sim = sim_to_mqtt(&broker.url(), "sim-tls-test", 3);
    let status = sim.wait_exit(Duration::from_secs(60));
    let stderr = sim.stderr_text();
    assert!(status.success(), "simulator failed:\n{stderr}");
    let sent = sim_summary(&stderr)["frames_generated"].as_f64().unwrap();
    assert!(sent > 50.0, "the simulator sent frames: {sent}");
    let m = trusted
        .wait_metrics(Duration::from_secs(30), |m| {
            metric(m, "edgewatch_frames_received_total") >= sent
        })
        .unwrap_or_else(|m| panic!("not every frame arrived over TLS ({sent} sent):\n{m}"));
    assert_eq!(metric(&m, "edgewatch_frames_received_total"), sent);

    let m = wrong_ca.metrics();
    assert_eq!(metric(&m, "edgewatch_source_connected"), 0.0, "{m}");
    assert_eq!(metric(&m, "edgewatch_frames_received_total"), 0.0, "{m}");
    let log = wrong_ca.log();
    assert!(
        log.to_lowercase().contains("certificate"),
        "the refusal names the certificate problem:\n{log}"
    );
}
