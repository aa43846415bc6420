//! Deterministic test signals: tones, Gaussian noise and resonant impulse trains.
#![allow(missing_docs, missing_debug_implementations)]
//!
//! A tiny seeded generator (SplitMix64 with Box–Muller) keeps the signals identical on every
//! platform and dependency version, so thresholds checked against them stay meaningful.

use std::f64::consts::TAU;

/// SplitMix64: small, fast, and good enough for test noise.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal.
    pub fn gaussian(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
    }
}

/// `amplitude_g · sin(2π f t + phase)` sampled at `fs`.
pub fn tone(len: usize, fs: f64, f_hz: f64, amplitude_g: f64, phase: f64) -> Vec<f64> {
    (0..len)
        .map(|i| amplitude_g * (TAU * f_hz * i as f64 / fs + phase).sin())
        .collect()
}

/// White Gaussian noise of standard deviation `sigma_g`.
pub fn noise(len: usize, sigma_g: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| sigma_g * rng.gaussian()).collect()
}

/// Impacts repeating at `rate_hz` (each interval jittered by `jitter` × a uniform draw in
/// ±1), each ringing a resonance at `resonance_hz` with damping ratio `damping` and initial
/// amplitude `amplitude_g`.
pub struct Impacts {
    pub rate_hz: f64,
    pub jitter: f64,
    pub resonance_hz: f64,
    pub damping: f64,
    pub amplitude_g: f64,
}

impl Impacts {
    pub fn render(&self, len: usize, fs: f64, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let mut out = vec![0.0; len];
        let decay_per_s = self.damping * TAU * self.resonance_hz;
        let ring_len = ((8.0 / decay_per_s) * fs) as usize;
        let mut t = rng.uniform() / self.rate_hz;
        while t < len as f64 / fs {
            let start = (t * fs).ceil() as usize;
            for (i, y) in out.iter_mut().enumerate().skip(start).take(ring_len) {
                let dt = i as f64 / fs - t;
                *y += self.amplitude_g
                    * (-decay_per_s * dt).exp()
                    * (TAU * self.resonance_hz * dt).sin();
            }
            t += (1.0 + self.jitter * (2.0 * rng.uniform() - 1.0)) / self.rate_hz;
        }
        out
    }
}

/// Element-wise sum, as the f32 samples the extractor takes.
pub fn mix(parts: &[&[f64]]) -> Vec<f32> {
    let len = parts[0].len();
    (0..len)
        .map(|i| parts.iter().map(|p| p[i]).sum::<f64>() as f32)
        .collect()
}
