//! Feature-extraction settings: bands, tolerances, severity limits and the temperature trend.
//!
//! Every field carries its unit in its name and has a documented default (a `const fn` here),
//! so a config file only needs the settings it changes. [`FeatureConfig::validate`] checks what
//! can be checked without a sample rate; [`FeatureConfig::validate_at`] adds the limits a
//! sample rate imposes (bands below Nyquist). Errors name the offending field with its path
//! relative to [`FeatureConfig`], e.g. `velocity_band_hz: low 1000 >= high 10`.

use crate::assemble::temperature::TemperatureTrendConfig;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::SeverityZone;

/// Number of edges in [`FeatureConfig::band_edges_hz`], and so the number of energy bands: band
/// `i` runs from edge `i` to edge `i + 1`, and the last from the last edge to Nyquist.
pub const BAND_COUNT: usize = 4;

/// An invalid setting; `field` names it (e.g. `zone_limits.bc_mm_s`).
///
/// Not recoverable by retrying: the configuration has to be fixed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// A setting is out of range or inconsistent with another.
    #[error("{field}: {reason}")]
    Invalid {
        /// The setting, relative to [`FeatureConfig`], or `sample_rate_hz` / `window_len` for
        /// the extractor's constructor arguments.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Settings for [`FeatureExtractor`](super::FeatureExtractor) and
/// [`TemperatureTrend`](super::TemperatureTrend).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureConfig {
    /// Band over which velocity RMS is integrated, `[low, high]` in Hz. Default
    /// [`default_velocity_band_hz`]: 10–1000 Hz, the ISO 10816/20816 broadband range for
    /// machines running above 600 rpm.
    pub velocity_band_hz: [f64; 2],
    /// Resonance band demodulated for the envelope spectrum, `[low, high]` in Hz. `None`
    /// (the default) selects it per window: see the module docs of
    /// [`features`](super) for the rule.
    pub envelope_band_hz: Option<[f64; 2]>,
    /// How far the true speed may be from the given shaft speed, as a fraction (0.02 = ±2 %).
    /// Shaft orders and bearing fault frequencies are searched within ± this fraction of their
    /// nominal frequency (but never narrower than ± one spectral bin). Default
    /// [`default_speed_tolerance_ratio`].
    pub speed_tolerance_ratio: f64,
    /// Half-width of the range searched for the true shaft speed around the configured one, as
    /// a fraction (0.1 = ±10 %); 0 disables the search. When the spectrum shows the shaft's
    /// harmonic series in that range (see [`features`](super), "Shaft speed"), the speed found
    /// replaces the configured one for the shaft orders and the bearing frequencies of that
    /// window. At most 0.3, so the range never holds both a speed and its double. Default
    /// [`default_speed_search_ratio`].
    pub speed_search_ratio: f64,
    /// Half-width in Hz of the local background on each side of an envelope search region;
    /// widened to at least 8 bins. Default [`default_background_half_width_hz`].
    pub background_half_width_hz: f64,
    /// Lower edges of the energy bands in Hz, strictly increasing; the last band runs to
    /// Nyquist. Default [`default_band_edges_hz`]: 10, 1000, 3000, 6000 Hz.
    pub band_edges_hz: [f64; BAND_COUNT],
    /// Velocity severity zone limits. Default [`ZoneLimits::DEFAULT`].
    pub zone_limits: ZoneLimits,
    /// Temperature trend settings. Default [`TemperatureTrendConfig::default`].
    pub temperature: TemperatureTrendConfig,
}

/// Default [`FeatureConfig::velocity_band_hz`]: 10–1000 Hz.
pub const fn default_velocity_band_hz() -> [f64; 2] {
    [10.0, 1000.0]
}

/// Default [`FeatureConfig::speed_tolerance_ratio`]: 0.02 (±2 %), enough for induction-motor
/// slip between no load and full load when the nominal speed is given.
pub const fn default_speed_tolerance_ratio() -> f64 {
    0.02
}

