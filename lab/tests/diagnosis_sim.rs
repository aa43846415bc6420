//! The physics' typing of bearing faults on simulated machines it was not tuned on: random
//! machines, bearings, speeds, resonances, sample rates (12 to 48.8 kHz), levels and fault
//! severities, drawn as the training data is (`Case::draw`) but from a seed no model was
//! trained on. Each case runs through the agent's windowing and feature extraction for six
//! windows, and a `Diagnoser` with the default settings reads the line families of all six.
//!
//! Prints the table (`cargo test -p edgewatch-lab --test diagnosis_sim -- --nocapture`) and
//! checks that the physics never names a bearing part on a machine without a bearing fault
//! and names the right part far more often than a wrong one.

mod common;

use edgewatch_agent::assemble::window::WindowConfig;

const SEED: u64 = 9;
const CASES: u32 = 10;
const SAMPLE_RATES_HZ: [f64; 4] = [12_000.0, 20_000.0, 25_600.0, 48_800.0];

#[test]
fn the_physics_names_the_bearing_part_on_simulated_machines_and_nothing_else() {
    let table = common::verdicts(SEED, CASES, &SAMPLE_RATES_HZ, WindowConfig::default(), 6);
    common::print(&table, CASES, "physics' verdict after 6 windows");
    let parts = ["outer", "inner", "ball"];
    for class in ["normal", "imbalance", "misalignment", "looseness"] {
        let named: u32 = parts.iter().map(|p| common::count(&table, class, p)).sum();
        assert_eq!(
            named, 0,
            "{class}: the physics named a bearing part: {table:?}"
        );
    }
    for part in parts {
        let right = common::count(&table, part, part);
        let wrong = common::wrong_part(&table, part);
        assert!(
            right >= 3 * wrong.max(1),
            "{part}: right {right}, wrong {wrong}: {table:?}"
        );
    }
}
