//! Unit tests across the outbox modules: summaries and the message schemas.

use super::message::{self, Heartbeat};
use super::summary::Summarizer;
use crate::analyze::WindowReport;
use crate::analyze::alert::{AlertEvent, Finding, Level, Transition};
use crate::analyze::features::{
    BAND_COUNT, EnvelopePeaks, FEATURE_NAMES, Features, MODEL_INPUT_LEN, SeverityZone,
};
use crate::analyze::scoring::Assessment;
use std::sync::Arc;

/// A degrading sensor with an open-ended remaining-life interval.
fn degrading_health() -> crate::analyze::health::HealthReport {
    crate::analyze::health::HealthReport {
        stage: crate::analyze::health::Stage::Degrading,
        indicator: 0.4,
        cusum: 15.0,
        onset_s: Some(100.0),
        since_onset_s: Some(60.0),
        rul_s: Some(3600.0),
        rul_low_s: Some(1200.0),
        rul_high_s: None,
        indicators: crate::analyze::health::Indicators {
            hf: 0.6,
            envelope: 1.2,
            kurtosis: 0.3,
            risen: [true, true, false],
        },
        onset_by: Some(crate::analyze::health::OnsetBy::Rms),
    }
}

fn features(velocity: f64, zone: SeverityZone) -> Features {
    Features {
        rms_g: velocity / 10.0,
        peak_g: velocity / 3.0,
        crest_factor: 3.3,
        kurtosis: 3.1,
        skewness: 0.0,
        velocity_rms_mm_s: velocity,
        zone,
        shaft_hz: 24.7,
        speed_estimated: false,
        order_0_5x_g: 0.0,
        order_1x_g: 0.01,
        order_2x_g: 0.0,
        order_3x_g: 0.0,
        band_rms_g: [0.01; BAND_COUNT],
        envelope: EnvelopePeaks {
            band_hz: [2000.0, 4000.0],
            band_kurtosis: 0.1,
            bpfo_db: 4.0,
            bpfo_2x_db: 0.0,
            bpfi_db: 3.0,
            bpfi_2x_db: 0.0,
            bsf_db: 2.0,
            bsf_2x_db: 0.0,
            ftf_db: 1.0,
            ftf_2x_db: 0.0,
            bpfo_hz: 88.4,
            bpfi_hz: 133.0,
            bsf_hz: 58.0,
            bsf_2x_hz: 116.0,
            ftf_hz: 9.8,
            families: Default::default(),
        },
        temperature_c: Some(41.0),
        temperature_rise_c_per_min: None,
    }
}

fn report(asset: &str, sensor: u32, start_us: u64, velocity: f64, level: Level) -> WindowReport {
    let zone = if velocity > 4.5 {
        SeverityZone::C
    } else {
        SeverityZone::A
    };
    WindowReport {
        asset: Arc::from(asset),
        source: Arc::from("mqtt:sensors/pump-1/1"),
        sensor_id: sensor,
        axis: 0,
        start_us,
        end_us: start_us + 160_000,
        sample_rate_hz: 12_800.0,
        features: features(velocity, zone),
        extract_us: 100,
        assessment: Assessment {
            class: None,
            anomaly: Some(velocity),
            drift: None,
            commissioning: None,
            level,
            finding: "normal".into(),
            active_alert: None,
            diagnosis: crate::analyze::diagnosis::Diagnosis {
                part: None,
                scores: [("outer", 0.0), ("inner", 0.0), ("ball", 0.0)],
                windows: 1,
            },
            decided_by: String::new(),
            health: Some(degrading_health()),
            inputs: (0..MODEL_INPUT_LEN)
                .map(|i| i as f32 + velocity as f32)
                .collect(),
            baseline_learned_us: Some(42),
            out_of_range: Vec::new(),
            input_distribution: None,
        },
        alert: None,
    }
}

fn origin() -> message::Origin {
    message::Origin::new(
        "gw-1",
        &crate::config::config_hash(b"[agent]\nid = \"gw-1\"\n"),
    )
}

