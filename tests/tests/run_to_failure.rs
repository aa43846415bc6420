//! Predictive maintenance end to end: `firmware-sim` runs the accelerated run-to-failure
//! scenarios (a bearing's life in four minutes of signal, sent as fast as the broker takes it)
//! into a real mosquitto, and the agent, as deployed, watches it: once as a continuous sensor,
//! once as a snapshot sensor (0.1 s every 2 s). The agent's outbox must then hold the
//! degradation: alerts carrying the sensor's health (onset, stage, remaining life) and summaries
//! with the health fields, and for the snapshot sensor every burst analysed whole, none lost.

use edgewatch_agent::outbox::{Kind, Outbox, SledOutbox};
use edgewatch_tests::{Agent, Mosquitto, Proc, metric, sim_mqtt_command, sim_summary};
use std::process::Stdio;
use std::time::Duration;

const LIFE_S: f64 = 240.0;
/// When the scenario's defect starts to grow, s of signal.
const DEFECT_FROM_S: f64 = 96.0;

struct Outcome {
    alerts: Vec<serde_json::Value>,
    summaries: Vec<serde_json::Value>,
    metrics: String,
    sent_frames: f64,
}

fn run(scenario: &str, client: &str) -> Outcome {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[agent]\nid = \"rtf\"\ndata_dir = \"{{data_dir}}\"\n[metrics]\nlisten = \"{{metrics}}\"\n\
         [mqtt]\nurl = \"{}\"\nclient_id = \"agent-{client}\"\nqos = 1\n\
         [outbox]\nsummary_interval_s = 0.5\n\
         [[asset]]\nid = \"fan-1\"\nshaft_rpm = 1500\nbearing = \"skf-6205\"\nsensors = [1]\n",
        broker.url()
    );
    let mut agent = Agent::start_in(&config, dir.path());
    agent
        .wait_metrics(Duration::from_secs(10), |m| {
            metric(m, "edgewatch_source_connected") == 1.0
        })
        .unwrap_or_else(|m| panic!("the agent did not connect:\n{m}"));
    let scenario_path = format!(
        "{}/../firmware-sim/scenarios/{scenario}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut sim = Proc::spawn(
        "firmware-sim",
        sim_mqtt_command(&broker.url(), client, &scenario_path)
            .arg("--fast")
            .stderr(Stdio::piped()),
    );
    let status = sim.wait_exit(Duration::from_secs(120));
    let stderr = sim.stderr_text();
    assert!(status.success(), "simulator failed:\n{stderr}");
    let sent_frames = sim_summary(&stderr)["frames_generated"].as_f64().unwrap();
    // Everything sent has been received, windowed and analysed.
    let started = std::time::Instant::now();
    let metrics = agent
        .wait_metrics_every(Duration::from_millis(500), Duration::from_secs(300), |m| {
            metric(m, "edgewatch_frames_received_total") >= sent_frames
                && metric(m, "edgewatch_feature_seconds_count")
                    >= metric(m, "edgewatch_windows_total")
        })
        .unwrap_or_else(|m| {
            panic!("not every frame arrived and was analysed ({sent_frames} sent):\n{m}")
        });
    println!(
        "{client}: {sent_frames} frames analysed {:.1} s after the simulator ended",
        started.elapsed().as_secs_f64()
    );
    assert!(agent.terminate().success(), "agent log:\n{}", agent.log());
    let (outbox, _) =
        SledOutbox::open(&dir.path().join("data").join("outbox"), 64 << 20, 0).expect("outbox");
    let records = outbox.peek(0, usize::MAX).unwrap().records;
    let json = |k: Kind| -> Vec<serde_json::Value> {
        records
            .iter()
            .filter(|(_, r)| r.kind == k)
            .map(|(_, r)| serde_json::from_slice(&r.payload).unwrap())
            .collect()
    };
    Outcome {
        alerts: json(Kind::Alert),
        summaries: json(Kind::Summary),
        metrics,
        sent_frames,
    }
}

