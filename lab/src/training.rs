//! Labelled training data for the fault classifier, made by the agent's own code.
//!
//! `agent export-features` draws random machines and conditions, runs each through the
//! simulator's sensor node ([`firmware_sim::nodes_for`]), the agent's ordering and windowing
//! ([`Assembler`], fed [`Ingest`]s exactly as the sources do) and the agent's feature extractor,
//! and writes one CSV row of [`Features::model_inputs`](edgewatch_agent::analyze::features::Features::model_inputs)
//! per window with its class. Training and inference therefore share one implementation of
//! everything up to the model's input vector; a change there is picked up by re-running the
//! export, never by keeping two copies in step.
//!
//! # What is varied, and why
//!
//! One model has to serve machines it never saw, so each *case* (one machine in one condition,
//! a few consecutive windows) is drawn independently:
//!
//! | quantity | range |
//! |---|---|
//! | sample rate | 12, 20, 25.6, 48.8 kHz (windows keep the configured size, by default 1 s: 12 000, 20 000, 25 600 and 49 152 samples; only a fixed `--window-len` keeps the sample count instead) |
//! | shaft speed | 600–3600 rpm, log-uniform; the agent is told it within ± 0.5 % |
//! | bearing | SKF 6203, SKF 6205, or a random geometry (7–20 elements, d/D 0.12–0.30, contact angle 0–40°) |
//! | structural resonance | 1.5–8 kHz log-uniform, at most 0.4 × sample rate; damping 0.02–0.12 |
//! | levels | one gain over two decades (0.1–10) on every g level: sensitivity and machine size |
//! | noise, healthy 1x/2x/3x, fault amplitudes | each drawn independently (see [`Case::draw`]) |
//! | slip | 0.5–2 % |
//! | fault severity | 0.15 (incipient) to 1 (severe), uniform |
//! | sensor | 1 axis or 3 axes (then one axis is used, horizontal, vertical or axial) |
//! | temperature | 30 % of non-overheating cases have no probe (rate unknown, input 0); the rest run in a thermal steady state with a small load change (|rate| ≲ 0.4 °C/min) |
//!
//! Overheating is healthy vibration with lost cooling: the temperature steps towards a
//! steady state 18–60 °C higher with a 2–15 min time constant, a rise of at least about
//! 1 °C/min over the first minute. Its windows (and every window with a probe) are taken
//! once the agent's temperature trend has a rate, after its minimum span (60 s by default).
//!
//! Everything derives from `(seed, case id)`, so an export is reproducible whatever the
//! number of threads. Cases with different seeds are different machines: train on one seed
//! and test on another to measure accuracy on unseen machines.
//!
//! # Recordings
//!
//! [`recording_windows`] runs a folder of real recordings (the `index.csv` layout of
//! [`crate::recordings`]) through the same windowing and features, for validation only.

use std::io::Write;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use firmware_sim::node::{SensorNode, SignalSource};
use firmware_sim::physics::bearing::BearingGeometry;
use firmware_sim::physics::mix;
use firmware_sim::physics::scenario::{AssetConfig, AssetSim, Phase, Scenario, ScenarioError};
use firmware_sim::physics::thermal::ThermalParams;
use firmware_sim::physics::vibration::{FaultSeverity, MachineParams, Resonator};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::recordings::{EvalError, parse_index};
use edgewatch_agent::analyze::features::{
    FEATURE_NAMES, FaultOrders, FeatureConfig, FeatureError, FeatureExtractor, MODEL_INPUT_LEN,
    MachineContext,
};
use edgewatch_agent::assemble::window::WindowConfig;
use edgewatch_agent::assemble::{AssembledWindow, Assembler};
use edgewatch_agent::config::{Asset, Config};
use edgewatch_agent::ingest::Ingest;

/// The classifier's classes, in output order. Names follow the vocabulary of the recording
/// indexes where one exists (`normal`, `outer`, `inner`, `ball`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultClass {
    /// Healthy machine.
    Normal,
    /// Localised outer-race defect.
    Outer,
    /// Localised inner-race defect.
    Inner,
    /// Spalled rolling element.
    Ball,
    /// Rotor imbalance.
    Imbalance,
    /// Shaft misalignment.
    Misalignment,
    /// Mechanical looseness.
    Looseness,
    /// Healthy vibration, temperature rising (cooling or lubrication lost).
    Overheating,
}

/// Names of [`FaultClass::ALL`], in order: the model's output order.
pub const CLASS_NAMES: [&str; 8] = [
    "normal",
    "outer",
    "inner",
    "ball",
    "imbalance",
    "misalignment",
    "looseness",
    "overheating",
];

impl FaultClass {
    /// Every class, in the model's output order.
    pub const ALL: [Self; 8] = [
        Self::Normal,
        Self::Outer,
        Self::Inner,
        Self::Ball,
        Self::Imbalance,
        Self::Misalignment,
        Self::Looseness,
        Self::Overheating,
    ];

    /// The class's name in [`CLASS_NAMES`].
    pub fn name(self) -> &'static str {
        CLASS_NAMES[self as usize]
    }

    /// The class of a name in [`CLASS_NAMES`].
    pub fn from_name(name: &str) -> Option<Self> {
        CLASS_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
    }
}

