//! The analysis stage's driver: features, model, baseline and alert verdict for each window.
//!
//! [`FeatureStage`] is pure apart from metrics (the time is an input); [`extract_features`] is
//! its thread: it drains its input channel until it closes. The thread owns the model: a window
//! is classified where its features are computed, with no hop to another thread. A model
//! reload ([`ModelControl::reload`]) is a message on the same channel, so it takes effect
//! between two windows, in order, and the running model keeps going if the new one is refused.

use crate::analyze::alert::{AlertConfig, AlertEvent, WindowRef};
use crate::analyze::baseline::BaselineConfig;
use crate::analyze::diagnosis::DiagnosisConfig;
use crate::analyze::features::{
    FeatureConfig, FeatureExtractor, Features, MachineContext, ZoneLimits,
};
use crate::analyze::health::HealthConfig;
use crate::analyze::model::{Model, ModelError, ModelSource, Variant};
use crate::analyze::scoring::{Assessment, Classify, Scorer};
use crate::assemble::AssembledWindow;
use crate::assemble::window::WindowConfig;
use crate::clock::{Clock, Stopwatch};
use crate::ops::events::{AlertTransition, DropReason, Event, WindowDropped};
use crate::ops::health::Health;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Features of one window of one axis.
#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    /// Asset id.
    #[serde(serialize_with = "serialize_arc_str")]
    pub asset: Arc<str>,
    /// Where the window's frames came from (`serial:<port>`, `mqtt:<topic>`).
    #[serde(serialize_with = "serialize_arc_str")]
    pub source: Arc<str>,
    /// Sensor id.
    pub sensor_id: u32,
    /// Axis.
    pub axis: u8,
    /// Sensor time of the first sample, µs.
    pub start_us: u64,
    /// Sensor time after the last sample, µs.
    pub end_us: u64,
    /// Sample rate, Hz.
    pub sample_rate_hz: f64,
    /// The features.
    pub features: Features,
    /// Time spent extracting them, µs.
    pub extract_us: u64,
    /// Classification, baseline and alert verdict.
    pub assessment: Assessment,
    /// An alert raised, escalated or cleared by this window.
    pub alert: Option<AlertEvent>,
}

fn serialize_arc_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

/// One monitored machine, as the analysis sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzedAsset {
    /// Asset id.
    pub id: String,
    /// Shaft speed and bearing fault orders.
    pub context: MachineContext,
    /// The asset's own velocity zone limits, if it has them.
    pub zone_limits: Option<ZoneLimits>,
}

/// What the analysis stage needs of the configuration (built by `Config::analysis`).
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisConfig {
    /// `[features]`.
    pub features: FeatureConfig,
    /// `[baseline]`.
    pub baseline: BaselineConfig,
    /// `[alerts]`.
    pub alerts: AlertConfig,
    /// `[diagnosis]`.
    pub diagnosis: DiagnosisConfig,
    /// `[health]`.
    pub health: HealthConfig,
    /// What alert ids start with: the runtime sets the agent id and a number drawn at start,
    /// so ids never repeat across agents or restarts; empty: `<asset>-<ms>`.
    pub alert_id_prefix: String,
    /// The agent's windows (`[window]`): a model trained on other windows is warned about.
    pub window: WindowConfig,
    /// Where learned baselines are kept (`[agent] data_dir`); `None`: in memory only.
    pub data_dir: Option<PathBuf>,
    /// The monitored machines.
    pub assets: Vec<AnalyzedAsset>,
    /// Commands from the feedback topic; `None`: none are read.
    pub feedback: Option<crate::analyze::feedback::CommandsConfig>,
}

/// What the analysis thread receives, in order: windows, requests to replace the model, model
/// packages and operators' commands.
#[derive(Debug)]
pub enum Input {
    /// A window to analyse.
    Window(AssembledWindow),
    /// Load the model from `source` and switch to it; the reply says the new version or why it
    /// was refused (the running model then keeps going).
    Reload {
        /// Where the new model is.
        source: ModelSource,
        /// Which of its variants.
        variant: Variant,
        /// The answer.
        reply: tokio::sync::oneshot::Sender<Result<Arc<str>, ReloadError>>,
    },
    /// A model package (from the models topic or the package folder) for the lifecycle.
    Package {
        /// The package's bytes.
        bytes: Vec<u8>,
        /// Where it came from (`kafka:<topic>/<partition>@<offset>`, `file:<path>`).
        source: String,
    },
    /// A verified command from the feedback topic: acted on between two windows; the reply
    /// says what became of it.
    Command {
        /// The command's signed body.
        command: crate::analyze::feedback::record::CommandBody,
        /// Where it came from (`kafka:<topic>/<partition>@<offset>`).
        source: String,
        /// The outcome.
        reply: tokio::sync::oneshot::Sender<crate::analyze::feedback::Acted>,
    },
}

