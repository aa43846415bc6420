//! Per-asset learned baseline: what "normal" looks like for this machine, anomaly and drift.
//!
//! Commissioning collects the model-input vectors of an asset's first `windows` windows (or of
//! the windows after an explicit re-commissioning) and summarises each feature robustly: median
//! and scaled median absolute deviation (MAD × 1.4826, a standard-deviation estimate that a few
//! outliers cannot inflate). Afterwards every window gets:
//!
//! - an **anomaly score**: the root mean square of the three largest per-feature robust
//!   z-scores `|x − median| / scale` (each capped at 50), since a fault moves a few features a
//!   lot and an average over all 23 would dilute it; those features are reported as the top
//!   contributors;
//! - a **drift score**: over the last `drift_windows` windows, the mean over features of
//!   `|median(recent) − median(baseline)| / scale`, i.e. how far the machine's typical state
//!   has moved, in baseline standard deviations.
//!
//! Robust z-scores rather than a Mahalanobis distance: commissioning sets are small (hundreds of
//! windows against 23 correlated features, too few for a stable covariance inverse), and a
//! per-feature score can say *which* features moved, which an alert must explain.
//!
//! Commissioning also records which fault classes the classifier called on this asset (a class
//! at or above `[alerts] classifier_warning`) and how often, with the model version. A class the
//! model called on more than `[alerts] classifier_habitual_rate` of the commissioning windows,
//! but not on most of them, is *habitual* for the asset: the model reads something in this
//! machine's normal state as that fault now and then (a heavily loaded bearing's random
//! impacts, say), and the alert logic then counts the verdict only when the window is also
//! anomalous against the baseline ([`crate::analyze::alert`]). A class called on most commissioning
//! windows is the model's verdict on the machine, a fault present at installation, and stays a
//! finding.
//! When the model changes (a reload, an upgrade with a retrained model, or a baseline file from
//! before these rates were kept), the rates are learned again for the new model from the next
//! `windows` windows that are not anomalous, without re-learning the feature baseline; until
//! then the new model's calls count as in cold start.
//!
//! A baseline is persisted as JSON (`<data_dir>/baselines/<asset>.json`, written to a temporary
//! file, synced and renamed, so a power cut leaves the old or the new file, never half of one)
//! and loaded at start; it records the feature names, so a model update that changes the
//! inputs invalidates it rather than comparing different quantities.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

/// Format version of the persisted file.
pub const BASELINE_FORMAT: u32 = 1;

/// The anomaly score is the RMS of this many largest robust z-scores: a fault moves a few
/// features a lot, and averaging over all of them would dilute it.
pub const SCORED_FEATURES: usize = 3;

/// A fault class the model called on more than this share of the commissioning windows is
/// never habitual: that is the model's verdict on the machine's state (a fault already there
/// when the agent was installed), not a call it makes now and then on a healthy machine, and it
/// stays a finding.
pub const HABITUAL_MAX_RATE: f64 = 0.5;

/// Robust z-scores are capped at this value.
pub const Z_CAP: f64 = 50.0;

/// Settings of the baseline (`[baseline]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineConfig {
    /// Windows collected during commissioning.
    #[serde(default = "BaselineConfig::default_windows")]
    pub windows: usize,
    /// Windows in the recent set compared with the baseline for drift.
    #[serde(default = "BaselineConfig::default_drift_windows")]
    pub drift_windows: usize,
    /// Anomaly score at which a window counts as abnormal.
    #[serde(default = "BaselineConfig::default_anomaly_threshold")]
    pub anomaly_threshold: f64,
    /// Drift score at which the asset's typical state has moved enough for a `drift` warning.
    #[serde(default = "BaselineConfig::default_drift_threshold")]
    pub drift_threshold: f64,
}

impl BaselineConfig {
    /// 600 windows: 5 minutes of one axis at the default window length and overlap.
    pub const fn default_windows() -> usize {
        600
    }
    /// 60 windows.
    pub const fn default_drift_windows() -> usize {
        60
    }
    /// 6: a typical window of a healthy machine scores about 1.
    pub const fn default_anomaly_threshold() -> f64 {
        6.0
    }
    /// 1.5: on average over the inputs, the recent median 1.5 baseline deviations away. The
    /// demo's healthy and steadily faulty machines stay at 0.06-0.08 after commissioning; its
    /// pump whose outer race fails after commissioning reaches 3.2 (docs/feedback-loop.md).
    pub const fn default_drift_threshold() -> f64 {
        1.5
    }
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            windows: Self::default_windows(),
            drift_windows: Self::default_drift_windows(),
            anomaly_threshold: Self::default_anomaly_threshold(),
            drift_threshold: Self::default_drift_threshold(),
        }
    }
}

