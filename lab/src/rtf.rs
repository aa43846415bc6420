//! `lab eval-rtf`: run-to-failure bearings (the `femto-learning` layout) through the gateway's
//! code, snapshot by snapshot in time order.
//!
//! Each bearing is one snapshot sensor on one asset. Its horizontal channel's snapshots are sent
//! as a snapshot sensor sends them (a sampling-plan frame, then each snapshot as a burst of
//! frames with burst flags, sequence numbers and sensor timestamps) into the agent's assembler,
//! which makes each burst one window of its own length; the feature stage and scorer then do
//! what they do on a gateway: features, the model (unless `--no-model`), the baseline, the
//! diagnosis, the health tracker and the alert engine. An alert is what the gateway raises, of
//! any kind; `level` is the asset's active alert level after the snapshot. Output: one row per
//! bearing
//! (`bearing,n_snapshots,life_s,first_alert_s,lead_time_s,alerts_first_half,max_level`) and a
//! trace, one row per snapshot
//! (`bearing,snapshot,seconds_since_start,health,level,rul_s,rul_low_s,rul_high_s`).

use anyhow::{Context, Result, bail};
use edgewatch_agent::analyze::alert::{AlertConfig, Level, Transition};
use edgewatch_agent::analyze::baseline::BaselineConfig;
use edgewatch_agent::analyze::diagnosis::DiagnosisConfig;
use edgewatch_agent::analyze::features::{FaultOrders, FeatureConfig, MachineContext};
use edgewatch_agent::analyze::health::{HealthConfig, HealthReport};
use edgewatch_agent::analyze::scoring::Classify;
use edgewatch_agent::analyze::{AnalysisConfig, AnalyzedAsset, FeatureStage};
use edgewatch_agent::assemble::temperature::TemperatureTrendConfig;
use edgewatch_agent::assemble::window::WindowConfig;
use edgewatch_agent::assemble::{Assembler, AssemblerConfig};
use edgewatch_agent::ingest::Ingest;
use edgewatch_protocol::{
    BlockFlags, Frame, Header, MAX_VIBRATION_SAMPLES, Payload, SamplingMode, VibrationBlock,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// One bearing of the index.
#[derive(Debug, Clone)]
struct Bearing {
    name: String,
    rpm: f64,
    sample_rate_hz: f64,
    snapshot_len: usize,
    n_snapshots: usize,
    life_s: f64,
    orders: FaultOrders,
    file_h: String,
    times: String,
}

fn parse_index(text: &str) -> Result<Vec<Bearing>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("empty index")?.split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("index.csv has no column {name}"))
    };
    let c = [
        col("bearing")?,
        col("rpm")?,
        col("sample_rate_hz")?,
        col("snapshot_len")?,
        col("n_snapshots")?,
        col("life_s")?,
        col("bpfi_order")?,
        col("bpfo_order")?,
        col("bsf_order")?,
        col("ftf_order")?,
        col("file_h")?,
        col("times")?,
    ];
    let mut out = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let get = |k: usize| {
            f.get(c[k])
                .copied()
                .with_context(|| format!("index.csv row {}: too few columns", i + 2))
        };
        let num = |k: usize| -> Result<f64> {
            get(k)?
                .parse::<f64>()
                .with_context(|| format!("index.csv row {}: column {}", i + 2, header[c[k]]))
        };
        out.push(Bearing {
            name: get(0)?.to_string(),
            rpm: num(1)?,
            sample_rate_hz: num(2)?,
            snapshot_len: num(3)? as usize,
            n_snapshots: num(4)? as usize,
            life_s: num(5)?,
            orders: FaultOrders {
                bpfi: num(6)?,
                bpfo: num(7)?,
                bsf: num(8)?,
                ftf: num(9)?,
            },
            file_h: get(10)?.to_string(),
            times: get(11)?.to_string(),
        });
    }
    Ok(out)
}

