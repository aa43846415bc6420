//! `agent`: the edgewatch gateway agent (`run`, `validate`). The lab tools (demo, evaluation,
//! training data, replay) are the `lab` binary of `edgewatch-lab`: nothing of them ships to a
//! gateway.
#![forbid(unsafe_code)]

use anyhow::Result;
use clap::{Parser, Subcommand};
use edgewatch_agent::analyze::model::{Model, ModelSource};
use edgewatch_agent::config::Config;
use edgewatch_agent::runtime;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
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
}

fn validate(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(c) => {
            for w in c.warnings() {
                eprintln!("{}: warning: {w}", path.display());
            }
            let model = if c.model.enabled {
                let source = c.model.source();
                let opened = if source == ModelSource::Builtin
                    || c.model.manifest.as_ref().is_some_and(|m| m.is_file())
                {
                    Model::open(&source, c.model.variant)
                } else {
                    // Already warned: the manifest is missing.
                    Model::open(&ModelSource::Builtin, c.model.variant)
                };
                match opened {
                    Ok(m) => {
                        if let Some(warning) = m.window_mismatch(&c.window) {
                            eprintln!("{}: warning: {warning}", path.display());
                        }
                        format!("{} ({})", m.version(), m.key())
                    }
                    Err(e) if source != ModelSource::Builtin => {
                        // `run` starts degraded on the built-in model: not a reason to stop.
                        eprintln!(
                            "{}: warning: model.manifest: {source} refused: {e}; `run` uses the \
                             built-in model instead",
                            path.display(),
                        );
                        "built-in (fallback)".into()
                    }
                    Err(e) => {
                        eprintln!(
                            "{}: invalid configuration\nmodel: the built-in model is refused: {e}",
                            path.display()
                        );
                        return ExitCode::from(2);
                    }
                }
            } else {
                "off".into()
            };
            if c.model.enabled {
                for problem in edgewatch_agent::analyze::lifecycle::check_stored(&c.lifecycle()) {
                    eprintln!("{}: warning: model lifecycle: {problem}", path.display());
                }
            }
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
    for w in config.warnings() {
        tracing::warn!("{w} (starting degraded)");
    }
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
        Err(e) if e.exit_code() == 2 => {
            eprintln!("{}: cannot start\n{e}", path.display());
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!("agent running");
    let systemd = edgewatch_agent::ops::notify::spawn(running.health.clone(), shutdown.clone());
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
/// refused model leaves the running model in place (while a model package is active, the
/// configured model only becomes its fall-back). Then offers the packages in `[model]
/// package_dir` to the lifecycle. Other sections need a restart.
async fn reload(path: &Path, model: Option<&edgewatch_agent::analyze::ModelControl>) {
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
    if let (Some(handle), Some(dir)) = (model, &config.model.package_dir) {
        let offered = handle.offer_packages(dir).await;
        tracing::info!(dir = %dir.display(), offered, "SIGHUP: model packages offered");
    }
}

fn main() -> Result<ExitCode> {
    edgewatch_common::logging::init();
    let cli = Cli::parse();
    let config = match cli.command {
        Cmd::Validate { config } => return Ok(validate(&config)),
        Cmd::Run { config } => config,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(&config))
}
