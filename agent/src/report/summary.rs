//! Per-sensor feature summaries: the windows of one sensor over `summary_interval_s`
//! aggregated into one record. Pure: the agent clock is an input.

use crate::analyze::WindowReport;
use crate::analyze::alert::{InputVector, Level};
use crate::analyze::drift::{InputDistribution, InputDrift, PsiCounter};
use crate::analyze::features::SeverityZone;
use crate::analyze::features::{FEATURE_NAMES, MODEL_INPUT_LEN};
use crate::analyze::health::Stage;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The aggregate of one sensor's windows over one interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Asset (the Kafka key).
    #[serde(skip)]
    pub asset: String,
    /// Sensor.
    #[serde(skip)]
    pub sensor_id: u32,
    /// Sensor time of the first window's start, µs.
    #[serde(skip)]
    pub window_start_us: u64,
    /// Sensor time of the last window's end, µs.
    #[serde(skip)]
    pub window_end_us: u64,
    /// Model version of the latest window's classification.
    #[serde(skip)]
    pub model_version: Option<String>,
    /// Where the latest window's frames came from (the record's `lineage.source`).
    #[serde(skip)]
    pub source: Option<String>,
    /// Sensor time the asset's baseline was learned, µs (`lineage.baseline_learned_us`).
    #[serde(skip)]
    pub baseline_learned_us: Option<u64>,
    /// Every model version that classified a window of the interval, in the order they did:
    /// more than one when the interval spans a model switch (a promotion or a rollback).
    pub model_versions: Vec<String>,
    /// Windows aggregated (all axes).
    pub windows: u64,
    /// Mean RMS acceleration, g.
    pub rms_g_mean: f64,
    /// Largest RMS acceleration, g.
    pub rms_g_max: f64,
    /// Mean velocity RMS, mm/s.
    pub velocity_rms_mm_s_mean: f64,
    /// Largest velocity RMS, mm/s.
    pub velocity_rms_mm_s_max: f64,
    /// Largest kurtosis.
    pub kurtosis_max: f64,
    /// Largest crest factor.
    pub crest_factor_max: f64,
    /// Mean shaft rotation frequency the windows were analysed at, Hz: found in each window's
    /// spectrum where it could be, the configured one otherwise (`Features::shaft_hz`).
    pub shaft_hz_mean: f64,
    /// Windows whose shaft rate was found in their spectrum rather than configured.
    pub speed_estimated_windows: u64,
    /// Highest bearing line, dB over background.
    pub bearing_line_db_max: f64,
    /// Worst velocity severity zone.
    pub worst_zone: SeverityZone,
    /// Worst per-window level.
    pub worst_level: Level,
    /// Largest anomaly score, once the baseline exists.
    pub anomaly_max: Option<f64>,
    /// Mean anomaly score over the windows that had one.
    pub anomaly_mean: Option<f64>,
    /// The asset's baseline drift score at the interval's last window that had one.
    pub drift: Option<f64>,
    /// Its largest value in the interval.
    pub drift_max: Option<f64>,
    /// The model inputs' names, in the order of the `input_*` arrays.
    pub input_names: &'static [&'static str],
    /// Mean of each model input over the interval's windows.
    pub input_mean: Vec<f64>,
    /// Standard deviation of each (population, 0 for one window).
    pub input_std: Vec<f64>,
    /// Smallest value of each.
    pub input_min: Vec<f64>,
    /// Largest value of each.
    pub input_max: Vec<f64>,
    /// Windows per class the model called.
    pub class_counts: BTreeMap<String, u64>,
    /// The interval's inputs against the active model's training distribution (none when
    /// the model carries none): PSI per input and windows out of the training range.
    pub input_drift: Option<InputDrift>,
    /// A uniform random sample of the interval's windows' inputs, at most
    /// `[report] input_sample_per_interval` (empty when that is 0, the default).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub input_sample: Vec<InputVector>,
    /// Latest temperature, °C.
    pub temperature_c: Option<f64>,
    /// Latest classifier class.
    pub class: Option<String>,
    /// Its probability.
    pub class_probability: Option<f64>,
    /// The asset's active alert level after the last window.
    pub active_alert: Option<Level>,
    /// The sensor's stage over its life at the last window of its most advanced axis.
    pub health_stage: Option<Stage>,
    /// Its smoothed health indicator (`ln` of RMS over commissioning RMS).
    pub health_indicator: Option<f64>,
    /// Sensor time of the onset of degradation, s.
    pub health_onset_s: Option<f64>,
    /// Remaining useful life, best estimate, s.
    pub rul_s: Option<f64>,
    /// Lower end of its interval, s.
    pub rul_low_s: Option<f64>,
    /// Upper end of its interval, s (none: open-ended).
    pub rul_high_s: Option<f64>,
}

