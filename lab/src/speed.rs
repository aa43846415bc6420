//! `lab speed`: the agent's shaft-speed estimate on recordings.
//!
//! Each recording of a folder (`index.csv` and raw f32 files, see [`crate::recordings`]) is
//! quantised to int16 blocks as a sensor sends it (full scale just above its peak), cut into
//! windows by the agent's [`WindowAssembler`] with the given `[window]`, and each window goes
//! through the agent's [`FeatureExtractor`] with the index's bearing orders and a configured
//! speed of the index's `rpm` times `1 + nominal_offset_pct / 100` — a deliberately wrong
//! nominal shows whether the search recovers the true speed. The index's `rpm` is taken as the
//! truth.
//!
//! Per recording: the index rpm, the nominal given to the extractor, the windows and the share
//! of them whose speed was found in the spectrum (`Features::speed_estimated`), and over those
//! the median estimate and the median and largest absolute error against the index rpm, in %.
//! [`speed_dir`] reads; [`speed_recording`], [`format_table`] and [`format_summary`] are pure.

use crate::recordings::{IndexRow, parse_index};
use anyhow::{Context, Result, bail};
use edgewatch_agent::analyze::features::{FeatureConfig, FeatureExtractor, MachineContext};
use edgewatch_agent::assemble::window::{WindowAssembler, WindowConfig};
use edgewatch_protocol::{VibrationBlock, heapless};
use std::path::{Component, Path};

/// Samples per block, as a sensor would send them.
const BLOCK: usize = 512;

/// The speed estimate on one recording.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeedRow {
    /// File name.
    pub file: String,
    /// Channel from the index.
    pub channel: String,
    /// Speed from the index, rpm (the truth).
    pub index_rpm: f64,
    /// Speed configured for the extractor, rpm.
    pub nominal_rpm: f64,
    /// Samples per window (0 when the recording is shorter than one).
    pub window_len: usize,
    /// Windows analysed.
    pub windows: usize,
    /// Estimated speeds of the windows whose speed was found in the spectrum, rpm, in order.
    pub estimates_rpm: Vec<f64>,
}

impl SpeedRow {
    /// Share of the windows whose speed was found (0 without windows).
    pub fn confident_share(&self) -> f64 {
        if self.windows == 0 {
            0.0
        } else {
            self.estimates_rpm.len() as f64 / self.windows as f64
        }
    }

    /// Median of the estimates, rpm.
    pub fn median_rpm(&self) -> Option<f64> {
        median(self.estimates_rpm.clone())
    }

    /// Absolute errors of the estimates against the index rpm, %.
    fn errors_pct(&self) -> Vec<f64> {
        self.estimates_rpm
            .iter()
            .map(|rpm| (rpm / self.index_rpm - 1.0).abs() * 100.0)
            .collect()
    }

    /// Median absolute error of the estimates, %.
    pub fn median_abs_error_pct(&self) -> Option<f64> {
        median(self.errors_pct())
    }

    /// Largest absolute error of the estimates, %.
    pub fn max_abs_error_pct(&self) -> Option<f64> {
        self.errors_pct().into_iter().reduce(f64::max)
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    })
}

