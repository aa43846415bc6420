//! `agent eval`: recordings through the agent's own windowing, features, model and alert logic,
//! as a newly installed agent would see them (cold start: no learned baseline).
//!
//! Input: a folder with `index.csv` (columns `file,label,...,rpm,sample_rate_hz,...,bpfi_order,
//! bpfo_order,bsf_order,ftf_order`) and raw little-endian f32 recordings in g. Each recording is
//! quantised to int16 blocks as a sensor would send it (full scale just above its peak), cut into
//! windows by [`WindowAssembler`] with the agent's window (`[window]`: by default 1 s, half
//! overlap, so the sample count follows the recording's sample rate as on a gateway; a fixed
//! `--window-len` keeps one count whatever the rate, as the built-in model was trained),
//! scored, judged, and fed to the alert logic with the sensor clock as the agent clock. Output:
//! one CSV row per recording.
//!
//! `--commission-windows N` ([`Mode::Commissioned`]) asks the other question: how does an agent
//! that has been watching the machine behave? The recordings of each `channel` are then one
//! machine's history, in index order, laid end to end on one agent's clock (windows never span
//! two recordings); the machine's first N windows commission its baseline (judged cold start
//! meanwhile) and the windows after them are judged against it.

use crate::recordings::{IndexRow, parse_index};
use anyhow::{Context, Result};
use edgewatch_agent::analyze::alert::{AlertConfig, Level, Transition, WindowRef};
use edgewatch_agent::analyze::baseline::BaselineConfig;
use edgewatch_agent::analyze::features::{
    EnvelopePeaks, FeatureConfig, FeatureExtractor, MachineContext,
};
use edgewatch_agent::analyze::scoring::{Classify, Scorer};
use edgewatch_agent::assemble::window::{WindowAssembler, WindowConfig};
use edgewatch_protocol::VibrationBlock;
use edgewatch_protocol::heapless;
use std::collections::BTreeMap;
use std::path::Path;

/// Samples per block, as a sensor would send them.
const BLOCK: usize = 512;

/// The result for one recording.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRow {
    /// File name.
    pub file: String,
    /// Label from the index.
    pub label: String,
    /// Windows analysed.
    pub windows: usize,
    /// Windows judged abnormal (warning or critical).
    pub windows_flagged: usize,
    /// Majority class over the windows, in the index's vocabulary (`normal`, `inner`, `outer`,
    /// `ball`, or another class name).
    pub predicted_class: String,
    /// Whether the agent raised an alert during the recording.
    pub alerted: bool,
    /// Highest alert level reached (`normal` when none).
    pub max_level: Level,
    /// Windows of this recording that went into its machine's baseline (commissioned mode).
    pub commissioning_windows: usize,
    /// Flagged windows among those that followed commissioning (commissioned mode).
    pub flagged_after_commissioning: usize,
    /// Majority over the windows of the textbook envelope analysis ([`textbook_class`]), the
    /// baseline the agent's typing is compared with.
    pub envelope_class: String,
    /// What decided most of the flagged windows' type (`envelope`, `classifier`,
    /// `envelope+classifier`, `envelope line`, …; empty when no window was flagged).
    pub decided_by: String,
    /// Mean line-family scores over the windows, dB: outer race, inner race, rolling element.
    pub family_scores: [f64; 3],
}

/// Lowest line, dB over the local background, that the textbook analysis calls a defect: above
/// what a single window reads by chance without a line (up to about 10 dB, docs/features.md).
pub const TEXTBOOK_MIN_DB: f64 = 10.0;

/// The textbook envelope analysis of one window: of the outer-race (BPFO), inner-race (BPFI)
/// and rolling-element (BSF) line families, fundamental or second harmonic, the one standing
/// highest over its local background names the defect, if it stands at least
/// [`TEXTBOOK_MIN_DB`]; otherwise `normal`. No model, no baseline, no tuning on recordings.
pub fn textbook_class(p: &EnvelopePeaks) -> &'static str {
    let families = [
        ("outer", p.bpfo_db.max(p.bpfo_2x_db)),
        ("inner", p.bpfi_db.max(p.bpfi_2x_db)),
        ("ball", p.bsf_db.max(p.bsf_2x_db)),
    ];
    let (name, db) = families
        .into_iter()
        .fold(families[0], |best, f| if f.1 > best.1 { f } else { best });
    if db >= TEXTBOOK_MIN_DB {
        name
    } else {
        "normal"
    }
}

