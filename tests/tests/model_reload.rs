//! The model in the running agent: every window is classified by the configured model, SIGHUP
//! switches to the model the configuration names, and a bad model is refused while the old one
//! keeps classifying. Real agent process, real pty, the committed model files.

mod common;

use common::{sim_frames, write_frames};
use edgewatch_tests::{Agent, metric, pty_pair, workspace_bin};
use serialport::{SerialPort, TTYPort};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// The committed model files copied into `dir`, so a test can break or replace them.
fn copy_models(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for f in [
        "manifest.json",
        "edgewatch-classifier.onnx",
        "edgewatch-classifier.int8.onnx",
    ] {
        std::fs::copy(models_dir().join(f), dir.join(f))
            .unwrap_or_else(|e| panic!("models/{f}: {e} (run models/train.sh)"));
    }
    dir.join("manifest.json")
}

fn model_version(manifest: &Path) -> String {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    m["model_version"].as_str().unwrap().to_string()
}

fn config(device: &Path, manifest: &Path) -> String {
    let scenario = firmware_sim::physics::scenario::Scenario::builtin("healthy").unwrap();
    let assets: String = scenario
        .assets
        .iter()
        .map(|a| {
            format!(
                "[[asset]]\nid = \"{}\"\nshaft_rpm = {}\nbearing = \"skf-6205\"\nsensors = [{}]\n",
                a.id, a.machine.rpm, a.sensor_id
            )
        })
        .collect();
    format!(
        "[agent]\ndata_dir = \"{{data_dir}}\"\n[metrics]\nlisten = \"{{metrics}}\"\n\
         [model]\nmanifest = \"{}\"\nvariant = \"int8\"\n\
         [[serial]]\ndevice = \"{}\"\n{assets}",
        manifest.display(),
        device.display()
    )
}

fn classified(m: &str, version: &str) -> f64 {
    metric(
        m,
        &format!("edgewatch_windows_classified_total{{model_version=\"{version}\""),
    )
}

#[test]
fn sighup_switches_models_and_a_bad_model_is_refused_while_the_old_one_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = copy_models(&dir.path().join("model"));
    let v1 = model_version(&manifest);
    let (mut master, slave) = pty_pair();
    let mut agent = Agent::start(&config(Path::new(&slave.name().unwrap()), &manifest));
    let frames = sim_frames(0, 3000);
    let mut sent = 0;
    let mut send = |master: &mut TTYPort, n: usize| {
        write_frames(master, &frames[sent..sent + n]);
        sent += n;
    };

    send(&mut master, 600);
    let m = agent
        .wait_metrics(Duration::from_secs(60), |m| classified(m, &v1) >= 10.0)
        .unwrap_or_else(|m| panic!("windows not classified by {v1}:\n{m}\n{}", agent.log()));
    assert_eq!(
        metric(&m, &format!("edgewatch_model_info{{version=\"{v1}\"")),
        1.0,
        "{m}"
    );

    // A corrupted model file: refused by its checksum, the old model keeps classifying.
    let int8 = manifest.with_file_name("edgewatch-classifier.int8.onnx");
    let good = std::fs::read(&int8).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    std::fs::write(&int8, &bad).unwrap();
    agent.hangup();
    let m = agent
        .wait_metrics(Duration::from_secs(20), |m| {
            metric(m, "edgewatch_model_reloads_total{result=\"refused\"") >= 1.0
        })
        .unwrap_or_else(|m| panic!("bad model not refused:\n{m}\n{}", agent.log()));
    let before = classified(&m, &v1);
    assert!(
        agent.log().contains("does not match the manifest"),
        "{}",
        agent.log()
    );
    send(&mut master, 600);
    agent
        .wait_metrics(Duration::from_secs(60), |m| {
            classified(m, &v1) >= before + 10.0
        })
        .unwrap_or_else(|m| panic!("old model stopped classifying:\n{m}\n{}", agent.log()));

    // A good new model: switched to, and the next windows carry its version.
    std::fs::write(&int8, &good).unwrap();
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["model_version"] = serde_json::Value::String("reload-test-2".into());
    std::fs::write(&manifest, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    agent.hangup();
    agent
        .wait_metrics(Duration::from_secs(20), |m| {
            metric(m, "edgewatch_model_reloads_total{result=\"ok\"") >= 1.0
        })
        .unwrap_or_else(|m| panic!("good model not loaded:\n{m}\n{}", agent.log()));
    send(&mut master, 600);
    let m = agent
        .wait_metrics(Duration::from_secs(60), |m| {
            classified(m, "reload-test-2") >= 10.0
        })
        .unwrap_or_else(|m| panic!("new model not used:\n{m}\n{}", agent.log()));
    assert_eq!(
        metric(&m, "edgewatch_model_info{version=\"reload-test-2\""),
        1.0
    );
    assert_eq!(
        metric(&m, &format!("edgewatch_model_info{{version=\"{v1}\"")),
        0.0
    );
    assert!(agent.terminate().success(), "{}", agent.log());
    drop(slave);
}

#[test]
fn a_bad_model_at_start_is_named_and_the_agent_runs_the_built_in_model_instead() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = copy_models(&dir.path().join("model"));
    std::fs::write(
        manifest.with_file_name("edgewatch-classifier.int8.onnx"),
        b"not a model",
    )
    .unwrap();
    let (mut master, slave) = pty_pair();
    let text = config(Path::new(&slave.name().unwrap()), &manifest);
    // `validate` (the unit's ExecStartPre) names the model and lets the service start.
    let path = dir.path().join("check.toml");
    std::fs::write(
        &path,
        text.replace("{metrics}", "127.0.0.1:1")
            .replace("{data_dir}", &dir.path().join("data").display().to_string()),
    )
    .unwrap();
    let out = Command::new(workspace_bin("agent"))
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: model.manifest") && stderr.contains("sha256"),
        "{stderr}"
    );
    // `run` starts degraded on the built-in model, says so, and classifies.
    let agent = Agent::start_in(&text, dir.path());
    write_frames(&mut master, &sim_frames(0, 400));
    let m = agent
        .wait_metrics(Duration::from_secs(30), |m| {
            metric(m, "edgewatch_windows_classified_total") >= 1.0
        })
        .unwrap_or_else(|m| panic!("nothing classified:\n{m}\n{}", agent.log()));
    assert_eq!(metric(&m, "edgewatch_model_fallback"), 1.0);
    let builtin = edgewatch_agent::analyze::model::Model::open(
        &edgewatch_agent::analyze::model::ModelSource::Builtin,
        edgewatch_agent::analyze::model::Variant::Int8,
    )
    .unwrap();
    assert!(
        m.contains(&format!(
            "edgewatch_model_info{{version=\"{}\"",
            builtin.version()
        )),
        "{m}"
    );
    let log = agent.log();
    assert!(
        log.contains("the configured model is refused") && log.contains("sha256"),
        "{log}"
    );
    drop(slave);
}
