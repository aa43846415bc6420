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
//! Three more indicators are tracked the same way, each as the log of its value over its own
//! commissioning median, so all are unitless and 0 while as commissioned:
//!
//! - `hf`: the RMS above 1 kHz (the bands where bearing impacts ring the structure), which rises
//!   before the overall RMS does when a defect starts;
//! - `envelope`: the strongest bearing line family's score (its dB over the envelope spectrum's
//!   background, as a log amplitude: `dB · ln 10 / 20`), its spread taken as at least 3 dB
//!   (half a healthy window's chance line);
//! - `kurtosis`: the log of the window's kurtosis (impulsiveness).
//!
//! # Onset
//!
//! A one-sided CUSUM on each smoothed indicator in units of its commissioning spread: with
//! `z = (x_smoothed − m₀) / σ₀` (`m₀`, `σ₀` the median and 1.4826 × median absolute deviation
//! of the commissioning values, `σ₀` at least `min_sigma`), `S ← max(0, S + z − drift)`; an
//! indicator has risen when `S ≥ threshold` (latched). Healthy noise averages `z ≈ 0`, so `S`
//! stays near 0; a sustained rise of a few σ reaches the threshold in a few observations.
//! Degradation has begun when the health indicator (RMS) has risen. With `corroborated_onset`
//! also when two of the three others have (each alone moves for reasons other than wear: a new
//! duty point, a passing impact, a line that comes and goes). That is off by default: on the
//! FEMTO bearings it declared onset at 21 % of one bearing's life while its RMS was flat. The
//! supporting indicators are reported either way (`indicators`, with which have risen). Onset is
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
use std::path::{Path, PathBuf};

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
    /// Also declare onset when two supporting indicators (RMS above 1 kHz, envelope line
    /// family, kurtosis) have risen together, the RMS not yet. Off by default: on the FEMTO
    /// bearings it called onset at 21 % of one bearing's life on a flat RMS (docs/model.md).
    pub corroborated_onset: bool,
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
            corroborated_onset: false,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rul {
    /// Best estimate.
    pub rul_s: f64,
    /// Lower end of the interval.
    pub low_s: f64,
    /// Upper end of the interval (infinite when the slowest plausible growth is flat).
    pub high_s: f64,
}

/// The tracker's view after one observation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HealthState {
    /// The observation's time on the tracker's timeline, s.
    pub t_s: f64,
    /// Smoothed health indicator (0 until commissioned).
    pub health: f64,
    /// CUSUM statistic, commissioning σ.
    pub cusum: f64,
    /// Stage.
    pub stage: Stage,
    /// When onset was detected, s on the tracker's timeline.
    pub onset_s: Option<f64>,
    /// Remaining life, from onset on.
    pub rul: Option<Rul>,
    /// The supporting indicators.
    pub indicators: Indicators,
    /// What declared the onset.
    pub onset_by: Option<OnsetBy>,
}

/// What alerts, summaries and window reports carry of a sensor's health: JSON-friendly (no
/// infinities: an open-ended interval has no `rul_high_s`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Where the sensor is in its life.
    pub stage: Stage,
    /// Smoothed health indicator, `ln` of RMS over commissioning RMS.
    pub indicator: f64,
    /// CUSUM statistic, commissioning σ (onset at `[health] threshold`).
    pub cusum: f64,
    /// Sensor time of the onset of degradation, s.
    pub onset_s: Option<f64>,
    /// Seconds since onset at this window.
    pub since_onset_s: Option<f64>,
    /// Remaining useful life, best estimate, s.
    pub rul_s: Option<f64>,
    /// Lower end of its interval, s.
    pub rul_low_s: Option<f64>,
    /// Upper end of its interval, s (none: unbounded).
    pub rul_high_s: Option<f64>,
    /// The supporting indicators.
    #[serde(default)]
    pub indicators: Indicators,
    /// What declared the onset.
    #[serde(default)]
    pub onset_by: Option<OnsetBy>,
}

