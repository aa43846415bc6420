//! Scenarios: which machines a simulated sensor network watches and how their condition
//! evolves, plus [`AssetSim`], the pure per-asset generator a driver pulls data from.
//!
//! # File format
//!
//! A scenario is a TOML document (see `scenarios/degrading-pump.toml` in this crate):
//!
//! ```toml
//! name = "degrading-pump"
//! seed = 42                      # everything random derives from this
//! sample_rate_hz = 12800         # per axis
//! block_size = 512               # samples per axis in one vibration frame
//! axes = 1                       # 1..=3: radial horizontal, radial vertical, axial
//! burst = { samples = 2560, period_s = 10.0 }   # optional: snapshot sensors (see below)
//!
//! [[asset]]
//! id = "pump-1"
//! sensor_id = 1
//! [asset.machine]                # vibration::MachineParams; every field optional
//! rpm = 1480
//! bearing = "skf-6205"           # a preset name or a geometry table
//! [asset.thermal]                # thermal::ThermalParams; every field optional
//! time_constant_s = 120
//! [[asset.phase]]                # keyframes, in time order
//! at_s = 0
//! load = 0.8
//! [[asset.phase]]
//! at_s = 300
//! faults = { outer_race = 0.8 }
//! ```
//!
//! Every table rejects unknown keys. Each keyframe states the whole condition: an omitted
//! fault is 0, an omitted `load` is [`DEFAULT_LOAD`], an omitted `overheat` is 0, an omitted
//! `rpm` is the machine's `rpm`. Between keyframes every quantity is interpolated linearly;
//! before the first and after the last the nearest keyframe holds. Two keyframes at the same
//! time make a step change.
//!
//! # Speed ramps
//!
//! A keyframe's `rpm` sets the shaft speed at its time, so two keyframes with different
//! speeds make a linear ramp between them, as a drive on a frequency converter does:
//!
//! ```toml
//! [[asset.phase]]                # 1200 rpm until 10 s ...
//! at_s = 10
//! rpm = 1200
//! [[asset.phase]]                # ... then up to 1800 rpm at 70 s, held after
//! at_s = 70
//! rpm = 1800
//! ```
//!
//! The speed moves sample by sample (within a block too), and every rotating phase carries
//! over, so the signal stays continuous; see the vibration model's "Speed" section. Every
//! keyframe's speed must satisfy the machine's limits at the sample rate (bearing impacts at
//! least 8 samples apart). The agent is not told: it is configured with one nominal speed, as
//! a gateway is.
//!
//! # Time and determinism
//!
//! [`AssetSim`] keeps a sample clock: block `n` starts at `n · block_size / sample_rate_hz`
//! seconds of signal time, and its faults are the timeline's at that instant. Temperatures
//! are read at times the caller chooses ([`AssetSim::temperature_at`]). Nothing reads a
//! wall clock, so pacing (real time on a device, as fast as possible in tests) is the driver's
//! business. Each asset's random streams derive from the scenario seed and its `sensor_id`, so
//! reordering assets or adding one does not change the others' data.
//!
//! # Snapshots
//!
//! With `burst`, every sensor sends `samples` contiguous samples per axis every `period_s`
//! seconds (burst `k` starts at sample `round(k · period_s · sample_rate_hz)`) and nothing in
//! between. The machine runs on between bursts: the node passes over the unsent samples with
//! [`AssetSim::skip`], so faults grow along their timeline and the shaft, the cage and the
//! bearing impacts keep their phases; nothing restarts at a burst. Gaps of up to
//! [`EXACT_SKIP_MAX_S`] are synthesised and thrown away, so a burst holds exactly the samples
//! a continuous sensor would have sent at that time; longer gaps are fast-forwarded
//! ([`AssetSim::fast_forward`]) at a cost that does not grow with their length, the bursts
//! after them being another random realisation of the same machine.

use super::mix;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::thermal::{ThermalError, ThermalModel, ThermalParams};
use super::vibration::{FaultSeverity, MAX_AXES, MachineParams, VibrationError, VibrationSynth};

/// Default accelerometer full scale, g: ±16 g, as on common MEMS parts. An `i16` sample
/// represents `value_g * 32767 / full_scale_g`.
pub const DEFAULT_FULL_SCALE_G: f32 = 16.0;
/// Default sample rate per axis, Hz.
pub const DEFAULT_SAMPLE_RATE_HZ: f64 = 12_800.0;
/// Default samples per axis in one vibration block (40 ms at the default rate).
pub const DEFAULT_BLOCK_SIZE: usize = 512;
/// Largest accepted block size, samples per axis. (A transport may allow less per frame
/// across all axes; framing is checked where frames are built.)
pub const MAX_BLOCK_SIZE: usize = 2048;
/// Default number of axes. One radial axis keeps a sensor at 25.6 kB/s of samples, which
/// leaves room on a 921 600 baud serial link; three axes need a faster link or MQTT.
pub const DEFAULT_AXES: u8 = 1;
/// Default interval between temperature readings, milliseconds.
pub const DEFAULT_TEMPERATURE_INTERVAL_MS: u32 = 1000;
/// Default interval between sensor status reports, milliseconds.
pub const DEFAULT_STATUS_INTERVAL_MS: u32 = 10_000;
/// Load fraction of a keyframe that does not state one: a typical duty point.
pub const DEFAULT_LOAD: f64 = 0.8;
/// Longest gap [`AssetSim::skip`] synthesises and discards, seconds of signal; longer gaps
/// are fast-forwarded. A minute of one axis at 25.6 kHz takes tens of milliseconds to
/// synthesise, so bursts a few seconds apart keep the exact stream at little cost, and a
/// battery sensor's bursts minutes or hours apart cost no more than their own samples.
pub const EXACT_SKIP_MAX_S: f64 = 60.0;

