//! Alerts: per-window evidence combined into hysteretic, explained, per-asset alerts.
//!
//! Every scored window is first judged on its own ([`judge`]): normal, warning or critical, with
//! the finding that decided it. Evidence, strongest first:
//!
//! 1. the classifier: a fault class with probability ≥ `classifier_warning`; critical when the
//!    probability is ≥ `classifier_critical` *and* there is severity evidence (zone C or D, a
//!    bearing line ≥ `envelope_critical_db`, or an anomaly score ≥ 2 × the baseline threshold).
//!    Once the asset has a baseline, a class the model already called on more than
//!    `classifier_habitual_rate` of its commissioning windows, but not on most of them (see
//!    [`crate::analyze::baseline`]), counts only in a window that is also anomalous: what the model
//!    calls a fault there now and then is this machine's normal state;
//! 2. the envelope spectrum (works before any model or baseline): the strongest bearing line
//!    (BPFO, BPFI, BSF, 2×BSF) ≥ `envelope_warning_db`, critical ≥ `envelope_critical_db`;
//! 3. temperature: level ≥ `temperature_warning_c` or rise ≥ `temperature_rise_warning_c_per_min`,
//!    critical ≥ `temperature_critical_c`;
//! 4. velocity severity: zone C is a warning, zone D critical;
//! 5. the learned baseline, once commissioned: anomaly score ≥ its threshold is a warning;
//! 6. the sensor's health over its life: degrading is a warning, failed critical;
//! 7. the baseline drift score (the asset's typical state over its last `drift_windows` windows
//!    against its baseline) ≥ `[baseline] drift_threshold` is a warning of kind `drift`: a slow
//!    move no single window shows. The median over many windows is sustained by construction,
//!    and the hysteresis below applies to it like to any other finding.
//!
//! Then per asset ([`AlertEngine`]), with the agent's clock as an input:
//! - an alert is **raised** when `raise_after` of the last `raise_window` windows are abnormal
//!   (and the asset is not in its cool-down), at warning or — if as many were critical — at
//!   critical level;
//! - an active warning **escalates** to critical when `raise_after` of the last `raise_window`
//!   windows are critical; it keeps its id (one incident, one id) and never de-escalates;
//! - it **clears** after `clear_after` consecutive normal windows, and the asset then stays
//!   quiet for `cooldown_s`, so a flapping machine does not flood the uplink.
//!
//! One asset has at most one active alert; its id is `<asset>-<ms of the agent clock when raised>`,
//! stable through escalation and clearing.

use crate::analyze::diagnosis::Diagnosis;
use crate::analyze::features::{Features, LINE_DB, SeverityZone};
use crate::analyze::health::{HealthReport, Stage};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// Alert thresholds and hysteresis (`[alerts]` in the configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// Abnormal windows among the last `raise_window` that raise an alert.
    pub raise_after: usize,
    /// Windows considered for raising and escalating.
    pub raise_window: usize,
    /// Consecutive normal windows that clear an alert.
    pub clear_after: usize,
    /// Quiet time after a clear, s.
    pub cooldown_s: f64,
    /// Fault-class probability for a warning.
    pub classifier_warning: f64,
    /// Fault-class probability for a critical alert (with severity evidence).
    pub classifier_critical: f64,
    /// Share of an asset's commissioning windows above which a fault class the model called
    /// there is habitual for that asset (counted afterwards only with an anomaly).
    pub classifier_habitual_rate: f64,
    /// Bearing line height for a warning, dB over background.
    pub envelope_warning_db: f64,
    /// Bearing line height for a critical alert, dB over background.
    pub envelope_critical_db: f64,
    /// Temperature for a warning, °C.
    pub temperature_warning_c: f64,
    /// Temperature for a critical alert, °C.
    pub temperature_critical_c: f64,
    /// Rate of rise for a warning, °C/min.
    pub temperature_rise_warning_c_per_min: f64,
    /// Whether a classifier's fault call needs physical backing to count (see [`judge`]):
    /// a line of the part's family or p ≥ `classifier_critical` for a bearing part, zone B or
    /// worse for a shaft-rate fault, or an anomalous window. `false` trusts the model's
    /// `classifier_warning` alone: more faults found, more healthy windows flagged.
    pub classifier_needs_backing: bool,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            raise_after: 3,
            raise_window: 5,
            clear_after: 10,
            cooldown_s: 300.0,
            classifier_warning: 0.6,
            classifier_critical: 0.9,
            classifier_habitual_rate: 0.02,
            envelope_warning_db: 15.0,
            envelope_critical_db: 24.0,
            temperature_warning_c: 80.0,
            temperature_critical_c: 95.0,
            temperature_rise_warning_c_per_min: 2.0,
            classifier_needs_backing: true,
        }
    }
}

impl AlertConfig {
    /// Whether the classifier called a fault: a class other than `normal` with probability
    /// ≥ `classifier_warning`.
    pub fn calls_fault(&self, c: &ClassVerdict) -> bool {
        c.class != "normal" && c.probability >= self.classifier_warning
    }

    /// Checks ranges; returns `(field, reason)` for each problem.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if self.raise_window == 0 || self.raise_after == 0 || self.raise_after > self.raise_window {
            p.push((
                "raise_after",
                format!(
                    "{} of {} windows: need 1 <= raise_after <= raise_window",
                    self.raise_after, self.raise_window
                ),
            ));
        }
        if self.clear_after == 0 {
            p.push(("clear_after", "must be > 0".into()));
        }
        if self.cooldown_s.is_nan() || self.cooldown_s < 0.0 {
            p.push(("cooldown_s", "must be >= 0".into()));
        }
        for (f, v) in [
            ("classifier_warning", self.classifier_warning),
            ("classifier_critical", self.classifier_critical),
            ("classifier_habitual_rate", self.classifier_habitual_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                p.push((f, format!("{v} is not a probability")));
            }
        }
        if self.classifier_critical < self.classifier_warning {
            p.push(("classifier_critical", "is below classifier_warning".into()));
        }
        if self.envelope_critical_db < self.envelope_warning_db {
            p.push((
                "envelope_critical_db",
                "is below envelope_warning_db".into(),
            ));
        }
        if self.temperature_critical_c < self.temperature_warning_c {
            p.push((
                "temperature_critical_c",
                "is below temperature_warning_c".into(),
            ));
        }
        p
    }
}

