//! Envelope-detector evaluation on labelled recordings.
//!
//! A recording folder holds `index.csv` and one file per recording channel of raw
//! little-endian `f32` samples in g. The index has (at least) the columns
//! `file,label,rpm,sample_rate_hz,n_samples,channel,bpfi_order,bpfo_order,bsf_order,ftf_order`
//! (`fault_inches` is read when present); the fields are plain, with no quoting. Every file name
//! comes from the index and must be a bare name inside the folder.
//!
//! Each recording is cut into non-overlapping windows of the largest power of two not above
//! one second of samples (8192 at 12 kHz, 16384 at 20 kHz; a trailing partial window is
//! dropped), each window goes through [`FeatureExtractor`] with `shaft_hz = rpm / 60` and the
//! index's orders, and the envelope peak heights (dB over background) are averaged over the
//! windows. The *labelled* frequency is BPFI for `inner`, BPFO for `outer` and the larger of
//! BSF and 2 × BSF for `ball`; other labels (`normal`) have none and are summarised at every
//! frequency. A recording's labelled frequency is *strongest* when its dB beats the other two
//! fault families' (BPFO, BPFI, BSF/2 × BSF; the cage frequency is not compared).
//!
//! [`envelope_table`] does the reading; [`parse_index`], [`evaluate_recording`],
//! [`summarise`] and [`format_table`] are pure.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use thiserror::Error;

use edgewatch_agent::analyze::features::{
    EnvelopePeaks, FaultOrders, FeatureConfig, FeatureError, FeatureExtractor, MIN_WINDOW_LEN,
    MachineContext,
};

/// Why an evaluation could not run. Not recoverable without fixing the data or the config.
#[derive(Debug, Error)]
pub enum EvalError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `index.csv` is malformed; `line` counts from 1 (the header).
    #[error("index.csv line {line}: {reason}")]
    Index {
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A recording does not match its index row, or is shorter than one window.
    #[error("{file}: {reason}")]
    Recording {
        /// The file name from the index.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The extractor refused the configuration or a window.
    #[error("{file}: {source}")]
    Features {
        /// The file name from the index.
        file: String,
        /// The extractor's error.
        source: FeatureError,
    },
}

/// One row of `index.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    /// File name inside the folder.
    pub file: String,
    /// Class label (`inner`, `outer`, `ball`, `normal`, ...).
    pub label: String,
    /// Seeded fault diameter, inches, when the index has it.
    pub fault_inches: Option<f64>,
    /// Shaft speed, rpm.
    pub rpm: f64,
    /// Sample rate, Hz.
    pub sample_rate_hz: f64,
    /// Samples in the file.
    pub n_samples: usize,
    /// Sensor channel name.
    pub channel: String,
    /// The monitored bearing's orders.
    pub orders: FaultOrders,
}

/// Parses `index.csv` text, finding columns by their header names.
pub fn parse_index(text: &str) -> Result<Vec<IndexRow>, EvalError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let (_, header) = lines.next().ok_or(EvalError::Index {
        line: 1,
        reason: "empty file".into(),
    })?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let column = |name: &str| names.iter().position(|n| *n == name);
    let required = |name: &str| {
        column(name).ok_or_else(|| EvalError::Index {
            line: 1,
            reason: format!("missing column `{name}`"),
        })
    };
    let file = required("file")?;
    let label = required("label")?;
    let rpm = required("rpm")?;
    let sample_rate = required("sample_rate_hz")?;
    let n_samples = required("n_samples")?;
    let channel = required("channel")?;
    let bpfi = required("bpfi_order")?;
    let bpfo = required("bpfo_order")?;
    let bsf = required("bsf_order")?;
    let ftf = required("ftf_order")?;
    let fault_inches = column("fault_inches");

    let mut rows = Vec::new();
    for (line, text) in lines {
        if text.trim().is_empty() {
            continue;
        }
        let index_error = |reason: String| EvalError::Index { line, reason };
        if text.contains('"') {
            return Err(index_error("quoted fields are not supported".into()));
        }
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        if fields.len() != names.len() {
            return Err(index_error(format!(
                "{} fields, the header has {}",
                fields.len(),
                names.len()
            )));
        }
        let number = |i: usize| {
            fields[i].parse::<f64>().map_err(|_| {
                index_error(format!("`{}`: `{}` is not a number", names[i], fields[i]))
            })
        };
        let count = fields[n_samples].parse::<usize>().map_err(|_| {
            index_error(format!(
                "`n_samples`: `{}` is not a count",
                fields[n_samples]
            ))
        })?;
        rows.push(IndexRow {
            file: fields[file].to_string(),
            label: fields[label].to_string(),
            fault_inches: fault_inches.and_then(|i| fields[i].parse().ok()),
            rpm: number(rpm)?,
            sample_rate_hz: number(sample_rate)?,
            n_samples: count,
            channel: fields[channel].to_string(),
            orders: FaultOrders {
                bpfo: number(bpfo)?,
                bpfi: number(bpfi)?,
                bsf: number(bsf)?,
                ftf: number(ftf)?,
            },
        });
    }
    Ok(rows)
}