impl From<HealthState> for HealthReport {
    fn from(h: HealthState) -> Self {
        let finite = |v: f64| v.is_finite().then_some(v);
        Self {
            stage: h.stage,
            indicator: h.health,
            cusum: h.cusum,
            onset_s: h.onset_s,
            since_onset_s: h.onset_s.map(|o| h.t_s - o),
            rul_s: h.rul.and_then(|r| finite(r.rul_s)),
            rul_low_s: h.rul.and_then(|r| finite(r.low_s)),
            rul_high_s: h.rul.and_then(|r| finite(r.high_s)),
            indicators: h.indicators,
            onset_by: h.onset_by,
        }
    }
}

impl HealthReport {
    /// One sentence: the indicator as a multiple of the commissioning RMS, onset and life left.
    pub fn explain(&self) -> String {
        let mut s = format!(
            "RMS {:.1}x commissioning (health indicator {:.2})",
            self.indicator.exp(),
            self.indicator
        );
        if let Some(since) = self.since_onset_s {
            s.push_str(&format!(", degrading for {}", human_s(since)));
        }
        match (self.rul_s, self.rul_low_s, self.rul_high_s) {
            (Some(r), Some(lo), Some(hi)) => s.push_str(&format!(
                ", remaining life {} ({} to {})",
                human_s(r),
                human_s(lo),
                human_s(hi)
            )),
            (Some(r), Some(lo), None) => s.push_str(&format!(
                ", remaining life {} (at least {})",
                human_s(r),
                human_s(lo)
            )),
            _ => {}
        }
        s
    }
}

/// `90 s`, `12 min`, `5.2 h`, `3.1 d`.
fn human_s(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

/// Least squares of `y` on `t`, kept as running moments (Welford): constant memory however long
/// a bearing degrades, and the same fit as over the stored points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct OnlineFit {
    n: u64,
    mean_t: f64,
    mean_y: f64,
    m2_t: f64,
    m2_y: f64,
    c_ty: f64,
}

impl OnlineFit {
    fn add(&mut self, t: f64, y: f64) {
        self.n += 1;
        let n = self.n as f64;
        let dt = t - self.mean_t;
        self.mean_t += dt / n;
        let dy = y - self.mean_y;
        self.mean_y += dy / n;
        self.m2_t += dt * (t - self.mean_t);
        self.m2_y += dy * (y - self.mean_y);
        self.c_ty += dt * (y - self.mean_y);
    }
}

/// What one window says of a sensor's health: the RMS, and what else the window has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// RMS acceleration, g.
    pub rms_g: f64,
    /// RMS above 1 kHz, g.
    pub hf_rms_g: Option<f64>,
    /// The strongest bearing line family's score, dB over background.
    pub envelope_db: Option<f64>,
    /// Kurtosis.
    pub kurtosis: Option<f64>,
}

impl Observation {
    /// An observation of the RMS alone.
    pub fn rms(rms_g: f64) -> Self {
        Self {
            rms_g,
            hf_rms_g: None,
            envelope_db: None,
            kurtosis: None,
        }
    }
}

/// The supporting indicators after one observation: each smoothed, as the log of its value over
/// its commissioning median (0 until commissioned, or when not observed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Indicators {
    /// RMS above 1 kHz.
    pub hf: f64,
    /// Strongest bearing line family, as a log amplitude.
    pub envelope: f64,
    /// Kurtosis.
    pub kurtosis: f64,
    /// Which of them have risen (CUSUM at the threshold, latched), in that order.
    pub risen: [bool; 3],
}

/// What declared the onset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnsetBy {
    /// The health indicator (RMS).
    Rms,
    /// Two of the supporting indicators together.
    Corroborated,
}

/// One indicator's commissioning reference, smoothing and CUSUM.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Channel {
    commissioning: Vec<f64>,
    /// Median and spread of the commissioning values, once learned.
    reference: Option<(f64, f64)>,
    /// Smoothed value minus the reference median.
    smoothed: f64,
    cusum: f64,
    risen: bool,
}

