//! Scoring: from a window's features to a classification, a baseline verdict and alert events.
//!
//! Runs on the feature thread, right after extraction (never on the async runtime). Per asset it
//! keeps the baseline lifecycle ([`crate::analyze::baseline::AssetBaseline`]) and feeds one
//! [`AlertEngine`]. Without a classifier or before a baseline exists the agent still judges
//! windows (cold start): envelope-peak thresholds, severity zones and temperature.

use crate::analyze::alert::{
    AlertConfig, AlertEngine, AlertEvent, ClassVerdict, Evidence, InputVector, Level, Transition,
    WindowRef,
};
use crate::analyze::baseline::{AssetBaseline, Baseline, BaselineConfig, Call};
use crate::analyze::diagnosis::{Diagnoser, Diagnosis, DiagnosisConfig};
use crate::analyze::drift::InputDistribution;
use crate::analyze::features::{FEATURE_NAMES, Features};
use crate::analyze::health::{HealthConfig, HealthReport, HealthTracker, Observation, Stage};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// A classifier of model-input vectors. Implemented by the on-device model; tests use fakes.
pub trait Classify: Send {
    /// The class verdict for one window's model inputs, or `None` if the model cannot say.
    fn classify(&mut self, inputs: &[f32]) -> Option<ClassVerdict>;

    /// The training distribution of the inputs, when the model carries one.
    fn input_distribution(&self) -> Option<std::sync::Arc<InputDistribution>> {
        None
    }
}

/// One classifier behind several [`Scorer`]s, for a classifier that keeps no state between
/// windows: `agent eval` loads and optimises the model once, not once per recording.
#[derive(Debug)]
pub struct SharedClassifier<C>(std::sync::Arc<std::sync::Mutex<C>>);

impl<C> SharedClassifier<C> {
    /// Shares `classifier`.
    pub fn new(classifier: C) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(classifier)))
    }
}

impl<C> Clone for SharedClassifier<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<C: Classify> Classify for SharedClassifier<C> {
    fn classify(&mut self, inputs: &[f32]) -> Option<ClassVerdict> {
        self.0.lock().expect("classifier lock").classify(inputs)
    }

    fn input_distribution(&self) -> Option<std::sync::Arc<InputDistribution>> {
        self.0.lock().expect("classifier lock").input_distribution()
    }
}

/// What scoring said about one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// Classifier verdict, when a model is loaded.
    pub class: Option<ClassVerdict>,
    /// Anomaly score, once the asset has a baseline.
    pub anomaly: Option<f64>,
    /// Drift score, once enough windows follow the baseline.
    pub drift: Option<f64>,
    /// Commissioning progress `(windows, needed)` while the baseline is learned.
    pub commissioning: Option<(usize, usize)>,
    /// This window's own level.
    pub level: Level,
    /// What decided it (`normal` when nothing did).
    pub finding: String,
    /// The asset's active alert level after this window.
    pub active_alert: Option<Level>,
    /// The physics' verdict on the bearing part over the sensor's recent windows.
    pub diagnosis: Diagnosis,
    /// Which evidence decided `finding` (see [`crate::analyze::alert::Finding::decided_by`]).
    pub decided_by: String,
    /// The sensor's health over its life (this window's axis).
    pub health: Option<HealthReport>,
    /// The window's model inputs, in model-input order.
    #[serde(skip)]
    pub inputs: Vec<f32>,
    /// Sensor time the asset's baseline was learned, µs (none while commissioning).
    pub baseline_learned_us: Option<u64>,
    /// The inputs outside the active model's training range (indices in model-input order);
    /// empty when all are inside or the model carries no training distribution.
    pub out_of_range: Vec<usize>,
    /// The active model's training distribution, for the interval's input drift.
    #[serde(skip)]
    pub input_distribution: Option<std::sync::Arc<InputDistribution>>,
}

/// One sensor axis's health tracker and where it is kept.
struct SensorHealth {
    tracker: HealthTracker,
    path: Option<PathBuf>,
    /// Tracker time of the last save, s.
    saved_at_s: f64,
    stage: Option<Stage>,
    /// Its gauges, registered once: indicator, stage, remaining life (estimate, low, high).
    gauges: HealthGauges,
}

struct HealthGauges {
    indicator: metrics::Gauge,
    stage: metrics::Gauge,
    rul: [metrics::Gauge; 3],
}