/// Runs one recording (samples in g) through windowing and the extractor, configured at the
/// index's speed times `1 + nominal_offset_pct / 100`.
pub fn speed_recording(
    row: &IndexRow,
    samples: &[f32],
    nominal_offset_pct: f64,
    window: WindowConfig,
    features: &FeatureConfig,
) -> Result<SpeedRow> {
    let nominal_rpm = row.rpm * (1.0 + nominal_offset_pct / 100.0);
    let ctx = MachineContext {
        shaft_hz: nominal_rpm / 60.0,
        orders: row.orders,
    };
    let mut windower = WindowAssembler::new(1, window).with_shaft_hz(Some(ctx.shaft_hz));
    let mut extractor: Option<FeatureExtractor> = None;
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    let scale = (peak * 1.05).max(1e-6) / f32::from(i16::MAX);
    let mut result = SpeedRow {
        file: row.file.clone(),
        channel: row.channel.clone(),
        index_rpm: row.rpm,
        nominal_rpm,
        window_len: 0,
        windows: 0,
        estimates_rpm: Vec::new(),
    };
    let block_us = |k: usize| (k as f64 * BLOCK as f64 * 1e6 / row.sample_rate_hz).round() as u64;
    let mut windows = Vec::new();
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
        windower.push(block_us(k), &block, &mut windows);
        for w in windows.drain(..) {
            let extractor = match &mut extractor {
                Some(e) => e,
                None => extractor.insert(
                    FeatureExtractor::new(w.samples.len(), row.sample_rate_hz, features)
                        .with_context(|| {
                            format!("{}: sample rate {} Hz", row.file, row.sample_rate_hz)
                        })?,
                ),
            };
            let f = extractor
                .extract(&w.samples, &ctx)
                .with_context(|| format!("{}: window at {} µs", row.file, w.start_us))?;
            result.window_len = w.samples.len();
            result.windows += 1;
            if f.speed_estimated {
                result.estimates_rpm.push(f.shaft_hz * 60.0);
            }
        }
    }
    Ok(result)
}

/// Reads `dir/index.csv` and runs every recording it lists through [`speed_recording`].
pub fn speed_dir(
    dir: &Path,
    nominal_offset_pct: f64,
    window: WindowConfig,
    features: &FeatureConfig,
) -> Result<Vec<SpeedRow>> {
    let index_path = dir.join("index.csv");
    let text = std::fs::read_to_string(&index_path)
        .with_context(|| format!("reading {}", index_path.display()))?;
    let rows = parse_index(&text).with_context(|| index_path.display().to_string())?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut components = Path::new(&row.file).components();
        if !matches!(
            (components.next(), components.next()),
            (Some(Component::Normal(_)), None)
        ) {
            bail!("{}: not a plain file name", row.file);
        }
        let path = dir.join(&row.file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        if !bytes.len().is_multiple_of(4) {
            bail!("{}: not a whole number of f32 samples", path.display());
        }
        let samples: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(speed_recording(
            &row,
            &samples,
            nominal_offset_pct,
            window,
            features,
        )?);
    }
    Ok(out)
}

fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{v:.decimals$}"))
}

/// One row per recording (Markdown): index rpm, nominal, windows, share confident, median
/// estimate, median and largest absolute error.
pub fn format_table(rows: &[SpeedRow]) -> String {
    let mut out = String::from(
        "| file | channel | index rpm | nominal rpm | window | windows | confident | median est. rpm | median abs err % | max abs err % |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {} | {} | {:.0} % | {} | {} | {} |\n",
            r.file,
            r.channel,
            r.index_rpm,
            r.nominal_rpm,
            r.window_len,
            r.windows,
            r.confident_share() * 100.0,
            optional(r.median_rpm(), 1),
            optional(r.median_abs_error_pct(), 2),
            optional(r.max_abs_error_pct(), 2),
        ));
    }
    out
}