#[derive(Debug)]
struct Bucket {
    opened_ms: u64,
    summary: Summary,
    rms_sum: f64,
    velocity_sum: f64,
    shaft_hz_sum: f64,
    anomaly_sum: f64,
    anomaly_n: u64,
    /// Welford's running mean and sum of squared deviations per input.
    input_mean: [f64; MODEL_INPUT_LEN],
    input_m2: [f64; MODEL_INPUT_LEN],
    input_n: u64,
    psi: Option<(Arc<InputDistribution>, PsiCounter)>,
    /// Windows offered to the sample so far.
    sample_seen: u64,
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Aggregates window reports into one summary per sensor per interval.
#[derive(Debug)]
pub struct Summarizer {
    interval_ms: u64,
    sample_size: usize,
    open: BTreeMap<(String, u32), Bucket>,
}

impl Summarizer {
    /// Summaries of `interval_ms`.
    pub fn new(interval_ms: u64) -> Self {
        Self {
            interval_ms: interval_ms.max(1),
            sample_size: 0,
            open: BTreeMap::new(),
        }
    }

    /// Keeps a uniform random sample of at most `n` windows' inputs per summary.
    pub fn with_input_sample(mut self, n: usize) -> Self {
        self.sample_size = n;
        self
    }

    /// Adds a window reported at agent time `now_ms`; returns the summaries it closed.
    pub fn push(&mut self, r: &WindowReport, now_ms: u64) -> Vec<Summary> {
        let mut closed = self.poll(now_ms);
        let key = (r.asset.to_string(), r.sensor_id);
        if let Some(b) = self.open.get(&key)
            && now_ms >= b.opened_ms + self.interval_ms
            && let Some(b) = self.open.remove(&key)
        {
            closed.push(finish(b));
        }
        let f = &r.features;
        let a = &r.assessment;
        let (_, _, line_db) = f.strongest_bearing_peak();
        let b = self.open.entry(key).or_insert_with(|| Bucket {
            opened_ms: now_ms,
            summary: Summary {
                asset: r.asset.to_string(),
                sensor_id: r.sensor_id,
                window_start_us: r.start_us,
                window_end_us: r.end_us,
                model_version: None,
                source: None,
                baseline_learned_us: None,
                model_versions: Vec::new(),
                windows: 0,
                rms_g_mean: 0.0,
                rms_g_max: f64::MIN,
                velocity_rms_mm_s_mean: 0.0,
                velocity_rms_mm_s_max: f64::MIN,
                kurtosis_max: f64::MIN,
                crest_factor_max: f64::MIN,
                shaft_hz_mean: 0.0,
                speed_estimated_windows: 0,
                bearing_line_db_max: f64::MIN,
                worst_zone: f.zone,
                worst_level: Level::Normal,
                anomaly_max: None,
                anomaly_mean: None,
                drift: None,
                drift_max: None,
                input_names: &FEATURE_NAMES,
                input_mean: Vec::new(),
                input_std: Vec::new(),
                input_min: vec![f64::INFINITY; MODEL_INPUT_LEN],
                input_max: vec![f64::NEG_INFINITY; MODEL_INPUT_LEN],
                class_counts: BTreeMap::new(),
                input_drift: None,
                input_sample: Vec::new(),
                temperature_c: None,
                class: None,
                class_probability: None,
                active_alert: None,
                health_stage: None,
                health_indicator: None,
                health_onset_s: None,
                rul_s: None,
                rul_low_s: None,
                rul_high_s: None,
            },
            rms_sum: 0.0,
            velocity_sum: 0.0,
            shaft_hz_sum: 0.0,
            anomaly_sum: 0.0,
            anomaly_n: 0,
            input_mean: [0.0; MODEL_INPUT_LEN],
            input_m2: [0.0; MODEL_INPUT_LEN],
            input_n: 0,
            psi: None,
            sample_seen: 0,
        });
        let s = &mut b.summary;
        s.windows += 1;
        s.window_start_us = s.window_start_us.min(r.start_us);
        s.window_end_us = s.window_end_us.max(r.end_us);
        b.rms_sum += f.rms_g;
        b.velocity_sum += f.velocity_rms_mm_s;
        b.shaft_hz_sum += f.shaft_hz;
        s.speed_estimated_windows += u64::from(f.speed_estimated);
        s.rms_g_max = s.rms_g_max.max(f.rms_g);
        s.velocity_rms_mm_s_max = s.velocity_rms_mm_s_max.max(f.velocity_rms_mm_s);
        s.kurtosis_max = s.kurtosis_max.max(f.kurtosis);
        s.crest_factor_max = s.crest_factor_max.max(f.crest_factor);
        s.bearing_line_db_max = s.bearing_line_db_max.max(line_db);
        s.worst_zone = s.worst_zone.max(f.zone);
        s.worst_level = s.worst_level.max(a.level);
        s.anomaly_max = max_opt(s.anomaly_max, a.anomaly);
        if let Some(x) = a.anomaly {
            b.anomaly_sum += x;
            b.anomaly_n += 1;
        }
        if a.drift.is_some() {
            s.drift = a.drift;
        }
        s.drift_max = max_opt(s.drift_max, a.drift);
        s.source = Some(r.source.to_string());
        s.baseline_learned_us = a.baseline_learned_us;
        if a.inputs.len() == MODEL_INPUT_LEN {
            b.input_n += 1;
            let n = b.input_n as f64;
            for (i, &v) in a.inputs.iter().enumerate() {
                let v = f64::from(v);
                let d = v - b.input_mean[i];
                b.input_mean[i] += d / n;
                b.input_m2[i] += d * (v - b.input_mean[i]);
                s.input_min[i] = s.input_min[i].min(v);
                s.input_max[i] = s.input_max[i].max(v);
            }
            if let Some(dist) = &a.input_distribution {
                // A new model with another distribution starts the count over: the PSI is
                // always against the model that classified the interval's last windows.
                if !b.psi.as_ref().is_some_and(|(d, _)| Arc::ptr_eq(d, dist)) {
                    b.psi = Some((dist.clone(), PsiCounter::new(dist)));
                }
                if let Some((d, counter)) = &mut b.psi {
                    counter.push(d, &a.inputs, !a.out_of_range.is_empty());
                }
            }
            if self.sample_size > 0 {
                // Reservoir sampling (Algorithm R): every window of the interval has the same
                // chance to be in the sample, whatever the interval's length.
                b.sample_seen += 1;
                let v = InputVector {
                    sensor_id: r.sensor_id,
                    axis: r.axis,
                    window_start_us: r.start_us,
                    window_end_us: r.end_us,
                    values: a.inputs.clone(),
                    class: a.class.as_ref().map(|c| c.class.clone()),
                    probability: a.class.as_ref().map(|c| c.probability),
                };
                if s.input_sample.len() < self.sample_size {
                    s.input_sample.push(v);
                } else {
                    let j = (rand::random::<u64>() % b.sample_seen) as usize;
                    if j < self.sample_size {
                        s.input_sample[j] = v;
                    }
                }
            }
        }
        if f.temperature_c.is_some() {
            s.temperature_c = f.temperature_c;
        }
        if let Some(c) = &a.class {
            *s.class_counts.entry(c.class.clone()).or_default() += 1;
            s.class = Some(c.class.clone());
            s.class_probability = Some(c.probability);
            s.model_version = Some(c.model_version.clone());
            if s.model_versions.last() != Some(&c.model_version) {
                s.model_versions.push(c.model_version.clone());
            }
        }
        s.active_alert = a.active_alert;
        // The most advanced axis speaks for the sensor; the latest window of it.
        if let Some(h) = a.health
            && s.health_stage.is_none_or(|st| h.stage >= st)
        {
            s.health_stage = Some(h.stage);
            s.health_indicator = Some(h.indicator);
            s.health_onset_s = h.onset_s;
            s.rul_s = h.rul_s;
            s.rul_low_s = h.rul_low_s;
            s.rul_high_s = h.rul_high_s;
        }
        closed
    }