/// Severity of a window or an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Nothing abnormal.
    Normal,
    /// Plan maintenance.
    Warning,
    /// Act now.
    Critical,
}

/// What the classifier said about a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassVerdict {
    /// Top class name (`normal` for healthy).
    pub class: String,
    /// Its probability.
    pub probability: f64,
    /// Model version.
    pub model_version: String,
}

/// Everything known about one window, the input of [`judge`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence<'a> {
    /// The window's features.
    pub features: &'a Features,
    /// Classifier output, when a model is loaded.
    pub class: Option<ClassVerdict>,
    /// Anomaly score and its top contributors, once the asset's baseline exists.
    pub anomaly: Option<(f64, Vec<(String, f64)>)>,
    /// The baseline's anomaly threshold.
    pub anomaly_threshold: f64,
    /// The baseline drift score over the asset's recent windows, once there are enough.
    pub drift: Option<f64>,
    /// The drift score that is a finding (`[baseline] drift_threshold`).
    pub drift_threshold: f64,
    /// The classifier's class is habitual for this asset ([`crate::analyze::baseline::Baseline::habitual`]).
    pub habitual_class: bool,
    /// The physics' verdict on the bearing part over the sensor's recent windows.
    pub diagnosis: Option<Diagnosis>,
    /// The sensor's health over its life (this window's axis).
    pub health: Option<HealthReport>,
}

/// Why a window was judged as it was: the explanation carried by an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `outer`, `inner`, `ball`, `imbalance`, `misalignment`, `looseness`, `overheating`,
    /// `vibration` (severity zone), `anomaly`, `drift` (the baseline drift score), `degradation` (the health indicator's onset, with
    /// nothing else wrong), or `normal`.
    pub kind: String,
    /// One sentence for people.
    pub reason: String,
    /// Classifier class and probability, if a model is loaded.
    pub class: Option<String>,
    /// Probability of `class`.
    pub probability: Option<f64>,
    /// Model version, if a model is loaded.
    pub model_version: Option<String>,
    /// Anomaly score, if the asset has a baseline.
    pub anomaly_score: Option<f64>,
    /// Features that moved most from the baseline `(name, robust z)`.
    pub top_features: Vec<(String, f64)>,
    /// Strongest bearing line: name, frequency in Hz, dB over background.
    pub bearing_line: (String, f64, f64),
    /// Velocity RMS, mm/s, and its zone.
    pub velocity_rms_mm_s: f64,
    /// Severity zone.
    pub zone: SeverityZone,
    /// Temperature, °C.
    pub temperature_c: Option<f64>,
    /// Which evidence decided `kind`: `envelope` (the line families were unambiguous),
    /// `classifier`, `envelope+classifier` (both said the same part), `envelope line` (the
    /// strongest single line, no model), `temperature`, `velocity`, `baseline`, `health`
    /// (degradation over life), or empty for a normal window.
    #[serde(default)]
    pub decided_by: String,
    /// The line families' mean scores over the recent windows, dB, highest first.
    #[serde(default)]
    pub line_scores: Vec<(String, f64)>,
    /// The deciding sensor's health over its life: stage, onset, remaining life.
    #[serde(default)]
    pub health: Option<HealthReport>,
}

fn line_kind(name: &str) -> &'static str {
    match name {
        "BPFO" => "outer",
        "BPFI" => "inner",
        "BSF" | "2xBSF" => "ball",
        _ => "cage",
    }
}

