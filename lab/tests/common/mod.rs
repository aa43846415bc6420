//! Shared by the lab's tests of the physics' diagnosis on simulated machines.

use edgewatch_agent::analyze::diagnosis::{Diagnoser, DiagnosisConfig};
use edgewatch_agent::analyze::features::FeatureConfig;
use edgewatch_agent::assemble::window::WindowConfig;
use edgewatch_lab::training::{Case, FaultClass, run_case};
use std::collections::BTreeMap;

/// Verdict counts by simulated class: class name → physics' verdict (`ambiguous` when it names
/// no part) → cases.
pub type Table = BTreeMap<&'static str, BTreeMap<String, u32>>;

/// The physics' verdict after `windows` windows of `window`, on `cases` simulated machines per
/// class drawn from `seed` at `sample_rates_hz`, as the training data is drawn.
pub fn verdicts(
    seed: u64,
    cases: u32,
    sample_rates_hz: &[f64],
    window: WindowConfig,
    windows: usize,
) -> Table {
    let classes = [
        FaultClass::Normal,
        FaultClass::Outer,
        FaultClass::Inner,
        FaultClass::Ball,
        FaultClass::Imbalance,
        FaultClass::Misalignment,
        FaultClass::Looseness,
    ];
    let mut table = Table::new();
    let mut id = 0;
    for class in classes {
        for _ in 0..cases {
            let case = Case::draw(seed, id, class, sample_rates_hz);
            id += 1;
            let labelled = run_case(&case, window, &FeatureConfig::default(), windows)
                .expect("a simulated case runs");
            let mut d = Diagnoser::new(DiagnosisConfig::default());
            let mut verdict = None;
            for w in &labelled {
                verdict = d.observe(&w.families).part;
            }
            *table
                .entry(class.name())
                .or_default()
                .entry(verdict.unwrap_or("ambiguous").to_string())
                .or_default() += 1;
        }
    }
    table
}

/// Prints the table as Markdown under `header` (the verdict column's title).
pub fn print(table: &Table, cases: u32, header: &str) {
    println!("| simulated class | cases | {header} |\n|---|---:|---|");
    for (class, verdicts) in table {
        let list: Vec<String> = verdicts.iter().map(|(v, n)| format!("{v} {n}")).collect();
        println!("| {class} | {cases} | {} |", list.join(", "));
    }
}

/// Cases of `class` the physics called `verdict`.
pub fn count(table: &Table, class: &str, verdict: &str) -> u32 {
    table
        .get(class)
        .and_then(|v| v.get(verdict))
        .copied()
        .unwrap_or(0)
}

/// Cases of bearing part `part` the physics called another part.
pub fn wrong_part(table: &Table, part: &str) -> u32 {
    ["outer", "inner", "ball"]
        .iter()
        .filter(|p| **p != part)
        .map(|p| count(table, part, p))
        .sum()
}
