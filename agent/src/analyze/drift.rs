//! Model-input drift: how far the live inputs of an asset are from the data the active model
//! was trained on.
//!
//! A model package's manifest carries the training distribution of every model input as
//! quantiles ([`InputDistribution`]: by default the deciles, with the minimum and maximum at
//! probabilities 0 and 1). Two things are computed against it:
//!
//! - per window, whether any input lies **outside the training range** (below the training
//!   minimum or above the maximum): the model then extrapolates, and its class is a guess about
//!   a machine it has never seen anything like;
//! - per asset and summary interval, the **population-stability index** of each input
//!   ([`PsiCounter`]): the interval's windows are counted in the bins between the training
//!   quantiles, and `PSI = Σ (o − e) · ln(o / e)` over the bins, with `e` the training share of
//!   the bin (0.1 for deciles) and `o` the interval's share, both floored at [`PSI_FLOOR`] so an
//!   empty bin gives a large but finite value. The usual reading: below 0.1 the population is
//!   stable, 0.1 to 0.25 it has moved, above 0.25 it has moved a lot. Two caveats, written in
//!   docs/feedback-loop.md: with `n` windows in an interval and `k` bins, a sample drawn from
//!   the training distribution itself scores about `(k − 1) / n` on average (0.075 for 120
//!   windows in 10 bins), and the training set mixes healthy and faulty machines, so one healthy
//!   machine fills only part of it and scores above zero. The PSI is a trend to watch per asset
//!   (a step up after a repair, a model change or a new load), not an alarm threshold.

use serde::{Deserialize, Serialize};

/// Bin shares are floored at this value before the logarithm.
pub const PSI_FLOOR: f64 = 1e-4;

/// The training distribution of the model inputs (the manifest's `input_distribution`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputDistribution {
    /// Cumulative probabilities of the quantiles, increasing from 0 to 1.
    pub probabilities: Vec<f64>,
    /// Per input (in the manifest's feature order), its quantiles at `probabilities`.
    pub quantiles: Vec<Vec<f64>>,
}

impl InputDistribution {
    /// Checks the shape against `inputs` model inputs: at least two probabilities from 0 to 1,
    /// increasing; one non-decreasing, finite quantile list per input.
    pub fn check(&self, inputs: usize) -> Result<(), String> {
        let p = &self.probabilities;
        if p.len() < 2 {
            return Err("input_distribution.probabilities: fewer than 2".into());
        }
        if p[0] != 0.0 || p[p.len() - 1] != 1.0 || p.windows(2).any(|w| w[1] <= w[0]) {
            return Err("input_distribution.probabilities: must rise strictly from 0 to 1".into());
        }
        if self.quantiles.len() != inputs {
            return Err(format!(
                "input_distribution.quantiles: {} inputs, the model has {inputs}",
                self.quantiles.len()
            ));
        }
        for (i, q) in self.quantiles.iter().enumerate() {
            if q.len() != p.len() {
                return Err(format!(
                    "input_distribution.quantiles[{i}]: {} values for {} probabilities",
                    q.len(),
                    p.len()
                ));
            }
            if q.iter().any(|v| !v.is_finite()) || q.windows(2).any(|w| w[1] < w[0]) {
                return Err(format!(
                    "input_distribution.quantiles[{i}]: not finite and non-decreasing"
                ));
            }
        }
        Ok(())
    }

    /// Number of bins between the quantiles.
    pub fn bins(&self) -> usize {
        self.probabilities.len() - 1
    }

    /// The bin of value `x` of input `i`: the interior quantiles split the line, so values
    /// below the training minimum fall in the first bin and above the maximum in the last.
    fn bin(&self, i: usize, x: f64) -> usize {
        let q = &self.quantiles[i];
        let interior = &q[1..q.len() - 1];
        interior.partition_point(|&edge| edge <= x)
    }

    /// The indices of the inputs of `x` outside the training range `[min, max]`.
    pub fn out_of_range(&self, x: &[f32]) -> Vec<usize> {
        x.iter()
            .zip(&self.quantiles)
            .enumerate()
            .filter(|(_, (v, q))| {
                let v = f64::from(**v);
                v < q[0] || v > q[q.len() - 1]
            })
            .map(|(i, _)| i)
            .collect()
    }
}

/// Counts of one interval's windows in the bins of an [`InputDistribution`].
#[derive(Debug, Clone, PartialEq)]
pub struct PsiCounter {
    counts: Vec<Vec<u32>>,
    windows: u32,
    out_of_range_windows: u32,
}

/// The PSI of one interval against the training distribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputDrift {
    /// Largest PSI over the inputs.
    pub psi_max: f64,
    /// Mean PSI over the inputs.
    pub psi_mean: f64,
    /// The input with the largest PSI.
    pub worst_input: String,
    /// Windows with an input outside the training range.
    pub out_of_range_windows: u32,
    /// Windows counted.
    pub windows: u32,
    /// PSI per input, in model-input order.
    pub psi: Vec<f64>,
}

impl PsiCounter {
    /// An empty count for `dist`.
    pub fn new(dist: &InputDistribution) -> Self {
        Self {
            counts: vec![vec![0; dist.bins()]; dist.quantiles.len()],
            windows: 0,
            out_of_range_windows: 0,
        }
    }

