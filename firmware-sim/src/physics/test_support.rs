//! Test-only spectral analysis: Welch amplitude spectra and the squared-envelope spectrum.
//!
//! Deliberately independent of the synthesiser's internals, so the physics is judged the way
//! an analyst (or the agent) would: band-pass around the resonance by FFT masking, Hilbert
//! transform by FFT, then the spectrum of the squared envelope.

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

/// A one-sided magnitude spectrum with uniform bins.
pub struct Spectrum {
    pub bin_hz: f64,
    pub magnitude: Vec<f64>,
}

/// One axis out of an interleaved buffer, as f64.
pub fn axis_signal(interleaved: &[f32], axes: usize, axis: usize) -> Vec<f64> {
    interleaved
        .iter()
        .skip(axis)
        .step_by(axes)
        .map(|&x| f64::from(x))
        .collect()
}

/// Welch average of Hann-windowed 1 s segments with 50 % overlap, scaled so that a sinusoid
/// of amplitude A on a bin centre reads A.
pub fn amplitude_spectrum(x: &[f64], sample_rate_hz: f64) -> Spectrum {
    let len = sample_rate_hz as usize;
    assert!(x.len() >= len, "need at least one second of signal");
    let window: Vec<f64> = (0..len)
        .map(|n| 0.5 - 0.5 * (std::f64::consts::TAU * n as f64 / len as f64).cos())
        .collect();
    let window_sum: f64 = window.iter().sum();
    let mut planner = RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(len);
    let mut input = fft.make_input_vec();
    let mut output = fft.make_output_vec();
    let mut magnitude = vec![0.0; output.len()];
    let mut segments = 0;
    let mut start = 0;
    while start + len <= x.len() {
        for ((slot, &sample), &w) in input.iter_mut().zip(&x[start..start + len]).zip(&window) {
            *slot = sample * w;
        }
        fft.process(&mut input, &mut output).unwrap();
        for (acc, bin) in magnitude.iter_mut().zip(&output) {
            *acc += 2.0 * bin.norm() / window_sum;
        }
        segments += 1;
        start += len / 2;
    }
    for value in &mut magnitude {
        *value /= f64::from(segments);
    }
    Spectrum {
        bin_hz: sample_rate_hz / len as f64,
        magnitude,
    }
}

/// Spectrum of the squared envelope of `x` band-passed to `band` (Hz), mean removed.
pub fn envelope_spectrum(x: &[f64], sample_rate_hz: f64, band: (f64, f64)) -> Spectrum {
    let n = x.len();
    let mut planner = RealFftPlanner::<f64>::new();
    let forward = planner.plan_fft_forward(n);
    let inverse = planner.plan_fft_inverse(n);
    let mut input = x.to_vec();
    let mut spectrum = forward.make_output_vec();
    forward.process(&mut input, &mut spectrum).unwrap();

    let bin_hz = sample_rate_hz / n as f64;
    for (k, bin) in spectrum.iter_mut().enumerate() {
        let f = k as f64 * bin_hz;
        if f < band.0 || f > band.1 {
            *bin = Complex::new(0.0, 0.0);
        }
    }
    // Hilbert transform: multiply positive frequencies by −i. The band excludes DC and
    // Nyquist, so their imaginary parts stay zero as the inverse real FFT requires.
    let mut quadrature: Vec<Complex<f64>> =
        spectrum.iter().map(|c| Complex::new(c.im, -c.re)).collect();
    let mut in_phase = inverse.make_output_vec();
    let mut hilbert = inverse.make_output_vec();
    inverse.process(&mut spectrum, &mut in_phase).unwrap();
    inverse.process(&mut quadrature, &mut hilbert).unwrap();

    let scale = 1.0 / n as f64;
    let mut squared: Vec<f64> = in_phase
        .iter()
        .zip(&hilbert)
        .map(|(a, b)| (a * scale).powi(2) + (b * scale).powi(2))
        .collect();
    let mean = squared.iter().sum::<f64>() / n as f64;
    for value in &mut squared {
        *value -= mean;
    }
    amplitude_spectrum(&squared, sample_rate_hz)
}

/// Largest magnitude within one bin of `frequency_hz`.
pub fn amplitude_near(spectrum: &Spectrum, frequency_hz: f64) -> f64 {
    let centre = (frequency_hz / spectrum.bin_hz).round() as usize;
    spectrum.magnitude[centre.saturating_sub(1)..=centre + 1]
        .iter()
        .copied()
        .fold(0.0, f64::max)
}

/// The peak within `frequency_hz · (1 ± tolerance)` over the median of the bins within 15 Hz
/// of it (the peak's search range and two bins either side excluded), in dB.
pub fn envelope_peak_db(spectrum: &Spectrum, frequency_hz: f64, tolerance: f64) -> f64 {
    let bin = |f: f64| (f / spectrum.bin_hz).round() as isize;
    let lo = bin(frequency_hz * (1.0 - tolerance));
    let hi = bin(frequency_hz * (1.0 + tolerance));
    let peak = (lo..=hi)
        .map(|k| spectrum.magnitude[k as usize])
        .fold(0.0, f64::max);
    let mut background: Vec<f64> = (bin(frequency_hz - 15.0)..=bin(frequency_hz + 15.0))
        .filter(|&k| k >= 1 && (k < lo - 2 || k > hi + 2))
        .map(|k| spectrum.magnitude[k as usize])
        .collect();
    background.sort_by(f64::total_cmp);
    let median = background[background.len() / 2];
    20.0 * (peak / median).log10()
}
