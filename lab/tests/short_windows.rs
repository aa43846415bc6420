//! Features of short windows, as snapshot sensors send them (0.1 s bursts): the physics' typing
//! of bearing faults on the same simulated machines as `diagnosis_sim.rs` (a seed no model was
//! trained on, 12 to 48.8 kHz), cut into 0.1 s windows instead of 1 s ones. A 0.1 s window has
//! 10 Hz bins: the envelope lines of a bearing are still resolved, fewer impacts are averaged.
//!
//! Prints the table (`cargo test -p edgewatch-lab --test short_windows -- --nocapture`) and
//! checks that the physics still never names a bearing part on a machine without a bearing
//! fault, and never a wrong part. It is seldom sure on 0.1 s windows (measured 2026-12-05:
//! outer 1/10, ball 1/10, inner 0/10 after ten windows, against 8, 4 and 4 of 10 after six 1 s
//! windows in `diagnosis_sim.rs`):
//! a line's height over the noise of its bin grows with the window's length.

mod common;

use edgewatch_agent::assemble::window::WindowConfig;

const SEED: u64 = 9;
const CASES: u32 = 10;
const SAMPLE_RATES_HZ: [f64; 4] = [12_000.0, 20_000.0, 25_600.0, 48_800.0];

#[test]
fn short_windows_keep_the_physics_honest() {
    // Ten snapshots of 0.1 s, no overlap (bursts do not overlap).
    let short = WindowConfig::from_duration_s(0.1).with_overlap(0.0);
    let table = common::verdicts(SEED, CASES, &SAMPLE_RATES_HZ, short, 10);
    common::print(&table, CASES, "physics' verdict after 10 windows of 0.1 s");
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
        // A tenth of the impacts per window: the lines stand some 10 dB lower over the bins'
        // noise, so the physics is seldom sure; when it is, it must be right.
        assert_eq!(wrong, 0, "{part}: right {right}, wrong {wrong}: {table:?}");
    }
}