/// Errors loading or saving a baseline. Loading errors are recoverable: the asset starts
/// commissioning again.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// Reading or writing the file failed.
    #[error("baseline file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a baseline of this format.
    #[error("baseline file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The learned summary of one asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// [`BASELINE_FORMAT`].
    pub format: u32,
    /// Asset id.
    pub asset: String,
    /// Names of the features, in order.
    pub features: Vec<String>,
    /// Per-feature median.
    pub median: Vec<f64>,
    /// Per-feature robust scale (MAD × 1.4826, floored).
    pub scale: Vec<f64>,
    /// Windows it was learned from.
    pub windows: usize,
    /// Sensor time of the last commissioning window, µs.
    pub learned_at_us: u64,
    /// Fault classes the classifier called during commissioning, as a fraction of the
    /// commissioning windows (absent in files written before it was recorded).
    #[serde(default)]
    pub class_rates: BTreeMap<String, f64>,
    /// The model version those calls came from; `None` without a model, or when the model
    /// changed during commissioning (the rates then mean nothing).
    #[serde(default)]
    pub class_model: Option<String>,
}

/// Median of `values` (sorted in place); 0 when empty.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// The smallest change of a model input that matters, in its own unit; the floor of its
/// baseline scale. Chosen by the input's unit as its name states it (see `FEATURE_NAMES`).
pub fn min_scale(name: &str) -> f64 {
    if name.starts_with("log10_") {
        0.05 // ×1.12 in level
    } else if name.ends_with("_db") || name.contains("_db_") {
        1.5 // dB
    } else if name.ends_with("_energy_ratio") {
        0.02
    } else if name == "crest_factor" {
        0.2
    } else if name == "skewness" {
        0.1
    } else if name == "env_band_kurtosis" {
        0.5
    } else if name == "temperature_rise_c_per_min" {
        0.3 // °C/min
    } else {
        1e-3
    }
}

impl Baseline {
    /// Summarises commissioning vectors (all of the same length as `names`).
    pub fn learn(asset: &str, names: &[&str], vectors: &[Vec<f32>], learned_at_us: u64) -> Self {
        let n = names.len();
        let mut med = Vec::with_capacity(n);
        let mut scale = Vec::with_capacity(n);
        let mut column = Vec::with_capacity(vectors.len());
        for i in 0..n {
            column.clear();
            column.extend(vectors.iter().map(|v| f64::from(v[i])));
            let m = median(&mut column);
            for v in column.iter_mut() {
                *v = (*v - m).abs();
            }
            let mad = median(&mut column) * 1.4826;
            // A feature that barely moved during commissioning still needs a scale, or a
            // change too small to matter (0.1 dB, a temperature rate appearing once enough
            // readings exist) would score as a huge anomaly.
            let floor = min_scale(names[i]).max(m.abs() * 0.01);
            med.push(m);
            scale.push(mad.max(floor));
        }
        Self {
            format: BASELINE_FORMAT,
            asset: asset.to_string(),
            features: names.iter().map(|s| s.to_string()).collect(),
            median: med,
            scale,
            windows: vectors.len(),
            learned_at_us,
            class_rates: BTreeMap::new(),
            class_model: None,
        }
    }

    /// Whether `class` is habitual for this asset under model `model_version`: called on more
    /// than `rate` of the commissioning windows, but not on most of them
    /// ([`HABITUAL_MAX_RATE`]).
    pub fn habitual(&self, class: &str, model_version: &str, rate: f64) -> bool {
        self.class_model.as_deref() == Some(model_version)
            && self
                .class_rates
                .get(class)
                .is_some_and(|&r| r > rate && r <= HABITUAL_MAX_RATE)
    }

    /// Robust z-score of each feature, capped at [`Z_CAP`].
    pub fn z_scores(&self, x: &[f32]) -> Vec<f64> {
        x.iter()
            .zip(self.median.iter().zip(&self.scale))
            .map(|(&v, (&m, &s))| ((f64::from(v) - m).abs() / s).min(Z_CAP))
            .collect()
    }

