//! The feedback loop end to end, with real parts: firmware-sim streams a healthy two-blade fan
//! the shipped model calls misalignment (tests/fixtures/scenarios) and a truly misaligned pump
//! over mosquitto to a real agent, which forwards to tansu. The central side (models/central,
//! Python) lands the records in its Parquet store; operators' labels (the fan's alert rejected,
//! its state normal; the pump's alert confirmed as misalignment) go on the feedback topic and
//! are landed too; `build-trainset` joins them to the reported input vectors, `retrain` trains
//! a candidate on the shipped model's simulated rows plus the field rows, gates it against the
//! active model and signs it, `publish` puts it on the models topic; the agent shadows and
//! promotes it, and the fan's false alert clears while the pump's stays.
//!
//! The figures it prints (classes before and after, times) are the ones docs/model.md quotes.

use edgewatch_tests::{
    Agent, Mosquitto, Proc, Tansu, metric, sim_mqtt_command, topic_messages, workspace_bin,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TOPICS: [&str; 7] = [
    "edgewatch.alerts",
    "edgewatch.summaries",
    "edgewatch.health",
    "edgewatch.model-status",
    "edgewatch.models",
    "edgewatch.feedback",
    "edgewatch.command-status",
];

const SHIPPED: &str = "edgewatch-classifier-4";
const RETRAINED: &str = "edgewatch-classifier-4-fan";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The central side's Python (models/.venv, installed by the README's test command).
fn python() -> PathBuf {
    let py = root().join("models/.venv/bin/python");
    let ok = py.exists()
        && Command::new(&py)
            .args(["-c", "import edgewatch_central"])
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the central side is not installed: run models/central/test.sh (or the README's test \
         command, scripts/test.sh), which installs it into models/.venv"
    );
    py
}

/// `python -m edgewatch_central <args>`; panics with its output unless it succeeds.
fn central(args: &[&str]) -> String {
    let started = Instant::now();
    let out = Command::new(python())
        .args(["-m", "edgewatch_central"])
        .args(args)
        .env("EDGEWATCH_LAB", workspace_bin("lab"))
        .current_dir(root())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "edgewatch_central {args:?} failed:\n{text}"
    );
    eprintln!(
        "edgewatch_central {} took {:.1} s",
        args[0],
        started.elapsed().as_secs_f64()
    );
    text
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn alerts_of(bootstrap: &str, asset: &str) -> Vec<serde_json::Value> {
    topic_messages(bootstrap, "edgewatch.alerts")
        .into_iter()
        .filter(|a| a["asset_id"] == asset)
        .collect()
}