/// Default [`FeatureConfig::speed_search_ratio`]: 0.1 (±10 %), the speed range of most drives on
/// a frequency converter run near their nominal, and well beyond induction-motor slip.
pub const fn default_speed_search_ratio() -> f64 {
    0.1
}

/// Default [`FeatureConfig::background_half_width_hz`]: 20 Hz, a dozen or more bins at the
/// usual ≈ 1 Hz envelope resolution, narrow enough to stay local.
pub const fn default_background_half_width_hz() -> f64 {
    20.0
}

/// Default [`FeatureConfig::band_edges_hz`]: 10, 1000, 3000, 6000 Hz, i.e. bands 10–1000 Hz
/// (shaft-related), 1–3 kHz, 3–6 kHz and 6 kHz–Nyquist (bearing and gear resonances). At a
/// 12 kHz sample rate the last band is empty.
pub const fn default_band_edges_hz() -> [f64; BAND_COUNT] {
    [10.0, 1000.0, 3000.0, 6000.0]
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            velocity_band_hz: default_velocity_band_hz(),
            envelope_band_hz: None,
            speed_tolerance_ratio: default_speed_tolerance_ratio(),
            speed_search_ratio: default_speed_search_ratio(),
            background_half_width_hz: default_background_half_width_hz(),
            band_edges_hz: default_band_edges_hz(),
            zone_limits: ZoneLimits::DEFAULT,
            temperature: TemperatureTrendConfig::default(),
        }
    }
}

fn check_band(field: &str, band: [f64; 2]) -> Result<(), ConfigError> {
    let [low, high] = band;
    if !(low.is_finite() && high.is_finite()) {
        return Err(invalid(field, "must be finite"));
    }
    if low <= 0.0 {
        return Err(invalid(field, format!("low {low} must be > 0")));
    }
    if low >= high {
        return Err(invalid(field, format!("low {low} >= high {high}")));
    }
    Ok(())
}

impl FeatureConfig {
    /// Checks every setting that does not depend on the sample rate.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_band("velocity_band_hz", self.velocity_band_hz)?;
        if let Some(band) = self.envelope_band_hz {
            check_band("envelope_band_hz", band)?;
        }
        let tolerance = self.speed_tolerance_ratio;
        if !(tolerance.is_finite() && tolerance > 0.0 && tolerance <= 0.2) {
            return Err(invalid(
                "speed_tolerance_ratio",
                format!("{tolerance} must be within (0, 0.2]"),
            ));
        }
        let search = self.speed_search_ratio;
        if !(search.is_finite() && (0.0..=0.3).contains(&search)) {
            return Err(invalid(
                "speed_search_ratio",
                format!("{search} must be within [0, 0.3] (0 disables the search)"),
            ));
        }
        let half_width = self.background_half_width_hz;
        if !(half_width.is_finite() && half_width > 0.0) {
            return Err(invalid(
                "background_half_width_hz",
                format!("{half_width} must be > 0"),
            ));
        }
        let edges = self.band_edges_hz;
        if edges.iter().any(|e| !e.is_finite() || *e < 0.0) {
            return Err(invalid("band_edges_hz", "edges must be finite and >= 0"));
        }
        if let Some(pair) = edges.windows(2).find(|pair| pair[0] >= pair[1]) {
            return Err(invalid(
                "band_edges_hz",
                format!("must increase strictly: {} >= {}", pair[0], pair[1]),
            ));
        }
        self.zone_limits.validate()?;
        self.temperature
            .validate()
            .map_err(|e| invalid(e.field, e.reason))
    }

    /// [`validate`](Self::validate), then the limits a sample rate imposes: the velocity band
    /// and a configured envelope band must end at or below Nyquist.
    pub fn validate_at(&self, sample_rate_hz: f64) -> Result<(), ConfigError> {
        if !(sample_rate_hz.is_finite() && sample_rate_hz > 0.0) {
            return Err(invalid(
                "sample_rate_hz",
                format!("{sample_rate_hz} must be > 0"),
            ));
        }
        self.validate()?;
        let nyquist = sample_rate_hz / 2.0;
        let bands = [
            ("velocity_band_hz", Some(self.velocity_band_hz)),
            ("envelope_band_hz", self.envelope_band_hz),
        ];
        for (field, band) in bands {
            if let Some([_, high]) = band
                && high > nyquist
            {
                return Err(invalid(
                    field,
                    format!("high {high} is above Nyquist ({nyquist} Hz)"),
                ));
            }
        }
        Ok(())
    }
}

