//! Degradation over life: one sensor's health indicator, the onset of degradation and a
//! remaining-life estimate. Pure: every observation carries its own time.
//!
//! # Health indicator
//!
//! `hi = ln(rms / rms₀)`, the natural log of the window's RMS acceleration over the median
//! RMS of the sensor's first `commissioning` observations: 0 while the machine is as it was
//! commissioned, `ln 2 ≈ 0.69` at twice the vibration. A log ratio makes one rule serve machines
//! and sensors of any level. It is smoothed by an exponential moving average (weight
//! `smoothing` for the newest observation).
//!
//! # Onset
//!
//! A one-sided CUSUM on the smoothed indicator in units of the commissioning spread: with
//! `z = (hi_smoothed − m₀) / σ₀` (`m₀`, `σ₀` the median and 1.4826 × median absolute deviation
//! of the commissioning indicators, `σ₀` at least `min_sigma`), `S ← max(0, S + z − drift)`;
//! degradation has begun when `S ≥ threshold`. Healthy noise averages `z ≈ 0`, so `S` stays
//! near 0; a sustained rise of a few σ reaches the threshold in a few observations. Onset is
//! latched: it is a property of the bearing's life, not of one window.
//!
//! # Remaining life
//!
//! From onset, the indicator is modelled as exponential growth over its onset level,
//! `hi(t) − hi_onset = a · e^{b (t − t_onset)}`, fitted by least squares on
//! `ln(hi − hi_onset)` (observations at least `min_excess` over the onset level), and
//! extrapolated to `failure_hi` (by default `ln 10`: ten times the commissioning RMS). The
//! interval comes from the fit's growth rate ± two standard errors. No estimate is made with
//! fewer than `min_fit_points` points, a growth rate not above zero, or an indicator already
//! past the failure level (remaining life 0).
//!
//! When not to trust it: before onset there is no estimate at all; just after onset the fit
//! rests on a few points and its interval is wide; a bearing whose vibration rises in steps
//! rather than exponentially (a spall that breaks out at once) is estimated too long until the
//! step; and `failure_hi` is a convention (ten times the healthy RMS), not the machine's own
//! limit.

use crate::analyze::baseline::median;
use serde::{Deserialize, Serialize};

/// `[health]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Observations whose median RMS and indicator spread make the reference.
    pub commissioning: usize,
    /// Weight of the newest observation in the smoothed indicator, (0, 1].
    pub smoothing: f64,
    /// CUSUM allowance per observation, in commissioning σ.
    pub drift: f64,
    /// CUSUM level that declares onset, in commissioning σ.
    pub threshold: f64,
    /// Least commissioning σ of the indicator (a very steady commissioning would otherwise make
    /// any wobble an onset).
    pub min_sigma: f64,
    /// Indicator at failure (`ln` of RMS over commissioning RMS).
    pub failure_hi: f64,
    /// Least excess over the onset level for a point to enter the fit.
    pub min_excess: f64,
    /// Least points in the fit for an estimate.
    pub min_fit_points: usize,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            commissioning: 30,
            smoothing: 0.2,
            drift: 1.0,
            threshold: 12.0,
            min_sigma: 0.05,
            failure_hi: std::f64::consts::LN_10,
            min_excess: 0.02,
            min_fit_points: 5,
        }
    }
}

impl HealthConfig {
    /// Checks ranges; returns `(field, reason)` for each problem.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if self.commissioning < 5 {
            p.push((
                "commissioning",
                format!("{} must be at least 5", self.commissioning),
            ));
        }
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            p.push((
                "smoothing",
                format!("{} must be within (0, 1]", self.smoothing),
            ));
        }
        for (field, v) in [
            ("drift", self.drift),
            ("threshold", self.threshold),
            ("min_sigma", self.min_sigma),
            ("failure_hi", self.failure_hi),
            ("min_excess", self.min_excess),
        ] {
            if !(v.is_finite() && v > 0.0) {
                p.push((field, format!("{v} must be > 0")));
            }
        }
        if self.min_fit_points < 3 {
            p.push((
                "min_fit_points",
                format!("{} must be at least 3", self.min_fit_points),
            ));
        }
        p
    }
}

/// Where a sensor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Still learning the reference.
    Commissioning,
    /// As commissioned.
    Healthy,
    /// Onset detected.
    Degrading,
    /// The indicator has reached `failure_hi`.
    Failed,
}

