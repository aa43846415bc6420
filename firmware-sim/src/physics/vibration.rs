//! Vibration synthesis for one accelerometer on one machine, with injectable faults.
//!
//! # Model
//!
//! The acceleration on each axis is the sum of four parts, all in g:
//!
//! 1. **Shaft-synchronous part**: a Fourier series in half-orders of the shaft speed
//!    (0.5x, 1x, 1.5x, … 10x) whose coefficients are set by the fault severities:
//!    - healthy running: 1x, 2x and 3x at [`MachineParams::shaft_harmonics_g`] (residual
//!      unbalance, coupling and blade/vane effects);
//!    - imbalance: 1x, radial, horizontal leading vertical by 90° (a rotating force seen by two
//!      perpendicular sensors), little axial;
//!    - misalignment: 2x strongest, largest on the axial axis, with some 1x and 3x;
//!    - mechanical looseness: a comb of 1x harmonics up to 10x plus half-harmonics (0.5x, 1.5x,
//!      …), then a one-sided soft clip of the whole shaft-synchronous waveform (the structure
//!      lifting off and striking a stop), which adds further harmonics.
//!
//!    Orders above 0.45 × the sample rate are omitted, as a real anti-aliasing filter would.
//! 2. **Bearing impacts**: a localised defect is struck once per element passage, giving an
//!    impulse train at BPFO (outer race), BPFI (inner race) or 2 × BSF (rolling element). Each
//!    interval is the kinematic interval times `1 + slip_fraction · N(0, 1)`, drawn
//!    independently, so the impact phase random-walks as it does with real slip: the envelope
//!    lines stay at the kinematic frequencies but widen at higher harmonics. Inner-race impacts
//!    are amplitude-modulated once per shaft revolution (the defect passes through the load
//!    zone), rolling-element impacts once per cage revolution (FTF). Each impulse drives a
//!    second-order resonator per axis — the structural resonance, slightly different per
//!    direction — so every impact rings as a decaying kHz sinusoid and overlapping ring-downs
//!    add exactly. The resonator is a two-pole recurrence, O(1) per sample.
//! 3. **Broadband noise**: white Gaussian at [`MachineParams::noise_g`] RMS per axis, raised by
//!    up to 50 % as bearing damage spreads.
//!
//! Severity runs from 0 (healthy) to 1 (about to fail). Shaft-synchronous fault amplitudes
//! scale linearly with it from the `*_g` levels in [`MachineParams`]; bearing impact amplitude
//! scales with its square, because a spall grows in length and depth at once and the impact
//! energy rises faster than its size. With the defaults that puts the classic P–F stages at
//! useful severities (envelope peak over the local background at BPFO, 8 s of signal):
//!
//! | outer race | envelope peak | overall RMS |
//! |-----------:|--------------:|------------:|
//! | 0.1        | ~7 dB, just detectable | unchanged |
//! | 0.15       | ~18 dB        | +9 %        |
//! | 0.5        | ~27 dB        | several × |
//!
//! The levels hold at any speed: the model does not rescale them with rpm, nor model
//! transfer-path phase or sensor mounting.
//!
//! # Speed
//!
//! The shaft turns at [`MachineParams::rpm`] unless a block is asked for at other speeds:
//! [`VibrationSynth::next_block_at_speed`] moves the speed linearly across the block (a drive
//! on a frequency converter ramping). Every rotating phase — the shaft's, the cage's, and the
//! time to each bearing defect's next impact, as a fraction of its interval — is carried over
//! from sample to sample, so the signal and its impact trains stay continuous through a speed
//! change; harmonics that cross 0.45 × the sample rate are dropped or restored as they do.
//! At a constant speed the output is the same as [`VibrationSynth::next_block`]'s; during a
//! ramp, how it is split into blocks changes the samples only by rounding.
//!
//! # Gaps
//!
//! [`VibrationSynth::fast_forward`] moves the clock on without synthesising (a snapshot sensor
//! asleep): the rotating phases and each defect's impact schedule move on by the revolutions
//! of the gap, the random streams draw nothing and the resonance is left at rest, so a caller
//! synthesises [`VibrationSynth::ring_down_samples`] before it uses samples again.
//!
//! Axis 0 is radial horizontal, 1 radial vertical, 2 axial. A synthesiser with fewer axes
//! produces the first ones.
//!
//! # Determinism
//!
//! Output depends only on the parameters, the seed, the axis count and the sequence of
//! (faults, samples) requested. Every state update happens per sample and the random streams
//! are consumed identically whatever the fault levels (impacts are scheduled even at zero
//! severity), so with constant faults the output does not depend on how it is split into
//! blocks, and a healthy and a faulty run with the same seed share their noise.
//!
//! Output is bit-identical for a seed on one platform. Across platforms (x86 and ARM, say)
//! the last bits may differ, because `sin`, `cos` and `exp` come from the platform's libm.
//!
//! # Cost
//!
//! Per frame: one `sin_cos`, a 20-term harmonic recurrence per axis, three resonator steps
//! and one Gaussian draw per axis; nothing allocates. On a desktop x86 core an optimised build
//! makes a minute of 3-axis signal at 12.8 kHz in under 0.1 s.

use std::f64::consts::TAU;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::bearing::{self, BearingGeometry, FaultFrequencies, FaultOrders};

/// Most axes one sensor has.
pub const MAX_AXES: usize = 3;

/// Shaft-synchronous components are generated at half-orders 0.5x ..= `HALF_ORDERS / 2` x.
const HALF_ORDERS: usize = 20;

/// Structural resonance per axis, as a factor of [`MachineParams::resonance_hz`]: real
/// structures are stiffer in some directions than others.
const AXIS_RESONANCE_FACTOR: [f64; MAX_AXES] = [1.0, 1.12, 0.85];

/// How strongly each source shows on each axis (horizontal, vertical, axial).
const HEALTHY_AXIS_GAIN: [f64; MAX_AXES] = [1.0, 0.8, 0.5];
const IMBALANCE_AXIS_GAIN: [f64; MAX_AXES] = [1.0, 0.8, 0.15];
const MISALIGNMENT_1X_AXIS_GAIN: [f64; MAX_AXES] = [0.3, 0.3, 0.8];
const MISALIGNMENT_2X_AXIS_GAIN: [f64; MAX_AXES] = [0.5, 0.5, 1.0];
const MISALIGNMENT_3X_AXIS_GAIN: [f64; MAX_AXES] = [0.15, 0.15, 0.3];
const LOOSENESS_AXIS_GAIN: [f64; MAX_AXES] = [0.8, 1.0, 0.3];
const IMPACT_AXIS_GAIN: [f64; MAX_AXES] = [1.0, 0.85, 0.4];