/// Velocity severity zone boundaries in mm/s RMS (ISO 10816-1 / 20816-1 style).
///
/// The defaults (2.8 / 7.1 / 18.0 mm/s) are the example boundaries for **class IV** in
/// ISO 10816-1: large machines on soft (flexible) foundations, e.g. turbo-generator sets. They
/// are generous for small machines; for small motors up to 15 kW (class I) use 0.71 / 1.8 /
/// 4.5, for medium machines of 15–75 kW (class II) 1.12 / 2.8 / 7.1, and for large machines on
/// rigid foundations (class III) 1.8 / 4.5 / 11.2. The standard presents these as guidance,
/// not acceptance limits: set them per asset from experience where you can.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZoneLimits {
    /// Boundary between zone A (newly commissioned) and B (acceptable long-term), mm/s.
    pub ab_mm_s: f64,
    /// Boundary between zone B and C (unsatisfactory for long-term operation), mm/s.
    pub bc_mm_s: f64,
    /// Boundary between zone C and D (severe enough to cause damage), mm/s.
    pub cd_mm_s: f64,
}

impl ZoneLimits {
    /// ISO 10816-1 class IV example boundaries: 2.8, 7.1 and 18.0 mm/s.
    pub const DEFAULT: Self = Self {
        ab_mm_s: 2.8,
        bc_mm_s: 7.1,
        cd_mm_s: 18.0,
    };

    /// Checks the limits are finite, positive and increasing.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limits = [
            ("zone_limits.ab_mm_s", self.ab_mm_s),
            ("zone_limits.bc_mm_s", self.bc_mm_s),
            ("zone_limits.cd_mm_s", self.cd_mm_s),
        ];
        for (field, value) in limits {
            if !(value.is_finite() && value > 0.0) {
                return Err(invalid(field, format!("{value} must be > 0")));
            }
        }
        for pair in limits.windows(2) {
            let ((_, lower), (field, upper)) = (pair[0], pair[1]);
            if upper <= lower {
                return Err(invalid(
                    field,
                    format!("{upper} must be above the previous limit {lower}"),
                ));
            }
        }
        Ok(())
    }

    /// The zone of a velocity RMS in mm/s. A value exactly on a boundary belongs to the upper
    /// zone (`ab_mm_s` itself is zone B). NaN maps to zone D, so a broken input is never
    /// reported as healthy.
    pub fn zone(&self, velocity_rms_mm_s: f64) -> SeverityZone {
        if velocity_rms_mm_s < self.ab_mm_s {
            SeverityZone::A
        } else if velocity_rms_mm_s < self.bc_mm_s {
            SeverityZone::B
        } else if velocity_rms_mm_s < self.cd_mm_s {
            SeverityZone::C
        } else {
            SeverityZone::D
        }
    }
}