impl From<AssembledWindow> for Input {
    fn from(w: AssembledWindow) -> Self {
        Self::Window(w)
    }
}

/// Why a model reload did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new model was refused; the running one keeps going. Fix the model and reload again.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The agent runs without a classifier (`[model] enabled = false`): enabling it needs a
    /// restart.
    #[error("the agent runs without a model; enabling it needs a restart")]
    NoModel,
    /// The analysis thread has stopped (the agent is shutting down). Not recoverable.
    #[error("the analysis thread has stopped")]
    Stopped,
}

/// The way to reach the model owned by the analysis thread, from async code.
#[derive(Debug, Clone)]
pub struct ModelControl {
    tx: mpsc::Sender<Input>,
}

impl ModelControl {
    /// A control sending on the analysis thread's input channel.
    pub fn new(tx: mpsc::Sender<Input>) -> Self {
        Self { tx }
    }

    /// The analysis thread's input channel (for the models topic's consumer).
    pub fn sender(&self) -> mpsc::Sender<Input> {
        self.tx.clone()
    }

    /// Loads `variant` from `source` on the analysis thread and switches to it after the
    /// windows already queued; returns the new version. On error the running model is kept.
    pub async fn reload(
        &self,
        source: ModelSource,
        variant: Variant,
    ) -> Result<Arc<str>, ReloadError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Input::Reload {
                source,
                variant,
                reply,
            })
            .await
            .map_err(|_| ReloadError::Stopped)?;
        rx.await.map_err(|_| ReloadError::Stopped)?
    }

    /// Offers the model packages in `dir` to the lifecycle (in file-name order, after the
    /// windows already queued); returns how many were offered.
    pub async fn offer_packages(&self, dir: &std::path::Path) -> usize {
        crate::analyze::lifecycle::offer_dir(dir, &self.tx).await
    }
}

/// Per-asset machine context for feature extraction.
fn machine_contexts(config: &AnalysisConfig) -> HashMap<Arc<str>, MachineContext> {
    config
        .assets
        .iter()
        .map(|a| (Arc::from(a.id.as_str()), a.context))
        .collect()
}

/// Extracts features; keeps one FFT plan set per (window length, sample rate).
pub struct FeatureStage {
    cfg: crate::analyze::features::FeatureConfig,
    scorer: Scorer,
    contexts: HashMap<Arc<str>, MachineContext>,
    zone_limits: HashMap<Arc<str>, ZoneLimits>,
    extractors: HashMap<(usize, u64), FeatureExtractor>,
    window: WindowConfig,
    lifecycle: Option<crate::analyze::lifecycle::Driver>,
    feedback: Option<crate::analyze::feedback::Commands>,
}

impl std::fmt::Debug for FeatureStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureStage")
            .field("extractors", &self.extractors.len())
            .finish_non_exhaustive()
    }
}

impl FeatureStage {
    /// A stage for the configuration's assets.
    pub fn new(config: &AnalysisConfig, classifier: Option<Box<dyn Classify>>) -> Self {
        Self {
            cfg: config.features.clone(),
            scorer: Scorer::new(
                classifier,
                config.baseline,
                config.alerts.clone(),
                config.data_dir.clone(),
            )
            .with_diagnosis(config.diagnosis)
            .with_health(config.health)
            .with_alert_id_prefix(&config.alert_id_prefix),
            contexts: machine_contexts(config),
            zone_limits: config
                .assets
                .iter()
                .filter_map(|a| a.zone_limits.map(|l| (Arc::from(a.id.as_str()), l)))
                .collect(),
            extractors: HashMap::new(),
            window: config.window,
            lifecycle: None,
            feedback: None,
        }
    }