#[test]
fn windows_of_one_interval_become_one_summary_per_sensor() {
    let mut s = Summarizer::new(1000);
    assert!(
        s.push(&report("pump-1", 1, 0, 1.0, Level::Normal), 0)
            .is_empty()
    );
    assert!(
        s.push(&report("pump-1", 1, 160_000, 3.0, Level::Warning), 400)
            .is_empty()
    );
    assert!(
        s.push(&report("fan-1", 3, 0, 5.0, Level::Normal), 500)
            .is_empty()
    );
    let closed = s.push(&report("pump-1", 1, 320_000, 2.0, Level::Normal), 1000);
    assert_eq!(closed.len(), 1, "{closed:?}");
    let p = &closed[0];
    assert_eq!((p.asset.as_str(), p.sensor_id, p.windows), ("pump-1", 1, 2));
    assert_eq!((p.window_start_us, p.window_end_us), (0, 320_000));
    assert!((p.velocity_rms_mm_s_mean - 2.0).abs() < 1e-9);
    assert_eq!(p.velocity_rms_mm_s_max, 3.0);
    assert_eq!(p.worst_level, Level::Warning);
    assert_eq!(p.anomaly_max, Some(3.0));
    let closed = s.poll(1500);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].worst_zone, SeverityZone::C);
    let rest = s.drain();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].window_start_us, 320_000);
}