impl Channel {
    /// Adds a value (a log; NaN: not observed), its commissioning spread at least `min_sigma`;
    /// returns the smoothed excess once commissioned.
    fn push(&mut self, x: f64, cfg: &HealthConfig, min_sigma: f64) -> Option<f64> {
        let Some((median0, sigma)) = self.reference else {
            if x.is_finite() {
                self.commissioning.push(x);
            }
            if self.commissioning.len() >= cfg.commissioning {
                let m = median(&mut self.commissioning.clone());
                let mut dev: Vec<f64> = self.commissioning.iter().map(|v| (v - m).abs()).collect();
                let sigma = (1.4826 * median(&mut dev)).max(min_sigma);
                self.reference = Some((m, sigma));
                self.smoothed = 0.0;
                // The reference is all that is kept of commissioning.
                self.commissioning = Vec::new();
            }
            return None;
        };
        if x.is_finite() {
            let a = cfg.smoothing;
            self.smoothed = a * (x - median0) + (1.0 - a) * self.smoothed;
            self.cusum = (self.cusum + self.smoothed / sigma - cfg.drift).max(0.0);
            if self.cusum >= cfg.threshold {
                self.risen = true;
            }
        }
        Some(self.smoothed)
    }
}

/// One sensor's health over its life. Serializable, so the agent keeps it across restarts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthTracker {
    #[serde(skip)]
    cfg: HealthConfig,
    /// `ln` RMS: the health indicator.
    rms: Channel,
    /// `ln` RMS above 1 kHz, `ln` line-family amplitude, `ln` kurtosis.
    support: [Channel; 3],
    /// Time, smoothed health indicator and cause at onset.
    onset: Option<(f64, f64, OnsetBy)>,
    /// Fit of `ln(hi − hi_onset)` on time since onset.
    fit: OnlineFit,
    /// Time since onset of the latest observation.
    since_onset_s: f64,
    failed: bool,
    /// Latest time seen on the caller's clock, and what is added to that clock to keep the
    /// tracker's timeline non-decreasing (a sensor that restarts its clock).
    last_input_s: Option<f64>,
    offset_s: f64,
    /// The state after the latest observation.
    last: Option<HealthState>,
}

impl HealthTracker {
    /// A tracker that has seen nothing.
    pub fn new(cfg: HealthConfig) -> Self {
        Self {
            cfg,
            rms: Channel::default(),
            support: Default::default(),
            onset: None,
            fit: OnlineFit::default(),
            since_onset_s: 0.0,
            failed: false,
            last_input_s: None,
            offset_s: 0.0,
            last: None,
        }
    }

    /// The state after the latest observation, if any.
    pub fn last(&self) -> Option<HealthState> {
        self.last
    }

    /// Adds one observation: RMS acceleration in g at time `t_s` of the caller's clock (the
    /// sensor's). A clock that goes back (a sensor that restarted) is joined on where it was, so
    /// the tracker's timeline never runs backwards; memory stays constant.
    pub fn observe(&mut self, t_s: f64, rms_g: f64) -> HealthState {
        self.observe_with(t_s, &Observation::rms(rms_g))
    }

    /// [`Self::observe`] with the supporting indicators a window has.
    pub fn observe_with(&mut self, t_s: f64, o: &Observation) -> HealthState {
        if let Some(last) = self.last_input_s
            && t_s + self.offset_s < last
        {
            self.offset_s = last - t_s;
        }
        let t_s = t_s + self.offset_s;
        self.last_input_s = Some(t_s);
        let state = self.step(t_s, o);
        self.last = Some(state);
        state
    }

