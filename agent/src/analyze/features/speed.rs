//! [`SpeedEstimator`]: the shaft rate from a window's spectrum, searched near a nominal.
//!
//! Drives on frequency converters, belt drives and induction motors under changing load do not
//! turn at their nameplate speed. The estimator looks for the harmonic series of the shaft
//! (1x, 2x, … Kx) in the one-sided Hann magnitude spectrum the extractor has already computed,
//! within a search range `[lo_hz, hi_hz]` around the nominal shaft rate.
//!
//! # Method
//!
//! 1. **Harmonics.** `K = min(8, ⌊0.4 · fs / hi_hz⌋)` harmonics (at least one), so the highest
//!    one searched stays well below Nyquist.
//! 2. **Backgrounds.** For each harmonic `k`, the median magnitude of the bins from
//!    `k · lo_hz` to `k · hi_hz`, widened by at least [`BACKGROUND_BINS`] on each side (bins 0
//!    and 1 excluded). One median per harmonic, computed once per window.
//! 3. **Peaks, not bins.** A harmonic `k` of a candidate rate `f` has *evidence* only where a
//!    peak is: a local-maximum bin within a bin of `k f`, standing more than [`FLOOR_DB`] over
//!    its background (a noise bin exceeds that with probability 6 %), whose Hann-interpolated
//!    position lies within [`MATCH_TOLERANCE_BINS`] of `k f`. Its evidence is its height over
//!    the floor, capped at [`CAP_DB`] − [`FLOOR_DB`], tapered linearly to 0 at that distance.
//!    The Hann main lobe of a line a bin away, a strong shaft line just outside the range
//!    included, is no evidence.
//!    Peaks near a *foreign* line ([`SpeedEstimator::set_foreign_lines`]; the extractor declares
//!    the bearing's BPFO, BPFI, BSF and their doubles at the nominal speed, ± the speed
//!    tolerance) are never evidence: a strong BPFO at 3.05 orders would otherwise pass for the
//!    3x of a shaft turning 1.7 % faster.
//! 4. **Coarse search.** On a grid of candidates (step `df / (8K)`) across the range, the score
//!    sums the evidence weighted `1/k`, the even harmonics counting at most twice what the odd
//!    ones do: `S = S_odd + min(S_even, 2 S_odd)`. The cap keeps one strong foreign line (a gear
//!    mesh, a bearing-impact harmonic) from outweighing a consistent series; the `1/k` weights
//!    make a clear 1x count more than weak high harmonics; the odd harmonics are the octave
//!    guard. A series with evidence at even harmonics only is that of a line at twice the rate:
//!    the electrical lines of a 60 Hz supply (60, 120, 240 Hz) make such a "series" at 30 Hz,
//!    a bin from the true rate of a 1730 rpm motor. Only candidates with evidence at some odd
//!    harmonic and at 1x or 2x compete: a comb of high lines is not a shaft, and a rate `a/b`
//!    of the true one (`b` > 2) gets evidence only at multiples of `b`. The range is bounded
//!    around the nominal (the configuration allows at most ±30 %, so it never holds both a rate
//!    and its double); should it hold a half-rate, its odd harmonics fall between the true ones
//!    and it cannot compete.
//! 5. **Refinement.** The rate is the weighted least-squares fit of the winner's peaks,
//!    `p_k ≈ k f`: `f = Σ w_k k p_k / Σ w_k k²`, each peak weighted by its power over its
//!    background (capped at [`CAP_DB`]), so a higher harmonic pins the rate `k` times finer and
//!    a noisier one less. A fit outside the search range is refused (a line at its edge).
//!
//! The result carries the winner's score as `prominence_db` (dB over the floor, summed over
//! harmonics with the weights above). A lone 1x standing 20 dB over its background reads 14;
//! white noise (the best of the candidates) reads 0 in most windows, above 3.9 in 1 % and at
//! most 5.8 in 1000 (8192-point windows, ±10 % around 29.3 Hz; at most 7.1 at ±30 %);
//! [`MIN_PROMINENCE_DB`] separates the two. Below it the estimate is `None`.
//!
//! # Limits
//!
//! The resolution is set by the window: with `df`-wide bins the 1x alone is located to a small
//! fraction of `df` at a good signal-to-noise ratio, harmonics improve that `k`-fold. A speed
//! that changes within the window smears the higher harmonics; the estimate is then close to
//! the mean rate over the window. A machine whose shaft lines are buried (no peak stands
//! [`FLOOR_DB`] over its background at an odd harmonic, or none at 1x and 2x) gets `None`, and
//! the caller keeps the nominal; so does a machine showing a 2x but no odd harmonic, whose
//! series cannot be told from a line at twice the rate.
//!
//! Allocation-free: [`SpeedEstimator::new`] sizes the one scratch buffer (for the medians)
//! to the spectrum; [`SpeedEstimator::estimate`] uses it and the stack.