impl Default for ZoneLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(edit: impl FnOnce(&mut FeatureConfig)) -> String {
        let mut cfg = FeatureConfig::default();
        edit(&mut cfg);
        cfg.validate_at(25_600.0).unwrap_err().to_string()
    }

    #[test]
    fn the_default_config_is_valid_at_every_supported_sample_rate() {
        for fs in [12_000.0, 20_000.0, 25_600.0, 48_800.0] {
            FeatureConfig::default().validate_at(fs).unwrap();
        }
    }

    #[test]
    fn validation_errors_name_the_field() {
        assert_eq!(
            error_of(|c| c.velocity_band_hz = [1000.0, 10.0]),
            "velocity_band_hz: low 1000 >= high 10"
        );
        assert!(
            error_of(|c| c.envelope_band_hz = Some([0.0, 10.0])).starts_with("envelope_band_hz:")
        );
        assert!(
            error_of(|c| c.envelope_band_hz = Some([2000.0, 20_000.0]))
                .starts_with("envelope_band_hz: high 20000 is above Nyquist")
        );
        assert!(error_of(|c| c.speed_tolerance_ratio = 0.0).starts_with("speed_tolerance_ratio:"));
        assert_eq!(
            error_of(|c| c.speed_search_ratio = 0.5),
            "speed_search_ratio: 0.5 must be within [0, 0.3] (0 disables the search)"
        );
        assert!(error_of(|c| c.speed_search_ratio = -0.1).starts_with("speed_search_ratio:"));
        assert!(
            error_of(|c| c.speed_search_ratio = f64::INFINITY).starts_with("speed_search_ratio:")
        );
        let disabled = FeatureConfig {
            speed_search_ratio: 0.0,
            ..FeatureConfig::default()
        };
        disabled.validate_at(25_600.0).unwrap();
        assert!(
            error_of(|c| c.background_half_width_hz = f64::NAN)
                .starts_with("background_half_width_hz:")
        );
        assert!(
            error_of(|c| c.band_edges_hz = [10.0, 3000.0, 1000.0, 6000.0])
                .starts_with("band_edges_hz: must increase strictly: 3000 >= 1000")
        );
        assert!(error_of(|c| c.zone_limits.bc_mm_s = 2.0).starts_with("zone_limits.bc_mm_s:"));
        assert!(error_of(|c| c.zone_limits.ab_mm_s = -1.0).starts_with("zone_limits.ab_mm_s:"));
        assert!(
            error_of(|c| c.temperature.min_span_s = 700.0).starts_with("temperature.min_span_s:")
        );
        assert!(error_of(|c| c.temperature.max_points = 1).starts_with("temperature.max_points:"));
    }

    #[test]
    fn zone_boundaries_belong_to_the_upper_zone() {
        let limits = ZoneLimits::DEFAULT;
        assert_eq!(limits.zone(0.0), SeverityZone::A);
        assert_eq!(limits.zone(2.79), SeverityZone::A);
        assert_eq!(limits.zone(2.8), SeverityZone::B);
        assert_eq!(limits.zone(7.09), SeverityZone::B);
        assert_eq!(limits.zone(7.1), SeverityZone::C);
        assert_eq!(limits.zone(17.99), SeverityZone::C);
        assert_eq!(limits.zone(18.0), SeverityZone::D);
        assert_eq!(limits.zone(f64::NAN), SeverityZone::D);
    }

    #[test]
    fn a_partial_config_fills_in_defaults_and_unknown_fields_are_rejected() {
        let cfg: FeatureConfig =
            serde_json::from_str(r#"{"envelope_band_hz": [2000, 4000], "zone_limits": {"ab_mm_s": 0.71, "bc_mm_s": 1.8, "cd_mm_s": 4.5}}"#)
                .unwrap();
        assert_eq!(cfg.envelope_band_hz, Some([2000.0, 4000.0]));
        assert_eq!(cfg.velocity_band_hz, default_velocity_band_hz());
        assert_eq!(cfg.zone_limits.cd_mm_s, 4.5);
        let unknown = serde_json::from_str::<FeatureConfig>(r#"{"velocity_band": [1, 2]}"#);
        assert!(unknown.unwrap_err().to_string().contains("unknown field"));
    }
}
