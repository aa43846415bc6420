//! Starts and stops the whole agent: the only module that wires the stages together.
//!
//! ```text
//! ingest ─(1)─► assemble ─(2)─► analyze ─(3)─► report ─(4)─► outbox writer ──► outbox ──► forward
//! ```
//!
//! Every bounded channel and what it does when full:
//!
//! | channel | capacity | when full |
//! |---|---|---|
//! | (1) ingest: frames | `pipeline.ingest_capacity` | `pipeline.ingest_when_full` ([`WhenFull`](crate::queue::WhenFull)): block or drop newest |
//! | (2) analysis input: windows, model reloads, packages, commands | `pipeline.window_capacity` | block: the assembler (frames then queue in (1)) and the feedback consumer wait |
//! | (3) window reports | `pipeline.window_capacity` | block: the analysis thread waits |
//! | (4) records to the writer | `outbox.queue_capacity` | summaries and heartbeats dropped and counted, alerts wait up to 5 s ([`Reporter`](crate::report::Reporter)) |
//!
//! Shutdown order (one deadline, `pipeline.drain_timeout_ms`): the token cancels the sources;
//! their channel senders drop; the assembler drains the ingest channel and flushes held frames;
//! the analysis thread drains the windows; the reporter sees the report channel close and
//! hands its open summaries to the writer, which flushes; then the forwarder stops.

use crate::analyze::model::ModelError;
use crate::analyze::model::{Model, ModelSource, Variant, set_model_info};
use crate::analyze::scoring::Classify;
use crate::analyze::{self, ModelControl, WindowReport};
use crate::assemble;
use crate::clock::Clock;
use crate::config::Config;
use crate::ingest::mqtt::MqttSetupError;
use crate::ingest::{self, IngestSender};
use crate::ops::health::Health;
use crate::outbox::OutboxError;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why the agent could not start. None is recoverable by retrying as is: the configuration,
/// the model file or the machine (a port in use, a data directory that cannot be written) has
/// to change. [`StartError::exit_code`] says how the binary exits.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The metrics recorder could not be installed.
    #[error("installing the metrics recorder: {0}")]
    Metrics(String),
    /// The configured model was refused.
    #[error("model.manifest: cannot use {from}: {error}")]
    Model {
        /// Where the model was to come from.
        from: ModelSource,
        /// Why it was refused.
        error: ModelError,
    },
    /// The metrics endpoint's address cannot be bound.
    #[error("metrics.listen: cannot bind {addr}: {error}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The MQTT source's settings cannot be used (credentials or certificates unreadable).
    #[error(transparent)]
    Mqtt(#[from] MqttSetupError),
    /// A thread could not be started.
    #[error("starting the {what} thread: {error}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// Why.
        error: std::io::Error,
    },
    /// The data directory cannot be created.
    #[error("creating {}: {error}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The outbox cannot be opened (another agent holds it, or storage fails).
    #[error("opening the outbox {}: {error}", path.display())]
    Outbox {
        /// The outbox directory.
        path: PathBuf,
        /// Why.
        error: OutboxError,
    },
}

impl StartError {
    /// 2 when the configuration (including the model it names) cannot be used, as
    /// `agent validate` exits; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Model { .. } => 2,
            _ => 1,
        }
    }
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> Result<PrometheusHandle, StartError> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    use metrics_exporter_prometheus::Matcher;
    // Every histogram is exported as a Prometheus histogram (buckets), never as a summary:
    // buckets add up across gateways, and a summary keeps a quantile sketch per metric that
    // grows with the spread of its values (~1.5 MB for three of them at 32 sensors, heaptrack).
    const DEFAULT_BUCKETS: &[f64] = &[
        0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
    ];
    let per_metric: [(Matcher, &[f64]); 4] = [
        (
            Matcher::Full("edgewatch_feature_seconds".into()),
            &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2],
        ),
        (
            Matcher::Full("edgewatch_inference_seconds".into()),
            &[
                0.000005, 0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.01,
            ],
        ),
        (
            // Frame arrival to scored: tens of milliseconds when the gateway keeps up.
            Matcher::Full("edgewatch_window_latency_seconds".into()),
            &[
                0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0,
                2.0, 5.0,
            ],
        ),
        (
            // Finer between 0.5 and 2.5 s, where records wait for the 1 s flush interval.
            Matcher::Prefix("edgewatch_kafka_".into()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 5.0,
                10.0, 30.0, 60.0, 300.0,
            ],
        ),
    ];
    let mut builder = PrometheusBuilder::new()
        .set_buckets(DEFAULT_BUCKETS)
        .map_err(|e| StartError::Metrics(format!("histogram buckets: {e}")))?;
    for (matcher, buckets) in per_metric {
        builder = builder
            .set_buckets_for_metric(matcher, buckets)
            .map_err(|e| StartError::Metrics(format!("histogram buckets: {e}")))?;
    }
    let handle = builder
        .install_recorder()
        .map_err(|e| StartError::Metrics(e.to_string()))?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Handles of a running agent.