use super::hann::hann_interpolation;

/// Most harmonics of the shaft rate used.
pub const MAX_HARMONICS: usize = 8;
/// Harmonics searched stay at or below this fraction of the sample rate.
const HARMONIC_TOP_RATIO: f64 = 0.4;
/// Least number of bins on each side of a harmonic's search region used for its background.
pub const BACKGROUND_BINS: usize = 8;
/// Lowest bin searched or used as background (bin 0 holds what is left of the mean, bin 1
/// its Hann leakage).
const FIRST_BIN: usize = 2;
/// Height over the local median, dB, below which a peak is no evidence: a Rayleigh-distributed
/// noise bin exceeds twice its median (6 dB) with probability 6 %.
pub const FLOOR_DB: f64 = 6.0;
/// Height over the local median, dB, above which a peak counts no more.
pub const CAP_DB: f64 = 30.0;
/// Least prominence (see the module docs) of an accepted estimate.
pub const MIN_PROMINENCE_DB: f64 = 8.0;
/// How far a peak may lie from `k ×` a candidate rate and still be its harmonic, bins.
pub const MATCH_TOLERANCE_BINS: f64 = 0.5;
/// The even harmonics count at most this many times what the odd ones do.
const EVEN_OVER_ODD_MAX: f64 = 2.0;
/// Coarse-grid candidates per bin of the highest harmonic.
const GRID_STEPS_PER_BIN: f64 = 8.0;
/// Added to magnitudes before the dB ratio, so silence reads 0 dB.
const MAGNITUDE_FLOOR: f64 = 1e-300;

/// The shaft rate found in one window's spectrum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeedEstimate {
    /// The shaft rotation frequency, Hz (interpolated between bins).
    pub shaft_hz: f64,
    /// The harmonic-sum prominence of the series (see the module docs), at least
    /// [`MIN_PROMINENCE_DB`].
    pub prominence_db: f64,
    /// Harmonics whose peaks located the rate.
    pub harmonics: usize,
}

/// Estimates the shaft rate from a magnitude spectrum; see the module docs. Build one per
/// spectrum length and reuse it.
#[derive(Debug, Clone)]
pub struct SpeedEstimator {
    scratch: Vec<f64>,
    foreign: [(f64, f64); MAX_FOREIGN_LINES],
    foreign_len: usize,
}

/// Most foreign lines ([`SpeedEstimator::set_foreign_lines`]).
pub const MAX_FOREIGN_LINES: usize = 8;

/// A peak matched to a harmonic of a candidate rate.
#[derive(Debug, Clone, Copy)]
struct Match {
    /// Hann-interpolated position, bins.
    position: f64,
    /// Height over the harmonic's background, dB.
    db: f64,
    /// Evidence: dB over the floor, capped, tapered with the distance from `k f`.
    evidence: f64,
}

/// Per-window state of one search: the spectrum, its resolution and the harmonics' medians.
struct Search<'a> {
    magnitude: &'a [f64],
    df: f64,
    /// `(low, high)` Hz ranges whose peaks are not shaft evidence.
    foreign: &'a [(f64, f64)],
    harmonics: usize,
    medians: [f64; MAX_HARMONICS],
    /// Each harmonic's median raised by [`FLOOR_DB`]: a peak must exceed it.
    floors: [f64; MAX_HARMONICS],
}

