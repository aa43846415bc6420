//! [`FeatureExtractor`]: FFT plans and scratch buffers made once, then one allocation-free
//! pass per window. The algorithms and their units are described in the
//! [module docs](super).

use std::f64::consts::{PI, TAU};
use std::fmt;
use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};

use super::config::{BAND_COUNT, FeatureConfig, invalid};
use super::hann::hann_interpolation;
use super::lines::line_families;
use super::speed::SpeedEstimator;
use super::{EnvelopePeaks, FeatureError, Features, MachineContext};

/// Shortest window accepted, samples.
pub const MIN_WINDOW_LEN: usize = 256;

/// Standard gravity, m/s² per g.
const STANDARD_GRAVITY: f64 = 9.80665;

/// Automatic envelope bands end at or below this fraction of the sample rate (anti-aliasing
/// filters roll off above it).
const AUTO_BAND_TOP_RATIO: f64 = 0.45;
/// Automatic envelope bands start at or above this, Hz.
const AUTO_BAND_FLOOR_HZ: f64 = 1000.0;
/// Automatic envelope bands start at or above this multiple of the highest fault fundamental.
const AUTO_BAND_LOW_EDGE_FAULT_MULTIPLE: f64 = 10.0;
/// Fraction of the window tapered (raised cosine) at each end before demodulation; these
/// samples are also left out of the spectral kurtosis.
const TAPER_RATIO: f64 = 0.05;
/// Samples per band-width the decimated band signal is computed at, for the spectral kurtosis
/// of candidate bands (the envelope's bandwidth is at most the band's width).
const DECIMATED_OVERSAMPLING: usize = 4;
/// Shortest decimated band signal, samples.
const MIN_DECIMATED_LEN: usize = 64;
/// Least number of bins on each side of an envelope search region used for the background.
const MIN_BACKGROUND_BINS: usize = 8;
/// Bins left out between a search region and its background (the Hann main lobe is ±2 bins).
const BACKGROUND_GUARD_BINS: usize = 2;
/// Lowest envelope-spectrum bin searched or used as background (bins 0 and 1 hold what is left
/// of the envelope's mean).
const FIRST_ENVELOPE_BIN: usize = 2;
/// Added to peak and background magnitudes before the dB ratio, so silence reads 0 dB.
const MAGNITUDE_FLOOR: f64 = 1e-15;

/// Extracts [`Features`] from windows of a fixed length and sample rate.
pub struct FeatureExtractor {
    len: usize,
    sample_rate_hz: f64,
    cfg: FeatureConfig,
    forward: Arc<dyn RealToComplex<f64>>,
    inverse: Arc<dyn Fft<f64>>,
    /// Inverse FFTs of the powers of two below `len`, ascending, for decimated band signals.
    short_inverses: Vec<Arc<dyn Fft<f64>>>,
    /// Hann window, its sum and its sum of squares.
    hann: Vec<f64>,
    hann_sum: f64,
    hann_power: f64,
    /// Tukey (5 % cosine) taper applied before demodulation.
    taper: Vec<f64>,
    /// 1/1- and 1/3-octave candidate envelope bands for this sample rate, `[low, high]` Hz.
    candidates: Vec<[f64; 2]>,
    // Scratch, overwritten by every window.
    real: Vec<f64>,
    spectrum: Vec<Complex64>,
    real_scratch: Vec<Complex64>,
    magnitude: Vec<f64>,
    analytic: Vec<Complex64>,
    complex_scratch: Vec<Complex64>,
    median_scratch: Vec<f64>,
    /// Shaft-speed search over `magnitude`, with its own scratch.
    speed: SpeedEstimator,
}

impl fmt::Debug for FeatureExtractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeatureExtractor")
            .field("len", &self.len)
            .field("sample_rate_hz", &self.sample_rate_hz)
            .field("cfg", &self.cfg)
            .field("candidate_bands", &self.candidates.len())
            .finish_non_exhaustive()
    }
}

impl FeatureExtractor {
    /// Plans the FFTs and allocates every buffer for windows of `window_len` samples taken at
    /// `sample_rate_hz`. `window_len` must be even and at least [`MIN_WINDOW_LEN`]; powers of
    /// two are fastest.
    pub fn new(
        window_len: usize,
        sample_rate_hz: f64,
        cfg: &FeatureConfig,
    ) -> Result<Self, FeatureError> {
        cfg.validate_at(sample_rate_hz)?;
        if window_len < MIN_WINDOW_LEN || !window_len.is_multiple_of(2) {
            return Err(invalid(
                "window_len",
                format!("{window_len} must be even and >= {MIN_WINDOW_LEN}"),
            )
            .into());
        }
        let n = window_len;
        let forward = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        let mut planner = FftPlanner::<f64>::new();
        let inverse = planner.plan_fft_inverse(n);
        let short_inverses: Vec<_> = (MIN_DECIMATED_LEN.ilog2()..)
            .map(|k| 1usize << k)
            .take_while(|&m| m < n)
            .map(|m| planner.plan_fft_inverse(m))
            .collect();
        let complex_scratch_len = short_inverses
            .iter()
            .chain([&inverse])
            .map(|fft| fft.get_inplace_scratch_len())
            .max()
            .unwrap_or(0);
        // Periodic Hann: exact Parseval and amplitude sums for bin-centred tones.
        let hann: Vec<f64> = (0..n)
            .map(|i| 0.5 - 0.5 * (TAU * i as f64 / n as f64).cos())
            .collect();
        let taper_len = ((n as f64 * TAPER_RATIO) as usize).max(1);
        let taper = (0..n)
            .map(|i| {
                let from_edge = i.min(n - 1 - i);
                if from_edge >= taper_len {
                    1.0
                } else {
                    0.5 - 0.5 * (PI * (from_edge as f64 + 0.5) / taper_len as f64).cos()
                }
            })
            .collect();
        Ok(Self {
            len: n,
            sample_rate_hz,
            cfg: cfg.clone(),
            real_scratch: forward.make_scratch_vec(),
            spectrum: forward.make_output_vec(),
            real: forward.make_input_vec(),
            magnitude: vec![0.0; n / 2 + 1],
            complex_scratch: vec![Complex64::default(); complex_scratch_len],
            analytic: vec![Complex64::default(); n],
            median_scratch: vec![0.0; n / 2 + 1],
            speed: SpeedEstimator::new(n / 2 + 1),
            candidates: candidate_bands(sample_rate_hz),
            hann_sum: hann.iter().sum(),
            hann_power: hann.iter().map(|w| w * w).sum(),
            hann,
            taper,
            forward,
            inverse,
            short_inverses,
        })
    }

