//! The pipeline from decoded frames to per-window feature reports.
//!
//! ```text
//! sources ──Ingest──► [assembler task] ──AssembledWindow──► [feature thread] ──WindowReport──► consumer
//!  (bounded, policy     sequencer + windower per sensor,     FFT plans cached per
//!   per config)         temperature trend per asset          (length, sample rate)
//! ```
//!
//! [`Assembler`] is pure (arrival time is an input); the tasks around it are thin loops.
//! Shutdown cancels only the sources. Every later stage drains its input and ends when that
//! input closes, so frames already received are windowed and windows already cut are scored.

use crate::alert::{AlertEvent, WindowRef};
use crate::config::Config;
use crate::features::{FeatureExtractor, Features, MachineContext, TemperatureTrend, ZoneLimits};
use crate::health::Health;
use crate::scoring::{Assessment, Classify, Scorer};
use crate::sequencer::{Sequenced, Sequencer, SequencerLimits};
use crate::source::Ingest;
use crate::window::{Break, Window, WindowAssembler, WindowConfig, WindowStats};
use edgewatch_protocol::{Payload, Status};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// A window ready for feature extraction, with the context it needs.
#[derive(Debug, Clone)]
pub struct AssembledWindow {
    /// Asset the sensor is on.
    pub asset: Arc<str>,
    /// The samples.
    pub window: Window,
    /// Latest temperature of the asset, °C.
    pub temperature_c: Option<f64>,
    /// Temperature rate of rise of the asset, °C/min.
    pub temperature_rise_c_per_min: Option<f64>,
    /// Arrival of the frame that completed the window (or of the latest frame when a timeout
    /// released it), ms since the agent started: the start of its end-to-end latency.
    pub completed_ms: u64,
}

/// Features of one window of one axis.
#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    /// Asset id.
    #[serde(serialize_with = "serialize_arc_str")]
    pub asset: Arc<str>,
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

struct SensorState {
    asset: Arc<str>,
    sequencer: Sequencer,
    windows: WindowAssembler,
    status: Option<Status>,
}

/// Per-sensor ordering and windowing, per-asset temperature trends. Pure: no I/O, no clock.
pub struct Assembler {
    window: WindowConfig,
    limits: SequencerLimits,
    sensor_assets: BTreeMap<u32, Arc<str>>,
    sensors: HashMap<u32, SensorState>,
    temperatures: HashMap<Arc<str>, TemperatureTrend>,
    sequenced: Vec<Sequenced>,
    unmapped_warned: std::collections::HashSet<u32>,
    /// Arrival of the latest frame handed to the sequencer (agent ms).
    last_received_ms: u64,
}

impl std::fmt::Debug for Assembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assembler")
            .field("sensors", &self.sensors.len())
            .finish_non_exhaustive()
    }
}

impl Assembler {
    /// An assembler for the configuration's sensors.
    pub fn new(config: &Config) -> Self {
        Self {
            window: config.window,
            limits: SequencerLimits {
                max_held: config.pipeline.reorder_max_frames,
                max_wait_ms: config.pipeline.reorder_wait_ms,
                ..SequencerLimits::default()
            },
            sensor_assets: config
                .sensor_assets()
                .into_iter()
                .map(|(s, a)| (s, Arc::from(a)))
                .collect(),
            sensors: HashMap::new(),
            last_received_ms: 0,
            // The trend configuration was validated with the rest of the configuration.
            temperatures: config
                .assets
                .iter()
                .filter_map(|a| {
                    TemperatureTrend::new(&config.features.temperature)
                        .ok()
                        .map(|t| (Arc::from(a.id.as_str()), t))
                })
                .collect(),
            sequenced: Vec::new(),
            unmapped_warned: Default::default(),
        }
    }

    /// Takes one frame; appends completed windows to `out`.
    pub fn on_ingest(&mut self, ingest: Ingest, out: &mut Vec<AssembledWindow>) {
        let sensor_id = ingest.frame.header.sensor_id;
        let Some(asset) = self.sensor_assets.get(&sensor_id).cloned() else {
            metrics::counter!("edgewatch_frames_unmapped_total").increment(1);
            if self.unmapped_warned.insert(sensor_id) {
                tracing::warn!(
                    sensor_id,
                    source = %ingest.source,
                    "frames from a sensor that no asset lists; add it to an asset's `sensors`"
                );
            }
            return;
        };
        let window = self.window;
        let limits = self.limits;
        let state = self
            .sensors
            .entry(sensor_id)
            .or_insert_with(|| SensorState {
                asset: asset.clone(),
                sequencer: Sequencer::new(limits),
                windows: WindowAssembler::new(sensor_id, window),
                status: None,
            });
        let before = state.sequencer.stats();
        self.last_received_ms = ingest.received_ms;
        state
            .sequencer
            .push(ingest.frame, ingest.received_ms, &mut self.sequenced);
        let after = state.sequencer.stats();
        metrics::counter!("edgewatch_frames_duplicate_total")
            .increment(after.duplicates - before.duplicates);
        self.release(sensor_id, out);
    }