/// The PHM 2012 challenge's accuracy of one remaining-life prediction: with the percent error
/// `Er = 100 (actual − predicted) / actual`, `A = exp(−ln(0.5) · Er / 5)` for `Er ≤ 0` (a late
/// prediction: the bearing fails before the predicted time) and `A = exp(ln(0.5) · Er / 20)`
/// for `Er > 0` (early): 1 for a perfect prediction, 0.5 at 5 % late or 20 % early.
pub fn phm_accuracy(actual_s: f64, predicted_s: f64) -> f64 {
    let er = 100.0 * (actual_s - predicted_s) / actual_s;
    if er <= 0.0 {
        (-(0.5f64.ln()) * er / 5.0).exp()
    } else {
        (0.5f64.ln() * er / 20.0).exp()
    }
}

/// Fractions of each bearing's life at which its remaining life is scored.
pub const CUT_FRACTIONS: [f64; 5] = [0.5, 0.6, 0.7, 0.8, 0.9];

/// One bearing's life and, per snapshot, `(time, the tracker's remaining life if any)`.
#[derive(Debug, Clone)]
pub struct Life {
    /// Bearing name.
    pub bearing: String,
    /// Life, s.
    pub life_s: f64,
    /// Per snapshot: time since start and the tracker's estimate.
    pub estimates: Vec<(f64, Option<f64>)>,
}

/// Mean PHM accuracy over every bearing and [`CUT_FRACTIONS`] cut: of the tracker (where it has
/// no estimate at a cut, the naive one stands in) and of the naive estimate "mean life of the
/// *other* bearings minus the time elapsed" (leave one bearing out, at least 0). Returns
/// `(tracker, naive, cuts where the tracker had an estimate, cuts)`.
pub fn phm_scores(lives: &[Life]) -> (f64, f64, usize, usize) {
    let (mut ours, mut naive_sum, mut estimated, mut n) = (0.0, 0.0, 0, 0);
    for (i, b) in lives.iter().enumerate() {
        let others: Vec<f64> = lives
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| o.life_s)
            .collect();
        let mean_other = others.iter().sum::<f64>() / others.len().max(1) as f64;
        for frac in CUT_FRACTIONS {
            // The last snapshot at or before the cut.
            let Some(&(t, estimate)) = b
                .estimates
                .iter()
                .take_while(|(t, _)| *t <= frac * b.life_s)
                .last()
            else {
                continue;
            };
            let actual = b.life_s - t;
            if actual <= 0.0 {
                continue;
            }
            let naive = (mean_other - t).max(0.0);
            naive_sum += phm_accuracy(actual, naive);
            ours += phm_accuracy(actual, estimate.unwrap_or(naive));
            estimated += usize::from(estimate.is_some());
            n += 1;
        }
    }
    let n_f = n.max(1) as f64;
    (ours / n_f, naive_sum / n_f, estimated, n)
}

/// How `eval-rtf` runs the gateway's code.
pub struct RtfOptions<'a> {
    /// `[health]`.
    pub health: HealthConfig,
    /// `[alerts]`.
    pub alerts: AlertConfig,
    /// A classifier for each bearing (`None`: the agent without a model).
    pub classifier: &'a dyn Fn() -> Option<Box<dyn Classify>>,
}

impl std::fmt::Debug for RtfOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtfOptions")
            .field("health", &self.health)
            .field("alerts", &self.alerts)
            .finish_non_exhaustive()
    }
}

impl RtfOptions<'_> {
    /// Default settings, no model.
    pub fn without_model(health: HealthConfig) -> RtfOptions<'static> {
        RtfOptions {
            health,
            alerts: AlertConfig::default(),
            classifier: &|| None,
        }
    }
}

/// The two CSVs of `eval-rtf`: per bearing, and the per-snapshot trace.
pub fn evaluate(dir: &Path, opts: &RtfOptions<'_>) -> Result<(String, String)> {
    let (rows, trace, _) = evaluate_lives(dir, opts)?;
    Ok((rows, trace))
}

/// One snapshot through the gateway.
struct Step {
    health: Option<HealthReport>,
    /// The asset's active alert level after the snapshot.
    level: Option<Level>,
    /// An alert raised by this snapshot.
    raised: bool,
}