/// Why an export failed. None is recoverable by retrying: the options or the data must change.
#[derive(Debug, Error)]
pub enum TrainingError {
    /// A drawn case made an invalid scenario (a bug in [`Case::draw`]).
    #[error("case {case}: {source}")]
    Scenario {
        /// The case id.
        case: u32,
        /// The simulator's complaint.
        source: ScenarioError,
    },
    /// The feature extractor refused the window length or sample rate.
    #[error("case {case}: {source}")]
    Features {
        /// The case id.
        case: u32,
        /// The extractor's complaint.
        source: FeatureError,
    },
    /// A case produced fewer windows than asked for within its signal budget.
    #[error("case {case}: only {got} of {wanted} windows within {budget_s} s of signal")]
    TooFewWindows {
        /// The case id.
        case: u32,
        /// Windows produced.
        got: usize,
        /// Windows asked for.
        wanted: usize,
        /// Signal time simulated before giving up, s.
        budget_s: f64,
    },
    /// Options out of range.
    #[error("{0}")]
    Options(String),
    /// Reading recordings failed.
    #[error(transparent)]
    Recordings(#[from] EvalError),
    /// Writing the CSV failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The output file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The sample rates of the export by default, Hz: those of common MEMS and IEPE front ends
/// and of the reference recordings.
pub const DEFAULT_SAMPLE_RATES_HZ: [f64; 4] = [12_000.0, 20_000.0, 25_600.0, 48_800.0];

/// What to export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// Seed of every random draw.
    pub seed: u64,
    /// Cases (machines) per class.
    pub cases_per_class: usize,
    /// Consecutive windows taken from each case.
    pub windows_per_case: usize,
    /// Sample rates drawn from, Hz.
    pub sample_rates_hz: Vec<f64>,
    /// The agent's windowing (size and overlap), as configured on the gateway.
    pub window: WindowConfig,
    /// The agent's feature settings.
    pub features: FeatureConfig,
    /// Worker threads.
    pub threads: NonZeroUsize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            cases_per_class: 200,
            windows_per_case: 6,
            sample_rates_hz: DEFAULT_SAMPLE_RATES_HZ.to_vec(),
            window: WindowConfig::default(),
            features: FeatureConfig::default(),
            threads: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
        }
    }
}

impl ExportOptions {
    /// Checks the options an export depends on.
    pub fn validate(&self) -> Result<(), TrainingError> {
        let bad = |reason: &str| Err(TrainingError::Options(reason.to_string()));
        if self.cases_per_class == 0 || self.windows_per_case == 0 {
            return bad("cases per class and windows per case must be at least 1");
        }
        if self.sample_rates_hz.is_empty()
            || self
                .sample_rates_hz
                .iter()
                .any(|r| !(r.is_finite() && (4_000.0..=100_000.0).contains(r)))
        {
            return bad("sample rates must be given, each within 4000..=100000 Hz");
        }
        if let Some(problem) = self.window.problems().first() {
            return bad(&problem.to_string());
        }
        Ok(())
    }
}

/// One simulated machine in one condition: everything needed to reproduce its windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Index in the export.
    pub id: u32,
    /// Label.
    pub class: FaultClass,
    /// Severity of the labelled fault, 0..=1 (overheating: the overheat fraction; normal: 0).
    pub severity: f64,
    /// Scenario seed.
    pub seed: u64,
    /// Sample rate, Hz.
    pub sample_rate_hz: f64,
    /// Axes of the sensor.
    pub axes: u8,
    /// The axis whose windows are used.
    pub axis: u8,
    /// Accelerometer full scale, g.
    pub full_scale_g: f32,
    /// The machine, at its true speed.
    pub machine: MachineParams,
    /// Thermal behaviour.
    pub thermal: ThermalParams,
    /// Load before and after the step at [`STEP_AT_S`].
    pub load: [f64; 2],
    /// Whether the machine has a temperature probe (if not, the rate input is 0).
    pub temperature_probe: bool,
    /// Speed the agent is configured with, rpm (the true one within ± 0.5 %).
    pub configured_rpm: f64,
    /// Signal content that is not the labelled condition.
    pub nuisance: Nuisance,
}

/// When a case's load or overheat steps, s. Not at 0: the simulator starts its thermal model
/// settled at the condition at time 0.
pub const STEP_AT_S: f64 = 1.0;

fn log_uniform(rng: &mut (impl Rng + ?Sized), low: f64, high: f64) -> f64 {
    (rng.random_range(low.ln()..=high.ln())).exp()
}

fn random_bearing(rng: &mut impl Rng) -> BearingGeometry {
    match rng.random_range(0..4) {
        0 => BearingGeometry::skf_6203(),
        1 => BearingGeometry::skf_6205(),
        _ => {
            let pitch_diameter_mm = log_uniform(rng, 25.0, 150.0);
            BearingGeometry {
                rolling_elements: rng.random_range(7..=20),
                element_diameter_mm: pitch_diameter_mm * rng.random_range(0.12..=0.30),
                pitch_diameter_mm,
                contact_angle_deg: if rng.random_bool(0.6) {
                    0.0
                } else {
                    rng.random_range(5.0..=40.0)
                },
            }
        }
    }
}

/// The simulator's largest accepted level, g.
const MAX_LEVEL_G: f64 = 100.0;

/// Impacts ringing a structural resonance, added on top of the simulator's signal.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraImpacts {
    /// Mean impacts per second.
    pub rate_hz: f64,
    /// Whether the intervals are random (Poisson) or periodic (± 1 % jitter).
    pub random: bool,
    /// Typical peak of one impact's ring-down, g (each impact varies by a factor e^±0.8).
    pub amplitude_g: f64,
    /// Resonance the impacts ring, Hz.
    pub resonance_hz: f64,
    /// Its damping ratio.
    pub damping_ratio: f64,
    /// Amplitude modulation `(frequency Hz, depth 0..1)` of the impacts, if any.
    pub modulation: Option<(f64, f64)>,
}

/// Signal content that real machines show whatever their condition, added to every class
/// alike so the model learns that none of it is a fault: random impacts (process noise,
/// cavitation, rubs, surface roughness; they make healthy real windows impulsive), periodic
/// impacts at a rate that is no bearing line (gear mesh, blade pass, couplings), and mains
/// pickup. Random impacts may be modulated at 1x or at the cage frequency, as the load zone
/// and a slightly eccentric cage do on healthy bearings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Nuisance {
    /// Random impacts, if any.
    pub random_impacts: Option<ExtraImpacts>,
    /// Periodic impacts at a non-bearing rate, if any.
    pub periodic_impacts: Option<ExtraImpacts>,
    /// Mains tone `(frequency Hz, amplitude g)`, if any.
    pub line_tone: Option<(f64, f64)>,
}