    /// Anomaly score of one window and its `top` largest contributors `(name, z)`.
    pub fn anomaly(&self, x: &[f32], top: usize) -> (f64, Vec<(String, f64)>) {
        let z = self.z_scores(x);
        let mut order: Vec<usize> = (0..z.len()).collect();
        order.sort_by(|&a, &b| z[b].total_cmp(&z[a]));
        let k = SCORED_FEATURES.min(z.len()).max(1);
        let score = (order[..k.min(order.len())]
            .iter()
            .map(|&i| z[i] * z[i])
            .sum::<f64>()
            / k as f64)
            .sqrt();
        let contributors = order
            .into_iter()
            .take(top)
            .map(|i| (self.features[i].clone(), z[i]))
            .collect();
        (score, contributors)
    }

    /// File of an asset's baseline under `data_dir`.
    pub fn path(data_dir: &Path, asset: &str) -> PathBuf {
        data_dir.join("baselines").join(format!(
            "{}.json",
            crate::analyze::persist::file_stem(asset)
        ))
    }

    /// Writes atomically (temporary file, fsync, rename, fsync of the directory).
    pub fn save(&self, data_dir: &Path) -> Result<(), BaselineError> {
        let path = Self::path(data_dir, &self.asset);
        let io = |source| BaselineError::Io {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        crate::analyze::persist::write_atomically(&path, &text).map_err(io)
    }

    /// Loads an asset's baseline; `Ok(None)` when there is none. A baseline for other features
    /// (the model changed) is an error, so the caller can re-commission.
    pub fn load(
        data_dir: &Path,
        asset: &str,
        names: &[&str],
    ) -> Result<Option<Self>, BaselineError> {
        let path = Self::path(data_dir, asset);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(BaselineError::Io { path, source }),
        };
        let invalid = |reason: String| BaselineError::Invalid {
            path: path.clone(),
            reason,
        };
        let b: Baseline = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
        if b.format != BASELINE_FORMAT {
            return Err(invalid(format!(
                "format {} (expected {BASELINE_FORMAT})",
                b.format
            )));
        }
        if b.asset != asset {
            return Err(invalid(format!("belongs to asset `{}`", b.asset)));
        }
        if b.features != names {
            return Err(invalid(
                "learned on other features (the model changed)".into(),
            ));
        }
        if b.median.len() != names.len() || b.scale.len() != names.len() {
            return Err(invalid(
                "vector lengths do not match the feature list".into(),
            ));
        }
        Ok(Some(b))
    }
}

/// What the baseline says about one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineVerdict {
    /// Anomaly score (RMS robust z); `None` while commissioning.
    pub anomaly: Option<f64>,
    /// Largest contributors `(feature, z)`.
    pub contributors: Vec<(String, f64)>,
    /// Drift score over the recent windows; `None` until enough recent windows exist.
    pub drift: Option<f64>,
    /// Commissioning progress `(collected, needed)` while learning.
    pub commissioning: Option<(usize, usize)>,
}

/// The classifier's verdict on a window, as the baseline records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<'a> {
    /// Version of the model that gave it.
    pub model_version: &'a str,
    /// The fault class it called (at or above the warning probability), if any.
    pub fault: Option<&'a str>,
}

/// Which model made the classifier calls being counted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CallModel {
    /// No verdict yet (or no model).
    Unseen,
    /// Every verdict so far came from this model version.
    One(String),
    /// The model changed during commissioning: the calls cannot be attributed.
    Mixed,
}

/// One asset's baseline lifecycle: commissioning, then scoring.
#[derive(Debug)]
pub struct AssetBaseline {
    asset: String,
    cfg: BaselineConfig,
    learning: Vec<Vec<f32>>,
    /// Classifier calls being counted, while commissioning or re-learning the rates for a new
    /// model: fault class → windows.
    calls: BTreeMap<String, usize>,
    /// The model behind those calls.
    call_model: CallModel,
    /// Windows counted in `calls` while re-learning after commissioning.
    relearn_windows: usize,
    baseline: Option<Baseline>,
    recent: VecDeque<Vec<f32>>,
}

impl AssetBaseline {
    /// Starts with `loaded` (from disk) or commissioning.
    pub fn new(asset: &str, cfg: BaselineConfig, loaded: Option<Baseline>) -> Self {
        Self {
            asset: asset.to_string(),
            cfg,
            learning: Vec::new(),
            calls: BTreeMap::new(),
            call_model: CallModel::Unseen,
            relearn_windows: 0,
            baseline: loaded,
            recent: VecDeque::new(),
        }
    }