/// A bearing's snapshots as the gateway meets them: sampling-plan frame, then each snapshot as a
/// burst of frames (flags, sequence numbers and sensor timestamps as a snapshot sensor sends
/// them), through the agent's assembler, feature stage, scorer (model, baseline, diagnosis,
/// health) and alert engine.
fn run_bearing(
    b: &Bearing,
    samples: &[f32],
    times: &[f64],
    opts: &RtfOptions<'_>,
) -> Result<Vec<Step>> {
    const SENSOR: u32 = 1;
    let asset = b.name.clone();
    let interval_s = if times.len() > 1 {
        (times[times.len() - 1] - times[0]) / (times.len() - 1) as f64
    } else {
        10.0
    };
    let plan = SamplingMode::Burst {
        samples: b.snapshot_len as u32,
        period_ms: (interval_s * 1000.0).round().max(1.0) as u32,
    };
    let mut assembler = Assembler::new(&AssemblerConfig {
        window: WindowConfig::default(),
        reorder_max_frames: 16,
        reorder_wait_ms: 500,
        sensor_assets: BTreeMap::from([(SENSOR, asset.clone())]),
        assets: vec![asset.clone()],
        shaft_hz: BTreeMap::from([(asset.clone(), b.rpm / 60.0)]),
        temperature: TemperatureTrendConfig::default(),
        sampling: BTreeMap::from([(SENSOR, plan)]),
    });
    let mut stage = FeatureStage::new(
        &AnalysisConfig {
            features: FeatureConfig::default(),
            baseline: BaselineConfig::default(),
            alerts: opts.alerts.clone(),
            diagnosis: DiagnosisConfig::default(),
            health: opts.health,
            alert_id_prefix: String::new(),
            window: WindowConfig::default(),
            data_dir: None,
            feedback: None,
            assets: vec![AnalyzedAsset {
                id: asset.clone(),
                context: MachineContext {
                    shaft_hz: b.rpm / 60.0,
                    orders: b.orders,
                },
                zone_limits: None,
            }],
        },
        (opts.classifier)(),
    );
    // A sensor whose range fits the recording: full scale at its largest sample.
    let full_scale = samples.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    let scale = full_scale / f32::from(i16::MAX);
    let source: std::sync::Arc<str> = std::sync::Arc::from("eval-rtf");
    let mut sequence = 0u32;
    let mut frame = |timestamp_us: u64, payload: Payload| {
        let f = Frame {
            header: Header {
                sensor_id: SENSOR,
                sequence,
                timestamp_us,
            },
            payload,
        };
        sequence = sequence.wrapping_add(1);
        f
    };
    let mut windows = Vec::new();
    assembler.on_ingest(
        Ingest {
            source: source.clone(),
            frame: frame(0, Payload::Sampling(plan)),
            received_ms: 0,
        },
        &mut windows,
    );
    let per_block = MAX_VIBRATION_SAMPLES;
    let mut steps = Vec::with_capacity(times.len());
    for (k, (snapshot, &t)) in samples.chunks_exact(b.snapshot_len).zip(times).enumerate() {
        let start_us = (t * 1e6).round() as u64;
        let received_ms = start_us / 1000;
        let blocks = snapshot.len().div_ceil(per_block);
        for (j, chunk) in snapshot.chunks(per_block).enumerate() {
            let mut q = edgewatch_protocol::heapless::Vec::new();
            for &g in chunk {
                // `as` saturates, as an ADC clips.
                let _ = q.push((g / scale).round() as i16);
            }
            let ts = start_us + ((j * per_block) as f64 * 1e6 / b.sample_rate_hz).round() as u64;
            let block = VibrationBlock {
                flags: BlockFlags::burst(j == 0, j + 1 == blocks),
                sample_rate_hz: b.sample_rate_hz as f32,
                axes: 1,
                scale_g_per_lsb: scale,
                samples: q,
            };
            assembler.on_ingest(
                Ingest {
                    source: source.clone(),
                    frame: frame(ts, Payload::Vibration(block)),
                    received_ms,
                },
                &mut windows,
            );
        }
        if windows.len() != 1 {
            bail!(
                "{}: snapshot {k} made {} windows, not one",
                b.name,
                windows.len()
            );
        }
        let w = windows.pop().expect("one window");
        let report = stage
            .process(w, received_ms)
            .with_context(|| format!("{}: snapshot {k} was not analysed", b.name))?;
        steps.push(Step {
            health: report.assessment.health,
            level: report.assessment.active_alert,
            raised: report
                .alert
                .as_ref()
                .is_some_and(|a| a.transition == Transition::Raised),
        });
    }
    Ok(steps)
}