impl HealthGauges {
    fn new(asset: &str, sensor_id: u32, axis: u8) -> Self {
        let labels = [
            ("asset", asset.to_string()),
            ("sensor", sensor_id.to_string()),
            ("axis", axis.to_string()),
        ];
        let rul = |bound: &'static str| {
            let mut l = labels.to_vec();
            l.push(("bound", bound.to_string()));
            metrics::gauge!("edgewatch_rul_seconds", &l)
        };
        Self {
            indicator: metrics::gauge!("edgewatch_health_indicator", &labels),
            stage: metrics::gauge!("edgewatch_health_stage", &labels),
            rul: [rul("estimate"), rul("low"), rul("high")],
        }
    }
}

/// How often (tracker time) a sensor's health is written while nothing changes, s.
const HEALTH_SAVE_EVERY_S: f64 = 300.0;

/// Per-asset scoring state.
pub struct Scorer {
    classifier: Option<Box<dyn Classify>>,
    baseline_cfg: BaselineConfig,
    baselines: HashMap<String, AssetBaseline>,
    alerts: AlertEngine,
    alert_cfg: AlertConfig,
    data_dir: Option<PathBuf>,
    diagnosis_cfg: DiagnosisConfig,
    diagnosers: HashMap<(String, u32), Diagnoser>,
    health_cfg: HealthConfig,
    health: HashMap<(String, u32, u8), SensorHealth>,
    /// Per asset, the model inputs of its last `raise_window` windows (what an alert carries).
    recent_inputs: HashMap<String, std::collections::VecDeque<InputVector>>,
}

impl std::fmt::Debug for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scorer")
            .field("classifier", &self.classifier.is_some())
            .field("assets", &self.baselines.len())
            .finish_non_exhaustive()
    }
}

impl Scorer {
    /// A scorer; baselines persist under `data_dir` (none: in memory only).
    pub fn new(
        classifier: Option<Box<dyn Classify>>,
        baseline_cfg: BaselineConfig,
        alert_cfg: AlertConfig,
        data_dir: Option<PathBuf>,
    ) -> Self {
        Self {
            classifier,
            baseline_cfg,
            baselines: HashMap::new(),
            alerts: match &data_dir {
                Some(dir) => {
                    AlertEngine::new(alert_cfg.clone()).with_state_file(dir.join("alerts.json"))
                }
                None => AlertEngine::new(alert_cfg.clone()),
            },
            alert_cfg,
            data_dir,
            diagnosis_cfg: DiagnosisConfig::default(),
            diagnosers: HashMap::new(),
            health_cfg: HealthConfig::default(),
            health: HashMap::new(),
            recent_inputs: HashMap::new(),
        }
    }

    /// Alert ids start with `prefix` ([`AlertEngine::with_id_prefix`]).
    pub fn with_alert_id_prefix(mut self, prefix: &str) -> Self {
        self.alerts.set_id_prefix(prefix);
        self
    }

    /// Uses `cfg` for the sensors' health trackers (default: [`HealthConfig::default`]).
    pub fn with_health(mut self, cfg: HealthConfig) -> Self {
        self.health_cfg = cfg;
        self.health.clear();
        self
    }