    fn step(&mut self, t_s: f64, o: &Observation) -> HealthState {
        let ln = |v: f64| {
            if v.is_finite() {
                v.max(1e-12).ln()
            } else {
                f64::NAN
            }
        };
        let cfg = self.cfg;
        let support_x = [
            o.hf_rms_g.map_or(f64::NAN, ln),
            o.envelope_db
                .map_or(f64::NAN, |db| db * std::f64::consts::LN_10 / 20.0),
            o.kurtosis.map_or(f64::NAN, ln),
        ];
        let mut indicators = Indicators::default();
        let mut values = [0.0; 3];
        // A healthy envelope spectrum's strongest family reads 0 in most windows and a chance
        // line of about 6 dB in others (docs/features.md, "Line families"): its spread is at
        // least half of that, 3 dB, whatever commissioning happened to see.
        let min_sigma = [
            cfg.min_sigma,
            cfg.min_sigma.max(3.0 * std::f64::consts::LN_10 / 20.0),
            cfg.min_sigma,
        ];
        for (k, (c, x)) in self.support.iter_mut().zip(support_x).enumerate() {
            values[k] = c.push(x, &cfg, min_sigma[k]).unwrap_or(0.0);
            indicators.risen[k] = c.risen;
        }
        [indicators.hf, indicators.envelope, indicators.kurtosis] = values;
        let rms = if o.rms_g.is_finite() { o.rms_g } else { 1e-12 };
        let Some(hi) = self.rms.push(ln(rms), &cfg, cfg.min_sigma) else {
            return HealthState {
                t_s,
                health: 0.0,
                cusum: 0.0,
                stage: Stage::Commissioning,
                onset_s: None,
                rul: None,
                indicators,
                onset_by: None,
            };
        };
        if self.onset.is_none() {
            let by = if self.rms.risen {
                Some(OnsetBy::Rms)
            } else if cfg.corroborated_onset && indicators.risen.iter().filter(|r| **r).count() >= 2
            {
                Some(OnsetBy::Corroborated)
            } else {
                None
            };
            if let Some(by) = by {
                self.onset = Some((t_s, hi, by));
            }
        }
        if hi >= cfg.failure_hi {
            self.failed = true;
        }
        let rul = self.onset.and_then(|(t0, hi0, _)| {
            let (dt, excess) = (t_s - t0, hi - hi0);
            self.since_onset_s = dt;
            if excess >= cfg.min_excess {
                self.fit.add(dt, excess.ln());
            }
            self.remaining_life(hi0)
        });
        HealthState {
            t_s,
            health: hi,
            cusum: self.rms.cusum,
            stage: if self.failed {
                Stage::Failed
            } else if self.onset.is_some() {
                Stage::Degrading
            } else {
                Stage::Healthy
            },
            onset_s: self.onset.map(|o| o.0),
            rul,
            indicators,
            onset_by: self.onset.map(|o| o.2),
        }
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
        let f = self.fit;
        if f.n < self.cfg.min_fit_points as u64 || f.m2_t <= 0.0 {
            return None;
        }
        let nf = f.n as f64;
        let (mt, my, sxx) = (f.mean_t, f.mean_y, f.m2_t);
        let b = f.c_ty / sxx;
        let resid = (f.m2_y - f.c_ty * f.c_ty / sxx).max(0.0);
        let se_b = (resid / (nf - 2.0).max(1.0) / sxx).sqrt();
        let now = self.since_onset_s;
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

    /// Where a tracker of `asset`'s sensor `sensor_id`, axis `axis` is kept under `data_dir`.
    pub fn path(data_dir: &Path, asset: &str, sensor_id: u32, axis: u8) -> PathBuf {
        data_dir.join("health").join(format!(
            "{}.{sensor_id}.{axis}.json",
            crate::analyze::persist::file_stem(asset)
        ))
    }

    /// Writes the tracker atomically (temporary file, fsync, rename, fsync of the directory).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec(&Persisted {
            format: HEALTH_FORMAT,
            tracker: self,
        })
        .map_err(std::io::Error::other)?;
        crate::analyze::persist::write_atomically(path, &text)
    }

    /// Reads a tracker saved by [`Self::save`], to go on with `cfg`; `Ok(None)` when there is
    /// none, an error when the file is not a tracker of this format.
    pub fn load(path: &Path, cfg: HealthConfig) -> std::io::Result<Option<Self>> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let p: Loaded = serde_json::from_slice(&text).map_err(std::io::Error::other)?;
        if p.format != HEALTH_FORMAT {
            return Err(std::io::Error::other(format!(
                "format {} (expected {HEALTH_FORMAT})",
                p.format
            )));
        }
        let mut tracker = p.tracker;
        tracker.cfg = cfg;
        Ok(Some(tracker))
    }
}

/// Version of the stored tracker.
const HEALTH_FORMAT: u32 = 2;

#[derive(Serialize)]
struct Persisted<'a> {
    format: u32,
    tracker: &'a HealthTracker,
}