    /// Acts on commands from the feedback topic; its shelves in force at `now_unix_ms` are
    /// put on the scorer.
    pub fn with_feedback(
        mut self,
        cfg: crate::analyze::feedback::CommandsConfig,
        now_unix_ms: u64,
    ) -> Self {
        self.feedback = Some(crate::analyze::feedback::Commands::start(
            cfg,
            &mut self.scorer,
            now_unix_ms,
        ));
        self
    }

    /// A verified command from `source`, at wall clock `now_unix_ms` and agent clock `now_ms`.
    pub fn command(
        &mut self,
        cmd: &crate::analyze::feedback::record::CommandBody,
        source: &str,
        now_unix_ms: u64,
        now_ms: u64,
    ) -> crate::analyze::feedback::Acted {
        match &mut self.feedback {
            Some(f) => {
                let acted = f.act(cmd, source, &mut self.scorer, now_unix_ms, now_ms);
                if let Some(a) = &acted.cleared {
                    AlertTransition {
                        id: &a.id,
                        asset: &a.asset,
                        transition: "cleared",
                        level: &a.level,
                        kind: &a.finding.kind,
                        reason: &a.finding.reason,
                    }
                    .emit();
                }
                acted
            }
            None => crate::analyze::feedback::Acted {
                status: crate::analyze::feedback::CommandStatus::refused(
                    &crate::analyze::feedback::record::Refusal::Malformed(
                        "this agent takes no commands ([feedback] is off)".into(),
                    ),
                    Some(cmd),
                    source,
                    now_unix_ms,
                ),
                cleared: None,
            },
        }
    }

    /// Ends the shelves whose time has come at `now_unix_ms`.
    pub fn poll_feedback(&mut self, now_unix_ms: u64) {
        if let Some(f) = &mut self.feedback {
            f.poll(&mut self.scorer, now_unix_ms);
        }
    }

    /// Puts the model lifecycle in charge of the classifier (packages, shadow, rollback).
    pub fn with_lifecycle(mut self, driver: crate::analyze::lifecycle::Driver) -> Self {
        self.lifecycle = Some(driver);
        self
    }

    /// The model lifecycle, when there is one.
    pub fn lifecycle(&self) -> Option<&crate::analyze::lifecycle::Driver> {
        self.lifecycle.as_ref()
    }

    /// A model package arrived from `source` at wall-clock `now_unix_ms`: checked and, if
    /// accepted, put in shadow. Without a lifecycle (no model) it is ignored, with a warning.
    pub fn offer_package(&mut self, bytes: &[u8], source: &str, now_unix_ms: u64) {
        match &mut self.lifecycle {
            Some(l) => l.offer(bytes, source, now_unix_ms),
            None => tracing::warn!(
                source,
                "a model package arrived but the agent runs without a model: ignored"
            ),
        }
    }

    /// After a window was scored: the lifecycle's shadow or watch model classifies the same
    /// inputs, and any decision due is taken before the next window.
    pub fn after_window(&mut self, report: &WindowReport, now_unix_ms: u64) {
        if let Some(l) = &mut self.lifecycle {
            l.on_window(
                &report.asset,
                &report.features.model_inputs(),
                report.assessment.class.as_ref(),
                report.assessment.active_alert.is_some(),
                &mut self.scorer,
                now_unix_ms,
            );
        }
    }

    /// Loads a model and makes it the classifier; on error the current one is kept. Logs the
    /// outcome.
    pub fn reload_model(
        &mut self,
        source: &ModelSource,
        variant: Variant,
    ) -> Result<Arc<str>, ReloadError> {
        if !self.scorer.has_classifier() {
            return Err(ReloadError::NoModel);
        }
        match Model::open(source, variant) {
            Ok(model) => {
                tracing::info!(
                    to = model.version(),
                    variant = model.key(),
                    "model replaced"
                );
                if let Some(warning) = model.window_mismatch(&self.window) {
                    tracing::warn!("{warning}");
                }
                let version: Arc<str> = Arc::from(model.version());
                let switch = match &mut self.lifecycle {
                    Some(l) => l.base_replaced(source.clone(), &version),
                    None => true,
                };
                if switch {
                    self.scorer.set_classifier(Box::new(model));
                    Ok(version)
                } else {
                    // A package is active: the configured model is the fall-back from now on.
                    let active = self
                        .lifecycle
                        .as_ref()
                        .map(|l| l.state().active.version.clone())
                        .unwrap_or_default();
                    tracing::info!(
                        configured = %version,
                        active = %active,
                        "the configured model is the fall-back; the package stays active"
                    );
                    Ok(Arc::from(active.as_str()))
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "new model refused; the current one keeps running");
                Err(e.into())
            }
        }
    }

