//! Machine-health features from one vibration window, plus a temperature trend.
//!
//! Pure code: no I/O, no clock. [`FeatureExtractor::new`] plans the FFTs and allocates every
//! buffer once for a window length and sample rate; [`FeatureExtractor::extract`] then turns
//! one window of acceleration (one axis, in g) and the machine's speed into a [`Features`]
//! record without allocating. [`TemperatureTrend`] turns timestamped readings (time passed in)
//! into a level and a rate of rise, which the caller copies into the record. [`eval`] runs the
//! extractor over recordings on disk to check the envelope detector against labelled data.
//!
//! # What is computed, and in which units
//!
//! Every spectral quantity but the envelope comes from one Hann-windowed real FFT of the window
//! with its mean removed (the mean — gravity, sensor offset — is excluded from every feature).
//!
//! - **Time domain** (acceleration about its mean): RMS and peak in g, crest factor
//!   (peak / RMS), Pearson kurtosis (3 for Gaussian, 1.5 for a sine) and skewness.
//! - **Velocity RMS**, mm/s, over [`FeatureConfig::velocity_band_hz`]: each bin's acceleration
//!   is integrated in the frequency domain, `V = A · 9.80665 · 1000 / (2πf)`, and the
//!   mean-square is summed over the band with Parseval's theorem corrected for the window's
//!   power (`2 |X_k|² / (N Σw²)` per one-sided bin). Mapped to a [`SeverityZone`] by
//!   [`ZoneLimits`].
//! - **Shaft orders** 0.5x, 1x, 2x, 3x, g peak: the largest bin within ± the speed tolerance
//!   (at least ± one bin) of `k · shaft_hz`, amplitude-corrected for the window
//!   (`2 |X_k| / Σw`) and for scalloping by the Hann two-bin interpolation, so a tone between
//!   bins reads its true amplitude.
//! - **Band RMS**, g, in the bands of [`FeatureConfig::band_edges_hz`] (Parseval as above).
//! - **Envelope spectrum** (bearing faults): the window (mean removed, 5 % cosine taper at each
//!   end against the wrap-around discontinuity) is transformed, every bin outside the resonance
//!   band and every negative frequency is zeroed and the band doubled, and an inverse complex
//!   FFT gives the analytic band signal; its magnitude is the envelope. The envelope's mean is
//!   removed and its Hann-windowed spectrum taken. At BPFO, BPFI, BSF and FTF (orders ×
//!   `shaft_hz`) and twice each, the peak is the largest bin within ± the speed tolerance (at
//!   least ± one bin), and its height is reported in dB over the local background: the median
//!   envelope-spectrum magnitude in [`FeatureConfig::background_half_width_hz`] (at least 8
//!   bins) on each side of the search region, leaving a 2-bin guard for the Hann main lobe.
//!   Bins 0 and 1 (what is left of the envelope's mean) never count. At low frequencies the
//!   one-bin minimum dominates: with 1.2 Hz bins the FTF search (≈ 15 Hz) spans ± 8 %.
//!
//! # Shaft speed
//!
//! The configured speed (`MachineContext::shaft_hz`) is a nominal: drives on frequency
//! converters, belts and loaded induction motors turn at other speeds. With
//! [`FeatureConfig::speed_search_ratio`] above 0 (default 0.1), each window's Hann spectrum
//! is searched for the shaft's harmonic series (1x to at most 8x, below 0.4 · fs) within ±
//! that fraction of the configured rate, by [`SpeedEstimator`]: a coarse harmonic sum over
//! candidate rates, each harmonic's height over its local median in dB, floored at 6 dB,
//! capped at 30 dB and weighted `1/k` (so one strong foreign line cannot win, and a half-rate,
//! whose evidence lies only at the true rate's harmonics at half the weight, scores half);
//! then a weighted least-squares fit of the harmonics located to a fraction of a bin by Hann
//! interpolation. A series that stands out (prominence at least 8, see the [`speed`] module)
//! gives the window's shaft rate; the shaft orders and the envelope's bearing frequencies
//! (whose ± `speed_tolerance_ratio` search regions are then centred on the right lines) use
//! it. Otherwise — nothing stands out at 1x–3x, the series lies outside the range, or the
//! search is off — the configured rate is used. [`Features::shaft_hz`] says which rate was
//! used and [`Features::speed_estimated`] whether it was found in the spectrum. The model's
//! inputs carry no absolute frequency and are unchanged.
//!
//! The range is bounded (at most ±30 %) so it never holds a rate and its double. A speed
//! changing within the window is found as about its mean over the window. On simulated
//! machines ramping 1200 → 1800 rpm the per-window rate is within 1 % of the true one
//! (`lab/tests/speed_ramp.rs`); on recordings, `lab speed` reports the agreement with the
//! index's speed.
//!
//! # Automatic envelope band
//!
//! With [`FeatureConfig::envelope_band_hz`] unset the band is chosen per window, as a light
//! kurtogram. Let `f_max` be the highest fault fundamental (`max(BPFO, BPFI, BSF, FTF)`, Hz),
//! `f_high = 2 · f_max · (1 + tolerance)` the highest frequency searched and `top = 0.45 · fs`.
//! A band is eligible when
//!
//! - its lower edge is at least `max(1 kHz, 10 · f_max)`, above the shaft harmonics and
//!   their modulation products, and
//! - its width is at least `2 · f_high`, so the modulation at every searched frequency keeps
//!   both of its sidebands inside the band.
//!
//! The candidates are 1/1-octave bands stepped by half an octave and 1/3-octave bands stepped
//! by a sixth of an octave, all ending at or below `top` and starting at or above 1 kHz, plus
//! the wide band from the lowest eligible edge to `top` (from `min(max(1 kHz, 10 · f_max),
//! top / 2)` when no narrower band is eligible, so there is always one). The winner is the
//! eligible band whose analytic signal `a` has the largest spectral kurtosis
//! `E|a|⁴ / (E|a|²)² − 2` (0 for Gaussian noise, large for sparse impacts), measured away
//! from the tapered ends. Repetitive impacts ringing a resonance make its band the most
//! impulsive one; ties go to the earlier candidate. The rule is scale-free, so it works the
//! same at 12, 20, 25.6 or 48.8 kHz.
//!
//! Why no finer bands: the kurtosis estimate's spread under Gaussian noise is about
//! `2 / √(B · T)` for a band `B` Hz wide over `T` s, so narrow bands win on chance alone. Adding
//! 1/6-octave candidates, or halving the minimum width, made weak synthetic defects *less*
//! detectable, and normalising by that spread gained nothing on the real recordings.
//!
//! # Allocation and cost
//!
//! `extract` reuses the buffers made by `new` and allocates nothing. Its cost is two real FFTs
//! of the window, one inverse complex FFT for the chosen band, one real FFT of the envelope,
//! and for the automatic band one short inverse FFT per eligible candidate: only the band's
//! bins, shifted to baseband and 4× oversampled, which leaves the envelope's shape (and so its
//! kurtosis) unchanged at a fraction of the cost. About 0.2–0.3 ms per 4096-sample window and
//! 1–1.2 ms per 16384 on one desktop core (release build).