/// Judges one window on its own.
pub fn judge(cfg: &AlertConfig, e: &Evidence<'_>) -> (Level, Finding) {
    let f = e.features;
    let (line, hz, db) = f.strongest_bearing_peak();
    // The cage line (FTF) is left out: healthy machines show it (docs/features.md).
    let bearing = [
        ("BPFO", f.envelope.bpfo_hz, f.envelope.bpfo_db),
        ("BPFI", f.envelope.bpfi_hz, f.envelope.bpfi_db),
        ("2xBSF", f.envelope.bsf_2x_hz, f.envelope.bsf_2x_db),
        ("BSF", f.envelope.bsf_hz, f.envelope.bsf_db),
    ]
    .into_iter()
    .fold(
        ("BPFO", 0.0, f64::MIN),
        |b, l| if l.2 > b.2 { l } else { b },
    );
    let anomaly = e.anomaly.as_ref().map(|a| a.0);
    let severe = f.zone >= SeverityZone::C
        || bearing.2 >= cfg.envelope_critical_db
        || anomaly.is_some_and(|a| a >= 2.0 * e.anomaly_threshold);
    let mut finding = Finding {
        kind: "normal".into(),
        reason: String::new(),
        class: e.class.as_ref().map(|c| c.class.clone()),
        probability: e.class.as_ref().map(|c| c.probability),
        model_version: e.class.as_ref().map(|c| c.model_version.clone()),
        anomaly_score: anomaly,
        top_features: e.anomaly.as_ref().map(|a| a.1.clone()).unwrap_or_default(),
        bearing_line: (line.to_string(), hz, db),
        velocity_rms_mm_s: f.velocity_rms_mm_s,
        zone: f.zone,
        temperature_c: f.temperature_c,
        decided_by: String::new(),
        line_scores: e
            .diagnosis
            .as_ref()
            .map(|d| d.scores.iter().map(|&(p, s)| (p.to_string(), s)).collect())
            .unwrap_or_default(),
        health: e.health,
    };
    let physics = e.diagnosis.as_ref().and_then(|d| d.part);
    let physics_text = e
        .diagnosis
        .as_ref()
        .map(|d| format!("; {}", d.explain()))
        .unwrap_or_default();
    let mut verdict = |level: Level, kind: &str, by: &str, reason: String| {
        finding.kind = kind.to_string();
        finding.decided_by = by.to_string();
        finding.reason = reason;
        level
    };
    let anomalous = anomaly.is_some_and(|a| a >= e.anomaly_threshold);
    let families = &f.envelope.families;
    let family_peak = |part: &str| match part {
        "outer" => Some(families.outer.peak_db),
        "inner" => Some(families.inner.peak_db),
        "ball" => Some(families.ball.peak_db),
        _ => None,
    };
    // What backs a class the model calls, beyond a plain majority of the model: for a bearing
    // part, a line of its family in this window, or the model being sure
    // (`classifier_critical`); for a shaft-rate fault, vibration beyond zone A (a machine in
    // zone A is fit for service whatever its spectrum's shape). Without it a model trained on
    // other machines is not trusted on its own (cold start on healthy machines).
    let sure = e
        .class
        .as_ref()
        .is_some_and(|c| c.probability >= cfg.classifier_critical);
    let backed = |class: &str| match class {
        _ if !cfg.classifier_needs_backing => true,
        "outer" | "inner" | "ball" => {
            family_peak(class).is_some_and(|db| db >= LINE_DB) || sure || severe || anomalous
        }
        "imbalance" | "misalignment" | "looseness" => f.zone > SeverityZone::A || anomalous,
        _ => true,
    };
    let level = if let Some(c) = e
        .class
        .as_ref()
        .filter(|c| cfg.calls_fault(c) && (!e.habitual_class || anomalous) && backed(&c.class))
    {
        let level = if c.probability >= cfg.classifier_critical && severe {
            Level::Critical
        } else {
            Level::Warning
        };
        // Where the physics is sure of the part, it names it; the model decides otherwise.
        let (kind, by) = match physics {
            Some(p) if p == c.class => (p, "envelope+classifier"),
            Some(p) => (p, "envelope"),
            None => (c.class.as_str(), "classifier"),
        };
        verdict(
            level,
            kind,
            by,
            format!(
                "classifier: {} (p = {:.2}); strongest bearing line {} at {:.1} Hz, {:+.1} dB; \
                 velocity {:.2} mm/s, zone {}{physics_text}",
                c.class,
                c.probability,
                bearing.0,
                bearing.1,
                bearing.2,
                f.velocity_rms_mm_s,
                f.zone
            ),
        )
    } else if let Some((part, peak)) = physics.and_then(|p| Some((p, family_peak(p)?))) {
        // The physics is sure of the part (several windows of its line family): a finding
        // on its own, critical once its strongest line is.
        let level = if peak >= cfg.envelope_critical_db {
            Level::Critical
        } else {
            Level::Warning
        };
        verdict(
            level,
            part,
            "envelope",
            format!(
                "envelope spectrum: {part} line family, strongest line {peak:+.1} dB over \
                 background{physics_text}"
            ),
        )
    } else if bearing.2 >= cfg.envelope_warning_db {
        let level = if bearing.2 >= cfg.envelope_critical_db {
            Level::Critical
        } else {
            Level::Warning
        };
        verdict(
            level,
            line_kind(bearing.0),
            "envelope line",
            format!(
                "envelope spectrum: {} line at {:.1} Hz, {:+.1} dB over background{physics_text}",
                bearing.0, bearing.1, bearing.2
            ),
        )
    } else if let Some(t) = f.temperature_c.filter(|&t| t >= cfg.temperature_warning_c) {
        let level = if t >= cfg.temperature_critical_c {
            Level::Critical
        } else {
            Level::Warning
        };
        verdict(
            level,
            "overheating",
            "temperature",
            format!("temperature {t:.1} °C"),
        )
    } else if let Some(r) = f
        .temperature_rise_c_per_min
        .filter(|&r| r >= cfg.temperature_rise_warning_c_per_min)
    {
        verdict(
            Level::Warning,
            "overheating",
            "temperature",
            format!("temperature rising {r:.2} °C/min"),
        )
    } else if f.zone >= SeverityZone::C {
        let level = if f.zone == SeverityZone::D {
            Level::Critical
        } else {
            Level::Warning
        };
        verdict(
            level,
            "vibration",
            "velocity",
            format!("velocity {:.2} mm/s, zone {}", f.velocity_rms_mm_s, f.zone),
        )
    } else if let Some(a) = anomaly.filter(|&a| a >= e.anomaly_threshold) {
        let top = finding
            .top_features
            .iter()
            .map(|(n, z)| format!("{n} (z {z:.1})"))
            .collect::<Vec<_>>()
            .join(", ");
        verdict(
            Level::Warning,
            "anomaly",
            "baseline",
            format!("anomaly score {a:.1} against the learned baseline; most changed: {top}"),
        )
    } else if let Some(h) = e.health.filter(|h| h.stage >= Stage::Degrading) {
        // Nothing else is wrong in this window, but the sensor's vibration has been rising
        // since onset: a degrading machine stays in warning, a failed one is critical.
        let level = if h.stage == Stage::Failed {
            Level::Critical
        } else {
            Level::Warning
        };
        verdict(
            level,
            "degradation",
            "health",
            format!("degradation since onset: {}", h.explain()),
        )
    } else if let Some(d) = e.drift.filter(|&d| d >= e.drift_threshold) {
        // No window is anomalous on its own, but the machine's typical state has moved from
        // its baseline (a slow change: load, mounting, wear): worth a look, never critical.
        verdict(
            Level::Warning,
            "drift",
            "baseline drift",
            format!(
                "the typical state has drifted {d:.2} baseline deviations from the learned \
                 baseline (threshold {:.2}); re-commission the asset if it was repaired or its \
                 duty changed",
                e.drift_threshold
            ),
        )
    } else {
        Level::Normal
    };
    (level, finding)
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// A new alert.
    Raised,
    /// An active warning became critical.
    Escalated,
    /// The machine is back to normal.
    Cleared,
    /// An active alert's deciding sensor entered a later stage of its life (onset of
    /// degradation, or the failure level): same id and level, the finding's `health` updated.
    Updated,
}