/// A remaining-life estimate, s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rul {
    /// Best estimate.
    pub rul_s: f64,
    /// Lower end of the interval.
    pub low_s: f64,
    /// Upper end of the interval (infinite when the slowest plausible growth is flat).
    pub high_s: f64,
}

/// The tracker's view after one observation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HealthState {
    /// The observation's time, s.
    pub t_s: f64,
    /// Smoothed health indicator (0 until commissioned).
    pub health: f64,
    /// CUSUM statistic, commissioning σ.
    pub cusum: f64,
    /// Stage.
    pub stage: Stage,
    /// When onset was detected, s.
    pub onset_s: Option<f64>,
    /// Remaining life, from onset on.
    pub rul: Option<Rul>,
}

/// One sensor's health over its life.
#[derive(Debug, Clone)]
pub struct HealthTracker {
    cfg: HealthConfig,
    commissioning_rms: Vec<f64>,
    reference: Option<Reference>,
    smoothed: f64,
    cusum: f64,
    onset: Option<(f64, f64)>,
    since_onset: Vec<(f64, f64)>,
    failed: bool,
}

#[derive(Debug, Clone, Copy)]
struct Reference {
    rms: f64,
    median: f64,
    sigma: f64,
}

impl HealthTracker {
    /// A tracker that has seen nothing.
    pub fn new(cfg: HealthConfig) -> Self {
        Self {
            cfg,
            commissioning_rms: Vec::with_capacity(cfg.commissioning),
            reference: None,
            smoothed: 0.0,
            cusum: 0.0,
            onset: None,
            since_onset: Vec::new(),
            failed: false,
        }
    }

    /// Adds one observation (RMS acceleration in g at time `t_s`, non-decreasing).
    pub fn observe(&mut self, t_s: f64, rms_g: f64) -> HealthState {
        let rms_g = rms_g.max(1e-12);
        let Some(r) = self.reference else {
            self.commissioning_rms.push(rms_g);
            if self.commissioning_rms.len() >= self.cfg.commissioning {
                self.commission();
            }
            return HealthState {
                t_s,
                health: 0.0,
                cusum: 0.0,
                stage: Stage::Commissioning,
                onset_s: None,
                rul: None,
            };
        };
        let hi = (rms_g / r.rms).ln();
        let a = self.cfg.smoothing;
        self.smoothed = a * hi + (1.0 - a) * self.smoothed;
        let z = (self.smoothed - r.median) / r.sigma;
        self.cusum = (self.cusum + z - self.cfg.drift).max(0.0);
        if self.onset.is_none() && self.cusum >= self.cfg.threshold {
            self.onset = Some((t_s, self.smoothed));
        }
        if self.smoothed >= self.cfg.failure_hi {
            self.failed = true;
        }
        let rul = self.onset.and_then(|(t0, hi0)| {
            self.since_onset.push((t_s - t0, self.smoothed - hi0));
            self.remaining_life(hi0)
        });
        HealthState {
            t_s,
            health: self.smoothed,
            cusum: self.cusum,
            stage: if self.failed {
                Stage::Failed
            } else if self.onset.is_some() {
                Stage::Degrading
            } else {
                Stage::Healthy
            },
            onset_s: self.onset.map(|o| o.0),
            rul,
        }
    }

    fn commission(&mut self) {
        let rms = median(&mut self.commissioning_rms.clone());
        let mut his: Vec<f64> = self
            .commissioning_rms
            .iter()
            .map(|x| (x / rms).ln())
            .collect();
        let m = median(&mut his);
        let mut dev: Vec<f64> = his.iter().map(|h| (h - m).abs()).collect();
        let sigma = (1.4826 * median(&mut dev)).max(self.cfg.min_sigma);
        self.reference = Some(Reference {
            rms,
            median: m,
            sigma,
        });
        self.smoothed = m;
    }