fn validator(topic: &str) -> jsonschema::Validator {
    let path = format!("{}/../schemas/{topic}.json", env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn assert_valid(topic: &str, payload: &[u8]) {
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
    let errors: Vec<String> = validator(topic)
        .iter_errors(&v)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{topic}: {errors:?}\n{v}");
}

#[test]
fn every_kind_of_message_matches_its_schema() {
    let mut s = Summarizer::new(10);
    s.push(&report("pump-1", 1, 0, 1.0, Level::Normal), 0);
    let summary = s.drain().remove(0);
    let rec = message::summary_record(&origin(), &message::new_record_id(), &summary, 1);
    assert_eq!(rec.key, "pump-1");
    assert_valid("edgewatch.summaries", &rec.payload);

    let event = AlertEvent {
        id: "pump-1-1000".into(),
        asset: "pump-1".into(),
        transition: Transition::Raised,
        level: Level::Warning,
        at_ms: 1000,
        window_start_us: 0,
        window_end_us: 160_000,
        sensor_id: 1,
        finding: Finding {
            kind: "outer".into(),
            reason: "BPFO line 18 dB".into(),
            class: Some("outer".into()),
            probability: Some(0.8),
            model_version: Some("m1".into()),
            anomaly_score: Some(f64::NAN),
            top_features: vec![("kurtosis".into(), 7.5)],
            bearing_line: ("BPFO".into(), 88.4, 18.0),
            velocity_rms_mm_s: 2.0,
            zone: SeverityZone::B,
            temperature_c: None,
            decided_by: "envelope".into(),
            line_scores: vec![("outer".into(), 30.0), ("inner".into(), 4.0)],
            health: Some(degrading_health()),
        },
        inputs: vec![crate::analyze::alert::InputVector {
            sensor_id: 1,
            axis: 0,
            window_start_us: 0,
            window_end_us: 160_000,
            values: vec![0.5; MODEL_INPUT_LEN],
            class: Some("outer".into()),
            probability: Some(0.8),
        }],
    };
    let rec = message::alert_record(
        &origin(),
        &message::new_record_id(),
        &event,
        2,
        Some(7),
        Some("serial:/dev/ttyUSB0"),
    );
    assert_valid("edgewatch.alerts", &rec.payload);
    let v: serde_json::Value = serde_json::from_slice(&rec.payload).unwrap();
    assert_eq!(v["model_version"], "m1");
    assert_eq!(v["asset_id"], "pump-1");
    assert_eq!(v["schema_version"], 2);
    assert_eq!(v["lineage"]["source"], "serial:/dev/ttyUSB0");
    assert_eq!(v["lineage"]["baseline_learned_us"], 7);
    assert_eq!(
        v["lineage"]["feature_version"],
        crate::analyze::features::FEATURE_CODE_VERSION
    );
    assert_eq!(v["input_names"].as_array().unwrap().len(), MODEL_INPUT_LEN);
    assert_eq!(
        v["inputs"][0]["values"].as_array().unwrap().len(),
        MODEL_INPUT_LEN
    );

    let rec = message::health_record(
        &origin(),
        &message::new_record_id(),
        &Heartbeat::default(),
        3,
    );
    assert_eq!(rec.key, "gw-1");
    assert_valid("edgewatch.health", &rec.payload);
}

#[test]
fn a_message_missing_a_field_fails_its_schema() {
    let v = serde_json::json!({"schema_version": 2, "type": "health"});
    assert!(!validator("edgewatch.health").is_valid(&v));
}

#[test]
fn summaries_report_the_shaft_speed_the_windows_were_analysed_at() {
    let mut s = Summarizer::new(1000);
    let mut found = report("pump-1", 1, 0, 1.0, Level::Normal);
    found.features.shaft_hz = 24.0;
    found.features.speed_estimated = true;
    let mut configured = report("pump-1", 1, 160_000, 1.0, Level::Normal);
    configured.features.shaft_hz = 25.0;
    s.push(&found, 0);
    s.push(&configured, 100);
    let summary = s.drain().remove(0);
    assert!((summary.shaft_hz_mean - 24.5).abs() < 1e-9, "{summary:?}");
    assert_eq!(summary.speed_estimated_windows, 1);
    let rec = message::summary_record(&origin(), &message::new_record_id(), &summary, 1);
    assert_valid("edgewatch.summaries", &rec.payload);
    let v: serde_json::Value = serde_json::from_slice(&rec.payload).unwrap();
    assert_eq!(v["shaft_hz_mean"], 24.5);
    assert_eq!(v["speed_estimated_windows"], 1);
}

/// One lifecycle event of each kind, as the driver builds them.
fn lifecycle_events() -> Vec<crate::analyze::lifecycle::Event> {
    use crate::analyze::lifecycle::machine::{Judgement, ModelRef, Transition as T};
    use crate::analyze::lifecycle::{Event, EventKind, FellBack};
    let package = |v: &str, d: char| ModelRef {
        version: v.into(),
        digest: Some(std::iter::repeat_n(d, 64).collect()),
    };
    let own = ModelRef {
        version: "edgewatch-classifier-4".into(),
        digest: None,
    };
    let candidate = package("edgewatch-classifier-5", 'a');
    let judgement = Judgement {
        windows: 240,
        normal_agreement: Some(0.97),
        fault_rates: [("pump-1".to_string(), (0.01, 0.02))].into(),
        solo_runs: [("pump-1".to_string(), 2)].into(),
        breaches: Vec::new(),
    };
    let breached = Judgement {
        normal_agreement: None,
        breaches: vec!["pump-1: a solo fault run of 12 windows (rule: < 10)".into()],
        ..judgement.clone()
    };
    let event = |kind, source: Option<&str>, active: &ModelRef, phase| Event {
        at_unix_ms: 1_700_000_000_000,
        transition: kind,
        source: source.map(str::to_string),
        active: active.clone(),
        phase,
    };
    let t = EventKind::Transition;
    vec![
        event(
            t(T::Received {
                model: candidate.clone(),
            }),
            Some("kafka:edgewatch.models/0@7"),
            &own,
            "stable",
        ),
        event(
            t(T::Refused {
                model: package("edgewatch-classifier-6", 'b'),
                reason_code: "untrusted_key".into(),
                reason: "signed by 0123456789abcdef, which is not a trusted key".into(),
            }),
            None,
            &own,
            "stable",
        ),
        event(
            t(T::ShadowStarted {
                model: candidate.clone(),
                resumed: false,
            }),
            None,
            &own,
            "shadow",
        ),
        event(
            t(T::Superseded {
                model: candidate.clone(),
                judgement: judgement.clone(),
            }),
            None,
            &own,
            "stable",
        ),
        event(
            t(T::ShadowRejected {
                model: candidate.clone(),
                judgement: breached.clone(),
            }),
            None,
            &own,
            "stable",
        ),
        event(
            t(T::Promoted {
                model: candidate.clone(),
                previous: own.clone(),
                judgement: judgement.clone(),
            }),
            None,
            &candidate,
            "watch",
        ),
        event(
            t(T::WatchPassed {
                model: candidate.clone(),
                judgement: judgement.clone(),
            }),
            None,
            &candidate,
            "stable",
        ),
        event(
            t(T::RolledBack {
                model: candidate.clone(),
                restored: own.clone(),
                judgement: breached,
            }),
            None,
            &own,
            "stable",
        ),
        event(
            EventKind::FellBack(FellBack {
                event: "fell_back",
                model: candidate,
                to: own.clone(),
                reason_code: "golden".into(),
                reason: "golden outputs: case 0 class 1: tract 0.5, expected 0.1".into(),
            }),
            None,
            &own,
            "stable",
        ),
    ]
}

#[test]
fn every_kind_of_model_lifecycle_event_matches_the_model_status_schema() {
    let events = lifecycle_events();
    let mut names: Vec<&str> = events.iter().map(|e| e.name()).collect();
    names.dedup();
    assert_eq!(
        names,
        [
            "received",
            "refused",
            "shadow_started",
            "superseded",
            "shadow_rejected",
            "promoted",
            "watch_passed",
            "rolled_back",
            "fell_back"
        ]
    );
    let validator = validator("edgewatch.model-status");
    for e in &events {
        let rec = message::model_status_record(&origin(), &message::new_record_id(), e, 5);
        assert_eq!(rec.key, "gw-1");
        assert_valid("edgewatch.model-status", &rec.payload);
        let v: serde_json::Value = serde_json::from_slice(&rec.payload).unwrap();
        assert_eq!(v["type"], "model_status");
        assert_eq!(v["event"], e.name());
        assert_eq!(v["model_version"], e.active.version.as_str());

        // The schema holds each event to its own fields: an unknown event, a missing field of
        // this event and a field of another event are refused.
        let mut unknown = v.clone();
        unknown["event"] = "installed".into();
        assert!(!validator.is_valid(&unknown), "{unknown}");
        let mut bare = v.clone();
        let own_field = ["reason_code", "judgement", "resumed", "to"]
            .into_iter()
            .find(|f| v.get(f).is_some());
        if let Some(f) = own_field {
            bare.as_object_mut().unwrap().remove(f);
            assert!(!validator.is_valid(&bare), "{bare}");
        }
        let mut foreign = v.clone();
        let other = if v.get("restored").is_some() {
            "previous"
        } else {
            "restored"
        };
        foreign[other] = v["active"].clone();
        assert!(!validator.is_valid(&foreign), "{foreign}");
    }
    let mut bad_digest: serde_json::Value = serde_json::from_slice(
        &message::model_status_record(&origin(), &message::new_record_id(), &events[0], 5).payload,
    )
    .unwrap();
    bad_digest["model"]["digest"] = "not-a-digest".into();
    assert!(!validator.is_valid(&bad_digest));
}

/// A model's classification of a report.
fn classified(mut r: WindowReport, class: &str) -> WindowReport {
    r.assessment.class = Some(crate::analyze::alert::ClassVerdict {
        class: class.into(),
        probability: 0.9,
        model_version: "m1".into(),
    });
    r
}

#[test]
fn summaries_carry_the_model_inputs_statistics_class_counts_drift_and_lineage() {
    let mut s = Summarizer::new(1000);
    let mut a = classified(report("pump-1", 1, 0, 1.0, Level::Normal), "normal");
    a.assessment.drift = Some(0.3);
    let mut b = classified(report("pump-1", 1, 160_000, 3.0, Level::Normal), "normal");
    b.assessment.drift = Some(0.5);
    let c = classified(report("pump-1", 1, 320_000, 2.0, Level::Normal), "outer");
    for (i, r) in [a, b, c].iter().enumerate() {
        s.push(r, i as u64);
    }
    let summary = s.drain().remove(0);
    // Input i of a report at velocity v is i + v: means i + 2, population spread sqrt(2/3).
    assert_eq!(summary.input_names, &FEATURE_NAMES[..]);
    for i in 0..MODEL_INPUT_LEN {
        assert!((summary.input_mean[i] - (i as f64 + 2.0)).abs() < 1e-5);
        assert!((summary.input_std[i] - (2.0f64 / 3.0).sqrt()).abs() < 1e-5);
        assert_eq!(summary.input_min[i], i as f64 + 1.0);
        assert_eq!(summary.input_max[i], i as f64 + 3.0);
    }
    assert_eq!(summary.class_counts.get("normal"), Some(&2));
    assert_eq!(summary.class_counts.get("outer"), Some(&1));
    assert_eq!((summary.drift, summary.drift_max), (Some(0.5), Some(0.5)));
    assert!((summary.anomaly_mean.unwrap() - 2.0).abs() < 1e-9);
    assert!(summary.input_drift.is_none(), "no distribution, no PSI");
    assert!(summary.input_sample.is_empty(), "off by default");
    let rec = message::summary_record(&origin(), &message::new_record_id(), &summary, 1);
    assert_valid("edgewatch.summaries", &rec.payload);
    let v: serde_json::Value = serde_json::from_slice(&rec.payload).unwrap();
    assert_eq!(v["lineage"]["source"], "mqtt:sensors/pump-1/1");
    assert_eq!(v["lineage"]["baseline_learned_us"], 42);
    assert_eq!(v["lineage"]["config_hash"].as_str().unwrap().len(), 16);
    assert_eq!(v["class_counts"]["normal"], 2);
    assert!(v.get("input_sample").is_none());
}

#[test]
fn the_input_sample_is_bounded_and_drawn_from_the_interval() {
    let mut s = Summarizer::new(1_000_000).with_input_sample(5);
    let starts: Vec<u64> = (0..200).map(|i| i * 160_000).collect();
    for (i, &t) in starts.iter().enumerate() {
        s.push(&report("pump-1", 1, t, 1.0, Level::Normal), i as u64);
    }
    let summary = s.drain().remove(0);
    assert_eq!(summary.input_sample.len(), 5);
    assert!(
        summary
            .input_sample
            .iter()
            .all(|v| starts.contains(&v.window_start_us) && v.values.len() == MODEL_INPUT_LEN)
    );
    // Uniform over the interval, not the first five windows.
    assert!(
        summary
            .input_sample
            .iter()
            .any(|v| v.window_start_us >= 5 * 160_000)
    );
    let rec = message::summary_record(&origin(), &message::new_record_id(), &summary, 1);
    assert_valid("edgewatch.summaries", &rec.payload);
}

#[test]
fn summaries_report_input_drift_against_the_model_training_distribution() {
    use crate::analyze::drift::{InputDistribution, quantiles};
    let p: Vec<f64> = (0..=10).map(|i| f64::from(i) / 10.0).collect();
    // Trained on inputs i + u, u uniform in [0, 4): the reports' i + 1 .. i + 3 are inside.
    let dist = Arc::new(InputDistribution {
        quantiles: (0..MODEL_INPUT_LEN)
            .map(|i| {
                let mut v: Vec<f64> = (0..400).map(|k| i as f64 + f64::from(k) / 100.0).collect();
                quantiles(&mut v, &p)
            })
            .collect(),
        probabilities: p,
    });
    let mut s = Summarizer::new(1000);
    for (k, velocity) in [1.0, 2.0, 3.0, 9.0].into_iter().enumerate() {
        let mut r = report("pump-1", 1, k as u64 * 160_000, velocity, Level::Normal);
        r.assessment.out_of_range = dist.out_of_range(&r.assessment.inputs);
        r.assessment.input_distribution = Some(dist.clone());
        s.push(&r, k as u64);
    }
    let summary = s.drain().remove(0);
    let d = summary.input_drift.as_ref().unwrap();
    assert_eq!((d.windows, d.out_of_range_windows), (4, 1));
    assert_eq!(d.psi.len(), MODEL_INPUT_LEN);
    assert!(d.psi_max > 0.25, "four windows in three bins: {d:?}");
    let rec = message::summary_record(&origin(), &message::new_record_id(), &summary, 1);
    assert_valid("edgewatch.summaries", &rec.payload);
}

fn schema_at(path: &str) -> jsonschema::Validator {
    let path = format!("{}/../schemas/{path}", env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// The records of this agent, one per topic, as JSON.
fn current_records() -> Vec<(&'static str, serde_json::Value)> {
    let mut s = Summarizer::new(10).with_input_sample(2);
    s.push(
        &classified(report("pump-1", 1, 0, 1.0, Level::Normal), "normal"),
        0,
    );
    let summary = s.drain().remove(0);
    let json = |r: crate::outbox::Record| serde_json::from_slice(&r.payload).unwrap();
    vec![
        (
            "edgewatch.summaries",
            json(message::summary_record(
                &origin(),
                &message::new_record_id(),
                &summary,
                1,
            )),
        ),
        (
            "edgewatch.health",
            json(message::health_record(
                &origin(),
                &message::new_record_id(),
                &Heartbeat::default(),
                1,
            )),
        ),
        (
            "edgewatch.model-status",
            json(message::model_status_record(
                &origin(),
                &message::new_record_id(),
                &lifecycle_events()[0],
                1,
            )),
        ),
    ]
}

/// The evolution rule (docs/feedback-loop.md), both ways.
#[test]
fn schemas_evolve_by_the_written_rule() {
    for (topic, record) in current_records() {
        let current = schema_at(&format!("{topic}.json"));
        let v1 = schema_at(&format!("v1/{topic}.json"));
        // A consumer of this version reads a record with a field added later (an additive
        // change keeps the version).
        let mut later = record.clone();
        later["added_in_a_later_release"] = serde_json::json!({"any": [1, 2]});
        assert!(current.is_valid(&later), "{topic}: {later}");
        // Version 2 removed, renamed and retyped nothing of version 1: a version-2 record
        // without the version-2 additions is a valid version-1 record, so a consumer that
        // picks the schema by `schema_version` reads both versions of a topic.
        let mut as_v1 = record.clone();
        let v1_schema: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../schemas/v1/{topic}.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let v1_fields: Vec<&String> = v1_schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        as_v1
            .as_object_mut()
            .unwrap()
            .retain(|k, _| v1_fields.contains(&k));
        as_v1["schema_version"] = 1.into();
        let errors: Vec<String> = v1.iter_errors(&as_v1).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{topic}: {errors:?}\n{as_v1}");
        // Version 1's schemas were closed to unknown fields, so a strict version-1 consumer
        // refuses version-2 records: that is why adding the lineage raised the version.
        assert!(!v1.is_valid(&record), "{topic}");
        // And a version-2 consumer tells version-1 records apart by their version.
        assert!(!current.is_valid(&as_v1), "{topic}");
    }
}

/// A command-status record of every kind the agent makes, through the code that makes them:
/// applied (each action, a shelve clearing an alert), duplicate, and each refusal, before
/// (triage) and in (the analysis thread) acting.
fn command_statuses() -> Vec<crate::analyze::feedback::CommandStatus> {
    use crate::analyze::feedback::record::{self, Action, CommandBody, CommandRecord, Triage};
    use crate::analyze::feedback::{CommandStatus, Commands, CommandsConfig};
    use crate::analyze::lifecycle::package::generate_key;
    let key = generate_key();
    let stranger = generate_key();
    let trusted = [key.verifying_key()];
    let mut scorer = crate::analyze::scoring::Scorer::new(
        None,
        crate::analyze::baseline::BaselineConfig::default(),
        crate::analyze::alert::AlertConfig::default(),
        None,
    );
    let mut commands = Commands::start(
        CommandsConfig {
            agent_id: "gw-1".into(),
            trusted_keys: trusted.to_vec(),
            assets: vec!["pump-1".into()],
            state_dir: None,
            max_age_ms: 86_400_000,
        },
        &mut scorer,
        0,
    );
    let body = |id: u128, action, asset: &str, until| CommandBody {
        command_id: format!("{id:032x}"),
        agent_id: "gw-1".into(),
        asset_id: asset.into(),
        action,
        shelve_until_unix_ms: until,
        issued_by: "j.doe".into(),
        created_unix_ms: 1,
    };
    let mut out = Vec::new();
    let mut act = |b: &CommandBody, out: &mut Vec<CommandStatus>| {
        out.push(
            commands
                .act(b, "kafka:edgewatch.feedback/0@7", &mut scorer, 1_000, 5)
                .status,
        );
    };
    let recommission = body(1, Action::Recommission, "pump-1", None);
    act(&recommission, &mut out);
    act(&recommission, &mut out);
    act(&body(2, Action::Shelve, "pump-1", Some(90_000)), &mut out);
    act(&body(3, Action::Shelve, "pump-1", Some(10)), &mut out);
    act(&body(4, Action::Recommission, "press-9", None), &mut out);
    let signed = |b: &CommandBody, k: Option<&ed25519_dalek::SigningKey>| {
        let mut r = CommandRecord::new(b);
        if let Some(k) = k {
            r.sign(k).unwrap();
        }
        r.to_bytes()
    };
    let mut altered: CommandRecord =
        serde_json::from_slice(&signed(&recommission, Some(&key))).unwrap();
    altered.body = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(body(1, Action::Shelve, "pump-1", Some(5)).to_bytes())
    };
    for bytes in [
        b"\x00garbage".to_vec(),
        signed(&recommission, None),
        signed(&recommission, Some(&stranger)),
        altered.to_bytes(),
    ] {
        match record::triage(&bytes, "gw-1", &trusted) {
            Triage::Refused { refusal, body } => out.push(CommandStatus::refused(
                &refusal,
                body.as_ref(),
                "kafka:edgewatch.feedback/2@0",
                9,
            )),
            other => panic!("not refused: {other:?}"),
        }
    }
    out
}

#[test]
fn every_kind_of_command_status_matches_the_command_status_schema() {
    let statuses = command_statuses();
    let results: Vec<(&str, Option<&str>)> = statuses
        .iter()
        .map(|s| (s.result.as_str(), s.reason))
        .collect();
    assert_eq!(
        results,
        [
            ("applied", None),
            ("duplicate", None),
            ("applied", None),
            ("refused", Some("expired")),
            ("refused", Some("unknown_asset")),
            ("refused", Some("malformed")),
            ("refused", Some("unsigned")),
            ("refused", Some("untrusted_key")),
            ("refused", Some("bad_signature")),
        ]
    );
    for s in &statuses {
        let rec = message::command_status_record(&origin(), &message::new_record_id(), s, 5);
        assert_eq!(rec.kind, crate::outbox::Kind::CommandStatus);
        assert_eq!(rec.key, "gw-1");
        assert_valid("edgewatch.command-status", &rec.payload);
        let v: serde_json::Value = serde_json::from_slice(&rec.payload).unwrap();
        assert_eq!(v["type"], "command_status");
    }
    // The schema holds a refusal to its reason, and an applied command to its id.
    let mut v: serde_json::Value = serde_json::from_slice(
        &message::command_status_record(&origin(), &message::new_record_id(), &statuses[5], 5)
            .payload,
    )
    .unwrap();
    assert_eq!(v["command_id"], serde_json::Value::Null);
    v["reason"] = serde_json::Value::Null;
    assert!(!validator("edgewatch.command-status").is_valid(&v));
    let mut v: serde_json::Value = serde_json::from_slice(
        &message::command_status_record(&origin(), &message::new_record_id(), &statuses[0], 5)
            .payload,
    )
    .unwrap();
    v["command_id"] = serde_json::Value::Null;
    assert!(!validator("edgewatch.command-status").is_valid(&v));
}

#[test]
fn feedback_records_the_lab_writes_match_the_feedback_schema() {
    use crate::analyze::feedback::record::{
        Action, CommandBody, CommandRecord, Label, LabelKind, new_id,
    };
    let label = |l: LabelKind| Label {
        schema_version: 1,
        kind: "label".into(),
        feedback_id: new_id(),
        created_unix_ms: 1,
        operator: "j.doe".into(),
        asset_id: "pump-1".into(),
        agent_id: Some("gw-1".into()),
        label: l,
        note: None,
    };
    for l in [
        LabelKind::AlertConfirmed {
            alert_id: "a".into(),
            fault: "outer".into(),
        },
        LabelKind::AlertRejected {
            alert_id: "a".into(),
        },
        LabelKind::Maintenance {
            at_unix_ms: 5,
            action: "bearing replaced".into(),
        },
        LabelKind::AssetState {
            from_unix_ms: 1,
            to_unix_ms: 2,
            state: "inner".into(),
        },
    ] {
        assert_valid(
            "edgewatch.feedback",
            &serde_json::to_vec(&label(l)).unwrap(),
        );
    }
    let mut v = serde_json::to_value(label(LabelKind::AlertRejected {
        alert_id: "a".into(),
    }))
    .unwrap();
    v.as_object_mut().unwrap().remove("alert_id");
    assert!(!validator("edgewatch.feedback").is_valid(&v));
    let body = CommandBody {
        command_id: new_id(),
        agent_id: "gw-1".into(),
        asset_id: "pump-1".into(),
        action: Action::Shelve,
        shelve_until_unix_ms: Some(9),
        issued_by: "j.doe".into(),
        created_unix_ms: 1,
    };
    let mut record = CommandRecord::new(&body);
    record
        .sign(&crate::analyze::lifecycle::package::generate_key())
        .unwrap();
    assert_valid("edgewatch.feedback", &record.to_bytes());
    // The body, against its own definition.
    let path = format!(
        "{}/../schemas/edgewatch.feedback.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut body_schema = schema["$defs"]["command_body"].clone();
    body_schema["$defs"] = schema["$defs"].clone();
    let validator = jsonschema::validator_for(&body_schema).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap();
    assert!(validator.is_valid(&v), "{v}");
    let mut no_end = v.clone();
    no_end
        .as_object_mut()
        .unwrap()
        .remove("shelve_until_unix_ms");
    assert!(!validator.is_valid(&no_end));
}