    /// Feeds a window's RMS to its sensor axis's health tracker (loaded from `data_dir` the first
    /// time, saved on every change of stage and every few minutes).
    /// Also says whether the sensor axis just entered a stage of degradation (onset or failure).
    fn observe_health(&mut self, w: WindowRef<'_>, f: &Features) -> (HealthReport, bool) {
        let cfg = self.health_cfg;
        let data_dir = self.data_dir.clone();
        let h = self
            .health
            .entry((w.asset.to_string(), w.sensor_id, w.axis))
            .or_insert_with(|| {
                let path = data_dir
                    .as_deref()
                    .map(|d| HealthTracker::path(d, w.asset, w.sensor_id, w.axis));
                let tracker = match path.as_deref().map(|p| HealthTracker::load(p, cfg)) {
                    Some(Ok(Some(t))) => {
                        tracing::info!(
                            asset = w.asset,
                            sensor_id = w.sensor_id,
                            axis = w.axis,
                            stage = ?t.last().map(|s| s.stage),
                            "health tracker resumed"
                        );
                        t
                    }
                    Some(Err(e)) => {
                        tracing::warn!(
                            asset = w.asset,
                            sensor_id = w.sensor_id,
                            error = %e,
                            "stored health not usable; commissioning the health reference again"
                        );
                        HealthTracker::new(cfg)
                    }
                    _ => HealthTracker::new(cfg),
                };
                let stage = tracker.last().map(|s| s.stage);
                let saved_at_s = tracker.last().map_or(f64::MIN, |s| s.t_s);
                SensorHealth {
                    tracker,
                    path,
                    saved_at_s,
                    stage,
                    gauges: HealthGauges::new(w.asset, w.sensor_id, w.axis),
                }
            });
        let hf = f.band_rms_g[1..].iter().map(|b| b * b).sum::<f64>().sqrt();
        let families = &f.envelope.families;
        let envelope_db = [families.outer, families.inner, families.ball]
            .iter()
            .map(|e| e.score_db)
            .fold(0.0, f64::max);
        let state = h.tracker.observe_with(
            w.end_us as f64 / 1e6,
            &Observation {
                rms_g: f.rms_g,
                hf_rms_g: Some(hf),
                envelope_db: Some(envelope_db),
                kurtosis: Some(f.kurtosis),
            },
        );
        let report = HealthReport::from(state);
        if h.stage != Some(state.stage) {
            if state.stage >= Stage::Degrading {
                tracing::warn!(
                    asset = w.asset,
                    sensor_id = w.sensor_id,
                    axis = w.axis,
                    stage = ?state.stage,
                    "{}",
                    report.explain()
                );
            } else {
                tracing::info!(
                    asset = w.asset,
                    sensor_id = w.sensor_id,
                    axis = w.axis,
                    stage = ?state.stage,
                    "health stage"
                );
            }
        }
        let changed = h.stage != Some(state.stage);
        if let Some(path) = &h.path
            && (changed || state.t_s - h.saved_at_s >= HEALTH_SAVE_EVERY_S)
        {
            if let Err(e) = h.tracker.save(path) {
                tracing::error!(asset = w.asset, error = %e, "cannot persist the sensor's health");
            }
            h.saved_at_s = state.t_s;
        }
        h.stage = Some(state.stage);
        h.gauges.indicator.set(report.indicator);
        h.gauges.stage.set(state.stage as u8 as f64);
        for (gauge, v) in
            h.gauges
                .rul
                .iter()
                .zip([report.rul_s, report.rul_low_s, report.rul_high_s])
        {
            // No estimate (before onset, or an open interval): NaN, which Prometheus keeps apart
            // from any number.
            gauge.set(v.unwrap_or(f64::NAN));
        }
        (report, changed && state.stage >= Stage::Degrading)
    }

    /// Uses `cfg` for the physics' diagnosis (default: [`DiagnosisConfig::default`]).
    pub fn with_diagnosis(mut self, cfg: DiagnosisConfig) -> Self {
        self.diagnosis_cfg = cfg;
        self.diagnosers.clear();
        self
    }

    /// Replaces the classifier (a model reload on the analysis thread). Baselines stay; each
    /// asset learns the new model's habitual classes again from the version its calls carry.
    pub fn set_classifier(&mut self, classifier: Box<dyn Classify>) {
        self.classifier = Some(classifier);
    }

    /// Replaces the classifier and hands back the one it replaces (the model lifecycle keeps
    /// it beside the new one for its watch, or drops it).
    pub fn replace_classifier(
        &mut self,
        classifier: Box<dyn Classify>,
    ) -> Option<Box<dyn Classify>> {
        self.classifier.replace(classifier)
    }

    /// The classifier's call on one model-input vector (`None`: no classifier, or it could not
    /// say). For tests of the classifier in place.
    #[cfg(test)]
    pub(crate) fn classify_inputs(&mut self, inputs: &[f32]) -> Option<ClassVerdict> {
        self.classifier.as_mut()?.classify(inputs)
    }

    /// Whether a classifier is in use.
    pub fn has_classifier(&self) -> bool {
        self.classifier.is_some()
    }

    fn asset_baseline(&mut self, asset: &str) -> &mut AssetBaseline {
        let cfg = self.baseline_cfg;
        let data_dir = self.data_dir.clone();
        self.baselines.entry(asset.to_string()).or_insert_with(|| {
            let loaded = data_dir.as_deref().and_then(|dir| {
                match Baseline::load(dir, asset, &FEATURE_NAMES) {
                    Ok(b) => {
                        if b.is_some() {
                            tracing::info!(asset, "loaded the learned baseline");
                        }
                        b
                    }
                    Err(e) => {
                        tracing::warn!(asset, error = %e, "baseline not usable; commissioning again");
                        None
                    }
                }
            });
            AssetBaseline::new(asset, cfg, loaded)
        })
    }