/// A scenario that cannot be run.
///
/// None is recoverable by retrying: the scenario file (or the asset index) has to change.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// Not valid TOML, a key of the wrong type, or an unknown key; the message gives the line.
    #[error("scenario does not parse: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value out of range; `field` is its path, e.g. `asset[0].machine.rpm`.
    #[error("{field}: {reason}")]
    Invalid {
        /// Path of the offending value.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// [`AssetSim::new`] was asked for an asset index the scenario does not have.
    #[error("scenario has no asset at index {0}")]
    NoSuchAsset(usize),
    /// The scenario could not be written as TOML (a seed above `i64::MAX`).
    #[error("scenario cannot be written as TOML: {0}")]
    Serialize(#[from] toml::ser::Error),
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A whole simulated installation: global signal settings and the assets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, shown by the simulator and carried in status reports.
    pub name: String,
    /// What the scenario shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seed of every random stream. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// Signal time after which the simulator stops, seconds; `None` runs until stopped (the
    /// last keyframe holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Sample rate per axis, Hz, within 1000..=100000. Default [`DEFAULT_SAMPLE_RATE_HZ`].
    #[serde(default = "default_sample_rate_hz")]
    pub sample_rate_hz: f64,
    /// Samples per axis in one vibration block, within 1..=[`MAX_BLOCK_SIZE`]. Default
    /// [`DEFAULT_BLOCK_SIZE`].
    #[serde(default = "default_block_size")]
    pub block_size: usize,
    /// Axes per sensor, 1..=3. Default [`DEFAULT_AXES`].
    #[serde(default = "default_axes")]
    pub axes: u8,
    /// Interval between temperature readings, ms, > 0. Default
    /// [`DEFAULT_TEMPERATURE_INTERVAL_MS`].
    #[serde(default = "default_temperature_interval_ms")]
    pub temperature_interval_ms: u32,
    /// Interval between status reports, ms, > 0. Default [`DEFAULT_STATUS_INTERVAL_MS`].
    #[serde(default = "default_status_interval_ms")]
    pub status_interval_ms: u32,
    /// Accelerometer full scale, g, within (0, 1000]. Default [`DEFAULT_FULL_SCALE_G`].
    #[serde(default = "default_full_scale_g")]
    pub full_scale_g: f32,
    /// Snapshot sensors: every sensor sends `samples` samples per axis every `period_s`
    /// seconds instead of a stream (`burst = { samples = 2560, period_s = 10.0 }`); `None`:
    /// continuous. Between bursts the machines run on (faults grow, shafts turn), unsent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<crate::node::BurstPlan>,
    /// The monitored assets, one sensor each; at least one.
    #[serde(rename = "asset")]
    pub assets: Vec<AssetConfig>,
}

const fn default_sample_rate_hz() -> f64 {
    DEFAULT_SAMPLE_RATE_HZ
}
const fn default_block_size() -> usize {
    DEFAULT_BLOCK_SIZE
}
const fn default_axes() -> u8 {
    DEFAULT_AXES
}
const fn default_temperature_interval_ms() -> u32 {
    DEFAULT_TEMPERATURE_INTERVAL_MS
}
const fn default_status_interval_ms() -> u32 {
    DEFAULT_STATUS_INTERVAL_MS
}
const fn default_full_scale_g() -> f32 {
    DEFAULT_FULL_SCALE_G
}
const fn default_load() -> f64 {
    DEFAULT_LOAD
}

/// One monitored machine and the sensor on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetConfig {
    /// Asset name, unique in the scenario, e.g. `pump-1`.
    pub id: String,
    /// Sensor node id on the wire, unique in the scenario.
    pub sensor_id: u32,
    /// Mechanics and structure; every field has a default.
    #[serde(default)]
    pub machine: MachineParams,
    /// Thermal behaviour; every field has a default.
    #[serde(default)]
    pub thermal: ThermalParams,
    /// Condition keyframes in non-decreasing time order; none means healthy at
    /// [`DEFAULT_LOAD`] throughout.
    #[serde(default, rename = "phase", skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Phase>,
}

/// A keyframe: the asset's full condition at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Signal time of the keyframe, seconds from the start, >= 0.
    pub at_s: f64,
    /// Load as a fraction of rated, 0..=1. Default [`DEFAULT_LOAD`].
    #[serde(default = "default_load")]
    pub load: f64,
    /// Loss of cooling or lubrication, 0..=1 (drives temperature only). Default 0.
    #[serde(default)]
    pub overheat: f64,
    /// Fault severities; omitted ones are 0.
    #[serde(default)]
    pub faults: FaultSeverity,
    /// Shaft speed at this keyframe, rpm; `None` (omitted) is the machine's
    /// [`rpm`](MachineParams::rpm). Interpolated like the rest: see "Speed ramps" in the
    /// module docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<f64>,
}

/// An asset's condition at one instant, interpolated from its keyframes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    /// Fault severities, each 0..=1.
    pub faults: FaultSeverity,
    /// Load fraction, 0..=1.
    pub load: f64,
    /// Overheating, 0..=1.
    pub overheat: f64,
    /// Shaft speed, rpm.
    pub rpm: f64,
}

impl Condition {
    /// Healthy at [`DEFAULT_LOAD`] and the default machine's speed
    /// ([`MachineParams::DEFAULT`]).
    pub const NOMINAL: Self = Self {
        faults: FaultSeverity::HEALTHY,
        load: DEFAULT_LOAD,
        overheat: 0.0,
        rpm: MachineParams::DEFAULT.rpm,
    };

    /// How much extra heat the faults generate, 0..=1: the worst bearing defect, or half the
    /// misalignment, or a third of the looseness, whichever is largest. Imbalance adds load
    /// on the bearings but little friction, so it is ignored.
    pub fn friction_severity(&self) -> f64 {
        let f = &self.faults;
        f.bearing_max()
            .max(0.5 * f.misalignment)
            .max(f.looseness / 3.0)
            .clamp(0.0, 1.0)
    }
}

impl AssetConfig {
    /// The condition a keyframe states, its omitted speed read as the machine's.
    fn keyframe(&self, phase: &Phase) -> Condition {
        Condition {
            faults: phase.faults,
            load: phase.load,
            overheat: phase.overheat,
            rpm: phase.rpm.unwrap_or(self.machine.rpm),
        }
    }

    /// The condition at signal time `t_s` (see the module docs for the interpolation rules).
    pub fn condition_at(&self, t_s: f64) -> Condition {
        let phases = &self.phases;
        let Some(first) = phases.first() else {
            return Condition {
                rpm: self.machine.rpm,
                ..Condition::NOMINAL
            };
        };
        let next = phases.partition_point(|phase| phase.at_s <= t_s);
        if next == 0 {
            return self.keyframe(first);
        }
        let before = self.keyframe(&phases[next - 1]);
        let Some(after) = phases.get(next).map(|phase| self.keyframe(phase)) else {
            return before;
        };
        let t = (t_s - phases[next - 1].at_s) / (phases[next].at_s - phases[next - 1].at_s);
        Condition {
            faults: before.faults.lerp(&after.faults, t),
            load: before.load + (after.load - before.load) * t,
            overheat: before.overheat + (after.overheat - before.overheat) * t,
            rpm: before.rpm + (after.rpm - before.rpm) * t,
        }
    }

    /// Shaft revolutions between signal times `from_s` and `to_s` (0 unless `to_s > from_s`):
    /// the integral of the keyframe speed profile, which is linear between keyframes, so the
    /// speed at the middle of each piece times its length is exact.
    pub fn revolutions_between(&self, from_s: f64, to_s: f64) -> f64 {
        // Also refuses NaN times.
        if to_s.partial_cmp(&from_s) != Some(std::cmp::Ordering::Greater) {
            return 0.0;
        }
        let mut revolutions = 0.0;
        let mut start = from_s;
        let breaks = self
            .phases
            .iter()
            .map(|phase| phase.at_s)
            .filter(|&at| at > from_s && at < to_s)
            .chain(std::iter::once(to_s));
        for end in breaks {
            if end > start {
                let middle = self.condition_at(0.5 * (start + end));
                revolutions += middle.rpm / 60.0 * (end - start);
                start = end;
            }
        }
        revolutions
    }

    fn validate(&self, path: &str, sample_rate_hz: f64) -> Result<(), ScenarioError> {
        if self.id.trim().is_empty() {
            return Err(invalid(format!("{path}.id"), "must not be empty"));
        }
        self.machine
            .validate_at(sample_rate_hz)
            .map_err(|error| match error {
                VibrationError::Invalid { field, reason } => {
                    invalid(format!("{path}.machine.{field}"), reason)
                }
            })?;
        self.thermal.validate().map_err(|error| match error {
            ThermalError::Invalid { field, reason } => {
                invalid(format!("{path}.thermal.{field}"), reason)
            }
        })?;
        let mut previous_at_s = 0.0;
        for (j, phase) in self.phases.iter().enumerate() {
            let here = format!("{path}.phase[{j}]");
            if !(phase.at_s.is_finite() && phase.at_s >= 0.0) {
                return Err(invalid(format!("{here}.at_s"), "must be finite and >= 0"));
            }
            if phase.at_s < previous_at_s {
                return Err(invalid(
                    format!("{here}.at_s"),
                    format!("must not be earlier than the previous keyframe ({previous_at_s} s)"),
                ));
            }
            previous_at_s = phase.at_s;
            if !(0.0..=1.0).contains(&phase.load) {
                return Err(invalid(format!("{here}.load"), "must be within 0..=1"));
            }
            if !(0.0..=1.0).contains(&phase.overheat) {
                return Err(invalid(format!("{here}.overheat"), "must be within 0..=1"));
            }
            phase.faults.validate().map_err(|error| match error {
                VibrationError::Invalid { field, reason } => {
                    invalid(format!("{here}.faults.{field}"), reason)
                }
            })?;
            if let Some(rpm) = phase.rpm {
                // The machine at this speed: the impact-spacing limit applies to each keyframe,
                // and so to every speed of a ramp between them.
                MachineParams {
                    rpm,
                    ..self.machine.clone()
                }
                .validate_at(sample_rate_hz)
                .map_err(|VibrationError::Invalid { reason, .. }| {
                    invalid(format!("{here}.rpm"), reason)
                })?;
            }
        }
        Ok(())
    }
}

