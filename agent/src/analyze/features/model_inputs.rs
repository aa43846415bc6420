//! The classifier's input vector: [`Features`] normalised so one model can serve machines of
//! other sizes, speeds and sensor sensitivities than those it was trained on.
//!
//! The rule is that no input carries an absolute frequency, and absolute levels appear only as
//! logarithms (so a gain change is an offset, not a scale). Everything else is a ratio: shaft
//! orders relative to overall RMS, envelope peaks over their own background, band energies as
//! fractions of the total. The order of [`FEATURE_NAMES`] is part of the model's interface:
//! append, never reorder.

use super::{BAND_COUNT, Features};

// The vector below lists the energy bands one by one.
const _: () = assert!(BAND_COUNT == 4);

/// Length of [`Features::model_inputs`].
pub const MODEL_INPUT_LEN: usize = 23;

/// Levels below this are clamped before taking logarithms (g, mm/s): a silent window reads
/// −6, not −∞.
const LOG_FLOOR: f64 = 1e-6;

/// Names of the entries of [`Features::model_inputs`], in order.
///
/// | name | definition |
/// |---|---|
/// | `log10_rms_g` | log10 of RMS acceleration, g |
/// | `crest_factor` | peak / RMS |
/// | `log10_kurtosis` | log10 of Pearson kurtosis (0.48 for Gaussian) |
/// | `skewness` | skewness |
/// | `log10_velocity_rms_mm_s` | log10 of velocity RMS, mm/s |
/// | `order_{0_5x,1x,2x,3x}_db_re_rms` | 20·log10(order amplitude / (√2 · RMS)); 0 dB when the window is that one sine |
/// | `env_{bpfo,bpfi,bsf,ftf}[_2x]_db` | envelope peak, dB over local background |
/// | `env_band_kurtosis` | spectral kurtosis of the demodulated band |
/// | `band_{0..3}_energy_ratio` | band mean-square / sum over all bands (0 when silent) |
/// | `temperature_rise_c_per_min` | °C/min, 0 when unknown |
pub const FEATURE_NAMES: [&str; MODEL_INPUT_LEN] = [
    "log10_rms_g",
    "crest_factor",
    "log10_kurtosis",
    "skewness",
    "log10_velocity_rms_mm_s",
    "order_0_5x_db_re_rms",
    "order_1x_db_re_rms",
    "order_2x_db_re_rms",
    "order_3x_db_re_rms",
    "env_bpfo_db",
    "env_bpfo_2x_db",
    "env_bpfi_db",
    "env_bpfi_2x_db",
    "env_bsf_db",
    "env_bsf_2x_db",
    "env_ftf_db",
    "env_ftf_2x_db",
    "env_band_kurtosis",
    "band_0_energy_ratio",
    "band_1_energy_ratio",
    "band_2_energy_ratio",
    "band_3_energy_ratio",
    "temperature_rise_c_per_min",
];

impl Features {
    /// The normalised model input vector, in the order of [`FEATURE_NAMES`]. Every entry is
    /// finite.
    pub fn model_inputs(&self) -> [f32; MODEL_INPUT_LEN] {
        let log10 = |x: f64| x.max(LOG_FLOOR).log10();
        // An order's amplitude over the amplitude of a sine carrying the whole RMS.
        let sine_amplitude_g = (self.rms_g * std::f64::consts::SQRT_2).max(LOG_FLOOR);
        let order_db =
            |amplitude_g: f64| 20.0 * (amplitude_g.max(LOG_FLOOR) / sine_amplitude_g).log10();
        let total_power: f64 = self.band_rms_g.iter().map(|r| r * r).sum();
        let ratio = |rms: f64| {
            if total_power > 0.0 {
                rms * rms / total_power
            } else {
                0.0
            }
        };
        let e = &self.envelope;
        let inputs = [
            log10(self.rms_g),
            self.crest_factor,
            log10(self.kurtosis),
            self.skewness,
            log10(self.velocity_rms_mm_s),
            order_db(self.order_0_5x_g),
            order_db(self.order_1x_g),
            order_db(self.order_2x_g),
            order_db(self.order_3x_g),
            e.bpfo_db,
            e.bpfo_2x_db,
            e.bpfi_db,
            e.bpfi_2x_db,
            e.bsf_db,
            e.bsf_2x_db,
            e.ftf_db,
            e.ftf_2x_db,
            e.band_kurtosis,
            ratio(self.band_rms_g[0]),
            ratio(self.band_rms_g[1]),
            ratio(self.band_rms_g[2]),
            ratio(self.band_rms_g[3]),
            self.temperature_rise_c_per_min.unwrap_or(0.0),
        ];
        inputs.map(|x| x as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_signals::{Impacts, mix, noise, tone};
    use super::super::{FaultOrders, FeatureConfig, FeatureExtractor, MachineContext};
    use super::*;

    const FS: f64 = 20_000.0;
    const N: usize = 16_384;

    fn inputs(samples: &[f32]) -> [f32; MODEL_INPUT_LEN] {
        let ctx = MachineContext {
            shaft_hz: 25.0,
            orders: FaultOrders {
                bpfo: 3.58,
                bpfi: 5.42,
                bsf: 2.36,
                ftf: 0.398,
            },
        };
        FeatureExtractor::new(N, FS, &FeatureConfig::default())
            .unwrap()
            .extract(samples, &ctx)
            .unwrap()
            .model_inputs()
    }

    fn machine_signal(gain: f64) -> Vec<f32> {
        let impacts = Impacts {
            rate_hz: 89.5,
            jitter: 0.01,
            resonance_hz: 4200.0,
            damping: 0.04,
            amplitude_g: 0.8 * gain,
        };
        mix(&[
            &tone(N, FS, 25.0, 0.2 * gain, 0.0),
            &tone(N, FS, 50.0, 0.05 * gain, 1.0),
            &impacts.render(N, FS, 3),
            &noise(N, 0.1 * gain, 4),
        ])
    }

    #[test]
    fn feature_names_are_unique_and_snake_case() {
        let mut names = FEATURE_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MODEL_INPUT_LEN);
        for name in FEATURE_NAMES {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
    }

    #[test]
    fn a_sensor_gain_change_moves_only_the_logarithmic_levels() {
        let (one, ten) = (inputs(&machine_signal(1.0)), inputs(&machine_signal(10.0)));
        for (i, name) in FEATURE_NAMES.iter().enumerate() {
            let expected_shift = if name.starts_with("log10_") && *name != "log10_kurtosis" {
                1.0
            } else {
                0.0
            };
            let shift = ten[i] - one[i];
            assert!(
                (shift - expected_shift).abs() < 1e-3,
                "{name}: {} -> {} (shift {shift}, want {expected_shift})",
                one[i],
                ten[i]
            );
        }
    }

    #[test]
    fn a_window_that_is_one_shaft_sine_has_its_1x_order_at_0_db_re_rms() {
        let x = inputs(&mix(&[&tone(N, FS, 25.0, 0.3, 0.4)]));
        let at = |name: &str| x[FEATURE_NAMES.iter().position(|n| *n == name).unwrap()];
        assert!(
            at("order_1x_db_re_rms").abs() < 0.1,
            "{}",
            at("order_1x_db_re_rms")
        );
        assert!(
            at("order_2x_db_re_rms") < -60.0,
            "{}",
            at("order_2x_db_re_rms")
        );
        assert!((at("band_0_energy_ratio") - 1.0).abs() < 1e-3);
        assert_eq!(at("temperature_rise_c_per_min"), 0.0);
    }
}
