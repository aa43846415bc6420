//! `agent demo`: the simulator and the whole pipeline in one process, with a live view.
//!
//! The built-in `demo` scenario of firmware-sim runs on its own thread and writes real frames to
//! a pty; the agent reads that pty through its ordinary serial source. Nothing needs to be
//! installed, and the path exercised is the production one from the serial port on.

use anyhow::{Context, Result};
use edgewatch_agent::analyze::WindowReport;
use edgewatch_agent::config::{
    AgentSection, Asset, Config, MetricsConfig, PipelineConfig, SerialSource,
};
use firmware_sim::driver::{self, RunOptions};
use firmware_sim::link::{Injector, LinkFaults};
use firmware_sim::output::{Output, OutputSpec};
use firmware_sim::physics::scenario::Scenario;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Options of the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Built-in scenario name or TOML file.
    pub scenario: String,
    /// Where the agent keeps its data.
    pub data_dir: PathBuf,
    /// Stop after this long; `None`: until Ctrl-C.
    pub duration: Option<Duration>,
    /// Metrics endpoint address (empty: off).
    pub metrics_listen: String,
}

/// The agent configuration that matches a scenario, reading from `device`.
pub fn config_for(scenario: &Scenario, device: PathBuf, opts: &DemoOptions) -> Config {
    Config {
        agent: AgentSection {
            id: "demo".into(),
            data_dir: opts.data_dir.clone(),
            labels: Vec::new(),
        },
        serial: vec![SerialSource {
            device,
            baud: SerialSource::default_baud(),
            reconnect_min_ms: SerialSource::default_reconnect_min_ms(),
            reconnect_max_ms: SerialSource::default_reconnect_max_ms(),
            sensors: BTreeMap::new(),
        }],
        mqtt: None,
        assets: scenario
            .assets
            .iter()
            .map(|a| Asset {
                id: a.id.clone(),
                shaft_rpm: a.machine.rpm,
                bearing: a.machine.bearing,
                sensors: vec![a.sensor_id],
                severity: None,
                burst: scenario.burst.map(|b| edgewatch_agent::config::BurstPlan {
                    samples: u32::try_from(b.samples).unwrap_or(u32::MAX),
                    period_s: b.period_s,
                }),
            })
            .collect(),
        window: Default::default(),
        features: Default::default(),
        pipeline: PipelineConfig::default(),
        metrics: MetricsConfig {
            listen: opts.metrics_listen.clone(),
        },
        // A short commissioning so the demo shows anomaly scores within a minute or two.
        baseline: edgewatch_agent::analyze::baseline::BaselineConfig {
            windows: 120,
            ..Default::default()
        },
        alerts: Default::default(),
        diagnosis: Default::default(),
        health: Default::default(),
        model: Default::default(),
        // No Kafka: records collect in the outbox under the data directory, up to its cap.
        outbox: Default::default(),
        kafka: None,
        report: Default::default(),
        config_hash: edgewatch_agent::config::config_hash(
            format!("lab demo {}", scenario.name).as_bytes(),
        ),
        feedback: Default::default(),
    }
}

/// What the live view shows of one asset.
#[derive(Debug, Clone, Default)]
struct AssetView {
    windows: u64,
    last: Option<WindowReport>,
    last_alert: Option<edgewatch_agent::analyze::alert::AlertEvent>,
}

fn render(view: &BTreeMap<String, AssetView>, elapsed: Duration, ansi: bool) -> String {
    let mut s = String::new();
    if ansi {
        s.push_str("\x1b[2J\x1b[H");
    }
    s.push_str(&format!(
        "edgewatch demo: {:.0} s, simulator -> pty -> agent (Ctrl-C stops)\n\n",
        elapsed.as_secs_f64()
    ));
    let header = [
        "asset",
        "windows",
        "rms g",
        "vel mm/s",
        "zone",
        "kurtosis",
        "strongest bearing peak",
        "temp C",
        "C/min",
        "class",
        "anomaly",
        "drift",
        "alert",
    ];
    s.push_str(&row(&header.map(String::from)));
    for (asset, v) in view {
        let Some(r) = &v.last else {
            s.push_str(&format!("{asset:<12} {:>7}\n", v.windows));
            continue;
        };
        let f = &r.features;
        let a = &r.assessment;
        let (name, hz, db) = f.strongest_bearing_peak();
        let class = a.class.as_ref().map_or("-".to_string(), |c| {
            format!("{} {:.2}", c.class, c.probability)
        });
        let anomaly = match (a.anomaly, a.commissioning) {
            (Some(x), _) => format!("{x:.1}"),
            (None, Some((n, of))) => format!("learn {}%", n * 100 / of.max(1)),
            _ => "-".into(),
        };
        // The baseline drift score, and `!` when the window's inputs lie outside the model's
        // training range (the model extrapolates there).
        let drift = format!(
            "{}{}",
            a.drift.map_or("-".into(), |d| format!("{d:.2}")),
            if a.out_of_range.is_empty() { "" } else { "!" }
        );
        let alert = match (a.active_alert, v.last_alert.as_ref()) {
            (Some(level), Some(e)) => format!("{level:?} {}", e.finding.kind).to_lowercase(),
            (Some(level), None) => format!("{level:?}").to_lowercase(),
            _ => "-".into(),
        };
        s.push_str(&row(&[
            asset.clone(),
            v.windows.to_string(),
            format!("{:.3}", f.rms_g),
            format!("{:.2}", f.velocity_rms_mm_s),
            f.zone.to_string(),
            format!("{:.2}", f.kurtosis),
            format!("{name} {hz:.1} Hz {db:+.1} dB"),
            f.temperature_c.map_or("-".into(), |t| format!("{t:.1}")),
            f.temperature_rise_c_per_min
                .map_or("-".into(), |t| format!("{t:+.2}")),
            class,
            anomaly,
            drift,
            alert,
        ]));
    }
    s
}