#[derive(Deserialize)]
struct Loaded {
    format: u32,
    tracker: HealthTracker,
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
    fn a_saved_tracker_goes_on_where_it_was_and_a_clock_that_restarts_is_joined_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = HealthTracker::path(dir.path(), "fan/1", 7, 0);
        assert!(path.ends_with("health/fan_1.7.0.json"));
        let cfg = HealthConfig::default();
        let mut a = HealthTracker::new(cfg);
        let rms = |i: usize| {
            let ts = i as f64 * 10.0;
            let g = if ts < 2000.0 {
                1.0
            } else {
                1.0 + 0.05 * (((ts - 2000.0) / 500.0).exp() - 1.0)
            };
            0.4 * g * wobble(i, 0.05)
        };
        for i in 0..260 {
            a.observe(i as f64 * 10.0, rms(i));
        }
        a.save(&path).unwrap();
        let mut b = HealthTracker::load(&path, cfg).unwrap().unwrap();
        assert_eq!(b.last(), a.last());
        for i in 260..300 {
            assert_eq!(
                a.observe(i as f64 * 10.0, rms(i)),
                b.observe(i as f64 * 10.0, rms(i))
            );
        }
        assert!(a.last().unwrap().rul.is_some(), "{:?}", a.last());
        // The sensor restarts its clock at 0: the timeline goes on from 2990 s.
        let s = b.observe(5.0, rms(300));
        assert!((s.t_s - 2990.0).abs() < 1e-9, "{s:?}");
        let s = b.observe(15.0, rms(301));
        assert!((s.t_s - 3000.0).abs() < 1e-9, "{s:?}");
        assert!(
            HealthTracker::load(&dir.path().join("none.json"), cfg)
                .unwrap()
                .is_none()
        );
        std::fs::write(&path, b"{\"format\": 99, \"tracker\": {}}").unwrap();
        assert!(HealthTracker::load(&path, cfg).is_err());
    }

    #[test]
    fn two_supporting_indicators_together_declare_onset_when_asked_one_alone_never() {
        let run = |hf_grows: bool, kurtosis_grows: bool| {
            let mut t = HealthTracker::new(HealthConfig {
                corroborated_onset: true,
                ..HealthConfig::default()
            });
            let mut last = None;
            for i in 0..400 {
                let grow = if i < 200 {
                    1.0
                } else {
                    1.0 + 0.01 * (i - 200) as f64
                };
                // A healthy envelope: no line in most windows, a 6 dB chance line in every
                // third; the RMS steady throughout.
                let o = Observation {
                    rms_g: 0.4 * wobble(i, 0.05),
                    hf_rms_g: Some(0.1 * wobble(i + 7, 0.05) * if hf_grows { grow } else { 1.0 }),
                    envelope_db: Some(if i % 3 == 0 { 6.0 } else { 0.0 }),
                    kurtosis: Some(
                        3.0 * wobble(i + 3, 0.05) * if kurtosis_grows { grow } else { 1.0 },
                    ),
                };
                last = Some(t.observe_with(i as f64, &o));
            }
            last.unwrap()
        };
        let both = run(true, true);
        assert_eq!(both.onset_by, Some(OnsetBy::Corroborated), "{both:?}");
        // By default the same rise is reported, not called onset.
        let mut t = HealthTracker::new(HealthConfig::default());
        let mut state = None;
        for i in 0..400 {
            let grow = if i < 200 {
                1.0
            } else {
                1.0 + 0.01 * (i - 200) as f64
            };
            state = Some(t.observe_with(
                i as f64,
                &Observation {
                    rms_g: 0.4 * wobble(i, 0.05),
                    hf_rms_g: Some(0.1 * grow),
                    envelope_db: None,
                    kurtosis: Some(3.0 * grow),
                },
            ));
        }
        let state = state.unwrap();
        assert_eq!(state.onset_s, None);
        assert_eq!(state.indicators.risen, [true, false, true]);
        assert!(both.onset_s.unwrap() > 200.0);
        assert_eq!(both.indicators.risen, [true, false, true]);
        for one in [run(true, false), run(false, true), run(false, false)] {
            assert_eq!(one.onset_s, None, "{one:?}");
            assert!(
                !one.indicators.risen[1],
                "chance envelope lines never rise: {one:?}"
            );
        }
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
