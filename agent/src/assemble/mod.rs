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
use edgewatch_protocol::{Payload, SamplingMode, Status};
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
    /// Where the sensor's latest frame came from (`serial:<port>`, `mqtt:<topic>`).
    pub source: Arc<str>,
}

struct SensorState {
    asset: Arc<str>,
    /// Where its latest frame came from.
    source: Arc<str>,
    sequencer: Sequencer,
    windows: WindowAssembler,
    status: Option<Status>,
    /// The sampling plan: announced by the sensor, else configured.
    plan: Option<SamplingMode>,
    /// Agent time the latest whole burst ended, ms.
    last_burst_ms: Option<u64>,
    /// Sensor time of the latest burst's first block, µs.
    last_burst_start_us: Option<u64>,
    /// Warned that the bursts are overdue, in the current silence.
    overdue: bool,
    /// Bursts counted missing in all.
    missed_bursts: u64,
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
    /// Configured sampling plans by sensor.
    plans: BTreeMap<u32, SamplingMode>,
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
    /// Sampling plans of snapshot sensors (`[[asset]] burst`); a sensor's own announcement
    /// overrides it.
    pub sampling: BTreeMap<u32, SamplingMode>,
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
            plans: config.sampling.clone(),
        }
    }

    /// The sampling plan of a sensor: its announcement, else its configuration.
    pub fn sampling(&self, sensor_id: u32) -> Option<SamplingMode> {
        self.sensors
            .get(&sensor_id)
            .and_then(|s| s.plan)
            .or_else(|| self.plans.get(&sensor_id).copied())
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
        let plan = self.plans.get(&sensor_id).copied();
        let state = self
            .sensors
            .entry(sensor_id)
            .or_insert_with(|| SensorState {
                asset: asset.clone(),
                source: ingest.source.clone(),
                sequencer: Sequencer::new(limits),
                windows: WindowAssembler::new(sensor_id, window).with_shaft_hz(shaft_hz),
                status: None,
                plan,
                last_burst_ms: None,
                last_burst_start_us: None,
                overdue: false,
                missed_bursts: 0,
            });
        let before = state.sequencer.stats();
        if !Arc::ptr_eq(&state.source, &ingest.source) {
            state.source = ingest.source.clone();
        }
        self.last_received_ms = ingest.received_ms;
        state
            .sequencer
            .push(ingest.frame, ingest.received_ms, &mut self.sequenced);
        let after = state.sequencer.stats();
        metrics::counter!("edgewatch_frames_duplicate_total")
            .increment(after.duplicates - before.duplicates);
        self.release(sensor_id, out);
    }

    /// Releases frames that waited too long for a missing predecessor at `now_ms`, and warns
    /// about snapshot sensors whose bursts are overdue.
    pub fn poll(&mut self, now_ms: u64, out: &mut Vec<AssembledWindow>) {
        let ids: Vec<u32> = self.sensors.keys().copied().collect();
        for id in ids {
            if let Some(state) = self.sensors.get_mut(&id) {
                state.sequencer.poll(now_ms, &mut self.sequenced);
                warn_overdue(id, state, now_ms);
            }
            self.release(id, out);
        }
    }

    /// At shutdown: releases everything held, as if the wait had expired.
    pub fn flush(&mut self, out: &mut Vec<AssembledWindow>) {
        self.poll(u64::MAX, out);
    }

    /// Window counters of a sensor (bursts whole, incomplete and short among them), and the
    /// bursts it has missed.
    pub fn window_stats(&self, sensor_id: u32) -> Option<(WindowStats, u64)> {
        self.sensors
            .get(&sensor_id)
            .map(|s| (s.windows.stats(), s.missed_bursts))
    }

    /// Frames lost by a sensor (sequence numbers never received).
    pub fn frames_lost(&self, sensor_id: u32) -> Option<u64> {
        self.sensors
            .get(&sensor_id)
            .map(|s| s.sequencer.stats().lost)
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
                        if block.flags.starts_burst() {
                            let start = frame.header.timestamp_us;
                            if let (Some(prev), Some(SamplingMode::Burst { period_ms, .. })) =
                                (state.last_burst_start_us, state.plan)
                            {
                                let missed = missed_between(prev, start, period_ms);
                                if missed > 0 {
                                    metrics::counter!("edgewatch_bursts_missed_total")
                                        .increment(missed);
                                    state.missed_bursts += missed;
                                }
                            }
                            state.last_burst_start_us = Some(start);
                        }
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
                        let sensor = sensor_id.to_string();
                        let (major, minor, patch) = s.firmware;
                        metrics::gauge!("edgewatch_sensor_supply_volts", "sensor" => sensor.clone())
                            .set(f64::from(s.supply_mv) / 1000.0);
                        metrics::gauge!("edgewatch_sensor_uptime_seconds", "sensor" => sensor.clone())
                            .set(f64::from(s.uptime_s));
                        metrics::gauge!("edgewatch_sensor_error_flags", "sensor" => sensor.clone())
                            .set(f64::from(s.error_flags));
                        let firmware = format!("{major}.{minor}.{patch}");
                        if state.status.map(|old| old.firmware) != Some(s.firmware) {
                            if let Some(old) = state.status {
                                let (a, b, c) = old.firmware;
                                metrics::gauge!("edgewatch_sensor_info", "sensor" => sensor.clone(), "firmware" => format!("{a}.{b}.{c}"))
                                    .set(0.0);
                            }
                            metrics::gauge!("edgewatch_sensor_info", "sensor" => sensor, "firmware" => firmware)
                                .set(1.0);
                        }
                        if s.error_flags != 0 {
                            tracing::warn!(
                                sensor_id,
                                flags = s.error_flags,
                                "sensor reports errors"
                            );
                        }
                        state.status = Some(s);
                    }
                    Payload::Sampling(plan) => {
                        let configured = self.plans.get(&sensor_id).copied();
                        if state.plan != Some(plan) {
                            if configured.is_some_and(|c| c != plan) {
                                metrics::counter!("edgewatch_sampling_mismatch_total").increment(1);
                                tracing::warn!(
                                    sensor_id,
                                    announced = ?plan,
                                    configured = ?configured,
                                    "the sensor announces another sampling plan than its \
                                     asset's `burst` says; going by the sensor"
                                );
                            } else {
                                tracing::info!(sensor_id, plan = ?plan, "sampling plan");
                            }
                            state.plan = Some(plan);
                            let (samples, period_s) = match plan {
                                SamplingMode::Continuous => (0.0, 0.0),
                                SamplingMode::Burst { samples, period_ms } => {
                                    (f64::from(samples), f64::from(period_ms) / 1000.0)
                                }
                            };
                            metrics::gauge!("edgewatch_sensor_burst_samples", "sensor" => sensor_id.to_string())
                                .set(samples);
                            metrics::gauge!("edgewatch_sensor_burst_period_seconds", "sensor" => sensor_id.to_string())
                                .set(period_s);
                        }
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
        let after = state.windows.stats();
        count_breaks(before, after);
        if after.bursts > before.bursts {
            state.last_burst_ms = Some(self.last_received_ms);
            state.overdue = false;
        }
        if (state.windows.window_len(), state.windows.sample_rate_hz()) != sized {
            let shaft_hz = self.shaft_hz.get(&state.asset).copied();
            log_window_size(
                sensor_id,
                &state.asset,
                &state.windows,
                self.window,
                shaft_hz,
                state.plan,
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
                source: state.source.clone(),
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
    plan: Option<SamplingMode>,
) {
    let (Some(len), Some(rate)) = (windows.window_len(), windows.sample_rate_hz()) else {
        return;
    };
    if let Some(SamplingMode::Burst { samples, period_ms }) = plan
        && (samples as usize) < len
    {
        tracing::info!(
            sensor_id,
            asset,
            sample_rate_hz = rate,
            burst_samples = samples,
            burst_period_ms = period_ms,
            "each burst ({:.3} s) is one window of its own length, shorter than [window] \
             {} ({len} samples)",
            f64::from(samples) / rate,
            config.size()
        );
        return;
    }
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

/// Warns once per silence when a snapshot sensor's next burst is more than a period late at
/// agent time `now_ms` (a sensor gone quiet); the bursts it missed are counted when it comes back,
/// from its own timestamps.
fn warn_overdue(sensor_id: u32, state: &mut SensorState, now_ms: u64) {
    let (Some(SamplingMode::Burst { period_ms, .. }), Some(last)) =
        (state.plan, state.last_burst_ms)
    else {
        return;
    };
    if !state.overdue && now_ms.saturating_sub(last) > 2 * u64::from(period_ms) {
        state.overdue = true;
        tracing::warn!(
            sensor_id,
            asset = %state.asset,
            period_ms,
            silent_ms = now_ms.saturating_sub(last),
            "a snapshot sensor's bursts are overdue"
        );
    }
}

/// Bursts missed between two burst starts `period_ms` apart by plan (sensor clock, µs); half a
/// period of jitter either way is not a miss.
fn missed_between(prev_us: u64, start_us: u64, period_ms: u32) -> u64 {
    let periods = start_us.saturating_sub(prev_us) as f64 / (f64::from(period_ms) * 1e3);
    (periods.round() as u64).saturating_sub(1)
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
    for (outcome, b, a) in [
        ("whole", before.bursts, after.bursts),
        (
            "incomplete",
            before.bursts_incomplete,
            after.bursts_incomplete,
        ),
        ("short", before.bursts_short, after.bursts_short),
    ] {
        if a > b {
            metrics::counter!("edgewatch_bursts_total", "outcome" => outcome).increment(a - b);
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
            sampling: BTreeMap::new(),
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
                    flags: edgewatch_protocol::BlockFlags::CONTINUOUS,
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

    /// Frame `seq` of a snapshot sensor 1: block `j` of burst `k` (0.1 s = 2 560 samples at
    /// 25.6 kHz in 5 blocks, a burst every 10 s), received when its last sample was taken.
    fn burst_frame(k: u32, j: u32, seq: u32) -> Ingest {
        let start_us = u64::from(k) * 10_000_000 + u64::from(j) * 20_000;
        Ingest {
            source: Arc::from("test"),
            frame: Frame {
                header: Header {
                    sensor_id: 1,
                    sequence: seq,
                    timestamp_us: start_us,
                },
                payload: Payload::Vibration(VibrationBlock {
                    flags: edgewatch_protocol::BlockFlags::burst(j == 0, j == 4),
                    sample_rate_hz: 25_600.0,
                    axes: 1,
                    scale_g_per_lsb: 0.001,
                    samples: heapless::Vec::from_slice(&[1; 512]).unwrap(),
                }),
            },
            received_ms: (start_us + 20_000) / 1000,
        }
    }

    #[test]
    fn a_snapshot_sensor_loses_nothing_between_bursts_and_a_missing_burst_is_counted() {
        let mut assembler = Assembler::new(&config(WindowConfig::default()));
        let mut out = Vec::new();
        let plan = SamplingMode::Burst {
            samples: 2560,
            period_ms: 10_000,
        };
        assembler.on_ingest(
            Ingest {
                source: Arc::from("test"),
                frame: Frame {
                    header: Header {
                        sensor_id: 1,
                        sequence: 0,
                        timestamp_us: 0,
                    },
                    payload: Payload::Sampling(plan),
                },
                received_ms: 0,
            },
            &mut out,
        );
        let mut seq = 1;
        for k in 0..6 {
            // Burst 4 never comes (the sensor slept through it): no frame, no sequence number.
            for j in 0..5 {
                if k != 4 {
                    assembler.on_ingest(burst_frame(k, j, seq), &mut out);
                }
                seq += u32::from(k != 4);
            }
            // The gateway polls through the silence as it does every 50 ms.
            let base = u64::from(k) * 10_000;
            for t in (base + 200..base + 10_000).step_by(50) {
                assembler.poll(t, &mut out);
            }
        }
        assert_eq!(assembler.sampling(1), Some(plan));
        assert_eq!(out.len(), 5, "one window per burst that came");
        assert!(out.iter().all(|w| w.window.samples.len() == 2560));
        let (stats, missed) = assembler.window_stats(1).unwrap();
        assert_eq!(assembler.frames_lost(1), Some(0));
        assert_eq!(
            (stats.bursts, stats.dropped, stats.timestamp_jumps),
            (5, 0, 0)
        );
        assert_eq!(missed, 1, "burst 4 is missed once, not once per poll");
    }
}