    /// The learned baseline, if commissioning is over.
    pub fn baseline(&self) -> Option<&Baseline> {
        self.baseline.as_ref()
    }

    /// Forgets the baseline and starts commissioning again.
    pub fn recommission(&mut self) {
        self.baseline = None;
        self.learning.clear();
        self.take_rates(0);
        self.recent.clear();
    }

    /// The counted calls as shares of `windows`, with their model (`None` when there was no
    /// single model); the count starts over.
    fn take_rates(&mut self, windows: usize) -> Option<(String, BTreeMap<String, f64>)> {
        let calls = std::mem::take(&mut self.calls);
        self.relearn_windows = 0;
        match std::mem::replace(&mut self.call_model, CallModel::Unseen) {
            CallModel::One(model) => {
                let n = windows.max(1) as f64;
                let rates = calls
                    .into_iter()
                    .map(|(class, count)| (class, count as f64 / n))
                    .collect();
                Some((model, rates))
            }
            _ => None,
        }
    }

    fn count(&mut self, fault: Option<&str>) {
        if let Some(class) = fault {
            *self.calls.entry(class.to_string()).or_default() += 1;
        }
    }

    /// Counts a call by a model the baseline has no rates for, in a window scored `score`;
    /// returns the baseline with the new model's rates once `windows` normal windows are in.
    fn relearn(&mut self, call: Call<'_>, score: f64) -> Option<Baseline> {
        if score >= self.cfg.anomaly_threshold {
            // Only windows like the baseline say what the model calls this machine's normal.
            return None;
        }
        if !matches!(&self.call_model, CallModel::One(m) if m == call.model_version) {
            self.take_rates(0);
            self.call_model = CallModel::One(call.model_version.to_string());
        }
        self.relearn_windows += 1;
        self.count(call.fault);
        if self.relearn_windows < self.cfg.windows {
            return None;
        }
        let (model, rates) = self.take_rates(self.relearn_windows)?;
        let b = self.baseline.as_mut()?;
        b.class_model = Some(model);
        b.class_rates = rates;
        Some(b.clone())
    }

    /// Takes one window's model inputs at sensor time `t_us`, and the classifier's call on it
    /// if there is a classifier: counted while commissioning, and afterwards while the
    /// baseline has no rates for its model. Returns the verdict and, when this window
    /// completed commissioning or re-learned the classifier rates for a new model, the new
    /// baseline (for the caller to persist).
    pub fn observe(
        &mut self,
        x: &[f32],
        names: &[&str],
        t_us: u64,
        call: Option<Call<'_>>,
    ) -> (BaselineVerdict, Option<Baseline>) {
        let Some(b) = &self.baseline else {
            if let Some(call) = call {
                match &self.call_model {
                    CallModel::Unseen => {
                        self.call_model = CallModel::One(call.model_version.to_string());
                    }
                    CallModel::One(m) if m != call.model_version => {
                        self.call_model = CallModel::Mixed;
                    }
                    _ => {}
                }
                self.count(call.fault);
            }
            self.learning.push(x.to_vec());
            let mut learned = None;
            if self.learning.len() >= self.cfg.windows {
                let mut b = Baseline::learn(&self.asset, names, &self.learning, t_us);
                if let Some((model, rates)) = self.take_rates(self.learning.len()) {
                    b.class_model = Some(model);
                    b.class_rates = rates;
                }
                self.learning = Vec::new();
                learned = Some(b.clone());
                self.baseline = Some(b);
            }
            let verdict = BaselineVerdict {
                anomaly: None,
                contributors: Vec::new(),
                drift: None,
                commissioning: learned
                    .is_none()
                    .then_some((self.learning.len(), self.cfg.windows)),
            };
            return (verdict, learned);
        };
        let new_model = call.filter(|c| b.class_model.as_deref() != Some(c.model_version));
        let (score, contributors) = b.anomaly(x, 3);
        self.recent.push_back(x.to_vec());
        while self.recent.len() > self.cfg.drift_windows {
            self.recent.pop_front();
        }
        let drift = (self.recent.len() >= self.cfg.drift_windows).then(|| {
            let mut column = Vec::with_capacity(self.recent.len());
            let mut total = 0.0;
            for i in 0..b.median.len() {
                column.clear();
                column.extend(self.recent.iter().map(|v| f64::from(v[i])));
                total += ((median(&mut column) - b.median[i]).abs() / b.scale[i]).min(Z_CAP);
            }
            total / b.median.len().max(1) as f64
        });
        let relearned = new_model.and_then(|call| self.relearn(call, score));
        (
            BaselineVerdict {
                anomaly: Some(score),
                contributors,
                drift,
                commissioning: None,
            },
            relearned,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const NAMES: [&str; 3] = ["a", "b", "c"];

    fn normal_vectors(n: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                vec![
                    10.0 + rng.random_range(-1.0..1.0),
                    -3.0 + rng.random_range(-0.1..0.1),
                    0.5,
                ]
            })
            .collect()
    }