/// An alert event, ready to be written to the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Stable id of the incident: same for raise, escalation and clear.
    pub id: String,
    /// Asset.
    pub asset: String,
    /// What happened.
    pub transition: Transition,
    /// Level after the transition (the last level for a clear).
    pub level: Level,
    /// Agent clock of the event, ms.
    pub at_ms: u64,
    /// Sensor time of the deciding window, µs.
    pub window_start_us: u64,
    /// Sensor time after the deciding window, µs.
    pub window_end_us: u64,
    /// The sensor of the deciding window.
    pub sensor_id: u32,
    /// What was found and why.
    pub finding: Finding,
    /// The model inputs of the asset's windows that raised (escalated, updated) the alert,
    /// oldest first: the central side's training rows for an operator's label. Empty for a
    /// clear.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputVector>,
}

/// One window's model inputs, with what the model said about them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputVector {
    /// Sensor of the window.
    pub sensor_id: u32,
    /// Axis.
    pub axis: u8,
    /// Sensor time of the first sample, µs.
    pub window_start_us: u64,
    /// Sensor time after the last sample, µs.
    pub window_end_us: u64,
    /// The model inputs, in model-input order.
    pub values: Vec<f32>,
    /// The model's class, when a model classified the window.
    pub class: Option<String>,
    /// Its probability.
    pub probability: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Active {
    id: String,
    level: Level,
    normal_streak: usize,
    finding: Finding,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AssetState {
    recent: VecDeque<Level>,
    active: Option<Active>,
    /// Agent clock: meaningless after a restart, so not kept.
    #[serde(skip)]
    quiet_until_ms: u64,
    /// Shelved by an operator's command: windows are judged, but nothing is raised or
    /// escalated. Not kept here: the feedback state (which knows until when) sets it at start.
    #[serde(skip)]
    shelved: bool,
    /// The last window judged `(sensor, start µs, end µs)`: what a clear outside a window
    /// (a shelve) names.
    #[serde(default)]
    last_window: Option<(u32, u64, u64)>,
}

/// Version of the stored alert state.
const ALERTS_FORMAT: u32 = 1;

#[derive(Serialize)]
struct StoredAlerts<'a> {
    format: u32,
    assets: &'a HashMap<String, AssetState>,
}

#[derive(Deserialize)]
struct LoadedAlerts {
    format: u32,
    assets: HashMap<String, AssetState>,
}

/// The window being fed to the engine.
#[derive(Debug, Clone, Copy)]
pub struct WindowRef<'a> {
    /// Asset.
    pub asset: &'a str,
    /// Sensor.
    pub sensor_id: u32,
    /// Axis of the sensor.
    pub axis: u8,
    /// Sensor time of the first sample, µs.
    pub start_us: u64,
    /// Sensor time after the last sample, µs.
    pub end_us: u64,
}

/// Per-asset hysteresis. Pure: the agent's clock is passed in.
#[derive(Debug, Default)]
pub struct AlertEngine {
    cfg: AlertConfig,
    assets: HashMap<String, AssetState>,
    id_prefix: String,
    /// Where the active alerts are kept across restarts, if anywhere.
    state_path: Option<std::path::PathBuf>,
}

impl AlertEngine {
    /// An engine with thresholds `cfg`.
    pub fn new(cfg: AlertConfig) -> Self {
        Self {
            cfg,
            assets: HashMap::new(),
            id_prefix: String::new(),
            state_path: None,
        }
    }

    /// Keeps the alert state (active alerts, recent levels) in `path`, written at every event,
    /// and resumes from it: after a restart an active alert goes on under its id, is not raised
    /// again, and its clear pairs with its raise. An unreadable file is warned about and set
    /// aside (renamed `.bad`); the engine then starts empty.
    pub fn with_state_file(mut self, path: std::path::PathBuf) -> Self {
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<LoadedAlerts>(&bytes) {
                Ok(l) if l.format == ALERTS_FORMAT => {
                    let active: Vec<&str> = l
                        .assets
                        .iter()
                        .filter_map(|(a, s)| s.active.as_ref().map(|x| (a, x)))
                        .map(|(_, x)| x.id.as_str())
                        .collect();
                    if !active.is_empty() {
                        tracing::info!(alerts = %active.join(", "), "active alerts resumed");
                    }
                    self.assets = l.assets;
                }
                other => {
                    let why =
                        other.map_or_else(|e| e.to_string(), |l| format!("format {}", l.format));
                    tracing::warn!(path = %path.display(), error = %why, "stored alert state not usable; starting without it");
                    let _ = std::fs::rename(&path, path.with_extension("json.bad"));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the stored alert state");
            }
        }
        self.state_path = Some(path);
        self
    }

    /// Alert ids from now on start with `prefix`.
    pub fn set_id_prefix(&mut self, prefix: &str) {
        self.id_prefix = prefix.to_string();
    }

    /// Writes the state atomically; a failure is logged (the events themselves are in the
    /// outbox already).
    fn save(&self) {
        let Some(path) = &self.state_path else {
            return;
        };
        let write = || -> std::io::Result<()> {
            let text = serde_json::to_vec(&StoredAlerts {
                format: ALERTS_FORMAT,
                assets: &self.assets,
            })
            .map_err(std::io::Error::other)?;
            crate::analyze::persist::write_atomically(path, &text)
        };
        if let Err(e) = write() {
            tracing::error!(path = %path.display(), error = %e, "cannot persist the alert state");
        }
    }

    /// Alert ids start with `prefix` (the agent passes its id and a number drawn at start, so ids
    /// are unique across agents and restarts: `<agent>-<boot>-<asset>-<ms>`).
    pub fn with_id_prefix(mut self, prefix: &str) -> Self {
        self.id_prefix = prefix.to_string();
        self
    }