mod config;
mod extractor;
mod hann;
mod lines;
mod model_inputs;
pub mod speed;

/// Deterministic test signals (tones, noise, bearing impacts), for tests only.
#[cfg(any(test, feature = "test-support"))]
pub mod test_signals;

use crate::assemble::temperature::TemperatureTrend;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use config::{
    BAND_COUNT, ConfigError, FeatureConfig, ZoneLimits, default_background_half_width_hz,
    default_band_edges_hz, default_speed_search_ratio, default_speed_tolerance_ratio,
    default_velocity_band_hz,
};
pub use extractor::{FeatureExtractor, MIN_WINDOW_LEN};
pub use lines::{CHANCE_DB, FamilyEvidence, LINE_DB, LineFamilies, SIDEBAND_WEIGHT};
pub use model_inputs::{FEATURE_NAMES, MODEL_INPUT_LEN};

/// Version of the feature code: raised whenever a feature's computation or meaning changes,
/// so records (`lineage.feature_version`) and training sets built from them say which
/// features they hold, and rows of different versions are never mixed in one training set.
pub const FEATURE_CODE_VERSION: u32 = 1;
pub use speed::{SpeedEstimate, SpeedEstimator};

/// Why a window could not be turned into features.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FeatureError {
    /// The configuration or the extractor's dimensions are invalid (from
    /// [`FeatureExtractor::new`]). Not recoverable: fix the configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The window is not the length the extractor was built for. Recoverable: skip the window.
    #[error("window has {got} samples, the extractor was built for {expected}")]
    WindowLength {
        /// The length given to [`FeatureExtractor::new`].
        expected: usize,
        /// The length passed to [`FeatureExtractor::extract`].
        got: usize,
    },
    /// A sample is NaN or infinite. Recoverable: skip the window.
    #[error("sample {index} of the window is not finite")]
    NotFinite {
        /// Index of the first offending sample.
        index: usize,
    },
    /// The machine context is unusable (speed or an order not positive and finite).
    /// Recoverable: skip the window until the speed is known.
    #[error("machine context: {field}: {reason}")]
    Context {
        /// `shaft_hz` or `orders.<name>`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Bearing characteristic frequencies as multiples of shaft speed (orders).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultOrders {
    /// Ball pass frequency, outer race.
    pub bpfo: f64,
    /// Ball pass frequency, inner race.
    pub bpfi: f64,
    /// Ball (element) spin frequency; a spalled element impacts at twice this.
    pub bsf: f64,
    /// Fundamental train (cage) frequency.
    pub ftf: f64,
}