    fn cfg(windows: usize) -> BaselineConfig {
        BaselineConfig {
            windows,
            drift_windows: 20,
            anomaly_threshold: 6.0,
            drift_threshold: 1.5,
        }
    }

    #[test]
    fn normal_windows_score_low_and_a_shifted_feature_scores_high_and_is_named() {
        let b = Baseline::learn("p", &NAMES, &normal_vectors(500, 1), 0);
        let typical: Vec<f64> = normal_vectors(100, 2)
            .iter()
            .map(|v| b.anomaly(v, 1).0)
            .collect();
        assert!(typical.iter().all(|&s| s < 3.0), "{typical:?}");
        let (score, top) = b.anomaly(&[10.0, -1.0, 0.5], 2);
        assert!(score > 6.0, "{score}");
        assert_eq!(top[0].0, "b");
    }

    #[test]
    fn commissioning_ends_after_the_configured_windows() {
        let mut ab = AssetBaseline::new("p", cfg(50), None);
        let vectors = normal_vectors(60, 3);
        for (i, v) in vectors.iter().enumerate() {
            let (verdict, learned) = ab.observe(v, &NAMES, i as u64, None);
            if i < 49 {
                assert_eq!(verdict.commissioning, Some((i + 1, 50)));
                assert!(learned.is_none());
            } else if i == 49 {
                assert!(learned.is_some());
            } else {
                assert!(verdict.anomaly.is_some());
            }
        }
        ab.recommission();
        assert!(ab.baseline().is_none());
    }

    #[test]
    fn drift_rises_when_the_typical_state_moves() {
        let mut ab = AssetBaseline::new("p", cfg(200), None);
        for (i, v) in normal_vectors(200, 4).iter().enumerate() {
            ab.observe(v, &NAMES, i as u64, None);
        }
        let mut steady = 0.0;
        for v in normal_vectors(20, 5) {
            steady = ab.observe(&v, &NAMES, 0, None).0.drift.unwrap_or(0.0);
        }
        let mut moved = 0.0;
        for mut v in normal_vectors(20, 6) {
            v[0] += 3.0;
            moved = ab.observe(&v, &NAMES, 0, None).0.drift.unwrap_or(0.0);
        }
        assert!(steady < 0.5, "{steady}");
        assert!(moved > 1.0, "{moved}");
    }

    /// An asset commissioned on 100 normal windows; `call(i)` is the classifier's verdict on
    /// window `i`: `(model version, fault class called)`.
    fn commissioned(call: impl Fn(usize) -> (&'static str, Option<&'static str>)) -> AssetBaseline {
        let mut ab = AssetBaseline::new("p", cfg(100), None);
        for (i, v) in normal_vectors(100, 8).iter().enumerate() {
            let (model_version, fault) = call(i);
            ab.observe(
                v,
                &NAMES,
                i as u64,
                Some(Call {
                    model_version,
                    fault,
                }),
            );
        }
        ab
    }