impl Scenario {
    /// Parses a TOML scenario and [`validate`](Self::validate)s it.
    pub fn from_toml_str(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Self = toml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The scenario as a TOML document that [`from_toml_str`](Self::from_toml_str) reads back
    /// unchanged (e.g. to start a custom file from a built-in one).
    pub fn to_toml(&self) -> Result<String, ScenarioError> {
        Ok(toml::to_string(self)?)
    }

    /// Checks every value is in range and ids are unique; the error names the first offending
    /// value by its path.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if let Some(duration) = self.duration_s
            && !(duration.is_finite() && duration > 0.0)
        {
            return Err(invalid("duration_s", "must be finite and > 0"));
        }
        if !(self.sample_rate_hz.is_finite() && (1000.0..=100_000.0).contains(&self.sample_rate_hz))
        {
            return Err(invalid("sample_rate_hz", "must be within 1000..=100000"));
        }
        if !(1..=MAX_BLOCK_SIZE).contains(&self.block_size) {
            return Err(invalid(
                "block_size",
                format!("must be within 1..={MAX_BLOCK_SIZE}"),
            ));
        }
        if !(1..=MAX_AXES).contains(&usize::from(self.axes)) {
            return Err(invalid("axes", format!("must be within 1..={MAX_AXES}")));
        }
        if self.temperature_interval_ms == 0 {
            return Err(invalid("temperature_interval_ms", "must be > 0"));
        }
        if self.status_interval_ms == 0 {
            return Err(invalid("status_interval_ms", "must be > 0"));
        }
        if !(self.full_scale_g > 0.0 && self.full_scale_g <= 1000.0) {
            return Err(invalid("full_scale_g", "must be within (0, 1000]"));
        }
        if let Some(b) = self.burst {
            if b.samples == 0 || b.samples > u32::MAX as usize {
                return Err(invalid("burst.samples", "must be at least 1"));
            }
            let burst_s = b.samples as f64 / self.sample_rate_hz;
            if !(b.period_s.is_finite() && b.period_s > burst_s && b.period_s <= 86_400.0) {
                return Err(invalid(
                    "burst.period_s",
                    format!("must be longer than a burst ({burst_s:.4} s) and at most 86400"),
                ));
            }
        }
        if self.assets.is_empty() {
            return Err(invalid("asset", "at least one [[asset]] is required"));
        }
        for (i, asset) in self.assets.iter().enumerate() {
            let path = format!("asset[{i}]");
            asset.validate(&path, self.sample_rate_hz)?;
            let earlier = &self.assets[..i];
            if let Some(k) = earlier.iter().position(|other| other.id == asset.id) {
                return Err(invalid(
                    format!("{path}.id"),
                    format!("`{}` is already used by asset[{k}]", asset.id),
                ));
            }
            if let Some(k) = earlier
                .iter()
                .position(|other| other.sensor_id == asset.sensor_id)
            {
                return Err(invalid(
                    format!("{path}.sensor_id"),
                    format!("{} is already used by asset[{k}]", asset.sensor_id),
                ));
            }
        }
        Ok(())
    }

    /// Duration of one vibration block, seconds.
    pub fn block_duration_s(&self) -> f64 {
        self.block_size as f64 / self.sample_rate_hz
    }

    /// A generator for every asset, in order.
    pub fn asset_sims(&self) -> Result<Vec<AssetSim>, ScenarioError> {
        (0..self.assets.len())
            .map(|index| AssetSim::new(self, index))
            .collect()
    }

    /// Names accepted by [`builtin`](Self::builtin).
    pub fn builtin_names() -> &'static [&'static str] {
        &[
            "healthy",
            "outer-race",
            "inner-race",
            "rolling-element",
            "imbalance",
            "misalignment",
            "looseness",
            "overheating",
            "degrading",
            "demo",
        ]
    }

    /// A built-in scenario by name (see [`builtin_names`](Self::builtin_names)), or `None`.
    ///
    /// The single-fault scenarios hold one established fault (severity 0.5) on a pump from the
    /// first sample; `overheating` and `degrading` start healthy and deteriorate over minutes;
    /// `demo` runs several assets in different conditions.
    pub fn builtin(name: &str) -> Option<Self> {
        let single = |description: &str, set: fn(&mut FaultSeverity)| {
            let mut faults = FaultSeverity::HEALTHY;
            set(&mut faults);
            let asset = asset(
                "pump-1",
                1,
                MachineParams::DEFAULT,
                vec![phase(0.0, faults)],
            );
            scenario(name, description, None, vec![asset])
        };
        let scenario = match name {
            "healthy" => single("A pump in good condition.", |_| {}),
            "outer-race" => single(
                "A pump with an established outer-race defect: envelope lines at BPFO.",
                |f| f.outer_race = 0.5,
            ),
            "inner-race" => single(
                "A pump with an established inner-race defect: envelope lines at BPFI with 1x \
                 sidebands.",
                |f| f.inner_race = 0.5,
            ),
            "rolling-element" => single(
                "A pump with a spalled ball: envelope lines at 2 x BSF and FTF.",
                |f| f.rolling_element = 0.5,
            ),
            "imbalance" => single("A pump with rotor imbalance: high radial 1x.", |f| {
                f.imbalance = 0.5;
            }),
            "misalignment" => Scenario {
                axes: 3,
                ..single(
                    "A pump with shaft misalignment: high 2x, strongest on the axial axis.",
                    |f| f.misalignment = 0.5,
                )
            },
            "looseness" => single(
                "A pump with mechanical looseness: 1x harmonics, half-harmonics, clipping.",
                |f| f.looseness = 0.5,
            ),
            "overheating" => overheating(),
            "degrading" => degrading(),
            "demo" => demo(),
            _ => return None,
        };
        debug_assert!(scenario.validate().is_ok(), "built-in {name} is invalid");
        Some(scenario)
    }
}

fn scenario(
    name: &str,
    description: &str,
    duration_s: Option<f64>,
    assets: Vec<AssetConfig>,
) -> Scenario {
    Scenario {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        seed: 1,
        duration_s,
        sample_rate_hz: DEFAULT_SAMPLE_RATE_HZ,
        block_size: DEFAULT_BLOCK_SIZE,
        axes: DEFAULT_AXES,
        temperature_interval_ms: DEFAULT_TEMPERATURE_INTERVAL_MS,
        status_interval_ms: DEFAULT_STATUS_INTERVAL_MS,
        full_scale_g: DEFAULT_FULL_SCALE_G,
        burst: None,
        assets,
    }
}