    /// Shelves `asset` (an operator's command): from now on its windows raise and escalate
    /// nothing until [`AlertEngine::unshelve`]. An active alert is cleared with `reason`; its
    /// event is returned. The levels of the recent windows are forgotten.
    pub fn shelve(&mut self, asset: &str, reason: &str, now_ms: u64) -> Option<AlertEvent> {
        let state = self.assets.entry(asset.to_string()).or_default();
        state.shelved = true;
        state.recent.clear();
        let done = state.active.take()?;
        let (sensor_id, start_us, end_us) = state.last_window.unwrap_or_default();
        let mut finding = done.finding;
        finding.reason = format!("{reason}; last finding: {}", finding.reason);
        let event = AlertEvent {
            id: done.id,
            asset: asset.to_string(),
            transition: Transition::Cleared,
            level: done.level,
            at_ms: now_ms,
            window_start_us: start_us,
            window_end_us: end_us,
            sensor_id,
            finding,
            inputs: Vec::new(),
        };
        self.save();
        Some(event)
    }

    /// Ends a shelve: the asset's windows are judged as before from the next one.
    pub fn unshelve(&mut self, asset: &str) {
        if let Some(s) = self.assets.get_mut(asset) {
            s.shelved = false;
        }
    }

    /// Whether `asset` is shelved.
    pub fn is_shelved(&self, asset: &str) -> bool {
        self.assets.get(asset).is_some_and(|s| s.shelved)
    }

    /// The active alert level of an asset.
    pub fn active_level(&self, asset: &str) -> Option<Level> {
        self.assets
            .get(asset)
            .and_then(|s| s.active.as_ref())
            .map(|a| a.level)
    }

    /// An [`Transition::Updated`] event for the asset's active alert, its finding carrying
    /// `health` (the deciding sensor's new stage); `None` without an active alert.
    pub fn update_health(
        &mut self,
        w: WindowRef<'_>,
        health: HealthReport,
        now_ms: u64,
    ) -> Option<AlertEvent> {
        let active = self.assets.get_mut(w.asset)?.active.as_mut()?;
        let mut finding = active.finding.clone();
        finding.health = Some(health);
        finding.reason = format!(
            "{}; sensor {} is {}: {}",
            finding.reason,
            w.sensor_id,
            match health.stage {
                Stage::Failed => "at its failure level",
                Stage::Degrading => "degrading",
                _ => "healthy",
            },
            health.explain()
        );
        active.finding = finding.clone();
        let event = AlertEvent {
            id: active.id.clone(),
            asset: w.asset.to_string(),
            transition: Transition::Updated,
            level: active.level,
            at_ms: now_ms,
            window_start_us: w.start_us,
            window_end_us: w.end_us,
            sensor_id: w.sensor_id,
            finding,
            inputs: Vec::new(),
        };
        self.save();
        Some(event)
    }

    /// Judges a window and applies the hysteresis; returns an event when the alert changes.
    pub fn observe(
        &mut self,
        w: WindowRef<'_>,
        evidence: &Evidence<'_>,
        now_ms: u64,
    ) -> Option<AlertEvent> {
        let (level, finding) = judge(&self.cfg, evidence);
        self.apply(w, level, finding, now_ms)
    }

    /// Applies the hysteresis to an already judged window.
    pub fn apply(
        &mut self,
        w: WindowRef<'_>,
        level: Level,
        finding: Finding,
        now_ms: u64,
    ) -> Option<AlertEvent> {
        let event = self.apply_unsaved(w, level, finding, now_ms);
        if event.is_some() {
            self.save();
        }
        event
    }