    /// Window length in samples.
    pub fn window_len(&self) -> usize {
        self.len
    }

    /// Sample rate, Hz.
    pub fn sample_rate_hz(&self) -> f64 {
        self.sample_rate_hz
    }

    /// The configuration in use.
    pub fn config(&self) -> &FeatureConfig {
        &self.cfg
    }

    /// Features of one window of acceleration in g (one axis, `window_len` samples) for a
    /// machine configured to turn at `ctx.shaft_hz`; the rate used is searched for near it
    /// first ([`FeatureConfig::speed_search_ratio`], the module docs' "Shaft speed").
    /// Allocates nothing. The temperature fields are left `None` for the caller to fill
    /// ([`Features::set_temperature`]).
    pub fn extract(
        &mut self,
        samples_g: &[f32],
        ctx: &MachineContext,
    ) -> Result<Features, FeatureError> {
        if samples_g.len() != self.len {
            return Err(FeatureError::WindowLength {
                expected: self.len,
                got: samples_g.len(),
            });
        }
        if let Some(index) = samples_g.iter().position(|x| !x.is_finite()) {
            return Err(FeatureError::NotFinite { index });
        }
        ctx.validate()?;

        let moments = Moments::of(samples_g);
        let mean = moments.mean;

        // Hann spectrum of the acceleration: velocity, band energies, shaft orders.
        for ((r, &x), &w) in self.real.iter_mut().zip(samples_g).zip(&self.hann) {
            *r = (f64::from(x) - mean) * w;
        }
        self.forward_fft();
        for (m, c) in self.magnitude.iter_mut().zip(&self.spectrum) {
            *m = magnitude(c);
        }
        let velocity_rms_mm_s = self.velocity_rms_mm_s();
        let mut band_rms_g = [0.0; BAND_COUNT];
        for (i, rms) in band_rms_g.iter_mut().enumerate() {
            let low = self.cfg.band_edges_hz[i];
            let high = self
                .cfg
                .band_edges_hz
                .get(i + 1)
                .copied()
                .unwrap_or(f64::INFINITY);
            *rms = self.band_mean_square(low, high).sqrt();
        }
        // The shaft rate: found in this spectrum near the configured one, or the configured
        // one. Everything after this uses it.
        let search = self.cfg.speed_search_ratio;
        let estimate = (search > 0.0)
            .then(|| {
                // The bearing's own lines, where a defect puts them at the nominal speed, are
                // never shaft evidence.
                let (o, shaft) = (ctx.orders, ctx.shaft_hz);
                let foreign = [
                    o.bpfo,
                    2.0 * o.bpfo,
                    o.bpfi,
                    2.0 * o.bpfi,
                    o.bsf,
                    2.0 * o.bsf,
                ]
                .map(|order| order * shaft);
                self.speed.set_foreign_lines(
                    &foreign,
                    self.cfg.speed_tolerance_ratio,
                    self.sample_rate_hz / self.len as f64,
                );
                self.speed.estimate(
                    &self.magnitude,
                    self.sample_rate_hz / self.len as f64,
                    ctx.shaft_hz * (1.0 - search),
                    ctx.shaft_hz * (1.0 + search),
                )
            })
            .flatten();
        let speed_estimated = estimate.is_some();
        let ctx = &MachineContext {
            shaft_hz: estimate.map_or(ctx.shaft_hz, |e| e.shaft_hz),
            ..*ctx
        };
        let tolerance = self.cfg.speed_tolerance_ratio;
        let order = |k: f64| {
            tone_amplitude(
                &self.magnitude,
                self.bin_hz(),
                k * ctx.shaft_hz,
                tolerance,
                self.hann_sum,
            )
        };
        let (order_0_5x_g, order_1x_g, order_2x_g, order_3x_g) =
            (order(0.5), order(1.0), order(2.0), order(3.0));

        let envelope = self.envelope_peaks(samples_g, mean, ctx);

        Ok(Features {
            rms_g: moments.rms,
            peak_g: moments.peak,
            crest_factor: moments.crest_factor(),
            kurtosis: moments.kurtosis(),
            skewness: moments.skewness(),
            velocity_rms_mm_s,
            zone: self.cfg.zone_limits.zone(velocity_rms_mm_s),
            shaft_hz: ctx.shaft_hz,
            speed_estimated,
            order_0_5x_g,
            order_1x_g,
            order_2x_g,
            order_3x_g,
            band_rms_g,
            envelope,
            temperature_c: None,
            temperature_rise_c_per_min: None,
        })
    }

    fn bin_hz(&self) -> f64 {
        self.sample_rate_hz / self.len as f64
    }

    /// `self.real` → `self.spectrum`. Only fails on buffer-length mismatches, which `new` rules
    /// out.
    fn forward_fft(&mut self) {
        self.forward
            .process_with_scratch(&mut self.real, &mut self.spectrum, &mut self.real_scratch)
            .expect("buffers are sized by the plan");
    }