    /// Starts commissioning an asset again (its stored baseline is replaced when done), and its
    /// sensors' health references (after a repair the life starts over).
    pub fn recommission(&mut self, asset: &str) {
        self.asset_baseline(asset).recommission();
        let cfg = self.health_cfg;
        for ((a, _, _), h) in self.health.iter_mut() {
            if a == asset {
                h.tracker = HealthTracker::new(cfg);
                h.stage = None;
                h.saved_at_s = f64::MIN;
                if let Some(p) = &h.path {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }

    /// Shelves `asset` (an operator's command): no alert is raised or escalated for it until
    /// [`Scorer::unshelve`]; an active alert is cleared with `reason` (its event returned).
    pub fn shelve(&mut self, asset: &str, reason: &str, now_ms: u64) -> Option<AlertEvent> {
        self.alerts.shelve(asset, reason, now_ms)
    }

    /// Ends a shelve of `asset`.
    pub fn unshelve(&mut self, asset: &str) {
        self.alerts.unshelve(asset);
    }

    /// Scores one window at agent time `now_ms`; returns the assessment and an alert event if
    /// the asset's alert changed.
    pub fn score(
        &mut self,
        w: WindowRef<'_>,
        features: &Features,
        now_ms: u64,
    ) -> (Assessment, Option<AlertEvent>) {
        let inputs = features.model_inputs();
        let class = self.classifier.as_mut().and_then(|c| c.classify(&inputs));
        if let Some(c) = &class {
            metrics::counter!(
                "edgewatch_windows_classified_total",
                "model_version" => c.model_version.clone(),
                "class" => c.class.clone()
            )
            .increment(1);
        }
        let data_dir = self.data_dir.clone();
        let habitual_rate = self.alert_cfg.classifier_habitual_rate;
        let call = class.as_ref().map(|c| Call {
            model_version: &c.model_version,
            fault: self.alert_cfg.calls_fault(c).then_some(&*c.class),
        });
        let baseline = self.asset_baseline(w.asset);
        let habitual_class = match (&class, baseline.baseline()) {
            (Some(c), Some(b)) => b.habitual(&c.class, &c.model_version, habitual_rate),
            _ => false,
        };
        let commissioned = baseline.baseline().is_some();
        let (verdict, learned) = baseline.observe(&inputs, &FEATURE_NAMES, w.end_us, call);
        let baseline_learned_us = baseline.baseline().map(|b| b.learned_at_us);
        if let Some(b) = learned {
            let model = b.class_model.as_deref().unwrap_or_default();
            let habitual: Vec<String> = b
                .class_rates
                .iter()
                .filter(|&(c, _)| b.habitual(c, model, habitual_rate))
                .map(|(c, r)| format!("{c} {:.0} %", 100.0 * r))
                .collect();
            if commissioned {
                tracing::info!(
                    asset = w.asset,
                    model_version = model,
                    habitual_classes = %habitual.join(", "),
                    "classifier rates re-learned for a new model"
                );
            } else {
                tracing::info!(
                    asset = w.asset,
                    windows = b.windows,
                    habitual_classes = %habitual.join(", "),
                    "baseline learned"
                );
            }
            if let Some(dir) = &data_dir
                && let Err(e) = b.save(dir)
            {
                tracing::error!(asset = w.asset, error = %e, "cannot persist the baseline");
            }
        }
        let diagnosis_cfg = self.diagnosis_cfg;
        let diagnosis = self
            .diagnosers
            .entry((w.asset.to_string(), w.sensor_id))
            .or_insert_with(|| Diagnoser::new(diagnosis_cfg))
            .observe(&features.envelope.families);
        let (health, degraded_now) = self.observe_health(w, features);
        let evidence = Evidence {
            features,
            health: Some(health),
            diagnosis: Some(diagnosis.clone()),
            class: class.clone(),
            anomaly: verdict.anomaly.map(|a| (a, verdict.contributors.clone())),
            anomaly_threshold: self.baseline_cfg.anomaly_threshold,
            drift: verdict.drift,
            drift_threshold: self.baseline_cfg.drift_threshold,
            habitual_class,
        };
        let (level, finding) = crate::analyze::alert::judge(&self.alert_cfg, &evidence);
        let kind = finding.kind.clone();
        let decided_by = finding.decided_by.clone();
        let mut event = self.alerts.apply(w, level, finding, now_ms);
        if event.is_none() && degraded_now {
            // An alert already up (the physics saw the fault first) learns of the onset.
            event = self.alerts.update_health(w, health, now_ms);
        }
        let input_distribution = self
            .classifier
            .as_ref()
            .and_then(|c| c.input_distribution());
        let out_of_range = input_distribution
            .as_ref()
            .map(|d| d.out_of_range(&inputs))
            .unwrap_or_default();
        if !out_of_range.is_empty() {
            metrics::counter!("edgewatch_windows_out_of_training_range_total", "asset" => w.asset.to_string())
                .increment(1);
        }
        let window = self.alert_cfg.raise_window.max(1);
        let recent = self.recent_inputs.entry(w.asset.to_string()).or_default();
        if recent.len() >= window {
            recent.pop_front();
        }
        recent.push_back(InputVector {
            sensor_id: w.sensor_id,
            axis: w.axis,
            window_start_us: w.start_us,
            window_end_us: w.end_us,
            values: inputs.to_vec(),
            class: class.as_ref().map(|c| c.class.clone()),
            probability: class.as_ref().map(|c| c.probability),
        });
        if let Some(e) = &mut event
            && e.transition != Transition::Cleared
        {
            e.inputs = recent.iter().cloned().collect();
        }
        (
            Assessment {
                class,
                anomaly: verdict.anomaly,
                drift: verdict.drift,
                commissioning: verdict.commissioning,
                level,
                finding: kind,
                active_alert: self.alerts.active_level(w.asset),
                diagnosis,
                decided_by,
                health: Some(health),
                inputs: inputs.to_vec(),
                baseline_learned_us,
                out_of_range,
                input_distribution,
            },
            event,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::features::{EnvelopePeaks, FamilyEvidence, SeverityZone};

    fn features(kurtosis: f64) -> Features {
        Features {
            rms_g: 0.05,
            peak_g: 0.2,
            crest_factor: 4.0,
            kurtosis,
            skewness: 0.0,
            velocity_rms_mm_s: 1.0,
            zone: SeverityZone::A,
            shaft_hz: 24.7,
            speed_estimated: false,
            order_0_5x_g: 0.0,
            order_1x_g: 0.01,
            order_2x_g: 0.005,
            order_3x_g: 0.002,
            band_rms_g: [0.03, 0.02, 0.01, 0.005],
            envelope: EnvelopePeaks {
                band_hz: [2000.0, 4000.0],
                band_kurtosis: 0.5,
                bpfo_db: 3.0,
                bpfo_2x_db: 2.0,
                bpfi_db: 2.0,
                bpfi_2x_db: 1.0,
                bsf_db: 1.0,
                bsf_2x_db: 1.0,
                ftf_db: 4.0,
                ftf_2x_db: 1.0,
                bpfo_hz: 88.0,
                bpfi_hz: 133.0,
                bsf_hz: 58.0,
                bsf_2x_hz: 116.0,
                ftf_hz: 9.8,
                // One line of the inner-race and of the rolling-element families in every
                // window: enough to back a model's call, not enough for the physics to decide.
                families: crate::analyze::features::LineFamilies {
                    inner: FamilyEvidence {
                        score_db: 6.0,
                        harmonics: 1,
                        peak_db: 12.0,
                        ..Default::default()
                    },
                    ball: FamilyEvidence {
                        score_db: 6.0,
                        harmonics: 1,
                        peak_db: 12.0,
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            temperature_c: None,
            temperature_rise_c_per_min: None,
        }
    }

    /// Counts the windows it saw; answers with the count.
    #[derive(Debug, Default)]
    struct Counting(usize);

    impl Classify for Counting {
        fn classify(&mut self, _inputs: &[f32]) -> Option<ClassVerdict> {
            self.0 += 1;
            Some(ClassVerdict {
                class: format!("seen-{}", self.0),
                probability: 0.5,
                model_version: "count".into(),
            })
        }
    }

    #[test]
    fn a_shared_classifier_is_one_classifier() {
        let shared = SharedClassifier::new(Counting::default());
        let mut a = shared.clone();
        let mut b = shared.clone();
        assert_eq!(a.classify(&[0.0]).unwrap().class, "seen-1");
        assert_eq!(b.classify(&[0.0]).unwrap().class, "seen-2");
        assert_eq!(shared.0.lock().unwrap().0, 2);
    }

    fn window(i: u64) -> WindowRef<'static> {
        WindowRef {
            asset: "pump-1",
            sensor_id: 1,
            axis: 0,
            start_us: i * 320_000,
            end_us: (i + 1) * 320_000,
        }
    }

    fn scorer(dir: &std::path::Path) -> Scorer {
        Scorer::new(
            None,
            BaselineConfig {
                windows: 30,
                ..Default::default()
            },
            AlertConfig::default(),
            Some(dir.to_path_buf()),
        )
    }

    #[test]
    fn a_degrading_sensor_raises_a_degradation_alert_and_its_health_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        // A baseline that is never learned here: the health tracker alone watches the RMS.
        let new_scorer = || {
            Scorer::new(
                None,
                BaselineConfig {
                    windows: 100_000,
                    ..Default::default()
                },
                AlertConfig::default(),
                Some(dir.path().to_path_buf()),
            )
        };
        let mut scorer = new_scorer();
        let rms = |i: u64| {
            let wobble = 1.0 + 0.05 * ((i as f64) * 1.7).sin();
            let growth = if i < 60 {
                1.0
            } else {
                1.03f64.powf((i - 60) as f64)
            };
            0.05 * wobble * growth
        };
        let mut events = Vec::new();
        let mut onset_window = None;
        let mut last = None;
        for i in 0..200 {
            let mut f = features(3.0);
            f.rms_g = rms(i);
            let (a, e) = scorer.score(window(i), &f, i * 320);
            let h = a.health.unwrap();
            if i < 30 {
                assert_eq!(h.stage, Stage::Commissioning, "window {i}");
            } else if i < 60 {
                assert_eq!(h.stage, Stage::Healthy, "window {i}: {h:?}");
            }
            if onset_window.is_none() && h.stage == Stage::Degrading {
                onset_window = Some(i);
            }
            events.extend(e);
            last = Some(h);
        }
        let onset = onset_window.expect("onset");
        assert!((60..100).contains(&onset), "onset at window {onset}");
        let raised = &events[0];
        assert_eq!(raised.transition, crate::analyze::alert::Transition::Raised);
        assert_eq!(raised.finding.kind, "degradation");
        // It carries the model inputs of the raise window's windows, the deciding one last.
        assert_eq!(raised.inputs.len(), AlertConfig::default().raise_window);
        let last_input = raised.inputs.last().unwrap();
        assert_eq!(last_input.window_start_us, raised.window_start_us);
        assert_eq!(
            last_input.values.len(),
            crate::analyze::features::MODEL_INPUT_LEN
        );
        assert!(
            raised
                .inputs
                .windows(2)
                .all(|w| w[0].window_start_us < w[1].window_start_us)
        );
        assert_eq!(raised.finding.decided_by, "health");
        assert!(
            raised.finding.reason.contains("degrading for"),
            "{}",
            raised.finding.reason
        );
        assert!(raised.finding.health.is_some_and(|h| h.onset_s.is_some()));
        // 1.03^140 = 63 times the healthy RMS: past the failure level (10x), critical.
        let last = last.unwrap();
        assert_eq!(last.stage, Stage::Failed, "{last:?}");
        assert!(
            events
                .iter()
                .any(|e| e.level == Level::Critical && e.finding.kind == "degradation"),
            "{events:?}"
        );
        drop(scorer);
        let mut again = new_scorer();
        let mut f = features(3.0);
        f.rms_g = rms(200);
        let (a, _) = again.score(window(200), &f, 0);
        assert_eq!(
            a.health.unwrap().stage,
            Stage::Failed,
            "resumed, not commissioning"
        );
        again.recommission("pump-1");
        let (a, _) = again.score(window(201), &f, 320);
        assert_eq!(a.health.unwrap().stage, Stage::Commissioning);
    }

    #[test]
    fn a_learned_baseline_survives_a_restart_of_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = scorer(dir.path());
        for i in 0..30 {
            let k = 3.0 + 0.01 * (i % 7) as f64;
            let (a, _) = first.score(window(i), &features(k), i * 320);
            // Learning until the 30th window completes the baseline.
            assert!(a.anomaly.is_none(), "window {i}");
            assert_eq!(a.commissioning.is_some(), i < 29, "window {i}");
        }
        drop(first);
        // A new process: the baseline is loaded, no second commissioning.
        let mut second = scorer(dir.path());
        let (a, _) = second.score(window(100), &features(3.02), 100_000);
        assert!(a.commissioning.is_none());
        assert!(a.anomaly.unwrap() < 2.0, "{a:?}");
        let (a, _) = second.score(window(101), &features(12.0), 100_320);
        assert!(a.anomaly.unwrap() > 6.0, "{a:?}");
        assert_eq!(a.finding, "anomaly");
    }

    /// Answers with the next of its scripted `(class, model version)` verdicts, p = 0.8.
    #[derive(Debug)]
    struct Scripted(std::collections::VecDeque<(&'static str, &'static str)>);

    impl Classify for Scripted {
        fn classify(&mut self, _inputs: &[f32]) -> Option<ClassVerdict> {
            let (class, model) = self.0.pop_front().expect("a scripted verdict");
            Some(ClassVerdict {
                class: class.into(),
                probability: 0.8,
                model_version: model.into(),
            })
        }
    }

    #[test]
    fn a_class_the_model_called_on_the_healthy_asset_needs_an_anomaly_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let with = |script: Vec<(&'static str, &'static str)>| {
            Scorer::new(
                Some(Box::new(Scripted(script.into()))),
                BaselineConfig {
                    windows: 30,
                    ..Default::default()
                },
                AlertConfig::default(),
                Some(dir.path().to_path_buf()),
            )
        };
        // Commissioning: the model calls `ball` on 9 of 30 windows of a healthy asset (30 %),
        // `inner` on none.
        let commissioning: Vec<_> = (0..30)
            .map(|i| (if i % 10 < 3 { "ball" } else { "normal" }, "m1"))
            .collect();
        let mut first = with(commissioning);
        for i in 0..30 {
            let (a, _) = first.score(window(i), &features(3.0 + 0.01 * (i % 7) as f64), i * 320);
            // Before the baseline the classifier decides alone (cold start).
            let called = a.class.as_ref().unwrap().class != "normal";
            assert_eq!(a.level != Level::Normal, called, "window {i}");
        }
        drop(first);
        let stored = Baseline::load(dir.path(), "pump-1", &FEATURE_NAMES)
            .unwrap()
            .unwrap();
        assert_eq!(stored.class_model.as_deref(), Some("m1"));
        assert!(
            (stored.class_rates["ball"] - 0.3).abs() < 1e-9,
            "{stored:?}"
        );
        assert!(!stored.class_rates.contains_key("inner"));

        // A restarted agent: `ball` in a window like the commissioning ones is normal for this
        // asset; `ball` in an anomalous window, a class never called before, or a `ball` from
        // another model version are findings.
        let mut second = with(vec![
            ("ball", "m1"),
            ("ball", "m1"),
            ("inner", "m1"),
            ("ball", "m2"),
        ]);
        let (a, _) = second.score(window(100), &features(3.02), 100_000);
        assert_eq!((a.level, a.finding.as_str()), (Level::Normal, "normal"));
        assert_eq!(a.class.unwrap().class, "ball");
        let (a, _) = second.score(window(101), &features(12.0), 100_320);
        assert_eq!((a.level, a.finding.as_str()), (Level::Warning, "ball"));
        let (a, _) = second.score(window(102), &features(3.02), 100_640);
        assert_eq!((a.level, a.finding.as_str()), (Level::Warning, "inner"));
        let (a, _) = second.score(window(103), &features(3.02), 100_960);
        assert_eq!((a.level, a.finding.as_str()), (Level::Warning, "ball"));
    }

    #[test]
    fn without_a_model_or_a_baseline_windows_are_still_judged() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = scorer(dir.path());
        let mut f = features(3.0);
        f.envelope.bpfi_db = 30.0;
        let mut events = Vec::new();
        for i in 0..5 {
            let (a, e) = s.score(window(i), &f, i * 320);
            assert!(a.class.is_none());
            assert_eq!(a.level, Level::Critical);
            events.extend(e);
        }
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].finding.kind, "inner");
    }
}
