//! `agent`: the edgewatch gateway agent.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use edgewatch_agent::config::Config;
use edgewatch_agent::model::{Model, ModelSource, Variant};
use edgewatch_agent::window::WindowConfig;
use edgewatch_agent::{demo, runtime};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "agent", version, about = "Edge predictive-maintenance agent")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the agent with a configuration file.
    Run {
        /// The TOML configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file: exit 0 when valid, 2 with the offending fields otherwise.
    Validate {
        /// The TOML configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
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
        /// Instead of cold start: treat each channel's recordings as one machine's history (in
        /// index order) and commission its baseline on its first N windows (at least 20, as in
        /// `[baseline] windows`), as an agent that has been watching it would.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(20..))]
        commission_windows: Option<u64>,
        /// Window length, samples (the agent's `[window] length`; half overlap, as the agent's
        /// default). The default is the agent's, whatever the sample rate, as on a gateway.
        #[arg(long, value_name = "SAMPLES", default_value_t = WindowConfig::default_length() as u64,
              value_parser = clap::value_parser!(u64).range(256..=65_536))]
        window_len: u64,
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
    /// Write labelled model-input vectors (simulated machines run through the agent's own
    /// windowing and features) as CSV, for training the classifier (see models/).
    ExportFeatures(edgewatch_agent::training::ExportArgs),
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
}

fn validate(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(c) => {
            let model = if c.model.enabled {
                match Model::open(&c.model.source(), c.model.variant) {
                    Ok(m) => {
                        if let Some(warning) = m.window_mismatch(c.window.length) {
                            eprintln!("{}: warning: {warning}", path.display());
                        }
                        format!("{} ({})", m.version(), m.key())
                    }
                    Err(e) => {
                        eprintln!(
                            "{}: invalid configuration\nmodel.manifest: {} refused: {e}",
                            path.display(),
                            c.model.source()
                        );
                        return ExitCode::from(2);
                    }
                }
            } else {
                "off".into()
            };
            println!(
                "{}: valid ({} assets, {} serial ports, mqtt {}, model {})",
                path.display(),
                c.assets.len(),
                c.serial.len(),
                if c.mqtt.is_some() { "on" } else { "off" },
                model
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: invalid configuration\n{e}", path.display());
            ExitCode::from(2)
        }
    }
}

async fn run(path: &Path) -> Result<ExitCode> {
    // Before anything starts: a SIGTERM or SIGHUP from here on waits for the loop below.
    let terminate = runtime::termination_signal()?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: invalid configuration\n{e}", path.display());
            return Ok(ExitCode::from(2));
        }
    };
    let shutdown = CancellationToken::new();
    let running = match runtime::start(config, shutdown.clone(), |report| {
        tracing::debug!(
            asset = %report.asset,
            sensor = report.sensor_id,
            axis = report.axis,
            rms_g = report.features.rms_g,
            velocity_mm_s = report.features.velocity_rms_mm_s,
            zone = %report.features.zone,
            "window"
        );
    })
    .await
    {
        Ok(r) => r,
        Err(e) if format!("{e}").starts_with("model.manifest") => {
            eprintln!("{}: cannot start\n{e:#}", path.display());
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e),
    };
    tracing::info!("agent running");
    let systemd = edgewatch_agent::notify::spawn(running.health.clone(), shutdown.clone());
    let model = running.model();
    tokio::pin!(terminate);
    loop {
        tokio::select! {
            _ = &mut terminate => break,
            _ = hangup.recv() => reload(path, model.as_ref()).await,
        }
    }
    drop(model);
    tracing::info!("shutting down: stopping sources, draining the pipeline");
    systemd.stopping();
    shutdown.cancel();
    if running.join().await {
        tracing::info!("stopped cleanly");
        Ok(ExitCode::SUCCESS)
    } else {
        tracing::error!("the pipeline did not drain before the deadline");
        Ok(ExitCode::FAILURE)
    }
}

