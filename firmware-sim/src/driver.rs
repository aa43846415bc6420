//! The run loop: merges the frames of all nodes in simulated-time order, applies link faults,
//! and writes them to the output, either paced in real time or as fast as the output takes them.

use crate::link::{InjectionStats, Injector, Wire};
use crate::node::SensorNode;
use crate::output::{Output, OutputError};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Pace frames in real time (a frame leaves when its last sample would have been taken).
    pub realtime: bool,
    /// Stop after this much simulated time; `None`: until every source is exhausted or stopped.
    pub duration_s: Option<f64>,
    /// Stop after this many frames in total; `None`: no limit.
    pub max_frames: Option<u64>,
}

/// What a run did; printed as JSON on stderr at the end of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    /// Frames generated, before link faults.
    pub frames_generated: u64,
    /// Frames generated per sensor id.
    pub per_sensor: std::collections::BTreeMap<u32, u64>,
    /// Simulated seconds covered.
    pub simulated_s: f64,
    /// Wall-clock seconds taken.
    pub wall_s: f64,
    /// Link faults applied.
    pub injection: InjectionStats,
}

/// The node whose next frame is due first, with that time; ties go to the lower index.
fn next_node(nodes: &[SensorNode]) -> Option<(usize, f64)> {
    nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.next_due_s().map(|t| (i, t)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// Runs `nodes` until the duration, the frame limit, the end of every source, or `stop`.
pub fn run(
    nodes: &mut [SensorNode],
    injector: &mut Injector,
    output: &mut Output,
    opts: &RunOptions,
    stop: &Arc<AtomicBool>,
) -> Result<RunSummary, OutputError> {
    let started = Instant::now();
    let mut summary = RunSummary::default();
    let mut wire = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let Some((i, due)) = next_node(nodes) else {
            break;
        };
        if opts.duration_s.is_some_and(|d| due > d)
            || opts
                .max_frames
                .is_some_and(|m| summary.frames_generated >= m)
        {
            break;
        }
        if opts.realtime {
            let target = started + Duration::from_secs_f64(due);
            let now = Instant::now();
            if target > now {
                std::thread::sleep(target - now);
            }
        }
        let Some((t, frame)) = nodes[i].emit() else {
            continue;
        };
        summary.frames_generated += 1;
        *summary
            .per_sensor
            .entry(frame.header.sensor_id)
            .or_default() += 1;
        summary.simulated_s = t;
        wire.clear();
        injector.apply(frame, t, &mut wire);
        let asset = nodes[i].settings().asset.clone();
        for w in &wire {
            output.send(w, &asset)?;
        }
    }
    summary.wall_s = started.elapsed().as_secs_f64();
    summary.injection = injector.stats();
    Ok(summary)
}

/// Convenience for tests and tools: all wire items of a run, without an output.
pub fn collect(
    nodes: &mut [SensorNode],
    injector: &mut Injector,
    max_frames: u64,
) -> Vec<(String, Wire)> {
    let mut all = Vec::new();
    let mut wire = Vec::new();
    for _ in 0..max_frames {
        let Some((i, _)) = next_node(nodes) else {
            break;
        };
        let Some((t, frame)) = nodes[i].emit() else {
            continue;
        };
        wire.clear();
        injector.apply(frame, t, &mut wire);
        let asset = nodes[i].settings().asset.clone();
        all.extend(wire.drain(..).map(|w| (asset.clone(), w)));
    }
    all
}
