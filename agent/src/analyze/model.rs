//! The on-device fault classifier: an ONNX model run with tract.
//!
//! A model is two files in one folder: the ONNX graph and `manifest.json` beside it (written by
//! `models/train.py`). The manifest names the feature inputs in order, the output classes, the
//! input normalisation (for the record: it is applied *inside* the graph as plain float Sub/Mul
//! nodes), the recommended thresholds, the model version, and for each variant (`float`,
//! `int8`) its file name and SHA-256.
//!
//! # Invariants
//!
//! A [`Model`] exists only if every check passed at load: the file's SHA-256 matches the
//! manifest, the manifest's feature list is exactly [`FEATURE_NAMES`] in order (the input
//! vector is positional, so a reordered list would silently feed the wrong features), the
//! class list is non-empty and unique, tract parsed and optimised the graph for one fixed
//! `[1, MODEL_INPUT_LEN]` f32 input, and a probe run produced one finite probability per class
//! summing to 1. Any failure is a [`ModelError`] naming the problem; nothing is half-loaded,
//! so a caller replacing a running model keeps the old one on error.
//!
//! # Threads
//!
//! Inference is synchronous CPU work (microseconds for this MLP, but never on the async
//! runtime). [`Model::classify`] may be called from any non-async thread, e.g. the feature
//! thread (it implements [`Classify`]). In the agent the analysis thread owns the model
//! (`crate::analyze::FeatureStage`): a window is classified where its features are computed,
//! and a reload is a message to that thread, which keeps the old model if the new one is
//! refused.
//!
//! The plan is optimised once at load, one run state is kept, and the one input tensor is
//! refilled in place for every window (tract hands it back after each run).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tract_onnx::prelude::{
    DatumExt, Framework, InferenceFact, InferenceModelExt, IntoRunnable, TValue, Tensor,
    TypedSimpleState, tvec,
};

use crate::analyze::alert::ClassVerdict;
use crate::analyze::features::{FEATURE_NAMES, MODEL_INPUT_LEN};
use crate::analyze::scoring::Classify;
use crate::assemble::window::{WindowConfig, WindowSize};

/// Name of the manifest file beside the model files.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Which of the manifest's model files to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The float32 model.
    Float,
    /// The int8-quantised model (QDQ, MatMul weights and activations quantised).
    Int8,
}

impl Variant {
    /// `float` or `int8`: the key in the manifest's `models` table.
    pub fn key(self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// Input normalisation, `(x - mean) * scale` per input; applied inside the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    /// Per-input mean, in feature order.
    pub mean: Vec<f32>,
    /// Per-input scale (1 / standard deviation), in feature order.
    pub scale: Vec<f32>,
}

/// Recommended decision thresholds, chosen on held-out simulated data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// A window counts as abnormal when the probability of `normal` is below this.
    pub flag_when_normal_below: f32,
    /// A fault class is reported only when its probability is at least this; below it the
    /// window is abnormal but of unsure kind.
    pub min_class_probability: f32,
}

/// One model file of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// File name, relative to the manifest's folder.
    pub file: String,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    /// Human-readable description of the format.
    #[serde(default)]
    pub format: String,
}

/// `manifest.json`. Unknown fields are allowed (training provenance, report numbers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Version string carried by every classification and alert.
    pub model_version: String,
    /// Input names in order; must equal [`FEATURE_NAMES`].
    pub feature_names: Vec<String>,
    /// Output classes in order (`normal` is the healthy class).
    pub class_names: Vec<String>,
    /// The normalisation built into the graph.
    pub normalisation: Normalisation,
    /// Recommended thresholds.
    pub thresholds: Thresholds,
    /// Window length (samples) of the windows the model was trained on, when they had a fixed
    /// sample count; absent in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_length: Option<usize>,
    /// Duration (s) of the windows the model was trained on, when they were sized by duration
    /// (`[window] duration_s`); takes precedence over `window_length`. Absent in manifests
    /// written before windows had a duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_duration_s: Option<f64>,
    /// Model files by variant key (`float`, `int8`).
    pub models: std::collections::BTreeMap<String, ModelFile>,
    /// The training distribution of each input (quantiles), for input drift
    /// ([`crate::analyze::drift`]); absent in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_distribution: Option<crate::analyze::drift::InputDistribution>,
}