impl Nuisance {
    /// Draws the nuisance of one case (see the type's docs).
    pub fn draw(rng: &mut impl Rng, machine: &MachineParams, sample_rate_hz: f64) -> Self {
        let top_hz = 0.4 * sample_rate_hz;
        let shaft_hz = machine.shaft_hz();
        let orders = machine.bearing.orders();
        let resonance = |rng: &mut dyn rand::RngCore| {
            if rng.random_bool(0.5) {
                machine.resonance_hz
            } else {
                log_uniform(rng, 1200.0, top_hz.min(10_000.0))
            }
        };
        let random_impacts = rng.random_bool(0.7).then(|| ExtraImpacts {
            rate_hz: log_uniform(rng, 10.0, 2000.0),
            random: true,
            amplitude_g: machine.noise_g * log_uniform(rng, 0.3, 8.0),
            resonance_hz: resonance(rng),
            damping_ratio: log_uniform(rng, 0.02, 0.12),
            modulation: match rng.random_range(0..3) {
                0 => Some((shaft_hz, rng.random_range(0.1..=0.8))),
                1 => Some((orders.ftf * shaft_hz, rng.random_range(0.1..=0.8))),
                _ => None,
            },
        });
        // A periodic rate whose first harmonics all stay clear of every searched bearing line.
        let lines: Vec<f64> = [orders.bpfo, orders.bpfi, orders.bsf, orders.ftf]
            .iter()
            .flat_map(|o| [o * shaft_hz, 2.0 * o * shaft_hz])
            .collect();
        let clear = |rate: f64| {
            (1..=4).all(|k| {
                lines
                    .iter()
                    .all(|line| ((k as f64 * rate) / line - 1.0).abs() > 0.05)
            })
        };
        let periodic_impacts = if rng.random_bool(0.3) {
            (0..50)
                .map(|_| log_uniform(rng, 5.0, 400.0))
                .find(|&rate| clear(rate))
                .map(|rate_hz| ExtraImpacts {
                    rate_hz,
                    random: false,
                    amplitude_g: machine.noise_g * log_uniform(rng, 0.3, 6.0),
                    resonance_hz: resonance(rng),
                    damping_ratio: log_uniform(rng, 0.02, 0.12),
                    modulation: None,
                })
        } else {
            None
        };
        let line_tone = rng.random_bool(0.3).then(|| {
            let mains = if rng.random_bool(0.5) { 50.0 } else { 60.0 };
            let harmonic = if rng.random_bool(0.5) { 1.0 } else { 2.0 };
            (
                mains * harmonic,
                machine.noise_g * log_uniform(rng, 0.1, 3.0),
            )
        });
        Self {
            random_impacts,
            periodic_impacts,
            line_tone,
        }
    }
}

/// One [`ExtraImpacts`] being rendered.
#[derive(Debug)]
struct ImpactRenderer {
    spec: ExtraImpacts,
    ringing: Resonator,
    /// Samples until the next impact.
    countdown: f64,
    sample_rate_hz: f64,
}

impl ImpactRenderer {
    fn new(spec: &ExtraImpacts, sample_rate_hz: f64, rng: &mut impl Rng) -> Self {
        Self {
            ringing: Resonator::new(spec.resonance_hz, spec.damping_ratio, sample_rate_hz),
            countdown: rng.random::<f64>() * sample_rate_hz / spec.rate_hz,
            spec: spec.clone(),
            sample_rate_hz,
        }
    }

    fn step(&mut self, t_s: f64, rng: &mut impl Rng) -> f64 {
        let mut impulse = 0.0;
        self.countdown -= 1.0;
        while self.countdown <= 0.0 {
            let mut a = self.spec.amplitude_g * (rng.random_range(-0.8..=0.8f64)).exp();
            if let Some((f, depth)) = self.spec.modulation {
                a *= 1.0 + depth * (std::f64::consts::TAU * f * t_s).cos();
            }
            impulse += a;
            let mean = self.sample_rate_hz / self.spec.rate_hz;
            self.countdown += if self.spec.random {
                // Exponential intervals; never less than one sample.
                (-(1.0 - rng.random::<f64>()).ln() * mean).max(1.0)
            } else {
                mean * (1.0 + rng.random_range(-0.01..=0.01))
            };
        }
        self.ringing.step(impulse)
    }
}

/// How strongly the nuisance shows on each axis (horizontal, vertical, axial).
const NUISANCE_AXIS_GAIN: [f32; 3] = [1.0, 0.9, 0.6];

/// The simulator's asset plus a [`Nuisance`]: what the sensor node samples.
#[derive(Debug)]
struct NuisanceSource {
    sim: AssetSim,
    axes: usize,
    sample_rate_hz: f64,
    samples: u64,
    rng: ChaCha8Rng,
    impacts: Vec<ImpactRenderer>,
    tone: Option<(f64, f64, f64)>,
}

impl NuisanceSource {
    fn new(sim: AssetSim, nuisance: &Nuisance, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ 0x6e75_6973));
        let sample_rate_hz = sim.sample_rate_hz();
        let impacts = [&nuisance.random_impacts, &nuisance.periodic_impacts]
            .into_iter()
            .flatten()
            .map(|spec| ImpactRenderer::new(spec, sample_rate_hz, &mut rng))
            .collect();
        let tone = nuisance
            .line_tone
            .map(|(f, a)| (f, a, rng.random::<f64>() * std::f64::consts::TAU));
        Self {
            axes: sim.axes(),
            sim,
            sample_rate_hz,
            samples: 0,
            rng,
            impacts,
            tone,
        }
    }
}

