//! A bearing that degrades from healthy to severe, simulated and run through the agent's own
//! assembler, features, baseline and alert logic with a simulated clock: exactly one alert,
//! raised as a warning and escalated to critical. Once with the cold-start rules and the
//! baseline alone, once with the built-in int8 classifier in the loop as well (the agent's
//! default).

use edgewatch_agent::alert::{Level, Transition};
use edgewatch_agent::config::Config;
use edgewatch_agent::model::{Model, Variant};
use edgewatch_agent::pipeline::{Assembler, FeatureStage};
use edgewatch_agent::scoring::Classify;
use edgewatch_agent::source::Ingest;
use firmware_sim::link::{Injector, LinkFaults, Wire};
use firmware_sim::physics::scenario::Scenario;
use std::sync::Arc;

#[test]
fn a_degrading_bearing_raises_one_alert_that_escalates_from_warning_to_critical() {
    let raised = degrade(None);
    assert!(
        !raised.starts_with("classifier"),
        "no classifier here: {raised}"
    );
}

#[test]
fn with_the_built_in_model_a_degrading_bearing_raises_one_alert_that_escalates() {
    let model = Model::builtin(Variant::Int8).expect("the built-in model loads");
    let raised = degrade(Some(Box::new(model)));
    // The model is in the loop: it is the one that found the fault.
    assert!(
        raised.starts_with("classifier: outer"),
        "raised by the classifier: {raised}"
    );
}

/// Runs the scenario and checks its alert; returns the reason the alert was raised with.
fn degrade(classifier: Option<Box<dyn Classify>>) -> String {
    let data = tempfile::tempdir().unwrap();
    let config = Config::parse(&format!(
        "[agent]\ndata_dir = \"{}\"\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1\"\n\
         [baseline]\nwindows = 120\n\
         [[asset]]\nid = \"pump-1\"\nshaft_rpm = 1480\nbearing = \"skf-6205\"\nsensors = [1]\n",
        data.path().display()
    ))
    .unwrap();
    config.validate().unwrap();
    let scenario = Scenario::builtin("degrading").unwrap();
    assert_eq!(scenario.assets[0].machine.rpm, 1480.0);
    let mut nodes = firmware_sim::nodes_for(&scenario).unwrap();
    let mut injector = Injector::new(LinkFaults::default(), 1);
    let mut assembler = Assembler::new(&config);
    let mut stage = FeatureStage::new(&config, classifier);
    let source: Arc<str> = "sim".into();
    let mut windows = Vec::new();
    let mut events = Vec::new();
    let mut levels = Vec::new();
    let duration_s = scenario.duration_s.unwrap();
    while let Some(due) = nodes[0].next_due_s() {
        if due > duration_s {
            break;
        }
        let (t, frame) = nodes[0].emit().unwrap();
        let mut wire = Vec::new();
        injector.apply(frame, t, &mut wire);
        // The agent's clock follows the simulated time.
        let now_ms = (t * 1000.0) as u64;
        for w in wire {
            let Wire::Frame { raw, .. } = w else { continue };
            let frame = edgewatch_protocol::decode_frame(&raw).unwrap();
            assembler.on_ingest(
                Ingest {
                    source: source.clone(),
                    frame,
                    received_ms: now_ms,
                },
                &mut windows,
            );
        }
        for w in windows.drain(..) {
            let report = stage.process(w, now_ms).expect("window analysed");
            levels.push((t, report.assessment.level));
            if let Some(e) = report.alert {
                events.push((t, e));
            }
        }
    }
    let summary: Vec<_> = events
        .iter()
        .map(|(t, e)| {
            format!(
                "{t:.0}s {:?} {:?} {}",
                e.transition, e.level, e.finding.reason
            )
        })
        .collect();
    eprintln!("{summary:#?}");
    assert_eq!(events.len(), 2, "{summary:#?}");
    let (t_raise, raised) = &events[0];
    let (t_escalate, escalated) = &events[1];
    assert_eq!(raised.transition, Transition::Raised, "{summary:#?}");
    assert_eq!(raised.level, Level::Warning, "{summary:#?}");
    assert_eq!(escalated.transition, Transition::Escalated, "{summary:#?}");
    assert_eq!(escalated.level, Level::Critical, "{summary:#?}");
    assert_eq!(raised.id, escalated.id);
    // Healthy for the first minute: nothing before the fault starts growing.
    assert!(*t_raise > 60.0, "{summary:#?}");
    assert!(t_escalate > t_raise);
    assert!(
        escalated.finding.kind == "outer" || escalated.finding.reason.contains("BPFO"),
        "the escalation names the outer race: {summary:#?}"
    );
    assert!(levels.len() > 1000, "{} windows", levels.len());
    raised.finding.reason.clone()
}