    /// Mean-square contribution of one-sided bin `k` of the Hann spectrum, g².
    fn bin_power(&self, k: usize) -> f64 {
        let edge = k == 0 || k == self.len / 2;
        let one_sided = if edge { 1.0 } else { 2.0 };
        one_sided * self.magnitude[k].powi(2) / (self.len as f64 * self.hann_power)
    }

    /// Bins whose centre lies in `[low_hz, high_hz)`, clipped to the spectrum.
    fn bins_in(&self, low_hz: f64, high_hz: f64) -> std::ops::Range<usize> {
        let df = self.bin_hz();
        let first = (low_hz / df).ceil().max(0.0) as usize;
        let end = if high_hz.is_finite() {
            ((high_hz / df).ceil() as usize).min(self.magnitude.len())
        } else {
            self.magnitude.len()
        };
        first.min(end)..end
    }

    fn band_mean_square(&self, low_hz: f64, high_hz: f64) -> f64 {
        self.bins_in(low_hz, high_hz)
            .map(|k| self.bin_power(k))
            .sum()
    }

    fn velocity_rms_mm_s(&self) -> f64 {
        let [low, high] = self.cfg.velocity_band_hz;
        let df = self.bin_hz();
        // The band's upper edge is inclusive here, so 10–1000 Hz includes 1000 Hz.
        let bins = self.bins_in(low, high + df * 1e-9);
        bins.filter(|&k| k > 0)
            .map(|k| {
                let to_mm_s = STANDARD_GRAVITY * 1000.0 / (TAU * k as f64 * df);
                self.bin_power(k) * to_mm_s * to_mm_s
            })
            .sum::<f64>()
            .sqrt()
    }

    fn envelope_peaks(
        &mut self,
        samples_g: &[f32],
        mean: f64,
        ctx: &MachineContext,
    ) -> EnvelopePeaks {
        for ((r, &x), &w) in self.real.iter_mut().zip(samples_g).zip(&self.taper) {
            *r = (f64::from(x) - mean) * w;
        }
        self.forward_fft();

        let tolerance = self.cfg.speed_tolerance_ratio;
        let o = ctx.orders;
        let f_max = ctx.shaft_hz * o.bpfo.max(o.bpfi).max(o.bsf).max(o.ftf);
        let (band_hz, band_kurtosis) = match self.cfg.envelope_band_hz {
            Some(band) => (band, self.band_kurtosis(band)),
            None => self.select_band(f_max, tolerance),
        };
        // `select_band` leaves the analytic signal of some candidate behind; rebuild the
        // chosen one.
        self.analytic_signal(band_hz);

        // Spectrum of the envelope with its mean removed.
        let n = self.len as f64;
        let envelope_mean = self.analytic.iter().map(magnitude).sum::<f64>() / n;
        for ((r, a), &w) in self.real.iter_mut().zip(&self.analytic).zip(&self.hann) {
            *r = (magnitude(a) - envelope_mean) * w;
        }
        self.forward_fft();
        let scale = 2.0 / self.hann_sum;
        for (m, c) in self.magnitude.iter_mut().zip(&self.spectrum) {
            *m = magnitude(c) * scale;
        }

        let df = self.bin_hz();
        let background_hz = self.cfg.background_half_width_hz;
        let mut peak = |f_hz: f64| {
            envelope_peak(
                &self.magnitude,
                df,
                f_hz,
                tolerance,
                background_hz,
                &mut self.median_scratch,
            )
        };
        let shaft = ctx.shaft_hz;
        let (bpfo_db, bpfo_hz) = peak(o.bpfo * shaft);
        let (bpfi_db, bpfi_hz) = peak(o.bpfi * shaft);
        let (bsf_db, bsf_hz) = peak(o.bsf * shaft);
        let (bsf_2x_db, bsf_2x_hz) = peak(2.0 * o.bsf * shaft);
        let (ftf_db, ftf_hz) = peak(o.ftf * shaft);
        let ftf_2x_db = peak(2.0 * o.ftf * shaft).0;
        let bpfo_2x_db = peak(2.0 * o.bpfo * shaft).0;
        let bpfi_2x_db = peak(2.0 * o.bpfi * shaft).0;
        let top_hz = df * (self.magnitude.len() - 1) as f64;
        let families = line_families(shaft, &o, df, tolerance, |f_hz, half_width_hz| {
            (f_hz + half_width_hz <= top_hz).then(|| {
                envelope_peak(
                    &self.magnitude,
                    df,
                    f_hz,
                    half_width_hz / f_hz,
                    background_hz,
                    &mut self.median_scratch,
                )
            })
        });
        EnvelopePeaks {
            band_hz,
            band_kurtosis,
            bpfo_db,
            bpfo_2x_db,
            bpfi_db,
            bpfi_2x_db,
            bsf_db,
            bsf_2x_db,
            ftf_db,
            ftf_2x_db,
            bpfo_hz,
            bpfi_hz,
            bsf_hz,
            bsf_2x_hz,
            ftf_hz,
            families,
        }
    }

    /// The automatic band (see the module docs) and its spectral kurtosis. Expects the tapered
    /// spectrum in `self.spectrum`.
    fn select_band(&mut self, f_max_hz: f64, tolerance: f64) -> ([f64; 2], f64) {
        let top = AUTO_BAND_TOP_RATIO * self.sample_rate_hz;
        let floor = AUTO_BAND_FLOOR_HZ.max(AUTO_BAND_LOW_EDGE_FAULT_MULTIPLE * f_max_hz);
        // Twice the highest frequency searched (2 × f_max), with the speed tolerance.
        let min_width = 2.0 * 2.0 * f_max_hz * (1.0 + tolerance);
        let eligible = |[low, high]: [f64; 2]| low >= floor && high - low >= min_width;

        let mut best: Option<([f64; 2], f64)> = None;
        let mut lowest_eligible = f64::INFINITY;
        for i in 0..self.candidates.len() {
            let band = self.candidates[i];
            if !eligible(band) {
                continue;
            }
            lowest_eligible = lowest_eligible.min(band[0]);
            let kurtosis = self.band_kurtosis(band);
            if best.is_none_or(|(_, k)| kurtosis > k) {
                best = Some((band, kurtosis));
            }
        }
        let wide_low = if lowest_eligible.is_finite() {
            lowest_eligible
        } else {
            floor.min(top / 2.0)
        };
        let wide = [wide_low, top];
        let kurtosis = self.band_kurtosis(wide);
        match best {
            Some((band, k)) if k >= kurtosis => (band, k),
            _ => (wide, kurtosis),
        }
    }