    /// Counts one window's inputs `x`; `out_of_range`: it had an input outside the range.
    pub fn push(&mut self, dist: &InputDistribution, x: &[f32], out_of_range: bool) {
        for (i, v) in x.iter().enumerate().take(self.counts.len()) {
            self.counts[i][dist.bin(i, f64::from(*v))] += 1;
        }
        self.windows += 1;
        self.out_of_range_windows += u32::from(out_of_range);
    }

    /// The PSI per input and its summary; `None` before any window.
    pub fn finish(&self, dist: &InputDistribution, names: &[&str]) -> Option<InputDrift> {
        if self.windows == 0 {
            return None;
        }
        let n = f64::from(self.windows);
        let psi: Vec<f64> = self
            .counts
            .iter()
            .map(|bins| {
                bins.iter()
                    .zip(dist.probabilities.windows(2))
                    .map(|(&c, p)| {
                        let e = (p[1] - p[0]).max(PSI_FLOOR);
                        let o = (f64::from(c) / n).max(PSI_FLOOR);
                        (o - e) * (o / e).ln()
                    })
                    .sum()
            })
            .collect();
        let (worst, psi_max) = psi
            .iter()
            .copied()
            .enumerate()
            .fold((0, f64::MIN), |b, (i, v)| if v > b.1 { (i, v) } else { b });
        Some(InputDrift {
            psi_max,
            psi_mean: psi.iter().sum::<f64>() / psi.len().max(1) as f64,
            worst_input: names.get(worst).map(|s| s.to_string()).unwrap_or_default(),
            out_of_range_windows: self.out_of_range_windows,
            windows: self.windows,
            psi,
        })
    }
}

/// The quantiles of `values` at `probabilities` (linear interpolation between order
/// statistics, numpy's default), for building a distribution in tests and tools.
pub fn quantiles(values: &mut [f64], probabilities: &[f64]) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    probabilities
        .iter()
        .map(|&p| {
            if n == 0 {
                return f64::NAN;
            }
            let pos = p * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deciles() -> Vec<f64> {
        (0..=10).map(|i| f64::from(i) / 10.0).collect()
    }

    /// One input uniform on [0, 100), another on [-1, 1).
    fn dist() -> InputDistribution {
        let p = deciles();
        let mut a: Vec<f64> = (0..1000).map(|i| f64::from(i) / 10.0).collect();
        let mut b: Vec<f64> = (0..1000).map(|i| f64::from(i) / 500.0 - 1.0).collect();
        InputDistribution {
            quantiles: vec![quantiles(&mut a, &p), quantiles(&mut b, &p)],
            probabilities: p,
        }
    }

    #[test]
    fn a_sample_like_the_training_data_is_stable_and_a_moved_one_is_not() {
        let d = dist();
        d.check(2).unwrap();
        let mut same = PsiCounter::new(&d);
        let mut moved = PsiCounter::new(&d);
        for i in 0..200 {
            let u = (f64::from(i) * 0.618_033_988_7).fract();
            let x = [(u * 99.9) as f32, (u * 2.0 - 1.0) as f32];
            let oor = !d.out_of_range(&x).is_empty();
            same.push(&d, &x, oor);
            // The first input shifted up by 40 (of a range of 100): most windows land in the
            // top bins, a few beyond the training maximum.
            let y = [(u * 99.9 + 40.0) as f32, (u * 2.0 - 1.0) as f32];
            let oor = !d.out_of_range(&y).is_empty();
            moved.push(&d, &y, oor);
        }
        let s = same.finish(&d, &["a", "b"]).unwrap();
        let m = moved.finish(&d, &["a", "b"]).unwrap();
        assert!(s.psi_max < 0.1, "{s:?}");
        assert_eq!(s.out_of_range_windows, 0);
        assert!(m.psi_max > 1.0, "{m:?}");
        assert_eq!(m.worst_input, "a");
        assert!(m.psi[1] < 0.1, "{m:?}");
        assert!(m.out_of_range_windows > 50, "{m:?}");
        assert_eq!(m.windows, 200);
    }

    #[test]
    fn out_of_range_names_the_inputs_beyond_the_training_extremes() {
        let d = dist();
        assert!(d.out_of_range(&[50.0, 0.0]).is_empty());
        assert_eq!(d.out_of_range(&[-0.5, 0.0]), vec![0]);
        assert_eq!(d.out_of_range(&[120.0, 1.5]), vec![0, 1]);
    }

    #[test]
    fn malformed_distributions_are_refused_with_the_field() {
        let mut d = dist();
        assert!(d.check(3).unwrap_err().contains("2 inputs"));
        d.quantiles[1].reverse();
        assert!(d.check(2).unwrap_err().contains("quantiles[1]"));
        let mut d = dist();
        d.probabilities[0] = 0.05;
        assert!(d.check(2).unwrap_err().contains("probabilities"));
    }

    #[test]
    fn no_window_no_drift() {
        let d = dist();
        assert!(PsiCounter::new(&d).finish(&d, &["a", "b"]).is_none());
    }
}