/// What the extractor needs to know about the machine for one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineContext {
    /// Shaft rotation frequency, Hz (rpm / 60).
    pub shaft_hz: f64,
    /// The monitored bearing's characteristic orders.
    pub orders: FaultOrders,
}

impl MachineContext {
    /// Checks the speed and every order are positive and finite.
    pub fn validate(&self) -> Result<(), FeatureError> {
        let context = |field, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(FeatureError::Context {
                    field,
                    reason: format!("{value} must be > 0"),
                })
            }
        };
        context("shaft_hz", self.shaft_hz)?;
        context("orders.bpfo", self.orders.bpfo)?;
        context("orders.bpfi", self.orders.bpfi)?;
        context("orders.bsf", self.orders.bsf)?;
        context("orders.ftf", self.orders.ftf)
    }
}

/// Velocity severity zone (ISO 10816/20816 style), from [`ZoneLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SeverityZone {
    /// Newly commissioned machines.
    A,
    /// Acceptable for unrestricted long-term operation.
    B,
    /// Unsatisfactory for long-term operation; plan maintenance.
    C,
    /// Severe enough to cause damage.
    D,
}

impl std::fmt::Display for SeverityZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
            Self::D => "D",
        })
    }
}

/// Envelope-spectrum (demodulated resonance band) measures for the bearing fault frequencies.
///
/// Every `*_db` is the peak height in dB over the local median background (see the module
/// docs). Without a line, a single window reads about 3 dB (median) and up to about 10 dB by
/// chance (the largest of a few bins over their median); healthy real machines read 3–6 dB
/// with occasional windows to 13 dB; clear defects read 15–35 dB. Judge a line over several
/// windows, not one. A frequency above the envelope spectrum's range reads 0 dB, and its `*_hz`
/// reads 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopePeaks {
    /// The resonance band demodulated, `[low, high]` in Hz (configured or chosen).
    pub band_hz: [f64; 2],
    /// Spectral kurtosis of that band, `E|a|⁴ / (E|a|²)² − 2` of its analytic signal `a`:
    /// dimensionless, 0 for Gaussian noise, large for impacts.
    pub band_kurtosis: f64,
    /// At BPFO (outer race), dB over background.
    pub bpfo_db: f64,
    /// At 2 × BPFO, dB over background.
    pub bpfo_2x_db: f64,
    /// At BPFI (inner race), dB over background.
    pub bpfi_db: f64,
    /// At 2 × BPFI, dB over background.
    pub bpfi_2x_db: f64,
    /// At BSF (ball spin), dB over background.
    pub bsf_db: f64,
    /// At 2 × BSF (a spalled ball strikes both races once per spin), dB over background.
    pub bsf_2x_db: f64,
    /// At FTF (cage), dB over background.
    pub ftf_db: f64,
    /// At 2 × FTF, dB over background.
    pub ftf_2x_db: f64,
    /// Where the BPFO peak was found, Hz (interpolated between bins).
    pub bpfo_hz: f64,
    /// Where the BPFI peak was found, Hz.
    pub bpfi_hz: f64,
    /// Where the BSF peak was found, Hz.
    pub bsf_hz: f64,
    /// Where the 2 × BSF peak was found, Hz (the rolling-element defect line).
    pub bsf_2x_hz: f64,
    /// Where the FTF peak was found, Hz.
    pub ftf_hz: f64,
    /// The outer-race, inner-race and rolling-element line families (harmonics and
    /// sidebands), scored ([`LineFamilies`]); absent in records written before they existed.
    #[serde(default)]
    pub families: LineFamilies,
}