impl SignalSource for NuisanceSource {
    fn next_vibration(&mut self, out: &mut [f32]) -> bool {
        self.sim.next_vibration(out);
        for frame in out.chunks_exact_mut(self.axes) {
            let t_s = self.samples as f64 / self.sample_rate_hz;
            let mut x = 0.0;
            for impacts in &mut self.impacts {
                x += impacts.step(t_s, &mut self.rng);
            }
            if let Some((f, a, phase)) = self.tone {
                x += a * (std::f64::consts::TAU * f * t_s + phase).sin();
            }
            for (v, gain) in frame.iter_mut().zip(NUISANCE_AXIS_GAIN) {
                *v += x as f32 * gain;
            }
            self.samples += 1;
        }
        true
    }

    fn temperature_c(&mut self, t_s: f64) -> Option<f64> {
        Some(self.sim.temperature_at(t_s))
    }
}

impl Case {
    /// Draws case `id` of class `class` from `seed`; the same arguments give the same case.
    pub fn draw(seed: u64, id: u32, class: FaultClass, sample_rates_hz: &[f64]) -> Self {
        let case_seed = mix(seed ^ mix(u64::from(id)));
        let mut rng = ChaCha8Rng::seed_from_u64(case_seed);
        let sample_rate_hz = sample_rates_hz[rng.random_range(0..sample_rates_hz.len())];
        let rpm = log_uniform(&mut rng, 600.0, 3600.0);
        let bearing = random_bearing(&mut rng);
        let resonance_hz = log_uniform(&mut rng, 1500.0, 8000.0_f64.min(0.4 * sample_rate_hz));
        // One gain over every level: sensor sensitivity, machine size and mounting. The
        // other levels are drawn relative to it, and fault levels relative to what the
        // healthy machine already shows, so a fault at the lowest severity is present (if
        // faint) rather than buried under the healthy signal it is labelled against.
        let gain = log_uniform(&mut rng, 0.1, 10.0);
        let noise_g = gain * log_uniform(&mut rng, 0.003, 0.15);
        let one_x = gain * log_uniform(&mut rng, 0.001, 0.05);
        let shaft_level = one_x.max(0.3 * noise_g);
        let machine = MachineParams {
            rpm,
            bearing,
            resonance_hz,
            damping_ratio: log_uniform(&mut rng, 0.02, 0.12),
            noise_g,
            shaft_harmonics_g: [
                one_x,
                one_x * rng.random_range(0.1..=0.8),
                one_x * rng.random_range(0.05..=0.5),
            ],
            slip_fraction: rng.random_range(0.005..=0.02),
            // Impact peak at severity s is this × s²: 0.1 to 3 × the noise RMS at s = 0.15.
            bearing_impact_g: (noise_g * log_uniform(&mut rng, 5.0, 150.0)).min(MAX_LEVEL_G),
            // 1x added at s = 0.15: 1.5 to 9 × the healthy shaft level.
            imbalance_g: (shaft_level * log_uniform(&mut rng, 10.0, 60.0)).min(MAX_LEVEL_G),
            misalignment_g: (shaft_level * log_uniform(&mut rng, 8.0, 40.0)).min(MAX_LEVEL_G),
            looseness_g: (shaft_level * log_uniform(&mut rng, 8.0, 40.0)).min(MAX_LEVEL_G),
        };
        let nuisance = Nuisance::draw(&mut rng, &machine, sample_rate_hz);
        let severity = match class {
            FaultClass::Normal => 0.0,
            FaultClass::Overheating => rng.random_range(0.6..=1.0),
            _ => rng.random_range(0.15..=1.0),
        };
        let axes = if rng.random_bool(0.6) { 1 } else { 3 };
        let axis = rng.random_range(0..axes);
        // Smallest common full-scale range with ample headroom.
        let full_scale_g = [2.0f32, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
            .into_iter()
            .find(|&fs| f64::from(fs) >= 20.0 * gain)
            .unwrap_or(256.0);
        let load0: f64 = rng.random_range(0.4..=0.95);
        let (thermal, load, temperature_probe) = if class == FaultClass::Overheating {
            let thermal = ThermalParams {
                ambient_c: rng.random_range(5.0..=40.0),
                load_rise_c: rng.random_range(15.0..=35.0),
                time_constant_s: log_uniform(&mut rng, 120.0, 900.0),
                overheat_rise_c: rng.random_range(30.0..=60.0),
                sensor_noise_c: rng.random_range(0.05..=0.3),
                ..ThermalParams::DEFAULT
            };
            (thermal, [load0, load0], true)
        } else {
            let thermal = ThermalParams {
                ambient_c: rng.random_range(5.0..=40.0),
                load_rise_c: rng.random_range(15.0..=35.0),
                time_constant_s: log_uniform(&mut rng, 300.0, 3600.0),
                sensor_noise_c: rng.random_range(0.05..=0.3),
                ..ThermalParams::DEFAULT
            };
            let load1: f64 = (load0 + rng.random_range(-0.1..=0.05)).clamp(0.0, 1.0);
            (thermal, [load0, load1], rng.random_bool(0.7))
        };
        let configured_rpm = rpm * (1.0 + rng.random_range(-0.005..=0.005));
        Self {
            id,
            class,
            severity,
            seed: case_seed,
            sample_rate_hz,
            axes,
            axis,
            full_scale_g,
            machine,
            thermal,
            load,
            temperature_probe,
            configured_rpm,
            nuisance,
        }
    }

    /// The fault severities of this case's class.
    pub fn faults(&self) -> FaultSeverity {
        let s = self.severity;
        let mut f = FaultSeverity::HEALTHY;
        match self.class {
            FaultClass::Normal | FaultClass::Overheating => {}
            FaultClass::Outer => f.outer_race = s,
            FaultClass::Inner => f.inner_race = s,
            FaultClass::Ball => f.rolling_element = s,
            FaultClass::Imbalance => f.imbalance = s,
            FaultClass::Misalignment => f.misalignment = s,
            FaultClass::Looseness => f.looseness = s,
        }
        f
    }

    /// The one-asset scenario this case runs.
    pub fn scenario(&self) -> Scenario {
        let faults = self.faults();
        let overheat = if self.class == FaultClass::Overheating {
            self.severity
        } else {
            0.0
        };
        let phase = |at_s, load, overheat| Phase {
            at_s,
            load,
            overheat,
            faults,
            rpm: None,
        };
        Scenario {
            name: format!("training-case-{}", self.id),
            description: None,
            seed: self.seed,
            duration_s: None,
            sample_rate_hz: self.sample_rate_hz,
            block_size: 512,
            axes: self.axes,
            temperature_interval_ms: 1000,
            status_interval_ms: 10_000,
            full_scale_g: self.full_scale_g,
            burst: None,
            assets: vec![AssetConfig {
                id: "asset".into(),
                sensor_id: 1,
                machine: self.machine.clone(),
                thermal: self.thermal.clone(),
                phases: vec![
                    phase(0.0, self.load[0], 0.0),
                    phase(STEP_AT_S, self.load[0], 0.0),
                    phase(STEP_AT_S, self.load[1], overheat),
                ],
            }],
        }
    }

    /// What the agent knows about the machine: its configured speed and bearing.
    pub fn machine_context(&self) -> MachineContext {
        let o = self.machine.bearing.orders();
        MachineContext {
            shaft_hz: self.configured_rpm / 60.0,
            orders: FaultOrders {
                bpfo: o.bpfo,
                bpfi: o.bpfi,
                bsf: o.bsf,
                ftf: o.ftf,
            },
        }
    }

    /// The agent configuration for this case's one asset.
    fn agent_config(&self, window: WindowConfig, features: &FeatureConfig) -> Config {
        let mut config = Config::parse("").unwrap_or_else(|_| unreachable!("an empty TOML"));
        config.assets = vec![Asset {
            id: "asset".into(),
            shaft_rpm: self.configured_rpm,
            bearing: self.machine.bearing,
            sensors: vec![1],
            severity: None,
            burst: None,
        }];
        config.window = window;
        config.features = features.clone();
        config
    }
}

/// One labelled window.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledWindow {
    /// Case id (or recording index).
    pub case: u32,
    /// Label: a [`CLASS_NAMES`] entry, or the recording index's label.
    pub label: String,
    /// Fault severity (0 when unknown or healthy).
    pub severity: f64,
    /// How loud the labelled vibration fault is in this window: 10·log10 of the energy of the
    /// fault's own contribution (the window minus the same window of the machine without the
    /// fault) over the energy of the machine without it, dB. `None` for healthy, overheating
    /// and recorded windows.
    pub fault_snr_db: Option<f64>,
    /// Sample rate, Hz.
    pub sample_rate_hz: f64,
    /// Shaft speed, rpm.
    pub rpm: f64,
    /// Axis (simulated) or channel (recordings).
    pub channel: String,
    /// Offset of the window's first sample from the start of the signal, s.
    pub start_s: f64,
    /// The model inputs, in [`FEATURE_NAMES`] order.
    pub inputs: [f32; MODEL_INPUT_LEN],
    /// The envelope line families (not exported: the physics' evidence, for its evaluation).
    pub families: edgewatch_agent::analyze::features::LineFamilies,
}