/// SIGHUP: reads the configuration again and switches to its `[model]`; a bad file or a
/// refused model leaves the running model in place. Other sections need a restart.
async fn reload(path: &Path, model: Option<&edgewatch_agent::model::ModelHandle>) {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: configuration invalid; nothing reloaded");
            return;
        }
    };
    match model {
        Some(handle) if config.model.enabled => {
            // Refusals are logged and counted by reload_model.
            let _ =
                runtime::reload_model(handle, config.model.source(), config.model.variant).await;
        }
        Some(_) => tracing::warn!("SIGHUP: disabling the model needs a restart"),
        None => {
            tracing::warn!("SIGHUP: the agent started without a model; enabling it needs a restart")
        }
    }
}

fn main() -> Result<ExitCode> {
    firmware_sim::logging::init();
    let cli = Cli::parse();
    match cli.command {
        Cmd::Validate { config } => return Ok(validate(&config)),
        Cmd::Eval {
            data,
            out,
            model,
            variant,
            no_model,
            commission_windows,
            window_len,
        } => {
            let mode = match commission_windows {
                None => edgewatch_agent::eval::Mode::ColdStart,
                Some(n) => edgewatch_agent::eval::Mode::Commissioned {
                    windows: usize::try_from(n)?,
                },
            };
            let source = model.map_or(ModelSource::Builtin, ModelSource::File);
            // Loaded once (a bad model is refused, with its reason, before any recording is
            // read) and shared: the model keeps no state between windows.
            let shared = if no_model {
                None
            } else {
                let m = Model::open(&source, variant)?;
                eprintln!("model: {} ({}) from {source}", m.version(), m.key());
                Some(edgewatch_agent::scoring::SharedClassifier::new(m))
            };
            let factory = || -> Option<Box<dyn edgewatch_agent::scoring::Classify>> {
                shared
                    .clone()
                    .map(|m| Box::new(m) as Box<dyn edgewatch_agent::scoring::Classify>)
            };
            let rows = edgewatch_agent::eval::evaluate_dir(
                &data,
                mode,
                &factory,
                WindowConfig {
                    length: usize::try_from(window_len)?,
                    ..WindowConfig::default()
                },
                &edgewatch_agent::features::FeatureConfig::default(),
                &edgewatch_agent::alert::AlertConfig::default(),
            )?;
            std::fs::write(&out, edgewatch_agent::eval::to_csv(&rows, mode))?;
            print!("{}", edgewatch_agent::eval::summary(&rows, mode));
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::ExportFeatures(args) => {
            let windows = edgewatch_agent::training::run_export(&args)?;
            eprintln!("{windows} windows written to {}", args.out.display());
            return Ok(ExitCode::SUCCESS);
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
            let s = edgewatch_agent::replay::replay_features(
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
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::EvalFeatures {
            data,
            per_recording,
        } => {
            let table = edgewatch_agent::features::eval::envelope_table(
                &data,
                &edgewatch_agent::features::FeatureConfig::default(),
            )?;
            print!("{}", edgewatch_agent::features::eval::format_table(&table));
            if per_recording {
                print!(
                    "{}",
                    edgewatch_agent::features::eval::format_recordings(&table)
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Cmd::Run { config } => run(&config).await,
            Cmd::Demo {
                scenario,
                data_dir,
                duration_s,
                metrics_listen,
            } => {
                demo::run(demo::DemoOptions {
                    scenario,
                    data_dir,
                    duration: duration_s.map(Duration::from_secs_f64),
                    metrics_listen,
                })
                .await?;
                Ok(ExitCode::SUCCESS)
            }
            Cmd::Validate { config } => Ok(validate(&config)),
            Cmd::EvalFeatures { .. } | Cmd::Eval { .. } => Ok(ExitCode::SUCCESS),
            Cmd::ExportFeatures(_) | Cmd::ReplayFeatures { .. } => Ok(ExitCode::SUCCESS),
        }
    })
}