/// Relative spread of individual impact amplitudes.
const IMPACT_AMPLITUDE_SPREAD: f64 = 0.15;
/// Jitter draws are clamped to this many standard deviations so an interval stays positive.
const SLIP_CLAMP_SIGMA: f64 = 4.0;

/// Random streams of one seed; separate so that adding draws to one never shifts another.
const NOISE_STREAM: u64 = 0;
const IMPACT_STREAM: u64 = 1;
const SETUP_STREAM: u64 = 2;

/// Invalid synthesiser parameters; `field` names the offending setting.
///
/// Not recoverable by retrying: the configuration has to be fixed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum VibrationError {
    /// A parameter is out of range.
    #[error("{field}: {reason}")]
    Invalid {
        /// The setting, relative to [`MachineParams`] (e.g. `bearing.pitch_diameter_mm`), or
        /// `sample_rate_hz` / `axes` for the constructor arguments.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> VibrationError {
    VibrationError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Mechanical and structural description of one machine as seen by one sensor.
///
/// Every field is optional in configuration files; the defaults describe a 4-pole motor
/// driving a pump on a stiff base, running at 1480 rpm on 6205 bearings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineParams {
    /// Shaft speed, revolutions per minute. Default 1480.
    pub rpm: f64,
    /// Bearing next to the sensor: a preset name (see [`bearing::PRESET_NAMES`]) or a geometry
    /// table. Default `skf-6205`.
    #[serde(deserialize_with = "bearing::deserialize_geometry_or_preset")]
    pub bearing: BearingGeometry,
    /// Dominant structural resonance excited by bearing impacts, Hz (axis 0; the vertical
    /// axis rings 12 % higher, the axial 15 % lower). Default 3000.
    pub resonance_hz: f64,
    /// Damping ratio of that resonance, dimensionless, in (0, 0.5). Default 0.05.
    pub damping_ratio: f64,
    /// Broadband noise, g RMS per axis. Default 0.02.
    pub noise_g: f64,
    /// Healthy 1x, 2x and 3x amplitudes, g peak. Default `[0.02, 0.008, 0.004]`.
    pub shaft_harmonics_g: [f64; 3],
    /// Standard deviation of each bearing impact interval as a fraction of the kinematic
    /// interval (rolling-element slip), in [0, 0.05]. Default 0.015.
    pub slip_fraction: f64,
    /// Peak acceleration of one bearing impact's ring-down at severity 1, g; it scales with
    /// the square of the severity. Default 2.0.
    pub bearing_impact_g: f64,
    /// 1x amplitude added by imbalance at severity 1 (horizontal), g peak. Default 0.4.
    pub imbalance_g: f64,
    /// 2x amplitude added by misalignment at severity 1 (axial), g peak. Default 0.3.
    pub misalignment_g: f64,
    /// 1x amplitude of the looseness comb at severity 1 (vertical), g peak, before clipping.
    /// Default 0.25.
    pub looseness_g: f64,
}

impl MachineParams {
    /// The documented defaults.
    pub const DEFAULT: Self = Self {
        rpm: 1480.0,
        bearing: BearingGeometry::skf_6205(),
        resonance_hz: 3000.0,
        damping_ratio: 0.05,
        noise_g: 0.02,
        shaft_harmonics_g: [0.02, 0.008, 0.004],
        slip_fraction: 0.015,
        bearing_impact_g: 2.0,
        imbalance_g: 0.4,
        misalignment_g: 0.3,
        looseness_g: 0.25,
    };

    /// Checks each parameter on its own; see also [`validate_at`](Self::validate_at).
    pub fn validate(&self) -> Result<(), VibrationError> {
        if !(self.rpm.is_finite() && self.rpm > 0.0) {
            return Err(invalid("rpm", "must be finite and > 0"));
        }
        self.bearing.validate().map_err(|error| match error {
            bearing::BearingError::Invalid { field, reason } => {
                invalid(format!("bearing.{field}"), reason)
            }
        })?;
        if !(self.resonance_hz.is_finite() && self.resonance_hz >= 200.0) {
            return Err(invalid("resonance_hz", "must be finite and >= 200"));
        }
        if !(self.damping_ratio > 0.0 && self.damping_ratio < 0.5) {
            return Err(invalid("damping_ratio", "must be within (0, 0.5)"));
        }
        if !(0.0..=0.05).contains(&self.slip_fraction) {
            return Err(invalid("slip_fraction", "must be within 0..=0.05"));
        }
        let levels = [
            ("noise_g", self.noise_g),
            ("shaft_harmonics_g", self.shaft_harmonics_g[0]),
            ("shaft_harmonics_g", self.shaft_harmonics_g[1]),
            ("shaft_harmonics_g", self.shaft_harmonics_g[2]),
            ("bearing_impact_g", self.bearing_impact_g),
            ("imbalance_g", self.imbalance_g),
            ("misalignment_g", self.misalignment_g),
            ("looseness_g", self.looseness_g),
        ];
        for (field, value) in levels {
            if !(value.is_finite() && (0.0..=100.0).contains(&value)) {
                return Err(invalid(field, "must be within 0..=100 g"));
            }
        }
        Ok(())
    }

    /// [`validate`](Self::validate), then the limits a sample rate imposes: the resonance must
    /// stay at or below 0.4 × the sample rate and bearing impacts at least 8 samples apart.
    pub fn validate_at(&self, sample_rate_hz: f64) -> Result<(), VibrationError> {
        self.validate()?;
        if self.resonance_hz > 0.4 * sample_rate_hz {
            return Err(invalid(
                "resonance_hz",
                format!("must be <= 0.4 x sample rate ({} Hz)", 0.4 * sample_rate_hz),
            ));
        }
        let orders = self.bearing.orders();
        let fastest_impacts_hz =
            self.shaft_hz() * orders.bpfi.max(orders.bpfo).max(2.0 * orders.bsf);
        if fastest_impacts_hz > sample_rate_hz / 8.0 {
            return Err(invalid(
                "rpm",
                "too fast for the sample rate: bearing impacts would be under 8 samples apart",
            ));
        }
        Ok(())
    }

    /// Shaft rotation frequency, Hz.
    pub fn shaft_hz(&self) -> f64 {
        self.rpm / 60.0
    }