/// The whole folder in a few lines: windows, share confident, share of the confident ones
/// within 1 % and 2 % of the index rpm, median and largest absolute error, recordings with no
/// confident window.
pub fn format_summary(rows: &[SpeedRow]) -> String {
    let windows: usize = rows.iter().map(|r| r.windows).sum();
    let errors: Vec<f64> = rows.iter().flat_map(SpeedRow::errors_pct).collect();
    let within = |pct: f64| errors.iter().filter(|&&e| e <= pct).count();
    let share = |n: usize, of: usize| {
        if of == 0 {
            0.0
        } else {
            100.0 * n as f64 / of as f64
        }
    };
    let none = rows.iter().filter(|r| r.estimates_rpm.is_empty()).count();
    format!(
        "recordings: {}, windows: {windows}, confident: {} ({:.1} %)\n\
         of the confident: within 1 %: {:.1} %, within 2 %: {:.1} %, median abs err {} %, max abs err {} %\n\
         recordings without a confident window: {none}\n",
        rows.len(),
        errors.len(),
        share(errors.len(), windows),
        share(within(1.0), errors.len()),
        share(within(2.0), errors.len()),
        optional(median(errors.clone()), 3),
        optional(errors.iter().copied().reduce(f64::max), 2),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgewatch_agent::analyze::features::FaultOrders;
    use edgewatch_agent::analyze::features::test_signals::{mix, noise, tone};

    const HEADER: &str = "file,label,fault_inches,load_hp,rpm,sample_rate_hz,n_samples,channel,bpfi_order,bpfo_order,bsf_order,ftf_order";

    fn row(rpm: f64, n: usize) -> IndexRow {
        IndexRow {
            file: "a.f32".into(),
            label: "normal".into(),
            fault_inches: None,
            rpm,
            sample_rate_hz: 12_000.0,
            n_samples: n,
            channel: "DE".into(),
            orders: FaultOrders {
                bpfo: 3.053,
                bpfi: 4.9469,
                bsf: 3.9874,
                ftf: 0.3817,
            },
        }
    }

    /// A shaft at `rpm` (1x, 2x, 3x) in noise, 12 kHz.
    fn machine(rpm: f64, n: usize) -> Vec<f32> {
        let hz = rpm / 60.0;
        mix(&[
            &tone(n, 12_000.0, hz, 0.05, 0.1),
            &tone(n, 12_000.0, 2.0 * hz, 0.02, 0.7),
            &tone(n, 12_000.0, 3.0 * hz, 0.01, 1.9),
            &noise(n, 0.05, 3),
        ])
    }

    #[test]
    fn the_index_speed_is_recovered_even_from_a_wrong_nominal() {
        let n = 60_000;
        let samples = machine(1772.0, n);
        for offset in [0.0, 7.0, -7.0] {
            let r = speed_recording(
                &row(1772.0, n),
                &samples,
                offset,
                WindowConfig::default(),
                &FeatureConfig::default(),
            )
            .unwrap();
            assert!(r.windows >= 4, "{r:?}");
            assert_eq!(r.confident_share(), 1.0, "{r:?}");
            assert!(r.max_abs_error_pct().unwrap() < 0.5, "{offset} %: {r:?}");
            assert!((r.nominal_rpm - 1772.0 * (1.0 + offset / 100.0)).abs() < 1e-9);
        }
        // Searching ±10 % around +15 % misses it: nothing confident, and the table says so.
        let r = speed_recording(
            &row(1772.0, n),
            &samples,
            15.0,
            WindowConfig::default(),
            &FeatureConfig::default(),
        )
        .unwrap();
        assert_eq!(r.confident_share(), 0.0, "{r:?}");
        let table = format_table(std::slice::from_ref(&r));
        assert!(
            table.contains("| a.f32 | DE | 1772 | 2038 |") && table.contains("| 0 % | – | – | – |"),
            "{table}"
        );
        let summary = format_summary(&[r]);
        assert!(
            summary.contains("recordings without a confident window: 1"),
            "{summary}"
        );
    }

    #[test]
    fn a_folder_is_read_through_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let n = 36_000;
        let bytes: Vec<u8> = machine(1797.0, n)
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        std::fs::write(dir.path().join("a.f32"), bytes).unwrap();
        std::fs::write(
            dir.path().join("index.csv"),
            format!("{HEADER}\na.f32,normal,0,0,1797,12000,{n},FE,4.9469,3.053,3.9874,0.3817\n"),
        )
        .unwrap();
        let rows = speed_dir(
            dir.path(),
            0.0,
            WindowConfig::default(),
            &FeatureConfig::default(),
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert!(
            (rows[0].median_rpm().unwrap() - 1797.0).abs() < 2.0,
            "{rows:?}"
        );
        let summary = format_summary(&rows);
        assert!(summary.contains("within 1 %: 100.0 %"), "{summary}");
    }
}