fn asset(id: &str, sensor_id: u32, machine: MachineParams, phases: Vec<Phase>) -> AssetConfig {
    AssetConfig {
        id: id.to_owned(),
        sensor_id,
        machine,
        thermal: ThermalParams::DEFAULT,
        phases,
    }
}

fn phase(at_s: f64, faults: FaultSeverity) -> Phase {
    Phase {
        at_s,
        load: DEFAULT_LOAD,
        overheat: 0.0,
        faults,
        rpm: None,
    }
}

fn outer_race(severity: f64) -> FaultSeverity {
    FaultSeverity {
        outer_race: severity,
        ..FaultSeverity::HEALTHY
    }
}

/// Thermal settings that show changes within minutes rather than the tens of minutes of a
/// real housing.
fn fast_thermal(time_constant_s: f64) -> ThermalParams {
    ThermalParams {
        time_constant_s,
        ..ThermalParams::DEFAULT
    }
}

fn overheating() -> Scenario {
    let mut pump = asset(
        "pump-1",
        1,
        MachineParams::DEFAULT,
        vec![
            phase(0.0, FaultSeverity::HEALTHY),
            phase(60.0, FaultSeverity::HEALTHY),
            Phase {
                overheat: 1.0,
                ..phase(180.0, FaultSeverity::HEALTHY)
            },
        ],
    );
    pump.thermal = fast_thermal(90.0);
    scenario(
        "overheating",
        "A pump losing lubrication: vibration stays healthy while the temperature climbs about \
         40 C between 1 and 5 minutes.",
        Some(600.0),
        vec![pump],
    )
}

fn degrading() -> Scenario {
    let mut pump = asset(
        "pump-1",
        1,
        MachineParams::DEFAULT,
        vec![
            phase(0.0, outer_race(0.0)),
            phase(60.0, outer_race(0.0)),
            phase(120.0, outer_race(0.15)),
            phase(240.0, outer_race(0.35)),
            Phase {
                overheat: 0.3,
                ..phase(360.0, outer_race(0.85))
            },
        ],
    );
    pump.thermal = fast_thermal(120.0);
    scenario(
        "degrading",
        "A pump bearing's outer race fails: healthy for a minute, incipient (envelope only) by \
         2 minutes, clear by 4, severe with rising temperature by 6.",
        Some(420.0),
        vec![pump],
    )
}

fn demo() -> Scenario {
    let healthy = asset(
        "pump-1",
        1,
        MachineParams::DEFAULT,
        vec![phase(0.0, FaultSeverity::HEALTHY)],
    );
    let mut degrading = asset(
        "pump-2",
        2,
        MachineParams {
            resonance_hz: 3400.0,
            ..MachineParams::DEFAULT
        },
        vec![
            phase(0.0, outer_race(0.0)),
            phase(30.0, outer_race(0.0)),
            phase(90.0, outer_race(0.15)),
            phase(240.0, outer_race(0.7)),
        ],
    );
    degrading.thermal = fast_thermal(120.0);
    let fan = asset(
        "fan-1",
        3,
        MachineParams {
            rpm: 2950.0,
            bearing: super::bearing::BearingGeometry::skf_6203(),
            resonance_hz: 2600.0,
            ..MachineParams::DEFAULT
        },
        vec![phase(
            0.0,
            FaultSeverity {
                imbalance: 0.5,
                ..FaultSeverity::HEALTHY
            },
        )],
    );
    let mut motor = asset(
        "motor-1",
        4,
        MachineParams {
            rpm: 1780.0,
            resonance_hz: 3800.0,
            ..MachineParams::DEFAULT
        },
        vec![
            phase(
                0.0,
                FaultSeverity {
                    inner_race: 0.4,
                    ..FaultSeverity::HEALTHY
                },
            ),
            Phase {
                overheat: 0.0,
                ..phase(
                    120.0,
                    FaultSeverity {
                        inner_race: 0.4,
                        ..FaultSeverity::HEALTHY
                    },
                )
            },
            Phase {
                overheat: 0.8,
                ..phase(
                    300.0,
                    FaultSeverity {
                        inner_race: 0.5,
                        ..FaultSeverity::HEALTHY
                    },
                )
            },
        ],
    );
    motor.thermal = fast_thermal(120.0);
    let conveyor = asset(
        "conveyor-1",
        5,
        MachineParams {
            rpm: 985.0,
            resonance_hz: 2200.0,
            ..MachineParams::DEFAULT
        },
        vec![phase(
            0.0,
            FaultSeverity {
                looseness: 0.5,
                ..FaultSeverity::HEALTHY
            },
        )],
    );
    scenario(
        "demo",
        "Five assets: pump-1 healthy; pump-2 outer race degrading over 4 minutes; fan-1 \
         imbalance; motor-1 inner race, overheating after 2 minutes; conveyor-1 looseness.",
        None,
        vec![healthy, degrading, fan, motor, conveyor],
    )
}

/// Where a vibration block sits in signal time, and the condition it was generated under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockInfo {
    /// Block number for this asset, from 0.
    pub sequence: u64,
    /// Index of the block's first sample per axis since the start.
    pub first_sample: u64,
    /// Signal time of the first sample, seconds since the start.
    pub t_start_s: f64,
    /// Samples per axis in the block.
    pub samples_per_axis: usize,
    /// Interleaved axes per frame.
    pub axes: usize,
    /// Condition (at `t_start_s`) the block was generated under.
    pub condition: Condition,
}

/// Pure generator of one asset's sensor data: vibration blocks on its own sample clock and
/// temperature readings at caller-given times. See the module docs.
#[derive(Debug, Clone)]
pub struct AssetSim {
    config: AssetConfig,
    synth: VibrationSynth,
    thermal: ThermalModel,
    block_size: usize,
    full_scale_g: f32,
    blocks: u64,
    thermal_time_s: f64,
}

impl AssetSim {
    /// The generator for `scenario.assets[index]`, after validating the whole scenario.
    ///
    /// The thermal model starts settled at the condition at time 0 (already warm).
    pub fn new(scenario: &Scenario, index: usize) -> Result<Self, ScenarioError> {
        scenario.validate()?;
        let config = scenario
            .assets
            .get(index)
            .ok_or(ScenarioError::NoSuchAsset(index))?
            .clone();
        let asset_seed = mix(scenario.seed ^ mix(u64::from(config.sensor_id)));
        let path = format!("asset[{index}]");
        let synth = VibrationSynth::new(
            &config.machine,
            scenario.sample_rate_hz,
            usize::from(scenario.axes),
            mix(asset_seed ^ 1),
        )
        .map_err(|VibrationError::Invalid { field, reason }| {
            invalid(format!("{path}.machine.{field}"), reason)
        })?;
        let mut thermal = ThermalModel::new(&config.thermal, mix(asset_seed ^ 2)).map_err(
            |ThermalError::Invalid { field, reason }| {
                invalid(format!("{path}.thermal.{field}"), reason)
            },
        )?;
        let start = config.condition_at(0.0);
        thermal.settle(start.load, start.friction_severity(), start.overheat);
        Ok(Self {
            config,
            synth,
            thermal,
            block_size: scenario.block_size,
            full_scale_g: scenario.full_scale_g,
            blocks: 0,
            thermal_time_s: 0.0,
        })
    }

    /// The asset's id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The sensor node id.
    pub fn sensor_id(&self) -> u32 {
        self.config.sensor_id
    }

    /// The asset's configuration.
    pub fn config(&self) -> &AssetConfig {
        &self.config
    }