    /// Summaries whose interval has ended at `now_ms`.
    pub fn poll(&mut self, now_ms: u64) -> Vec<Summary> {
        let due: Vec<_> = self
            .open
            .iter()
            .filter(|(_, b)| now_ms >= b.opened_ms + self.interval_ms)
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter()
            .filter_map(|k| self.open.remove(&k))
            .map(finish)
            .collect()
    }

    /// Every open summary, at shutdown.
    pub fn drain(&mut self) -> Vec<Summary> {
        std::mem::take(&mut self.open)
            .into_values()
            .map(finish)
            .collect()
    }
}

fn finish(b: Bucket) -> Summary {
    let mut s = b.summary;
    let n = s.windows.max(1) as f64;
    s.rms_g_mean = b.rms_sum / n;
    s.velocity_rms_mm_s_mean = b.velocity_sum / n;
    s.shaft_hz_mean = b.shaft_hz_sum / n;
    s.anomaly_mean = (b.anomaly_n > 0).then(|| b.anomaly_sum / b.anomaly_n as f64);
    if b.input_n == 0 {
        s.input_min.clear();
        s.input_max.clear();
    } else {
        let n = b.input_n as f64;
        s.input_mean = b.input_mean.to_vec();
        s.input_std = b.input_m2.iter().map(|m2| (m2 / n).sqrt()).collect();
    }
    s.input_drift = b
        .psi
        .as_ref()
        .and_then(|(d, counter)| counter.finish(d, &FEATURE_NAMES));
    s
}
