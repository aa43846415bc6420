//! A drive on a frequency converter ramping 1200 → 1800 rpm over a minute, with an outer-race
//! defect, simulated by firmware-sim and run through the agent's windowing and feature
//! extractor configured with one nominal speed (1500 rpm), as a gateway is.
//!
//! With the speed search (`speed_search_ratio` 0.25: 1125–1875 rpm) every window's speed is
//! found, within 0.5 % of the true speed at the window's middle (0.14 % measured), and the outer-race line is
//! found in the envelope spectrum at the true BPFO all through the ramp. With the search off,
//! the fixed nominal puts the BPFO search (± `speed_tolerance_ratio`, 2 %) on the right line
//! only while the true speed is within about 2 % of 1500 rpm, and the line is lost elsewhere.

use edgewatch_agent::analyze::features::{
    FaultOrders, FeatureConfig, FeatureExtractor, Features, MachineContext,
};
use edgewatch_agent::assemble::window::{Window, WindowAssembler, WindowConfig};
use edgewatch_protocol::{VibrationBlock, heapless};
use firmware_sim::physics::scenario::{AssetSim, DEFAULT_LOAD, Phase, Scenario};
use firmware_sim::physics::vibration::FaultSeverity;

const NOMINAL_RPM: f64 = 1500.0;
const RAMP: (f64, f64) = (1200.0, 1800.0);
const RAMP_S: f64 = 60.0;
/// Largest error of a window's estimated speed against the true speed at its middle.
const TOLERANCE: f64 = 0.005;
/// An envelope line at least this far over its background is found (the textbook threshold
/// of `lab eval`: above what a window reads by chance).
const FOUND_DB: f64 = 10.0;

/// The built-in outer-race pump (skf-6205, outer race at severity 0.5), its speed ramping.
fn ramp_scenario() -> Scenario {
    let mut scenario = Scenario::builtin("outer-race").unwrap();
    let faults = FaultSeverity {
        outer_race: 0.5,
        ..FaultSeverity::HEALTHY
    };
    let keyframe = |at_s, rpm| Phase {
        at_s,
        load: DEFAULT_LOAD,
        overheat: 0.0,
        faults,
        rpm: Some(rpm),
    };
    scenario.assets[0].phases = vec![keyframe(0.0, RAMP.0), keyframe(RAMP_S, RAMP.1)];
    scenario
}

/// Every window of the ramp (first `RAMP_S` seconds): the true rpm at its middle and the
/// features of each configuration.
fn run(configs: &[FeatureConfig]) -> Vec<(f64, Vec<Features>)> {
    let scenario = ramp_scenario();
    let mut sim = AssetSim::new(&scenario, 0).unwrap();
    let orders = sim.config().machine.bearing.orders();
    let ctx = MachineContext {
        shaft_hz: NOMINAL_RPM / 60.0,
        orders: FaultOrders {
            bpfo: orders.bpfo,
            bpfi: orders.bpfi,
            bsf: orders.bsf,
            ftf: orders.ftf,
        },
    };
    let fs = scenario.sample_rate_hz;
    let mut windower = WindowAssembler::new(1, WindowConfig::default());
    let mut extractors: Vec<FeatureExtractor> = Vec::new();
    let scale = sim.full_scale_g() / f32::from(i16::MAX);
    let mut block = vec![0.0f32; sim.block_len()];
    let mut windows: Vec<Window> = Vec::new();
    let mut out = Vec::new();
    while sim.next_block_start_s() < RAMP_S {
        let info = sim.next_vibration(&mut block);
        let frame = VibrationBlock {
            flags: edgewatch_protocol::BlockFlags::CONTINUOUS,
            sample_rate_hz: fs as f32,
            axes: 1,
            scale_g_per_lsb: scale,
            samples: block
                .iter()
                .map(|&g| (g / scale).round() as i16)
                .collect::<heapless::Vec<i16, { edgewatch_protocol::MAX_VIBRATION_SAMPLES }>>(),
        };
        let timestamp_us = (info.t_start_s * 1e6).round() as u64;
        windower.push(timestamp_us, &frame, &mut windows);
        for w in windows.drain(..) {
            if extractors.is_empty() {
                extractors = configs
                    .iter()
                    .map(|cfg| FeatureExtractor::new(w.samples.len(), fs, cfg).unwrap())
                    .collect();
            }
            let middle_s = (w.start_us + w.end_us) as f64 / 2e6;
            if w.end_us as f64 / 1e6 > RAMP_S {
                continue;
            }
            let true_rpm = sim.condition_at(middle_s).rpm;
            let features = extractors
                .iter_mut()
                .map(|e| e.extract(&w.samples, &ctx).unwrap())
                .collect();
            out.push((true_rpm, features));
        }
    }
    out
}

#[test]
fn the_estimated_speed_tracks_a_ramp_and_keeps_the_bearing_line_found() {
    let searching = FeatureConfig {
        speed_search_ratio: 0.25,
        ..FeatureConfig::default()
    };
    let fixed = FeatureConfig {
        speed_search_ratio: 0.0,
        ..FeatureConfig::default()
    };
    let windows = run(&[searching, fixed]);
    assert!(windows.len() >= 80, "{} windows", windows.len());
    let bpfo = ramp_scenario().assets[0].machine.bearing.orders().bpfo;

    let mut worst: f64 = 0.0;
    let (mut found_searching, mut found_fixed) = (0, 0);
    for (true_rpm, f) in &windows {
        let (s, x) = (&f[0], &f[1]);
        assert!(s.speed_estimated, "at {true_rpm:.0} rpm: no estimate");
        let error = (s.shaft_hz * 60.0 / true_rpm - 1.0).abs();
        worst = worst.max(error);
        assert!(
            error <= TOLERANCE,
            "at {true_rpm:.0} rpm: estimated {:.1} rpm ({:.2} %)",
            s.shaft_hz * 60.0,
            error * 100.0
        );
        // The line found at the true BPFO, not merely something over the threshold.
        let true_bpfo = bpfo * true_rpm / 60.0;
        if s.envelope.bpfo_db >= FOUND_DB && (s.envelope.bpfo_hz / true_bpfo - 1.0).abs() < 0.01 {
            found_searching += 1;
        }
        assert!(!x.speed_estimated);
        assert_eq!(x.shaft_hz, NOMINAL_RPM / 60.0);
        if x.envelope.bpfo_db >= FOUND_DB && (x.envelope.bpfo_hz / true_bpfo - 1.0).abs() < 0.01 {
            found_fixed += 1;
        }
    }
    let n = windows.len() as f64;
    let (share_searching, share_fixed) = (found_searching as f64 / n, found_fixed as f64 / n);
    eprintln!(
        "{} windows, 1200 -> 1800 rpm: speed within {:.3} % of the truth; BPFO line found in \
         {:.0} % of the windows with the search, {:.0} % at the fixed nominal",
        windows.len(),
        worst * 100.0,
        share_searching * 100.0,
        share_fixed * 100.0
    );
    assert!(
        share_searching >= 0.95,
        "BPFO found in {:.0} % of the windows with the search",
        share_searching * 100.0
    );
    // The nominal is right (±2 %) over about an eighth of the ramp.
    assert!(
        share_fixed <= 0.3,
        "BPFO found in {:.0} % of the windows at the fixed nominal",
        share_fixed * 100.0
    );
}