/// The evaluation window for a sample rate: the largest power of two not above one second of
/// samples (so between 0.5 and 1 s), and at least [`MIN_WINDOW_LEN`].
pub fn window_len_for(sample_rate_hz: f64) -> usize {
    let one_second = sample_rate_hz.max(0.0) as usize;
    let len = if one_second == 0 {
        MIN_WINDOW_LEN
    } else {
        1 << one_second.ilog2()
    };
    len.max(MIN_WINDOW_LEN)
}

/// Envelope peak heights at the fault frequencies, dB over background.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultDb {
    /// At BPFO.
    pub bpfo: f64,
    /// At BPFI.
    pub bpfi: f64,
    /// At BSF.
    pub bsf: f64,
    /// At 2 × BSF.
    pub bsf_2x: f64,
    /// At FTF.
    pub ftf: f64,
}

impl FaultDb {
    fn of(peaks: &EnvelopePeaks) -> Self {
        Self {
            bpfo: peaks.bpfo_db,
            bpfi: peaks.bpfi_db,
            bsf: peaks.bsf_db,
            bsf_2x: peaks.bsf_2x_db,
            ftf: peaks.ftf_db,
        }
    }

    fn add(&mut self, other: &Self, weight: f64) {
        self.bpfo += other.bpfo * weight;
        self.bpfi += other.bpfi * weight;
        self.bsf += other.bsf * weight;
        self.bsf_2x += other.bsf_2x * weight;
        self.ftf += other.ftf * weight;
    }

    fn ball(&self) -> f64 {
        self.bsf.max(self.bsf_2x)
    }

    /// `(labelled dB, whether it beats the other families)` for a fault label.
    fn labelled(&self, label: &str) -> Option<(f64, bool)> {
        let (own, others) = match label {
            "inner" => (self.bpfi, self.bpfo.max(self.ball())),
            "outer" => (self.bpfo, self.bpfi.max(self.ball())),
            "ball" => (self.ball(), self.bpfo.max(self.bpfi)),
            _ => return None,
        };
        Some((own, own > others))
    }
}

/// One recording's result.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingRow {
    /// File name from the index.
    pub file: String,
    /// Class label.
    pub label: String,
    /// Channel name.
    pub channel: String,
    /// Seeded fault diameter, inches, when known.
    pub fault_inches: Option<f64>,
    /// Windows evaluated.
    pub windows: usize,
    /// Mean over the windows of the peak heights, dB.
    pub mean_db: FaultDb,
    /// Mean over the windows of the demodulated band, `[low, high]` Hz.
    pub mean_band_hz: [f64; 2],
    /// The labelled frequency's mean dB, for fault labels.
    pub labelled_db: Option<f64>,
    /// Whether the labelled frequency beats the other families, for fault labels.
    pub labelled_strongest: Option<bool>,
}

/// Runs the extractor over `samples` (the whole recording described by `row`).
pub fn evaluate_recording(
    samples_g: &[f32],
    row: &IndexRow,
    extractor: &mut FeatureExtractor,
) -> Result<RecordingRow, EvalError> {
    let features_error = |source| EvalError::Features {
        file: row.file.clone(),
        source,
    };
    let window = extractor.window_len();
    let windows = samples_g.len() / window;
    if windows == 0 {
        return Err(EvalError::Recording {
            file: row.file.clone(),
            reason: format!(
                "{} samples, shorter than one window of {window}",
                samples_g.len()
            ),
        });
    }
    let ctx = MachineContext {
        shaft_hz: row.rpm / 60.0,
        orders: row.orders,
    };
    let weight = 1.0 / windows as f64;
    let mut mean_db = FaultDb::default();
    let mut mean_band_hz = [0.0; 2];
    for chunk in samples_g.chunks_exact(window) {
        let features = extractor.extract(chunk, &ctx).map_err(features_error)?;
        mean_db.add(&FaultDb::of(&features.envelope), weight);
        for (mean, edge) in mean_band_hz.iter_mut().zip(features.envelope.band_hz) {
            *mean += edge * weight;
        }
    }
    let labelled = mean_db.labelled(&row.label);
    Ok(RecordingRow {
        file: row.file.clone(),
        label: row.label.clone(),
        channel: row.channel.clone(),
        fault_inches: row.fault_inches,
        windows,
        mean_db,
        mean_band_hz,
        labelled_db: labelled.map(|(db, _)| db),
        labelled_strongest: labelled.map(|(_, strongest)| strongest),
    })
}