/// [`evaluate`], with each bearing's [`Life`] for [`phm_scores`].
pub fn evaluate_lives(dir: &Path, opts: &RtfOptions<'_>) -> Result<(String, String, Vec<Life>)> {
    let mut lives = Vec::new();
    let index = std::fs::read_to_string(dir.join("index.csv"))
        .with_context(|| format!("reading {}", dir.join("index.csv").display()))?;
    let mut rows = String::from(
        "bearing,n_snapshots,life_s,first_alert_s,lead_time_s,alerts_first_half,max_level\n",
    );
    let mut trace = String::from(
        "bearing,snapshot,seconds_since_start,health,level,rul_s,rul_low_s,rul_high_s\n",
    );
    for b in parse_index(&index)? {
        let bytes = std::fs::read(dir.join(&b.file_h))
            .with_context(|| format!("{}: reading {}", b.name, b.file_h))?;
        if bytes.len() != b.n_snapshots * b.snapshot_len * 4 {
            bail!(
                "{}: {} holds {} bytes, the index says {} snapshots of {}",
                b.name,
                b.file_h,
                bytes.len(),
                b.n_snapshots,
                b.snapshot_len
            );
        }
        let samples: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let times_text = std::fs::read_to_string(dir.join(&b.times))
            .with_context(|| format!("{}: reading {}", b.name, b.times))?;
        let times: Vec<f64> = times_text
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.split(',')
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .with_context(|| format!("{}: bad times row {l:?}", b.name))
            })
            .collect::<Result<_>>()?;
        if times.len() != b.n_snapshots {
            bail!(
                "{}: {} times for {} snapshots",
                b.name,
                times.len(),
                b.n_snapshots
            );
        }
        let steps = run_bearing(&b, &samples, &times, opts)?;
        let mut life = Life {
            bearing: b.name.clone(),
            life_s: b.life_s,
            estimates: Vec::with_capacity(b.n_snapshots),
        };
        let (mut first_alert, mut first_half_alerts, mut max_level) = (None, 0, Level::Normal);
        for (k, (s, &t)) in steps.iter().zip(&times).enumerate() {
            let rul = s.health.and_then(|h| h.rul_s);
            life.estimates.push((t, rul));
            let level = s.level.unwrap_or(Level::Normal);
            if s.raised {
                first_alert.get_or_insert(t);
                if t < 0.5 * b.life_s {
                    first_half_alerts += 1;
                }
            }
            max_level = max_level.max(level);
            let fmt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.0}"));
            let (r, lo, hi) = s
                .health
                .map_or((None, None, None), |h| (h.rul_s, h.rul_low_s, h.rul_high_s));
            writeln!(
                trace,
                "{},{k},{t:.1},{:.4},{},{},{},{}",
                b.name,
                s.health.map_or(0.0, |h| h.indicator),
                level_name(level),
                fmt(r),
                fmt(lo),
                fmt(hi)
            )
            .expect("writing to a String");
        }
        let (alert, lead) = first_alert.map_or((String::new(), String::new()), |a| {
            (format!("{a:.0}"), format!("{:.0}", b.life_s - a))
        });
        writeln!(
            rows,
            "{},{},{:.0},{alert},{lead},{first_half_alerts},{}",
            b.name,
            b.n_snapshots,
            b.life_s,
            level_name(max_level)
        )
        .expect("writing to a String");
        lives.push(life);
    }
    Ok((rows, trace, lives))
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Normal => "normal",
        Level::Warning => "warning",
        Level::Critical => "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phm_accuracy_is_asymmetric_as_the_challenge_defines_it() {
        assert_eq!(phm_accuracy(100.0, 100.0), 1.0);
        // 5 % late and 20 % early both score one half.
        assert!((phm_accuracy(100.0, 105.0) - 0.5).abs() < 1e-12);
        assert!((phm_accuracy(100.0, 80.0) - 0.5).abs() < 1e-12);
        assert!(phm_accuracy(100.0, 120.0) < phm_accuracy(100.0, 80.0));
    }

    #[test]
    fn the_naive_estimate_is_left_one_bearing_out() {
        let life = |name: &str, life_s: f64| Life {
            bearing: name.into(),
            life_s,
            estimates: (0..=100)
                .map(|k| (k as f64 * life_s / 100.0, None))
                .collect(),
        };
        // Two bearings of equal life: the other's life is exact, so naive is perfect.
        let (ours, naive, estimated, n) = phm_scores(&[life("a", 1000.0), life("b", 1000.0)]);
        assert_eq!((estimated, n), (0, 10));
        assert!(
            (naive - 1.0).abs() < 1e-9 && (ours - 1.0).abs() < 1e-9,
            "{naive}"
        );
        let (_, naive, _, _) = phm_scores(&[life("a", 1000.0), life("b", 3000.0)]);
        assert!(naive < 0.2, "{naive}");
    }

    #[test]
    fn a_bearing_whose_vibration_grows_is_alerted_before_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let (len, n) = (2560usize, 300usize);
        let mut bytes = Vec::new();
        let mut times =
            String::from("snapshot,seconds_since_start,seconds_to_end,original_snapshot\n");
        let mut state = 7u64;
        for k in 0..n {
            let t = k as f64 * 30.0;
            // Healthy for 6000 s, then growing twentyfold by the end (8970 s): past the failure
            // level (ten times) for the alert engine's three windows before the end.
            let gain = if t < 6000.0 {
                1.0
            } else {
                (f64::ln(20.0) * (t - 6000.0) / 2970.0).exp()
            };
            for _ in 0..len {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                let u = (state >> 33) as f64 / (1u64 << 31) as f64 - 0.5;
                bytes.extend(((u * 0.8 * gain) as f32).to_le_bytes());
            }
            times += &format!("{k},{t},{},{}\n", 8970.0 - t, k + 1);
        }
        std::fs::write(dir.path().join("B_h.f32"), bytes).unwrap();
        std::fs::write(dir.path().join("B_times.csv"), times).unwrap();
        std::fs::write(
            dir.path().join("index.csv"),
            "bearing,condition,rpm,load_n,sample_rate_hz,snapshot_len,n_snapshots,interval_s,\
             life_s,bpfi_order,bpfo_order,bsf_order,ftf_order,file_h,file_v,times\n\
             B,1,1800,4000,25600,2560,300,30,8970,7.39,5.61,3.59,0.43,B_h.f32,B_v.f32,B_times.csv\n",
        )
        .unwrap();
        let (rows, trace) = evaluate(
            dir.path(),
            &RtfOptions::without_model(HealthConfig::default()),
        )
        .unwrap();
        let row: Vec<&str> = rows.lines().nth(1).unwrap().split(',').collect();
        assert_eq!(row[0], "B");
        let first_alert: f64 = row[3].parse().expect("alerted");
        assert!(first_alert > 6000.0 && first_alert < 8970.0, "{rows}");
        assert_eq!(row[5], "0", "no alert in the first half");
        assert_eq!(row[6], "critical");
        assert_eq!(trace.lines().count(), 301);
        assert!(trace.starts_with(
            "bearing,snapshot,seconds_since_start,health,level,rul_s,rul_low_s,rul_high_s\n"
        ));
        // Remaining-life estimates appear after onset.
        assert!(trace.lines().any(|l| !l.ends_with(",,,")), "{trace}");
    }
}
