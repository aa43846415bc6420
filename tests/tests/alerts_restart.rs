//! Alerts across a crash: the agent (a real process, SIGKILLed) raises an alert on a machine
//! with an outer-race defect; restarted on the same data directory while the defect goes on, it
//! resumes that alert instead of raising it again, and the records in its outbox carry one raise
//! for the condition, under an id that names the agent.

mod common;

use common::{scenario_frames, write_frames};
use edgewatch_agent::outbox::{Kind, Outbox, SledOutbox};
use edgewatch_tests::{Agent, metric, pty_pair};
use serialport::SerialPort;
use std::time::Duration;

#[test]
fn an_alert_active_when_the_agent_is_killed_is_resumed_not_raised_again() {
    let scenario = firmware_sim::physics::scenario::Scenario::builtin("outer-race").unwrap();
    let a = &scenario.assets[0];
    let dir = tempfile::tempdir().unwrap();
    let (mut master, slave) = pty_pair();
    let config = format!(
        "[agent]\nid = \"gw-7\"\ndata_dir = \"{{data_dir}}\"\n[metrics]\nlisten = \"{{metrics}}\"\n\
         [[serial]]\ndevice = \"{}\"\n\
         [[asset]]\nid = \"{}\"\nshaft_rpm = {}\nbearing = \"skf-6205\"\nsensors = [{}]\n",
        slave.name().unwrap(),
        a.id,
        a.machine.rpm,
        a.sensor_id
    );
    // 20 s of signal (25 frames per second, with temperature and status frames).
    let frames = scenario_frames("outer-race", 0, 1200);
    let mut agent = Agent::start_in(&config, dir.path());
    write_frames(&mut master, &frames[..600]);
    agent
        .wait_metrics(Duration::from_secs(60), |m| {
            metric(m, "edgewatch_alert_events_total{transition=\"raised\"}") >= 1.0
        })
        .unwrap_or_else(|m| panic!("no alert raised:\n{m}\n{}", agent.log()));
    // Past the outbox's flush interval, so the raise is durable; then a crash.
    std::thread::sleep(Duration::from_millis(1500));
    agent.proc.kill();
    let mut agent = Agent::start_in(&config, dir.path());
    write_frames(&mut master, &frames[600..]);
    let m = agent
        .wait_metrics(Duration::from_secs(60), |m| {
            metric(m, "edgewatch_windows_total") >= 15.0
        })
        .unwrap_or_else(|m| panic!("the restarted agent got no windows:\n{m}"));
    assert_eq!(
        metric(&m, "edgewatch_alert_events_total{transition=\"raised\"}"),
        0.0,
        "raised again after the restart:\n{}",
        agent.log()
    );
    assert!(
        agent.log().contains("active alerts resumed"),
        "{}",
        agent.log()
    );
    assert!(agent.terminate().success());
    let (outbox, _) =
        SledOutbox::open(&dir.path().join("data").join("outbox"), 64 << 20, 0).expect("outbox");
    let alerts: Vec<serde_json::Value> = outbox
        .peek(0, usize::MAX)
        .unwrap()
        .records
        .iter()
        .filter(|(_, r)| r.kind == Kind::Alert)
        .map(|(_, r)| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    let raised: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| a["transition"] == "raised")
        .collect();
    assert_eq!(raised.len(), 1, "{alerts:#?}");
    let id = raised[0]["alert_id"].as_str().unwrap();
    assert!(id.starts_with("gw-7-"), "{id}");
    assert!(
        alerts.iter().all(|a| a["alert_id"] == id),
        "every event of the condition under one id: {alerts:#?}"
    );
    drop(slave);
}