    /// Fills `self.analytic` with the analytic signal of `band` (from the tapered spectrum in
    /// `self.spectrum`): in-band bins doubled, everything else zeroed, inverse FFT, scaled to
    /// g.
    fn analytic_signal(&mut self, [low, high]: [f64; 2]) {
        let df = self.bin_hz();
        let n = self.len;
        self.analytic.fill(Complex64::default());
        // The Nyquist bin has no negative-frequency twin to fold; leave it out.
        let first = ((low / df).ceil() as usize).max(1);
        let last = ((high / df).floor() as usize).min(n / 2 - 1);
        let scale = 2.0 / n as f64;
        if first <= last {
            for k in first..=last {
                self.analytic[k] = self.spectrum[k] * scale;
            }
        }
        self.inverse
            .process_with_scratch(&mut self.analytic, &mut self.complex_scratch);
    }

    /// Spectral kurtosis of `band` over the untapered part of the window, from its band
    /// signal shifted to baseband and decimated: the in-band bins are moved down to bin 0 and
    /// inverse-transformed with the shortest power-of-two FFT holding
    /// `DECIMATED_OVERSAMPLING` × their count. The shift and the decimation change neither the
    /// envelope's shape nor, so, its kurtosis.
    fn band_kurtosis(&mut self, [low, high]: [f64; 2]) -> f64 {
        let df = self.bin_hz();
        let first = ((low / df).ceil() as usize).max(1);
        let last = ((high / df).floor() as usize).min(self.len / 2 - 1);
        if first > last {
            return 0.0;
        }
        let bins = last - first + 1;
        let wanted = (bins * DECIMATED_OVERSAMPLING).max(MIN_DECIMATED_LEN);
        let (len, fft) = match self.short_inverses.iter().find(|f| f.len() >= wanted) {
            Some(fft) => (fft.len(), fft),
            None => (self.len, &self.inverse),
        };
        let buffer = &mut self.analytic[..len];
        buffer.fill(Complex64::default());
        buffer[..bins].copy_from_slice(&self.spectrum[first..=last]);
        fft.process_with_scratch(buffer, &mut self.complex_scratch);
        let skip = (len as f64 * TAPER_RATIO).ceil() as usize;
        let core = &buffer[skip..len - skip];
        let (s2, s4) = core.iter().fold((0.0, 0.0), |(s2, s4), a| {
            let p = a.norm_sqr();
            (s2 + p, s4 + p * p)
        });
        if s2 <= 0.0 {
            return 0.0;
        }
        core.len() as f64 * s4 / (s2 * s2) - 2.0
    }
}

/// |c|. `Complex::norm` calls libm's `hypot`, which guards against overflow at a cost: it was
/// 38 % of `agent eval`'s time (perf). Spectra of samples in g are nowhere near overflow, and
/// the plain square root differs from `hypot` by at most an ulp or two.
#[inline]
fn magnitude(c: &Complex64) -> f64 {
    (c.re * c.re + c.im * c.im).sqrt()
}

/// The candidate envelope bands at a sample rate: 1/1- and 1/3-octave bands, each stepped by
/// half its width, ending at or below 0.45 · fs and starting at or
/// above 1 kHz.
fn candidate_bands(sample_rate_hz: f64) -> Vec<[f64; 2]> {
    let top = AUTO_BAND_TOP_RATIO * sample_rate_hz;
    let mut bands = Vec::new();
    for (width_octaves, step_octaves) in [(1.0, 0.5), (1.0 / 3.0, 1.0 / 6.0)] {
        for step in 0.. {
            let high = top / f64::powf(2.0, f64::from(step) * step_octaves);
            let low = high / f64::powf(2.0, width_octaves);
            if low < AUTO_BAND_FLOOR_HZ {
                break;
            }
            bands.push([low, high]);
        }
    }
    bands
}

/// Bins of a one-sided spectrum with resolution `df` within ± `tolerance` (at least ± one
/// bin) of `f_hz`, starting at `first_bin`; `None` when that is empty.
fn search_region(
    len: usize,
    df: f64,
    f_hz: f64,
    tolerance: f64,
    first_bin: usize,
) -> Option<(usize, usize)> {
    let half_width = (tolerance * f_hz).max(df);
    let first = (((f_hz - half_width) / df).ceil().max(0.0) as usize).max(first_bin);
    let last_f = ((f_hz + half_width) / df).floor();
    if last_f < 0.0 {
        return None;
    }
    let last = (last_f as usize).min(len - 1);
    (first <= last).then_some((first, last))
}

fn argmax(values: &[f64], first: usize, last: usize) -> usize {
    (first..=last)
        .max_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap_or(first)
}

/// Peak amplitude in g of the largest tone near `f_hz` in the Hann magnitude spectrum.
fn tone_amplitude(magnitude: &[f64], df: f64, f_hz: f64, tolerance: f64, hann_sum: f64) -> f64 {
    let Some((first, last)) = search_region(magnitude.len(), df, f_hz, tolerance, 1) else {
        return 0.0;
    };
    let k = argmax(magnitude, first, last);
    let (_, gain) = hann_interpolation(magnitude, k);
    2.0 * magnitude[k] / hann_sum * gain
}