    /// The bearing's defect frequencies in Hz at this shaft speed.
    pub fn fault_frequencies(&self) -> FaultFrequencies {
        self.bearing.orders().at_rpm(self.rpm)
    }
}

impl Default for MachineParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How far each fault has progressed, each in `0..=1` (0 healthy, 1 about to fail).
///
/// See the module docs for how severity maps to signal levels: 0.1–0.2 is an incipient
/// bearing defect (envelope only), 0.5 an established fault, 0.8 and above severe.
///
/// The synthesiser clamps out-of-range and NaN values into range rather than failing;
/// configuration files are checked with [`FaultSeverity::validate`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSeverity {
    /// Localised outer-race defect (impacts at BPFO).
    pub outer_race: f64,
    /// Localised inner-race defect (impacts at BPFI, modulated at 1x).
    pub inner_race: f64,
    /// Spalled rolling element (impacts at 2 × BSF, modulated at FTF).
    pub rolling_element: f64,
    /// Rotor imbalance (1x radial).
    pub imbalance: f64,
    /// Shaft misalignment (2x, strongest axially).
    pub misalignment: f64,
    /// Mechanical looseness (harmonic comb, half-harmonics, clipping).
    pub looseness: f64,
}

impl FaultSeverity {
    /// No faults.
    pub const HEALTHY: Self = Self {
        outer_race: 0.0,
        inner_race: 0.0,
        rolling_element: 0.0,
        imbalance: 0.0,
        misalignment: 0.0,
        looseness: 0.0,
    };

    fn fields(&self) -> [(&'static str, f64); 6] {
        [
            ("outer_race", self.outer_race),
            ("inner_race", self.inner_race),
            ("rolling_element", self.rolling_element),
            ("imbalance", self.imbalance),
            ("misalignment", self.misalignment),
            ("looseness", self.looseness),
        ]
    }

    /// Checks every severity is within `0..=1`.
    pub fn validate(&self) -> Result<(), VibrationError> {
        for (field, value) in self.fields() {
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid(field, "must be within 0..=1"));
            }
        }
        Ok(())
    }

    /// Every severity clamped into `0..=1`, NaN read as 0.
    pub fn clamped(&self) -> Self {
        let clamp = |x: f64| if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
        Self {
            outer_race: clamp(self.outer_race),
            inner_race: clamp(self.inner_race),
            rolling_element: clamp(self.rolling_element),
            imbalance: clamp(self.imbalance),
            misalignment: clamp(self.misalignment),
            looseness: clamp(self.looseness),
        }
    }

    /// Linear interpolation: `self` at `t = 0`, `other` at `t = 1`.
    pub fn lerp(&self, other: &Self, t: f64) -> Self {
        let mix = |a: f64, b: f64| a + (b - a) * t;
        Self {
            outer_race: mix(self.outer_race, other.outer_race),
            inner_race: mix(self.inner_race, other.inner_race),
            rolling_element: mix(self.rolling_element, other.rolling_element),
            imbalance: mix(self.imbalance, other.imbalance),
            misalignment: mix(self.misalignment, other.misalignment),
            looseness: mix(self.looseness, other.looseness),
        }
    }

    /// The worst of the three bearing defects.
    pub fn bearing_max(&self) -> f64 {
        self.outer_race
            .max(self.inner_race)
            .max(self.rolling_element)
    }

    /// Whether every severity is zero.
    pub fn is_healthy(&self) -> bool {
        self.fields().iter().all(|&(_, value)| value == 0.0)
    }
}

/// Two-pole resonator `y[n] = a1·y[n-1] + a2·y[n-2] + g·x[n]`, normalised so a unit impulse
/// rings with a peak close to 1. The one structural resonance of the workspace: the machine
/// model rings it with bearing impacts, and the lab's training-data generator with extra
/// impacts of its own.
#[derive(Debug, Clone)]
pub struct Resonator {
    a1: f64,
    a2: f64,
    gain: f64,
    y1: f64,
    y2: f64,
}

impl Resonator {
    /// A resonance at `frequency_hz` with `damping_ratio`, sampled at `sample_rate_hz`, at rest.
    pub fn new(frequency_hz: f64, damping_ratio: f64, sample_rate_hz: f64) -> Self {
        let omega = TAU * frequency_hz / sample_rate_hz;
        let radius = (-damping_ratio * omega).exp();
        let damped = omega * (1.0 - damping_ratio * damping_ratio).sqrt();
        Self {
            a1: 2.0 * radius * damped.cos(),
            a2: -radius * radius,
            // The impulse response is r^n·sin((n+1)θ)/sin θ; scaling by sin θ makes it ~1 peak.
            gain: damped.sin(),
            y1: 0.0,
            y2: 0.0,
        }
    }