#[derive(Debug)]
pub struct Running {
    /// Liveness stamps.
    pub health: Arc<Health>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    model: Option<ModelControl>,
    drain: Duration,
    /// The Kafka forwarder and its stop token: stopped last, after the outbox writer flushed.
    forwarder: Option<(tokio::task::JoinHandle<()>, CancellationToken)>,
}

/// Loads the configured model; `None` when `[model] enabled = false`. `window` is the agent's
/// `[window]` (a model trained on other windows is warned about).
pub fn load_model(
    config: &crate::analyze::model::ModelConfig,
    window: &crate::assemble::window::WindowConfig,
) -> Result<Option<Model>, StartError> {
    Ok(load_base_model(config, window)?.map(|(m, _)| m))
}

/// [`load_model`], with the source the model came from (the built-in one after a fall-back).
pub fn load_base_model(
    config: &crate::analyze::model::ModelConfig,
    window: &crate::assemble::window::WindowConfig,
) -> Result<Option<(Model, ModelSource)>, StartError> {
    if !config.enabled {
        tracing::info!("no classifier ([model] enabled = false): baseline and thresholds only");
        return Ok(None);
    }
    let source = config.source();
    let (model, source) = match Model::open(&source, config.variant) {
        Ok(m) => (m, source),
        // A stored model that fails its checks must not take the gateway down: the model built
        // into the agent runs instead, said loudly and counted, until a good one is installed.
        Err(error) if source != ModelSource::Builtin => {
            tracing::error!(
                from = %source,
                %error,
                "the configured model is refused; running the built-in model instead (degraded)"
            );
            metrics::gauge!("edgewatch_model_fallback").set(1.0);
            let builtin = ModelSource::Builtin;
            let m = Model::open(&builtin, config.variant).map_err(|error| StartError::Model {
                from: builtin.clone(),
                error,
            })?;
            (m, builtin)
        }
        Err(error) => {
            return Err(StartError::Model {
                from: source.clone(),
                error,
            });
        }
    };
    tracing::info!(
        version = model.version(),
        variant = model.key(),
        source = %source,
        "model loaded"
    );
    if let Some(warning) = model.window_mismatch(window) {
        tracing::warn!("{warning}");
    }
    set_model_info(model.version(), config.variant);
    Ok(Some((model, source)))
}

/// Replaces the running model with `variant` from `source`; on refusal the current model keeps
/// running and the error says why. Counted in `edgewatch_model_reloads_total{result}`.
pub async fn reload_model(
    handle: &ModelControl,
    source: ModelSource,
    variant: Variant,
) -> Result<Arc<str>, crate::analyze::ReloadError> {
    match handle.reload(source.clone(), variant).await {
        Ok(version) => {
            metrics::counter!("edgewatch_model_reloads_total", "result" => "ok").increment(1);
            set_model_info(&version, variant);
            tracing::info!(version = %version, variant = variant.key(), source = %source, "model reloaded");
            Ok(version)
        }
        Err(e) => {
            metrics::counter!("edgewatch_model_reloads_total", "result" => "refused").increment(1);
            tracing::error!(error = %e, source = %source, "new model refused; the current model keeps running");
            Err(e)
        }
    }
}