    fn apply_unsaved(
        &mut self,
        w: WindowRef<'_>,
        level: Level,
        finding: Finding,
        now_ms: u64,
    ) -> Option<AlertEvent> {
        let cfg = &self.cfg;
        let state = self.assets.entry(w.asset.to_string()).or_default();
        state.last_window = Some((w.sensor_id, w.start_us, w.end_us));
        state.recent.push_back(level);
        while state.recent.len() > cfg.raise_window {
            state.recent.pop_front();
        }
        let abnormal = state.recent.iter().filter(|&&l| l != Level::Normal).count();
        let critical = state
            .recent
            .iter()
            .filter(|&&l| l == Level::Critical)
            .count();
        let event = |id: &str, transition, level, finding: Finding| AlertEvent {
            id: id.to_string(),
            asset: w.asset.to_string(),
            transition,
            level,
            at_ms: now_ms,
            window_start_us: w.start_us,
            window_end_us: w.end_us,
            sensor_id: w.sensor_id,
            finding,
            inputs: Vec::new(),
        };
        match &mut state.active {
            None => {
                if abnormal >= cfg.raise_after
                    && now_ms >= state.quiet_until_ms
                    && level != Level::Normal
                    && !state.shelved
                {
                    let level = if critical >= cfg.raise_after {
                        Level::Critical
                    } else {
                        Level::Warning
                    };
                    let id = if self.id_prefix.is_empty() {
                        format!("{}-{now_ms}", w.asset)
                    } else {
                        format!("{}-{}-{now_ms}", self.id_prefix, w.asset)
                    };
                    state.active = Some(Active {
                        id: id.clone(),
                        level,
                        normal_streak: 0,
                        finding: finding.clone(),
                    });
                    return Some(event(&id, Transition::Raised, level, finding));
                }
                None
            }
            Some(active) => {
                if level == Level::Normal {
                    active.normal_streak += 1;
                    if active.normal_streak >= cfg.clear_after {
                        let done = state.active.take()?;
                        state.quiet_until_ms = now_ms + (cfg.cooldown_s * 1000.0) as u64;
                        state.recent.clear();
                        let mut last = done.finding;
                        last.reason = format!(
                            "{} normal windows in a row; last finding: {}",
                            cfg.clear_after, last.reason
                        );
                        return Some(event(&done.id, Transition::Cleared, done.level, last));
                    }
                    return None;
                }
                active.normal_streak = 0;
                active.finding = finding.clone();
                if active.level == Level::Warning && critical >= cfg.raise_after && !state.shelved {
                    active.level = Level::Critical;
                    return Some(event(
                        &active.id,
                        Transition::Escalated,
                        Level::Critical,
                        finding,
                    ));
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::features::EnvelopePeaks;

    fn features(zone: SeverityZone, bpfo_db: f64, temperature_c: Option<f64>) -> Features {
        Features {
            rms_g: 0.1,
            peak_g: 0.4,
            crest_factor: 4.0,
            kurtosis: 3.0,
            skewness: 0.0,
            velocity_rms_mm_s: 1.0,
            zone,
            shaft_hz: 24.7,
            speed_estimated: false,
            order_0_5x_g: 0.0,
            order_1x_g: 0.01,
            order_2x_g: 0.0,
            order_3x_g: 0.0,
            band_rms_g: [0.0; crate::analyze::features::BAND_COUNT],
            envelope: EnvelopePeaks {
                band_hz: [2000.0, 4000.0],
                band_kurtosis: 0.0,
                bpfo_db,
                bpfo_2x_db: 0.0,
                bpfi_db: 2.0,
                bpfi_2x_db: 0.0,
                bsf_db: 1.0,
                bsf_2x_db: 1.0,
                ftf_db: 9.0,
                ftf_2x_db: 0.0,
                bpfo_hz: 88.0,
                bpfi_hz: 133.0,
                bsf_hz: 58.0,
                bsf_2x_hz: 116.0,
                ftf_hz: 9.8,
                families: Default::default(),
            },
            temperature_c,
            temperature_rise_c_per_min: None,
        }
    }

    fn evidence(f: &Features) -> Evidence<'_> {
        Evidence {
            features: f,
            class: None,
            anomaly: None,
            anomaly_threshold: 6.0,
            drift: None,
            drift_threshold: 1.0,
            habitual_class: false,
            diagnosis: None,
            health: None,
        }
    }

    fn window(i: u64) -> WindowRef<'static> {
        WindowRef {
            asset: "pump-1",
            sensor_id: 1,
            axis: 0,
            start_us: i * 1000,
            end_us: i * 1000 + 1000,
        }
    }

    /// Feeds levels at 1 s per window; returns the events with their window index.
    fn run(engine: &mut AlertEngine, levels: &[Level], t0: u64) -> Vec<(usize, AlertEvent)> {
        let healthy = features(SeverityZone::A, 3.0, None);
        let (_, finding) = judge(&AlertConfig::default(), &evidence(&healthy));
        levels
            .iter()
            .enumerate()
            .filter_map(|(i, &l)| {
                engine
                    .apply(window(i as u64), l, finding.clone(), t0 + i as u64 * 1000)
                    .map(|e| (i, e))
            })
            .collect()
    }

    use Level::{Critical as C, Normal as N, Warning as W};

    #[test]
    fn a_sustained_drift_is_a_drift_warning_below_every_other_finding() {
        let cfg = AlertConfig::default();
        let f = features(SeverityZone::A, 3.0, Some(40.0));
        let mut e = evidence(&f);
        e.drift = Some(0.9);
        assert_eq!(judge(&cfg, &e).0, Level::Normal, "below the threshold");
        e.drift = Some(1.2);
        let (level, finding) = judge(&cfg, &e);
        assert_eq!((level, finding.kind.as_str()), (Level::Warning, "drift"));
        assert_eq!(finding.decided_by, "baseline drift");
        assert!(finding.reason.contains("1.20"), "{}", finding.reason);
        // A window anomalous on its own is an anomaly, whatever the drift.
        e.anomaly = Some((9.0, vec![("kurtosis".into(), 9.0)]));
        assert_eq!(judge(&cfg, &e).1.kind, "anomaly");
    }

    #[test]
    fn an_active_alert_survives_a_restart_is_not_raised_again_and_clears_under_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");
        let mut first = AlertEngine::new(AlertConfig::default())
            .with_id_prefix("gw-1-00000001")
            .with_state_file(path.clone());
        let raised = run(&mut first, &[W, W, W, W], 0);
        assert_eq!(raised.len(), 1);
        let id = raised[0].1.id.clone();
        drop(first);
        // A new process (another prefix): the condition goes on, then ends.
        let mut second = AlertEngine::new(AlertConfig::default())
            .with_id_prefix("gw-1-00000002")
            .with_state_file(path.clone());
        assert_eq!(second.active_level("pump-1"), Some(Level::Warning));
        assert!(
            run(&mut second, &[W; 5], 100_000).is_empty(),
            "raised again"
        );
        let cleared = run(&mut second, &[N; 10], 200_000);
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].1.transition, Transition::Cleared);
        assert_eq!(cleared[0].1.id, id, "the clear pairs with the raise");
        drop(second);
        // A damaged file is set aside; the engine starts empty.
        std::fs::write(&path, b"{ not json").unwrap();
        let third = AlertEngine::new(AlertConfig::default()).with_state_file(path.clone());
        assert_eq!(third.active_level("pump-1"), None);
        assert!(path.with_extension("json.bad").exists());
    }

    #[test]
    fn alert_ids_carry_the_prefix_so_restarts_and_agents_never_repeat_them() {
        let levels = [Level::Warning; 3];
        let id = |prefix: &str| {
            let mut e = AlertEngine::new(AlertConfig::default()).with_id_prefix(prefix);
            run(&mut e, &levels, 0).remove(0).1.id
        };
        let (a, b) = (id("gw-1-0000beef"), id("gw-1-0badf00d"));
        assert!(a.starts_with("gw-1-0000beef-pump-1-"), "{a}");
        assert_ne!(a, b, "the same asset and time in two starts");
        assert_eq!(id(""), format!("pump-1-{}", 2000), "no prefix: as before");
    }

    #[test]
    fn a_shelve_clears_the_active_alert_and_holds_raises_and_escalations_until_it_ends() {
        let mut e = AlertEngine::new(AlertConfig::default());
        let raised = run(&mut e, &[W, W, W], 0);
        assert_eq!(raised.len(), 1);
        let cleared = e
            .shelve(
                "pump-1",
                "shelved by j.doe until 2030-01-01T00:00:00.000Z",
                5_000,
            )
            .expect("the active alert is cleared");
        assert_eq!(cleared.transition, Transition::Cleared);
        assert_eq!(cleared.id, raised[0].1.id, "the clear pairs with the raise");
        assert!(cleared.finding.reason.starts_with("shelved by j.doe"));
        assert_eq!(cleared.window_end_us, 3000, "the last window judged");
        assert_eq!(e.active_level("pump-1"), None);
        // Shelved: critical windows raise nothing, however many.
        assert!(run(&mut e, &[C; 20], 10_000).is_empty());
        assert!(
            e.shelve("pump-1", "again", 40_000).is_none(),
            "nothing to clear"
        );
        e.unshelve("pump-1");
        assert!(!e.is_shelved("pump-1"));
        // Judged as before: the fault still there raises at once (no cool-down: no clear of
        // its own), critical.
        let again = run(&mut e, &[C, C, C], 50_000);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].1.level, Level::Critical);
        assert_ne!(again[0].1.id, raised[0].1.id);
    }

    #[test]
    fn an_alert_is_raised_after_n_of_m_abnormal_windows_only() {
        let mut e = AlertEngine::new(AlertConfig::default());
        assert!(run(&mut e, &[W, N, W, N, N, W, N, N, N], 0).is_empty());
        let events = run(&mut e, &[W, W, N, W], 100_000);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, 3);
        assert_eq!(events[0].1.transition, Transition::Raised);
        assert_eq!(events[0].1.level, Level::Warning);
    }

    #[test]
    fn a_warning_escalates_once_and_keeps_its_id() {
        let mut e = AlertEngine::new(AlertConfig::default());
        let events = run(&mut e, &[W, W, W, W, C, C, C, C, C, C], 0);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[1].1.transition, Transition::Escalated);
        assert_eq!(events[0].1.id, events[1].1.id);
        assert_eq!(events[1].0, 6);
    }

    #[test]
    fn an_alert_clears_after_k_normal_windows_and_the_cooldown_holds() {
        let mut e = AlertEngine::new(AlertConfig::default());
        let mut levels = vec![W; 3];
        levels.extend([N; 9]);
        levels.push(W);
        levels.push(N);
        let events = run(&mut e, &levels, 0);
        assert_eq!(
            events.len(),
            1,
            "an interrupted normal streak does not clear"
        );
        let events = run(&mut e, &[N; 10], 20_000);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].1.transition, Transition::Cleared);
        // Within the 300 s cool-down, a relapse raises nothing...
        assert!(run(&mut e, &[W; 6], 60_000).is_empty());
        // ... after it, it does, with a new id.
        let again = run(&mut e, &[W; 3], 400_000);
        assert_eq!(again.len(), 1);
        assert_ne!(again[0].1.id, events[0].1.id);
    }

    #[test]
    fn the_envelope_alone_decides_before_any_model_or_baseline() {
        let cfg = AlertConfig::default();
        let f = features(SeverityZone::A, 18.0, None);
        let (level, finding) = judge(&cfg, &evidence(&f));
        assert_eq!(level, Level::Warning);
        assert_eq!(finding.kind, "outer");
        assert!(finding.reason.contains("BPFO"), "{}", finding.reason);
        let f = features(SeverityZone::A, 30.0, None);
        assert_eq!(judge(&cfg, &evidence(&f)).0, Level::Critical);
        // The cage line of a healthy machine is not a finding.
        let f = features(SeverityZone::A, 3.0, None);
        assert_eq!(judge(&cfg, &evidence(&f)).0, Level::Normal);
    }

    #[test]
    fn zones_temperature_anomaly_and_classifier_are_evidence() {
        let cfg = AlertConfig::default();
        let f = features(SeverityZone::D, 3.0, None);
        assert_eq!(
            judge(&cfg, &evidence(&f)),
            (Level::Critical, judge(&cfg, &evidence(&f)).1)
        );
        let f = features(SeverityZone::A, 3.0, Some(85.0));
        let (level, finding) = judge(&cfg, &evidence(&f));
        assert_eq!(
            (level, finding.kind.as_str()),
            (Level::Warning, "overheating")
        );
        let f = features(SeverityZone::A, 3.0, None);
        let mut ev = evidence(&f);
        ev.anomaly = Some((9.0, vec![("kurtosis".into(), 20.0)]));
        let (level, finding) = judge(&cfg, &ev);
        assert_eq!((level, finding.kind.as_str()), (Level::Warning, "anomaly"));
        assert!(finding.reason.contains("kurtosis"));
        ev.class = Some(ClassVerdict {
            class: "inner".into(),
            probability: 0.95,
            model_version: "m1".into(),
        });
        let (level, finding) = judge(&cfg, &ev);
        // Confident, but no severity evidence: a warning.
        assert_eq!((level, finding.kind.as_str()), (Level::Warning, "inner"));
        assert_eq!(finding.model_version.as_deref(), Some("m1"));
        ev.anomaly = Some((13.0, vec![]));
        assert_eq!(judge(&cfg, &ev).0, Level::Critical);
    }

    #[test]
    fn a_habitual_class_counts_only_in_an_anomalous_window() {
        let cfg = AlertConfig::default();
        let mut f = features(SeverityZone::A, 3.0, None);
        // A line of the rolling-element family backs the model's `ball`.
        f.envelope.families.ball.peak_db = 12.0;
        let mut ev = evidence(&f);
        ev.class = Some(ClassVerdict {
            class: "ball".into(),
            probability: 0.8,
            model_version: "m1".into(),
        });
        ev.anomaly = Some((1.5, vec![("kurtosis".into(), 2.0)]));
        // Not habitual: the classifier decides, baseline or not.
        assert_eq!(judge(&cfg, &ev).1.kind, "ball");
        // Habitual and the window is what the asset looked like at commissioning: normal,
        // and the finding still carries what the model said.
        ev.habitual_class = true;
        let (level, finding) = judge(&cfg, &ev);
        assert_eq!((level, finding.kind.as_str()), (Level::Normal, "normal"));
        assert_eq!(finding.class.as_deref(), Some("ball"));
        // Habitual, but the window is anomalous: the classifier names the fault.
        ev.anomaly = Some((7.0, vec![("env_bsf_db".into(), 9.0)]));
        assert_eq!(judge(&cfg, &ev), (Level::Warning, judge(&cfg, &ev).1));
        assert_eq!(judge(&cfg, &ev).1.kind, "ball");
        // Habitual and normal, but a strong bearing line is still evidence of its own.
        ev.anomaly = Some((1.5, vec![]));
        let mut strong = f.clone();
        strong.envelope.bsf_db = 20.0;
        ev.features = &strong;
        assert_eq!(judge(&cfg, &ev).1.kind, "ball");
        assert!(judge(&cfg, &ev).1.reason.starts_with("envelope spectrum"));
    }

    fn diagnosis(part: Option<&'static str>) -> Diagnosis {
        Diagnosis {
            part,
            scores: [("outer", 30.0), ("inner", 8.0), ("ball", 3.0)],
            windows: 5,
        }
    }

    #[test]
    fn where_the_physics_is_sure_it_names_the_part_and_says_so() {
        let cfg = AlertConfig::default();
        let mut f = features(SeverityZone::A, 3.0, None);
        f.envelope.families.outer.peak_db = 13.0;
        f.envelope.families.inner.peak_db = 11.0;
        let mut ev = evidence(&f);
        ev.diagnosis = Some(diagnosis(Some("outer")));
        // No model, no single line at 15 dB: the family decides, at warning level.
        let (level, finding) = judge(&cfg, &ev);
        assert_eq!((level, finding.kind.as_str()), (Level::Warning, "outer"));
        assert_eq!(finding.decided_by, "envelope");
        assert!(
            finding.reason.contains("outer is unambiguous"),
            "{}",
            finding.reason
        );
        assert_eq!(finding.line_scores[0], ("outer".to_string(), 30.0));
        // The model says inner: the physics still names the part, and the reason keeps both.
        ev.class = Some(ClassVerdict {
            class: "inner".into(),
            probability: 0.8,
            model_version: "m1".into(),
        });
        let (level, finding) = judge(&cfg, &ev);
        assert_eq!((level, finding.kind.as_str()), (Level::Warning, "outer"));
        assert_eq!(finding.decided_by, "envelope");
        assert!(
            finding.reason.contains("classifier: inner"),
            "{}",
            finding.reason
        );
        // Ambiguous physics: the model types the window.
        ev.diagnosis = Some(diagnosis(None));
        let (_, finding) = judge(&cfg, &ev);
        assert_eq!(
            (finding.kind.as_str(), finding.decided_by.as_str()),
            ("inner", "classifier")
        );
        // Both agree.
        ev.diagnosis = Some(diagnosis(Some("inner")));
        assert_eq!(judge(&cfg, &ev).1.decided_by, "envelope+classifier");
    }

    #[test]
    fn a_model_call_without_physical_backing_is_not_a_finding() {
        let cfg = AlertConfig::default();
        let f = features(SeverityZone::A, 3.0, None);
        let mut ev = evidence(&f);
        for (class, p) in [("outer", 0.85), ("imbalance", 0.95)] {
            ev.class = Some(ClassVerdict {
                class: class.into(),
                probability: p,
                model_version: "m1".into(),
            });
            // No line of the outer-race family, zone A: normal, the model's word kept.
            let (level, finding) = judge(&cfg, &ev);
            assert_eq!(level, Level::Normal, "{class}");
            assert_eq!(finding.class.as_deref(), Some(class));
        }
        // A sure model (p >= classifier_critical) backs a bearing part on its own.
        let mut sure = ev.clone();
        sure.class = Some(ClassVerdict {
            class: "ball".into(),
            probability: 0.92,
            model_version: "m1".into(),
        });
        assert_eq!(judge(&cfg, &sure).1.kind, "ball");
        ev.class = Some(ClassVerdict {
            class: "imbalance".into(),
            probability: 0.95,
            model_version: "m1".into(),
        });
        // Without the requirement the model's word is enough.
        let trusting = AlertConfig {
            classifier_needs_backing: false,
            ..AlertConfig::default()
        };
        assert_eq!(judge(&trusting, &ev).1.kind, "imbalance");
        // Zone B backs a shaft-rate fault.
        let f = features(SeverityZone::B, 3.0, None);
        let mut ev2 = evidence(&f);
        ev2.class = ev.class.clone();
        assert_eq!(judge(&cfg, &ev2).1.kind, "imbalance");
        // A line of the family backs a bearing part.
        let mut f = features(SeverityZone::A, 3.0, None);
        f.envelope.families.outer.peak_db = 10.5;
        let mut ev3 = evidence(&f);
        ev3.class = Some(ClassVerdict {
            class: "outer".into(),
            probability: 0.7,
            model_version: "m1".into(),
        });
        assert_eq!(judge(&cfg, &ev3).1.kind, "outer");
    }

    #[test]
    fn the_default_thresholds_are_consistent() {
        assert!(AlertConfig::default().problems().is_empty());
        let bad = AlertConfig {
            raise_after: 6,
            ..AlertConfig::default()
        };
        assert_eq!(bad.problems()[0].0, "raise_after");
        let bad = AlertConfig {
            classifier_habitual_rate: 1.5,
            ..AlertConfig::default()
        };
        assert_eq!(bad.problems()[0].0, "classifier_habitual_rate");
    }
}
