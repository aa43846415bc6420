//! The physics' typing of bearing faults on simulated machines it was not tuned on: random
//! machines, bearings, speeds, resonances, sample rates (12 to 48.8 kHz), levels and fault
//! severities, drawn as the training data is ([`Case::draw`]) but from a seed no model was
//! trained on. Each case runs through the agent's windowing and feature extraction for six
//! windows, and a [`Diagnoser`] with the default settings reads the line families of all six.
//!
//! Prints the table (`cargo test -p edgewatch-lab --test diagnosis_sim -- --nocapture`) and
//! checks that the physics never names a bearing part on a machine without a bearing fault
//! and names the right part far more often than a wrong one.

use edgewatch_agent::analyze::diagnosis::{Diagnoser, DiagnosisConfig};
use edgewatch_agent::analyze::features::FeatureConfig;
use edgewatch_agent::assemble::window::WindowConfig;
use edgewatch_lab::training::{Case, FaultClass, run_case};
use std::collections::BTreeMap;

const SEED: u64 = 9;
const CASES: u32 = 10;
const SAMPLE_RATES_HZ: [f64; 4] = [12_000.0, 20_000.0, 25_600.0, 48_800.0];

#[test]
fn the_physics_names_the_bearing_part_on_simulated_machines_and_nothing_else() {
    let classes = [
        FaultClass::Normal,
        FaultClass::Outer,
        FaultClass::Inner,
        FaultClass::Ball,
        FaultClass::Imbalance,
        FaultClass::Misalignment,
        FaultClass::Looseness,
    ];
    let mut table: BTreeMap<&str, BTreeMap<String, u32>> = BTreeMap::new();
    let mut id = 0;
    for class in classes {
        for _ in 0..CASES {
            let case = Case::draw(SEED, id, class, &SAMPLE_RATES_HZ);
            id += 1;
            let windows = run_case(&case, WindowConfig::default(), &FeatureConfig::default(), 6)
                .expect("a simulated case runs");
            let mut d = Diagnoser::new(DiagnosisConfig::default());
            let mut verdict = None;
            for w in &windows {
                verdict = d.observe(&w.families).part;
            }
            *table
                .entry(class.name())
                .or_default()
                .entry(verdict.unwrap_or("ambiguous").to_string())
                .or_default() += 1;
        }
    }
    println!("| simulated class | cases | physics' verdict after 6 windows |\n|---|---:|---|");
    for (class, verdicts) in &table {
        let list: Vec<String> = verdicts.iter().map(|(v, n)| format!("{v} {n}")).collect();
        println!("| {class} | {CASES} | {} |", list.join(", "));
    }
    let count = |class: &str, verdict: &str| {
        table
            .get(class)
            .and_then(|v| v.get(verdict))
            .copied()
            .unwrap_or(0)
    };
    let parts = ["outer", "inner", "ball"];
    for class in ["normal", "imbalance", "misalignment", "looseness"] {
        let named: u32 = parts.iter().map(|p| count(class, p)).sum();
        assert_eq!(
            named, 0,
            "{class}: the physics named a bearing part: {table:?}"
        );
    }
    for part in parts {
        let right = count(part, part);
        let wrong: u32 = parts
            .iter()
            .filter(|p| **p != part)
            .map(|p| count(part, p))
            .sum();
        assert!(
            right >= 3 * wrong.max(1),
            "{part}: right {right}, wrong {wrong}: {table:?}"
        );
    }
}