/// How [`evaluate_dir`] treats the recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each recording on its own, as a newly installed agent sees it: no baseline.
    ColdStart,
    /// The recordings of each channel are one machine's history; its first `windows` windows
    /// commission the baseline.
    Commissioned {
        /// Commissioning windows per machine.
        windows: usize,
    },
}

/// Evaluates one recording (samples in g) as a newly installed agent: cold start.
pub fn evaluate_recording(
    row: &IndexRow,
    samples: &[f32],
    classifier: Option<Box<dyn Classify>>,
    window: WindowConfig,
    features: &FeatureConfig,
    alerts: &AlertConfig,
) -> Result<EvalRow> {
    // Cold start: a baseline that never finishes commissioning.
    let baseline = BaselineConfig {
        windows: usize::MAX,
        ..BaselineConfig::default()
    };
    let mut scorer = Scorer::new(classifier, baseline, alerts.clone(), None);
    let (mut result, _) = run_recording(row, samples, &mut scorer, &row.file, 0, window, features)?;
    // A baseline that never completes: no window is a commissioning one in this mode's terms.
    result.commissioning_windows = 0;
    result.flagged_after_commissioning = 0;
    Ok(result)
}

/// Runs one recording through `scorer` as asset `asset`, its first sample at `t0_us` on the
/// agent's clock; returns the row and the clock just after its last sample.
fn run_recording(
    row: &IndexRow,
    samples: &[f32],
    scorer: &mut Scorer,
    asset: &str,
    t0_us: u64,
    window: WindowConfig,
    features: &FeatureConfig,
) -> Result<(EvalRow, u64)> {
    let shaft_hz = row.rpm / 60.0;
    let window_len = window.length_for(row.sample_rate_hz, Some(shaft_hz));
    let mut extractor = FeatureExtractor::new(window_len, row.sample_rate_hz, features)
        .with_context(|| format!("{}: sample rate {} Hz", row.file, row.sample_rate_hz))?;
    let ctx = MachineContext {
        shaft_hz: row.rpm / 60.0,
        orders: row.orders,
    };
    let mut windower = WindowAssembler::new(1, window).with_shaft_hz(Some(shaft_hz));
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    let scale = (peak * 1.05).max(1e-6) / f32::from(i16::MAX);
    let mut windows = Vec::new();
    let mut result = EvalRow {
        file: row.file.clone(),
        label: row.label.clone(),
        windows: 0,
        windows_flagged: 0,
        predicted_class: "normal".into(),
        envelope_class: "normal".into(),
        decided_by: String::new(),
        family_scores: [0.0; 3],
        alerted: false,
        max_level: Level::Normal,
        commissioning_windows: 0,
        flagged_after_commissioning: 0,
    };
    let mut votes: BTreeMap<String, usize> = BTreeMap::new();
    let mut envelope_votes: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut decided: BTreeMap<String, usize> = BTreeMap::new();
    let blocks = samples.len() / BLOCK;
    let block_us = |k: usize| (k as f64 * BLOCK as f64 * 1e6 / row.sample_rate_hz).round() as u64;
    for (k, chunk) in samples.chunks_exact(BLOCK).enumerate() {
        let block = VibrationBlock {
            flags: edgewatch_protocol::BlockFlags::CONTINUOUS,
            sample_rate_hz: row.sample_rate_hz as f32,
            axes: 1,
            scale_g_per_lsb: scale,
            samples: chunk
                .iter()
                .map(|&g| (g / scale).round() as i16)
                .collect::<heapless::Vec<i16, { edgewatch_protocol::MAX_VIBRATION_SAMPLES }>>(),
        };
        windower.push(t0_us + block_us(k), &block, &mut windows);
        for w in windows.drain(..) {
            let f = extractor
                .extract(&w.samples, &ctx)
                .with_context(|| format!("{}: window at {} µs", row.file, w.start_us))?;
            let wref = WindowRef {
                asset,
                sensor_id: 1,
                axis: w.axis,
                start_us: w.start_us,
                end_us: w.end_us,
            };
            let now_ms = w.end_us / 1000;
            let (assessment, event) = scorer.score(wref, &f, now_ms);
            result.windows += 1;
            let flagged = assessment.level != Level::Normal;
            if flagged {
                result.windows_flagged += 1;
            }
            // No anomaly score yet: a commissioning window (the one that completes the
            // baseline included).
            if assessment.anomaly.is_none() {
                result.commissioning_windows += 1;
            } else if flagged {
                result.flagged_after_commissioning += 1;
            }
            // The window's type is the agent's verdict: what decided a flagged window, `normal`
            // for a window judged normal.
            let class = if flagged {
                assessment.finding.clone()
            } else {
                "normal".to_string()
            };
            *votes.entry(class).or_default() += 1;
            if flagged {
                *decided.entry(assessment.decided_by.clone()).or_default() += 1;
            }
            let fam = &f.envelope.families;
            for (sum, e) in result
                .family_scores
                .iter_mut()
                .zip([fam.outer, fam.inner, fam.ball])
            {
                *sum += e.score_db;
            }
            *envelope_votes
                .entry(textbook_class(&f.envelope))
                .or_default() += 1;
            if let Some(e) = event.filter(|e| e.transition != Transition::Cleared) {
                result.alerted = true;
                result.max_level = result.max_level.max(e.level);
            }
        }
    }
    if let Some((class, _)) = votes
        .iter()
        .max_by_key(|(c, n)| (**n, c.as_str() == "normal"))
    {
        result.predicted_class = class.clone();
    }
    if let Some((class, _)) = envelope_votes
        .iter()
        .max_by_key(|(c, n)| (**n, **c == "normal"))
    {
        result.envelope_class = (*class).to_string();
    }
    if let Some((by, _)) = decided.iter().max_by_key(|(_, n)| **n) {
        result.decided_by = by.clone();
    }
    if result.windows > 0 {
        for s in &mut result.family_scores {
            *s /= result.windows as f64;
        }
    }
    Ok((result, t0_us + block_us(blocks)))
}