    /// Least-squares exponential growth through the points since onset, extrapolated to the
    /// failure level.
    fn remaining_life(&self, hi0: f64) -> Option<Rul> {
        if self.failed {
            return Some(Rul {
                rul_s: 0.0,
                low_s: 0.0,
                high_s: 0.0,
            });
        }
        let pts: Vec<(f64, f64)> = self
            .since_onset
            .iter()
            .filter(|p| p.1 >= self.cfg.min_excess)
            .map(|&(t, e)| (t, e.ln()))
            .collect();
        let n = pts.len();
        if n < self.cfg.min_fit_points {
            return None;
        }
        let nf = n as f64;
        let mt = pts.iter().map(|p| p.0).sum::<f64>() / nf;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / nf;
        let sxx: f64 = pts.iter().map(|p| (p.0 - mt).powi(2)).sum();
        if sxx <= 0.0 {
            return None;
        }
        let b = pts.iter().map(|p| (p.0 - mt) * (p.1 - my)).sum::<f64>() / sxx;
        let ln_a = my - b * mt;
        let resid: f64 = pts
            .iter()
            .map(|p| (p.1 - ln_a - b * p.0).powi(2))
            .sum::<f64>();
        let se_b = (resid / (nf - 2.0).max(1.0) / sxx).sqrt();
        let now = self.since_onset.last().map_or(0.0, |p| p.0);
        let target = (self.cfg.failure_hi - hi0).max(self.cfg.min_excess).ln();
        // Time from onset at which a·e^{b t} reaches the target, for growth rate `rate`.
        let reach = |rate: f64| {
            if rate <= 0.0 {
                f64::INFINITY
            } else {
                let ln_a_at = my - rate * mt;
                ((target - ln_a_at) / rate - now).max(0.0)
            }
        };
        if b <= 0.0 {
            return None;
        }
        Some(Rul {
            rul_s: reach(b),
            low_s: reach(b + 2.0 * se_b),
            high_s: reach(b - 2.0 * se_b),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic wobble of ±`amp` (relative) around 1.
    fn wobble(i: usize, amp: f64) -> f64 {
        1.0 + amp * ((i as f64 * 1.7).sin() * 0.7 + (i as f64 * 0.37).cos() * 0.3)
    }

    #[test]
    fn a_healthy_machine_never_reaches_onset() {
        let mut t = HealthTracker::new(HealthConfig::default());
        for i in 0..5000 {
            let s = t.observe(i as f64 * 10.0, 0.4 * wobble(i, 0.15));
            assert!(s.onset_s.is_none(), "observation {i}: {s:?}");
            assert!(s.rul.is_none());
        }
    }

    #[test]
    fn exponential_growth_is_detected_and_its_life_estimated() {
        // Healthy for 2000 s, then the RMS grows as 1 + 0.05 (e^{(t − 2000)/500} − 1) until it
        // reaches ten times the healthy level at t_fail.
        let cfg = HealthConfig::default();
        let mut t = HealthTracker::new(cfg);
        let rms = |ts: f64| {
            let g = if ts < 2000.0 {
                1.0
            } else {
                1.0 + 0.05 * (((ts - 2000.0) / 500.0).exp() - 1.0)
            };
            0.4 * g
        };
        let t_fail = 2000.0 + 500.0 * (1.0 + 9.0 / 0.05f64).ln();
        let mut onset = None;
        let mut last = None;
        let mut i = 0;
        loop {
            let ts = i as f64 * 10.0;
            let s = t.observe(ts, rms(ts) * wobble(i, 0.05));
            if s.stage == Stage::Failed {
                break;
            }
            if onset.is_none() {
                onset = s.onset_s;
            }
            if let Some(rul) = s.rul.filter(|_| ts > t_fail - 600.0) {
                last = Some((ts, rul));
            }
            i += 1;
            assert!(ts < 10_000.0, "never failed");
        }
        let onset = onset.expect("onset detected");
        assert!(
            onset > 2000.0 && onset < t_fail - 1000.0,
            "onset at {onset} s"
        );
        let (ts, rul) = last.expect("estimates near the end");
        let truth = t_fail - ts;
        assert!(
            (rul.rul_s - truth).abs() < 0.5 * truth.max(100.0),
            "at {ts} s: {rul:?}, truth {truth} s"
        );
        assert!(rul.low_s <= rul.rul_s && rul.rul_s <= rul.high_s);
    }

    #[test]
    fn bad_settings_are_named() {
        let cfg = HealthConfig {
            commissioning: 1,
            smoothing: 0.0,
            drift: -1.0,
            min_fit_points: 2,
            ..HealthConfig::default()
        };
        let fields: Vec<_> = cfg.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(
            fields,
            ["commissioning", "smoothing", "drift", "min_fit_points"]
        );
        assert!(HealthConfig::default().problems().is_empty());
    }
}