    /// One sample: the response to `input`.
    #[inline]
    pub fn step(&mut self, input: f64) -> f64 {
        let y = self.a1 * self.y1 + self.a2 * self.y2 + self.gain * input;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Impact times of one defect: a renewal process with jittered intervals.
#[derive(Debug, Clone)]
struct ImpactTrain {
    /// Kinematic interval at the current speed, samples.
    interval: f64,
    /// Samples until the next impact.
    countdown: f64,
}

impl ImpactTrain {
    fn new(interval: f64, rng: &mut ChaCha8Rng) -> Self {
        Self {
            interval,
            countdown: rng.random::<f64>() * interval,
        }
    }

    /// Advances one sample; on an impact returns its random amplitude factor (mean 1).
    ///
    /// Draws exactly two normals per impact, whatever the caller does with the result.
    #[inline]
    fn tick(&mut self, slip: f64, rng: &mut ChaCha8Rng) -> Option<f64> {
        self.countdown -= 1.0;
        if self.countdown > 0.0 {
            return None;
        }
        let jitter: f64 = rng.sample(StandardNormal);
        let spread: f64 = rng.sample(StandardNormal);
        let jitter = jitter.clamp(-SLIP_CLAMP_SIGMA, SLIP_CLAMP_SIGMA);
        self.countdown += self.interval * (1.0 + slip * jitter);
        Some((1.0 + IMPACT_AMPLITUDE_SPREAD * spread).max(0.0))
    }

    /// A new kinematic interval (the speed changed): the time to the next impact keeps its
    /// fraction of the interval, so the impact phase is continuous.
    fn retime(&mut self, interval: f64) {
        self.countdown *= interval / self.interval;
        self.interval = interval;
    }
}

/// The highest half-order below 0.45 × the sample rate at `shaft_hz` (0 when none is).
fn max_half_order(shaft_hz: f64, sample_rate_hz: f64) -> usize {
    (1..=HALF_ORDERS)
        .take_while(|&m| m as f64 / 2.0 * shaft_hz < 0.45 * sample_rate_hz)
        .last()
        .unwrap_or(0)
}

/// Random but fixed phases of each shaft-synchronous source, per axis and half-order.
#[derive(Debug, Clone)]
struct SourcePhases {
    healthy: [[f64; HALF_ORDERS]; MAX_AXES],
    imbalance: [f64; MAX_AXES],
    misalignment: [[f64; HALF_ORDERS]; MAX_AXES],
    looseness: [[f64; HALF_ORDERS]; MAX_AXES],
    /// Shaft angle at which an inner-race defect is in the middle of the load zone, cycles.
    load_zone: f64,
}

impl SourcePhases {
    fn new(rng: &mut ChaCha8Rng) -> Self {
        let mut table = || {
            let mut phases = [[0.0; HALF_ORDERS]; MAX_AXES];
            for phase in phases.iter_mut().flatten() {
                *phase = rng.random::<f64>() * TAU;
            }
            phases
        };
        let healthy = table();
        let misalignment = table();
        let looseness = table();
        let horizontal = rng.random::<f64>() * TAU;
        let axial = rng.random::<f64>() * TAU;
        Self {
            healthy,
            // A rotating force: vertical lags horizontal by a quarter turn.
            imbalance: [horizontal, horizontal - TAU / 4.0, axial],
            misalignment,
            looseness,
            load_zone: rng.random::<f64>(),
        }
    }
}

/// Relative amplitude of the looseness comb at half-order `half_order` (1 = 0.5x, 2 = 1x, …).
fn looseness_profile(half_order: usize) -> f64 {
    let order = half_order as f64 / 2.0;
    if half_order.is_multiple_of(2) {
        order.powf(-0.7)
    } else {
        0.45 * order.max(1.0).powf(-0.7)
    }
}

/// Synthesises interleaved vibration samples for one sensor; see the module docs.
#[derive(Debug, Clone)]
pub struct VibrationSynth {
    params: MachineParams,
    sample_rate_hz: f64,
    axes: usize,
    orders: FaultOrders,
    /// Current shaft speed, Hz.
    shaft_hz: f64,
    /// Phase of the half-shaft-speed rotation, cycles in `[0, 1)`; twice it is the shaft angle.
    half_phase: f64,
    half_phase_step: f64,
    /// Cage angle, cycles in `[0, 1)`.
    cage_phase: f64,
    cage_phase_step: f64,
    phases: SourcePhases,
    /// Highest half-order below 0.45 × the sample rate.
    max_half_order: usize,
    /// Shaft-synchronous Fourier coefficients for the current faults.
    cos_coef: [[f64; HALF_ORDERS]; MAX_AXES],
    sin_coef: [[f64; HALF_ORDERS]; MAX_AXES],
    /// One-sided clip level per axis (looseness), or `None` when not clipping.
    clip_level: Option<[f64; MAX_AXES]>,
    /// Faults the coefficients were computed for.
    coef_faults: Option<FaultSeverity>,
    outer: ImpactTrain,
    inner: ImpactTrain,
    rolling: ImpactTrain,
    resonators: [Resonator; MAX_AXES],
    noise_rng: ChaCha8Rng,
    impact_rng: ChaCha8Rng,
    samples: u64,
}

impl VibrationSynth {
    /// A synthesiser for `axes` axes (1..=3) at `sample_rate_hz`, reproducible from `seed`.
    ///
    /// Fails if `sample_rate_hz` is below 1 kHz or not finite, `axes` is outside `1..=3`, or
    /// [`MachineParams::validate_at`] fails.
    pub fn new(
        params: &MachineParams,
        sample_rate_hz: f64,
        axes: usize,
        seed: u64,
    ) -> Result<Self, VibrationError> {
        if !(sample_rate_hz.is_finite() && sample_rate_hz >= 1000.0) {
            return Err(invalid("sample_rate_hz", "must be finite and >= 1000"));
        }
        if !(1..=MAX_AXES).contains(&axes) {
            return Err(invalid("axes", "must be within 1..=3"));
        }
        params.validate_at(sample_rate_hz)?;
        let orders = params.bearing.orders();
        let shaft_hz = params.shaft_hz();

        let mut setup_rng = ChaCha8Rng::seed_from_u64(seed);
        setup_rng.set_stream(SETUP_STREAM);
        let mut impact_rng = ChaCha8Rng::seed_from_u64(seed);
        impact_rng.set_stream(IMPACT_STREAM);
        let mut noise_rng = ChaCha8Rng::seed_from_u64(seed);
        noise_rng.set_stream(NOISE_STREAM);

        let interval = |order: f64| sample_rate_hz / (order * shaft_hz);
        let outer = ImpactTrain::new(interval(orders.bpfo), &mut impact_rng);
        let inner = ImpactTrain::new(interval(orders.bpfi), &mut impact_rng);
        let rolling = ImpactTrain::new(interval(2.0 * orders.bsf), &mut impact_rng);
        let resonators = AXIS_RESONANCE_FACTOR.map(|factor| {
            Resonator::new(
                params.resonance_hz * factor,
                params.damping_ratio,
                sample_rate_hz,
            )
        });
        let max_half_order = max_half_order(shaft_hz, sample_rate_hz);

        Ok(Self {
            params: params.clone(),
            sample_rate_hz,
            axes,
            orders,
            shaft_hz,
            half_phase: setup_rng.random::<f64>(),
            half_phase_step: shaft_hz / 2.0 / sample_rate_hz,
            cage_phase: setup_rng.random::<f64>(),
            cage_phase_step: orders.ftf * shaft_hz / sample_rate_hz,
            phases: SourcePhases::new(&mut setup_rng),
            max_half_order,
            cos_coef: [[0.0; HALF_ORDERS]; MAX_AXES],
            sin_coef: [[0.0; HALF_ORDERS]; MAX_AXES],
            clip_level: None,
            coef_faults: None,
            outer,
            inner,
            rolling,
            resonators,
            noise_rng,
            impact_rng,
            samples: 0,
        })
    }

    /// Number of interleaved axes per frame.
    pub fn axes(&self) -> usize {
        self.axes
    }

    /// Sample rate per axis, Hz.
    pub fn sample_rate_hz(&self) -> f64 {
        self.sample_rate_hz
    }

    /// The parameters this synthesiser was built with.
    pub fn params(&self) -> &MachineParams {
        &self.params
    }

    /// The bearing's defect orders.
    pub fn orders(&self) -> FaultOrders {
        self.orders
    }

    /// The current shaft speed, Hz: [`MachineParams::shaft_hz`] until a block is made at
    /// other speeds ([`next_block_at_speed`](Self::next_block_at_speed)).
    pub fn shaft_hz(&self) -> f64 {
        self.shaft_hz
    }

    /// Samples per axis produced so far.
    pub fn samples_generated(&self) -> u64 {
        self.samples
    }

    /// Signal time of the next sample, seconds since the synthesiser started.
    pub fn elapsed_s(&self) -> f64 {
        self.samples as f64 / self.sample_rate_hz
    }

    /// Samples after which the ring-down of an impact has decayed to a thousandth of its peak
    /// on every axis in use. After [`fast_forward`](Self::fast_forward), synthesising this
    /// many samples brings the structural resonance back to its steady state.
    pub fn ring_down_samples(&self) -> u64 {
        let slowest = AXIS_RESONANCE_FACTOR[..self.axes]
            .iter()
            .fold(f64::INFINITY, |m, &f| m.min(f));
        // The envelope of a ring-down falls by exp(-zeta * omega) per sample.
        let decay_per_sample = self.params.damping_ratio * TAU * self.params.resonance_hz * slowest
            / self.sample_rate_hz;
        (1000f64.ln() / decay_per_sample).ceil() as u64
    }

    /// Moves the signal clock on by `frames` frames without synthesising them, as if the
    /// machine had run on unobserved (a snapshot sensor asleep between bursts).
    ///
    /// - The shaft and the cage turn on by `shaft_revolutions`, the integral of the speed over
    ///   the gap (the caller knows the speed profile); at a constant speed that is
    ///   `frames · shaft_hz / sample_rate_hz` and the phases land where synthesis would put
    ///   them, to rounding.
    /// - Each bearing defect's next impact keeps its place among the element passages the
    ///   gap spans, without the slip jitter of the skipped impacts.
    /// - The speed becomes `rpm_end` (left as it was if not finite and positive).
    /// - The random streams draw nothing for the gap, so the output after it is a different
    ///   but equally likely realisation than synthesising the gap would have given.
    /// - The structural resonance is left at rest: the ring-down of impacts just before the
    ///   gap's end is missing until [`ring_down_samples`](Self::ring_down_samples) have been
    ///   synthesised, so a caller that wants the steady state synthesises (and discards) that
    ///   many first.
    pub fn fast_forward(&mut self, frames: u64, shaft_revolutions: f64, rpm_end: f64) {
        let revolutions = if shaft_revolutions.is_finite() {
            shaft_revolutions.max(0.0)
        } else {
            0.0
        };
        let orders = self.orders;
        // Time to each defect's next impact, in kinematic intervals, after the passages of
        // the gap: unchanged if none falls due, else its place within the current interval.
        let next_impact = |train: &ImpactTrain, order: f64| {
            let left = train.countdown / train.interval - revolutions * order;
            if left > 0.0 {
                left
            } else {
                let place = left - left.floor();
                if place > 0.0 { place } else { 1.0 }
            }
        };
        let outer = next_impact(&self.outer, orders.bpfo);
        let inner = next_impact(&self.inner, orders.bpfi);
        let rolling = next_impact(&self.rolling, 2.0 * orders.bsf);
        self.half_phase = (self.half_phase + revolutions / 2.0).rem_euclid(1.0);
        self.cage_phase = (self.cage_phase + revolutions * orders.ftf).rem_euclid(1.0);
        if rpm_end.is_finite() && rpm_end > 0.0 {
            // The coefficients stay those of the faults they were made for (`fill` redoes them
            // when the faults differ).
            let faults = self.coef_faults.unwrap_or_default();
            self.set_shaft_hz(rpm_end / 60.0, &faults);
        }
        self.outer.countdown = outer * self.outer.interval;
        self.inner.countdown = inner * self.inner.interval;
        self.rolling.countdown = rolling * self.rolling.interval;
        for resonator in &mut self.resonators {
            resonator.y1 = 0.0;
            resonator.y2 = 0.0;
        }
        self.samples += frames;
    }

    /// Fills `out` with the next `out.len() / axes` frames, interleaved frame-major
    /// (`x0, y0, z0, x1, …`), in g, with `faults` held constant over the block.
    ///
    /// Severities are clamped into `0..=1`. Time continues from the previous call.
    ///
    /// # Panics
    ///
    /// If `out.len()` is not a multiple of [`axes`](Self::axes).
    pub fn next_block(&mut self, faults: &FaultSeverity, out: &mut [f32]) {
        self.fill(faults, self.shaft_hz, self.shaft_hz, out);
    }

    /// [`next_block`](Self::next_block) with the shaft speed moving linearly from `rpm_start`
    /// at the block's first frame towards `rpm_end` at the frame after its last, so
    /// consecutive blocks whose speeds join make one continuous ramp. The speed is held at
    /// `rpm_end` afterwards. A speed that is not finite and positive leaves the speed as it
    /// was. The caller keeps bearing impacts at least 8 samples apart
    /// ([`MachineParams::validate_at`] at the highest speed).
    ///
    /// # Panics
    ///
    /// If `out.len()` is not a multiple of [`axes`](Self::axes).
    pub fn next_block_at_speed(
        &mut self,
        faults: &FaultSeverity,
        rpm_start: f64,
        rpm_end: f64,
        out: &mut [f32],
    ) {
        let valid = |rpm: f64| rpm.is_finite() && rpm > 0.0;
        let start_hz = if valid(rpm_start) {
            rpm_start / 60.0
        } else {
            self.shaft_hz
        };
        let end_hz = if valid(rpm_end) {
            rpm_end / 60.0
        } else {
            start_hz
        };
        self.fill(faults, start_hz, end_hz, out);
    }

    /// The block, the shaft speed moving linearly from `start_hz` (first frame) towards
    /// `end_hz` (the frame after the last), both finite and positive.
    fn fill(&mut self, faults: &FaultSeverity, start_hz: f64, end_hz: f64, out: &mut [f32]) {
        assert!(
            out.len().is_multiple_of(self.axes),
            "block length {} is not a multiple of {} axes",
            out.len(),
            self.axes
        );
        let faults = faults.clamped();
        if self.coef_faults != Some(faults) {
            self.update_coefficients(&faults);
            self.coef_faults = Some(faults);
        }

        let slip = self.params.slip_fraction;
        let impact_g = |severity: f64| self.params.bearing_impact_g * severity * severity;
        let outer_g = impact_g(faults.outer_race);
        let inner_g = impact_g(faults.inner_race);
        let rolling_g = impact_g(faults.rolling_element);
        let noise_g = self.params.noise_g * (1.0 + 0.5 * faults.bearing_max());
        let load_zone = self.phases.load_zone;
        let axes = self.axes;
        let frames = out.len() / axes;

        for (i, frame) in out.chunks_exact_mut(axes).enumerate() {
            self.set_shaft_hz(
                start_hz + (end_hz - start_hz) * i as f64 / frames as f64,
                &faults,
            );
            let max_half_order = self.max_half_order;
            // Shaft-synchronous part: powers of e^{iα}, α the half-order angle.
            let (sin1, cos1) = (TAU * self.half_phase).sin_cos();
            let mut periodic = [0.0f64; MAX_AXES];
            let (mut re, mut im) = (1.0f64, 0.0f64);
            for m in 0..max_half_order {
                (re, im) = (re * cos1 - im * sin1, re * sin1 + im * cos1);
                for (axis, value) in periodic.iter_mut().enumerate().take(axes) {
                    *value += self.cos_coef[axis][m] * re + self.sin_coef[axis][m] * im;
                }
            }
            if let Some(levels) = &self.clip_level {
                for (value, &level) in periodic.iter_mut().zip(levels).take(axes) {
                    if *value > level {
                        *value = level + 0.15 * (*value - level);
                    }
                }
            }

            // Bearing impacts; the trains always tick so the random stream never depends on
            // the severities.
            let shaft_angle = (2.0 * self.half_phase).fract();
            let mut impulse = 0.0;
            if let Some(spread) = self.outer.tick(slip, &mut self.impact_rng) {
                impulse += outer_g * spread;
            }
            if let Some(spread) = self.inner.tick(slip, &mut self.impact_rng) {
                let load = 0.5 * (1.0 + (TAU * (shaft_angle - load_zone)).cos());
                impulse += inner_g * spread * (0.25 + 0.75 * load);
            }
            if let Some(spread) = self.rolling.tick(slip, &mut self.impact_rng) {
                let load = 0.5 * (1.0 + (TAU * self.cage_phase).cos());
                impulse += rolling_g * spread * (0.2 + 0.8 * load);
            }

            for (axis, sample) in frame.iter_mut().enumerate() {
                let ring = self.resonators[axis].step(impulse * IMPACT_AXIS_GAIN[axis]);
                let noise: f64 = self.noise_rng.sample(StandardNormal);
                *sample = (periodic[axis] + ring + noise_g * noise) as f32;
            }

            self.half_phase = (self.half_phase + self.half_phase_step).fract();
            self.cage_phase = (self.cage_phase + self.cage_phase_step).fract();
            self.samples += 1;
        }
        if frames > 0 {
            self.set_shaft_hz(end_hz, &faults);
        }
    }

    /// Moves to a new shaft speed, keeping every phase: the shaft and cage phases advance at
    /// the new rate from where they are, and each impact train keeps the fraction of its
    /// interval left. Does nothing at the current speed, so a constant speed changes no bit.
    fn set_shaft_hz(&mut self, shaft_hz: f64, faults: &FaultSeverity) {
        if shaft_hz == self.shaft_hz {
            return;
        }
        let fs = self.sample_rate_hz;
        let orders = self.orders;
        self.shaft_hz = shaft_hz;
        self.half_phase_step = shaft_hz / 2.0 / fs;
        self.cage_phase_step = orders.ftf * shaft_hz / fs;
        let interval = |order: f64| fs / (order * shaft_hz);
        self.outer.retime(interval(orders.bpfo));
        self.inner.retime(interval(orders.bpfi));
        self.rolling.retime(interval(2.0 * orders.bsf));
        let max_half_order = max_half_order(shaft_hz, fs);
        if max_half_order != self.max_half_order {
            self.max_half_order = max_half_order;
            self.update_coefficients(faults);
        }
    }

    /// Recomputes the shaft-synchronous Fourier coefficients for `faults` (already clamped).
    fn update_coefficients(&mut self, faults: &FaultSeverity) {
        let p = &self.params;
        let phases = &self.phases;
        let mut cos_coef = [[0.0; HALF_ORDERS]; MAX_AXES];
        let mut sin_coef = [[0.0; HALF_ORDERS]; MAX_AXES];
        let mut add = |axis: usize, half_order: usize, amplitude: f64, phase: f64| {
            // amplitude·cos(mα + φ) = amplitude·cos φ·cos mα − amplitude·sin φ·sin mα
            cos_coef[axis][half_order - 1] += amplitude * phase.cos();
            sin_coef[axis][half_order - 1] -= amplitude * phase.sin();
        };
        for axis in 0..MAX_AXES {
            for (harmonic, &level) in p.shaft_harmonics_g.iter().enumerate() {
                let m = 2 * (harmonic + 1);
                add(
                    axis,
                    m,
                    level * HEALTHY_AXIS_GAIN[axis],
                    phases.healthy[axis][m - 1],
                );
            }
            add(
                axis,
                2,
                p.imbalance_g * faults.imbalance * IMBALANCE_AXIS_GAIN[axis],
                phases.imbalance[axis],
            );
            let misalignment = p.misalignment_g * faults.misalignment;
            for (m, gain) in [
                (2, MISALIGNMENT_1X_AXIS_GAIN),
                (4, MISALIGNMENT_2X_AXIS_GAIN),
                (6, MISALIGNMENT_3X_AXIS_GAIN),
            ] {
                add(
                    axis,
                    m,
                    misalignment * gain[axis],
                    phases.misalignment[axis][m - 1],
                );
            }
            let looseness = p.looseness_g * faults.looseness * LOOSENESS_AXIS_GAIN[axis];
            for m in 1..=HALF_ORDERS {
                add(
                    axis,
                    m,
                    looseness * looseness_profile(m),
                    phases.looseness[axis][m - 1],
                );
            }
        }
        for m in self.max_half_order..HALF_ORDERS {
            for axis in 0..MAX_AXES {
                cos_coef[axis][m] = 0.0;
                sin_coef[axis][m] = 0.0;
            }
        }
        self.clip_level = (faults.looseness > 0.0).then(|| {
            // Clip relative to the RMS of the shaft-synchronous waveform: at severity 1 the
            // structure strikes its stop at 1 RMS, at small severities only rare peaks do.
            std::array::from_fn(|axis| {
                let power: f64 = (0..HALF_ORDERS)
                    .map(|m| cos_coef[axis][m].powi(2) + sin_coef[axis][m].powi(2))
                    .sum();
                (power / 2.0).sqrt() * (2.5 - 1.5 * faults.looseness)
            })
        });
        self.cos_coef = cos_coef;
        self.sin_coef = sin_coef;
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        amplitude_near, amplitude_spectrum, axis_signal, envelope_peak_db, envelope_spectrum,
    };
    use super::*;

    const FS: f64 = 12_800.0;

    fn synthesise(
        params: &MachineParams,
        faults: &FaultSeverity,
        axes: usize,
        seconds: f64,
        seed: u64,
    ) -> Vec<f32> {
        let mut synth = VibrationSynth::new(params, FS, axes, seed).unwrap();
        let mut out = vec![0.0f32; (seconds * FS) as usize * axes];
        for block in out.chunks_mut(512 * axes) {
            synth.next_block(faults, block);
        }
        out
    }

    /// Envelope-spectrum peak (dB over the local median) near `frequency_hz` on axis 0, after
    /// band-passing ±1 kHz around the resonance.
    fn envelope_db(faults: &FaultSeverity, frequency_hz: f64) -> f64 {
        let params = MachineParams::default();
        let signal = synthesise(&params, faults, 1, 8.0, 7);
        let x = axis_signal(&signal, 1, 0);
        let band = (params.resonance_hz - 1000.0, params.resonance_hz + 1000.0);
        let spectrum = envelope_spectrum(&x, FS, band);
        envelope_peak_db(&spectrum, frequency_hz, 0.02)
    }

    fn faults(set: impl FnOnce(&mut FaultSeverity)) -> FaultSeverity {
        let mut faults = FaultSeverity::HEALTHY;
        set(&mut faults);
        faults
    }

    #[test]
    fn an_outer_race_defect_shows_a_clear_envelope_peak_at_bpfo_and_a_healthy_machine_does_not() {
        let bpfo = MachineParams::default().fault_frequencies().bpfo_hz;
        let faulty = envelope_db(&faults(|f| f.outer_race = 0.5), bpfo);
        let healthy = envelope_db(&FaultSeverity::HEALTHY, bpfo);
        eprintln!(
            "BPFO {bpfo:.2} Hz envelope peak: outer race {faulty:.1} dB, healthy {healthy:.1} dB"
        );
        assert!(faulty > 10.0, "outer race peak only {faulty:.1} dB");
        assert!(healthy < 6.0, "healthy peak {healthy:.1} dB");
    }

    fn rms(signal: &[f32]) -> f64 {
        (signal.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / signal.len() as f64).sqrt()
    }

    #[test]
    fn an_incipient_outer_race_defect_shows_in_the_envelope_before_the_overall_level() {
        let params = MachineParams::default();
        let incipient = faults(|f| f.outer_race = 0.15);
        let db = envelope_db(&incipient, params.fault_frequencies().bpfo_hz);
        let faulty_rms = rms(&synthesise(&params, &incipient, 1, 2.0, 3));
        let healthy_rms = rms(&synthesise(&params, &FaultSeverity::HEALTHY, 1, 2.0, 3));
        let rise = faulty_rms / healthy_rms - 1.0;
        eprintln!(
            "severity 0.15: BPFO envelope peak {db:.1} dB, overall RMS +{:.1} %",
            rise * 100.0
        );
        assert!(db > 10.0, "incipient peak only {db:.1} dB");
        assert!(rise < 0.2, "overall RMS already up {:.1} %", rise * 100.0);
    }

    #[test]
    fn an_inner_race_defect_shows_an_envelope_peak_at_bpfi_with_shaft_sidebands() {
        let hz = MachineParams::default().fault_frequencies();
        let inner = faults(|f| f.inner_race = 0.5);
        let at_bpfi = envelope_db(&inner, hz.bpfi_hz);
        let sideband = envelope_db(&inner, hz.bpfi_hz + hz.shaft_hz);
        let healthy = envelope_db(&FaultSeverity::HEALTHY, hz.bpfi_hz);
        let at_bpfo = envelope_db(&inner, hz.bpfo_hz);
        eprintln!(
            "BPFI {:.2} Hz: inner race {at_bpfi:.1} dB (sideband {sideband:.1} dB, at BPFO {at_bpfo:.1} dB), healthy {healthy:.1} dB",
            hz.bpfi_hz
        );
        assert!(at_bpfi > 10.0, "inner race peak only {at_bpfi:.1} dB");
        assert!(sideband > 6.0, "1x sideband only {sideband:.1} dB");
        assert!(healthy < 6.0, "healthy peak {healthy:.1} dB");
        assert!(
            at_bpfo < 6.0,
            "an inner race defect shows at BPFO: {at_bpfo:.1} dB"
        );
    }

    #[test]
    fn a_rolling_element_defect_shows_envelope_peaks_at_twice_bsf_and_at_the_cage_frequency() {
        let hz = MachineParams::default().fault_frequencies();
        let rolling = faults(|f| f.rolling_element = 0.6);
        let at_2bsf = envelope_db(&rolling, 2.0 * hz.bsf_hz);
        let at_ftf = envelope_db(&rolling, hz.ftf_hz);
        let healthy = envelope_db(&FaultSeverity::HEALTHY, 2.0 * hz.bsf_hz);
        eprintln!(
            "2xBSF {:.2} Hz: rolling element {at_2bsf:.1} dB, FTF {:.2} Hz {at_ftf:.1} dB, healthy {healthy:.1} dB",
            2.0 * hz.bsf_hz,
            hz.ftf_hz
        );
        assert!(at_2bsf > 10.0, "2xBSF peak only {at_2bsf:.1} dB");
        assert!(at_ftf > 6.0, "FTF modulation only {at_ftf:.1} dB");
        assert!(healthy < 6.0, "healthy peak {healthy:.1} dB");
    }

    fn spectrum_amplitude(faults: &FaultSeverity, axis: usize, order: f64) -> f64 {
        let params = MachineParams::default();
        let signal = synthesise(&params, faults, 3, 4.0, 11);
        let spectrum = amplitude_spectrum(&axis_signal(&signal, 3, axis), FS);
        amplitude_near(&spectrum, order * params.shaft_hz())
    }

    #[test]
    fn imbalance_raises_the_radial_1x_amplitude_many_times() {
        let faulty = spectrum_amplitude(&faults(|f| f.imbalance = 0.5), 0, 1.0);
        let healthy = spectrum_amplitude(&FaultSeverity::HEALTHY, 0, 1.0);
        let ratio = faulty / healthy;
        eprintln!("1x: imbalance {faulty:.4} g, healthy {healthy:.4} g, ratio {ratio:.1}");
        assert!(ratio > 5.0, "1x ratio only {ratio:.2}");
    }

    #[test]
    fn misalignment_raises_the_axial_2x_amplitude_above_the_radial_one() {
        let misaligned = faults(|f| f.misalignment = 0.5);
        let axial = spectrum_amplitude(&misaligned, 2, 2.0);
        let radial = spectrum_amplitude(&misaligned, 0, 2.0);
        let healthy_axial = spectrum_amplitude(&FaultSeverity::HEALTHY, 2, 2.0);
        let ratio = axial / healthy_axial;
        eprintln!(
            "2x axial: misaligned {axial:.4} g (radial {radial:.4} g), healthy {healthy_axial:.4} g, ratio {ratio:.1}"
        );
        assert!(ratio > 5.0, "axial 2x ratio only {ratio:.2}");
        assert!(
            axial > 1.5 * radial,
            "axial 2x {axial:.4} not above radial {radial:.4}"
        );
    }

    #[test]
    fn looseness_shows_half_order_subharmonics_and_a_harmonic_comb() {
        let loose = faults(|f| f.looseness = 0.6);
        for order in [0.5, 1.5, 2.5] {
            let faulty = spectrum_amplitude(&loose, 1, order);
            let healthy = spectrum_amplitude(&FaultSeverity::HEALTHY, 1, order);
            eprintln!("{order}x vertical: looseness {faulty:.4} g, healthy {healthy:.4} g");
            assert!(
                faulty > 10.0 * healthy,
                "{order}x: {faulty:.4} vs {healthy:.4}"
            );
        }
        for order in [4.0, 6.0, 8.0] {
            let faulty = spectrum_amplitude(&loose, 1, order);
            let healthy = spectrum_amplitude(&FaultSeverity::HEALTHY, 1, order);
            assert!(
                faulty > 10.0 * healthy,
                "{order}x: {faulty:.4} vs {healthy:.4}"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_identical_samples_and_another_seed_does_not() {
        let params = MachineParams::default();
        let faulty = faults(|f| {
            f.outer_race = 0.3;
            f.looseness = 0.2;
        });
        let a = synthesise(&params, &faulty, 3, 0.5, 1);
        let b = synthesise(&params, &faulty, 3, 0.5, 1);
        let c = synthesise(&params, &faulty, 3, 0.5, 2);
        assert_eq!(a, b);
        let differing = a.iter().zip(&c).filter(|(x, y)| x != y).count();
        assert!(
            differing > a.len() * 9 / 10,
            "only {differing} samples differ"
        );
    }

    #[test]
    fn the_block_size_does_not_change_the_samples_while_faults_are_constant() {
        let params = MachineParams::default();
        let faulty = faults(|f| {
            f.inner_race = 0.4;
            f.rolling_element = 0.2;
            f.imbalance = 0.3;
        });
        let reference = synthesise(&params, &faulty, 2, 0.5, 5);
        for block_frames in [1, 7, 100, 4096] {
            let mut synth = VibrationSynth::new(&params, FS, 2, 5).unwrap();
            let mut out = vec![0.0f32; reference.len()];
            for block in out.chunks_mut(block_frames * 2) {
                synth.next_block(&faulty, block);
            }
            assert_eq!(out, reference, "block of {block_frames} frames");
            assert_eq!(synth.samples_generated() as usize, reference.len() / 2);
        }
    }

    #[test]
    fn a_healthy_signal_has_the_configured_noise_and_harmonic_level() {
        let params = MachineParams::default();
        let rms = rms(&synthesise(&params, &FaultSeverity::HEALTHY, 1, 2.0, 3));
        let harmonics: f64 = params.shaft_harmonics_g.iter().map(|a| a * a / 2.0).sum();
        let expected = (params.noise_g.powi(2) + harmonics).sqrt();
        assert!(
            (rms - expected).abs() / expected < 0.05,
            "rms {rms:.4} g, expected {expected:.4} g"
        );
    }

    #[test]
    fn severity_raises_the_bearing_impact_energy_monotonically() {
        let params = MachineParams::default();
        let level = |severity: f64| {
            rms(&synthesise(
                &params,
                &faults(|f| f.outer_race = severity),
                1,
                1.0,
                9,
            ))
        };
        let levels: Vec<f64> = [0.0, 0.1, 0.3, 0.6, 1.0].into_iter().map(level).collect();
        assert!(levels.windows(2).all(|w| w[1] > w[0]), "{levels:?}");
    }

    #[test]
    fn invalid_parameters_are_rejected_naming_the_field() {
        let error = |params: MachineParams, fs: f64, axes: usize| {
            VibrationSynth::new(&params, fs, axes, 0)
                .unwrap_err()
                .to_string()
        };
        let base = MachineParams::default();
        assert!(
            error(
                MachineParams {
                    rpm: 0.0,
                    ..base.clone()
                },
                FS,
                1
            )
            .starts_with("rpm:")
        );
        assert!(error(base.clone(), FS, 4).starts_with("axes:"));
        assert!(
            error(
                MachineParams {
                    resonance_hz: 6000.0,
                    ..base.clone()
                },
                FS,
                1
            )
            .starts_with("resonance_hz:")
        );
        assert!(
            error(
                MachineParams {
                    rpm: 30_000.0,
                    ..base.clone()
                },
                FS,
                1
            )
            .starts_with("rpm:")
        );
        let mut bad_bearing = base;
        bad_bearing.bearing.rolling_elements = 1;
        assert!(error(bad_bearing, FS, 1).starts_with("bearing.rolling_elements:"));
    }

    #[test]
    fn out_of_range_severities_are_clamped_not_amplified() {
        let params = MachineParams::default();
        let over = synthesise(&params, &faults(|f| f.imbalance = 7.0), 1, 0.2, 4);
        let full = synthesise(&params, &faults(|f| f.imbalance = 1.0), 1, 0.2, 4);
        assert_eq!(over, full);
        let nan = synthesise(&params, &faults(|f| f.imbalance = f64::NAN), 1, 0.2, 4);
        let healthy = synthesise(&params, &FaultSeverity::HEALTHY, 1, 0.2, 4);
        assert_eq!(nan, healthy);
    }
}
