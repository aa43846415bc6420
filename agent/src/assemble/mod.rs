//! Assembly: from decoded frames to windows ready for analysis.
//!
//! ```text
//! ingest ──Ingest──► [assembler task] ──AssembledWindow──► analyze
//!  (bounded, policy     sequencer + windower per sensor,
//!   per config)         temperature trend per asset
//! ```
//!
//! - [`sequencer`]: per-sensor ordering (duplicates dropped, reordering undone, gaps counted).
//! - [`window`]: overlapping windows that never span a gap, sized per sensor by duration or
//!   shaft revolutions once its sample rate is known.
//! - [`temperature`]: the per-asset temperature trend (level and rate of rise).
//!
//! [`Assembler`] is pure (arrival time is an input); [`assemble`] is its thin task. Shutdown
//! cancels only the sources: this stage drains its input and ends when that input closes, so
//! frames already received are windowed.

pub mod sequencer;
pub mod temperature;
pub mod window;

use crate::assemble::sequencer::{Sequenced, Sequencer, SequencerLimits};
use crate::assemble::window::{
    Break, MAX_WINDOW_LEN, MIN_WINDOW_LEN, Window, WindowAssembler, WindowConfig, WindowSize,
    WindowStats,
};
use crate::clock::Clock;
use crate::ingest::Ingest;
use crate::ops::health::Health;
use edgewatch_protocol::{Payload, Status};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use temperature::{TemperatureTrend, TemperatureTrendConfig};
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
    /// Nominal shaft speed of each asset, Hz (windows sized in revolutions).
    shaft_hz: HashMap<Arc<str>, f64>,
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

/// What the assembler needs of the configuration (built by `Config::assembler`).
#[derive(Debug, Clone, PartialEq)]
pub struct AssemblerConfig {
    /// `[window]`.
    pub window: WindowConfig,
    /// Most frames held per sensor to undo reordering (`[pipeline] reorder_max_frames`).
    pub reorder_max_frames: usize,
    /// Longest a held frame waits for a missing one, ms (`[pipeline] reorder_wait_ms`).
    pub reorder_wait_ms: u64,
    /// Which asset each sensor id is on.
    pub sensor_assets: BTreeMap<u32, String>,
    /// Every asset id (each gets a temperature trend).
    pub assets: Vec<String>,
    /// Nominal shaft speed of each asset, Hz (`[[asset]] shaft_rpm` / 60): sizes windows given
    /// in revolutions.
    pub shaft_hz: BTreeMap<String, f64>,
    /// `[features.temperature]`.
    pub temperature: TemperatureTrendConfig,
}