/// A candidate's score, and whether it may win at all.
struct Score {
    score: f64,
    /// Evidence at 1x or 2x, and at some odd harmonic.
    eligible: bool,
}

impl Search<'_> {
    /// The peak best matching harmonic `k` (from 1) of `f_hz`, if one does.
    fn matched(&self, k: usize, f_hz: f64) -> Option<Match> {
        let mag = self.magnitude;
        let target = k as f64 * f_hz / self.df;
        let (median, floor) = (self.medians[k - 1], self.floors[k - 1]);
        let first = ((target - 1.0).floor().max(0.0) as usize).max(FIRST_BIN);
        let last = ((target + 1.0).ceil() as usize).min(mag.len().saturating_sub(2));
        let mut best: Option<Match> = None;
        for m in first..=last {
            let peak = mag[m];
            if peak <= floor || peak < mag[m - 1] || peak < mag[m + 1] {
                continue;
            }
            let (delta, _) = hann_interpolation(mag, m);
            let position = m as f64 + delta;
            let hz = position * self.df;
            if self.foreign.iter().any(|&(lo, hi)| (lo..=hi).contains(&hz)) {
                continue;
            }
            let distance = (position - target).abs();
            if distance >= MATCH_TOLERANCE_BINS {
                continue;
            }
            let db = 20.0 * ((peak + MAGNITUDE_FLOOR) / (median + MAGNITUDE_FLOOR)).log10();
            let evidence = (db.min(CAP_DB) - FLOOR_DB) * (1.0 - distance / MATCH_TOLERANCE_BINS);
            if best.is_none_or(|b| evidence > b.evidence) {
                best = Some(Match {
                    position,
                    db,
                    evidence,
                });
            }
        }
        best
    }

    fn score(&self, f_hz: f64) -> Score {
        let (mut odd, mut even, mut low) = (0.0, 0.0, 0.0);
        for k in 1..=self.harmonics {
            let Some(m) = self.matched(k, f_hz) else {
                continue;
            };
            if k % 2 == 1 {
                odd += m.evidence / k as f64;
            } else {
                even += m.evidence / k as f64;
            }
            if k <= 2 {
                low += m.evidence;
            }
        }
        Score {
            score: odd + even.min(EVEN_OVER_ODD_MAX * odd),
            eligible: low > 0.0 && odd > 0.0,
        }
    }

    /// Weighted least-squares rate `f = Σ w_k k p_k / Σ w_k k²` over the peaks matching the
    /// harmonics of `f_hz`, each weighted by its power over its background (capped);
    /// `(rate, harmonics used)`.
    fn fit(&self, f_hz: f64) -> Option<(f64, usize)> {
        let (mut num, mut den, mut used) = (0.0, 0.0, 0);
        for k in 1..=self.harmonics {
            if let Some(m) = self.matched(k, f_hz) {
                let weight = 10f64.powf(m.db.min(CAP_DB) / 10.0);
                let k = k as f64;
                num += weight * k * m.position * self.df;
                den += weight * k * k;
                used += 1;
            }
        }
        (used > 0).then(|| (num / den, used))
    }
}

impl SpeedEstimator {
    /// An estimator for one-sided spectra of `spectrum_len` bins (`window_len / 2 + 1`).
    pub fn new(spectrum_len: usize) -> Self {
        Self {
            scratch: vec![0.0; spectrum_len],
            foreign: [(0.0, 0.0); MAX_FOREIGN_LINES],
            foreign_len: 0,
        }
    }

