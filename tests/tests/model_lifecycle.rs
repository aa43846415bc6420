//! Model lifecycle end to end: signed packages published on a real Kafka-protocol broker
//! (tansu) or dropped in the package folder, read by real agent processes fed by firmware-sim
//! over a real MQTT broker (mosquitto); shadow, promotion, refusals, rollback, targeting,
//! SIGKILL and a corrupt stored package.
//!
//! Each test prints the times it measured (publish -> shadow start, shadow -> promoted,
//! machine change -> rollback): docs/model.md quotes them.

use edgewatch_agent::analyze::lifecycle::package::{
    self, Envelope, Lineage, PackageInput, Targets, generate_key, public_key_text,
};
use edgewatch_tests::{Agent, Mosquitto, Proc, Tansu, metric, sim_mqtt_command, topic_messages};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOPICS: [&str; 5] = [
    "edgewatch.alerts",
    "edgewatch.summaries",
    "edgewatch.health",
    "edgewatch.model-status",
    "edgewatch.models",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A one-machine scenario: `noise_g` of broadband vibration on sensor `sensor`.
fn scenario(dir: &Path, name: &str, sensor: u32, noise_g: f64, duration_s: u32) -> PathBuf {
    let text = format!(
        "name = \"{name}\"\ndescription = \"lifecycle test machine\"\nseed = {sensor}\n\
         duration_s = {duration_s}.0\nsample_rate_hz = 12800\nblock_size = 512\naxes = 1\n\
         temperature_interval_ms = 1000\nstatus_interval_ms = 10000\nfull_scale_g = 16.0\n\
         [[asset]]\nid = \"{name}\"\nsensor_id = {sensor}\n\
         [asset.machine]\nrpm = 1480.0\nbearing = \"skf-6205\"\nresonance_hz = 3000.0\n\
         damping_ratio = 0.05\nnoise_g = {noise_g}\nshaft_harmonics_g = [0.02, 0.008, 0.004]\n\
         [[asset.phase]]\nat_s = 0.0\nload = 0.8\n"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// firmware-sim streaming `scenario` to `mqtt` in real time.
fn sim(mqtt: &str, id: &str, scenario: &Path) -> Proc {
    Proc::spawn(
        "firmware-sim",
        sim_mqtt_command(mqtt, id, scenario).stderr(Stdio::null()),
    )
}

struct Keys {
    key: ed25519_dalek::SigningKey,
    public: PathBuf,
}

fn keys(dir: &Path) -> Keys {
    let key = generate_key();
    let public = dir.join("trusted.pub");
    std::fs::write(&public, public_key_text(&key.verifying_key(), "test")).unwrap();
    Keys { key, public }
}

fn lineage() -> Lineage {
    Lineage {
        dataset_id: "lifecycle-test".into(),
        dataset_size: 0,
        code_revision: "test".into(),
        trainer: serde_json::json!({}),
        parent_model_version: Some("edgewatch-classifier-4".into()),
        created_unix_ms: 1,
    }
}

/// A package of the model in `manifest` as `version`, for `targets`; signed by `key` unless
/// `None`; `edit` changes the body before signing.
fn make_package(
    manifest: &Path,
    version: &str,
    targets: Targets,
    key: Option<&ed25519_dalek::SigningKey>,
    edit: impl FnOnce(&mut package::Body),
) -> Vec<u8> {
    let e = package::build(&PackageInput {
        manifest: manifest.to_path_buf(),
        golden: None,
        version: Some(version.into()),
        lineage: Some(lineage()),
        targets,
        created_unix_ms: 2,
    })
    .unwrap();
    let mut body = e.body().unwrap();
    edit(&mut body);
    let mut e = Envelope::new(&body);
    if let Some(k) = key {
        e.sign(k).unwrap();
    }
    e.to_bytes()
}

fn committed() -> PathBuf {
    root().join("models/manifest.json")
}

fn fixture(name: &str) -> PathBuf {
    root().join(format!("tests/fixtures/models/{name}/manifest.json"))
}

fn publish(bootstrap: &str, key: &str, bytes: &[u8]) -> Instant {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.max.bytes", "1000000")
        .create()
        .unwrap();
    producer
        .send(BaseRecord::to("edgewatch.models").key(key).payload(bytes))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    Instant::now()
}

/// Every model-status event so far, in order.
fn status_events(bootstrap: &str) -> Vec<serde_json::Value> {
    topic_messages(bootstrap, "edgewatch.model-status")
}

/// `(agent, event, model version, extra)` of each status event.
fn path(events: &[serde_json::Value], agent: &str) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["agent_id"] == agent)
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["model"]["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn config(
    id: &str,
    labels: &str,
    mqtt: &str,
    kafka: Option<&str>,
    trusted: &Path,
    rollout: &str,
    extra_model: &str,
) -> String {
    let kafka = kafka
        .map(|b| format!("[kafka]\nbrokers = [\"{b}\"]\nlinger_ms = 20\n"))
        .unwrap_or_default();
    format!(
        "[agent]\nid = \"{id}\"\ndata_dir = \"{{data_dir}}\"\nlabels = [{labels}]\n\
         [metrics]\nlisten = \"{{metrics}}\"\n\
         [mqtt]\nurl = \"{mqtt}\"\nclient_id = \"agent-{id}\"\nqos = 1\n\
         [outbox]\nsummary_interval_s = 5\n\
         [model]\ntrusted_keys = [\"{}\"]\n{extra_model}\n[model.rollout]\n{rollout}\n\
         {kafka}\
         [[asset]]\nid = \"quiet\"\nshaft_rpm = 1480\nbearing = \"skf-6205\"\nsensors = [1]\n\
         [[asset]]\nid = \"loud\"\nshaft_rpm = 1480\nbearing = \"skf-6205\"\nsensors = [2]\n",
        trusted.display()
    )
}

fn active_is(agent: &Agent, version: &str, timeout: Duration) -> Result<String, String> {
    agent.wait_metrics(timeout, |m| {
        metric(
            m,
            &format!("edgewatch_model_info{{variant=\"int8\",version=\"{version}\"}}"),
        ) == 1.0
            || metric(
                m,
                &format!("edgewatch_model_info{{version=\"{version}\",variant=\"int8\"}}"),
            ) == 1.0
    })
}

fn classified(m: &str, version: &str) -> f64 {
    m.lines()
        .filter(|l| {
            l.starts_with("edgewatch_windows_classified_total{")
                && l.contains(&format!("model_version=\"{version}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_signed_package_over_kafka_is_shadowed_and_promoted_without_a_restart_or_a_lost_window() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let tansu = Tansu::start(&TOPICS, 1);
    let mqtt = Mosquitto::start();
    let quiet = scenario(dir.path(), "quiet", 1, 0.02, 120);
    let rollout = "shadow_windows = 40\nshadow_s = 0\nwatch_s = 15\nwatch_min_windows = 10";
    let agent = Agent::start(&config(
        "gw-1",
        "",
        &mqtt.url(),
        Some(&tansu.bootstrap()),
        &keys.public,
        rollout,
        "",
    ));
    let _sim = sim(&mqtt.url(), "sim-quiet", &quiet);
    agent
        .wait_metrics(Duration::from_secs(30), |m| {
            classified(m, "edgewatch-classifier-4") >= 10.0
        })
        .expect("the built-in model classifies");
    // Published with the tool a plant uses.
    let file = dir.path().join("r2.ewpkg");
    std::fs::write(
        &file,
        make_package(
            &committed(),
            "edgewatch-classifier-4-r2",
            Targets::default(),
            Some(&keys.key),
            |_| {},
        ),
    )
    .unwrap();
    let out = Command::new(edgewatch_tests::workspace_bin("lab"))
        .args([
            "model",
            "publish",
            "--brokers",
            &tansu.bootstrap(),
            "--package",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let published = Instant::now();
    assert!(
        out.status.success(),
        "lab model publish: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    agent
        .wait_metrics_every(Duration::from_millis(20), Duration::from_secs(30), |m| {
            metric(m, "edgewatch_model_lifecycle_phase") == 1.0
        })
        .unwrap_or_else(|m| panic!("no shadow; log:\n{}\n{m}", agent.log()));
    let shadow_at = Instant::now();
    let m = active_is(&agent, "edgewatch-classifier-4-r2", Duration::from_secs(60))
        .unwrap_or_else(|m| panic!("not promoted; log:\n{}\n{m}", agent.log()));
    let promoted_at = Instant::now();
    println!(
        "publish -> shadow started: {} ms (metrics polled every 20 ms); shadow -> promoted: \
         {} ms (40 windows)",
        (shadow_at - published).as_millis(),
        (promoted_at - shadow_at).as_millis()
    );
    // Keep classifying on the new model; every window cut was classified by one of the two.
    std::thread::sleep(Duration::from_secs(3));
    let m2 = agent.metrics();
    assert!(
        classified(&m2, "edgewatch-classifier-4-r2") > classified(&m, "edgewatch-classifier-4-r2")
    );
    let cut = metric(&m2, "edgewatch_windows_total");
    let both =
        classified(&m2, "edgewatch-classifier-4") + classified(&m2, "edgewatch-classifier-4-r2");
    assert!(
        (cut - both).abs() <= 2.0,
        "windows cut {cut}, classified {both}: a window was lost across the switch"
    );
    assert_eq!(metric(&m2, "edgewatch_windows_dropped_total"), 0.0);
    // The status topic shows the whole path.
    let events = status_events(&tansu.bootstrap());
    let p = path(&events, "gw-1");
    let names: Vec<&str> = p.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names[..3],
        ["received", "shadow_started", "promoted"],
        "{events:#?}"
    );
    let promoted = events.iter().find(|e| e["event"] == "promoted").unwrap();
    assert_eq!(promoted["previous"]["version"], "edgewatch-classifier-4");
    assert!(promoted["judgement"]["windows"].as_u64().unwrap() >= 40);
    assert_eq!(
        promoted["judgement"]["breaches"].as_array().unwrap().len(),
        0
    );
    // The summary whose interval spans the switch says so.
    let summaries = topic_messages(&tansu.bootstrap(), "edgewatch.summaries");
    assert!(
        summaries.iter().any(|s| s["model_versions"]
            == serde_json::json!(["edgewatch-classifier-4", "edgewatch-classifier-4-r2"])),
        "no summary spans the switch: {summaries:#?}"
    );
    // The tool that follows a fleet sees the same.
    let out = Command::new(edgewatch_tests::workspace_bin("lab"))
        .args(["model", "status", "--brokers", &tansu.bootstrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("gw-1"))
        .unwrap_or_else(|| panic!("lab model status: {text}"));
    assert!(
        line.contains("edgewatch-classifier-4-r2") && line.contains("watch"),
        "{line}"
    );
    let received = &events[0];
    assert!(
        received["source"]
            .as_str()
            .unwrap()
            .starts_with("kafka:edgewatch.models/0@")
    );
}

#[test]
fn tampered_unsigned_wrongly_signed_and_mismatched_packages_are_refused_and_the_model_keeps_classifying()
 {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let stranger = generate_key();
    let tansu = Tansu::start(&TOPICS, 1);
    let mqtt = Mosquitto::start();
    let quiet = scenario(dir.path(), "quiet", 1, 0.02, 90);
    let agent = Agent::start(&config(
        "gw-1",
        "",
        &mqtt.url(),
        Some(&tansu.bootstrap()),
        &keys.public,
        "shadow_windows = 20\nshadow_s = 0",
        "",
    ));
    let _sim = sim(&mqtt.url(), "sim-quiet", &quiet);
    let b = tansu.bootstrap();
    let good = |v: &str| make_package(&committed(), v, Targets::default(), Some(&keys.key), |_| {});
    // Tampered: one byte of the signed body changed after signing.
    let mut tampered = Envelope::parse(&good("tampered")).unwrap();
    {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let mut body = engine.decode(&tampered.body).unwrap();
        let at = body.len() / 3;
        body[at] ^= 0x04;
        tampered.body = engine.encode(&body);
    }
    publish(&b, "tampered", &tampered.to_bytes());
    publish(
        &b,
        "unsigned",
        &make_package(&committed(), "unsigned", Targets::default(), None, |_| {}),
    );
    publish(
        &b,
        "stranger",
        &make_package(
            &committed(),
            "stranger",
            Targets::default(),
            Some(&stranger),
            |_| {},
        ),
    );
    publish(
        &b,
        "features",
        &make_package(
            &committed(),
            "features",
            Targets::default(),
            Some(&keys.key),
            |body| {
                body.manifest["feature_names"][0] = "log10_peak_g".into();
            },
        ),
    );
    let m = agent
        .wait_metrics(Duration::from_secs(30), |m| {
            ["bad_signature", "unsigned", "untrusted_key", "features"]
                .iter()
                .all(|r| {
                    metric(
                        m,
                        &format!("edgewatch_model_packages_refused_total{{reason=\"{r}\"}}"),
                    ) == 1.0
                })
        })
        .unwrap_or_else(|m| panic!("not all refused; log:\n{}\n{m}", agent.log()));
    assert_eq!(metric(&m, "edgewatch_model_lifecycle_phase"), 0.0);
    let before = classified(&m, "edgewatch-classifier-4");
    std::thread::sleep(Duration::from_secs(3));
    let m2 = agent.metrics();
    assert!(
        classified(&m2, "edgewatch-classifier-4") > before,
        "the old model stopped"
    );
    let events = status_events(&b);
    let refused: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "refused")
        .map(|e| e["reason_code"].as_str().unwrap())
        .collect();
    assert_eq!(
        refused,
        ["bad_signature", "unsigned", "untrusted_key", "features"]
    );
    // Published again: not judged again.
    publish(
        &b,
        "unsigned",
        &make_package(&committed(), "unsigned", Targets::default(), None, |_| {}),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        metric(
            &agent.metrics(),
            "edgewatch_model_packages_refused_total{reason=\"unsigned\"}"
        ),
        1.0
    );
}

#[test]
fn a_package_calling_everything_faulty_is_rejected_in_shadow_and_one_that_breaks_after_promotion_is_rolled_back()
 {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let tansu = Tansu::start(&TOPICS, 1);
    let mqtt = Mosquitto::start();
    let quiet = scenario(dir.path(), "quiet", 1, 0.02, 240);
    let loud = scenario(dir.path(), "loud", 2, 0.6, 240);
    let rollout = "shadow_windows = 30\nshadow_s = 0\nwatch_s = 600\nwatch_min_windows = 10\n\
                   min_asset_windows = 10";
    let agent = Agent::start(&config(
        "gw-1",
        "",
        &mqtt.url(),
        Some(&tansu.bootstrap()),
        &keys.public,
        rollout,
        "",
    ));
    // Only the quiet machine runs at first (the loud one is stopped).
    let _quiet = sim(&mqtt.url(), "sim-quiet", &quiet);
    let b = tansu.bootstrap();
    publish(
        &b,
        "always",
        &make_package(
            &fixture("always-faulty"),
            "fixture-always-faulty-1",
            Targets::default(),
            Some(&keys.key),
            |_| {},
        ),
    );
    agent
        .wait_metrics(Duration::from_secs(60), |m| {
            metric(
                m,
                "edgewatch_model_lifecycle_events_total{event=\"shadow_rejected\"}",
            ) == 1.0
        })
        .unwrap_or_else(|m| panic!("not rejected; log:\n{}\n{m}", agent.log()));
    // A model that is right about the quiet machine and wrong about loud ones.
    publish(
        &b,
        "loud",
        &make_package(
            &fixture("loud-is-faulty"),
            "fixture-loud-is-faulty-1",
            Targets::default(),
            Some(&keys.key),
            |_| {},
        ),
    );
    active_is(&agent, "fixture-loud-is-faulty-1", Duration::from_secs(60))
        .unwrap_or_else(|m| panic!("not promoted; log:\n{}\n{m}", agent.log()));
    // The loud machine starts after the promotion.
    let started = Instant::now();
    let _loud = sim(&mqtt.url(), "sim-loud", &loud);
    active_is(&agent, "edgewatch-classifier-4", Duration::from_secs(60))
        .unwrap_or_else(|m| panic!("not rolled back; log:\n{}\n{m}", agent.log()));
    println!(
        "loud machine started -> rolled back: {} ms",
        started.elapsed().as_millis()
    );
    let events = status_events(&b);
    let names: Vec<(String, String)> = path(&events, "gw-1");
    let expect = [
        ("received", "fixture-always-faulty-1"),
        ("shadow_started", "fixture-always-faulty-1"),
        ("shadow_rejected", "fixture-always-faulty-1"),
        ("received", "fixture-loud-is-faulty-1"),
        ("shadow_started", "fixture-loud-is-faulty-1"),
        ("promoted", "fixture-loud-is-faulty-1"),
        ("rolled_back", "fixture-loud-is-faulty-1"),
    ];
    let got: Vec<(&str, &str)> = names
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(got, expect, "{events:#?}");
    let rejected = events
        .iter()
        .find(|e| e["event"] == "shadow_rejected")
        .unwrap();
    assert_eq!(rejected["judgement"]["fault_rates"]["quiet"][1], 1.0);
    let rolled = events.iter().find(|e| e["event"] == "rolled_back").unwrap();
    assert_eq!(rolled["restored"]["version"], "edgewatch-classifier-4");
    // The judgement names the loud machine: never called faulty by the previous model, always
    // by the new one.
    assert_eq!(
        rolled["judgement"]["fault_rates"]["loud"][0], 0.0,
        "{rolled:#}"
    );
    assert_eq!(
        rolled["judgement"]["fault_rates"]["loud"][1], 1.0,
        "{rolled:#}"
    );
    assert!(
        !rolled["judgement"]["breaches"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_package_reaches_only_the_agents_its_labels_and_rollout_share_address() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let tansu = Tansu::start(&TOPICS, 1);
    let mqtt = Mosquitto::start();
    // Two agent ids on either side of a 50 % rollout.
    let ids: Vec<String> = (0..100).map(|i| format!("gw-{i}")).collect();
    let inside = ids
        .iter()
        .find(|i| package::rollout_bucket(i) < 5000)
        .unwrap()
        .clone();
    let outside = ids
        .iter()
        .find(|i| package::rollout_bucket(i) >= 5000)
        .unwrap()
        .clone();
    let rollout = "shadow_windows = 100000\nshadow_s = 0";
    let a = Agent::start(&config(
        &inside,
        "\"line-1\"",
        &mqtt.url(),
        Some(&tansu.bootstrap()),
        &keys.public,
        rollout,
        "",
    ));
    let b = Agent::start(&config(
        &outside,
        "\"line-2\"",
        &mqtt.url(),
        Some(&tansu.bootstrap()),
        &keys.public,
        rollout,
        "",
    ));
    let shadowing = |agent: &Agent, version: &str| {
        metric(
            &agent.metrics(),
            &format!("edgewatch_model_shadow_info{{version=\"{version}\"}}"),
        ) == 1.0
    };
    let line2 = Targets {
        labels: vec!["line-2".into()],
        ..Targets::default()
    };
    publish(
        &tansu.bootstrap(),
        "for-line-2",
        &make_package(&committed(), "for-line-2", line2, Some(&keys.key), |_| {}),
    );
    b.wait_metrics(Duration::from_secs(30), |_| shadowing(&b, "for-line-2"))
        .unwrap_or_else(|m| panic!("line-2 agent did not take it; log:\n{}\n{m}", b.log()));
    let half = Targets {
        rollout_percent: 50.0,
        ..Targets::default()
    };
    publish(
        &tansu.bootstrap(),
        "half",
        &make_package(&committed(), "half", half, Some(&keys.key), |_| {}),
    );
    a.wait_metrics(Duration::from_secs(30), |_| shadowing(&a, "half"))
        .unwrap_or_else(|m| panic!("{inside} did not take it; log:\n{}\n{m}", a.log()));
    // Both messages have been read by both agents: the other one ignored each.
    for agent in [&a, &b] {
        agent
            .wait_metrics(Duration::from_secs(30), |m| {
                metric(
                    m,
                    "edgewatch_model_packages_total{result=\"not_addressed\"}",
                ) == 1.0
            })
            .unwrap_or_else(|m| panic!("log:\n{}\n{m}", agent.log()));
    }
    assert!(!shadowing(&a, "for-line-2"));
    assert!(
        shadowing(&b, "for-line-2"),
        "the rollout package is not for {outside}"
    );
}

fn kill9(agent: &mut Agent) {
    let pid = agent.proc.child.id().to_string();
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    let _ = agent.proc.wait_exit(Duration::from_secs(10));
}

#[test]
fn after_kill_9_in_shadow_and_after_promotion_the_state_decides_and_a_corrupt_package_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let mqtt = Mosquitto::start();
    let quiet = scenario(dir.path(), "quiet", 1, 0.02, 300);
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let package_dir = format!("package_dir = \"{}\"", inbox.display());
    let long = "shadow_windows = 100000\nshadow_s = 0";
    let short = "shadow_windows = 20\nshadow_s = 0\nwatch_s = 3600";
    let cfg = |rollout: &str| {
        config(
            "gw-1",
            "",
            &mqtt.url(),
            None,
            &keys.public,
            rollout,
            &package_dir,
        )
    };
    let home = dir.path().join("agent");
    std::fs::create_dir_all(&home).unwrap();
    let _sim = sim(&mqtt.url(), "sim-quiet", &quiet);
    let mut agent = Agent::start_in(&cfg(long), &home);
    std::fs::write(
        inbox.join("r2.ewpkg"),
        make_package(
            &committed(),
            "edgewatch-classifier-4-r2",
            Targets::default(),
            Some(&keys.key),
            |_| {},
        ),
    )
    .unwrap();
    agent.hangup();
    agent
        .wait_metrics(Duration::from_secs(30), |m| {
            metric(m, "edgewatch_model_lifecycle_phase") == 1.0
        })
        .unwrap_or_else(|m| panic!("no shadow; log:\n{}\n{m}", agent.log()));
    kill9(&mut agent);
    // Restarted: the built-in model is active and the shadow resumes.
    let mut agent = Agent::start_in(&cfg(long), &home);
    let m = agent
        .wait_metrics(Duration::from_secs(30), |m| {
            metric(m, "edgewatch_model_lifecycle_phase") == 1.0
        })
        .unwrap_or_else(|m| panic!("shadow not resumed; log:\n{}\n{m}", agent.log()));
    assert_eq!(
        metric(
            &m,
            "edgewatch_model_shadow_info{version=\"edgewatch-classifier-4-r2\"}"
        ),
        1.0
    );
    active_is(&agent, "edgewatch-classifier-4", Duration::from_secs(1)).unwrap();
    kill9(&mut agent);
    // With a short shadow it is promoted; killed right after.
    let mut agent = Agent::start_in(&cfg(short), &home);
    active_is(&agent, "edgewatch-classifier-4-r2", Duration::from_secs(60))
        .unwrap_or_else(|m| panic!("not promoted; log:\n{}\n{m}", agent.log()));
    kill9(&mut agent);
    let mut agent = Agent::start_in(&cfg(short), &home);
    active_is(&agent, "edgewatch-classifier-4-r2", Duration::from_secs(10))
        .unwrap_or_else(|m| panic!("promotion lost over a restart; log:\n{}\n{m}", agent.log()));
    kill9(&mut agent);
    // The stored package is damaged on the card: the agent falls back and starts.
    let packages = home.join("data/models/packages");
    for e in std::fs::read_dir(&packages).unwrap().flatten() {
        let mut bytes = std::fs::read(e.path()).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x20;
        std::fs::write(e.path(), bytes).unwrap();
    }
    // `agent validate` names the problem, and still passes the configuration.
    let config_path = home.join("agent.toml");
    let out = Command::new(edgewatch_tests::workspace_bin("agent"))
        .args(["validate", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("model lifecycle: the active package edgewatch-classifier-4-r2"),
        "{stderr}"
    );
    let agent = Agent::start_in(&cfg(short), &home);
    let m = active_is(&agent, "edgewatch-classifier-4", Duration::from_secs(10))
        .unwrap_or_else(|m| panic!("no fall-back; log:\n{}\n{m}", agent.log()));
    assert_eq!(metric(&m, "edgewatch_model_fallback"), 1.0);
    assert!(agent.log().contains("falling back"), "{}", agent.log());
    agent
        .wait_metrics(Duration::from_secs(10), |m| {
            classified(m, "edgewatch-classifier-4") > 0.0
        })
        .expect("the fall-back model classifies");
}
