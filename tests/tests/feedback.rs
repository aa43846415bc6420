//! Feedback to the edge, end to end: signed commands and labels put on a real Kafka-protocol
//! broker (tansu) with `lab feedback`, read by real agent processes fed by firmware-sim over a
//! real MQTT broker (mosquitto); recommission, duplicates, refusals, shelve on an alerting
//! machine, and a SIGKILL.
//!
//! Each test prints the times it measured (command published -> applied, shelve -> alert
//! cleared): docs/feedback-loop.md quotes them.

use edgewatch_agent::analyze::feedback::record::{Action, CommandBody, CommandRecord, new_id};
use edgewatch_agent::analyze::lifecycle::package::generate_key;
use edgewatch_tests::{Agent, Mosquitto, Proc, Tansu, metric, sim_mqtt_command, workspace_bin};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOPICS: [&str; 5] = [
    "edgewatch.alerts",
    "edgewatch.summaries",
    "edgewatch.health",
    "edgewatch.model-status",
    "edgewatch.command-status",
];
const FEEDBACK: &str = "edgewatch.feedback";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// firmware-sim streaming the built-in `scenario` to `mqtt` in real time.
fn sim(mqtt: &str, scenario: &str) -> Proc {
    Proc::spawn(
        "firmware-sim",
        sim_mqtt_command(mqtt, &format!("sim-{scenario}"), scenario).stderr(Stdio::null()),
    )
}

/// A key pair made by `lab model keygen` in `dir`: (secret, public).
fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    lab(&[
        "model",
        "keygen",
        "--out",
        dir.to_str().unwrap(),
        "--name",
        name,
    ]);
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    )
}

