//! First-order thermal model of a bearing housing, as read by a temperature sensor.
//!
//! The housing is one lumped heat capacity losing heat to ambient through one thermal
//! resistance, so its temperature relaxes exponentially towards a steady state:
//!
//! ```text
//! dT/dt = (T_ss − T) / τ
//! T_ss  = ambient + load · load_rise + friction · friction_rise + overheat · overheat_rise
//! ```
//!
//! `load` (0..=1 of rated load) stands for copper and process heat, `friction` (0..=1, from
//! bearing damage, misalignment and looseness) for heat generated in the bearing, and
//! `overheat` (0..=1) for a failure of cooling or lubrication. With inputs held constant over
//! a step the update is the exact solution, `T += (T_ss − T)(1 − e^(−dt/τ))`, so one long
//! step and many short ones agree and the result does not depend on the reading interval.
//!
//! The reading adds independent Gaussian sensor noise to the true temperature; the true
//! temperature itself is noise-free.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Invalid thermal parameters; `field` names the offending setting.
///
/// Not recoverable by retrying: the configuration has to be fixed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ThermalError {
    /// A parameter is out of range.
    #[error("{field}: {reason}")]
    Invalid {
        /// The setting, relative to [`ThermalParams`].
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Thermal behaviour of one measuring point. Every field is optional in configuration files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThermalParams {
    /// Ambient temperature, °C. Default 25.
    pub ambient_c: f64,
    /// Steady-state rise above ambient at full load, °C. Default 30.
    pub load_rise_c: f64,
    /// Time constant of the housing, seconds (real motors: tens of minutes). Default 600.
    pub time_constant_s: f64,
    /// Extra steady-state rise at friction severity 1, °C. Default 20.
    pub friction_rise_c_per_severity: f64,
    /// Extra steady-state rise at overheat 1 (cooling or lubrication lost), °C. Default 40.
    pub overheat_rise_c: f64,
    /// Standard deviation of the sensor's reading noise, °C. Default 0.1.
    pub sensor_noise_c: f64,
}

impl ThermalParams {
    /// The documented defaults.
    pub const DEFAULT: Self = Self {
        ambient_c: 25.0,
        load_rise_c: 30.0,
        time_constant_s: 600.0,
        friction_rise_c_per_severity: 20.0,
        overheat_rise_c: 40.0,
        sensor_noise_c: 0.1,
    };

    /// Checks every parameter is finite and physically meaningful.
    pub fn validate(&self) -> Result<(), ThermalError> {
        let invalid = |field, reason| Err(ThermalError::Invalid { field, reason });
        if !(self.ambient_c.is_finite() && (-60.0..=100.0).contains(&self.ambient_c)) {
            return invalid("ambient_c", "must be within -60..=100");
        }
        let rises = [
            ("load_rise_c", self.load_rise_c),
            (
                "friction_rise_c_per_severity",
                self.friction_rise_c_per_severity,
            ),
            ("overheat_rise_c", self.overheat_rise_c),
        ];
        for (field, value) in rises {
            if !(0.0..=300.0).contains(&value) {
                return invalid(field, "must be within 0..=300");
            }
        }
        if !(self.time_constant_s.is_finite() && self.time_constant_s > 0.0) {
            return invalid("time_constant_s", "must be finite and > 0");
        }
        if !(0.0..=10.0).contains(&self.sensor_noise_c) {
            return invalid("sensor_noise_c", "must be within 0..=10");
        }
        Ok(())
    }

    /// Temperature the housing settles at under constant inputs, °C. Inputs are clamped into
    /// `0..=1`, NaN read as 0.
    pub fn steady_state_c(&self, load_fraction: f64, friction_severity: f64, overheat: f64) -> f64 {
        self.ambient_c
            + unit(load_fraction) * self.load_rise_c
            + unit(friction_severity) * self.friction_rise_c_per_severity
            + unit(overheat) * self.overheat_rise_c
    }
}

impl Default for ThermalParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

fn unit(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

/// A housing temperature evolving under [`ThermalParams`], read through a noisy sensor.
#[derive(Debug, Clone)]
pub struct ThermalModel {
    params: ThermalParams,
    temperature_c: f64,
    rng: ChaCha8Rng,
}

impl ThermalModel {
    /// A model starting cold, at ambient, with sensor noise reproducible from `seed`.
    pub fn new(params: &ThermalParams, seed: u64) -> Result<Self, ThermalError> {
        params.validate()?;
        Ok(Self {
            params: params.clone(),
            temperature_c: params.ambient_c,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// Jumps straight to the steady state for these inputs, as if they had been held for
    /// a long time (a machine already warm when observation starts).
    pub fn settle(&mut self, load_fraction: f64, friction_severity: f64, overheat: f64) {
        self.temperature_c = self
            .params
            .steady_state_c(load_fraction, friction_severity, overheat);
    }

    /// Advances `dt_s` seconds with the inputs held constant and returns a sensor reading, °C.
    ///
    /// A negative or NaN `dt_s` advances nothing (the reading is still a fresh noisy sample);
    /// inputs are clamped into `0..=1`.
    pub fn step(
        &mut self,
        dt_s: f64,
        load_fraction: f64,
        friction_severity: f64,
        overheat: f64,
    ) -> f64 {
        let target = self
            .params
            .steady_state_c(load_fraction, friction_severity, overheat);
        let dt_s = if dt_s > 0.0 { dt_s } else { 0.0 };
        let approach = -(-dt_s / self.params.time_constant_s).exp_m1();
        self.temperature_c += (target - self.temperature_c) * approach;
        let noise: f64 = self.rng.sample(StandardNormal);
        self.temperature_c + self.params.sensor_noise_c * noise
    }

    /// The noise-free temperature, °C.
    pub fn true_temperature_c(&self) -> f64 {
        self.temperature_c
    }

    /// The parameters this model was built with.
    pub fn params(&self) -> &ThermalParams {
        &self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(params: ThermalParams) -> ThermalModel {
        ThermalModel::new(&params, 1).unwrap()
    }

    #[test]
    fn a_cold_machine_under_load_reaches_the_steady_state_after_a_few_time_constants() {
        let params = ThermalParams::default();
        let mut thermal = model(params.clone());
        let expected = params.ambient_c + 0.8 * params.load_rise_c;
        let mut readings = Vec::new();
        for _ in 0..(10.0 * params.time_constant_s) as usize {
            readings.push(thermal.step(1.0, 0.8, 0.0, 0.0));
        }
        assert!((thermal.true_temperature_c() - expected).abs() < 0.01);
        let last: &[f64] = &readings[readings.len() - 100..];
        let mean = last.iter().sum::<f64>() / last.len() as f64;
        assert!(
            (mean - expected).abs() < 0.05,
            "mean {mean:.3}, expected {expected:.3}"
        );
        let std = (last.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / last.len() as f64).sqrt();
        assert!((std - params.sensor_noise_c).abs() < 0.03, "noise {std:.3}");
    }

    #[test]
    fn after_one_time_constant_the_rise_is_63_percent() {
        let params = ThermalParams {
            sensor_noise_c: 0.0,
            ..ThermalParams::default()
        };
        let mut thermal = model(params.clone());
        thermal.step(params.time_constant_s, 1.0, 0.0, 0.0);
        let fraction = (thermal.true_temperature_c() - params.ambient_c) / params.load_rise_c;
        assert!(
            (fraction - (1.0 - (-1.0f64).exp())).abs() < 1e-9,
            "{fraction}"
        );
    }

    #[test]
    fn one_long_step_equals_many_short_steps() {
        let mut long = model(ThermalParams::default());
        let mut short = model(ThermalParams::default());
        long.step(300.0, 0.6, 0.3, 0.2);
        for _ in 0..300 {
            short.step(1.0, 0.6, 0.3, 0.2);
        }
        assert!((long.true_temperature_c() - short.true_temperature_c()).abs() < 1e-9);
    }

    #[test]
    fn overheating_drives_the_temperature_up_by_its_rise() {
        let params = ThermalParams {
            time_constant_s: 60.0,
            ..ThermalParams::default()
        };
        let mut normal = model(params.clone());
        let mut overheating = model(params.clone());
        normal.settle(0.8, 0.0, 0.0);
        overheating.settle(0.8, 0.0, 0.0);
        for _ in 0..1200 {
            normal.step(0.5, 0.8, 0.0, 0.0);
            overheating.step(0.5, 0.8, 0.0, 1.0);
        }
        let difference = overheating.true_temperature_c() - normal.true_temperature_c();
        assert!(
            (difference - params.overheat_rise_c).abs() < 0.1,
            "{difference}"
        );
    }

    #[test]
    fn friction_from_damage_adds_heat_in_proportion_to_severity() {
        let params = ThermalParams::default();
        let half = params.steady_state_c(0.5, 0.5, 0.0) - params.steady_state_c(0.5, 0.0, 0.0);
        assert!((half - 0.5 * params.friction_rise_c_per_severity).abs() < 1e-12);
    }

    #[test]
    fn backwards_or_nan_time_does_not_move_the_temperature() {
        let mut thermal = model(ThermalParams::default());
        thermal.settle(0.5, 0.0, 0.0);
        let before = thermal.true_temperature_c();
        thermal.step(-5.0, 1.0, 1.0, 1.0);
        thermal.step(f64::NAN, 1.0, 1.0, 1.0);
        assert_eq!(thermal.true_temperature_c(), before);
    }

    #[test]
    fn the_same_seed_gives_the_same_readings() {
        let mut a = model(ThermalParams::default());
        let mut b = model(ThermalParams::default());
        for _ in 0..10 {
            assert_eq!(a.step(1.0, 0.7, 0.1, 0.0), b.step(1.0, 0.7, 0.1, 0.0));
        }
    }

    #[test]
    fn a_zero_time_constant_is_rejected_naming_the_field() {
        let params = ThermalParams {
            time_constant_s: 0.0,
            ..ThermalParams::default()
        };
        let error = ThermalModel::new(&params, 0).unwrap_err();
        assert!(error.to_string().starts_with("time_constant_s:"), "{error}");
    }
}