/// `(dB over local background, frequency found in Hz)` of the envelope-spectrum peak near
/// `f_hz`; `(0, 0)` when the frequency is outside the spectrum.
fn envelope_peak(
    magnitude: &[f64],
    df: f64,
    f_hz: f64,
    tolerance: f64,
    background_half_width_hz: f64,
    scratch: &mut [f64],
) -> (f64, f64) {
    let len = magnitude.len();
    let Some((first, last)) = search_region(len, df, f_hz, tolerance, FIRST_ENVELOPE_BIN) else {
        return (0.0, 0.0);
    };
    let k = argmax(magnitude, first, last);
    let (delta, _) = hann_interpolation(magnitude, k);
    let found_hz = (k as f64 + delta) * df;

    let width = ((background_half_width_hz / df).ceil() as usize).max(MIN_BACKGROUND_BINS);
    let below_end = first.saturating_sub(BACKGROUND_GUARD_BINS);
    let below = below_end.saturating_sub(width).max(FIRST_ENVELOPE_BIN)..below_end;
    let above_start = last + 1 + BACKGROUND_GUARD_BINS;
    let above = above_start.min(len)..(above_start + width).min(len);
    let mut count = 0;
    for i in below.chain(above) {
        scratch[count] = magnitude[i];
        count += 1;
    }
    if count == 0 {
        return (0.0, found_hz);
    }
    let background = &mut scratch[..count];
    let (_, median, _) = background.select_nth_unstable_by(count / 2, f64::total_cmp);
    let db = 20.0 * ((magnitude[k] + MAGNITUDE_FLOOR) / (*median + MAGNITUDE_FLOOR)).log10();
    (db, found_hz)
}

/// Central moments of a window, about its mean.
struct Moments {
    mean: f64,
    rms: f64,
    peak: f64,
    m2: f64,
    m3: f64,
    m4: f64,
}

impl Moments {
    fn of(samples: &[f32]) -> Self {
        let n = samples.len() as f64;
        let mean = samples.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let (mut m2, mut m3, mut m4, mut peak) = (0.0, 0.0, 0.0, 0.0f64);
        for &x in samples {
            let d = f64::from(x) - mean;
            let d2 = d * d;
            m2 += d2;
            m3 += d2 * d;
            m4 += d2 * d2;
            peak = peak.max(d.abs());
        }
        let (m2, m3, m4) = (m2 / n, m3 / n, m4 / n);
        Self {
            mean,
            rms: m2.sqrt(),
            peak,
            m2,
            m3,
            m4,
        }
    }

    fn varies(&self) -> bool {
        self.m2 > 0.0
    }

    fn crest_factor(&self) -> f64 {
        if self.varies() {
            self.peak / self.rms
        } else {
            0.0
        }
    }

    fn kurtosis(&self) -> f64 {
        if self.varies() {
            self.m4 / (self.m2 * self.m2)
        } else {
            0.0
        }
    }