/// Mean, minimum and maximum of a set of dB values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Mean.
    pub mean: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Stats {
    fn of(values: impl Iterator<Item = f64>) -> Option<Self> {
        let (mut n, mut sum, mut min, mut max) = (0usize, 0.0, f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            n += 1;
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
        (n > 0).then(|| Self {
            mean: sum / n as f64,
            min,
            max,
        })
    }
}

/// Summary of one class (label) on one channel over its recordings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassSummary {
    /// Class label.
    pub label: String,
    /// Channel name.
    pub channel: String,
    /// Recordings summarised.
    pub recordings: usize,
    /// Labelled-frequency dB over the recordings (fault labels only).
    pub labelled: Option<Stats>,
    /// Recordings whose labelled frequency was the strongest family (fault labels only).
    pub strongest: Option<usize>,
    /// Each frequency's recording means, summarised.
    pub bpfo: Stats,
    /// At BPFI.
    pub bpfi: Stats,
    /// At BSF.
    pub bsf: Stats,
    /// At 2 × BSF.
    pub bsf_2x: Stats,
    /// At FTF.
    pub ftf: Stats,
}

/// Groups recordings by (label, channel), sorted by label then channel.
pub fn summarise(recordings: &[RecordingRow]) -> Vec<ClassSummary> {
    let mut groups: BTreeMap<(&str, &str), Vec<&RecordingRow>> = BTreeMap::new();
    for row in recordings {
        groups
            .entry((row.label.as_str(), row.channel.as_str()))
            .or_default()
            .push(row);
    }
    groups
        .into_iter()
        .map(|((label, channel), rows)| {
            let stats = |f: fn(&FaultDb) -> f64| {
                Stats::of(rows.iter().map(|r| f(&r.mean_db))).expect("groups are never empty")
            };
            ClassSummary {
                label: label.to_string(),
                channel: channel.to_string(),
                recordings: rows.len(),
                labelled: Stats::of(rows.iter().filter_map(|r| r.labelled_db)),
                strongest: rows
                    .iter()
                    .any(|r| r.labelled_strongest.is_some())
                    .then(|| {
                        rows.iter()
                            .filter(|r| r.labelled_strongest == Some(true))
                            .count()
                    }),
                bpfo: stats(|d| d.bpfo),
                bpfi: stats(|d| d.bpfi),
                bsf: stats(|d| d.bsf),
                bsf_2x: stats(|d| d.bsf_2x),
                ftf: stats(|d| d.ftf),
            }
        })
        .collect()
}

/// Every recording's result and the per-class summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvelopeTable {
    /// One row per index row, in index order.
    pub recordings: Vec<RecordingRow>,
    /// One row per (label, channel).
    pub classes: Vec<ClassSummary>,
}

/// Reads `data_dir/index.csv` and every recording it lists, and evaluates them with `cfg`.
pub fn envelope_table(data_dir: &Path, cfg: &FeatureConfig) -> Result<EnvelopeTable, EvalError> {
    let index_path = data_dir.join("index.csv");
    let text = std::fs::read_to_string(&index_path).map_err(|source| EvalError::Io {
        path: index_path,
        source,
    })?;
    let rows = parse_index(&text)?;
    // One extractor per sample rate, reused across recordings.
    let mut extractors: Vec<(f64, FeatureExtractor)> = Vec::new();
    let mut recordings = Vec::with_capacity(rows.len());
    for row in &rows {
        let recording_error = |reason: String| EvalError::Recording {
            file: row.file.clone(),
            reason,
        };
        let mut components = Path::new(&row.file).components();
        if !matches!(
            (components.next(), components.next()),
            (Some(Component::Normal(_)), None)
        ) {
            return Err(recording_error("not a plain file name".into()));
        }
        let path = data_dir.join(&row.file);
        let bytes = std::fs::read(&path).map_err(|source| EvalError::Io { path, source })?;
        if !bytes.len().is_multiple_of(4) {
            return Err(recording_error(format!(
                "{} bytes is not a whole number of f32 samples",
                bytes.len()
            )));
        }
        let samples: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if samples.len() != row.n_samples {
            return Err(recording_error(format!(
                "{} samples, the index says {}",
                samples.len(),
                row.n_samples
            )));
        }
        let position = match extractors
            .iter()
            .position(|(fs, _)| *fs == row.sample_rate_hz)
        {
            Some(i) => i,
            None => {
                let extractor = FeatureExtractor::new(
                    window_len_for(row.sample_rate_hz),
                    row.sample_rate_hz,
                    cfg,
                )
                .map_err(|source| EvalError::Features {
                    file: row.file.clone(),
                    source,
                })?;
                extractors.push((row.sample_rate_hz, extractor));
                extractors.len() - 1
            }
        };
        recordings.push(evaluate_recording(
            &samples,
            row,
            &mut extractors[position].1,
        )?);
    }
    let classes = summarise(&recordings);
    Ok(EnvelopeTable {
        recordings,
        classes,
    })
}