/// Samples per window of a case: the agent's size at the case's sample rate and configured
/// speed, as its assembler computes it.
fn case_window_len(case: &Case, window: WindowConfig) -> usize {
    window.length_for(case.sample_rate_hz, Some(case.configured_rpm / 60.0))
}

/// Signal simulated before a case gives up, s (the temperature trend needs its minimum span
/// first).
fn signal_budget_s(case: &Case, window: WindowConfig, features: &FeatureConfig, n: usize) -> f64 {
    let len = case_window_len(case, window);
    let windows_s = (len + n * window.hop_for(len)) as f64 / case.sample_rate_hz;
    features.temperature.min_span_s + 10.0 + 2.0 * windows_s
}

/// Runs one case: node → [`Ingest`] → [`Assembler`] → [`FeatureExtractor`]. Returns
/// `windows` consecutive windows of the case's axis, starting at the first one that has a
/// temperature rate (cases with a probe) or at the first one (without).
pub fn run_case(
    case: &Case,
    window: WindowConfig,
    features: &FeatureConfig,
    windows: usize,
) -> Result<Vec<LabelledWindow>, TrainingError> {
    let scenario = case.scenario();
    let scenario_error = |source| TrainingError::Scenario {
        case: case.id,
        source,
    };
    scenario.validate().map_err(scenario_error)?;
    // The node exactly as `nodes_for` makes it, sampling the asset plus its nuisance.
    let node_for = |scenario: &Scenario| -> Result<SensorNode, TrainingError> {
        let settings = firmware_sim::nodes_for(scenario)
            .map_err(scenario_error)?
            .remove(0)
            .settings()
            .clone();
        let sim = AssetSim::new(scenario, 0).map_err(scenario_error)?;
        Ok(SensorNode::new(
            settings,
            Box::new(NuisanceSource::new(sim, &case.nuisance, case.seed)),
        ))
    };
    let mut node = node_for(&scenario)?;
    let config = case.agent_config(window, features);
    let mut assembler = Assembler::new(&config.assembler());
    // The same machine without its vibration fault, run in step: the simulator draws its
    // random streams identically whatever the fault levels, so the difference of the two
    // windows is the fault's own contribution (for `fault_snr_db`).
    let mut twin = if case.faults() == FaultSeverity::HEALTHY {
        None
    } else {
        let healthy = Case {
            severity: 0.0,
            ..case.clone()
        };
        Some((
            node_for(&healthy.scenario())?,
            Assembler::new(&config.assembler()),
        ))
    };
    let mut twin_windows: Vec<AssembledWindow> = Vec::new();
    let mut extractor =
        FeatureExtractor::new(case_window_len(case, window), case.sample_rate_hz, features)
            .map_err(|source| TrainingError::Features {
                case: case.id,
                source,
            })?;
    let ctx = case.machine_context();
    let budget_s = signal_budget_s(case, window, features, windows);
    let source: Arc<str> = Arc::from("training");
    let mut cut: Vec<AssembledWindow> = Vec::new();
    let mut out = Vec::with_capacity(windows);
    let mut first_us = None;
    while out.len() < windows {
        let Some((t_s, frame)) = node.emit() else {
            break;
        };
        if t_s > budget_s {
            break;
        }
        assembler.on_ingest(
            Ingest {
                source: source.clone(),
                frame,
                received_ms: (t_s * 1e3) as u64,
            },
            &mut cut,
        );
        if let Some((twin_node, twin_assembler)) = twin.as_mut()
            && let Some((twin_t_s, twin_frame)) = twin_node.emit()
        {
            twin_assembler.on_ingest(
                Ingest {
                    source: source.clone(),
                    frame: twin_frame,
                    received_ms: (twin_t_s * 1e3) as u64,
                },
                &mut twin_windows,
            );
        }
        for w in cut.drain(..) {
            // The twin's window of the same samples (cut at the same step), taken whether or
            // not this window is used, so nothing piles up.
            let healthy = twin_windows
                .iter()
                .position(|t| {
                    t.window.axis == w.window.axis && t.window.start_us == w.window.start_us
                })
                .map(|k| twin_windows.swap_remove(k));
            let first = *first_us.get_or_insert(w.window.start_us);
            let rate = if case.temperature_probe {
                match w.temperature_rise_c_per_min {
                    Some(rate) => Some(rate),
                    // Not yet a trend: the agent would read 0 here, but such windows are
                    // the first minute of a start-up, not what the model is for.
                    None => continue,
                }
            } else {
                None
            };
            if w.window.axis != case.axis || out.len() >= windows {
                continue;
            }
            let mut f = extractor
                .extract(&w.window.samples, &ctx)
                .map_err(|source| TrainingError::Features {
                    case: case.id,
                    source,
                })?;
            f.temperature_c = w.temperature_c;
            f.temperature_rise_c_per_min = rate;
            out.push(LabelledWindow {
                case: case.id,
                label: case.class.name().to_string(),
                severity: case.severity,
                fault_snr_db: healthy.map(|h| fault_snr_db(&w.window.samples, &h.window.samples)),
                sample_rate_hz: case.sample_rate_hz,
                rpm: case.machine.rpm,
                channel: ["x", "y", "z"][usize::from(w.window.axis)].to_string(),
                start_s: (w.window.start_us - first) as f64 / 1e6,
                inputs: f.model_inputs(),
                families: f.envelope.families,
            });
        }
    }
    if out.len() < windows {
        return Err(TrainingError::TooFewWindows {
            case: case.id,
            got: out.len(),
            wanted: windows,
            budget_s,
        });
    }
    Ok(out)
}