    /// Features and scoring of one window at agent time `now_ms`; `None` if the window cannot
    /// be analysed (logged and counted).
    pub fn process(&mut self, w: AssembledWindow, now_ms: u64) -> Option<WindowReport> {
        let ctx = *self.contexts.get(&w.asset)?;
        let key = (w.window.samples.len(), w.window.sample_rate_hz.to_bits());
        let extractor = match self.extractors.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                match FeatureExtractor::new(key.0, w.window.sample_rate_hz, &self.cfg) {
                    Ok(x) => v.insert(x),
                    Err(e) => {
                        WindowDropped {
                            reason: DropReason::UnsupportedRate,
                            asset: &w.asset,
                            sample_rate_hz: w.window.sample_rate_hz,
                            error: &e,
                        }
                        .emit();
                        return None;
                    }
                }
            }
        };
        let started = Stopwatch::start();
        let mut features = match extractor.extract(&w.window.samples, &ctx) {
            Ok(f) => f,
            Err(e) => {
                WindowDropped {
                    reason: DropReason::FeatureError,
                    asset: &w.asset,
                    sample_rate_hz: w.window.sample_rate_hz,
                    error: &e,
                }
                .emit();
                return None;
            }
        };
        if let Some(limits) = self.zone_limits.get(&w.asset) {
            features.zone = limits.zone(features.velocity_rms_mm_s);
        }
        features.temperature_c = w.temperature_c;
        features.temperature_rise_c_per_min = w.temperature_rise_c_per_min;
        let elapsed = started.elapsed();
        metrics::histogram!("edgewatch_feature_seconds").record(elapsed.as_secs_f64());
        let (assessment, alert) = self.scorer.score(
            WindowRef {
                asset: &w.asset,
                sensor_id: w.window.sensor_id,
                axis: w.window.axis,
                start_us: w.window.start_us,
                end_us: w.window.end_us,
            },
            &features,
            now_ms,
        );
        if let Some(a) = &alert {
            AlertTransition {
                id: &a.id,
                asset: &a.asset,
                transition: &format!("{:?}", a.transition).to_lowercase(),
                level: &a.level,
                kind: &a.finding.kind,
                reason: &a.finding.reason,
            }
            .emit();
        }
        Some(WindowReport {
            asset: w.asset,
            source: w.source,
            sensor_id: w.window.sensor_id,
            axis: w.window.axis,
            start_us: w.window.start_us,
            end_us: w.window.end_us,
            sample_rate_hz: w.window.sample_rate_hz,
            features,
            extract_us: elapsed.as_micros() as u64,
            assessment,
            alert,
        })
    }
}