    /// Interleaved axes per frame.
    pub fn axes(&self) -> usize {
        self.synth.axes()
    }

    /// Sample rate per axis, Hz.
    pub fn sample_rate_hz(&self) -> f64 {
        self.synth.sample_rate_hz()
    }

    /// The scenario's block size, samples per axis.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Length of the interleaved buffer for one scenario block: `block_size · axes`.
    pub fn block_len(&self) -> usize {
        self.block_size * self.axes()
    }

    /// The scenario's accelerometer full scale, g.
    pub fn full_scale_g(&self) -> f32 {
        self.full_scale_g
    }

    /// Signal time at which the next vibration block starts, seconds.
    pub fn next_block_start_s(&self) -> f64 {
        self.synth.elapsed_s()
    }

    /// The shaft speed at the end of the latest block, Hz (the machine's before the first).
    pub fn shaft_hz(&self) -> f64 {
        self.synth.shaft_hz()
    }

    /// The asset's condition at signal time `t_s`.
    pub fn condition_at(&self, t_s: f64) -> Condition {
        self.config.condition_at(t_s)
    }

    /// Fills `out` (normally [`block_len`](Self::block_len) long) with the next interleaved
    /// samples in g, generated under the condition at the block's start time; the shaft speed
    /// moves linearly from the condition's at the block's start to the one at its end.
    ///
    /// Values are not clipped to the full scale; the converter to integers decides how.
    ///
    /// # Panics
    ///
    /// If `out.len()` is not a multiple of [`axes`](Self::axes).
    pub fn next_vibration(&mut self, out: &mut [f32]) -> BlockInfo {
        let first_sample = self.synth.samples_generated();
        let t_start_s = self.synth.elapsed_s();
        let condition = self.synthesise(out);
        let info = BlockInfo {
            sequence: self.blocks,
            first_sample,
            t_start_s,
            samples_per_axis: out.len() / self.axes(),
            axes: self.axes(),
            condition,
        };
        self.blocks += 1;
        info
    }

    /// The next samples as [`next_vibration`](Self::next_vibration) makes them, without
    /// counting a block; returns the condition they were made under.
    fn synthesise(&mut self, out: &mut [f32]) -> Condition {
        let first_sample = self.synth.samples_generated();
        let condition = self.config.condition_at(self.synth.elapsed_s());
        let samples_per_axis = out.len() / self.axes();
        let t_end_s = (first_sample + samples_per_axis as u64) as f64 / self.sample_rate_hz();
        let rpm_end = self.config.condition_at(t_end_s).rpm;
        self.synth
            .next_block_at_speed(&condition.faults, condition.rpm, rpm_end, out);
        condition
    }

    /// Synthesises the next `samples_per_axis` samples and throws them away, in pieces of
    /// the block size as [`next_vibration`](Self::next_vibration) makes them.
    fn discard(&mut self, samples_per_axis: u64) {
        let mut scratch = vec![0.0f32; self.block_len()];
        let mut left = samples_per_axis;
        while left > 0 {
            let n = left.min(self.block_size as u64) as usize;
            self.synthesise(&mut scratch[..n * self.axes()]);
            left -= n as u64;
        }
    }

    /// Passes over the next `samples_per_axis` samples per axis (a snapshot sensor asleep
    /// between bursts): the machine runs on, its faults follow their timeline, and the next
    /// block starts that much later.
    ///
    /// A gap of up to [`EXACT_SKIP_MAX_S`] is synthesised and discarded in block-size pieces,
    /// so the samples after it are exactly those a continuous sensor would have sent at the
    /// same time (a snapshot is a cut of the stream, when bursts start on block boundaries).
    /// A longer gap is [`fast_forward`](Self::fast_forward)ed: its cost no longer grows with
    /// its length.
    pub fn skip(&mut self, samples_per_axis: u64) {
        if samples_per_axis as f64 <= EXACT_SKIP_MAX_S * self.sample_rate_hz() {
            self.discard(samples_per_axis);
        } else {
            self.fast_forward(samples_per_axis);
        }
    }

    /// Passes over the next `samples_per_axis` samples per axis without synthesising most of
    /// them: the clock, the shaft and cage phases (by the integral of the keyframe speeds)
    /// and each bearing defect's impact schedule move on
    /// ([`VibrationSynth::fast_forward`]); then the last
    /// [`VibrationSynth::ring_down_samples`] of the gap (a few ms with common resonances) are
    /// synthesised and discarded, so impacts just before the next block ring into it as they
    /// would have. The random streams draw nothing for the skipped part: the following
    /// samples are another realisation of the same machine, not those a continuous sensor
    /// would have seen.
    pub fn fast_forward(&mut self, samples_per_axis: u64) {
        let pre_roll = self.synth.ring_down_samples().min(samples_per_axis);
        let jump = samples_per_axis - pre_roll;
        if jump > 0 {
            let from_s = self.synth.elapsed_s();
            let to_s = (self.synth.samples_generated() + jump) as f64 / self.sample_rate_hz();
            let revolutions = self.config.revolutions_between(from_s, to_s);
            let rpm_end = self.config.condition_at(to_s).rpm;
            self.synth.fast_forward(jump, revolutions, rpm_end);
        }
        self.discard(pre_roll);
    }

    /// A temperature reading, °C, at signal time `t_s`: the thermal model advances from the
    /// previous reading's time under the condition at `t_s`. A time earlier than the previous
    /// reading advances nothing and yields a fresh noisy reading of the current state.
    pub fn temperature_at(&mut self, t_s: f64) -> f64 {
        let condition = self.config.condition_at(t_s);
        let dt_s = t_s - self.thermal_time_s;
        let reading = self.thermal.step(
            dt_s,
            condition.load,
            condition.friction_severity(),
            condition.overheat,
        );
        if dt_s > 0.0 {
            self.thermal_time_s = t_s;
        }
        reading
    }