/// The cases of an export: `cases_per_class` of each class, interleaved by class.
pub fn cases(opts: &ExportOptions) -> Vec<Case> {
    let n = FaultClass::ALL.len();
    (0..opts.cases_per_class * n)
        .map(|i| {
            Case::draw(
                opts.seed,
                i as u32,
                FaultClass::ALL[i % n],
                &opts.sample_rates_hz,
            )
        })
        .collect()
}

/// Runs every case of the export on `opts.threads` threads; windows come back in case order
/// whatever the thread count. `progress(done, total)` is called after each case.
pub fn export(
    opts: &ExportOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<LabelledWindow>, TrainingError> {
    opts.validate()?;
    let cases = cases(opts);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    type CaseResult = Option<Result<Vec<LabelledWindow>, TrainingError>>;
    let results: Mutex<Vec<CaseResult>> = Mutex::new((0..cases.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..opts.threads.get().min(cases.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    let result = run_case(case, opts.window, &opts.features, opts.windows_per_case);
                    let failed = result.is_err();
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, cases.len());
                    if failed {
                        // Stop handing out work; the first error is reported below.
                        next.store(cases.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut windows = Vec::with_capacity(cases.len() * opts.windows_per_case);
    for result in results.into_inner().unwrap_or_else(|p| p.into_inner()) {
        match result {
            Some(Ok(w)) => windows.extend(w),
            Some(Err(e)) => return Err(e),
            // Not run because an earlier case failed; that error is returned above or below.
            None => {}
        }
    }
    Ok(windows)
}

/// Cuts every recording of a folder (see [`crate::recordings`]) into the agent's windows
/// (`window` size at the recording's sample rate and speed, and hop; a contiguous recording
/// windows exactly as the agent's
/// [`WindowAssembler`](edgewatch_agent::assemble::window::WindowAssembler) would) and extracts the model inputs with
/// the index's speed and orders. Recordings have no temperature: the rate input is 0.
pub fn recording_windows(
    dir: &Path,
    window: WindowConfig,
    features: &FeatureConfig,
) -> Result<Vec<LabelledWindow>, TrainingError> {
    let index_path = dir.join("index.csv");
    let index = std::fs::read_to_string(&index_path).map_err(|source| EvalError::Io {
        path: index_path.clone(),
        source,
    })?;
    let rows = parse_index(&index)?;
    let mut extractors: Vec<((u64, usize), FeatureExtractor)> = Vec::new();
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if Path::new(&row.file).file_name() != Some(std::ffi::OsStr::new(&row.file)) {
            return Err(EvalError::Recording {
                file: row.file.clone(),
                reason: "must be a bare file name inside the folder".into(),
            }
            .into());
        }
        let path = dir.join(&row.file);
        let bytes = std::fs::read(&path).map_err(|source| EvalError::Io {
            path: path.clone(),
            source,
        })?;
        let samples: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let len = window.length_for(row.sample_rate_hz, Some(row.rpm / 60.0));
        let key = (row.sample_rate_hz.to_bits(), len);
        let k = match extractors.iter().position(|(r, _)| *r == key) {
            Some(k) => k,
            None => {
                let x =
                    FeatureExtractor::new(len, row.sample_rate_hz, features).map_err(|source| {
                        EvalError::Features {
                            file: row.file.clone(),
                            source,
                        }
                    })?;
                extractors.push((key, x));
                extractors.len() - 1
            }
        };
        let extractor = &mut extractors[k].1;
        let ctx = MachineContext {
            shaft_hz: row.rpm / 60.0,
            orders: row.orders,
        };
        let mut start = 0;
        while start + len <= samples.len() {
            let f = extractor
                .extract(&samples[start..start + len], &ctx)
                .map_err(|source| EvalError::Features {
                    file: row.file.clone(),
                    source,
                })?;
            out.push(LabelledWindow {
                case: i as u32,
                label: row.label.clone(),
                severity: row.fault_inches.unwrap_or(0.0),
                fault_snr_db: None,
                sample_rate_hz: row.sample_rate_hz,
                rpm: row.rpm,
                channel: row.file.clone(),
                start_s: start as f64 / row.sample_rate_hz,
                inputs: f.model_inputs(),
                families: f.envelope.families,
            });
            start += window.hop_for(len);
        }
    }
    Ok(out)
}

/// 10·log10(Σ(faulted − healthy)² / Σ healthy²), dB: the fault's share of a window against the
/// machine without it (same samples but for the fault). −∞ when they are identical.
pub fn fault_snr_db(faulted: &[f32], healthy: &[f32]) -> f64 {
    let (mut fault, mut rest) = (0.0f64, 0.0f64);
    for (&a, &b) in faulted.iter().zip(healthy) {
        let d = f64::from(a) - f64::from(b);
        fault += d * d;
        rest += f64::from(b) * f64::from(b);
    }
    10.0 * (fault / rest.max(f64::MIN_POSITIVE)).log10()
}

/// The CSV header: metadata columns, then [`FEATURE_NAMES`].
pub fn csv_header() -> String {
    let mut h = String::from("case,label,severity,fault_snr_db,sample_rate_hz,rpm,channel,start_s");
    for name in FEATURE_NAMES {
        h.push(',');
        h.push_str(name);
    }
    h
}

/// Writes windows as CSV (header from [`csv_header`]); floats in their shortest exact form, so
/// the model inputs read back bit-identical.
pub fn write_csv(windows: &[LabelledWindow], mut out: impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", csv_header())?;
    for w in windows {
        write!(
            out,
            "{},{},{},{},{},{},{},{}",
            w.case,
            w.label,
            w.severity,
            w.fault_snr_db.map(|x| x.to_string()).unwrap_or_default(),
            w.sample_rate_hz,
            w.rpm,
            w.channel.replace(',', "_"),
            w.start_s
        )?;
        for x in w.inputs {
            write!(out, ",{x}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Writes windows to a CSV file.
pub fn write_csv_file(windows: &[LabelledWindow], path: &Path) -> Result<(), TrainingError> {
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        write_csv(windows, &mut file)?;
        file.flush()
    };
    write().map_err(|source| TrainingError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Options of `agent export-features`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The CSV file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of every random draw (use another seed for a held-out test set).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated machines per class.
    #[arg(long, default_value_t = 200)]
    pub cases_per_class: usize,
    /// Consecutive windows taken from each machine.
    #[arg(long, default_value_t = 6)]
    pub windows_per_case: usize,
    /// The windows (the agent's `[window]`).
    #[command(flatten)]
    pub window: WindowArgs,
    /// Sample rates to draw from, Hz, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_SAMPLE_RATES_HZ)]
    pub sample_rates: Vec<f64>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
    /// Instead of simulating, export the windows of the recordings in this folder (with
    /// `index.csv`), for validation.
    #[arg(long)]
    pub recordings: Option<PathBuf>,
}

/// The agent's `[window]` as command-line options (`lab export-features`, `lab eval`): at most
/// one size, and the overlap. No size: the agent's default, 1 s.
#[derive(Debug, Clone, clap::Args)]
pub struct WindowArgs {
    /// Window duration, seconds (the agent's `window.duration_s`; the default, 1 s, when no
    /// size is given).
    #[arg(long, value_name = "SECONDS", conflicts_with_all = ["window_revolutions", "window_len"])]
    pub window_s: Option<f64>,
    /// Window size in shaft revolutions at each machine's speed (the agent's
    /// `window.revolutions`).
    #[arg(long, value_name = "REVOLUTIONS", conflicts_with = "window_len")]
    pub window_revolutions: Option<f64>,
    /// Window length, samples, whatever the sample rate (the agent's `window.length`).
    #[arg(long, value_name = "SAMPLES")]
    pub window_len: Option<usize>,
    /// Window overlap (the agent's `window.overlap`).
    #[arg(long, default_value_t = WindowConfig::default_overlap())]
    pub overlap: f64,
}

impl WindowArgs {
    /// The window these options give, checked as the agent checks `[window]`; the error names
    /// the option.
    pub fn window(&self) -> Result<WindowConfig, TrainingError> {
        let window = WindowConfig {
            duration_s: self.window_s,
            revolutions: self.window_revolutions,
            length: self.window_len,
            overlap: self.overlap,
        };
        match window.problems().first() {
            None => Ok(window),
            Some(p) => {
                let option = match p.field.as_str() {
                    "window.duration_s" => "--window-s",
                    "window.revolutions" => "--window-revolutions",
                    "window.length" => "--window-len",
                    _ => "--overlap",
                };
                Err(TrainingError::Options(format!("{option}: {}", p.reason)))
            }
        }
    }
}

/// Runs `agent export-features`: writes the CSV and returns the number of windows.
pub fn run_export(args: &ExportArgs) -> Result<usize, TrainingError> {
    let window = args.window.window()?;
    let windows = match &args.recordings {
        Some(dir) => recording_windows(dir, window, &FeatureConfig::default())?,
        None => {
            let opts = ExportOptions {
                seed: args.seed,
                cases_per_class: args.cases_per_class,
                windows_per_case: args.windows_per_case,
                sample_rates_hz: args.sample_rates.clone(),
                window,
                threads: args.threads.unwrap_or(ExportOptions::default().threads),
                ..ExportOptions::default()
            };
            let step = AtomicUsize::new(0);
            export(&opts, &|done, total| {
                let tenth = done * 10 / total;
                if step.fetch_max(tenth, Ordering::Relaxed) < tenth {
                    eprintln!("export-features: {done}/{total} cases");
                }
            })?
        }
    };
    write_csv_file(&windows, &args.out)?;
    Ok(windows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ExportOptions {
        ExportOptions {
            seed: 7,
            cases_per_class: 1,
            windows_per_case: 2,
            sample_rates_hz: vec![12_000.0],
            window: WindowConfig::from_length(4096),
            threads: NonZeroUsize::new(2).unwrap(),
            ..ExportOptions::default()
        }
    }

    #[test]
    fn class_names_round_trip_and_match_the_order_of_all() {
        for (i, class) in FaultClass::ALL.into_iter().enumerate() {
            assert_eq!(class as usize, i);
            assert_eq!(FaultClass::from_name(class.name()), Some(class));
        }
        assert_eq!(FaultClass::from_name("healthy"), None);
    }

    #[test]
    fn every_drawn_case_is_a_valid_scenario() {
        for id in 0..2000 {
            let class = FaultClass::ALL[id % 8];
            let case = Case::draw(3, id as u32, class, &DEFAULT_SAMPLE_RATES_HZ);
            case.scenario()
                .validate()
                .unwrap_or_else(|e| panic!("{case:?}: {e}"));
            assert!(case.machine.resonance_hz <= 0.4 * case.sample_rate_hz);
            assert!(case.axis < case.axes);
        }
    }

    #[test]
    fn a_case_is_reproducible_from_its_seed_and_id() {
        let a = Case::draw(5, 17, FaultClass::Inner, &DEFAULT_SAMPLE_RATES_HZ);
        let b = Case::draw(5, 17, FaultClass::Inner, &DEFAULT_SAMPLE_RATES_HZ);
        let c = Case::draw(6, 17, FaultClass::Inner, &DEFAULT_SAMPLE_RATES_HZ);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn an_export_is_the_same_whatever_the_thread_count() {
        let mut opts = small();
        let two = export(&opts, &|_, _| {}).unwrap();
        opts.threads = NonZeroUsize::MIN;
        let one = export(&opts, &|_, _| {}).unwrap();
        assert_eq!(one, two);
        assert_eq!(one.len(), 8 * 2);
        let labels: Vec<&str> = one.iter().step_by(2).map(|w| w.label.as_str()).collect();
        assert_eq!(labels, CLASS_NAMES);
    }

    #[test]
    fn overheating_windows_carry_a_temperature_rise_and_probe_less_ones_none() {
        let opts = small();
        let windows = export(&opts, &|_, _| {}).unwrap();
        let rate = FEATURE_NAMES
            .iter()
            .position(|n| *n == "temperature_rise_c_per_min")
            .unwrap();
        for w in windows.iter().filter(|w| w.label == "overheating") {
            assert!(w.inputs[rate] > 0.8, "{}", w.inputs[rate]);
        }
        for case in cases(&opts).iter().filter(|c| !c.temperature_probe) {
            for w in windows.iter().filter(|w| w.case == case.id) {
                assert_eq!(w.inputs[rate], 0.0);
            }
        }
    }

    #[test]
    fn only_vibration_faults_have_a_fault_snr_and_it_grows_with_severity() {
        let opts = small();
        for w in export(&opts, &|_, _| {}).unwrap() {
            let vibration_fault = !matches!(w.label.as_str(), "normal" | "overheating");
            assert_eq!(w.fault_snr_db.is_some(), vibration_fault, "{w:?}");
            if let Some(snr) = w.fault_snr_db {
                assert!((-60.0..60.0).contains(&snr), "{w:?}");
            }
        }
        let case = Case::draw(1, 3, FaultClass::Outer, &[12_000.0]);
        let snr = |severity| {
            let case = Case {
                severity,
                ..case.clone()
            };
            run_case(&case, opts.window, &opts.features, 1).unwrap()[0]
                .fault_snr_db
                .unwrap()
        };
        // Impact peaks scale with severity², their energy with severity⁴: +33 dB from 0.15
        // to 1 if the fault is all impacts.
        let (faint, severe) = (snr(0.15), snr(1.0));
        assert!(severe - faint > 25.0, "{faint} dB -> {severe} dB");
        assert_eq!(
            fault_snr_db(&[0.5, -0.25], &[0.5, -0.25]),
            f64::NEG_INFINITY
        );
        let snr_one = fault_snr_db(&[2.0, 0.0], &[1.0, 0.0]);
        assert!(snr_one.abs() < 1e-12, "{snr_one}");
    }

    #[test]
    fn the_csv_has_one_column_per_feature_and_reads_back_exactly() {
        let windows = export(&small(), &|_, _| {}).unwrap();
        let mut text = Vec::new();
        write_csv(&windows, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(&header[8..], FEATURE_NAMES);
        for (line, w) in lines.zip(&windows) {
            let values: Vec<f32> = line
                .split(',')
                .skip(8)
                .map(|v| v.parse().unwrap())
                .collect();
            assert_eq!(values, w.inputs);
        }
    }
}
