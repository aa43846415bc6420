//! `lab`: the tools around the gateway agent that never run on a gateway: the demo, evaluation
//! on recordings, training-data export and offline feature replay.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use edgewatch_agent::analyze::model::{Model, ModelSource, Variant};
use edgewatch_agent::config::Config;
use edgewatch_lab::demo;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "lab",
    version,
    about = "Edgewatch lab tools: demo, evaluation, training data, replay, model packages"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Simulated sensors and the whole pipeline in one process, with a live view.
    Demo {
        /// Built-in firmware-sim scenario or a scenario TOML file.
        #[arg(long, default_value = "demo")]
        scenario: String,
        /// Directory for the agent's data (outbox, baselines).
        #[arg(long, default_value = "edgewatch-demo-data")]
        data_dir: PathBuf,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration_s: Option<f64>,
        /// Metrics and health endpoint (empty: off).
        #[arg(long, default_value = "127.0.0.1:9187")]
        metrics_listen: String,
    },
    /// Run recordings (DIR/index.csv and raw f32 files) through windowing, features, model and
    /// alert logic as a newly installed agent (no baseline); write one CSV row per recording.
    Eval {
        /// Folder with `index.csv`.
        #[arg(long)]
        data: PathBuf,
        /// The CSV to write.
        #[arg(long)]
        out: PathBuf,
        /// The model's manifest.json (default: the model built into the agent).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Model variant.
        #[arg(long, value_enum, default_value = "int8")]
        variant: Variant,
        /// Judge without a classifier (baseline-free cold start: thresholds and zones only).
        #[arg(long, conflicts_with_all = ["model"])]
        no_model: bool,
        /// Count the classifier's fault calls without physical backing (the agent's
        /// `[alerts] classifier_needs_backing = false`).
        #[arg(long)]
        unbacked_classifier: bool,
        /// Instead of cold start: treat each channel's recordings as one machine's history (in
        /// index order) and commission its baseline on its first N windows (at least 20, as in
        /// `[baseline] windows`), as an agent that has been watching it would.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(20..))]
        commission_windows: Option<u64>,
        // The windows, as the agent's `[window]`: `--window-s`, `--window-revolutions` or
        // `--window-len` (at most one; none: the agent's default, 1 s, whatever the sample
        // rate, as on a gateway), and `--overlap` (half by default).
        #[command(flatten)]
        window: edgewatch_lab::training::WindowArgs,
    },
    /// Run run-to-failure bearings (the femto-learning layout: index.csv, per-bearing f32
    /// snapshots and times) snapshot by snapshot through the feature code and the health
    /// tracker (onset, remaining life); write one row per bearing and a per-snapshot trace.
    EvalRtf {
        /// Folder with `index.csv`.
        #[arg(long)]
        data: PathBuf,
        /// The per-bearing CSV to write.
        #[arg(long)]
        out: PathBuf,
        /// The per-snapshot trace CSV to write.
        #[arg(long)]
        trace: PathBuf,
        /// A model's manifest.json (default: the model built into the agent).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Which of the model's variants.
        #[arg(long, value_enum, default_value = "int8")]
        variant: Variant,
        /// Run the agent without a classifier.
        #[arg(long)]
        no_model: bool,
        /// `[health] corroborated_onset = true`: two supporting indicators may declare onset.
        #[arg(long)]
        corroborated_onset: bool,
    },
    /// Run recordings (a folder with index.csv and raw f32 files) through the feature code and
    /// print the envelope peak height at each labelled fault frequency, per class.
    EvalFeatures {
        /// Folder with `index.csv`.
        #[arg(long)]
        data: PathBuf,
        /// Also print one row per recording.
        #[arg(long)]
        per_recording: bool,
    },
    /// Run recordings (DIR/index.csv and raw f32 files) through the agent's windowing and
    /// shaft-speed search; print per recording the index rpm, the median estimated rpm, the
    /// largest error and the share of windows whose speed was found.
    Speed {
        /// Folder with `index.csv`.
        #[arg(long)]
        data: PathBuf,
        /// Configure the extractor this many percent off the index's rpm (e.g. 7), to check
        /// that the search recovers the true speed from a wrong nominal.
        #[arg(
            long,
            value_name = "PCT",
            default_value_t = 0.0,
            allow_hyphen_values = true
        )]
        nominal_offset_pct: f64,
        /// Half-width of the speed search, as a fraction (the agent's
        /// `[features] speed_search_ratio`).
        #[arg(long, default_value_t = edgewatch_agent::analyze::features::default_speed_search_ratio())]
        speed_search_ratio: f64,
        /// The windows, as the agent's `[window]` (none: the agent's default).
        #[command(flatten)]
        window: edgewatch_lab::training::WindowArgs,
    },
    /// Write labelled model-input vectors (simulated machines run through the agent's own
    /// windowing and features) as CSV, for training the classifier (see models/).
    ExportFeatures(edgewatch_lab::training::ExportArgs),
    /// Run a recorded serial stream (`firmware-sim run --output file`) through the decoder,
    /// windowing and features offline; write one JSON line of features per window.
    ReplayFeatures {
        /// The TOML configuration (assets, window and feature settings).
        #[arg(long, short)]
        config: PathBuf,
        /// The recorded frames (COBS between 0x00 delimiters).
        #[arg(long)]
        frames: PathBuf,
        /// The JSON-lines file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Model packages: signing keys, building, signing and verifying packages, publishing
    /// them on the models topic and reading the agents' model-status events.
    Model {
        #[command(subcommand)]
        command: edgewatch_lab::model_tool::ModelCmd,
    },
    /// Feedback to the agents: operators' labels and signed commands (recommission, shelve)
    /// on the feedback topic. Keys: `lab model keygen`.
    Feedback {
        #[command(subcommand)]
        command: edgewatch_lab::feedback_tool::FeedbackCmd,
    },
}