/// Starts everything; reports go to `on_report` on a consumer task.
pub async fn start(
    config: Config,
    shutdown: CancellationToken,
    mut on_report: impl FnMut(WindowReport) + Send + 'static,
) -> Result<Running, StartError> {
    let clock = Clock::start();
    let health = Arc::new(Health::new(clock));
    let prometheus = prometheus()?;
    // After the recorder: the model-info gauge is set while loading.
    let base = load_base_model(&config.model, &config.window)?;
    // The lifecycle decides which model is active: a stored package or the base.
    let (status_tx, mut status_rx) = mpsc::unbounded_channel::<crate::analyze::lifecycle::Event>();
    let (lifecycle, model) = match base {
        Some((model, source)) => {
            let (driver, active) = crate::analyze::lifecycle::Driver::start(
                config.lifecycle(),
                model,
                source,
                Some(status_tx),
                clock.unix_ms(),
            );
            (Some(driver), Some(active))
        }
        None => (None, None),
    };
    let analysis = config.analysis();
    let commands = analysis.feedback.clone();
    let config = Arc::new(config);
    let mut tasks = Vec::new();
    let mut threads = Vec::new();

    if let Some(addr) = config.metrics.addr() {
        let (p, h, s) = (prometheus.clone(), health.clone(), shutdown.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|error| StartError::Bind { addr, error })?;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = crate::ops::http::serve(listener, p, h, s).await {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        }));
    }

    // Histogram samples wait in the recorder until a scrape or an upkeep folds them into the
    // buckets (metrics-exporter-prometheus leaves upkeep to the caller with `install_recorder`):
    // without this, a gateway whose metrics nobody scrapes would grow by every window's samples.
    {
        let (p, s) = (prometheus.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => p.run_upkeep(),
                    () = s.cancelled() => break,
                }
            }
        }));
    }

    let (ingest_tx, ingest_rx) = mpsc::channel(config.pipeline.ingest_capacity);
    let (window_tx, window_rx) = mpsc::channel::<analyze::Input>(config.pipeline.window_capacity);
    let (report_tx, mut report_rx) = mpsc::channel::<WindowReport>(config.pipeline.window_capacity);
    let sender = IngestSender::new(ingest_tx, config.pipeline.ingest_when_full, clock);

    for serial in &config.serial {
        threads.push(
            ingest::serial::spawn(serial.clone(), sender.clone(), shutdown.clone()).map_err(
                |error| StartError::Thread {
                    what: "serial reader",
                    error,
                },
            )?,
        );
    }
    if let Some(mqtt) = config.mqtt.clone() {
        ingest::mqtt::options(&mqtt)?;
        let (tx, s) = (sender.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = ingest::mqtt::run(mqtt, tx, s).await {
                tracing::error!(error = %e, "mqtt source failed");
            }
        }));
    }
    drop(sender);

    let control = model
        .is_some()
        .then(|| ModelControl::new(window_tx.clone()));
    // Commands from the feedback topic reach the analysis thread on the same channel.
    let feedback_tx = commands.is_some().then(|| window_tx.clone());
    {
        let (c, h) = (config.assembler(), health.clone());
        tasks.push(tokio::spawn(async move {
            assemble::assemble(&c, ingest_rx, window_tx, clock, h).await;
        }));
    }
    {
        let (mut c, h) = (analysis, health.clone());
        // Alert ids: this agent, this start (a random number), the asset and the time.
        c.alert_id_prefix = format!("{}-{:08x}", config.agent.id, rand::random::<u32>());
        let classifier: Option<Box<dyn Classify>> = model;
        threads.push(
            std::thread::Builder::new()
                .name("analysis".into())
                .spawn(move || {
                    analyze::extract_features(
                        &c, window_rx, report_tx, h, classifier, lifecycle, clock,
                    )
                })
                .map_err(|error| StartError::Thread {
                    what: "analysis",
                    error,
                })?,
        );
    }
    if let Some(control) = &control {
        // Packages from Kafka (the models topic) and from the package folder.
        if let Some(kafka) = &config.kafka
            && let Some(topic) = kafka.models_topic()
            && let Some(cc) =
                crate::analyze::lifecycle::consumer::consumer_config(kafka, &config.agent.id)
        {
            threads.push(
                crate::analyze::lifecycle::consumer::spawn(
                    cc,
                    topic,
                    control.sender(),
                    shutdown.clone(),
                )
                .map_err(|error| StartError::Thread {
                    what: "models consumer",
                    error,
                })?,
            );
        }
        if let Some(dir) = config.model.package_dir.clone() {
            let control = control.clone();
            tasks.push(tokio::spawn(async move {
                control.offer_packages(&dir).await;
            }));
        }
    }
    let (reporter, store, writer, forwarder, writer_tx) = start_outbox(&config, clock)?;
    threads.push(writer);
    if let Some(tx) = feedback_tx
        && let Some(kafka) = &config.kafka
        && let Some(topic) = config.feedback_topic()
        && let Some(cc) =
            crate::analyze::feedback::consumer::consumer_config(kafka, &config.agent.id)
    {
        let trusted_keys = commands.map(|c| c.trusted_keys).unwrap_or_default();
        let consumer = crate::analyze::feedback::consumer::FeedbackConsumer {
            config: cc,
            topic,
            agent_id: config.agent.id.clone(),
            trusted_keys,
            tx,
            report: command_reporter(
                crate::report::message::Origin::new(&config.agent.id, &config.config_hash),
                writer_tx,
                clock,
            ),
            unix_ms: Box::new(move || clock.unix_ms()),
        };
        threads.push(
            crate::analyze::feedback::consumer::spawn(consumer, shutdown.clone()).map_err(
                |error| StartError::Thread {
                    what: "feedback consumer",
                    error,
                },
            )?,
        );
    }
    let h = health.clone();
    let summary_ms = (config.outbox.summary_interval_s * 1000.0) as u64;
    let heartbeat_ms = (config.outbox.heartbeat_interval_s * 1000.0) as u64;
    tasks.push(tokio::spawn(async move {
        let mut reporter = reporter;
        let mut tick = tokio::time::interval(Duration::from_millis(summary_ms.clamp(10, 1000)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_heartbeat = heartbeat_ms;
        loop {
            tokio::select! {
                Some(event) = status_rx.recv() => {
                    reporter.model_status(&event, clock.now()).await;
                }
                report = report_rx.recv() => {
                    let Some(report) = report else { break };
                    h.report_consumed();
                    reporter.on_report(&report, clock.now()).await;
                    on_report(report);
                }
                _ = tick.tick() => {
                    let now = clock.now();
                    reporter.poll(now).await;
                    if heartbeat_ms > 0 && now.ms >= next_heartbeat {
                        next_heartbeat = now.ms + heartbeat_ms;
                        reporter.heartbeat(&heartbeat(&h, now.ms, &*store), now).await;
                    }
                }
            }
        }
        while let Ok(event) = status_rx.try_recv() {
            reporter.model_status(&event, clock.now()).await;
        }
        reporter.finish(clock.now()).await;
    }));
    Ok(Running {
        health,
        tasks,
        threads,
        model: control,
        drain: Duration::from_millis(config.pipeline.drain_timeout_ms),
        forwarder,
    })
}

type OutboxParts = (
    crate::report::Reporter,
    Arc<dyn crate::outbox::Outbox>,
    std::thread::JoinHandle<()>,
    Option<(tokio::task::JoinHandle<()>, CancellationToken)>,
    crate::outbox::writer::WriterSender,
);

/// How long the feedback consumer waits for an outcome to be on disk before trying again.
const DURABLE_WAIT: Duration = Duration::from_secs(10);

/// Where the feedback consumer's outcomes go: an alert a shelve cleared, then the command's
/// status, each on disk in the outbox before it returns true. (If the status cannot be stored
/// after the alert was, both are sent again on the retry: the alert's clear twice.)
fn command_reporter(
    origin: crate::report::message::Origin,
    writer: crate::outbox::writer::WriterSender,
    clock: Clock,
) -> crate::analyze::feedback::consumer::Report {
    use crate::report::message;
    Box::new(move |status, cleared| {
        if let Some(alert) = cleared {
            let rec = message::alert_record(
                &origin,
                &message::new_record_id(),
                alert,
                clock.unix_ms(),
                None,
                None,
            );
            if !writer.send_durable(rec, DURABLE_WAIT) {
                return false;
            }
        }
        let rec = message::command_status_record(
            &origin,
            &message::new_record_id(),
            status,
            clock.unix_ms(),
        );
        writer.send_durable(rec, DURABLE_WAIT)
    })
}

/// Opens the outbox (moving an unreadable one aside), starts its writer thread and, with a
/// `[kafka]` section, the forwarder.
fn start_outbox(config: &Config, clock: Clock) -> Result<OutboxParts, StartError> {
    use crate::outbox::{self, Outbox, SledOutbox, sled_store::Opened};
    let dir = config.outbox.resolved_dir(&config.agent.data_dir);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|error| StartError::DataDir {
            path: parent.to_path_buf(),
            error,
        })?;
    }
    let (store, opened) = SledOutbox::open(&dir, config.outbox.max_bytes, clock.unix_ms() / 1000)
        .map_err(|error| StartError::Outbox {
        path: dir.clone(),
        error,
    })?;
    match opened {
        Opened::MovedAside { moved_to, reason } => {
            metrics::counter!("edgewatch_outbox_moved_aside_total").increment(1);
            tracing::error!(
                outbox = %dir.display(),
                moved_to = %moved_to.display(),
                %reason,
                "the outbox could not be opened: moved aside, starting with an empty one"
            );
        }
        Opened::Clean { corrupt_records } => {
            let d = store.depth();
            tracing::info!(
                outbox = %dir.display(),
                records = d.records,
                bytes = d.bytes,
                corrupt_records,
                "outbox opened"
            );
        }
    }
    let store: Arc<dyn Outbox> = Arc::new(store);
    outbox::publish_gauges(&*store, clock.unix_ms());
    let (tx, rx) = outbox::writer::queue(config.outbox.queue_capacity);
    let flushed = Arc::new(tokio::sync::Notify::new());
    let writer = outbox::writer::spawn(
        store.clone(),
        config.outbox.flush_interval_ms,
        rx,
        flushed.clone(),
        clock,
    )
    .map_err(|error| StartError::Thread {
        what: "outbox writer",
        error,
    })?;
    let forwarder = config.kafka.clone().map(|k| {
        let stop = CancellationToken::new();
        let task = tokio::spawn(crate::forward::run(
            k,
            store.clone(),
            flushed,
            stop.clone(),
            clock,
        ));
        (task, stop)
    });
    if forwarder.is_none() {
        tracing::info!("no [kafka] section: records are kept in the outbox, not sent");
    }
    let summary_ms = (config.outbox.summary_interval_s * 1000.0) as u64;
    Ok((
        crate::report::Reporter::new(
            crate::report::message::Origin::new(&config.agent.id, &config.config_hash),
            summary_ms,
            config.report.input_sample_per_interval,
            tx.clone(),
        ),
        store,
        writer,
        forwarder,
        tx,
    ))
}