/// Why a model was refused. None is recoverable by retrying: fix or replace the files, and
/// keep running the previous model meanwhile.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is not valid JSON of the expected shape.
    #[error("{}: not a model manifest: {reason}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// The manifest lists no model file under the key asked for.
    #[error("the manifest has no `{key}` model")]
    NoVariant {
        /// The key asked for (`float`, `int8`).
        key: String,
    },
    /// The model file is not the one the manifest describes (corrupt, truncated or swapped).
    #[error("{}: sha256 {actual} does not match the manifest's {expected}", path.display())]
    Checksum {
        /// The model file.
        path: PathBuf,
        /// From the manifest.
        expected: String,
        /// Of the file.
        actual: String,
    },
    /// The manifest's input list differs from this agent's [`FEATURE_NAMES`].
    #[error("feature list mismatch: {reason}")]
    Features {
        /// The first difference, naming the position and both names.
        reason: String,
    },
    /// The class list is empty or repeats a name.
    #[error("class list: {reason}")]
    Classes {
        /// What is wrong.
        reason: String,
    },
    /// tract could not parse, type or optimise the graph.
    #[error("{}: tract cannot run this model: {reason}", path.display())]
    Graph {
        /// The model file.
        path: PathBuf,
        /// tract's error chain.
        reason: String,
    },
    /// The graph runs but its output is not one probability per class.
    #[error("model output: {reason}")]
    Output {
        /// What is wrong.
        reason: String,
    },
    /// This agent was built without a model (models/ held no artifacts at build time).
    #[error(
        "this agent was built without a built-in model: set [model] manifest, or rebuild after \
         models/train.sh"
    )]
    NoBuiltin,
}

/// The class probabilities of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// One probability per class, in the order of [`Classification::class_names`].
    pub probabilities: Vec<f32>,
    /// The class names, shared with the model.
    pub class_names: Arc<[String]>,
    /// Index of the most probable class.
    pub top: usize,
    /// The model version.
    pub model_version: Arc<str>,
    /// Time spent in the model, measured around the run.
    pub inference_time: Duration,
}

impl Classification {
    /// The most probable class's name.
    pub fn class(&self) -> &str {
        &self.class_names[self.top]
    }

    /// The most probable class's probability.
    pub fn probability(&self) -> f32 {
        self.probabilities[self.top]
    }

    /// The probability of a class by name.
    pub fn probability_of(&self, class: &str) -> Option<f32> {
        self.class_names
            .iter()
            .position(|c| c == class)
            .map(|i| self.probabilities[i])
    }

    /// Whether the window is abnormal under `thresholds` (probability of `normal` below
    /// [`Thresholds::flag_when_normal_below`]).
    pub fn is_abnormal(&self, thresholds: &Thresholds) -> bool {
        self.probability_of("normal")
            .is_none_or(|p| p < thresholds.flag_when_normal_below)
    }
}

/// A loaded, checked and optimised classifier. See the module docs for the invariants.
pub struct Model {
    manifest: Manifest,
    key: String,
    path: PathBuf,
    state: TypedSimpleState,
    /// The one input tensor, `[1, MODEL_INPUT_LEN]` f32, refilled in place.
    input: Arc<Tensor>,
    class_names: Arc<[String]>,
    version: Arc<str>,
    input_distribution: Option<Arc<crate::analyze::drift::InputDistribution>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("version", &self.version)
            .field("key", &self.key)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Lowercase hex SHA-256 (model files, package digests).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_features(names: &[String]) -> Result<(), ModelError> {
    for (i, expected) in FEATURE_NAMES.iter().enumerate() {
        match names.get(i) {
            Some(found) if found == expected => {}
            Some(found) => {
                return Err(ModelError::Features {
                    reason: format!("input {i} is `{found}` in the manifest, `{expected}` here"),
                });
            }
            None => {
                return Err(ModelError::Features {
                    reason: format!(
                        "the manifest lists {} inputs, this agent computes {MODEL_INPUT_LEN} \
                         (first missing: `{expected}`)",
                        names.len()
                    ),
                });
            }
        }
    }
    if names.len() > MODEL_INPUT_LEN {
        return Err(ModelError::Features {
            reason: format!(
                "the manifest lists {} inputs, this agent computes {MODEL_INPUT_LEN} (first \
                 unknown: `{}`)",
                names.len(),
                names[MODEL_INPUT_LEN]
            ),
        });
    }
    Ok(())
}

fn check_classes(names: &[String]) -> Result<(), ModelError> {
    if names.is_empty() {
        return Err(ModelError::Classes {
            reason: "no classes".into(),
        });
    }
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(ModelError::Classes {
                reason: format!("`{name}` is listed twice"),
            });
        }
    }
    Ok(())
}