/// Evaluates every recording listed in `dir/index.csv`, in `mode`. `classifier` gives the
/// classifier of each scorer (`agent eval` shares one model, which keeps no state between
/// windows).
pub fn evaluate_dir(
    dir: &Path,
    mode: Mode,
    classifier: &dyn Fn() -> Option<Box<dyn Classify>>,
    window: WindowConfig,
    features: &FeatureConfig,
    alerts: &AlertConfig,
) -> Result<Vec<EvalRow>> {
    let index_path = dir.join("index.csv");
    let text = std::fs::read_to_string(&index_path)
        .with_context(|| format!("reading {}", index_path.display()))?;
    let rows = parse_index(&text).with_context(|| index_path.display().to_string())?;
    let mut out = Vec::with_capacity(rows.len());
    // Commissioned mode: one scorer (one agent's view of the machine) and clock per channel.
    let mut machines: BTreeMap<String, (Scorer, u64)> = BTreeMap::new();
    for row in rows {
        let path = dir.join(&row.file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        if bytes.len() % 4 != 0 {
            anyhow::bail!("{}: not a whole number of f32 samples", path.display());
        }
        let samples: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let result = match mode {
            Mode::ColdStart => {
                evaluate_recording(&row, &samples, classifier(), window, features, alerts)?
            }
            Mode::Commissioned { windows } => {
                let (scorer, clock_us) = machines.entry(row.channel.clone()).or_insert_with(|| {
                    let baseline = BaselineConfig {
                        windows,
                        ..BaselineConfig::default()
                    };
                    (Scorer::new(classifier(), baseline, alerts.clone(), None), 0)
                });
                let (result, end_us) = run_recording(
                    &row,
                    &samples,
                    scorer,
                    &row.channel,
                    *clock_us,
                    window,
                    features,
                )?;
                *clock_us = end_us;
                result
            }
        };
        out.push(result);
    }
    Ok(out)
}

/// The CSV the `eval` command writes; commissioned mode adds two columns.
pub fn to_csv(rows: &[EvalRow], mode: Mode) -> String {
    let commissioned = matches!(mode, Mode::Commissioned { .. });
    let mut s =
        // envelope_class after the fixed columns, so readers of those keep working.
        String::from("file,label,windows,windows_flagged,predicted_class,alerted,max_level,envelope_class,decided_by,outer_score_db,inner_score_db,ball_score_db");
    if commissioned {
        s.push_str(",commissioning_windows,windows_flagged_after_commissioning");
    }
    s.push('\n');
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{:.1},{:.1},{:.1}",
            r.file,
            r.label,
            r.windows,
            r.windows_flagged,
            r.predicted_class,
            r.alerted,
            format!("{:?}", r.max_level).to_lowercase(),
            r.envelope_class,
            r.decided_by,
            r.family_scores[0],
            r.family_scores[1],
            r.family_scores[2]
        ));
        if commissioned {
            s.push_str(&format!(
                ",{},{}",
                r.commissioning_windows, r.flagged_after_commissioning
            ));
        }
        s.push('\n');
    }
    s
}