    fn skewness(&self) -> f64 {
        if self.varies() {
            self.m3 / self.m2.powf(1.5)
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_signals::{Impacts, mix, noise, tone};
    use super::super::{FaultOrders, SeverityZone, ZoneLimits};
    use super::*;

    const FS: f64 = 25_600.0;
    const N: usize = 16_384;

    /// A machine at 29.3 Hz whose outer-race line is 107 Hz and whose other lines (and their
    /// second harmonics) are at least 10 % away from every multiple of 107 Hz.
    fn machine() -> MachineContext {
        MachineContext {
            shaft_hz: 29.3,
            orders: FaultOrders {
                bpfo: 107.0 / 29.3,
                bpfi: 5.2,
                bsf: 2.3,
                ftf: 0.4,
            },
        }
    }

    fn extractor(len: usize, fs: f64) -> FeatureExtractor {
        FeatureExtractor::new(len, fs, &FeatureConfig::default()).unwrap()
    }

    fn features(samples: &[f32]) -> Features {
        extractor(samples.len(), FS)
            .extract(samples, &machine())
            .unwrap()
    }

    fn outer_race(len: usize, fs: f64, seed: u64) -> Vec<f32> {
        let impacts = Impacts {
            rate_hz: 107.0,
            jitter: 0.01,
            resonance_hz: 3000.0,
            damping: 0.05,
            amplitude_g: 1.0,
        };
        mix(&[
            &impacts.render(len, fs, seed),
            &noise(len, 0.2, seed + 1000),
        ])
    }

    fn assert_close(what: &str, got: f64, want: f64, relative: f64) {
        assert!(
            (got - want).abs() <= relative * want.abs(),
            "{what}: got {got}, want {want} ± {:.1} %",
            relative * 100.0
        );
    }

    #[test]
    fn a_pure_tone_reads_its_rms_peak_crest_factor_and_kurtosis() {
        let a = 0.7;
        let f = features(&mix(&[&tone(N, FS, 123.4, a, 0.3)]));
        assert_close("rms", f.rms_g, a / 2f64.sqrt(), 0.01);
        assert_close("peak", f.peak_g, a, 0.01);
        assert_close("crest", f.crest_factor, 2f64.sqrt(), 0.01);
        assert_close("kurtosis", f.kurtosis, 1.5, 0.01);
        assert!(f.skewness.abs() < 0.01, "skewness {}", f.skewness);
    }

    #[test]
    fn gaussian_noise_has_kurtosis_three_and_no_skew() {
        let f = features(&mix(&[&noise(N, 0.5, 11)]));
        assert_close("rms", f.rms_g, 0.5, 0.03);
        assert!((f.kurtosis - 3.0).abs() < 0.15, "kurtosis {}", f.kurtosis);
        assert!(f.skewness.abs() < 0.08, "skewness {}", f.skewness);
    }

    #[test]
    fn a_dc_offset_changes_no_feature() {
        let signal = tone(N, FS, 123.4, 0.7, 0.3);
        let offset: Vec<f64> = signal.iter().map(|x| x + 1.0).collect();
        let (plain, lifted) = (features(&mix(&[&signal])), features(&mix(&[&offset])));
        assert_close("rms", lifted.rms_g, plain.rms_g, 1e-5);
        assert_close(
            "velocity",
            lifted.velocity_rms_mm_s,
            plain.velocity_rms_mm_s,
            1e-5,
        );
        assert_close("band 0", lifted.band_rms_g[0], plain.band_rms_g[0], 1e-5);
    }

    #[test]
    fn a_100_hz_tone_gives_the_analytic_velocity_rms_and_its_zone() {
        let a = 0.5;
        let f = features(&mix(&[&tone(N, FS, 100.0, a, 0.0)]));
        let want = a * STANDARD_GRAVITY * 1000.0 / (TAU * 100.0) / 2f64.sqrt();
        assert_close("velocity", f.velocity_rms_mm_s, want, 0.03);
        // 5.5 mm/s lies in zone B of the default (2.8 / 7.1 / 18) limits.
        assert_eq!(f.zone, SeverityZone::B);
        // And between bins, at a frequency that is not a whole number of cycles.
        let f = features(&mix(&[&tone(N, FS, 251.3, a, 1.0)]));
        let want = a * STANDARD_GRAVITY * 1000.0 / (TAU * 251.3) / 2f64.sqrt();
        assert_close("velocity off-bin", f.velocity_rms_mm_s, want, 0.03);
    }

    #[test]
    fn a_tone_outside_the_velocity_band_contributes_almost_nothing() {
        let a = 0.5;
        let f = features(&mix(&[&tone(N, FS, 3000.0, a, 0.0)]));
        let if_inside = a * STANDARD_GRAVITY * 1000.0 / (TAU * 3000.0) / 2f64.sqrt();
        assert!(
            f.velocity_rms_mm_s < 0.001 * if_inside,
            "{} mm/s from a 3 kHz tone",
            f.velocity_rms_mm_s
        );
        assert_eq!(f.zone, SeverityZone::A);
    }

    #[test]
    fn velocity_zones_follow_the_configured_limits() {
        // 1 g at 100 Hz is 11.0 mm/s RMS: zone C with the defaults, D with class I limits.
        let signal = mix(&[&tone(N, FS, 100.0, 1.0, 0.0)]);
        assert_eq!(features(&signal).zone, SeverityZone::C);
        let cfg = FeatureConfig {
            zone_limits: ZoneLimits {
                ab_mm_s: 0.71,
                bc_mm_s: 1.8,
                cd_mm_s: 4.5,
            },
            ..FeatureConfig::default()
        };
        let f = FeatureExtractor::new(N, FS, &cfg)
            .unwrap()
            .extract(&signal, &machine())
            .unwrap();
        assert_eq!(f.zone, SeverityZone::D);
    }

    #[test]
    fn shaft_orders_read_true_amplitudes_even_with_the_speed_one_percent_off() {
        let shaft = 24.7;
        let signal = mix(&[
            &tone(N, FS, shaft, 0.30, 0.2),
            &tone(N, FS, 2.0 * shaft, 0.12, 1.1),
            &noise(N, 0.01, 5),
        ]);
        for assumed in [shaft * 1.01, shaft / 1.01] {
            let ctx = MachineContext {
                shaft_hz: assumed,
                ..machine()
            };
            let f = extractor(N, FS).extract(&signal, &ctx).unwrap();
            assert_close("1x", f.order_1x_g, 0.30, 0.05);
            assert_close("2x", f.order_2x_g, 0.12, 0.05);
            assert!(f.order_3x_g < 0.01, "3x {}", f.order_3x_g);
            assert!(f.order_0_5x_g < 0.01, "0.5x {}", f.order_0_5x_g);
        }
    }

    /// A machine turning 6 % faster than configured: shaft lines at 1x–3x and outer-race
    /// impacts at its true BPFO, in noise.
    fn off_nominal(seed: u64) -> (Vec<f32>, f64) {
        let true_hz = machine().shaft_hz * 1.06;
        let impacts = Impacts {
            rate_hz: machine().orders.bpfo * true_hz,
            jitter: 0.01,
            resonance_hz: 3000.0,
            damping: 0.05,
            amplitude_g: 1.0,
        };
        let signal = mix(&[
            &tone(N, FS, true_hz, 0.08, 0.4),
            &tone(N, FS, 2.0 * true_hz, 0.03, 1.3),
            &tone(N, FS, 3.0 * true_hz, 0.015, 2.2),
            &impacts.render(N, FS, seed),
            &noise(N, 0.2, seed + 1000),
        ]);
        (signal, true_hz)
    }

    #[test]
    fn an_off_nominal_speed_is_found_and_used_for_the_orders_and_the_bearing_lines() {
        let (signal, true_hz) = off_nominal(3);
        let f = features(&signal);
        assert!(f.speed_estimated, "{f:?}");
        assert_close("shaft_hz", f.shaft_hz, true_hz, 0.002);
        assert_close("1x", f.order_1x_g, 0.08, 0.05);
        assert_close("2x", f.order_2x_g, 0.03, 0.1);
        let bpfo_hz = machine().orders.bpfo * true_hz;
        assert!(
            f.envelope.bpfo_db > 20.0,
            "BPFO {:.1} dB",
            f.envelope.bpfo_db
        );
        assert_close("BPFO found at", f.envelope.bpfo_hz, bpfo_hz, 0.01);

        // With the search off, the configured speed is used and the line, 6 % away from where
        // it is expected, is missed.
        let cfg = FeatureConfig {
            speed_search_ratio: 0.0,
            ..FeatureConfig::default()
        };
        let fixed = FeatureExtractor::new(N, FS, &cfg)
            .unwrap()
            .extract(&signal, &machine())
            .unwrap();
        assert!(!fixed.speed_estimated);
        assert_eq!(fixed.shaft_hz, machine().shaft_hz);
        assert!(
            fixed.envelope.bpfo_db < NOISE_MAX_DB,
            "BPFO {:.1} dB at the nominal speed",
            fixed.envelope.bpfo_db
        );
        // The speed used goes into the record's JSON.
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["shaft_hz"], f.shaft_hz);
        assert_eq!(json["speed_estimated"], true);
    }

    #[test]
    fn without_shaft_lines_in_range_the_configured_speed_is_kept() {
        // Noise alone, and impacts with no shaft line: nothing to find.
        for signal in [mix(&[&noise(N, 0.3, 31)]), outer_race(N, FS, 32)] {
            let f = features(&signal);
            assert!(!f.speed_estimated, "{f:?}");
            assert_eq!(f.shaft_hz, machine().shaft_hz);
        }
        // A shaft at 1.25 × the configured speed lies outside the default ±10 %.
        let outside = mix(&[
            &tone(N, FS, 1.25 * machine().shaft_hz, 0.1, 0.0),
            &noise(N, 0.05, 33),
        ]);
        let f = features(&outside);
        assert!(!f.speed_estimated, "{f:?}");
        assert_eq!(f.shaft_hz, machine().shaft_hz);
    }

    #[test]
    fn band_energies_put_each_tone_in_its_band() {
        let f = features(&mix(&[
            &tone(N, FS, 500.0, 0.2, 0.0),
            &tone(N, FS, 4000.0, 0.6, 0.0),
        ]));
        let sine_rms = |a: f64| a / 2f64.sqrt();
        assert_close("10-1000 Hz", f.band_rms_g[0], sine_rms(0.2), 0.01);
        assert!(f.band_rms_g[1] < 1e-3, "1-3 kHz {}", f.band_rms_g[1]);
        assert_close("3-6 kHz", f.band_rms_g[2], sine_rms(0.6), 0.01);
        assert!(f.band_rms_g[3] < 1e-3, "6 kHz+ {}", f.band_rms_g[3]);
    }

    const LINES: [&str; 8] = [
        "BPFO", "2xBPFO", "BPFI", "2xBPFI", "BSF", "2xBSF", "FTF", "2xFTF",
    ];

    /// The eight envelope lines, dB, in the order of `LINES`.
    fn lines(e: &EnvelopePeaks) -> [f64; 8] {
        [
            e.bpfo_db,
            e.bpfo_2x_db,
            e.bpfi_db,
            e.bpfi_2x_db,
            e.bsf_db,
            e.bsf_2x_db,
            e.ftf_db,
            e.ftf_2x_db,
        ]
    }

    // A single window's line over a noise background reads up to ~10 dB by chance (the largest
    // of a few Rayleigh-distributed bins over their median: median 2.6 dB, 99th percentile
    // 10 dB over 480 lines of white noise), so "no line" is checked per window against 10 dB
    // and, averaged over windows, against 6 dB.
    const NOISE_MAX_DB: f64 = 10.0;
    const NOISE_MEAN_DB: f64 = 6.0;

    #[test]
    fn an_impulse_train_ringing_a_resonance_shows_at_bpfo_and_nowhere_else() {
        let seeds = [1, 2, 3];
        let mut sums = [0.0; 8];
        for seed in seeds {
            let f = features(&outer_race(N, FS, seed));
            let e = f.envelope;
            assert!(e.bpfo_db > 20.0, "BPFO peak only {:.1} dB", e.bpfo_db);
            assert!(
                e.bpfo_2x_db > 15.0,
                "2 x BPFO peak only {:.1} dB",
                e.bpfo_2x_db
            );
            assert!(
                (e.bpfo_hz - 107.0).abs() < 107.0 * 0.02,
                "found at {} Hz",
                e.bpfo_hz
            );
            assert_eq!(e.strongest().0, "BPFO");
            assert!(
                f.kurtosis > 3.5,
                "impacts should be impulsive: {}",
                f.kurtosis
            );
            for ((sum, name), db) in sums.iter_mut().zip(LINES).zip(lines(&e)).skip(2) {
                assert!(
                    db < NOISE_MAX_DB,
                    "{name} reads {db:.1} dB without a defect there"
                );
                *sum += db;
            }
        }
        for (sum, name) in sums.iter().zip(LINES).skip(2) {
            let mean = sum / seeds.len() as f64;
            assert!(mean < NOISE_MEAN_DB, "{name} reads {mean:.1} dB on average");
        }
    }

    #[test]
    fn white_noise_shows_no_envelope_peak() {
        let seeds = [21, 22, 23, 24];
        let mut sums = [0.0; 8];
        for seed in seeds {
            let e = features(&mix(&[&noise(N, 0.3, seed)])).envelope;
            for ((sum, name), db) in sums.iter_mut().zip(LINES).zip(lines(&e)) {
                assert!(db < NOISE_MAX_DB, "noise reads {db:.1} dB at {name}");
                *sum += db;
            }
            assert!(
                e.band_kurtosis.abs() < 0.5,
                "band kurtosis {}",
                e.band_kurtosis
            );
        }
        for (sum, name) in sums.iter().zip(LINES) {
            let mean = sum / seeds.len() as f64;
            assert!(
                mean < NOISE_MEAN_DB,
                "noise reads {mean:.1} dB at {name} on average"
            );
        }
    }

    #[test]
    fn the_automatic_band_contains_the_resonance_at_every_supported_sample_rate() {
        for fs in [12_000.0, 20_000.0, 25_600.0, 48_800.0] {
            // The largest power of two within one second.
            let len = 1 << (fs as usize).ilog2();
            let f = extractor(len, fs)
                .extract(&outer_race(len, fs, 7), &machine())
                .unwrap();
            let [low, high] = f.envelope.band_hz;
            eprintln!("{fs} Hz: band {low:.0}-{high:.0} Hz, {:?}", f.envelope);
            assert!(
                low <= 3000.0 && 3000.0 <= high,
                "{fs} Hz: chose {low:.0}-{high:.0} Hz"
            );
            assert!(
                f.envelope.bpfo_db > 15.0,
                "{fs} Hz: BPFO {:.1} dB",
                f.envelope.bpfo_db
            );
        }
    }

    #[test]
    fn a_strong_low_frequency_tone_does_not_pull_the_automatic_band_down() {
        // A 0.5 g tone at 1.2 kHz (gear mesh, say) far above the 0.17 g RMS of the impacts.
        let mut signal = outer_race(N, FS, 9);
        for (s, t) in signal.iter_mut().zip(tone(N, FS, 1200.0, 0.5, 0.0)) {
            *s += t as f32;
        }
        let e = features(&signal).envelope;
        assert!(
            e.band_hz[0] <= 3000.0 && 3000.0 <= e.band_hz[1],
            "band {:?}",
            e.band_hz
        );
        assert!(e.bpfo_db > 15.0, "BPFO {:.1} dB", e.bpfo_db);
    }

    #[test]
    fn a_configured_envelope_band_is_used_as_given() {
        let cfg = FeatureConfig {
            envelope_band_hz: Some([2500.0, 3500.0]),
            ..FeatureConfig::default()
        };
        let mut extractor = FeatureExtractor::new(N, FS, &cfg).unwrap();
        let e = extractor
            .extract(&outer_race(N, FS, 4), &machine())
            .unwrap()
            .envelope;
        assert_eq!(e.band_hz, [2500.0, 3500.0]);
        assert!(e.bpfo_db > 15.0, "BPFO {:.1} dB", e.bpfo_db);
        // A band with no resonance in it sees only noise.
        let cfg = FeatureConfig {
            envelope_band_hz: Some([8000.0, 10_000.0]),
            ..FeatureConfig::default()
        };
        let mut extractor = FeatureExtractor::new(N, FS, &cfg).unwrap();
        let e = extractor
            .extract(&outer_race(N, FS, 4), &machine())
            .unwrap()
            .envelope;
        assert!(
            e.bpfo_db < 8.0,
            "BPFO {:.1} dB from an empty band",
            e.bpfo_db
        );
    }

    #[test]
    fn extracting_the_same_window_twice_gives_identical_features() {
        let mut extractor = extractor(4096, FS);
        let first_window = outer_race(4096, FS, 5);
        let other_window = mix(&[&noise(4096, 1.0, 6)]);
        let first = extractor.extract(&first_window, &machine()).unwrap();
        extractor.extract(&other_window, &machine()).unwrap();
        let again = extractor.extract(&first_window, &machine()).unwrap();
        assert_eq!(first, again);
    }

    #[test]
    fn a_silent_window_gives_finite_zero_features() {
        let f = features(&vec![0.25; N]);
        assert_eq!(
            (
                f.rms_g,
                f.peak_g,
                f.crest_factor,
                f.kurtosis,
                f.velocity_rms_mm_s
            ),
            (0.0, 0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!(f.envelope.bpfo_db, 0.0);
        assert!(f.model_inputs().iter().all(|x| x.is_finite()));
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<Features>(&json).unwrap(), f);
    }

    #[test]
    fn fault_lines_above_the_spectrum_read_zero() {
        // 3x shaft (15 kHz) and every bearing line lie above Nyquist (12.8 kHz).
        let ctx = MachineContext {
            shaft_hz: 5000.0,
            ..machine()
        };
        let f = extractor(N, FS)
            .extract(&outer_race(N, FS, 8), &ctx)
            .unwrap();
        assert_eq!(f.order_3x_g, 0.0);
        assert_eq!((f.envelope.bpfo_db, f.envelope.bpfo_hz), (0.0, 0.0));
        assert_eq!(f.envelope.bpfi_2x_db, 0.0);
        // No candidate is eligible: the fallback band is the upper half up to 0.45 fs.
        assert_eq!(f.envelope.band_hz, [0.225 * FS, 0.45 * FS]);
        assert!(f.model_inputs().iter().all(|x| x.is_finite()));
    }

    #[test]
    fn bad_windows_and_contexts_are_refused() {
        let mut extractor = extractor(1024, FS);
        assert_eq!(
            extractor.extract(&[0.0; 1000], &machine()),
            Err(FeatureError::WindowLength {
                expected: 1024,
                got: 1000
            })
        );
        let mut window = vec![0.0f32; 1024];
        window[17] = f32::NAN;
        assert_eq!(
            extractor.extract(&window, &machine()),
            Err(FeatureError::NotFinite { index: 17 })
        );
        let stopped = MachineContext {
            shaft_hz: 0.0,
            ..machine()
        };
        let error = extractor.extract(&[0.0; 1024], &stopped).unwrap_err();
        assert_eq!(
            error.to_string(),
            "machine context: shaft_hz: 0 must be > 0"
        );
    }

    #[test]
    fn bad_dimensions_are_refused_naming_the_argument() {
        let error = |len, fs| {
            FeatureExtractor::new(len, fs, &FeatureConfig::default())
                .unwrap_err()
                .to_string()
        };
        assert!(error(100, FS).starts_with("window_len:"));
        assert!(error(1025, FS).starts_with("window_len:"));
        assert!(error(1024, 0.0).starts_with("sample_rate_hz:"));
        // The default velocity band (to 1 kHz) needs at least 2 kHz sampling.
        assert!(error(1024, 1500.0).starts_with("velocity_band_hz: high 1000 is above Nyquist"));
    }
}
