//! `firmware-sim`: simulated sensor nodes that send edgewatch frames over serial, MQTT or files.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use firmware_sim::driver::{self, RunOptions};
use firmware_sim::link::{Injector, LinkFaults};
use firmware_sim::node::{NodeSettings, SensorNode};
use firmware_sim::output::{Output, OutputSpec};
use firmware_sim::physics::scenario::Scenario;
use firmware_sim::replay::{Recording, SampleFormat};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "firmware-sim",
    version,
    about = "Simulated vibration and temperature sensor nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Simulate the sensor nodes of a scenario.
    Run(RunArgs),
    /// Send a recording (raw little-endian samples of one channel) as one sensor's frames.
    Replay(ReplayArgs),
    /// List the built-in scenarios, or print one as TOML to start your own from.
    Scenarios {
        /// Print this scenario as TOML.
        name: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputKind {
    /// Create a pty pair and print `pty: <path>` on stdout; receivers open that path.
    Pty,
    /// An existing serial device (`--device`, `--baud`).
    Serial,
    /// An MQTT broker (`--mqtt-url`); one raw frame per message on `<prefix>/<asset>/<sensor>`.
    Mqtt,
    /// Serial-encoded frames appended to `--path`.
    File,
    /// Serial-encoded frames on stdout.
    Stdout,
}

#[derive(Debug, Args)]
struct OutputArgs {
    /// Where frames go.
    #[arg(long, value_enum, default_value = "pty")]
    output: OutputKind,
    /// Serial device for `--output serial`.
    #[arg(long)]
    device: Option<String>,
    /// Baud rate for `--output serial`.
    #[arg(long, default_value_t = 921_600)]
    baud: u32,
    /// Broker for `--output mqtt`.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    mqtt_url: String,
    /// First topic level for `--output mqtt`.
    #[arg(long, default_value = "sensors")]
    mqtt_topic_prefix: String,
    /// MQTT QoS (0, 1 or 2).
    #[arg(long, default_value_t = 1)]
    mqtt_qos: u8,
    /// MQTT client id.
    #[arg(long, default_value = "firmware-sim")]
    mqtt_client_id: String,
    /// File for `--output file`.
    #[arg(long)]
    path: Option<PathBuf>,
    /// Send as fast as the output takes frames instead of in real time.
    #[arg(long)]
    fast: bool,
    /// Stop after this many seconds of simulated time.
    #[arg(long)]
    duration_s: Option<f64>,
    /// Stop after this many frames.
    #[arg(long)]
    max_frames: Option<u64>,
    /// Link faults, e.g. `garbage=0.01,drop=0.01,corrupt=0.01,duplicate=0.01,silence=2@10+5,ts-jump=30:500`.
    #[arg(long, default_value = "")]
    inject: LinkFaults,
    /// Seed of the link faults (the scenario has its own seed).
    #[arg(long, default_value_t = 1)]
    inject_seed: u64,
    /// Snapshot mode: samples per axis in one burst (with --burst-period-s; overrides the
    /// scenario's `burst`).
    #[arg(long, requires = "burst_period_s")]
    burst_samples: Option<usize>,
    /// Snapshot mode: seconds from the start of one burst to the start of the next.
    #[arg(long, requires = "burst_samples")]
    burst_period_s: Option<f64>,
}

impl OutputArgs {
    /// The burst plan the flags ask for, if any.
    fn burst(&self) -> Option<firmware_sim::node::BurstPlan> {
        Some(firmware_sim::node::BurstPlan {
            samples: self.burst_samples?,
            period_s: self.burst_period_s?,
        })
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// A built-in scenario name or a TOML file.
    #[arg(long, default_value = "demo")]
    scenario: String,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override the sample rate in Hz.
    #[arg(long)]
    sample_rate_hz: Option<f64>,
    /// Override the samples per axis per vibration frame.
    #[arg(long)]
    block_size: Option<usize>,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// The recording.
    file: PathBuf,
    /// Sample encoding of the file.
    #[arg(long, value_enum, default_value = "f32")]
    format: SampleFormat,
    /// Sample rate of the recording in Hz.
    #[arg(long)]
    sample_rate_hz: f64,
    /// g per count, for `--format i16`.
    #[arg(long, default_value_t = 1.0)]
    scale_g: f32,
    /// Sensor id to send as.
    #[arg(long, default_value_t = 1)]
    sensor_id: u32,
    /// Asset the sensor is on.
    #[arg(long, default_value = "replay")]
    asset: String,
    /// Samples per vibration frame.
    #[arg(long, default_value_t = 512)]
    block_size: usize,
    /// Start over at the end instead of stopping.
    #[arg(long = "loop")]
    looping: bool,
    #[command(flatten)]
    out: OutputArgs,
}

fn output_spec(a: &OutputArgs) -> Result<OutputSpec> {
    Ok(match a.output {
        OutputKind::Pty => OutputSpec::Pty,
        OutputKind::Serial => OutputSpec::Serial {
            device: a
                .device
                .clone()
                .context("--output serial needs --device PATH")?,
            baud: a.baud,
        },
        OutputKind::Mqtt => OutputSpec::Mqtt {
            url: a.mqtt_url.clone(),
            topic_prefix: a.mqtt_topic_prefix.clone(),
            qos: a.mqtt_qos,
            client_id: a.mqtt_client_id.clone(),
        },
        OutputKind::File => {
            OutputSpec::File(a.path.clone().context("--output file needs --path FILE")?)
        }
        OutputKind::Stdout => OutputSpec::Stdout,
    })
}

fn load_scenario(arg: &str) -> Result<Scenario> {
    if let Some(s) = Scenario::builtin(arg) {
        return Ok(s);
    }
    let path = PathBuf::from(arg);
    if !path.exists() {
        bail!(
            "scenario `{arg}` is neither a built-in ({}) nor a file",
            Scenario::builtin_names().join(", ")
        );
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {arg}"))?;
    Scenario::from_toml_str(&text).with_context(|| format!("scenario {arg}"))
}

/// Runs the nodes against the chosen output and prints the summary as JSON on stderr.
fn drive(mut nodes: Vec<SensorNode>, out: &OutputArgs, seed: u64) -> Result<()> {
    let spec = output_spec(out)?;
    let mut output = Output::open(&spec)?;
    if let Some(path) = output.serial_path()
        && matches!(spec, OutputSpec::Pty)
    {
        // The first line on stdout, for people and for test harnesses.
        println!("pty: {path}");
        std::io::stdout().flush()?;
    }
    if let OutputSpec::Serial { baud, .. } = &spec {
        let bytes_per_s: f64 = nodes
            .iter()
            .map(|n| {
                let s = n.settings();
                s.sample_rate_hz * f64::from(s.axes) * 2.0
            })
            .sum();
        // 10 bits per byte on a UART (start, 8 data, stop).
        if bytes_per_s * 10.0 > f64::from(*baud) {
            tracing::warn!(
                baud,
                needed_baud = (bytes_per_s * 10.0) as u64,
                "the baud rate cannot carry the sample stream in real time"
            );
        }
    }
    let mut injector = Injector::new(out.inject.clone(), out.inject_seed ^ seed);
    let stop = Arc::new(AtomicBool::new(false));
    let opts = RunOptions {
        realtime: !out.fast,
        duration_s: out.duration_s,
        max_frames: out.max_frames,
    };
    let summary = driver::run(&mut nodes, &mut injector, &mut output, &opts, &stop)?;
    output.finish(Duration::from_secs(30))?;
    eprintln!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

fn main() -> Result<()> {
    firmware_sim::logging::init();
    match Cli::parse().command {
        Cmd::Scenarios { name: None } => {
            for name in Scenario::builtin_names() {
                println!("{name}");
            }
            Ok(())
        }
        Cmd::Scenarios { name: Some(name) } => {
            let s = Scenario::builtin(&name).with_context(|| {
                format!(
                    "no built-in scenario `{name}` (known: {})",
                    Scenario::builtin_names().join(", ")
                )
            })?;
            print!("{}", s.to_toml()?);
            Ok(())
        }
        Cmd::Run(args) => {
            let mut scenario = load_scenario(&args.scenario)?;
            if let Some(seed) = args.seed {
                scenario.seed = seed;
            }
            if let Some(rate) = args.sample_rate_hz {
                scenario.sample_rate_hz = rate;
            }
            if let Some(block) = args.block_size {
                scenario.block_size = block;
            }
            if let Some(burst) = args.out.burst() {
                scenario.burst = Some(burst);
            }
            scenario.validate()?;
            let seed = scenario.seed;
            let nodes = firmware_sim::nodes_for(&scenario)?;
            let mut out = args.out;
            if out.duration_s.is_none() {
                out.duration_s = scenario.duration_s;
            }
            drive(nodes, &out, seed)
        }
        Cmd::Replay(args) => {
            let recording =
                Recording::load(&args.file, args.format, args.scale_g)?.looping(args.looping);
            // Full scale just above the recording's peak, so nothing clips and no resolution
            // is wasted.
            let full_scale_g = (recording.peak_g() * 1.05).max(1e-3);
            let settings = NodeSettings {
                sensor_id: args.sensor_id,
                asset: args.asset.clone(),
                sample_rate_hz: args.sample_rate_hz,
                block_size: args.block_size,
                axes: 1,
                full_scale_g,
                temperature_interval_s: None,
                status_interval_s: Some(10.0),
                clock_offset_us: 0,
                burst: args.out.burst(),
            };
            settings.validate().map_err(anyhow::Error::msg)?;
            drive(
                vec![SensorNode::new(settings, Box::new(recording))],
                &args.out,
                0,
            )
        }
    }
}
