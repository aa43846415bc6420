//! `agent replay-features`: a recorded serial byte stream (what `firmware-sim run --output file`
//! writes: COBS frames between `0x00` delimiters) through the agent's own decoder, sequencer,
//! windower and feature stage, offline and deterministically, writing one JSON line per window.
//!
//! Used to check that a cross-built agent computes the same features as the native one on the
//! same input (`cross/qemu-test.sh`), and handy for looking at a capture from a gateway. Frames
//! "arrive" at their sensor timestamps, so nothing depends on the host's speed.

use edgewatch_agent::analyze::FeatureStage;
use edgewatch_agent::assemble::{AssembledWindow, Assembler};
use edgewatch_agent::config::Config;
use edgewatch_agent::ingest::Ingest;
use edgewatch_protocol::Decoder;
use serde::Serialize;
use std::io::Write;
use std::sync::Arc;

/// One line of the output: where the window is and its features.
#[derive(Debug, Serialize)]
struct Line<'a> {
    asset: &'a str,
    sensor_id: u32,
    axis: u8,
    start_us: u64,
    end_us: u64,
    sample_rate_hz: f64,
    features: &'a edgewatch_agent::analyze::features::Features,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Frames decoded.
    pub frames: u64,
    /// Byte runs that did not decode (counted per reason in the metrics).
    pub rejected: u64,
    /// Windows written.
    pub windows: u64,
}

/// Replays `bytes` through the pipeline of `config`, writing JSON lines to `out`. Baselines go
/// to a scratch directory removed afterwards (the configuration's `data_dir` is not touched).
pub fn replay_features(
    config: &Config,
    bytes: &[u8],
    mut out: impl Write,
) -> std::io::Result<ReplaySummary> {
    let mut config = config.clone();
    config.agent.data_dir = std::env::temp_dir().join(format!(
        "edgewatch-replay-{}-{}",
        std::process::id(),
        bytes.len()
    ));
    let mut assembler = Assembler::new(&config.assembler());
    let mut stage = FeatureStage::new(&config.analysis(), None);
    let source: Arc<str> = "replay".into();
    let mut decoder = Decoder::new();
    let mut summary = ReplaySummary {
        frames: 0,
        rejected: 0,
        windows: 0,
    };
    let mut windows = Vec::new();
    let mut now_ms = 0;
    let mut emit = |windows: &mut Vec<AssembledWindow>,
                    now_ms: u64,
                    out: &mut dyn Write,
                    summary: &mut ReplaySummary|
     -> std::io::Result<()> {
        for w in windows.drain(..) {
            if let Some(r) = stage.process(w, now_ms) {
                let line = Line {
                    asset: &r.asset,
                    sensor_id: r.sensor_id,
                    axis: r.axis,
                    start_us: r.start_us,
                    end_us: r.end_us,
                    sample_rate_hz: r.sample_rate_hz,
                    features: &r.features,
                };
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
                summary.windows += 1;
            }
        }
        Ok(())
    };
    for result in decoder.decode(bytes) {
        match result {
            Ok(frame) => {
                summary.frames += 1;
                now_ms = now_ms.max(frame.header.timestamp_us / 1000);
                assembler.on_ingest(
                    Ingest {
                        source: source.clone(),
                        frame,
                        received_ms: now_ms,
                    },
                    &mut windows,
                );
                emit(&mut windows, now_ms, &mut out, &mut summary)?;
            }
            Err(e) => {
                summary.rejected += 1;
                edgewatch_agent::ingest::count_reject(&source, &e);
            }
        }
    }
    assembler.flush(&mut windows);
    emit(&mut windows, now_ms, &mut out, &mut summary)?;
    let _ = std::fs::remove_dir_all(&config.agent.data_dir);
    out.flush()?;
    Ok(summary)
}