/// The per-class summary as a Markdown table: labelled-frequency dB (mean, min, max), how many
/// recordings had the labelled family strongest, and the mean dB at each frequency.
pub fn format_table(table: &EnvelopeTable) -> String {
    let mut out = String::from(
        "| class | channel | n | labelled dB mean | min | max | strongest | BPFO | BPFI | BSF | 2×BSF | FTF |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let db = |v: f64| format!("{v:+.1}");
    for class in &table.classes {
        let (mean, min, max) = match class.labelled {
            Some(s) => (db(s.mean), db(s.min), db(s.max)),
            None => ("–".into(), "–".into(), "–".into()),
        };
        let strongest = class
            .strongest
            .map_or_else(|| "–".to_string(), |s| format!("{s}/{}", class.recordings));
        out.push_str(&format!(
            "| {} | {} | {} | {mean} | {min} | {max} | {strongest} | {} | {} | {} | {} | {} |\n",
            class.label,
            class.channel,
            class.recordings,
            db(class.bpfo.mean),
            db(class.bpfi.mean),
            db(class.bsf.mean),
            db(class.bsf_2x.mean),
            db(class.ftf.mean),
        ));
    }
    out
}

/// Every recording as a Markdown table (file, label, channel, windows, band, dB per
/// frequency).
pub fn format_recordings(table: &EnvelopeTable) -> String {
    let mut out = String::from(
        "| file | class | channel | windows | band Hz | BPFO | BPFI | BSF | 2×BSF | FTF | strongest |\n\
         |---|---|---|---:|---|---:|---:|---:|---:|---:|---|\n",
    );
    for r in &table.recordings {
        let d = &r.mean_db;
        let strongest = match r.labelled_strongest {
            Some(true) => "yes",
            Some(false) => "no",
            None => "–",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0}–{:.0} | {:+.1} | {:+.1} | {:+.1} | {:+.1} | {:+.1} | {strongest} |\n",
            r.file,
            r.label,
            r.channel,
            r.windows,
            r.mean_band_hz[0],
            r.mean_band_hz[1],
            d.bpfo,
            d.bpfi,
            d.bsf,
            d.bsf_2x,
            d.ftf,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgewatch_agent::analyze::features::test_signals::{Impacts, mix, noise};

    const HEADER: &str = "file,label,fault_inches,load_hp,rpm,sample_rate_hz,n_samples,channel,bpfi_order,bpfo_order,bsf_order,ftf_order";

    #[test]
    fn the_index_is_read_by_column_name() {
        let text = "channel,rpm,file,label,sample_rate_hz,n_samples,bpfo_order,bpfi_order,bsf_order,ftf_order\r\n\
                    FE,1797,a.f32,inner,12000,120000,3.053,4.9469,3.9874,0.3817\r\n\
                    \r\n";
        let rows = parse_index(text).unwrap();
        assert_eq!(
            rows,
            vec![IndexRow {
                file: "a.f32".into(),
                label: "inner".into(),
                fault_inches: None,
                rpm: 1797.0,
                sample_rate_hz: 12_000.0,
                n_samples: 120_000,
                channel: "FE".into(),
                orders: FaultOrders {
                    bpfo: 3.053,
                    bpfi: 4.9469,
                    bsf: 3.9874,
                    ftf: 0.3817
                },
            }]
        );
    }

    #[test]
    fn index_errors_name_the_line_and_the_column() {
        let error = |text: &str| parse_index(text).unwrap_err().to_string();
        assert_eq!(
            error("file,label\nx,y"),
            "index.csv line 1: missing column `rpm`"
        );
        let bad_rpm = format!("{HEADER}\na.f32,ball,0.007,0,fast,12000,10,FE,1,2,3,0.4");
        assert_eq!(
            error(&bad_rpm),
            "index.csv line 2: `rpm`: `fast` is not a number"
        );
        let short = format!("{HEADER}\na.f32,ball,0.007");
        assert!(error(&short).starts_with("index.csv line 2: 3 fields"));
    }

    #[test]
    fn evaluation_windows_are_the_largest_power_of_two_within_a_second() {
        assert_eq!(window_len_for(12_000.0), 8192);
        assert_eq!(window_len_for(20_000.0), 16_384);
        assert_eq!(window_len_for(25_600.0), 16_384);
        assert_eq!(window_len_for(48_800.0), 32_768);
        assert_eq!(window_len_for(100.0), MIN_WINDOW_LEN);
    }

    fn write_recording(dir: &Path, name: &str, samples: &[f32]) {
        let bytes: Vec<u8> = samples.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    /// Two 12 kHz recordings of a 1797 rpm machine, 2 s each: an outer-race defect and a
    /// healthy (noise-only) bearing.
    fn synthetic_folder(index_rows: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let (fs, len) = (12_000.0, 24_000);
        let bpfo_hz = 1797.0 / 60.0 * 3.053;
        let impacts = Impacts {
            rate_hz: bpfo_hz,
            jitter: 0.01,
            resonance_hz: 3500.0,
            damping: 0.05,
            amplitude_g: 1.0,
        };
        let outer = mix(&[&impacts.render(len, fs, 1), &noise(len, 0.2, 2)]);
        write_recording(dir.path(), "outer.f32", &outer);
        write_recording(dir.path(), "healthy.f32", &mix(&[&noise(len, 0.2, 3)]));
        let mut index = format!("{HEADER}\n");
        for row in index_rows {
            index.push_str(row);
            index.push('\n');
        }
        std::fs::write(dir.path().join("index.csv"), index).unwrap();
        dir
    }

    const OUTER: &str = "outer.f32,outer,0.007,0,1797,12000,24000,FE,4.9469,3.053,3.9874,0.3817";
    const HEALTHY: &str = "healthy.f32,normal,0,0,1797,12000,24000,FE,4.9469,3.053,3.9874,0.3817";

    #[test]
    fn an_outer_race_recording_reads_high_at_bpfo_and_a_healthy_one_has_no_labelled_line() {
        let dir = synthetic_folder(&[OUTER, HEALTHY]);
        let table = envelope_table(dir.path(), &FeatureConfig::default()).unwrap();
        let [outer, healthy] = &table.recordings[..] else {
            panic!("{table:?}")
        };
        assert_eq!(outer.windows, 2);
        let outer_db = outer.labelled_db.unwrap();
        assert!(outer_db > 15.0, "outer race at BPFO: {outer_db:.1} dB");
        assert_eq!(outer.labelled_strongest, Some(true));
        assert!(outer.mean_band_hz[0] <= 3500.0 && 3500.0 <= outer.mean_band_hz[1]);
        assert_eq!(
            (healthy.labelled_db, healthy.labelled_strongest),
            (None, None)
        );
        assert!(
            healthy.mean_db.bpfo < 10.0,
            "healthy at BPFO: {:.1} dB",
            healthy.mean_db.bpfo
        );

        let labels: Vec<_> = table.classes.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["normal", "outer"]);
        let outer_class = &table.classes[1];
        assert_eq!(
            (outer_class.recordings, outer_class.strongest),
            (1, Some(1))
        );
        assert_eq!(outer_class.labelled.unwrap().mean, outer_db);
        let text = format_table(&table);
        assert!(
            text.contains(&format!("| outer | FE | 1 | {outer_db:+.1} |")),
            "{text}"
        );
        assert!(format_recordings(&table).contains("| outer.f32 | outer | FE | 2 |"));
    }

    #[test]
    fn a_recording_that_does_not_match_its_index_row_is_an_error_naming_it() {
        let wrong_length = OUTER.replace("24000,FE", "30000,FE");
        let dir = synthetic_folder(&[&wrong_length]);
        let error = envelope_table(dir.path(), &FeatureConfig::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "outer.f32: 24000 samples, the index says 30000"
        );
    }

    #[test]
    fn index_file_names_must_stay_inside_the_folder() {
        let escaping = OUTER.replace("outer.f32", "../outer.f32");
        let dir = synthetic_folder(&[&escaping]);
        let error = envelope_table(dir.path(), &FeatureConfig::default()).unwrap_err();
        assert_eq!(error.to_string(), "../outer.f32: not a plain file name");
    }

    #[test]
    fn a_missing_folder_reports_the_index_path() {
        let dir = tempfile::tempdir().unwrap();
        let error = envelope_table(&dir.path().join("nowhere"), &FeatureConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("nowhere") && error.contains("index.csv"),
            "{error}"
        );
    }
}