impl Manifest {
    /// Reads and parses a manifest file (no checks beyond its shape).
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read(path).map_err(|source| ModelError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| ModelError::Manifest {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The committed model compiled into the agent binary (`models/` at build time).
    Builtin,
    /// A `manifest.json` on disk, its model files beside it.
    File(PathBuf),
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Builtin => f.write_str("built-in model"),
            Self::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// `[model]`: the classifier the agent runs on every window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Run the classifier (false: baseline, severity zones and envelope thresholds only).
    #[serde(default = "ModelConfig::default_enabled")]
    pub enabled: bool,
    /// The model's `manifest.json`; unset: the model built into the agent.
    #[serde(default)]
    pub manifest: Option<PathBuf>,
    /// `int8` (default: the quantised model) or `float`.
    #[serde(default = "ModelConfig::default_variant")]
    pub variant: Variant,
    /// Accepted for configurations written for earlier versions, and no longer used: the
    /// analysis thread owns the model, so no window waits in a queue for it.
    #[serde(default = "ModelConfig::default_queue")]
    pub queue: usize,
    /// Public key files (`lab model keygen`) whose signatures make a model package trusted.
    /// None: every package is refused (`untrusted_key`).
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    /// A folder of packages (`*.ewpkg`) offered at start and at each SIGHUP (`systemctl
    /// reload`), for gateways without Kafka; packages are left in place.
    #[serde(default)]
    pub package_dir: Option<PathBuf>,
    /// Shadow, promotion and rollback rules.
    #[serde(default)]
    pub rollout: crate::analyze::lifecycle::machine::Rules,
}

impl ModelConfig {
    const fn default_enabled() -> bool {
        true
    }
    const fn default_variant() -> Variant {
        Variant::Int8
    }
    const fn default_queue() -> usize {
        16
    }

    /// Where the model comes from.
    pub fn source(&self) -> ModelSource {
        match &self.manifest {
            Some(p) => ModelSource::File(p.clone()),
            None => ModelSource::Builtin,
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            enabled: Self::default_enabled(),
            manifest: None,
            variant: Self::default_variant(),
            queue: Self::default_queue(),
            trusted_keys: Vec::new(),
            package_dir: None,
            rollout: crate::analyze::lifecycle::machine::Rules::default(),
        }
    }
}

/// The committed model files, embedded at build time (see `agent/build.rs`).
#[cfg(builtin_model)]
mod builtin {
    pub const MANIFEST: &str = include_str!("../../../models/manifest.json");
    pub const FLOAT: &[u8] = include_bytes!("../../../models/edgewatch-classifier.onnx");
    pub const INT8: &[u8] = include_bytes!("../../../models/edgewatch-classifier.int8.onnx");
}

impl Model {
    /// Loads `variant` from `source`.
    pub fn open(source: &ModelSource, variant: Variant) -> Result<Self, ModelError> {
        match source {
            ModelSource::Builtin => Self::builtin(variant),
            ModelSource::File(p) => Self::load(p, variant),
        }
    }

    /// The model compiled into the agent.
    #[cfg(builtin_model)]
    pub fn builtin(variant: Variant) -> Result<Self, ModelError> {
        let manifest: Manifest =
            serde_json::from_str(builtin::MANIFEST).map_err(|e| ModelError::Manifest {
                path: PathBuf::from("<built-in>/manifest.json"),
                reason: e.to_string(),
            })?;
        let bytes = match variant {
            Variant::Float => builtin::FLOAT,
            Variant::Int8 => builtin::INT8,
        };
        let path = PathBuf::from(format!("<built-in>/{}", variant.key()));
        Self::from_parts(manifest, variant.key(), &path, bytes)
    }

    /// The model compiled into the agent: none in this build.
    #[cfg(not(builtin_model))]
    pub fn builtin(_variant: Variant) -> Result<Self, ModelError> {
        Err(ModelError::NoBuiltin)
    }

    /// Loads the `variant` model described by the manifest at `manifest_path` (its files are
    /// resolved relative to the manifest's folder), checks it and optimises it for one window.
    pub fn load(manifest_path: &Path, variant: Variant) -> Result<Self, ModelError> {
        Self::load_named(manifest_path, variant.key())
    }

    /// Like [`load`](Self::load), for any key of the manifest's `models` table (e.g. a
    /// candidate format under evaluation).
    pub fn load_named(manifest_path: &Path, key: &str) -> Result<Self, ModelError> {
        let manifest = Manifest::load(manifest_path)?;
        let entry = manifest
            .models
            .get(key)
            .ok_or_else(|| ModelError::NoVariant {
                key: key.to_string(),
            })?;
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        let path = dir.join(&entry.file);
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Read {
            path: path.clone(),
            source,
        })?;
        Self::from_parts(manifest, key, &path, &bytes)
    }

    /// Checks and builds a model from a parsed manifest and the bytes of the file listed under
    /// `key` (`path` is for messages only).
    pub fn from_parts(
        manifest: Manifest,
        key: &str,
        path: &Path,
        onnx: &[u8],
    ) -> Result<Self, ModelError> {
        let entry = manifest
            .models
            .get(key)
            .ok_or_else(|| ModelError::NoVariant {
                key: key.to_string(),
            })?;
        let actual = sha256_hex(onnx);
        if !actual.eq_ignore_ascii_case(entry.sha256.trim()) {
            return Err(ModelError::Checksum {
                path: path.to_path_buf(),
                expected: entry.sha256.clone(),
                actual,
            });
        }
        check_features(&manifest.feature_names)?;
        check_classes(&manifest.class_names)?;
        if let Some(d) = &manifest.input_distribution {
            d.check(MODEL_INPUT_LEN)
                .map_err(|reason| ModelError::Features { reason })?;
        }
        let graph_error = |e: tract_onnx::prelude::TractError| ModelError::Graph {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        };
        // Fixed input shape, output shapes left to inference (the graph may declare a
        // symbolic batch), optimised once.
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(onnx))
            .map_err(graph_error)?
            .with_input_fact(0, f32::fact([1, MODEL_INPUT_LEN]).into())
            .map_err(graph_error)?;
        for output in 0..model.output_outlets().map_err(graph_error)?.len() {
            model
                .set_output_fact(output, InferenceFact::default())
                .map_err(graph_error)?;
        }
        let plan = model
            .into_optimized()
            .map_err(graph_error)?
            .into_runnable()
            .map_err(graph_error)?;
        let state = plan.spawn().map_err(graph_error)?;
        let input = Arc::new(Tensor::zero::<f32>(&[1, MODEL_INPUT_LEN]).map_err(graph_error)?);
        let mut model = Self {
            input_distribution: manifest.input_distribution.clone().map(Arc::new),
            class_names: manifest.class_names.clone().into(),
            version: manifest.model_version.as_str().into(),
            manifest,
            key: key.to_string(),
            path: path.to_path_buf(),
            state,
            input,
        };
        // Probe: a model that cannot classify the all-zero vector is refused now rather than
        // on the first window.
        let probe = model.classify(&[0.0; MODEL_INPUT_LEN])?;
        let sum: f32 = probe.probabilities.iter().sum();
        if (sum - 1.0).abs() > 1e-3 {
            return Err(ModelError::Output {
                reason: format!("probabilities sum to {sum}, not 1: is Softmax the last node?"),
            });
        }
        Ok(model)
    }