/// Waits until `asset` has an alert with `transition`; returns it.
fn wait_alert(
    bootstrap: &str,
    asset: &str,
    transition: &str,
    timeout: Duration,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        if let Some(a) = alerts_of(bootstrap, asset)
            .into_iter()
            .find(|a| a["transition"] == transition)
        {
            return a;
        }
        assert!(
            start.elapsed() < timeout,
            "no {transition} alert on {asset} in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Windows of `asset`'s model calls per class by `version`, from the agent's metrics. The
/// classified counter is per model and class, not per asset: each asset's sensor is the only
/// one of its kind here, so the test reads the summaries instead.
fn class_counts(
    bootstrap: &str,
    asset: &str,
    version: &str,
) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for s in topic_messages(bootstrap, "edgewatch.summaries") {
        if s["asset_id"] != asset || s["model_versions"] != serde_json::json!([version]) {
            continue;
        }
        for (class, n) in s["class_counts"].as_object().unwrap() {
            *out.entry(class.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    out
}

fn gunzip(from: &Path, to: &Path) {
    let out = Command::new("gzip").arg("-dc").arg(from).output().unwrap();
    assert!(out.status.success(), "gzip -dc {}", from.display());
    std::fs::write(to, out.stdout).unwrap();
}

fn sim(mqtt: &str, id: &str, scenario: &Path) -> Proc {
    Proc::spawn(
        "firmware-sim",
        sim_mqtt_command(mqtt, id, scenario)
            .args(["--duration-s", "900"])
            .stderr(Stdio::null()),
    )
}

#[test]
fn operator_feedback_retrains_the_model_and_the_false_alerts_stop() {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let tansu = Tansu::start(&TOPICS, 1);
    let mqtt = Mosquitto::start();
    let b = tansu.bootstrap();
    let config = format!(
        "[agent]\nid = \"gw-loop\"\ndata_dir = \"{{data_dir}}\"\n\
         [metrics]\nlisten = \"{{metrics}}\"\n\
         [mqtt]\nurl = \"{}\"\nclient_id = \"agent-loop\"\nqos = 1\n\
         [outbox]\nsummary_interval_s = 5\n\
         [report]\ninput_sample_per_interval = 20\n\
         [baseline]\nwindows = 20\n\
         [model]\ntrusted_keys = [\"{}\"]\n\
         [model.rollout]\nshadow_windows = 40\nshadow_s = 0\nmin_asset_windows = 10\n\
         watch_s = 10\nwatch_min_windows = 10\n\
         [kafka]\nbrokers = [\"{b}\"]\nlinger_ms = 20\n\
         [[asset]]\nid = \"fan-2blade\"\nshaft_rpm = 1480\nbearing = \"skf-6205\"\nsensors = [1]\n\
         [[asset]]\nid = \"pump-misaligned\"\nshaft_rpm = 1480\nbearing = \"skf-6205\"\nsensors = [2]\n",
        mqtt.url(),
        root().join("models/keys/test.pub").display(),
    );
    let agent = Agent::start(&config);
    let fixtures = root().join("tests/fixtures/scenarios");
    let _fan = sim(
        &mqtt.url(),
        "sim-fan",
        &fixtures.join("healthy-two-blade-fan.toml"),
    );
    let _pump = sim(
        &mqtt.url(),
        "sim-pump",
        &fixtures.join("misaligned-pump.toml"),
    );
    let labelled_from_ms = now_ms();

    // Before: the shipped model calls the healthy fan misalignment and the agent says so.
    let fan_raised = wait_alert(&b, "fan-2blade", "raised", Duration::from_secs(60));
    let pump_raised = wait_alert(&b, "pump-misaligned", "raised", Duration::from_secs(60));
    assert_eq!(
        fan_raised["finding"]["kind"], "misalignment",
        "{fan_raised}"
    );
    assert_eq!(
        pump_raised["finding"]["kind"], "misalignment",
        "{pump_raised}"
    );
    assert!(
        !fan_raised["inputs"].as_array().unwrap().is_empty(),
        "the alert carries its windows' inputs"
    );
    // A minute of summaries with their input samples: the rows the labels will select.
    std::thread::sleep(Duration::from_secs(60));
    let labelled_to_ms = now_ms();
    let before_fan = class_counts(&b, "fan-2blade", SHIPPED);
    let before_pump = class_counts(&b, "pump-misaligned", SHIPPED);
    eprintln!("before: fan {before_fan:?}, pump {before_pump:?}");

    // The operators' word, on the feedback topic: the fan's alert was a false alarm and the fan
    // was normal all along (labelled per quarter of the minute, as a technician labels
    // shifts); the pump's alert was right.
    // Published with the tool operators use, `lab feedback label`.
    let label = |args: &[&str]| {
        let out = Command::new(workspace_bin("lab"))
            .args([
                "feedback",
                "label",
                "--operator",
                "loop-test",
                "--agent-id",
                "gw-loop",
            ])
            .args(["--brokers", &b])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lab feedback label {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut labels = 0;
    let fan_alert = fan_raised["alert_id"].as_str().unwrap();
    let pump_alert = pump_raised["alert_id"].as_str().unwrap();
    label(&[
        "--label",
        "alert-rejected",
        "--asset-id",
        "fan-2blade",
        "--alert-id",
        fan_alert,
        "--note",
        "two-blade fan: 2x is blade pass",
    ]);
    label(&[
        "--label",
        "alert-confirmed",
        "--asset-id",
        "pump-misaligned",
        "--alert-id",
        pump_alert,
        "--fault",
        "misalignment",
        "--note",
        "coupling offset 0.4 mm",
    ]);
    labels += 2;
    let span = (labelled_to_ms - labelled_from_ms) / 4;
    for k in 0..4 {
        let (from, to) = (
            labelled_from_ms + k * span,
            labelled_from_ms + (k + 1) * span,
        );
        for (asset, state) in [
            ("fan-2blade", "normal"),
            ("pump-misaligned", "misalignment"),
        ] {
            label(&[
                "--label",
                "asset-state",
                "--asset-id",
                asset,
                "--state",
                state,
                "--from-unix-ms",
                &from.to_string(),
                "--to-unix-ms",
                &to.to_string(),
            ]);
            labels += 1;
        }
    }

    // The central side: land, build the training set, retrain, gate, sign, publish.
    let store_s = store.display().to_string();
    central(&["land", "--brokers", &b, "--store", &store_s, "--once"]);
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let sim_train = work.join("sim-train.csv");
    let sim_test = work.join("sim-test.csv");
    gunzip(
        &root().join("models/data/sim-train-seed1.csv.gz"),
        &sim_train,
    );
    gunzip(&root().join("models/data/sim-test-seed2.csv.gz"), &sim_test);
    let trainset = work.join("trainset");
    let out = central(&[
        "build-trainset",
        "--store",
        &store_s,
        "--sim-train",
        &sim_train.display().to_string(),
        "--out",
        &trainset.display().to_string(),
    ]);
    eprintln!("{out}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(trainset.join("trainset.json")).unwrap())
            .unwrap();
    eprintln!("trainset.json: {manifest}");
    let candidate = work.join("candidate");
    let retrain_started = Instant::now();
    let out = central(&[
        "retrain",
        "--trainset",
        &trainset.display().to_string(),
        "--sim-test",
        &sim_test.display().to_string(),
        "--out",
        &candidate.display().to_string(),
        "--version",
        RETRAINED,
        "--key",
        &root().join("models/keys/test.key").display().to_string(),
        "--active-manifest",
        &root().join("models/manifest.json").display().to_string(),
        "--no-real",
    ]);
    eprintln!("{out}");
    eprintln!(
        "retrain took {:.1} s",
        retrain_started.elapsed().as_secs_f64()
    );
    // The model card: both models side by side on every set, and the data's lineage.
    if let Ok(card) = std::fs::read_to_string(candidate.join("model-card.md")) {
        eprintln!("{card}");
    }
    let package = std::fs::read_dir(&candidate)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "ewpkg"))
        .expect("retrain wrote a signed package");
    let published = Instant::now();
    central(&[
        "publish",
        "--package",
        &package.display().to_string(),
        "--brokers",
        &b,
    ]);

    // The agent shadows the candidate beside the shipped model and promotes it.
    agent
        .wait_metrics(Duration::from_secs(120), |m| {
            metric(
                m,
                &format!("edgewatch_model_info{{variant=\"int8\",version=\"{RETRAINED}\"}}"),
            ) == 1.0
                || metric(
                    m,
                    &format!("edgewatch_model_info{{version=\"{RETRAINED}\",variant=\"int8\"}}"),
                ) == 1.0
        })
        .unwrap_or_else(|m| panic!("not promoted: {m}\n{}", agent.log()));
    let promoted_after = published.elapsed();
    // The fan's false alert clears under its id; the pump's true one stays.
    let cleared = wait_alert(&b, "fan-2blade", "cleared", Duration::from_secs(60));
    assert_eq!(cleared["alert_id"], fan_raised["alert_id"]);
    let cleared_after = published.elapsed();
    std::thread::sleep(Duration::from_secs(20));
    let pump_alerts = alerts_of(&b, "pump-misaligned");
    assert!(
        pump_alerts.iter().all(|a| a["transition"] != "cleared"),
        "the retrained model lost the real misalignment: {pump_alerts:?}"
    );
    let fan_alerts = alerts_of(&b, "fan-2blade");
    let raised_after_clear = fan_alerts
        .iter()
        .filter(|a| a["transition"] == "raised")
        .count();
    assert_eq!(
        raised_after_clear, 1,
        "the fan alerted again: {fan_alerts:?}"
    );
    let after_fan = class_counts(&b, "fan-2blade", RETRAINED);
    let after_pump = class_counts(&b, "pump-misaligned", RETRAINED);
    eprintln!("after: fan {after_fan:?}, pump {after_pump:?}");
    let share = |c: &std::collections::BTreeMap<String, u64>, class: &str| {
        c.get(class).copied().unwrap_or(0) as f64 / c.values().sum::<u64>().max(1) as f64
    };
    assert!(share(&after_fan, "normal") >= 0.95, "{after_fan:?}");
    assert!(share(&after_pump, "misalignment") >= 0.95, "{after_pump:?}");
    eprintln!(
        "FIGURES: fan called misalignment {:.1} % by {SHIPPED} ({} windows), normal {:.1} % by \
         {RETRAINED} ({} windows); pump called misalignment {:.1} % before, {:.1} % after; \
         publish -> promoted {:.1} s, publish -> fan alert cleared {:.1} s",
        100.0 * share(&before_fan, "misalignment"),
        before_fan.values().sum::<u64>(),
        100.0 * share(&after_fan, "normal"),
        after_fan.values().sum::<u64>(),
        100.0 * share(&before_pump, "misalignment"),
        100.0 * share(&after_pump, "misalignment"),
        promoted_after.as_secs_f64(),
        cleared_after.as_secs_f64(),
    );
    // What the optional input sample costs: the fan's summaries with their 20-window sample,
    // against the same records without it.
    let (mut with, mut without, mut n, mut records) = (0usize, 0usize, 0usize, 0usize);
    for mut summary in topic_messages(&b, "edgewatch.summaries") {
        if summary["asset_id"] != "fan-2blade" || summary.get("input_sample").is_none() {
            continue;
        }
        let sampled = summary["input_sample"].as_array().unwrap().len();
        with += serde_json::to_vec(&summary).unwrap().len();
        summary.as_object_mut().unwrap().remove("input_sample");
        without += serde_json::to_vec(&summary).unwrap().len();
        n += sampled;
        records += 1;
    }
    eprintln!(
        "FIGURES: summaries without the input sample {} bytes on average; the sample adds {:.0} \
         bytes per sampled window ({n} windows)",
        without / records.max(1),
        (with - without) as f64 / n.max(1) as f64,
    );
    if let Some(keep) = std::env::var_os("EDGEWATCH_LOOP_OUT") {
        // For docs/model.md: the training set and the candidate with its model card.
        let keep = PathBuf::from(keep);
        for d in [&trainset, &candidate] {
            let to = keep.join(d.file_name().unwrap());
            std::fs::create_dir_all(&to).unwrap();
            for f in std::fs::read_dir(d).unwrap().flatten() {
                if f.path().is_file() {
                    std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
                }
            }
        }
    }
    // The central store saw both models' records, with the lineage to tell them apart.
    let q = central(&[
        "query",
        "--store",
        &store_s,
        "--csv",
        "select count(*) as n from feedback",
    ]);
    assert!(q.contains(&labels.to_string()), "{q}");
    assert!(py.exists());
}