    #[test]
    fn commissioning_records_the_share_of_windows_each_fault_class_was_called() {
        let mut ab = commissioned(|i| ("m1", (i % 4 == 0).then_some("inner")));
        let b = ab.baseline().unwrap();
        assert_eq!(b.class_model.as_deref(), Some("m1"));
        assert_eq!(b.class_rates.len(), 1);
        assert!(b.habitual("inner", "m1", 0.2));
        assert!(
            !b.habitual("inner", "m1", 0.25),
            "25 % is not more than 25 %"
        );
        assert!(!b.habitual("inner", "m2", 0.02), "another model's calls");
        assert!(!b.habitual("outer", "m1", 0.0));
        // Called on most windows: the model's verdict on the machine, never habitual.
        let most = commissioned(|i| ("m1", (i % 4 != 0).then_some("imbalance")));
        let b = most.baseline().unwrap();
        assert!((b.class_rates["imbalance"] - 0.75).abs() < 1e-9);
        assert!(!b.habitual("imbalance", "m1", 0.02));
        let half = commissioned(|i| ("m1", (i % 2 == 0).then_some("ball")));
        assert!(half.baseline().unwrap().habitual("ball", "m1", 0.02));
        // Verdicts after commissioning change nothing.
        let outer = Some(Call {
            model_version: "m1",
            fault: Some("outer"),
        });
        ab.observe(&normal_vectors(1, 9)[0], &NAMES, 0, outer);
        assert!(!ab.baseline().unwrap().class_rates.contains_key("outer"));

        // A model change during commissioning: no rates are kept.
        let ab = commissioned(|i| (if i < 50 { "m1" } else { "m2" }, Some("inner")));
        let b = ab.baseline().unwrap();
        assert_eq!((b.class_model.as_ref(), b.class_rates.len()), (None, 0));
        assert!(!b.habitual("inner", "m2", 0.02));
    }

    #[test]
    fn a_new_model_s_rates_are_learned_again_from_normal_windows_only() {
        let mut ab = commissioned(|i| ("m1", (i % 4 == 0).then_some("inner")));
        let before = ab.baseline().unwrap().clone();
        // The same model after commissioning: nothing changes.
        let outer = Call {
            model_version: "m1",
            fault: Some("outer"),
        };
        for v in normal_vectors(150, 9) {
            assert_eq!(ab.observe(&v, &NAMES, 0, Some(outer)).1, None);
        }
        assert_eq!(ab.baseline(), Some(&before));
        // Model m2: `ball` on every tenth normal window; anomalous windows (calling `outer`)
        // are not counted.
        let m2 = |fault| {
            Some(Call {
                model_version: "m2",
                fault,
            })
        };
        let mut relearned = None;
        for (i, v) in normal_vectors(99, 10).into_iter().enumerate() {
            let ball = m2((i % 10 == 0).then_some("ball"));
            assert_eq!(ab.observe(&v, &NAMES, 0, ball).1, None, "window {i}");
            let mut odd = v.clone();
            odd[0] += 40.0;
            let (verdict, r) = ab.observe(&odd, &NAMES, 0, m2(Some("outer")));
            assert!(verdict.anomaly.unwrap() >= 6.0 && r.is_none());
            if i == 98 {
                relearned = ab.observe(&normal_vectors(1, 11)[0], &NAMES, 0, m2(None)).1;
            }
        }
        let b = relearned.expect("re-learned after 100 normal windows");
        assert_eq!(b.class_model.as_deref(), Some("m2"));
        assert_eq!(b.class_rates.len(), 1, "{:?}", b.class_rates);
        assert!((b.class_rates["ball"] - 0.1).abs() < 1e-9);
        assert!(b.habitual("ball", "m2", 0.02) && !b.habitual("inner", "m2", 0.02));
        // The feature baseline itself is the one learned at commissioning.
        assert_eq!((&b.median, &b.scale), (&before.median, &before.scale));
        assert_eq!(ab.baseline(), Some(&b));
    }

    #[test]
    fn a_baseline_file_from_before_class_rates_loads_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let b = Baseline::learn("pump-1", &NAMES, &normal_vectors(100, 7), 42);
        let mut json = serde_json::to_value(&b).unwrap();
        let fields = json.as_object_mut().unwrap();
        assert!(fields.remove("class_rates").is_some() && fields.remove("class_model").is_some());
        let path = Baseline::path(dir.path(), "pump-1");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!(
            Baseline::load(dir.path(), "pump-1", &NAMES).unwrap(),
            Some(b)
        );
    }

    #[test]
    fn a_baseline_survives_a_restart_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let b = Baseline::learn("pump/1", &NAMES, &normal_vectors(100, 7), 42);
        b.save(dir.path()).unwrap();
        let loaded = Baseline::load(dir.path(), "pump/1", &NAMES).unwrap();
        assert_eq!(loaded, Some(b));
        assert_eq!(Baseline::load(dir.path(), "other", &NAMES).unwrap(), None);
        let err = Baseline::load(dir.path(), "pump/1", &["a", "b", "x"]).unwrap_err();
        assert!(err.to_string().contains("other features"), "{err}");
        std::fs::write(Baseline::path(dir.path(), "pump/1"), "{ not json").unwrap();
        assert!(Baseline::load(dir.path(), "pump/1", &NAMES).is_err());
    }
}