    /// Lines that are not the shaft's, whatever they coincide with: the bearing's defect
    /// frequencies at the nominal speed. A peak within ± `half_width_ratio` (at least ± `df`)
    /// of one is no evidence for any candidate rate, so a strong BPFO (3.05 orders on a 6203)
    /// cannot pass for the 3x of a shaft turning 1.7 % faster. Replaces the previous set;
    /// at most [`MAX_FOREIGN_LINES`] are kept.
    pub fn set_foreign_lines(&mut self, lines_hz: &[f64], half_width_ratio: f64, df: f64) {
        self.foreign_len = 0;
        for &f in lines_hz.iter().take(MAX_FOREIGN_LINES) {
            let half = (half_width_ratio * f).max(df);
            self.foreign[self.foreign_len] = (f - half, f + half);
            self.foreign_len += 1;
        }
    }

    /// The shaft rate in `[lo_hz, hi_hz]` from `magnitude`, the one-sided Hann magnitude
    /// spectrum of a window (any scale) with bins `df` Hz apart; `None` when no harmonic series
    /// stands out there (see the module docs), or the range is empty or outside the spectrum.
    ///
    /// Allocates nothing, unless `magnitude` is longer than the estimator was built for.
    pub fn estimate(
        &mut self,
        magnitude: &[f64],
        df: f64,
        lo_hz: f64,
        hi_hz: f64,
    ) -> Option<SpeedEstimate> {
        let len = magnitude.len();
        if !(df > 0.0 && df.is_finite() && lo_hz > 0.0 && hi_hz > lo_hz && hi_hz.is_finite()) {
            return None;
        }
        let lo_hz = lo_hz.max(FIRST_BIN as f64 * df);
        let top_hz = HARMONIC_TOP_RATIO * 2.0 * (len.saturating_sub(1)) as f64 * df;
        if hi_hz <= lo_hz || hi_hz > top_hz {
            return None;
        }
        if self.scratch.len() < len {
            self.scratch.resize(len, 0.0);
        }
        let harmonics = ((top_hz / hi_hz).floor() as usize).clamp(1, MAX_HARMONICS);
        let mut medians = [0.0; MAX_HARMONICS];
        for (k, median) in medians.iter_mut().enumerate().take(harmonics) {
            let k = (k + 1) as f64;
            let first = ((k * lo_hz / df).floor() as usize)
                .saturating_sub(BACKGROUND_BINS)
                .max(FIRST_BIN);
            let end = ((k * hi_hz / df).ceil() as usize + BACKGROUND_BINS + 1).min(len);
            let region = &mut self.scratch[..end - first];
            region.copy_from_slice(&magnitude[first..end]);
            let middle = region.len() / 2;
            let (_, m, _) = region.select_nth_unstable_by(middle, f64::total_cmp);
            *median = *m;
        }
        let floor_ratio = 10f64.powf(FLOOR_DB / 20.0);
        let search = Search {
            magnitude,
            df,
            foreign: &self.foreign[..self.foreign_len],
            harmonics,
            medians,
            floors: medians.map(|m| (m + MAGNITUDE_FLOOR) * floor_ratio),
        };

        // Coarse grid over the range.
        let step = df / (GRID_STEPS_PER_BIN * harmonics as f64);
        let steps = ((hi_hz - lo_hz) / step).ceil().max(1.0) as usize;
        let mut best: Option<(Score, f64)> = None;
        for i in 0..=steps {
            let f = (lo_hz + i as f64 * step).min(hi_hz);
            let score = search.score(f);
            if score.eligible && best.as_ref().is_none_or(|(b, _)| score.score > b.score) {
                best = Some((score, f));
            }
        }
        let (score, f) = best?;
        if score.score < MIN_PROMINENCE_DB {
            return None;
        }
        let (shaft_hz, used) = search.fit(f)?;
        (lo_hz..=hi_hz)
            .contains(&shaft_hz)
            .then_some(SpeedEstimate {
                shaft_hz,
                prominence_db: score.score,
                harmonics: used,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_signals::{Impacts, noise, tone};
    use super::*;
    use realfft::RealFftPlanner;
    use std::f64::consts::TAU;

    const FS: f64 = 12_800.0;
    const N: usize = 8192;

    /// One-sided Hann magnitude spectrum of `signal`, as the extractor computes it.
    fn spectrum(signal: &[f64]) -> Vec<f64> {
        let n = signal.len();
        let mean = signal.iter().sum::<f64>() / n as f64;
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        let mut input: Vec<f64> = signal
            .iter()
            .enumerate()
            .map(|(i, x)| (x - mean) * (0.5 - 0.5 * (TAU * i as f64 / n as f64).cos()))
            .collect();
        let mut output = fft.make_output_vec();
        fft.process(&mut input, &mut output).unwrap();
        output.iter().map(|c| c.norm()).collect()
    }

    fn sum(parts: &[Vec<f64>]) -> Vec<f64> {
        (0..parts[0].len())
            .map(|i| parts.iter().map(|p| p[i]).sum())
            .collect()
    }

    /// A shaft at `shaft_hz` with harmonics of the given amplitudes (g), in white noise.
    fn shaft(shaft_hz: f64, amplitudes: &[f64], noise_g: f64, seed: u64) -> Vec<f64> {
        let mut parts: Vec<Vec<f64>> = amplitudes
            .iter()
            .enumerate()
            .map(|(i, &a)| tone(N, FS, (i + 1) as f64 * shaft_hz, a, 0.7 * i as f64 + 0.3))
            .collect();
        parts.push(noise(N, noise_g, seed));
        sum(&parts)
    }

    fn estimate(signal: &[f64], nominal_hz: f64, ratio: f64) -> Option<SpeedEstimate> {
        let magnitude = spectrum(signal);
        SpeedEstimator::new(magnitude.len()).estimate(
            &magnitude,
            FS / signal.len() as f64,
            nominal_hz * (1.0 - ratio),
            nominal_hz * (1.0 + ratio),
        )
    }

    fn assert_within(what: &str, got: Option<SpeedEstimate>, want_hz: f64, relative: f64) {
        let got = got.unwrap_or_else(|| panic!("{what}: no estimate, want {want_hz} Hz"));
        assert!(
            (got.shaft_hz - want_hz).abs() <= relative * want_hz,
            "{what}: {got:?}, want {want_hz} Hz ± {:.2} %",
            relative * 100.0
        );
    }

    #[test]
    fn tones_at_off_nominal_speeds_in_noise_are_found_to_a_fraction_of_a_bin() {
        // Bins are 1.56 Hz wide; 0.2 % of 25–30 Hz is under a tenth of a bin.
        let nominal = 24.7;
        for (i, true_hz) in [22.5, 23.91, 24.7, 25.33, 26.8].into_iter().enumerate() {
            let signal = shaft(true_hz, &[0.05, 0.02, 0.01], 0.05, 40 + i as u64);
            let e = estimate(&signal, nominal, 0.1);
            assert_within(&format!("{true_hz} Hz"), e, true_hz, 0.002);
            assert!(e.unwrap().harmonics >= 2, "{e:?}");
        }
    }

    #[test]
    fn a_weak_1x_with_a_strong_2x_still_gives_the_shaft_rate() {
        let true_hz = 29.87;
        let signal = shaft(true_hz, &[0.004, 0.08, 0.006], 0.05, 7);
        let e = estimate(&signal, 29.3, 0.1);
        assert_within("weak 1x", e, true_hz, 0.002);
        // With no 1x or 3x at all, a 2x alone cannot be told from a line at twice the rate:
        // no estimate.
        let signal = shaft(true_hz, &[0.0, 0.08], 0.05, 8);
        let e = estimate(&signal, 29.3, 0.1);
        assert!(e.is_none(), "{e:?}");
    }

    #[test]
    fn a_half_rate_whose_evidence_lies_at_even_harmonics_only_does_not_win() {
        // A range (wider than the configuration allows) holding 30.6 Hz and its half: the
        // half-rate's 2x, 4x, 6x and 8x fall on the true 1x..4x, its odd harmonics between.
        let true_hz = 30.6;
        let signal = shaft(true_hz, &[0.05, 0.03, 0.02, 0.01], 0.05, 9);
        let magnitude = spectrum(&signal);
        let df = FS / N as f64;
        let mut estimator = SpeedEstimator::new(magnitude.len());
        let both = estimator.estimate(&magnitude, df, 14.0, 32.0);
        assert_within("rate and half in range", both, true_hz, 0.002);
        // Searched around the half alone, the half-rate is no series.
        let half = estimator.estimate(&magnitude, df, 14.0, 17.0);
        assert!(half.is_none(), "{half:?}");
        // A weak 1x and a strong 2x: still the rate, not its half.
        let signal = shaft(true_hz, &[0.004, 0.08, 0.0, 0.02], 0.05, 10);
        let magnitude = spectrum(&signal);
        let e = estimator.estimate(&magnitude, df, 14.0, 32.0);
        assert_within("weak 1x, rate and half in range", e, true_hz, 0.002);
    }

    #[test]
    fn a_strong_bearing_impact_train_is_not_taken_as_the_shaft() {
        // Outer-race impacts at 107 Hz ringing 3 kHz, far above the shaft lines: their comb
        // (107, 214, 321 Hz ...) fits the 4th, 8th and 12th harmonics of 26.75 Hz, inside the
        // range searched around 29.3 Hz.
        let true_hz = 28.6;
        for seed in [1, 2, 3] {
            let impacts = Impacts {
                rate_hz: 107.0,
                jitter: 0.002,
                resonance_hz: 3000.0,
                damping: 0.05,
                amplitude_g: 3.0,
            };
            let signal = sum(&[
                impacts.render(N, FS, seed),
                shaft(true_hz, &[0.03, 0.01], 0.05, 100 + seed),
            ]);
            let e = estimate(&signal, 29.3, 0.1);
            assert_within(&format!("seed {seed}"), e, true_hz, 0.003);
        }
        // Without shaft lines, the comb alone gives no estimate.
        let impacts = Impacts {
            rate_hz: 107.0,
            jitter: 0.002,
            resonance_hz: 3000.0,
            damping: 0.05,
            amplitude_g: 3.0,
        };
        let signal = sum(&[impacts.render(N, FS, 4), noise(N, 0.05, 5)]);
        let e = estimate(&signal, 29.3, 0.1);
        assert!(e.is_none(), "{e:?}");
    }

    #[test]
    fn a_spectrum_with_nothing_in_range_gives_none() {
        // Noise alone, over many seeds.
        for seed in 0..40 {
            let e = estimate(&noise(N, 0.1, 1000 + seed), 29.3, 0.1);
            assert!(e.is_none(), "noise seed {seed}: {e:?}");
        }
        // Tones outside the range and its harmonics (45 Hz, 1.2 kHz), in noise.
        let signal = sum(&[
            tone(N, FS, 45.0, 0.2, 0.0),
            tone(N, FS, 1200.0, 0.5, 0.0),
            noise(N, 0.05, 77),
        ]);
        let e = estimate(&signal, 29.3, 0.1);
        assert!(e.is_none(), "{e:?}");
        // A strong shaft just outside the range (a bin or two beyond either edge) is not
        // reported at the edge its Hann leakage reaches into.
        for (true_hz, seed) in [(33.5, 78), (32.9, 79), (25.1, 80), (26.0, 81)] {
            let signal = shaft(true_hz, &[0.2, 0.08, 0.04], 0.05, seed);
            let e = estimate(&signal, 29.3, 0.1);
            assert!(e.is_none(), "{true_hz} Hz: {e:?}");
        }
        // Silence, and ranges that do not fit the spectrum.
        assert!(estimate(&vec![0.0; N], 29.3, 0.1).is_none());
        let magnitude = spectrum(&shaft(29.3, &[0.05], 0.05, 79));
        let mut estimator = SpeedEstimator::new(magnitude.len());
        let df = FS / N as f64;
        assert!(estimator.estimate(&magnitude, df, 30.0, 20.0).is_none());
        assert!(estimator.estimate(&magnitude, df, 0.0, 0.0).is_none());
        assert!(estimator.estimate(&magnitude, df, 6000.0, 7000.0).is_none());
    }

    #[test]
    fn the_electrical_lines_of_the_supply_are_not_a_shaft_series() {
        // A 60 Hz supply's lines at 60, 120 and 240 Hz are the 2x, 4x and 8x of 30 Hz, a bin
        // and a bit from a motor at 1732 rpm (28.87 Hz), whose 1x is weaker than them.
        let true_hz = 1732.0 / 60.0;
        let n = 12_000;
        let fs = 12_000.0;
        let signal = sum(&[
            tone(n, fs, true_hz, 0.01, 0.2),
            tone(n, fs, 2.0 * true_hz, 0.004, 0.9),
            tone(n, fs, 60.0, 0.03, 0.0),
            tone(n, fs, 120.0, 0.05, 0.0),
            tone(n, fs, 240.0, 0.02, 0.0),
            noise(n, 0.02, 12),
        ]);
        let magnitude = spectrum(&signal);
        let e = SpeedEstimator::new(magnitude.len()).estimate(
            &magnitude,
            fs / n as f64,
            0.9 * true_hz,
            1.1 * true_hz,
        );
        assert_within("beside the supply's lines", e, true_hz, 0.003);
        // Without the motor's lines, the supply's are no estimate.
        let signal = sum(&[
            tone(n, fs, 60.0, 0.03, 0.0),
            tone(n, fs, 120.0, 0.05, 0.0),
            tone(n, fs, 240.0, 0.02, 0.0),
            noise(n, 0.02, 13),
        ]);
        let magnitude = spectrum(&signal);
        let e = SpeedEstimator::new(magnitude.len()).estimate(
            &magnitude,
            fs / n as f64,
            0.9 * true_hz,
            1.1 * true_hz,
        );
        assert!(e.is_none(), "{e:?}");
    }

    #[test]
    fn a_lone_foreign_line_on_a_high_harmonic_does_not_outweigh_the_shaft_series() {
        // 1480 rpm (24.67 Hz) beside a strong 100 Hz electrical line, which is the 4th
        // harmonic of 25 Hz (synchronous speed), inside the range.
        let true_hz = 24.67;
        let signal = sum(&[
            shaft(true_hz, &[0.03, 0.01, 0.006], 0.03, 11),
            tone(N, FS, 100.0, 0.5, 0.0),
        ]);
        assert_within(
            "beside 100 Hz",
            estimate(&signal, 24.67, 0.1),
            true_hz,
            0.005,
        );
    }

    #[test]
    fn a_bearing_line_on_a_near_harmonic_is_not_taken_for_the_shaft() {
        // As on a CWRU fan-end outer-race recording: no 1x, a weak 2x and 4x of a shaft at
        // 29.95 Hz, a foreign line at 61 Hz, and an outer-race line at BPFO = 3.053 × 29.95 =
        // 91.4 Hz 30 dB above them. 61 and 91.4 Hz read as the 2x and 3x of 30.5 Hz.
        let (shaft_hz, bpfo) = (29.95, 3.053);
        let mut parts = vec![shaft(shaft_hz, &[0.0, 0.006, 0.0, 0.004], 0.002, 5)];
        parts.push(tone(N, FS, 61.0, 0.02, 0.9));
        parts.push(tone(N, FS, bpfo * shaft_hz, 0.3, 0.1));
        let magnitude = spectrum(&sum(&parts));
        let df = FS / N as f64;
        let mut estimator = SpeedEstimator::new(magnitude.len());
        let fooled = estimator.estimate(&magnitude, df, 0.9 * shaft_hz, 1.1 * shaft_hz);
        assert_within("BPFO taken for 3x", fooled, 30.5, 0.005);
        // The bearing's lines at the nominal speed declared foreign: no false rate.
        estimator.set_foreign_lines(&[bpfo * shaft_hz, 2.0 * bpfo * shaft_hz], 0.02, df);
        let e = estimator.estimate(&magnitude, df, 0.9 * shaft_hz, 1.1 * shaft_hz);
        assert!(
            e.is_none_or(|e| (e.shaft_hz - shaft_hz).abs() < 0.003 * shaft_hz),
            "{e:?}"
        );
    }
}