    /// Class probabilities for one window's model inputs.
    ///
    /// Errors only if tract fails at run time or the output is malformed, which the load-time
    /// probe makes unexpected; the window can be skipped.
    pub fn classify(
        &mut self,
        inputs: &[f32; MODEL_INPUT_LEN],
    ) -> Result<Classification, ModelError> {
        let started = crate::clock::Stopwatch::start();
        let run_error = |e: tract_onnx::prelude::TractError| ModelError::Output {
            reason: format!("run failed: {e:#}"),
        };
        // tract drops its reference after each run, so the tensor is normally ours again;
        // if not, a fresh one costs one small allocation.
        if Arc::get_mut(&mut self.input).is_none() {
            self.input = Arc::new(Tensor::zero::<f32>(&[1, MODEL_INPUT_LEN]).map_err(run_error)?);
        }
        if let Some(tensor) = Arc::get_mut(&mut self.input) {
            tensor
                .try_as_plain_ram_mut()
                .and_then(|mut view| {
                    view.as_slice_mut::<f32>()?.copy_from_slice(inputs);
                    Ok(())
                })
                .map_err(run_error)?;
        }
        let outputs = self
            .state
            .run(tvec![TValue::from_const(self.input.clone())])
            .map_err(run_error)?;
        let output = outputs.first().ok_or_else(|| ModelError::Output {
            reason: "no output".into(),
        })?;
        let probabilities: Vec<f32> = output
            .to_plain_array_view::<f32>()
            .map_err(run_error)?
            .iter()
            .copied()
            .collect();
        let inference_time = started.elapsed();
        if probabilities.len() != self.class_names.len() {
            return Err(ModelError::Output {
                reason: format!(
                    "{} outputs for {} classes",
                    probabilities.len(),
                    self.class_names.len()
                ),
            });
        }
        if let Some(bad) = probabilities.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(ModelError::Output {
                reason: format!("{bad} is not a probability"),
            });
        }
        let top = probabilities.iter().enumerate().fold(0, |best, (i, p)| {
            if *p > probabilities[best] { i } else { best }
        });
        Ok(Classification {
            probabilities,
            class_names: self.class_names.clone(),
            top,
            model_version: self.version.clone(),
            inference_time,
        })
    }

    /// The windows the model was trained on, from its manifest: `window_duration_s` when
    /// present, else `window_length`; `None` when the manifest says neither.
    pub fn trained_window(&self) -> Option<WindowSize> {
        match (self.manifest.window_duration_s, self.manifest.window_length) {
            (Some(s), _) => Some(WindowSize::DurationS(s)),
            (None, Some(n)) => Some(WindowSize::Length(n)),
            (None, None) => None,
        }
    }

    /// Why this model's verdicts on the agent's windows (`[window]`) are untested, or `None`
    /// when it was trained on windows of the same size (or the manifest does not say). The
    /// features are normalised, but envelope peaks over background and chance peaks depend on
    /// the resolution, so other windows are outside the training. Durations agree within
    /// 0.1 %; a duration and a sample count, or shaft revolutions and anything, never do (their
    /// ratio depends on each sensor's sample rate or each asset's speed).
    pub fn window_mismatch(&self, window: &WindowConfig) -> Option<String> {
        let trained = self.trained_window()?;
        let configured = window.size();
        let same = match (trained, configured) {
            (WindowSize::DurationS(a), WindowSize::DurationS(b)) => {
                (a - b).abs() <= 1e-3 * a.abs().max(b.abs())
            }
            (WindowSize::Length(a), WindowSize::Length(b)) => a == b,
            _ => false,
        };
        if same {
            return None;
        }
        let trained = match trained {
            WindowSize::DurationS(s) => format!("{s} s"),
            WindowSize::Revolutions(r) => format!("{r}-revolution"),
            WindowSize::Length(n) => format!("{n}-sample"),
        };
        let train = match configured {
            WindowSize::DurationS(s) => format!("lab export-features --window-s {s}"),
            WindowSize::Revolutions(r) => {
                format!("lab export-features --window-revolutions {r}")
            }
            WindowSize::Length(n) => format!("WINDOW_LEN={n} models/train.sh"),
        };
        Some(format!(
            "model {} was trained on {trained} windows, [window] is {configured}: expect more \
             false positives (train one on these windows: {train})",
            self.version
        ))
    }

    /// The manifest the model was loaded with.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The model version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The manifest key this model was loaded from (`float`, `int8`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The recommended thresholds.
    pub fn thresholds(&self) -> Thresholds {
        self.manifest.thresholds
    }

    /// The class names, in output order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }
}