    /// Releases frames that waited too long for a missing predecessor at `now_ms`.
    pub fn poll(&mut self, now_ms: u64, out: &mut Vec<AssembledWindow>) {
        let ids: Vec<u32> = self.sensors.keys().copied().collect();
        for id in ids {
            if let Some(state) = self.sensors.get_mut(&id) {
                state.sequencer.poll(now_ms, &mut self.sequenced);
            }
            self.release(id, out);
        }
    }

    /// At shutdown: releases everything held, as if the wait had expired.
    pub fn flush(&mut self, out: &mut Vec<AssembledWindow>) {
        self.poll(u64::MAX, out);
    }

    /// The latest status heartbeat of a sensor.
    pub fn status(&self, sensor_id: u32) -> Option<Status> {
        self.sensors.get(&sensor_id).and_then(|s| s.status)
    }

    fn release(&mut self, sensor_id: u32, out: &mut Vec<AssembledWindow>) {
        let Some(state) = self.sensors.get_mut(&sensor_id) else {
            return;
        };
        let mut windows = Vec::new();
        let before = state.windows.stats();
        for item in self.sequenced.drain(..) {
            match item {
                Sequenced::Frame(frame) => match frame.payload {
                    Payload::Vibration(block) => {
                        state
                            .windows
                            .push(frame.header.timestamp_us, &block, &mut windows);
                    }
                    Payload::Temperature(t) => {
                        let trend = self.temperatures.get_mut(&state.asset);
                        if let (Some(c), Some(trend)) = (t.celsius(0), trend) {
                            let t_s = frame.header.timestamp_us as f64 / 1e6;
                            if let Err(e) = trend.push(t_s, f64::from(c)) {
                                tracing::debug!(sensor_id, error = %e, "temperature reading not used");
                            }
                        }
                    }
                    Payload::Status(s) => {
                        if s.error_flags != 0 {
                            tracing::warn!(
                                sensor_id,
                                flags = s.error_flags,
                                "sensor reports errors"
                            );
                        }
                        state.status = Some(s);
                    }
                },
                Sequenced::Gap { missing } => {
                    metrics::counter!("edgewatch_frames_lost_total").increment(u64::from(missing));
                    state.windows.interrupt(Break::Gap);
                }
                Sequenced::Restart => {
                    tracing::info!(sensor_id, "sensor restarted (sequence started over)");
                    state.windows.interrupt(Break::Restart);
                }
            }
        }
        count_breaks(before, state.windows.stats());
        let trend = self.temperatures.get(&state.asset);
        for window in windows {
            metrics::counter!("edgewatch_windows_total").increment(1);
            out.push(AssembledWindow {
                asset: state.asset.clone(),
                window,
                temperature_c: trend.and_then(TemperatureTrend::level),
                temperature_rise_c_per_min: trend.and_then(TemperatureTrend::rate_c_per_min),
                completed_ms: self.last_received_ms,
            });
        }
    }
}

/// Counts the window breaks between two snapshots of an assembler's counters.
fn count_breaks(before: WindowStats, after: WindowStats) {
    for (reason, b, a) in [
        ("gap", before.gaps, after.gaps),
        (
            "timestamp_jump",
            before.timestamp_jumps,
            after.timestamp_jumps,
        ),
        ("format_change", before.format_changes, after.format_changes),
        ("restart", before.restarts, after.restarts),
    ] {
        if a > b {
            metrics::counter!("edgewatch_window_breaks_total", "reason" => reason).increment(a - b);
        }
    }
    if after.dropped > before.dropped {
        metrics::counter!("edgewatch_windows_dropped_total", "reason" => "break")
            .increment(after.dropped - before.dropped);
    }
}

/// Per-asset machine context for feature extraction.
pub fn machine_contexts(config: &Config) -> HashMap<Arc<str>, MachineContext> {
    config
        .assets
        .iter()
        .map(|a| {
            let o = a.bearing.orders();
            (
                Arc::from(a.id.as_str()),
                MachineContext {
                    shaft_hz: a.shaft_rpm / 60.0,
                    orders: crate::features::FaultOrders {
                        bpfo: o.bpfo,
                        bpfi: o.bpfi,
                        bsf: o.bsf,
                        ftf: o.ftf,
                    },
                },
            )
        })
        .collect()
}