    /// The noise-free temperature after the latest reading, °C.
    pub fn true_temperature_c(&self) -> f64 {
        self.thermal.true_temperature_c()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../scenarios/degrading-pump.toml");

    const MINIMAL: &str = r#"
name = "minimal"
[[asset]]
id = "pump-1"
sensor_id = 7
"#;

    fn error_of(text: &str) -> String {
        Scenario::from_toml_str(text).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_scenario_takes_the_documented_defaults() {
        let scenario = Scenario::from_toml_str(MINIMAL).unwrap();
        assert_eq!(scenario.seed, 0);
        assert_eq!(scenario.sample_rate_hz, DEFAULT_SAMPLE_RATE_HZ);
        assert_eq!(scenario.block_size, DEFAULT_BLOCK_SIZE);
        assert_eq!(scenario.axes, DEFAULT_AXES);
        assert_eq!(scenario.full_scale_g, DEFAULT_FULL_SCALE_G);
        assert_eq!(scenario.assets[0].machine, MachineParams::DEFAULT);
        assert_eq!(scenario.assets[0].condition_at(5.0), Condition::NOMINAL);
    }

    #[test]
    fn the_example_scenario_file_parses_and_validates() {
        let scenario = Scenario::from_toml_str(EXAMPLE).unwrap();
        assert_eq!(scenario.name, "degrading-pump");
        let pump = &scenario.assets[0];
        assert_eq!(
            pump.machine.bearing,
            super::super::bearing::BearingGeometry::skf_6205()
        );
        let start = pump.condition_at(0.0).faults.outer_race;
        let end = pump.condition_at(1e6).faults.outer_race;
        assert!(start == 0.0 && end > 0.5, "{start} -> {end}");
    }

    #[test]
    fn every_builtin_scenario_validates_and_round_trips_through_toml() {
        for name in Scenario::builtin_names() {
            let scenario = Scenario::builtin(name).unwrap();
            scenario.validate().unwrap();
            assert_eq!(&scenario.name, name);
            let text = scenario.to_toml().unwrap();
            let parsed = Scenario::from_toml_str(&text)
                .unwrap_or_else(|error| panic!("{name}: {error}\n{text}"));
            assert_eq!(parsed, scenario, "{name}");
        }
        assert_eq!(Scenario::builtin("no-such-scenario"), None);
    }

    #[test]
    fn each_single_fault_builtin_has_exactly_its_fault() {
        fn check(name: &str, severity: fn(&FaultSeverity) -> f64) {
            let faults = Scenario::builtin(name).unwrap().assets[0]
                .condition_at(10.0)
                .faults;
            assert!(severity(&faults) > 0.0, "{name}");
            let total = faults.outer_race
                + faults.inner_race
                + faults.rolling_element
                + faults.imbalance
                + faults.misalignment
                + faults.looseness;
            assert_eq!(total, severity(&faults), "{name} has other faults");
        }
        check("outer-race", |f| f.outer_race);
        check("inner-race", |f| f.inner_race);
        check("rolling-element", |f| f.rolling_element);
        check("imbalance", |f| f.imbalance);
        check("misalignment", |f| f.misalignment);
        check("looseness", |f| f.looseness);
        let healthy = Scenario::builtin("healthy").unwrap();
        assert!(healthy.assets[0].condition_at(10.0).faults.is_healthy());
    }

    #[test]
    fn a_misspelt_key_is_rejected_naming_it() {
        let text = MINIMAL.replace("sensor_id = 7", "sensor_id = 7\nrmp = 1500");
        let message = error_of(&text);
        assert!(message.contains("rmp"), "{message}");
    }

    #[test]
    fn a_misspelt_fault_is_rejected_naming_it() {
        let text = format!("{MINIMAL}[[asset.phase]]\nat_s = 0\nfaults = {{ outer_rase = 0.5 }}\n");
        let message = error_of(&text);
        assert!(message.contains("outer_rase"), "{message}");
    }

    #[test]
    fn an_unknown_bearing_preset_is_rejected_listing_the_known_ones() {
        let text = format!("{MINIMAL}[asset.machine]\nbearing = \"skf-9999\"\n");
        let message = error_of(&text);
        assert!(
            message.contains("skf-9999") && message.contains("skf-6205"),
            "{message}"
        );
    }

    #[test]
    fn a_bearing_can_be_given_as_a_geometry_table() {
        let text = format!(
            "{MINIMAL}[asset.machine.bearing]\nrolling_elements = 12\nelement_diameter_mm = 10.0\n\
             pitch_diameter_mm = 60.0\ncontact_angle_deg = 15.0\n"
        );
        let scenario = Scenario::from_toml_str(&text).unwrap();
        assert_eq!(scenario.assets[0].machine.bearing.rolling_elements, 12);
    }

    #[test]
    fn out_of_range_values_are_rejected_naming_their_path() {
        let cases = [
            (
                format!("{MINIMAL}[asset.machine]\nrpm = 0\n"),
                "asset[0].machine.rpm:",
            ),
            (
                format!(
                    "{MINIMAL}[asset.machine.bearing]\nrolling_elements = 2\nelement_diameter_mm = 1.0\npitch_diameter_mm = 10.0\ncontact_angle_deg = 0.0\n"
                ),
                "asset[0].machine.bearing.rolling_elements:",
            ),
            (
                format!("{MINIMAL}[asset.thermal]\ntime_constant_s = -1\n"),
                "asset[0].thermal.time_constant_s:",
            ),
            (
                format!("{MINIMAL}[[asset.phase]]\nat_s = 10\n[[asset.phase]]\nat_s = 5\n"),
                "asset[0].phase[1].at_s:",
            ),
            (
                format!("{MINIMAL}[[asset.phase]]\nat_s = 0\nfaults = {{ inner_race = 1.5 }}\n"),
                "asset[0].phase[0].faults.inner_race:",
            ),
            (
                format!("{MINIMAL}[[asset.phase]]\nat_s = 0\nload = 2\n"),
                "asset[0].phase[0].load:",
            ),
            (
                format!("{MINIMAL}[[asset]]\nid = \"pump-2\"\nsensor_id = 7\n"),
                "asset[1].sensor_id:",
            ),
            (
                format!("{MINIMAL}[[asset]]\nid = \"pump-1\"\nsensor_id = 8\n"),
                "asset[1].id:",
            ),
            (
                MINIMAL.replace("name = \"minimal\"", "name = \"m\"\naxes = 4"),
                "axes:",
            ),
            (
                MINIMAL.replace("name = \"minimal\"", "name = \"m\"\nblock_size = 0"),
                "block_size:",
            ),
            (
                MINIMAL.replace("name = \"minimal\"", "name = \"m\"\nsample_rate_hz = 4000"),
                // The default 3 kHz resonance does not fit under 0.4 x 4 kHz.
                "asset[0].machine.resonance_hz:",
            ),
            ("name = \"empty\"\nasset = []\n".to_owned(), "asset:"),
        ];
        for (text, expected) in cases {
            let message = error_of(&text);
            assert!(
                message.starts_with(expected),
                "expected `{expected}`, got `{message}`"
            );
        }
    }

    fn keyframes(phases: &[(f64, f64)]) -> AssetConfig {
        let mut config = Scenario::from_toml_str(MINIMAL).unwrap().assets.remove(0);
        config.phases = phases
            .iter()
            .map(|&(at_s, severity)| phase(at_s, outer_race(severity)))
            .collect();
        config
    }

    #[test]
    fn conditions_interpolate_linearly_between_keyframes_and_hold_outside_them() {
        let config = keyframes(&[(10.0, 0.2), (20.0, 0.6), (40.0, 1.0)]);
        let at = |t: f64| config.condition_at(t).faults.outer_race;
        assert_eq!(at(0.0), 0.2);
        assert_eq!(at(10.0), 0.2);
        assert!((at(15.0) - 0.4).abs() < 1e-12);
        assert!((at(30.0) - 0.8).abs() < 1e-12);
        assert_eq!(at(40.0), 1.0);
        assert_eq!(at(1e9), 1.0);
    }

    #[test]
    fn two_keyframes_at_the_same_time_make_a_step() {
        let config = keyframes(&[(0.0, 0.0), (10.0, 0.0), (10.0, 0.9)]);
        assert_eq!(config.condition_at(9.999).faults.outer_race, 0.0);
        assert_eq!(config.condition_at(10.0).faults.outer_race, 0.9);
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    const RAMP: &str = "[[asset.phase]]\nat_s = 10\nrpm = 1200\n\
                        [[asset.phase]]\nat_s = 70\nrpm = 1800\n\
                        [[asset.phase]]\nat_s = 80\n";

    #[test]
    fn keyframe_speeds_ramp_linearly_and_an_omitted_speed_is_the_machines() {
        let scenario = Scenario::from_toml_str(&format!("{MINIMAL}{RAMP}")).unwrap();
        let pump = &scenario.assets[0];
        let rpm = |t: f64| pump.condition_at(t).rpm;
        assert_eq!(rpm(0.0), 1200.0);
        assert_eq!(rpm(10.0), 1200.0);
        assert!((rpm(40.0) - 1500.0).abs() < 1e-9);
        assert_eq!(rpm(70.0), 1800.0);
        // The last keyframe states no speed: back down to the machine's 1480 rpm by 80 s.
        assert!((rpm(75.0) - 1640.0).abs() < 1e-9);
        assert_eq!(rpm(80.0), MachineParams::DEFAULT.rpm);
        let text = scenario.to_toml().unwrap();
        assert_eq!(Scenario::from_toml_str(&text).unwrap(), scenario, "{text}");
        // Without keyframes, the machine's speed.
        let mut fast = Scenario::from_toml_str(MINIMAL).unwrap();
        fast.assets[0].machine.rpm = 2950.0;
        assert_eq!(fast.assets[0].condition_at(3.0).rpm, 2950.0);
    }

    #[test]
    fn a_keyframe_speed_out_of_range_is_rejected_naming_it() {
        let too_fast =
            format!("{MINIMAL}[[asset.phase]]\nat_s = 0\n[[asset.phase]]\nat_s = 5\nrpm = 30000\n");
        assert!(error_of(&too_fast).starts_with("asset[0].phase[1].rpm:"));
        let stopped = format!("{MINIMAL}[[asset.phase]]\nat_s = 0\nrpm = 0\n");
        assert!(error_of(&stopped).starts_with("asset[0].phase[0].rpm:"));
    }

    #[test]
    fn a_speed_ramp_moves_the_shaft_line_and_a_constant_speed_changes_no_sample() {
        // The blocks of a scenario without speeds are those of the plain synthesiser.
        let scenario = Scenario::builtin("healthy").unwrap();
        let mut sim = AssetSim::new(&scenario, 0).unwrap();
        let mut synth = VibrationSynth::new(
            &scenario.assets[0].machine,
            scenario.sample_rate_hz,
            1,
            mix(mix(scenario.seed ^ mix(1)) ^ 1),
        )
        .unwrap();
        let (mut a, mut b) = (vec![0.0f32; sim.block_len()], vec![0.0f32; sim.block_len()]);
        for _ in 0..20 {
            sim.next_vibration(&mut a);
            synth.next_block(&FaultSeverity::HEALTHY, &mut b);
            assert_eq!(a, b);
        }
        // A ramp from 1200 to 1800 rpm: a pure 1x (no noise) makes as many cycles as the
        // speed's integral, 250 over the 10 s, with no jump anywhere.
        let mut ramp = Scenario::from_toml_str(MINIMAL).unwrap();
        ramp.assets[0].machine.noise_g = 0.0;
        ramp.assets[0].machine.shaft_harmonics_g = [0.1, 0.0, 0.0];
        let keyframe = |at_s, rpm| Phase {
            rpm: Some(rpm),
            ..phase(at_s, FaultSeverity::HEALTHY)
        };
        ramp.assets[0].phases = vec![keyframe(0.0, 1200.0), keyframe(10.0, 1800.0)];
        let mut sim = AssetSim::new(&ramp, 0).unwrap();
        let mut signal = Vec::new();
        let mut block = vec![0.0f32; sim.block_len()];
        while sim.next_block_start_s() < 10.0 {
            sim.next_vibration(&mut block);
            signal.extend_from_slice(&block);
        }
        let fs = ramp.sample_rate_hz;
        let rising = signal
            .windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count();
        assert!((249..=251).contains(&rising), "{rising} cycles");
        let largest_step = signal
            .windows(2)
            .map(|w| f64::from((w[1] - w[0]).abs()))
            .fold(0.0, f64::max);
        let sine_step = 0.1 * std::f64::consts::TAU * 30.0 / fs;
        assert!(
            largest_step <= 1.01 * sine_step,
            "{largest_step} > {sine_step}"
        );
        assert!((sim.shaft_hz() - 30.0).abs() < 1e-9);
    }

    #[test]
    fn revolutions_integrate_the_keyframe_speeds_exactly() {
        let scenario = Scenario::from_toml_str(&format!("{MINIMAL}{RAMP}")).unwrap();
        let pump = &scenario.assets[0];
        // 10 s at 1200 rpm, a 60 s ramp to 1800 (1500 on average), 10 s down to 1480.
        let expected = 200.0 + 1500.0 + 10.0 * (1800.0 + 1480.0) / 2.0 / 60.0;
        assert!((pump.revolutions_between(0.0, 80.0) - expected).abs() < 1e-9);
        // Inside the ramp: the speed at the middle, 40.25 s.
        assert!((pump.revolutions_between(40.0, 40.5) - 0.5 * 1502.5 / 60.0).abs() < 1e-9);
        assert_eq!(pump.revolutions_between(5.0, 5.0), 0.0);
        // After the last keyframe the machine's speed holds.
        assert!((pump.revolutions_between(100.0, 160.0) - 1480.0).abs() < 1e-9);
    }

    /// A healthy, noise-free machine on the speed ramp: only shaft harmonics, so its samples
    /// depend on the shaft's phase alone.
    fn noise_free_ramp() -> Scenario {
        let mut scenario = Scenario::from_toml_str(&format!("{MINIMAL}{RAMP}")).unwrap();
        scenario.assets[0].machine.noise_g = 0.0;
        scenario.assets[0].machine.shaft_harmonics_g = [0.1, 0.05, 0.02];
        scenario
    }

    /// Largest difference between the samples after a fast-forward of `gap` samples and
    /// after synthesising them, with a first block before the gap.
    fn fast_forward_error(scenario: &Scenario, gap: u64) -> f64 {
        let mut jumped = AssetSim::new(scenario, 0).unwrap();
        let mut walked = AssetSim::new(scenario, 0).unwrap();
        let mut a = vec![0.0f32; jumped.block_len()];
        let mut b = vec![0.0f32; walked.block_len()];
        jumped.next_vibration(&mut a);
        walked.next_vibration(&mut b);
        jumped.fast_forward(gap);
        walked.discard(gap);
        assert_eq!(jumped.next_block_start_s(), walked.next_block_start_s());
        let mut worst = 0.0f64;
        for _ in 0..10 {
            let (ia, ib) = (jumped.next_vibration(&mut a), walked.next_vibration(&mut b));
            assert_eq!(ia.first_sample, ib.first_sample);
            for (x, y) in a.iter().zip(&b) {
                worst = worst.max(f64::from((x - y).abs()));
            }
        }
        worst
    }

    #[test]
    fn a_fast_forward_turns_the_shaft_as_synthesis_would_through_a_speed_ramp() {
        let scenario = noise_free_ramp();
        // 5 s at the constant 1200 rpm before the ramp: the same samples, to rounding.
        let constant = fast_forward_error(&scenario, 5 * 12_800 + 1);
        // 40 s, from before the ramp to past its middle, plus an odd sample.
        let worst = fast_forward_error(&scenario, 40 * 12_800 + 1);
        eprintln!(
            "fast-forward: largest difference {constant:.2e} g at a constant speed, {worst:.2e} g \
             through a ramp"
        );
        assert!(constant < 1e-6, "{constant}");
        // Synthesis itself steps the speed once per sample, lagging the exact integral by
        // half a step per block: 2e-4 shaft cycles over this ramp, ~3e-4 g on these harmonics.
        assert!(worst < 5e-4, "{worst}");
    }

    #[test]
    fn a_fault_after_a_fast_forward_looks_as_it_does_after_a_synthesised_gap() {
        use super::super::test_support::{axis_signal, envelope_peak_db, envelope_spectrum};
        let mut scenario = Scenario::from_toml_str(MINIMAL).unwrap();
        scenario.assets[0].phases = vec![phase(0.0, outer_race(0.5))];
        let machine = scenario.assets[0].machine.clone();
        let after_gap = |fast: bool| {
            let mut sim = AssetSim::new(&scenario, 0).unwrap();
            let gap = 90 * 12_800;
            if fast {
                sim.fast_forward(gap);
            } else {
                sim.discard(gap);
            }
            let mut block = vec![0.0f32; sim.block_len()];
            let mut signal = Vec::new();
            for _ in 0..50 {
                sim.next_vibration(&mut block);
                signal.extend_from_slice(&block);
            }
            let x = axis_signal(&signal, 1, 0);
            let band = (machine.resonance_hz - 1000.0, machine.resonance_hz + 1000.0);
            let db = envelope_peak_db(
                &envelope_spectrum(&x, 12_800.0, band),
                machine.fault_frequencies().bpfo_hz,
                0.02,
            );
            (rms(&signal), db)
        };
        let (fast, walked) = (after_gap(true), after_gap(false));
        eprintln!(
            "after a 90 s gap: fast-forward {fast:.3?}, synthesised {walked:.3?} (RMS g, BPFO envelope dB)"
        );
        assert!(
            (fast.0 / walked.0 - 1.0).abs() < 0.05,
            "{fast:?} {walked:?}"
        );
        assert!(fast.1 > 10.0 && walked.1 > 10.0, "{fast:?} {walked:?}");
    }

    #[test]
    fn a_short_skip_keeps_the_exact_stream_and_a_long_one_costs_no_more_than_a_short_one() {
        let scenario = noise_free_ramp();
        let mut skipped = AssetSim::new(&scenario, 0).unwrap();
        let mut streamed = AssetSim::new(&scenario, 0).unwrap();
        let mut a = vec![0.0f32; skipped.block_len()];
        let mut b = vec![0.0f32; streamed.block_len()];
        skipped.skip(20 * skipped.block_size() as u64);
        for _ in 0..21 {
            streamed.next_vibration(&mut b);
        }
        skipped.next_vibration(&mut a);
        assert_eq!(a, b, "a snapshot is a cut of the stream");
        // A day between two bursts: fast-forwarded, not synthesised.
        let started = std::time::Instant::now();
        skipped.skip(86_400 * 12_800);
        skipped.next_vibration(&mut a);
        let blocks_s = 22.0 * skipped.block_size() as f64 / 12_800.0;
        assert!((skipped.next_block_start_s() - 86_400.0 - blocks_s).abs() < 1e-6);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn the_degrading_scenario_gets_louder_and_hotter_on_schedule() {
        let scenario = Scenario::builtin("degrading").unwrap();
        let mut sim = AssetSim::new(&scenario, 0).unwrap();
        let duration = scenario.duration_s.unwrap();
        let mut block = vec![0.0f32; sim.block_len()];
        let mut early = Vec::new();
        let mut late = Vec::new();
        let mut temperatures = Vec::new();
        let mut next_temperature_s = 0.0;
        let mut expected_sequence = 0;
        while sim.next_block_start_s() < duration {
            let info = sim.next_vibration(&mut block);
            assert_eq!(info.sequence, expected_sequence);
            assert_eq!(
                info.first_sample,
                expected_sequence * scenario.block_size as u64
            );
            expected_sequence += 1;
            if info.t_start_s < 30.0 {
                early.extend_from_slice(&block);
            } else if info.t_start_s >= duration - 30.0 {
                late.extend_from_slice(&block);
            }
            while next_temperature_s <= info.t_start_s {
                temperatures.push(sim.temperature_at(next_temperature_s));
                next_temperature_s += f64::from(scenario.temperature_interval_ms) / 1000.0;
            }
        }
        let loudness = rms(&late) / rms(&early);
        let warming = temperatures[temperatures.len() - 1] - temperatures[0];
        eprintln!("degrading: RMS x{loudness:.2}, temperature +{warming:.1} C");
        assert!(loudness > 2.0, "RMS only x{loudness:.2}");
        assert!(warming > 15.0, "only +{warming:.1} C");
        assert_eq!(temperatures.len(), duration as usize);
    }

    #[test]
    fn the_overheating_scenario_heats_up_by_about_the_overheat_rise() {
        let scenario = Scenario::builtin("overheating").unwrap();
        let mut sim = AssetSim::new(&scenario, 0).unwrap();
        let start = sim.temperature_at(0.0);
        let end = (1..=600)
            .map(|t| sim.temperature_at(f64::from(t)))
            .last()
            .unwrap();
        let rise = sim.true_temperature_c()
            - ThermalParams::DEFAULT.steady_state_c(DEFAULT_LOAD, 0.0, 0.0);
        eprintln!("overheating: {start:.1} C -> {end:.1} C");
        assert!((rise - 40.0).abs() < 2.0, "rise {rise:.1}");
    }

    #[test]
    fn an_asset_sim_is_reproducible_and_assets_differ() {
        let scenario = Scenario::builtin("demo").unwrap();
        let run = |index: usize| {
            let mut sim = AssetSim::new(&scenario, index).unwrap();
            let mut block = vec![0.0f32; sim.block_len()];
            sim.next_vibration(&mut block);
            (block, sim.temperature_at(1.0))
        };
        assert_eq!(run(0), run(0));
        assert_ne!(run(0).0, run(1).0);
        assert!(matches!(
            AssetSim::new(&scenario, 99),
            Err(ScenarioError::NoSuchAsset(99))
        ));
    }

    #[test]
    fn an_assets_data_does_not_depend_on_the_other_assets() {
        let demo = Scenario::builtin("demo").unwrap();
        let mut alone = demo.clone();
        alone.assets = vec![demo.assets[3].clone()];
        let first_block = |scenario: &Scenario, index: usize| {
            let mut sim = AssetSim::new(scenario, index).unwrap();
            let mut block = vec![0.0f32; sim.block_len()];
            sim.next_vibration(&mut block);
            block
        };
        assert_eq!(first_block(&demo, 3), first_block(&alone, 0));
    }

    #[test]
    fn the_block_size_barely_changes_the_long_run_statistics_of_a_changing_condition() {
        let mut scenario = Scenario::from_toml_str(MINIMAL).unwrap();
        scenario.assets[0].phases = vec![phase(0.0, outer_race(0.0)), phase(20.0, outer_race(0.8))];
        let mut level = |block_size: usize| {
            scenario.block_size = block_size;
            let mut sim = AssetSim::new(&scenario, 0).unwrap();
            let mut block = vec![0.0f32; sim.block_len()];
            let mut sum = 0.0;
            let mut count = 0;
            while sim.next_block_start_s() < 20.0 {
                sim.next_vibration(&mut block);
                sum += block.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
                count += block.len();
            }
            (sum / count as f64).sqrt()
        };
        let (small, large) = (level(128), level(2048));
        let difference = (small / large - 1.0).abs();
        eprintln!("RMS with 128-sample blocks {small:.4} g, 2048 {large:.4} g");
        assert!(difference < 0.02, "differ by {:.1} %", difference * 100.0);
    }

    #[test]
    fn a_block_starts_where_the_previous_one_ended() {
        let scenario = Scenario::builtin("healthy").unwrap();
        let mut sim = AssetSim::new(&scenario, 0).unwrap();
        let mut block = vec![0.0f32; sim.block_len()];
        let first = sim.next_vibration(&mut block);
        let second = sim.next_vibration(&mut block);
        assert_eq!(first.t_start_s, 0.0);
        assert!((second.t_start_s - scenario.block_duration_s()).abs() < 1e-12);
        assert_eq!(second.samples_per_axis, scenario.block_size);
    }
}