impl Assembler {
    /// An assembler for the configured sensors.
    pub fn new(config: &AssemblerConfig) -> Self {
        Self {
            window: config.window,
            limits: SequencerLimits {
                max_held: config.reorder_max_frames,
                max_wait_ms: config.reorder_wait_ms,
                ..SequencerLimits::default()
            },
            sensor_assets: config
                .sensor_assets
                .iter()
                .map(|(s, a)| (*s, Arc::from(a.as_str())))
                .collect(),
            shaft_hz: config
                .shaft_hz
                .iter()
                .map(|(a, hz)| (Arc::from(a.as_str()), *hz))
                .collect(),
            sensors: HashMap::new(),
            last_received_ms: 0,
            // The trend configuration was validated with the rest of the configuration.
            temperatures: config
                .assets
                .iter()
                .filter_map(|a| {
                    TemperatureTrend::new(&config.temperature)
                        .ok()
                        .map(|t| (Arc::from(a.as_str()), t))
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
        let shaft_hz = self.shaft_hz.get(&asset).copied();
        let state = self
            .sensors
            .entry(sensor_id)
            .or_insert_with(|| SensorState {
                asset: asset.clone(),
                sequencer: Sequencer::new(limits),
                windows: WindowAssembler::new(sensor_id, window).with_shaft_hz(shaft_hz),
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
        let sized = (state.windows.window_len(), state.windows.sample_rate_hz());
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
        if (state.windows.window_len(), state.windows.sample_rate_hz()) != sized {
            let shaft_hz = self.shaft_hz.get(&state.asset).copied();
            log_window_size(
                sensor_id,
                &state.asset,
                &state.windows,
                self.window,
                shaft_hz,
            );
        }
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

/// Says how a sensor's windows were sized for its (new) sample rate; warns when the memory cap
/// or the features' minimum changed the size asked for.
fn log_window_size(
    sensor_id: u32,
    asset: &str,
    windows: &WindowAssembler,
    config: WindowConfig,
    shaft_hz: Option<f64>,
) {
    let (Some(len), Some(rate)) = (windows.window_len(), windows.sample_rate_hz()) else {
        return;
    };
    let seconds = len as f64 / rate;
    let wanted = config.wanted_samples(rate, shaft_hz).ceil();
    let size = config.size();
    if wanted > MAX_WINDOW_LEN as f64 && !matches!(size, WindowSize::Length(_)) {
        tracing::warn!(
            sensor_id,
            asset,
            sample_rate_hz = rate,
            wanted_samples = wanted,
            samples = len,
            seconds,
            "[window] {size} asks for more than {MAX_WINDOW_LEN} samples at this rate: windows \
             are capped at {MAX_WINDOW_LEN} samples ({seconds:.3} s)"
        );
    } else if wanted < MIN_WINDOW_LEN as f64 && !matches!(size, WindowSize::Length(_)) {
        tracing::warn!(
            sensor_id,
            asset,
            sample_rate_hz = rate,
            samples = len,
            seconds,
            "[window] {size} is fewer than {MIN_WINDOW_LEN} samples at this rate: windows are \
             {MIN_WINDOW_LEN} samples ({seconds:.3} s)"
        );
    } else {
        tracing::info!(
            sensor_id,
            asset,
            sample_rate_hz = rate,
            samples = len,
            seconds,
            "windows sized ([window] {size})"
        );
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

/// Runs the assembler over the ingest channel until it closes, then flushes. Windows go to the
/// analysis stage's input (anything a window converts into).
pub async fn assemble<T: From<AssembledWindow>>(
    config: &AssemblerConfig,
    mut rx: mpsc::Receiver<Ingest>,
    tx: mpsc::Sender<T>,
    clock: Clock,
    health: Arc<Health>,
) {
    let mut assembler = Assembler::new(config);
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(feature = "test-support")]
    let stall_after = crate::ops::faults::stall_after_ms();
    loop {
        #[cfg(feature = "test-support")]
        if stall_after.is_some_and(|t| clock.now_ms() >= t) {
            tracing::warn!(
                "fault injection ({}): assembler stalled",
                crate::ops::faults::STALL_ENV
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
                assembler.poll(clock.now_ms(), &mut out);
                health.windows_cut(out.len() as u64);
                health.assembler_alive();
                metrics::gauge!("edgewatch_channel_depth", "channel" => "ingest").set(rx.len() as f64);
            }
        }
        for w in out.drain(..) {
            if tx.send(w.into()).await.is_err() {
                return;
            }
        }
    }
    assembler.flush(&mut out);
    health.windows_cut(out.len() as u64);
    for w in out.drain(..) {
        if tx.send(w.into()).await.is_err() {
            return;
        }
    }
    tracing::info!("assembler drained");
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgewatch_protocol::{Frame, Header, VibrationBlock, heapless};

    /// Assembler config: sensor 1 on `slow` (900 rpm), sensor 2 on `fast` (3600 rpm).
    fn config(window: WindowConfig) -> AssemblerConfig {
        AssemblerConfig {
            window,
            reorder_max_frames: 16,
            reorder_wait_ms: 500,
            sensor_assets: BTreeMap::from([(1, "slow".into()), (2, "fast".into())]),
            assets: vec!["slow".into(), "fast".into()],
            shaft_hz: BTreeMap::from([("slow".into(), 15.0), ("fast".into(), 60.0)]),
            temperature: TemperatureTrendConfig::default(),
        }
    }

    /// Frame `k` of a sensor: 512 samples of one axis at 12.8 kHz.
    fn frame(sensor_id: u32, k: u32) -> Ingest {
        const N: u32 = 512;
        Ingest {
            source: Arc::from("test"),
            frame: Frame {
                header: Header {
                    sensor_id,
                    sequence: k,
                    timestamp_us: u64::from(k * N) * 1_000_000 / 12_800,
                },
                payload: Payload::Vibration(VibrationBlock {
                    sample_rate_hz: 12_800.0,
                    axes: 1,
                    scale_g_per_lsb: 0.001,
                    samples: heapless::Vec::from_slice(&[1; N as usize]).unwrap(),
                }),
            },
            received_ms: u64::from(k),
        }
    }

    /// Sample counts of the windows of each sensor after `frames` frames from both.
    fn lengths(window: WindowConfig, frames: u32) -> BTreeMap<u32, Vec<usize>> {
        let mut assembler = Assembler::new(&config(window));
        let mut out = Vec::new();
        for k in 0..frames {
            for sensor in [1, 2] {
                assembler.on_ingest(frame(sensor, k), &mut out);
            }
        }
        let mut by_sensor: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for w in out {
            by_sensor
                .entry(w.window.sensor_id)
                .or_default()
                .push(w.window.samples.len());
        }
        by_sensor
    }

    #[test]
    fn windows_in_revolutions_follow_each_sensors_asset() {
        // 15 revolutions: 1 s at 900 rpm (12 800 samples), 0.25 s at 3600 rpm (3 200).
        let by_sensor = lengths(WindowConfig::from_revolutions(15.0), 50);
        assert!(by_sensor[&1].iter().all(|n| *n == 12_800), "{by_sensor:?}");
        assert!(by_sensor[&2].iter().all(|n| *n == 3_200), "{by_sensor:?}");
        // 25 600 samples: one window of 12 800 every 6 400 fits three times; 3 200 every
        // 1 600, fifteen times.
        assert_eq!(by_sensor[&1].len(), 3);
        assert_eq!(by_sensor[&2].len(), 15);
    }

    #[test]
    fn windows_in_seconds_are_the_same_on_every_asset() {
        let by_sensor = lengths(WindowConfig::from_duration_s(0.5), 30);
        assert_eq!(by_sensor[&1], by_sensor[&2]);
        assert!(by_sensor[&1].iter().all(|n| *n == 6_400), "{by_sensor:?}");
    }
}