/// Extracts features; keeps one FFT plan set per (window length, sample rate).
pub struct FeatureStage {
    cfg: crate::features::FeatureConfig,
    scorer: Scorer,
    contexts: HashMap<Arc<str>, MachineContext>,
    zone_limits: HashMap<Arc<str>, ZoneLimits>,
    extractors: HashMap<(usize, u64), FeatureExtractor>,
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
    pub fn new(config: &Config, classifier: Option<Box<dyn Classify>>) -> Self {
        Self {
            cfg: config.features.clone(),
            scorer: Scorer::new(
                classifier,
                config.baseline,
                config.alerts.clone(),
                Some(config.agent.data_dir.clone()),
            ),
            contexts: machine_contexts(config),
            zone_limits: config
                .assets
                .iter()
                .filter_map(|a| a.severity.map(|l| (Arc::from(a.id.as_str()), l)))
                .collect(),
            extractors: HashMap::new(),
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
                        tracing::error!(error = %e, sample_rate_hz = w.window.sample_rate_hz, "cannot analyse windows at this rate");
                        metrics::counter!("edgewatch_windows_dropped_total", "reason" => "unsupported_rate").increment(1);
                        return None;
                    }
                }
            }
        };
        let started = Instant::now();
        let mut features = match extractor.extract(&w.window.samples, &ctx) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(asset = %w.asset, error = %e, "window not analysed");
                metrics::counter!("edgewatch_windows_dropped_total", "reason" => "feature_error")
                    .increment(1);
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
                start_us: w.window.start_us,
                end_us: w.window.end_us,
            },
            &features,
            now_ms,
        );
        if let Some(a) = &alert {
            metrics::counter!("edgewatch_alert_events_total", "transition" => format!("{:?}", a.transition).to_lowercase())
                .increment(1);
            tracing::warn!(
                id = %a.id,
                asset = %a.asset,
                transition = ?a.transition,
                level = ?a.level,
                kind = %a.finding.kind,
                reason = %a.finding.reason,
                "alert"
            );
        }
        Some(WindowReport {
            asset: w.asset,
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

/// Runs the assembler over the ingest channel until it closes, then flushes.
pub async fn assemble(
    config: &Config,
    mut rx: mpsc::Receiver<Ingest>,
    tx: mpsc::Sender<AssembledWindow>,
    epoch: Instant,
    health: Arc<Health>,
) {
    let mut assembler = Assembler::new(config);
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stall_after = crate::health::fault_stall_after();
    loop {
        if stall_after.is_some_and(|t| epoch.elapsed() >= t) {
            tracing::warn!(
                "fault injection ({}): assembler stalled",
                crate::health::FAULT_STALL_ENV
            );
            std::future::pending::<()>().await;
        }
        tokio::select! {
            item = rx.recv() => match item {
                Some(ingest) => {
                    assembler.on_ingest(ingest, &mut out);
                    health.frame_assembled(out.len() as u64);
                }
                None => break,
            },
            _ = tick.tick() => {
                assembler.poll(epoch.elapsed().as_millis() as u64, &mut out);
                health.windows_cut(out.len() as u64);
                health.assembler_alive();
                metrics::gauge!("edgewatch_channel_depth", "channel" => "ingest").set(rx.len() as f64);
            }
        }
        for w in out.drain(..) {
            if tx.send(w).await.is_err() {
                return;
            }
        }
    }
    assembler.flush(&mut out);
    health.windows_cut(out.len() as u64);
    for w in out.drain(..) {
        if tx.send(w).await.is_err() {
            return;
        }
    }
    tracing::info!("assembler drained");
}

/// Runs the feature stage on the calling (dedicated) thread until its input closes.
pub fn extract_features(
    config: &Config,
    mut rx: mpsc::Receiver<AssembledWindow>,
    tx: mpsc::Sender<WindowReport>,
    health: Arc<Health>,
    classifier: Option<Box<dyn Classify>>,
    epoch: Instant,
) {
    let mut stage = FeatureStage::new(config, classifier);
    while let Some(w) = rx.blocking_recv() {
        // Scored or refused: either way the window has been handled.
        health.window_scored();
        metrics::gauge!("edgewatch_channel_depth", "channel" => "windows").set(rx.len() as f64);
        let completed_ms = w.completed_ms;
        let report = stage.process(w, epoch.elapsed().as_millis() as u64);
        // Completing frame's arrival to scored (features, model, baseline, alert state).
        let now_ms = epoch.elapsed().as_millis() as u64;
        metrics::histogram!("edgewatch_window_latency_seconds")
            .record(now_ms.saturating_sub(completed_ms) as f64 / 1000.0);
        if let Some(report) = report
            && tx.blocking_send(report).is_err()
        {
            break;
        }
    }
    tracing::info!("feature stage drained");
}