fn heartbeat(
    h: &Health,
    now_ms: u64,
    store: &dyn crate::outbox::Outbox,
) -> crate::report::message::Heartbeat {
    let t = h.throughput();
    let d = store.depth();
    crate::report::message::Heartbeat {
        uptime_s: now_ms as f64 / 1000.0,
        frames_assembled: t.frames_assembled,
        windows_scored: t.windows_scored,
        outbox_records: d.records,
        outbox_bytes: d.bytes,
        outbox_dropped: crate::outbox::dropped_total(),
    }
}

impl Running {
    /// The way to reload the model while running (`None`: no classifier).
    pub fn model(&self) -> Option<ModelControl> {
        self.model.clone()
    }

    /// Waits for every stage to finish after the shutdown token was cancelled, at most the
    /// drain timeout. Returns false if the deadline passed first.
    pub async fn join(self) -> bool {
        // The analysis thread ends when its input closes: this control's sender must go first,
        // or the thread (and every stage after it) would wait for it.
        drop(self.model);
        let deadline = tokio::time::Instant::now() + self.drain;
        for task in self.tasks {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                tracing::error!("a pipeline task did not drain before the deadline");
                return false;
            }
        }
        let threads = self.threads;
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        });
        let drained = tokio::time::timeout_at(deadline, joined).await.is_ok();
        if let Some((task, stop)) = self.forwarder {
            // The writer has flushed: let the forwarder collect its last reports and stop.
            stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let t = self.health.throughput();
        tracing::info!(
            frames_assembled = t.frames_assembled,
            windows_cut = t.windows_cut,
            windows_scored = t.windows_scored,
            reports_consumed = t.reports_consumed,
            summary = %serde_json::to_string(&t).unwrap_or_default(),
            "pipeline totals"
        );
        drained
    }
}

/// A future that resolves when SIGINT or SIGTERM arrives. Both are registered when this is
/// called, not when the future is first polled: from then on a signal is held for the future
/// instead of ending the process by the default action, so a `systemctl stop` during start-up
/// still drains the pipeline. Call it before starting anything that must be drained.
pub fn termination_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