/// Checks what both modes must show; returns the onset, s into the sensor's life.
fn check_degradation(mode: &str, o: &Outcome) -> f64 {
    let healths: Vec<&serde_json::Value> = o
        .alerts
        .iter()
        .filter_map(|a| {
            a["finding"]["health"]
                .as_object()
                .map(|_| &a["finding"]["health"])
        })
        .collect();
    assert!(!o.alerts.is_empty(), "{mode}: no alert");
    let degrading = healths
        .iter()
        .find(|h| matches!(h["stage"].as_str(), Some("degrading" | "failed")))
        .unwrap_or_else(|| {
            panic!(
                "{mode}: no alert carries a degrading stage: {:#?}",
                o.alerts
            )
        });
    let onset_s = degrading["onset_s"].as_f64().expect("onset");
    // The sensor clock starts at its boot offset; summaries say where life began.
    let first_start_us = o
        .summaries
        .iter()
        .filter_map(|s| s["window_start_us"].as_f64())
        .fold(f64::INFINITY, f64::min);
    let onset_into_life = onset_s - first_start_us / 1e6;
    let stages: Vec<&str> = o
        .summaries
        .iter()
        .filter_map(|s| s["health_stage"].as_str())
        .collect();
    let ruls: Vec<(f64, Option<f64>, Option<f64>)> = o
        .summaries
        .iter()
        .filter_map(|s| {
            Some((
                s["rul_s"].as_f64()?,
                s["rul_low_s"].as_f64(),
                s["rul_high_s"].as_f64(),
            ))
        })
        .collect();
    println!(
        "{mode}: {} alerts ({}), onset {onset_into_life:.0} s into a {LIFE_S:.0} s life (defect \
         grows from {DEFECT_FROM_S:.0} s); summaries' stages {:?}; {} summaries with a remaining \
         life, the last {:?}",
        o.alerts.len(),
        o.alerts
            .iter()
            .map(|a| format!(
                "{} {} {}",
                a["transition"].as_str().unwrap_or("?"),
                a["level"].as_str().unwrap_or("?"),
                a["finding"]["kind"].as_str().unwrap_or("?")
            ))
            .collect::<Vec<_>>()
            .join(", "),
        {
            let mut s = stages.clone();
            s.dedup();
            s
        },
        ruls.len(),
        ruls.last()
    );
    assert!(
        onset_into_life > DEFECT_FROM_S && onset_into_life < LIFE_S,
        "{mode}: onset at {onset_into_life} s"
    );
    assert!(stages.contains(&"healthy"), "{mode}: {stages:?}");
    assert!(
        stages.iter().any(|s| *s == "degrading" || *s == "failed"),
        "{mode}: {stages:?}"
    );
    assert!(!ruls.is_empty(), "{mode}: no summary with a remaining life");
    for (rul, low, high) in &ruls {
        assert!(*rul >= 0.0 && low.is_none_or(|l| l <= *rul) && high.is_none_or(|h| h >= *rul));
    }
    // The sensor's heartbeats as metrics: supply, firmware.
    assert_eq!(
        metric(&o.metrics, "edgewatch_sensor_supply_volts{sensor=\"1\"}"),
        3.3,
        "{mode}"
    );
    let firmware = format!("firmware=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        o.metrics
            .lines()
            .any(|l| l.starts_with("edgewatch_sensor_info{")
                && l.contains(&firmware)
                && l.contains("sensor=\"1\"")
                && l.ends_with(" 1")),
        "{mode}: no info metric with {firmware}:\n{}",
        o.metrics
    );
    assert!(
        o.metrics.contains("edgewatch_rul_seconds{"),
        "{mode}: no remaining-life metric"
    );
    assert!(
        metric(&o.metrics, "edgewatch_health_stage{") >= 2.0,
        "{mode}: the stage metric is not degrading or failed"
    );
    onset_into_life
}

#[test]
fn a_continuous_sensor_s_run_to_failure_is_seen_coming() {
    let o = run("run-to-failure.toml", "rtf-continuous");
    check_degradation("continuous", &o);
    assert_eq!(metric(&o.metrics, "edgewatch_frames_lost_total"), 0.0);
}

#[test]
fn a_snapshot_sensor_s_bursts_are_analysed_whole_and_its_run_to_failure_is_seen_coming() {
    let o = run("run-to-failure-burst.toml", "rtf-burst");
    check_degradation("burst", &o);
    let m = &o.metrics;
    println!(
        "burst: {} frames sent; bursts whole {}, incomplete {}, short {}, missed {}; frames lost \
         {}; window breaks {}",
        o.sent_frames,
        metric(m, "edgewatch_bursts_total{outcome=\"whole\"}"),
        metric(m, "edgewatch_bursts_total{outcome=\"incomplete\"}"),
        metric(m, "edgewatch_bursts_total{outcome=\"short\"}"),
        metric(m, "edgewatch_bursts_missed_total"),
        metric(m, "edgewatch_frames_lost_total"),
        metric(m, "edgewatch_window_breaks_total")
    );
    assert_eq!(
        metric(m, "edgewatch_bursts_total{outcome=\"whole\"}"),
        120.0
    );
    assert_eq!(
        metric(m, "edgewatch_bursts_total{outcome=\"incomplete\"}"),
        0.0
    );
    assert_eq!(metric(m, "edgewatch_bursts_missed_total"), 0.0);
    assert_eq!(metric(m, "edgewatch_frames_lost_total"), 0.0);
    assert_eq!(metric(m, "edgewatch_window_breaks_total"), 0.0);
    assert_eq!(
        metric(m, "edgewatch_sensor_burst_samples{sensor=\"1\"}"),
        2560.0
    );
    assert_eq!(
        metric(m, "edgewatch_sensor_burst_period_seconds{sensor=\"1\"}"),
        2.0
    );
    // One window per burst, of the burst's own length.
    assert_eq!(metric(m, "edgewatch_windows_total"), 120.0);
}