/// A per-label summary table (Markdown); in commissioned mode a second one splits the windows
/// at the end of commissioning.
pub fn summary(rows: &[EvalRow], mode: Mode) -> String {
    let mut by: BTreeMap<&str, Vec<&EvalRow>> = BTreeMap::new();
    for r in rows {
        by.entry(r.label.as_str()).or_default().push(r);
    }
    let mut s = String::from(
        "| label | recordings | alerted | windows | windows flagged | type right | textbook type \
         right | predicted (majority) |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (label, rs) in &by {
        let windows: usize = rs.iter().map(|r| r.windows).sum();
        let flagged: usize = rs.iter().map(|r| r.windows_flagged).sum();
        let alerted = rs.iter().filter(|r| r.alerted).count();
        let right = rs.iter().filter(|r| r.predicted_class == *label).count();
        let textbook = rs.iter().filter(|r| r.envelope_class == *label).count();
        let share = |n: usize| 100.0 * n as f64 / rs.len().max(1) as f64;
        let mut predicted: BTreeMap<&str, usize> = BTreeMap::new();
        for r in rs {
            *predicted.entry(r.predicted_class.as_str()).or_default() += 1;
        }
        let predicted = predicted
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        s.push_str(&format!(
            "| {label} | {} | {alerted} ({:.0} %) | {windows} | {flagged} ({:.1} %) | {right} \
             ({:.0} %) | {textbook} ({:.0} %) | {predicted} |\n",
            rs.len(),
            share(alerted),
            100.0 * flagged as f64 / windows.max(1) as f64,
            share(right),
            share(textbook),
        ));
    }
    if let Mode::Commissioned { windows } = mode {
        s.push_str(&format!(
            "\nEach channel's recordings as one machine's history, baseline commissioned on its \
             first {windows} windows:\n\n\
             | label | commissioning windows | flagged while commissioning | windows after | \
             flagged after |\n|---|---:|---:|---:|---:|\n"
        ));
        for (label, rs) in &by {
            let during: usize = rs.iter().map(|r| r.commissioning_windows).sum();
            let after: usize = rs.iter().map(|r| r.windows).sum::<usize>() - during;
            let flagged_after: usize = rs.iter().map(|r| r.flagged_after_commissioning).sum();
            let flagged_during: usize =
                rs.iter().map(|r| r.windows_flagged).sum::<usize>() - flagged_after;
            s.push_str(&format!(
                "| {label} | {during} | {flagged_during} ({:.1} %) | {after} | {flagged_after} \
                 ({:.1} %) |\n",
                100.0 * flagged_during as f64 / during.max(1) as f64,
                100.0 * flagged_after as f64 / after.max(1) as f64,
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    fn peaks(bpfo: f64, bpfi_2x: f64, bsf: f64) -> EnvelopePeaks {
        EnvelopePeaks {
            band_hz: [2000.0, 4000.0],
            band_kurtosis: 1.0,
            bpfo_db: bpfo,
            bpfo_2x_db: 3.0,
            bpfi_db: 3.0,
            bpfi_2x_db: bpfi_2x,
            bsf_db: bsf,
            bsf_2x_db: 3.0,
            ftf_db: 40.0,
            ftf_2x_db: 3.0,
            bpfo_hz: 107.0,
            bpfi_hz: 162.0,
            bsf_hz: 70.0,
            bsf_2x_hz: 140.0,
            ftf_hz: 12.0,
            families: Default::default(),
        }
    }

    #[test]
    fn the_textbook_analysis_names_the_highest_family_and_calls_weak_lines_normal() {
        assert_eq!(textbook_class(&peaks(25.0, 12.0, 4.0)), "outer");
        // A second harmonic counts for its family.
        assert_eq!(textbook_class(&peaks(11.0, 18.0, 4.0)), "inner");
        assert_eq!(textbook_class(&peaks(4.0, 5.0, 14.0)), "ball");
        // Below the chance level nothing is named; the cage line is not a defect family.
        assert_eq!(textbook_class(&peaks(9.0, 8.0, 7.0)), "normal");
    }

    use super::*;
    use edgewatch_agent::analyze::features::FaultOrders;

    fn row(label: &str) -> IndexRow {
        IndexRow {
            file: format!("{label}.f32"),
            label: label.into(),
            fault_inches: None,
            rpm: 1800.0,
            sample_rate_hz: 12_000.0,
            n_samples: 0,
            channel: "FE".into(),
            orders: FaultOrders {
                bpfo: 3.053,
                bpfi: 4.947,
                bsf: 3.987,
                ftf: 0.382,
            },
        }
    }

    /// Outer-race impacts at BPFO (30 Hz × 3.053) ringing a 3 kHz resonance, plus noise.
    fn outer_race_signal(n: usize) -> Vec<f32> {
        let fs = 12_000.0;
        let period = fs / (30.0 * 3.053);
        let mut x = vec![0.0f32; n];
        let mut next = 0.0;
        let mut state = 0x1234_5678u64;
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.1
        };
        while (next as usize) < n {
            let start = next as usize;
            for (k, v) in x[start..(start + 200).min(n)].iter_mut().enumerate() {
                let t = k as f32 / fs as f32;
                *v += (-t * 600.0).exp() * (2.0 * std::f32::consts::PI * 3000.0 * t).sin();
            }
            next += period;
        }
        for v in &mut x {
            *v += noise();
        }
        x
    }

    #[test]
    fn a_clear_outer_race_recording_is_flagged_and_alerted_in_cold_start() {
        let r = cold(
            &row("outer"),
            &outer_race_signal(120_000),
            WindowConfig::default(),
        );
        assert!(r.windows >= 15, "{r:?}");
        assert!(r.windows_flagged * 10 >= r.windows * 9, "{r:?}");
        assert!(r.alerted);
        assert_eq!(r.predicted_class, "outer");
    }

    #[test]
    fn recordings_are_windowed_as_the_agent_is_configured_whatever_their_sample_rate() {
        // 3.07 s at 20 kHz, as the IMS recordings: the agent's default window (1 s, 20 000
        // samples, half overlap) fits five times; fixed 8192-sample windows fourteen times,
        // 16384-sample ones six times.
        let slow = noise(61_440, 3);
        let mut r = row("normal");
        r.sample_rate_hz = 20_000.0;
        let windows = |window| cold(&r, &slow, window).windows;
        assert_eq!(windows(WindowConfig::default()), 5);
        assert_eq!(windows(WindowConfig::from_length(8192)), 14);
        assert_eq!(windows(WindowConfig::from_length(16_384)), 6);
        // 30 revolutions at 1800 rpm are 1 s too.
        assert_eq!(windows(WindowConfig::from_revolutions(30.0)), 5);
        // Three seconds at 48.8 kHz (the MFPT rigs' rate): 1 s windows are 49 152 samples, the
        // next FFT-friendly count, and fit four times, as many as at 20 kHz but for the
        // rounding.
        let fast = noise(146_484, 5);
        let mut r = row("normal");
        r.sample_rate_hz = 48_828.0;
        let result = cold(&r, &fast, WindowConfig::default());
        assert_eq!(result.windows, 4, "{result:?}");
        assert_eq!(result.windows_flagged, 0, "{result:?}");
    }

    /// Cold start without a classifier, default features and alerts.
    fn cold(row: &IndexRow, samples: &[f32], window: WindowConfig) -> EvalRow {
        evaluate_recording(
            row,
            samples,
            None,
            window,
            &FeatureConfig::default(),
            &AlertConfig::default(),
        )
        .unwrap()
    }

    /// `n` samples of uniform noise, ±0.1 g.
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((state >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.2
            })
            .collect()
    }

    #[test]
    fn noise_is_not_flagged() {
        let r = cold(&row("normal"), &noise(120_000, 7), WindowConfig::default());
        assert_eq!(r.windows_flagged, 0, "{r:?}");
        assert!(!r.alerted);
        assert_eq!(r.predicted_class, "normal");
        let csv = to_csv(&[r], Mode::ColdStart);
        assert!(csv.starts_with("file,label,windows,windows_flagged,predicted_class"));
    }

    /// Calls every third window a fault (the first included), as a model that now and then
    /// reads something in a healthy machine as one would.
    #[derive(Debug, Default)]
    struct SometimesOverheating(usize);

    impl Classify for SometimesOverheating {
        fn classify(
            &mut self,
            _inputs: &[f32],
        ) -> Option<edgewatch_agent::analyze::alert::ClassVerdict> {
            // `overheating`: a class that needs no line of the spectrum to back it (a bearing
            // part would need its line family, a shaft-rate fault zone B; this is noise).
            let called = self.0.is_multiple_of(3);
            self.0 += 1;
            Some(edgewatch_agent::analyze::alert::ClassVerdict {
                class: if called { "overheating" } else { "normal" }.into(),
                probability: 0.9,
                model_version: "test".into(),
            })
        }
    }

    #[test]
    fn a_commissioned_agent_learns_what_its_model_calls_on_the_healthy_machine() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = String::from(
            "file,label,rpm,sample_rate_hz,n_samples,channel,bpfi_order,bpfo_order,bsf_order,ftf_order\n",
        );
        let mut state = 11u64;
        for channel in ["A", "B"] {
            for k in 0..3 {
                let file = format!("{channel}{k}.f32");
                let bytes: Vec<u8> = (0..60_000)
                    .flat_map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        (((state >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.2).to_le_bytes()
                    })
                    .collect();
                std::fs::write(dir.path().join(&file), bytes).unwrap();
                index +=
                    &format!("{file},normal,1800,12000,60000,{channel},4.947,3.053,3.987,0.382\n");
            }
        }
        std::fs::write(dir.path().join("index.csv"), index).unwrap();
        let run = |mode| {
            evaluate_dir(
                dir.path(),
                mode,
                &|| Some(Box::<SometimesOverheating>::default() as Box<dyn Classify>),
                WindowConfig::default(),
                &FeatureConfig::default(),
                &AlertConfig::default(),
            )
            .unwrap()
        };
        // Cold start (a classifier per recording): every `overheating` verdict flags its window.
        let cold = run(Mode::ColdStart);
        assert_eq!(cold.len(), 6);
        assert!(
            cold.iter()
                .all(|r| r.windows > 0 && r.windows_flagged == r.windows.div_ceil(3))
        );
        assert!(cold.iter().all(|r| r.commissioning_windows == 0));

        // Commissioned on each machine's first 12 windows: `overheating` was habitual there, and the
        // windows after it are like the commissioning ones.
        let mode = Mode::Commissioned { windows: 12 };
        let rows = run(mode);
        for channel in ["A", "B"] {
            let machine: Vec<_> = rows
                .iter()
                .filter(|r| r.file.starts_with(channel))
                .collect();
            let total: usize = machine.iter().map(|r| r.windows).sum();
            let during: usize = machine.iter().map(|r| r.commissioning_windows).sum();
            assert_eq!(during, 12, "{machine:?}");
            assert!(total > during + 5, "{machine:?}");
            // Flagged while commissioning (cold start: windows 0, 3, 6 and 9), not after.
            let flagged: usize = machine.iter().map(|r| r.windows_flagged).sum();
            assert_eq!(flagged, 4, "{machine:?}");
            assert!(machine.iter().all(|r| r.flagged_after_commissioning == 0));
        }
        let csv = to_csv(&rows, mode);
        assert!(
            csv.lines()
                .next()
                .unwrap()
                .ends_with(",commissioning_windows,windows_flagged_after_commissioning")
        );
        let table = summary(&rows, mode);
        assert!(table.contains("| normal | 24 | 8 (33.3 %) |"), "{table}");
    }
}