/// Runs `lab` with `args`; panics with its output when it fails.
fn lab(args: &[&str]) -> String {
    let out = Command::new(workspace_bin("lab"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lab {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `lab feedback command` to agent `gw-1` about `pump-1`.
fn command(brokers: &str, key: &Path, action: &str, id: &str, extra: &[&str]) -> Instant {
    let mut args = vec![
        "feedback",
        "command",
        "--brokers",
        brokers,
        "--key",
        key.to_str().unwrap(),
        "--action",
        action,
        "--agent-id",
        "gw-1",
        "--asset-id",
        "pump-1",
        "--issued-by",
        "j.doe",
        "--command-id",
        id,
    ];
    args.extend_from_slice(extra);
    lab(&args);
    Instant::now()
}

fn produce(brokers: &str, key: &str, bytes: &[u8]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    producer
        .send(BaseRecord::to(FEEDBACK).key(key).payload(bytes))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// Every message of `topic` so far, in order.
fn messages(brokers: &str, topic: &str) -> Vec<serde_json::Value> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "feedback-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut idle = Instant::now();
    while idle.elapsed() < Duration::from_millis(1500) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(serde_json::from_slice(m.payload().unwrap_or_default()).unwrap());
            idle = Instant::now();
        }
    }
    out
}

/// The command-status records so far, each checked against its schema, deduplicated on
/// `record_id` as a consumer does (a record whose acknowledgement was not yet flushed when the
/// agent was killed is sent again after the restart, under the same id).
fn statuses(brokers: &str) -> Vec<serde_json::Value> {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/edgewatch.command-status.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let all = messages(brokers, "edgewatch.command-status");
    for s in &all {
        let errors: Vec<String> = validator.iter_errors(s).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{s:#}");
    }
    let mut seen = std::collections::HashSet::new();
    all.into_iter()
        .filter(|s| seen.insert(s["record_id"].as_str().unwrap().to_string()))
        .collect()
}

fn config(mqtt: &str, kafka: &str, trusted: &Path, baseline_windows: u32) -> String {
    let pump = firmware_sim::physics::scenario::Scenario::builtin("healthy").unwrap();
    let a = &pump.assets[0];
    format!(
        "[agent]\nid = \"gw-1\"\ndata_dir = \"{{data_dir}}\"\n\
         [metrics]\nlisten = \"{{metrics}}\"\n\
         [mqtt]\nurl = \"{mqtt}\"\nclient_id = \"agent-gw-1\"\nqos = 1\n\
         [outbox]\nsummary_interval_s = 5\n\
         [baseline]\nwindows = {baseline_windows}\n\
         [kafka]\nbrokers = [\"{kafka}\"]\nlinger_ms = 20\n\
         [feedback]\ntrusted_keys = [\"{}\"]\n\
         [[asset]]\nid = \"{}\"\nshaft_rpm = {}\nbearing = \"skf-6205\"\nsensors = [{}]\n",
        trusted.display(),
        a.id,
        a.machine.rpm,
        a.sensor_id
    )
}

fn count(m: &str, name: &str, label: &str, value: &str) -> f64 {
    metric(m, &format!("{name}{{{label}=\"{value}\"}}"))
}

fn kill9(agent: &mut Agent) {
    let pid = agent.proc.child.id().to_string();
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    let _ = agent.proc.wait_exit(Duration::from_secs(10));
}

#[test]
fn a_signed_recommission_is_applied_once_bad_records_are_refused_and_the_ids_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(dir.path(), "plant");
    let tansu = Tansu::start(&TOPICS, 1);
    let b = tansu.bootstrap();
    let mqtt = Mosquitto::start();
    let home = dir.path().join("agent");
    std::fs::create_dir_all(&home).unwrap();
    let cfg = config(&mqtt.url(), &b, &public, 20);
    let mut agent = Agent::start_in(&cfg, &home);
    let _sim = sim(&mqtt.url(), "healthy");
    let learned = |agent: &Agent| agent.log().matches("baseline learned").count();
    agent
        .wait_metrics(Duration::from_secs(60), |_| learned(&agent) == 1)
        .unwrap_or_else(|m| panic!("no baseline; log:\n{}\n{m}", agent.log()));

    // A signed recommission (the feedback topic does not exist yet: lab creates it).
    let id = new_id();
    let sent = command(&b, &secret, "recommission", &id, &[]);
    let m = agent
        .wait_metrics_every(Duration::from_millis(20), Duration::from_secs(30), |m| {
            count(
                m,
                "edgewatch_commands_applied_total",
                "action",
                "recommission",
            ) == 1.0
        })
        .unwrap_or_else(|m| panic!("not applied; log:\n{}\n{m}", agent.log()));
    let applied_ms = sent.elapsed().as_millis();
    assert!(
        agent.log().contains("recommissioning on command"),
        "{}",
        agent.log()
    );
    assert_eq!(
        count(&m, "edgewatch_feedback_records_total", "type", "command"),
        1.0
    );
    // Commissioning started over: the baseline is learned a second time.
    agent
        .wait_metrics(Duration::from_secs(60), |_| learned(&agent) == 2)
        .unwrap_or_else(|m| panic!("not recommissioned; log:\n{}\n{m}", agent.log()));

    // The same command again (signed anew, same id): a duplicate, nothing done.
    command(&b, &secret, "recommission", &id, &[]);
    let m = agent
        .wait_metrics(Duration::from_secs(30), |m| {
            count(
                m,
                "edgewatch_feedback_commands_total",
                "result",
                "duplicate",
            ) == 1.0
        })
        .unwrap_or_else(|m| panic!("no duplicate; log:\n{}\n{m}", agent.log()));
    assert_eq!(
        count(
            &m,
            "edgewatch_commands_applied_total",
            "action",
            "recommission"
        ),
        1.0
    );
    assert_eq!(agent.log().matches("recommissioning on command").count(), 1);

    // Unsigned, signed by a stranger, and garbage: refused, counted, reported; the agent goes
    // on. A label is skipped.
    let body = |id: String| CommandBody {
        command_id: id,
        agent_id: "gw-1".into(),
        asset_id: "pump-1".into(),
        action: Action::Recommission,
        shelve_until_unix_ms: None,
        issued_by: "mallory".into(),
        created_unix_ms: 1,
    };
    produce(
        &b,
        "pump-1",
        &CommandRecord::new(&body(new_id())).to_bytes(),
    );
    let mut stranger = CommandRecord::new(&body(new_id()));
    stranger.sign(&generate_key()).unwrap();
    produce(&b, "pump-1", &stranger.to_bytes());
    produce(&b, "pump-1", b"\x00\xffnot a record{");
    lab(&[
        "feedback",
        "label",
        "--brokers",
        &b,
        "--label",
        "alert-rejected",
        "--asset-id",
        "pump-1",
        "--agent-id",
        "gw-1",
        "--operator",
        "j.doe",
        "--alert-id",
        "gw-1-0-pump-1-5",
    ]);
    let m = agent
        .wait_metrics(Duration::from_secs(30), |m| {
            ["unsigned", "untrusted_key", "malformed"]
                .iter()
                .all(|r| count(m, "edgewatch_feedback_refused_total", "reason", r) == 1.0)
                && count(m, "edgewatch_feedback_skipped_total", "reason", "label") == 1.0
        })
        .unwrap_or_else(|m| panic!("not refused; log:\n{}\n{m}", agent.log()));
    assert_eq!(
        count(&m, "edgewatch_feedback_records_total", "type", "malformed"),
        1.0
    );
    let windows = metric(&m, "edgewatch_windows_total");
    agent
        .wait_metrics(Duration::from_secs(10), |m| {
            metric(m, "edgewatch_windows_total") > windows
        })
        .expect("the agent keeps analysing");

    // SIGKILL, restart: the offsets were committed (nothing is read twice), and the applied
    // id is still a duplicate.
    kill9(&mut agent);
    let agent = Agent::start_in(&cfg, &home);
    command(&b, &secret, "recommission", &id, &[]);
    let m = agent
        .wait_metrics(Duration::from_secs(30), |m| {
            count(
                m,
                "edgewatch_feedback_commands_total",
                "result",
                "duplicate",
            ) == 1.0
        })
        .unwrap_or_else(|m| panic!("no duplicate after restart; log:\n{}\n{m}", agent.log()));
    assert_eq!(
        count(
            &m,
            "edgewatch_commands_applied_total",
            "action",
            "recommission"
        ),
        0.0
    );
    assert_eq!(
        metric(&m, "edgewatch_feedback_records_total"),
        1.0,
        "records before the crash were read again:\n{m}"
    );

    // The command-status topic has one record per outcome, each valid against its schema.
    let all = statuses(&b);
    let seen: Vec<(&str, Option<&str>)> = all
        .iter()
        .map(|s| (s["result"].as_str().unwrap(), s["reason"].as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("applied", None),
            ("duplicate", None),
            ("refused", Some("unsigned")),
            ("refused", Some("untrusted_key")),
            ("refused", Some("malformed")),
            ("duplicate", None),
        ],
        "{all:#?}"
    );
    assert_eq!(all[0]["command_id"], id.as_str());
    assert_eq!(all[0]["asset_id"], "pump-1");
    assert_eq!(all[0]["action"], "recommission");
    assert_eq!(all[0]["issued_by"], "j.doe");
    assert!(
        all[0]["source"]
            .as_str()
            .unwrap()
            .starts_with("kafka:edgewatch.feedback/0@"),
        "{}",
        all[0]
    );
    assert_eq!(all[4]["command_id"], serde_json::Value::Null);
    println!("recommission published -> applied: {applied_ms} ms (metrics polled every 20 ms)");
}

#[test]
fn a_shelve_clears_the_alert_holds_it_until_its_end_and_judging_resumes_after() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(dir.path(), "plant");
    let tansu = Tansu::start(&TOPICS, 1);
    tansu.create_topic(FEEDBACK, 1);
    let b = tansu.bootstrap();
    let mqtt = Mosquitto::start();
    let agent = Agent::start(&config(&mqtt.url(), &b, &public, 600));
    let _sim = sim(&mqtt.url(), "inner-race");
    let raised = |m: &str| count(m, "edgewatch_alert_events_total", "transition", "raised");
    let cleared = |m: &str| count(m, "edgewatch_alert_events_total", "transition", "cleared");
    agent
        .wait_metrics(Duration::from_secs(60), |m| raised(m) == 1.0)
        .unwrap_or_else(|m| panic!("no alert; log:\n{}\n{m}", agent.log()));
    let shelve_s = 20;
    let sent = command(
        &b,
        &secret,
        "shelve",
        &new_id(),
        &["--for-s", &shelve_s.to_string()],
    );
    agent
        .wait_metrics_every(Duration::from_millis(20), Duration::from_secs(30), |m| {
            cleared(m) == 1.0
        })
        .unwrap_or_else(|m| panic!("not cleared; log:\n{}\n{m}", agent.log()));
    let cleared_ms = sent.elapsed().as_millis();
    let m = agent.metrics();
    assert_eq!(metric(&m, "edgewatch_feedback_shelved_assets"), 1.0);
    // The fault goes on: nothing is raised while shelved.
    let windows = metric(&m, "edgewatch_windows_total");
    while sent.elapsed() < Duration::from_secs(shelve_s - 3) {
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(raised(&agent.metrics()), 1.0, "raised while shelved");
    }
    assert!(
        metric(&agent.metrics(), "edgewatch_windows_total") > windows + 10.0,
        "windows stopped"
    );
    // After its end, the fault raises again.
    let m = agent
        .wait_metrics(Duration::from_secs(30), |m| raised(m) == 2.0)
        .unwrap_or_else(|m| panic!("not raised after the shelve; log:\n{}\n{m}", agent.log()));
    assert_eq!(metric(&m, "edgewatch_feedback_shelved_assets"), 0.0);
    let raised_again_s = sent.elapsed().as_secs_f64();
    assert!(raised_again_s >= shelve_s as f64, "{raised_again_s}");
    // The alerts topic: the raise, its clear naming the shelve, a new raise.
    let alerts = messages(&b, "edgewatch.alerts");
    let path: Vec<&str> = alerts
        .iter()
        .map(|a| a["transition"].as_str().unwrap())
        .collect();
    assert_eq!(path[..3], ["raised", "cleared", "raised"], "{alerts:#?}");
    assert_eq!(alerts[1]["alert_id"], alerts[0]["alert_id"]);
    let reason = alerts[1]["finding"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("shelved by j.doe until "), "{reason}");
    assert_ne!(alerts[2]["alert_id"], alerts[0]["alert_id"]);
    let all = statuses(&b);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["result"], "applied");
    assert_eq!(all[0]["action"], "shelve");
    assert!(all[0]["detail"].as_str().unwrap().contains("cleared"));
    println!(
        "shelve published -> alert cleared: {cleared_ms} ms (metrics polled every 20 ms); \
         raised again {raised_again_s:.1} s after a {shelve_s} s shelve"
    );
}