impl From<&Classification> for ClassVerdict {
    fn from(c: &Classification) -> Self {
        ClassVerdict {
            class: c.class().to_string(),
            probability: f64::from(c.probability()),
            model_version: c.model_version.to_string(),
        }
    }
}

impl Classify for Model {
    fn classify(&mut self, inputs: &[f32]) -> Option<ClassVerdict> {
        let inputs: &[f32; MODEL_INPUT_LEN] = inputs.try_into().ok()?;
        match Model::classify(self, inputs) {
            Ok(c) => {
                metrics::histogram!("edgewatch_inference_seconds")
                    .record(c.inference_time.as_secs_f64());
                Some(ClassVerdict::from(&c))
            }
            Err(e) => {
                tracing::warn!(error = %e, "window not classified");
                None
            }
        }
    }

    fn input_distribution(&self) -> Option<Arc<crate::analyze::drift::InputDistribution>> {
        self.input_distribution.clone()
    }
}

/// Sets `edgewatch_model_info{version, variant}` to 1 for the active model (0 for the one
/// before).
pub fn set_model_info(version: &str, variant: Variant) {
    static CURRENT: std::sync::Mutex<Option<(String, Variant)>> = std::sync::Mutex::new(None);
    let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((v, k)) = current.take() {
        metrics::gauge!("edgewatch_model_info", "version" => v, "variant" => k.key()).set(0.0);
    }
    metrics::gauge!("edgewatch_model_info", "version" => version.to_string(), "variant" => variant.key())
        .set(1.0);
    *current = Some((version.to_string(), variant));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed artifacts, found from this crate's folder (tests run without Python).
    fn models_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
    }

    fn manifest_path() -> PathBuf {
        models_dir().join(MANIFEST_FILE)
    }

    #[derive(Deserialize)]
    struct GoldenCase {
        inputs: Vec<f32>,
        float: Vec<f32>,
        int8: Vec<f32>,
    }

    #[derive(Deserialize)]
    struct Golden {
        model_version: String,
        tolerance: f32,
        cases: Vec<GoldenCase>,
    }

    fn golden() -> Golden {
        let text = std::fs::read(models_dir().join("golden.json")).unwrap();
        serde_json::from_slice(&text).unwrap()
    }

    fn array(v: &[f32]) -> [f32; MODEL_INPUT_LEN] {
        v.try_into().unwrap()
    }

    #[test]
    fn both_committed_models_reproduce_the_golden_outputs_of_onnxruntime() {
        let golden = golden();
        for variant in [Variant::Float, Variant::Int8] {
            let mut model = Model::load(&manifest_path(), variant).unwrap();
            assert_eq!(model.version(), golden.model_version);
            for (k, case) in golden.cases.iter().enumerate() {
                let expected = match variant {
                    Variant::Float => &case.float,
                    Variant::Int8 => &case.int8,
                };
                let got = model.classify(&array(&case.inputs)).unwrap();
                for (i, (g, e)) in got.probabilities.iter().zip(expected).enumerate() {
                    assert!(
                        (g - e).abs() <= golden.tolerance,
                        "{variant} case {k} class {i}: tract {g}, onnxruntime {e}"
                    );
                }
                let top = expected
                    .iter()
                    .enumerate()
                    .fold(0, |b, (i, p)| if *p > expected[b] { i } else { b });
                assert_eq!(got.top, top, "{variant} case {k}");
            }
        }
    }

    #[test]
    fn the_int8_model_agrees_with_the_float_model_on_the_stored_test_set() {
        let text = std::fs::read_to_string(models_dir().join("agreement-set.csv")).unwrap();
        let mut float = Model::load(&manifest_path(), Variant::Float).unwrap();
        let mut int8 = Model::load(&manifest_path(), Variant::Int8).unwrap();
        let (mut same, mut total) = (0usize, 0usize);
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(header, FEATURE_NAMES);
        for line in lines {
            let v: Vec<f32> = line.split(',').map(|x| x.parse().unwrap()).collect();
            let x = array(&v);
            same += usize::from(float.classify(&x).unwrap().top == int8.classify(&x).unwrap().top);
            total += 1;
        }
        let agreement = same as f64 / total as f64;
        eprintln!(
            "int8 vs float: {same}/{total} = {:.2} % same class",
            100.0 * agreement
        );
        assert!(total >= 500, "{total}");
        // The target is 99 % (issue 4; the committed model: 99.38 % on the 1920 held-out
        // windows, docs/model.md).
        // This floor catches a broken quantisation (a quantised Softmax, wrong scales), which
        // lands far below it; the figure itself is reported by models/train.sh and the docs.
        assert!(
            agreement >= 0.95,
            "int8 and float disagree on {:.2} % of windows: the int8 model is broken",
            100.0 * (1.0 - agreement)
        );
    }

    fn copy_models(dir: &Path) -> PathBuf {
        for entry in std::fs::read_dir(models_dir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".onnx") || name == MANIFEST_FILE {
                std::fs::copy(&path, dir.join(name)).unwrap();
            }
        }
        dir.join(MANIFEST_FILE)
    }

    fn edit_manifest(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    #[test]
    fn a_model_trained_on_other_windows_than_the_agents_is_named() {
        // The committed model records its training window.
        let model = Model::open(&ModelSource::File(manifest_path()), Variant::Int8).unwrap();
        assert!(model.trained_window().is_some());
        let dir = tempfile::tempdir().unwrap();
        let manifest = copy_models(dir.path());
        let with_window = |length: Option<usize>, duration_s: Option<f64>| {
            edit_manifest(&manifest, |v| {
                let v = v.as_object_mut().unwrap();
                v.remove("window_length");
                v.remove("window_duration_s");
                if let Some(n) = length {
                    v.insert("window_length".into(), n.into());
                }
                if let Some(s) = duration_s {
                    v.insert("window_duration_s".into(), s.into());
                }
            });
            Model::open(&ModelSource::File(manifest.clone()), Variant::Int8).unwrap()
        };

        // Trained on 8192-sample windows (a manifest from before durations).
        let fixed = with_window(Some(8192), None);
        assert_eq!(fixed.trained_window(), Some(WindowSize::Length(8192)));
        assert_eq!(
            fixed.window_mismatch(&WindowConfig::from_length(8192)),
            None
        );
        let warning = fixed
            .window_mismatch(&WindowConfig::from_length(16_384))
            .unwrap();
        assert!(
            warning.contains("8192-sample windows") && warning.contains("length = 16384"),
            "{warning}"
        );
        // The agent's default, 1 s windows, is not what it was trained on.
        let warning = fixed.window_mismatch(&WindowConfig::default()).unwrap();
        assert!(
            warning.contains("8192-sample windows") && warning.contains("duration_s = 1"),
            "{warning}"
        );

        // Trained on 1 s windows: the configured duration is compared, within rounding.
        let one_s = with_window(Some(8192), Some(1.0));
        assert_eq!(one_s.trained_window(), Some(WindowSize::DurationS(1.0)));
        assert_eq!(one_s.window_mismatch(&WindowConfig::default()), None);
        assert_eq!(
            one_s.window_mismatch(&WindowConfig::from_duration_s(1.0004)),
            None
        );
        let warning = one_s
            .window_mismatch(&WindowConfig::from_duration_s(2.0))
            .unwrap();
        assert!(
            warning.contains("1 s windows") && warning.contains("duration_s = 2"),
            "{warning}"
        );
        assert!(warning.contains("--window-s 2"), "{warning}");
        assert!(
            one_s
                .window_mismatch(&WindowConfig::from_length(8192))
                .is_some()
        );
        assert!(
            one_s
                .window_mismatch(&WindowConfig::from_revolutions(25.0))
                .is_some()
        );

        // A manifest from before either field existed: nothing to compare, nothing said.
        let old = with_window(None, None);
        assert_eq!(old.trained_window(), None);
        assert_eq!(
            old.window_mismatch(&WindowConfig::from_length(16_384)),
            None
        );
        assert_eq!(old.window_mismatch(&WindowConfig::default()), None);
    }

    #[test]
    fn a_corrupted_model_file_is_refused_by_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = copy_models(dir.path());
        let file = dir
            .path()
            .join(&Manifest::load(&manifest).unwrap().models["float"].file);
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x5a;
        std::fs::write(&file, &bytes).unwrap();
        let error = Model::load(&manifest, Variant::Float).unwrap_err();
        assert!(matches!(error, ModelError::Checksum { .. }), "{error}");
        assert!(error.to_string().contains("does not match"), "{error}");
    }

    #[test]
    fn a_wrong_checksum_in_the_manifest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = copy_models(dir.path());
        edit_manifest(&manifest, |v| {
            v["models"]["int8"]["sha256"] = "00".repeat(32).into();
        });
        let error = Model::load(&manifest, Variant::Int8).unwrap_err();
        assert!(matches!(error, ModelError::Checksum { .. }), "{error}");
        // The other variant is untouched.
        Model::load(&manifest, Variant::Float).unwrap();
    }

    #[test]
    fn a_reordered_feature_list_is_refused_naming_the_position() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = copy_models(dir.path());
        edit_manifest(&manifest, |v| {
            v["feature_names"].as_array_mut().unwrap().swap(1, 2);
        });
        let error = Model::load(&manifest, Variant::Float).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, ModelError::Features { .. }), "{message}");
        assert!(
            message.contains("input 1 is `log10_kurtosis`") && message.contains("crest_factor"),
            "{message}"
        );
    }

    #[test]
    fn a_shorter_or_longer_feature_list_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = copy_models(dir.path());
        edit_manifest(&manifest, |v| {
            v["feature_names"].as_array_mut().unwrap().pop();
        });
        let error = Model::load(&manifest, Variant::Float).unwrap_err();
        assert!(error.to_string().contains("22 inputs"), "{error}");
        edit_manifest(&manifest, |v| {
            let names = v["feature_names"].as_array_mut().unwrap();
            names.push("temperature_rise_c_per_min".into());
            names.push("new_feature".into());
        });
        let error = Model::load(&manifest, Variant::Float).unwrap_err();
        assert!(error.to_string().contains("`new_feature`"), "{error}");
    }

    #[test]
    fn a_class_list_that_does_not_match_the_output_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = copy_models(dir.path());
        edit_manifest(&manifest, |v| {
            v["class_names"].as_array_mut().unwrap().pop();
        });
        let error = Model::load(&manifest, Variant::Float).unwrap_err();
        assert!(matches!(error, ModelError::Output { .. }), "{error}");
    }

    #[test]
    fn a_file_that_is_not_onnx_is_refused_by_tract_after_its_checksum_matched() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = copy_models(dir.path());
        let garbage = b"this is not an onnx model".to_vec();
        std::fs::write(dir.path().join("garbage.onnx"), &garbage).unwrap();
        edit_manifest(&manifest, |v| {
            v["models"]["float"]["file"] = "garbage.onnx".into();
            v["models"]["float"]["sha256"] = sha256_hex(&garbage).into();
        });
        let error = Model::load(&manifest, Variant::Float).unwrap_err();
        assert!(matches!(error, ModelError::Graph { .. }), "{error}");
    }

    #[test]
    fn a_missing_manifest_names_the_file() {
        let error = Model::load(Path::new("no/such/manifest.json"), Variant::Float).unwrap_err();
        assert!(
            error.to_string().contains("no/such/manifest.json"),
            "{error}"
        );
    }

    /// Runs every model of a check manifest written by `models/train.py` (`float`, `qdq`,
    /// `qoperator`) in tract over its check set, comparing each window's class with
    /// onnxruntime's, and times one inference per window. Run by `models/train.sh`:
    /// `EDGEWATCH_MODEL_CHECK=models/work/check-manifest.json cargo test --release -p
    /// edgewatch-agent -- --ignored candidate_formats --nocapture`.
    #[test]
    #[ignore = "needs the work folder of models/train.sh"]
    fn candidate_formats_in_tract_against_onnxruntime() {
        let Some(manifest) = std::env::var_os("EDGEWATCH_MODEL_CHECK").map(PathBuf::from) else {
            eprintln!("EDGEWATCH_MODEL_CHECK not set: nothing to check");
            return;
        };
        let text = std::fs::read_to_string(manifest.with_file_name("check-set.csv")).unwrap();
        let mut lines = text.lines();
        let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
        let rows: Vec<(Vec<usize>, [f32; MODEL_INPUT_LEN])> = lines
            .map(|line| {
                let v: Vec<&str> = line.split(',').collect();
                let classes = v[..3].iter().map(|c| c.parse().unwrap()).collect();
                let x: Vec<f32> = v[3..].iter().map(|x| x.parse().unwrap()).collect();
                (classes, array(&x))
            })
            .collect();
        let keys = &header[..3];
        let mut float_top: Vec<usize> = Vec::new();
        println!(
            "| form | tract loads | same class as onnxruntime | same class as tract float | median µs | p90 µs |"
        );
        println!("|---|---|---:|---:|---:|---:|");
        for (k, key) in keys.iter().enumerate() {
            let started = std::time::Instant::now();
            let mut model = match Model::load_named(&manifest, key) {
                Ok(m) => m,
                Err(e) => {
                    println!("| {key} | no: {e} | - | - | - | - |");
                    continue;
                }
            };
            let load_ms = started.elapsed().as_secs_f64() * 1e3;
            let mut tops = Vec::new();
            for (_, x) in &rows {
                tops.push(model.classify(x).unwrap().top);
            }
            // Timing: after a warm-up pass, every window 5 times, one inference at a time.
            let mut times: Vec<f64> = Vec::new();
            for _ in 0..5 {
                for (_, x) in &rows {
                    let t = std::time::Instant::now();
                    let c = model.classify(x).unwrap();
                    times.push(t.elapsed().as_secs_f64() * 1e6);
                    std::hint::black_box(c);
                }
            }
            times.sort_by(f64::total_cmp);
            let same_ort = rows
                .iter()
                .zip(&tops)
                .filter(|((c, _), t)| c[k] == **t)
                .count();
            if k == 0 {
                float_top = tops.clone();
            }
            let same_float = tops.iter().zip(&float_top).filter(|(a, b)| a == b).count();
            println!(
                "| {key} | yes ({load_ms:.1} ms load+optimise) | {same_ort}/{} | {same_float}/{} | {:.1} | {:.1} |",
                rows.len(),
                rows.len(),
                times[times.len() / 2],
                times[times.len() * 9 / 10],
            );
        }
    }
}