impl EnvelopePeaks {
    /// The highest of the bearing lines BPFO, BPFI, BSF, 2×BSF and FTF as
    /// `(name, frequency found in Hz, dB over background)`; the first listed wins a tie.
    pub fn strongest(&self) -> (&'static str, f64, f64) {
        let lines = [
            ("BPFO", self.bpfo_hz, self.bpfo_db),
            ("BPFI", self.bpfi_hz, self.bpfi_db),
            ("BSF", self.bsf_hz, self.bsf_db),
            ("2xBSF", self.bsf_2x_hz, self.bsf_2x_db),
            ("FTF", self.ftf_hz, self.ftf_db),
        ];
        lines.into_iter().fold(
            lines[0],
            |best, line| if line.2 > best.2 { line } else { best },
        )
    }
}

/// Everything extracted from one window, with units in the field names.
///
/// Every number is finite. A constant window (no variation) reads 0 for RMS, peak, crest
/// factor, kurtosis and skewness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    /// RMS acceleration about the mean, g.
    pub rms_g: f64,
    /// Largest absolute deviation from the mean, g.
    pub peak_g: f64,
    /// `peak_g / rms_g` (√2 for a sine).
    pub crest_factor: f64,
    /// Pearson kurtosis `m4 / m2²` (3 for Gaussian noise, 1.5 for a sine).
    pub kurtosis: f64,
    /// Skewness `m3 / m2^1.5` (0 for a symmetric distribution).
    pub skewness: f64,
    /// Velocity RMS over [`FeatureConfig::velocity_band_hz`], mm/s.
    pub velocity_rms_mm_s: f64,
    /// Severity zone of `velocity_rms_mm_s`.
    pub zone: SeverityZone,
    /// The shaft rotation frequency this window was analysed at, Hz: the one found in its
    /// spectrum when `speed_estimated`, otherwise the configured one. The shaft orders and
    /// the envelope's bearing frequencies are multiples of it.
    pub shaft_hz: f64,
    /// Whether `shaft_hz` was found in the spectrum ([`FeatureConfig::speed_search_ratio`])
    /// rather than taken from the configuration.
    pub speed_estimated: bool,
    /// Acceleration at 0.5 × shaft speed, g peak.
    pub order_0_5x_g: f64,
    /// Acceleration at 1 × shaft speed, g peak.
    pub order_1x_g: f64,
    /// Acceleration at 2 × shaft speed, g peak.
    pub order_2x_g: f64,
    /// Acceleration at 3 × shaft speed, g peak.
    pub order_3x_g: f64,
    /// RMS acceleration in each band of [`FeatureConfig::band_edges_hz`], g (0 for a band
    /// above Nyquist).
    pub band_rms_g: [f64; BAND_COUNT],
    /// Envelope-spectrum bearing measures.
    pub envelope: EnvelopePeaks,
    /// Temperature, °C, from [`TemperatureTrend::level`]; filled by the caller.
    pub temperature_c: Option<f64>,
    /// Rate of temperature rise, °C/min, from [`TemperatureTrend::rate_c_per_min`]; filled by
    /// the caller.
    pub temperature_rise_c_per_min: Option<f64>,
}

impl Features {
    /// Copies the trend's level and rate into the temperature fields.
    pub fn set_temperature(&mut self, trend: &TemperatureTrend) {
        self.temperature_c = trend.level();
        self.temperature_rise_c_per_min = trend.rate_c_per_min();
    }

    /// [`EnvelopePeaks::strongest`] of this window.
    pub fn strongest_bearing_peak(&self) -> (&'static str, f64, f64) {
        self.envelope.strongest()
    }
}