/// Runs the analysis stage on the calling (dedicated) thread until its input closes.
pub fn extract_features(
    config: &AnalysisConfig,
    mut rx: mpsc::Receiver<Input>,
    tx: mpsc::Sender<WindowReport>,
    health: Arc<Health>,
    classifier: Option<Box<dyn Classify>>,
    lifecycle: Option<crate::analyze::lifecycle::Driver>,
    clock: Clock,
) {
    let mut stage = FeatureStage::new(config, classifier);
    if let Some(l) = lifecycle {
        stage = stage.with_lifecycle(l);
    }
    if let Some(f) = config.feedback.clone() {
        stage = stage.with_feedback(f, clock.unix_ms());
    }
    while let Some(input) = rx.blocking_recv() {
        let w = match input {
            Input::Window(w) => w,
            Input::Reload {
                source,
                variant,
                reply,
            } => {
                // The requester may have given up; nothing to do then.
                let _ = reply.send(stage.reload_model(&source, variant));
                continue;
            }
            Input::Package { bytes, source } => {
                stage.offer_package(&bytes, &source, clock.unix_ms());
                continue;
            }
            Input::Command {
                command,
                source,
                reply,
            } => {
                let acted = stage.command(&command, &source, clock.unix_ms(), clock.now_ms());
                // The consumer waits for it; gone only when the agent shuts down.
                let _ = reply.send(acted);
                continue;
            }
        };
        stage.poll_feedback(clock.unix_ms());
        // Scored or refused: either way the window has been handled.
        health.window_scored();
        metrics::gauge!("edgewatch_channel_depth", "channel" => "windows").set(rx.len() as f64);
        let completed_ms = w.completed_ms;
        let report = stage.process(w, clock.now_ms());
        // Completing frame's arrival to scored (features, model, baseline, alert state).
        metrics::histogram!("edgewatch_window_latency_seconds")
            .record(clock.now_ms().saturating_sub(completed_ms) as f64 / 1000.0);
        if let Some(report) = report {
            stage.after_window(&report, clock.unix_ms());
            if tx.blocking_send(report).is_err() {
                break;
            }
        }
    }
    tracing::info!("feature stage drained");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::features::MODEL_INPUT_LEN;
    use std::path::Path;

    fn manifest_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/manifest.json")
    }

    fn config() -> AnalysisConfig {
        AnalysisConfig {
            features: FeatureConfig::default(),
            baseline: BaselineConfig::default(),
            alerts: AlertConfig::default(),
            diagnosis: DiagnosisConfig::default(),
            health: HealthConfig::default(),
            alert_id_prefix: String::new(),
            window: WindowConfig::default(),
            data_dir: None,
            assets: Vec::new(),
            feedback: None,
        }
    }

    /// The model's call on a fixed input, through the stage's scorer path.
    fn call(stage: &mut FeatureStage, x: &[f32]) -> Option<crate::analyze::alert::ClassVerdict> {
        stage.scorer.classify_inputs(x)
    }

    #[test]
    fn the_analysis_thread_classifies_and_keeps_its_model_when_a_reload_is_refused() {
        let model = Model::load(&manifest_path(), Variant::Int8).unwrap();
        let version = model.version().to_string();
        let (tx, rx) = mpsc::channel::<Input>(4);
        let (report_tx, _report_rx) = mpsc::channel(4);
        let control = ModelControl::new(tx);
        let thread = std::thread::spawn(move || {
            extract_features(
                &config(),
                rx,
                report_tx,
                Arc::new(Health::new(Clock::start())),
                Some(Box::new(model)),
                None,
                Clock::start(),
            )
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (refused, reloaded) = rt.block_on(async {
            let refused = control
                .reload(
                    ModelSource::File(PathBuf::from("no/such/manifest.json")),
                    Variant::Float,
                )
                .await;
            let reloaded = control
                .reload(ModelSource::File(manifest_path()), Variant::Float)
                .await;
            (refused, reloaded)
        });
        assert!(matches!(
            refused,
            Err(ReloadError::Model(ModelError::Read { .. }))
        ));
        assert_eq!(&*reloaded.unwrap(), version);
        drop(control);
        thread.join().unwrap();
    }

    #[test]
    fn a_refused_model_leaves_the_running_one_classifying_the_same() {
        let mut stage = FeatureStage::new(
            &config(),
            Some(Box::new(
                Model::load(&manifest_path(), Variant::Int8).unwrap(),
            )),
        );
        let x = [0.5f32; MODEL_INPUT_LEN];
        let before = call(&mut stage, &x).unwrap();
        let refused = stage.reload_model(
            &ModelSource::File(PathBuf::from("no/such/manifest.json")),
            Variant::Float,
        );
        assert!(matches!(refused, Err(ReloadError::Model(_))));
        assert_eq!(call(&mut stage, &x).unwrap(), before);
        let version = stage
            .reload_model(&ModelSource::File(manifest_path()), Variant::Float)
            .unwrap();
        assert_eq!(call(&mut stage, &x).unwrap().model_version, *version);
    }

    #[test]
    fn without_a_model_a_reload_says_a_restart_is_needed() {
        let mut stage = FeatureStage::new(&config(), None);
        assert!(matches!(
            stage.reload_model(&ModelSource::Builtin, Variant::Int8),
            Err(ReloadError::NoModel)
        ));
    }
}