/// One line of the view: fixed column widths, text left-aligned, numbers right-aligned.
fn row(cells: &[String; 13]) -> String {
    const WIDTHS: [usize; 13] = [12, 7, 8, 9, 4, 8, 26, 7, 7, 16, 9, 6, 18];
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(WIDTHS).enumerate() {
        let left = matches!(i, 0 | 6 | 9 | 12);
        if left {
            line.push_str(&format!("{cell:<width$} "));
        } else {
            line.push_str(&format!("{cell:>width$} "));
        }
    }
    line.truncate(line.trim_end().len());
    line.push('\n');
    line
}

/// Runs the demo until Ctrl-C/SIGTERM or the duration; prints the final view.
pub async fn run(opts: DemoOptions) -> Result<()> {
    // Before anything starts, so a Ctrl-C during start-up still stops the demo cleanly.
    let terminate = edgewatch_agent::runtime::termination_signal()?;
    tokio::pin!(terminate);
    let scenario = if let Some(s) = Scenario::builtin(&opts.scenario) {
        s
    } else {
        let text = std::fs::read_to_string(&opts.scenario)
            .with_context(|| format!("scenario {}", opts.scenario))?;
        Scenario::from_toml_str(&text)?
    };
    scenario.validate()?;
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating {}", opts.data_dir.display()))?;

    let mut output = Output::open(&OutputSpec::Pty)?;
    let device = PathBuf::from(output.serial_path().context("pty path")?);
    let mut nodes = firmware_sim::nodes_for(&scenario)?;
    let stop_sim = Arc::new(AtomicBool::new(false));
    let sim = {
        let stop = stop_sim.clone();
        let seed = scenario.seed;
        std::thread::Builder::new()
            .name("firmware-sim".into())
            .spawn(move || {
                let mut injector = Injector::new(LinkFaults::default(), seed);
                let opts = RunOptions {
                    realtime: true,
                    ..RunOptions::default()
                };
                let result = driver::run(&mut nodes, &mut injector, &mut output, &opts, &stop);
                if let Err(e) = result {
                    tracing::error!(error = %e, "simulator stopped");
                }
            })?
    };

    let config = config_for(&scenario, device, &opts);
    config.validate()?;
    let view: Arc<Mutex<BTreeMap<String, AssetView>>> = Arc::new(Mutex::new(
        scenario
            .assets
            .iter()
            .map(|a| (a.id.clone(), AssetView::default()))
            .collect(),
    ));
    let shutdown = CancellationToken::new();
    let sink = view.clone();
    let running = edgewatch_agent::runtime::start(config, shutdown.clone(), move |report| {
        if let Ok(mut v) = sink.lock() {
            let entry = v.entry(report.asset.to_string()).or_default();
            if let Some(alert) = &report.alert {
                entry.last_alert = Some(alert.clone());
            }
            if report.axis == 0 {
                entry.windows += 1;
                entry.last = Some(report);
            }
        }
    })
    .await?;

    let started = Instant::now();
    let ansi = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(if ansi { 1 } else { 5 }));
    let deadline = async {
        match opts.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut terminate => break,
            _ = &mut deadline => break,
            _ = tick.tick() => {
                let text = render(&view.lock().map(|v| v.clone()).unwrap_or_default(), started.elapsed(), ansi);
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
        }
    }
    // Stop the sensors first, then let the agent drain what they sent.
    stop_sim.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || sim.join()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    let drained = running.join().await;
    let final_view = view.lock().map(|v| v.clone()).unwrap_or_default();
    println!("{}", render(&final_view, started.elapsed(), false));
    if !drained {
        anyhow::bail!("the pipeline did not drain in time");
    }
    Ok(())
}