/// The model to evaluate with, loaded once (a bad model is refused, with its reason, before any
/// recording is read) and shared: the model keeps no state between windows. `None` with
/// `--no-model`.
fn shared_model(
    no_model: bool,
    manifest: Option<PathBuf>,
    variant: Variant,
) -> Result<Option<edgewatch_agent::analyze::scoring::SharedClassifier<Model>>> {
    if no_model {
        return Ok(None);
    }
    let source = manifest.map_or(ModelSource::Builtin, ModelSource::File);
    let m = Model::open(&source, variant)?;
    eprintln!("model: {} ({}) from {source}", m.version(), m.key());
    Ok(Some(
        edgewatch_agent::analyze::scoring::SharedClassifier::new(m),
    ))
}

/// One scorer's classifier: a handle on the shared model.
fn classifier(
    shared: &Option<edgewatch_agent::analyze::scoring::SharedClassifier<Model>>,
) -> Option<Box<dyn edgewatch_agent::analyze::scoring::Classify>> {
    shared
        .clone()
        .map(|m| Box::new(m) as Box<dyn edgewatch_agent::analyze::scoring::Classify>)
}

fn main() -> Result<ExitCode> {
    edgewatch_common::logging::init();
    let cli = Cli::parse();
    match cli.command {
        Cmd::Model { command } => edgewatch_lab::model_tool::run(command),
        Cmd::Feedback { command } => edgewatch_lab::feedback_tool::run(command),
        Cmd::Eval {
            data,
            out,
            model,
            variant,
            no_model,
            unbacked_classifier,
            commission_windows,
            window,
        } => {
            let alerts = edgewatch_agent::analyze::alert::AlertConfig {
                classifier_needs_backing: !unbacked_classifier,
                ..Default::default()
            };
            let window = window.window()?;
            let mode = match commission_windows {
                None => edgewatch_lab::eval::Mode::ColdStart,
                Some(n) => edgewatch_lab::eval::Mode::Commissioned {
                    windows: usize::try_from(n)?,
                },
            };
            let shared = shared_model(no_model, model, variant)?;
            let factory = || classifier(&shared);
            let rows = edgewatch_lab::eval::evaluate_dir(
                &data,
                mode,
                &factory,
                window,
                &edgewatch_agent::analyze::features::FeatureConfig::default(),
                &alerts,
            )?;
            std::fs::write(&out, edgewatch_lab::eval::to_csv(&rows, mode))?;
            print!("{}", edgewatch_lab::eval::summary(&rows, mode));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Speed {
            data,
            nominal_offset_pct,
            speed_search_ratio,
            window,
        } => {
            let features = edgewatch_agent::analyze::features::FeatureConfig {
                speed_search_ratio,
                ..Default::default()
            };
            if let Err(e) = features.validate() {
                eprintln!("--speed-search-ratio: {e}");
                return Ok(ExitCode::from(2));
            }
            let rows = edgewatch_lab::speed::speed_dir(
                &data,
                nominal_offset_pct,
                window.window()?,
                &features,
            )?;
            print!("{}", edgewatch_lab::speed::format_table(&rows));
            print!("{}", edgewatch_lab::speed::format_summary(&rows));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::ExportFeatures(args) => {
            let windows = edgewatch_lab::training::run_export(&args)?;
            eprintln!("{windows} windows written to {}", args.out.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::ReplayFeatures {
            config,
            frames,
            out,
        } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: invalid configuration\n{e}", config.display());
                    return Ok(ExitCode::from(2));
                }
            };
            let bytes = std::fs::read(&frames)
                .with_context(|| format!("--frames: cannot read {}", frames.display()))?;
            let file = std::fs::File::create(&out)
                .with_context(|| format!("--out: cannot create {}", out.display()))?;
            let s = edgewatch_lab::replay_features::replay_features(
                &cfg,
                &bytes,
                std::io::BufWriter::new(file),
            )?;
            eprintln!(
                "{} frames, {} rejected, {} windows written to {}",
                s.frames,
                s.rejected,
                s.windows,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::EvalRtf {
            data,
            out,
            trace,
            model,
            variant,
            no_model,
            corroborated_onset,
        } => {
            let shared = shared_model(no_model, model, variant)?;
            let factory = || classifier(&shared);
            let (rows, snapshots, lives) = edgewatch_lab::rtf::evaluate_lives(
                &data,
                &edgewatch_lab::rtf::RtfOptions {
                    health: edgewatch_agent::analyze::health::HealthConfig {
                        corroborated_onset,
                        ..Default::default()
                    },
                    alerts: edgewatch_agent::analyze::alert::AlertConfig::default(),
                    classifier: &factory,
                },
            )?;
            let (ours, naive, estimated, cuts) = edgewatch_lab::rtf::phm_scores(&lives);
            eprintln!(
                "PHM 2012 score over {cuts} cuts (at {:?} of each life): tracker {ours:.4} \
                 (its own estimate at {estimated} cuts, the naive one elsewhere), naive \
                 leave-one-bearing-out mean life {naive:.4}",
                edgewatch_lab::rtf::CUT_FRACTIONS
            );
            std::fs::write(&out, &rows).with_context(|| format!("writing {}", out.display()))?;
            std::fs::write(&trace, snapshots)
                .with_context(|| format!("writing {}", trace.display()))?;
            print!("{rows}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::EvalFeatures {
            data,
            per_recording,
        } => {
            let table = edgewatch_lab::recordings::envelope_table(
                &data,
                &edgewatch_agent::analyze::features::FeatureConfig::default(),
            )?;
            print!("{}", edgewatch_lab::recordings::format_table(&table));
            if per_recording {
                print!("{}", edgewatch_lab::recordings::format_recordings(&table));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Demo {
            scenario,
            data_dir,
            duration_s,
            metrics_listen,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(demo::run(demo::DemoOptions {
                scenario,
                data_dir,
                duration: duration_s.map(Duration::from_secs_f64),
                metrics_listen,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
