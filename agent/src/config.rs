//! The agent's configuration: one TOML file.
//!
//! Parsing (serde, `deny_unknown_fields` everywhere) catches unknown fields, wrong types and
//! missing required fields, with the line and the field name. [`Config::validate`] then checks
//! what types cannot: ranges, files and devices that must exist, and consistency between
//! sections (every sensor belongs to one asset, mappings name existing assets). Every problem is
//! reported as a [`FieldError`] whose `field` is the TOML path of the offending value, e.g.
//! `asset[1].shaft_rpm` or `mqtt.qos`.
//!
//! Defaults are `const fn`s beside the fields and listed in `docs/config.md`.

use crate::analyze::features::{FaultOrders, FeatureConfig, MachineContext};
use crate::analyze::{AnalysisConfig, AnalyzedAsset};
use crate::assemble::AssemblerConfig;
use crate::assemble::window::WindowConfig;
pub use crate::field::FieldError;
pub use crate::ingest::config::{MqttSource, SerialSource};
pub use crate::queue::WhenFull;
use edgewatch_common::bearing::{BearingError, BearingGeometry, deserialize_geometry_or_preset};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

// The assembler cuts windows no shorter than the feature extractor accepts; it keeps its own
// copy of the bound because a stage never names the stages after it.
const _: () =
    assert!(crate::assemble::window::MIN_WINDOW_LEN == crate::analyze::features::MIN_WINDOW_LEN);

/// A configuration that cannot be used. Not recoverable without editing the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid TOML, or a field that is unknown, missing, or of the wrong type.
    #[error("{0}")]
    Parse(String),
    /// Values that parse but are not acceptable.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Identity and storage of this agent.
    #[serde(default)]
    pub agent: AgentSection,
    /// Serial sources (`[[serial]]`), any number.
    #[serde(default)]
    pub serial: Vec<SerialSource>,
    /// The MQTT source, if any.
    #[serde(default)]
    pub mqtt: Option<MqttSource>,
    /// Monitored machines (`[[asset]]`), at least one.
    #[serde(default, rename = "asset")]
    pub assets: Vec<Asset>,
    /// Window size (a duration, shaft revolutions or a sample count) and overlap.
    #[serde(default)]
    pub window: WindowConfig,
    /// Feature extraction settings.
    #[serde(default)]
    pub features: FeatureConfig,
    /// Channels between the stages.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// The Prometheus metrics and health endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Per-asset learned baseline.
    #[serde(default)]
    pub baseline: crate::analyze::baseline::BaselineConfig,
    /// Alert thresholds and hysteresis.
    #[serde(default)]
    pub alerts: crate::analyze::alert::AlertConfig,
    /// When the envelope line families decide the bearing part.
    #[serde(default)]
    pub diagnosis: crate::analyze::diagnosis::DiagnosisConfig,
    /// The on-device classifier.
    #[serde(default)]
    pub model: crate::analyze::model::ModelConfig,
    /// Health indicator, onset of degradation and remaining life per sensor.
    #[serde(default)]
    pub health: crate::analyze::health::HealthConfig,
    /// The durable outbox.
    #[serde(default)]
    pub outbox: crate::outbox::OutboxConfig,
    /// Kafka forwarding; without it records stay in the outbox (up to its cap).
    #[serde(default)]
    pub kafka: Option<crate::forward::KafkaConfig>,
    /// What the records carry beyond the defaults.
    #[serde(default)]
    pub report: ReportConfig,
    /// First 16 hex digits of SHA-256 of the configuration text this was parsed from (the
    /// records' `lineage.config_hash`).
    #[serde(skip)]
    pub config_hash: String,
    /// Operators' commands and labels from the feedback topic.
    #[serde(default)]
    pub feedback: crate::analyze::feedback::FeedbackConfig,
}

/// `[report]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// Windows whose model inputs each summary carries as a uniform random sample (0: none,
    /// the default; at most 1000). Each costs about 380 bytes of JSON per summary
    /// (docs/feedback-loop.md).
    #[serde(default)]
    pub input_sample_per_interval: usize,
}

/// First 16 hex digits of SHA-256 of `bytes`.
pub fn config_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `[agent]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Agent id, written into every record it sends.
    #[serde(default = "AgentSection::default_id")]
    pub id: String,
    /// Directory for the outbox and learned baselines.
    #[serde(default = "AgentSection::default_data_dir")]
    pub data_dir: PathBuf,
    /// Labels a model package can address this agent by (`[agent] labels = ["line-2",
    /// "canary"]`).
    #[serde(default)]
    pub labels: Vec<String>,
}

impl AgentSection {
    /// `"edgewatch"`.
    pub fn default_id() -> String {
        "edgewatch".into()
    }
    /// `/var/lib/edgewatch` (the systemd unit's `StateDirectory`).
    pub fn default_data_dir() -> PathBuf {
        PathBuf::from("/var/lib/edgewatch")
    }
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            id: Self::default_id(),
            data_dir: Self::default_data_dir(),
            labels: Vec::new(),
        }
    }
}

/// `[[asset]]`: one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    /// Unique id, used as the Kafka key and in alerts.
    pub id: String,
    /// Nominal shaft speed, rpm.
    pub shaft_rpm: f64,
    /// The monitored bearing: a preset name (`"skf-6205"`) or a geometry table.
    #[serde(deserialize_with = "deserialize_geometry_or_preset")]
    pub bearing: BearingGeometry,
    /// Sensor ids mounted on this asset.
    #[serde(default)]
    pub sensors: Vec<u32>,
    /// Velocity severity zone limits, mm/s, for this machine's class; default:
    /// `features.zone_limits`.
    #[serde(default)]
    pub severity: Option<crate::analyze::features::ZoneLimits>,
    /// The asset's sensors sample in snapshots (bursts) rather than continuously. A sensor's
    /// own sampling-plan frame overrides this; configuring it lets the agent check the rest of
    /// the configuration against it.
    #[serde(default)]
    pub burst: Option<BurstPlan>,
}

/// `[[asset]] burst = { samples = .., period_s = .. }`: snapshot sensors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstPlan {
    /// Samples per axis in one burst, at least 256 (the shortest window that can be analysed).
    pub samples: u32,
    /// Seconds from the start of one burst to the start of the next, above 0 and at most a day.
    pub period_s: f64,
}

impl BurstPlan {
    /// As the protocol announces it.
    pub fn mode(&self) -> edgewatch_protocol::SamplingMode {
        edgewatch_protocol::SamplingMode::Burst {
            samples: self.samples,
            period_ms: (self.period_s * 1000.0)
                .round()
                .clamp(1.0, f64::from(u32::MAX)) as u32,
        }
    }
}

/// The longest commissioning (baseline or health reference) a snapshot asset's bursts may need:
/// beyond it the configuration cannot mean anything useful.
const MAX_COMMISSIONING_S: f64 = 30.0 * 86_400.0;

/// `[pipeline]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Frames buffered between the sources and the windowing stage.
    #[serde(default = "PipelineConfig::default_ingest_capacity")]
    pub ingest_capacity: usize,
    /// What a source does when that channel is full.
    #[serde(default = "PipelineConfig::default_when_full")]
    pub ingest_when_full: WhenFull,
    /// Windows buffered before feature extraction.
    #[serde(default = "PipelineConfig::default_window_capacity")]
    pub window_capacity: usize,
    /// Longest time a frame is held waiting for a missing predecessor, ms.
    #[serde(default = "PipelineConfig::default_reorder_wait_ms")]
    pub reorder_wait_ms: u64,
    /// Most frames held per sensor waiting for a missing predecessor.
    #[serde(default = "PipelineConfig::default_reorder_max_frames")]
    pub reorder_max_frames: usize,
    /// On shutdown, how long later stages may take to drain, ms.
    #[serde(default = "PipelineConfig::default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
}

impl PipelineConfig {
    /// 4096 frames (about 3 s of 8 sensors at 12.8 kHz in 256-sample blocks).
    pub const fn default_ingest_capacity() -> usize {
        4096
    }
    /// `block`: nothing is dropped by the agent itself.
    pub const fn default_when_full() -> WhenFull {
        WhenFull::Block
    }
    /// 256 windows.
    pub const fn default_window_capacity() -> usize {
        256
    }
    /// 500 ms.
    pub const fn default_reorder_wait_ms() -> u64 {
        500
    }
    /// 16 frames.
    pub const fn default_reorder_max_frames() -> usize {
        16
    }
    /// 10 s.
    pub const fn default_drain_timeout_ms() -> u64 {
        10_000
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            ingest_capacity: Self::default_ingest_capacity(),
            ingest_when_full: Self::default_when_full(),
            window_capacity: Self::default_window_capacity(),
            reorder_wait_ms: Self::default_reorder_wait_ms(),
            reorder_max_frames: Self::default_reorder_max_frames(),
            drain_timeout_ms: Self::default_drain_timeout_ms(),
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the HTTP endpoint serving `/metrics` (Prometheus) and `/health`; empty to
    /// disable.
    #[serde(default = "MetricsConfig::default_listen")]
    pub listen: String,
}

impl MetricsConfig {
    /// `127.0.0.1:9187`: local only; put a reverse proxy in front to expose it.
    pub fn default_listen() -> String {
        "127.0.0.1:9187".into()
    }

    /// The parsed address, or `None` when disabled.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: Self::default_listen(),
        }
    }
}

/// Collects field errors.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            reason: reason.into(),
        });
    }

    fn check(&mut self, ok: bool, field: impl Into<String>, reason: impl Into<String>) {
        if !ok {
            self.add(field, reason);
        }
    }

    fn file_exists(&mut self, path: &Option<PathBuf>, field: &str) {
        if let Some(p) = path {
            self.check(
                p.is_file(),
                field,
                format!("file {} does not exist or is not readable", p.display()),
            );
        }
    }
}

impl Config {
    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Self::parse(&text)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text without validating it.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut config: Self =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.config_hash = config_hash(text.as_bytes());
        Ok(config)
    }

    /// Asset of each sensor id: from `asset.sensors` and the serial mappings.
    pub fn sensor_assets(&self) -> BTreeMap<u32, String> {
        let mut map = BTreeMap::new();
        for a in &self.assets {
            for s in &a.sensors {
                map.insert(*s, a.id.clone());
            }
        }
        for s in &self.serial {
            for (sensor, asset) in &s.sensors {
                if let Ok(id) = sensor.parse() {
                    map.insert(id, asset.clone());
                }
            }
        }
        map
    }

    /// What the assembler needs: windows, reordering limits, sensor-to-asset map, trends.
    pub fn assembler(&self) -> AssemblerConfig {
        AssemblerConfig {
            window: self.window,
            reorder_max_frames: self.pipeline.reorder_max_frames,
            reorder_wait_ms: self.pipeline.reorder_wait_ms,
            sensor_assets: self.sensor_assets(),
            assets: self.assets.iter().map(|a| a.id.clone()).collect(),
            shaft_hz: self
                .assets
                .iter()
                .map(|a| (a.id.clone(), a.shaft_rpm / 60.0))
                .collect(),
            temperature: self.features.temperature,
            sampling: self
                .sensor_assets()
                .into_iter()
                .filter_map(|(sensor, asset)| {
                    let plan = self.assets.iter().find(|a| a.id == asset)?.burst?;
                    Some((sensor, plan.mode()))
                })
                .collect(),
        }
    }

    /// What the model lifecycle needs: identity, trusted keys (unusable ones are logged and
    /// left out), rules, and where its state is kept.
    pub fn lifecycle(&self) -> crate::analyze::lifecycle::LifecycleConfig {
        let trusted_keys = self
            .model
            .trusted_keys
            .iter()
            .filter_map(|k| match crate::analyze::lifecycle::package::read_public_key(k) {
                Ok(key) => Some(key),
                Err(e) => {
                    tracing::warn!(error = %e, "trusted key unusable: packages it signs are refused");
                    None
                }
            })
            .collect();
        crate::analyze::lifecycle::LifecycleConfig {
            agent_id: self.agent.id.clone(),
            labels: self.agent.labels.clone(),
            trusted_keys,
            rules: self.model.rollout,
            variant: self.model.variant,
            window: self.window,
            alerts: self.alerts.clone(),
            state_dir: Some(self.agent.data_dir.join("models")),
        }
    }

    /// The feedback topic's full name, when it is read (`[feedback]` enabled, `[kafka]` set).
    pub fn feedback_topic(&self) -> Option<String> {
        let kafka = self.kafka.as_ref()?;
        self.feedback
            .is_enabled(true)
            .then(|| format!("{}{}", kafka.topic_prefix, self.feedback.topic))
    }

    /// What the analysis thread needs to act on commands, when the feedback topic is read:
    /// identity, trusted keys (unusable ones are logged and left out), assets, state folder.
    pub fn commands(&self) -> Option<crate::analyze::feedback::CommandsConfig> {
        self.feedback_topic()?;
        let trusted_keys = self
            .feedback
            .trusted_keys
            .iter()
            .filter_map(|k| match crate::analyze::lifecycle::package::read_public_key(k) {
                Ok(key) => Some(key),
                Err(e) => {
                    tracing::warn!(error = %e, "trusted key unusable: commands it signs are refused");
                    None
                }
            })
            .collect();
        Some(crate::analyze::feedback::CommandsConfig {
            agent_id: self.agent.id.clone(),
            trusted_keys,
            assets: self.assets.iter().map(|a| a.id.clone()).collect(),
            state_dir: Some(self.agent.data_dir.join("feedback")),
            max_age_ms: (self.feedback.max_command_age_s * 1000.0) as u64,
        })
    }

    /// What the analysis stage needs: features, baseline, alerts and each machine's context.
    pub fn analysis(&self) -> AnalysisConfig {
        AnalysisConfig {
            features: self.features.clone(),
            baseline: self.baseline,
            alerts: self.alerts.clone(),
            diagnosis: self.diagnosis,
            health: self.health,
            alert_id_prefix: String::new(),
            window: self.window,
            data_dir: Some(self.agent.data_dir.clone()),
            feedback: self.commands(),
            assets: self
                .assets
                .iter()
                .map(|a| {
                    let o = a.bearing.orders();
                    AnalyzedAsset {
                        id: a.id.clone(),
                        context: MachineContext {
                            shaft_hz: a.shaft_rpm / 60.0,
                            orders: FaultOrders {
                                bpfo: o.bpfo,
                                bpfi: o.bpfi,
                                bsf: o.bsf,
                                ftf: o.ftf,
                            },
                        },
                        zone_limits: a.severity,
                    }
                })
                .collect(),
        }
    }

    /// What is missing on this machine but does not stop the agent: a serial device not plugged
    /// in (its source keeps retrying until it appears), a model manifest that is not there (the
    /// model built into the agent runs instead). `validate` prints them, `run` logs them; the
    /// agent starts degraded rather than not at all.
    pub fn warnings(&self) -> Vec<FieldError> {
        let mut w = Vec::new();
        for (i, s) in self.serial.iter().enumerate() {
            if !s.device.exists() {
                w.push(FieldError::new(
                    format!("serial[{i}].device"),
                    format!(
                        "{} does not exist (yet): the agent starts and keeps trying to open it; \
                         plug the sensor in, or fix the path",
                        s.device.display()
                    ),
                ));
            }
        }
        if self.model.enabled
            && let Some(m) = &self.model.manifest
            && !m.is_file()
        {
            w.push(FieldError::new(
                "model.manifest",
                format!(
                    "file {} does not exist or is not readable: the built-in model runs instead",
                    m.display()
                ),
            ));
        }
        for (i, k) in self.model.trusted_keys.iter().enumerate() {
            if self.model.enabled && !k.exists() {
                w.push(FieldError::new(
                    format!("model.trusted_keys[{i}]"),
                    format!(
                        "{} does not exist: packages signed by it are refused until it is there",
                        k.display()
                    ),
                ));
            }
        }
        if self.feedback_topic().is_some() {
            for (i, k) in self.feedback.trusted_keys.iter().enumerate() {
                if !k.exists() {
                    w.push(FieldError::new(
                        format!("feedback.trusted_keys[{i}]"),
                        format!(
                            "{} does not exist: commands signed by it are refused until it is there",
                            k.display()
                        ),
                    ));
                }
            }
        }
        if self.model.enabled
            && let Some(d) = &self.model.package_dir
            && !d.is_dir()
        {
            w.push(FieldError::new(
                "model.package_dir",
                format!(
                    "{} is not a folder (yet): no packages are read from it",
                    d.display()
                ),
            ));
        }
        w
    }

    /// Checks everything parsing cannot; returns every problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        p.check(
            !self.agent.id.trim().is_empty(),
            "agent.id",
            "must not be empty",
        );
        p.check(
            !self.serial.is_empty() || self.mqtt.is_some(),
            "serial",
            "no source: configure at least one [[serial]] port or an [mqtt] broker",
        );
        for (i, s) in self.serial.iter().enumerate() {
            let f = |name: &str| format!("serial[{i}].{name}");

            p.check(
                (50..=4_000_000).contains(&s.baud),
                f("baud"),
                format!("{} is not a baud rate between 50 and 4000000", s.baud),
            );
            p.check(s.reconnect_min_ms > 0, f("reconnect_min_ms"), "must be > 0");
            p.check(
                s.reconnect_max_ms >= s.reconnect_min_ms,
                f("reconnect_max_ms"),
                format!(
                    "{} is less than reconnect_min_ms {}",
                    s.reconnect_max_ms, s.reconnect_min_ms
                ),
            );
            for (sensor, asset) in &s.sensors {
                if sensor.parse::<u32>().is_err() {
                    p.add(
                        format!("serial[{i}].sensors.{sensor}"),
                        "sensor ids are whole numbers (0 to 4294967295)",
                    );
                }
                if !self.assets.iter().any(|a| &a.id == asset) {
                    p.add(
                        format!("serial[{i}].sensors.{sensor}"),
                        format!("names asset `{asset}`, which no [[asset]] defines"),
                    );
                }
            }
        }
        if let Some(m) = &self.mqtt {
            if let Err(e) = m.endpoint() {
                p.add("mqtt.url", e);
            }
            p.check(
                m.qos <= 2,
                "mqtt.qos",
                format!("{} is not 0, 1 or 2", m.qos),
            );
            p.check(
                !m.client_id.is_empty(),
                "mqtt.client_id",
                "must not be empty",
            );
            p.check(
                !m.topics.is_empty(),
                "mqtt.topics",
                "subscribe to at least one topic",
            );
            for (i, t) in m.topics.iter().enumerate() {
                let bad_wildcard = t.split('/').enumerate().any(|(k, level)| {
                    (level.contains('#') && (level != "#" || k + 1 != t.split('/').count()))
                        || (level.contains('+') && level != "+")
                });
                p.check(
                    !t.is_empty() && !bad_wildcard,
                    format!("mqtt.topics[{i}]"),
                    format!("`{t}` is not a valid MQTT topic filter"),
                );
            }
            p.check(
                (1..=65535).contains(&m.keep_alive_s),
                "mqtt.keep_alive_s",
                "must be between 1 and 65535",
            );
            p.check(
                m.reconnect_min_ms > 0,
                "mqtt.reconnect_min_ms",
                "must be > 0",
            );
            p.check(
                m.reconnect_max_ms >= m.reconnect_min_ms,
                "mqtt.reconnect_max_ms",
                "is less than reconnect_min_ms",
            );
            p.check(
                !(m.password.is_some() && m.password_file.is_some()),
                "mqtt.password",
                "give either password or password_file, not both",
            );
            p.check(
                m.username.is_some() || (m.password.is_none() && m.password_file.is_none()),
                "mqtt.username",
                "a password needs a username",
            );
            p.file_exists(&m.password_file, "mqtt.password_file");
            p.file_exists(&m.ca_file, "mqtt.ca_file");
            p.file_exists(&m.cert_file, "mqtt.cert_file");
            p.file_exists(&m.key_file, "mqtt.key_file");
            p.check(
                m.cert_file.is_some() == m.key_file.is_some(),
                "mqtt.key_file",
                "cert_file and key_file go together",
            );
            let tls = m.endpoint().map(|e| e.2).unwrap_or(false);
            p.check(
                tls || (m.ca_file.is_none() && m.cert_file.is_none()),
                "mqtt.ca_file",
                "TLS files are set but the url is mqtt://, not mqtts://",
            );
        }
        p.check(
            !self.assets.is_empty(),
            "asset",
            "no [[asset]]: configure the machines the sensors are on",
        );
        let mut ids = BTreeSet::new();
        let mut owners: BTreeMap<u32, &str> = BTreeMap::new();
        for (i, a) in self.assets.iter().enumerate() {
            let f = |name: &str| format!("asset[{i}].{name}");
            p.check(!a.id.trim().is_empty(), f("id"), "must not be empty");
            p.check(
                a.id.len() <= 255,
                f("id"),
                format!(
                    "{} bytes long: at most 255 (it is the Kafka key)",
                    a.id.len()
                ),
            );
            p.check(
                ids.insert(a.id.as_str()),
                f("id"),
                format!("`{}` is used by another asset", a.id),
            );
            p.check(
                a.shaft_rpm.is_finite() && a.shaft_rpm >= 30.0 && a.shaft_rpm <= 60_000.0,
                f("shaft_rpm"),
                format!("{} is not between 30 and 60000 rpm", a.shaft_rpm),
            );
            if let Err(BearingError::Invalid { field, reason }) = a.bearing.validate() {
                p.add(f(&format!("bearing.{field}")), reason);
            }
            for s in &a.sensors {
                if let Some(other) = owners.insert(*s, &a.id) {
                    p.add(
                        f("sensors"),
                        format!("sensor {s} is also on asset `{other}`"),
                    );
                }
            }
            if let Some(Err(e)) = a.severity.map(|s| s.validate()) {
                p.add(f("severity"), e.to_string());
            }
            if let Some(b) = a.burst {
                p.check(
                    b.samples as usize >= crate::assemble::window::MIN_WINDOW_LEN,
                    f("burst.samples"),
                    format!(
                        "{} samples per burst are fewer than the {} a window needs: no burst \
                         could be analysed",
                        b.samples,
                        crate::assemble::window::MIN_WINDOW_LEN
                    ),
                );
                let period_ok =
                    b.period_s.is_finite() && b.period_s > 0.0 && b.period_s <= 86_400.0;
                p.check(
                    period_ok,
                    f("burst.period_s"),
                    format!("{} s is not above 0 and at most 86400 (a day)", b.period_s),
                );
                // Each burst is one window (or a few): commissioning takes that many bursts.
                for (field, windows) in [
                    ("baseline.windows", self.baseline.windows),
                    ("health.commissioning", self.health.commissioning),
                ] {
                    let span_s = windows as f64 * b.period_s;
                    p.check(
                        !period_ok || span_s <= MAX_COMMISSIONING_S,
                        field,
                        format!(
                            "{windows} windows take {:.0} days with asset `{}`'s bursts every {} \
                             s (at most 30 days): lower {field} or burst more often",
                            span_s / 86_400.0,
                            a.id,
                            b.period_s
                        ),
                    );
                }
            }
        }
        let mapped: usize = self.serial.iter().map(|s| s.sensors.len()).sum();
        p.check(
            self.assets.iter().any(|a| !a.sensors.is_empty()) || mapped > 0,
            "asset",
            "no sensor is assigned to any asset (set `sensors = [..]` on an asset)",
        );
        p.0.extend(self.window.problems());
        if let Err(e) = self.features.validate() {
            p.add("features", e.to_string());
        }
        let b = &self.baseline;
        p.check(
            b.windows >= 20,
            "baseline.windows",
            format!(
                "{} windows are too few to learn from (at least 20)",
                b.windows
            ),
        );
        p.check(
            b.drift_windows >= 5,
            "baseline.drift_windows",
            "must be >= 5",
        );
        p.check(
            b.anomaly_threshold.is_finite() && b.anomaly_threshold > 0.0,
            "baseline.anomaly_threshold",
            "must be > 0",
        );
        p.check(
            b.drift_threshold.is_finite() && b.drift_threshold > 0.0,
            "baseline.drift_threshold",
            "must be > 0",
        );
        p.check(
            self.report.input_sample_per_interval <= 1000,
            "report.input_sample_per_interval",
            "must be at most 1000",
        );
        for (field, reason) in self.alerts.problems() {
            p.add(format!("alerts.{field}"), reason);
        }
        for (field, reason) in self.diagnosis.problems() {
            p.add(format!("diagnosis.{field}"), reason);
        }
        for (field, reason) in self.health.problems() {
            p.add(format!("health.{field}"), reason);
        }
        p.check(self.model.queue > 0, "model.queue", "must be > 0");
        for (field, reason) in self.model.rollout.validate() {
            p.add(format!("model.rollout.{field}"), reason);
        }
        for (i, k) in self.model.trusted_keys.iter().enumerate() {
            // A missing key file is a warning (packages are refused until it is there); one
            // that is there and is not a key cannot mean anything.
            if k.exists()
                && let Err(e) = crate::analyze::lifecycle::package::read_public_key(k)
            {
                p.add(format!("model.trusted_keys[{i}]"), e.to_string());
            }
        }
        for (i, l) in self.agent.labels.iter().enumerate() {
            p.check(
                !l.trim().is_empty(),
                format!("agent.labels[{i}]"),
                "must not be empty",
            );
        }
        let pl = &self.pipeline;
        p.check(
            pl.ingest_capacity > 0,
            "pipeline.ingest_capacity",
            "must be > 0",
        );
        p.check(
            pl.window_capacity > 0,
            "pipeline.window_capacity",
            "must be > 0",
        );
        p.check(
            pl.reorder_max_frames > 0,
            "pipeline.reorder_max_frames",
            "must be > 0",
        );
        p.check(
            self.metrics.listen.is_empty() || self.metrics.addr().is_some(),
            "metrics.listen",
            format!(
                "`{}` is not an address like 127.0.0.1:9187 (empty disables the endpoint)",
                self.metrics.listen
            ),
        );
        p.0.extend(self.outbox.problems());
        if let Some(k) = &self.kafka {
            p.0.extend(k.validate());
        }
        let fb = &self.feedback;
        p.check(
            fb.max_command_age_s.is_finite() && fb.max_command_age_s >= 1.0,
            "feedback.max_command_age_s",
            "must be at least 1 s",
        );
        p.check(
            !(fb.enabled == Some(true) && self.kafka.is_none()),
            "feedback.enabled",
            "the feedback topic is read from Kafka: add a [kafka] section, or set it false",
        );
        let full = format!(
            "{}{}",
            self.kafka
                .as_ref()
                .map_or_else(crate::forward::KafkaConfig::default_topic_prefix, |k| k
                    .topic_prefix
                    .clone()),
            fb.topic
        );
        p.check(
            !fb.topic.is_empty()
                && full.len() <= 249
                && full
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
            "feedback.topic",
            format!("`{full}` is not a Kafka topic name (letters, digits, . _ -)"),
        );
        for (i, k) in fb.trusted_keys.iter().enumerate() {
            // Missing: a warning; there and not a key: cannot mean anything.
            if k.exists()
                && let Err(e) = crate::analyze::lifecycle::package::read_public_key(k)
            {
                p.add(format!("feedback.trusted_keys[{i}]"), e.to_string());
            }
        }
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(p.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid configuration using a file that exists everywhere as its "device".
    fn valid() -> String {
        r#"
[agent]
id = "gw-1"
data_dir = "/tmp/edgewatch-test"

[[serial]]
device = "Cargo.toml"
baud = 921600

[mqtt]
url = "mqtt://127.0.0.1:1883"
topics = ["sensors/#"]

[[asset]]
id = "pump-1"
shaft_rpm = 1480
bearing = "skf-6205"
sensors = [1, 2]

[[asset]]
id = "fan-1"
shaft_rpm = 990
bearing = { rolling_elements = 9, element_diameter_mm = 7.94, pitch_diameter_mm = 39.04, contact_angle_deg = 0 }
sensors = [3]
"#
        .to_string()
    }

    /// The error text for a configuration, parse or validation.
    fn error_of(text: &str) -> String {
        match Config::parse(text).and_then(|c| c.validate().map(|_| c)) {
            Ok(_) => panic!("configuration was accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    fn invalid_fields(text: &str) -> Vec<String> {
        match Config::parse(text).expect("parses").validate() {
            Err(ConfigError::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn the_valid_example_is_accepted_with_its_defaults() {
        let c = Config::parse(&valid()).unwrap();
        c.validate().unwrap();
        assert_eq!(c.window, WindowConfig::default());
        assert_eq!(
            c.window.size(),
            crate::assemble::window::WindowSize::DurationS(1.0)
        );
        assert_eq!(c.window.overlap, 0.5);
        assert_eq!(c.mqtt.as_ref().unwrap().qos, 1);
        assert!(!c.mqtt.as_ref().unwrap().clean_session);
        assert_eq!(c.sensor_assets().get(&3).map(String::as_str), Some("fan-1"));
    }

    #[test]
    fn an_unknown_field_is_named() {
        let text = valid().replace("baud = 921600", "baud = 921600\nparity = \"even\"");
        let e = error_of(&text);
        assert!(e.contains("parity"), "{e}");
    }

    #[test]
    fn a_wrong_type_is_named() {
        let text = valid().replace("shaft_rpm = 1480", "shaft_rpm = \"fast\"");
        let e = error_of(&text);
        assert!(e.contains("shaft_rpm"), "{e}");
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let text = valid().replace("url = \"mqtt://127.0.0.1:1883\"", "");
        let e = error_of(&text);
        assert!(e.contains("url"), "{e}");
    }

    #[test]
    fn out_of_range_numbers_are_named() {
        let text = valid()
            .replace("shaft_rpm = 990", "shaft_rpm = 0")
            .replace(
                "topics = [\"sensors/#\"]",
                "topics = [\"sensors/#\"]\nqos = 3",
            )
            .replace(
                "[[asset]]\nid = \"pump-1\"",
                "[window]\noverlap = 0.95\n\n[[asset]]\nid = \"pump-1\"",
            );
        let fields = invalid_fields(&text);
        for f in ["asset[1].shaft_rpm", "mqtt.qos", "window.overlap"] {
            assert!(fields.contains(&f.to_string()), "{f} not in {fields:?}");
        }
    }

    /// The valid example with a `[window]` section of `body`.
    fn with_window(body: &str) -> String {
        valid().replace(
            "[[asset]]\nid = \"pump-1\"",
            &format!("[window]\n{body}\n\n[[asset]]\nid = \"pump-1\""),
        )
    }

    #[test]
    fn a_window_is_a_duration_revolutions_or_a_length() {
        use crate::assemble::window::WindowSize;
        for (body, size) in [
            ("duration_s = 2.0", WindowSize::DurationS(2.0)),
            ("revolutions = 25", WindowSize::Revolutions(25.0)),
            ("length = 8192\noverlap = 0.0", WindowSize::Length(8192)),
        ] {
            let c = Config::parse(&with_window(body)).unwrap();
            c.validate().unwrap();
            assert_eq!(c.window.size(), size, "{body}");
            assert_eq!(c.assembler().window, c.window);
            assert_eq!(c.analysis().window, c.window);
        }
        // Revolutions are counted on each asset's own shaft.
        let c = Config::parse(&with_window("revolutions = 25")).unwrap();
        let shafts = c.assembler().shaft_hz;
        assert_eq!(shafts.get("pump-1"), Some(&(1480.0 / 60.0)));
        assert_eq!(shafts.get("fan-1"), Some(&(990.0 / 60.0)));
    }

    #[test]
    fn two_window_sizes_are_refused_naming_the_extra_field() {
        let fields = invalid_fields(&with_window("duration_s = 1.0\nlength = 8192"));
        assert_eq!(fields, ["window.length"]);
        let fields = invalid_fields(&with_window("duration_s = 1.0\nrevolutions = 20"));
        assert_eq!(fields, ["window.revolutions"]);
        let e = error_of(&with_window("revolutions = 20\nlength = 8192"));
        assert!(
            e.contains("window.length") && e.contains("revolutions is also set"),
            "{e}"
        );
    }

    #[test]
    fn a_window_size_out_of_range_is_named() {
        for (body, field) in [
            ("duration_s = 0", "window.duration_s"),
            ("duration_s = -0.5", "window.duration_s"),
            ("duration_s = 61", "window.duration_s"),
            ("revolutions = 0", "window.revolutions"),
            ("length = 100", "window.length"),
            ("length = 8191", "window.length"),
            ("length = 131072", "window.length"),
        ] {
            assert_eq!(invalid_fields(&with_window(body)), [field], "{body}");
        }
        let e = error_of(&with_window("duration_s = 0"));
        assert!(e.starts_with("window.duration_s: "), "{e}");
    }

    #[test]
    fn a_missing_device_or_model_is_a_warning_a_missing_certificate_an_error() {
        let text = valid()
            .replace("device = \"Cargo.toml\"", "device = \"/dev/ttyNOPE9\"")
            .replace(
                "url = \"mqtt://127.0.0.1:1883\"",
                "url = \"mqtts://broker:8883\"\nca_file = \"/nonexistent/ca.pem\"",
            )
            + "[model]\nmanifest = \"/nonexistent/manifest.json\"\n";
        assert_eq!(invalid_fields(&text), ["mqtt.ca_file"]);
        let c = Config::parse(&text).unwrap();
        let warned: Vec<String> = c.warnings().into_iter().map(|w| w.field).collect();
        assert_eq!(warned, ["serial[0].device", "model.manifest"]);
        assert!(Config::parse(&valid()).unwrap().warnings().is_empty());
    }

    #[test]
    fn inconsistent_sections_are_named() {
        let text = valid().replace("sensors = [3]", "sensors = [2]").replace(
            "baud = 921600",
            "baud = 921600\n[serial.sensors]\n9 = \"no-such-asset\"",
        );
        let fields = invalid_fields(&text);
        assert!(
            fields.contains(&"asset[1].sensors".to_string()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"serial[0].sensors.9".to_string()),
            "{fields:?}"
        );
        let dup = valid().replace("id = \"fan-1\"", "id = \"pump-1\"");
        assert!(invalid_fields(&dup).contains(&"asset[1].id".to_string()));
        let long = valid().replace("id = \"fan-1\"", &format!("id = \"{}\"", "f".repeat(256)));
        assert_eq!(invalid_fields(&long), ["asset[1].id"]);
    }

    #[test]
    fn snapshot_sensors_are_checked_against_the_rest_of_the_configuration() {
        let burst =
            |b: &str| valid().replace("sensors = [3]", &format!("sensors = [3]\nburst = {b}"));
        let ok = Config::parse(&burst("{ samples = 2560, period_s = 10 }")).unwrap();
        ok.validate().unwrap();
        assert_eq!(
            ok.assembler().sampling.get(&3),
            Some(&edgewatch_protocol::SamplingMode::Burst {
                samples: 2560,
                period_ms: 10_000
            })
        );
        assert!(!ok.assembler().sampling.contains_key(&1));
        assert_eq!(
            invalid_fields(&burst("{ samples = 100, period_s = 10 }")),
            ["asset[1].burst.samples"]
        );
        assert_eq!(
            invalid_fields(&burst("{ samples = 2560, period_s = 0 }")),
            ["asset[1].burst.period_s"]
        );
        // 600 baseline windows, one burst an hour: 25 days, accepted; a burst every 2 hours
        // would take 50 days to learn the baseline.
        let hourly = burst("{ samples = 2560, period_s = 3600 }");
        Config::parse(&hourly).unwrap().validate().unwrap();
        let text = burst("{ samples = 2560, period_s = 7200 }");
        assert_eq!(invalid_fields(&text), ["baseline.windows"]);
        let text = format!(
            "{}\n[health]\ncommissioning = 500\n[baseline]\nwindows = 20\n",
            text
        );
        assert_eq!(invalid_fields(&text), ["health.commissioning"]);
        assert!(error_of(&burst("{ samples = 2560 }")).contains("period_s"));
        assert_eq!(
            invalid_fields(&format!("{}\n[health]\nthreshold = 0\n", valid())),
            ["health.threshold"]
        );
    }

    #[test]
    fn a_configuration_without_sources_or_assets_says_so() {
        let fields = invalid_fields("[agent]\nid = \"x\"\n");
        assert!(fields.contains(&"serial".to_string()), "{fields:?}");
        assert!(fields.contains(&"asset".to_string()), "{fields:?}");
    }

    #[test]
    fn bad_bearing_geometry_and_topic_filters_are_named() {
        let text = valid()
            .replace("element_diameter_mm = 7.94", "element_diameter_mm = 50")
            .replace("topics = [\"sensors/#\"]", "topics = [\"sensors/#/x\"]");
        let fields = invalid_fields(&text);
        assert!(
            fields.iter().any(|f| f.starts_with("asset[1].bearing.")),
            "{fields:?}"
        );
        assert!(fields.contains(&"mqtt.topics[0]".to_string()), "{fields:?}");
    }

    #[test]
    fn the_feedback_section_defaults_to_on_with_kafka_and_names_what_cannot_work() {
        let kafka = "[kafka]\nbrokers = [\"127.0.0.1:9092\"]\n";
        let with_kafka = Config::parse(&format!("{}{kafka}", valid())).unwrap();
        with_kafka.validate().unwrap();
        assert_eq!(
            with_kafka.feedback_topic().as_deref(),
            Some("edgewatch.feedback")
        );
        let c = with_kafka.commands().unwrap();
        assert_eq!((c.agent_id.as_str(), c.assets.len()), ("gw-1", 2));
        let missing = Config::parse(&format!(
            "{}{kafka}[feedback]\ntrusted_keys = [\"/nonexistent/k.pub\"]\n",
            valid()
        ))
        .unwrap();
        missing.validate().unwrap();
        let warned: Vec<String> = missing.warnings().into_iter().map(|w| w.field).collect();
        assert_eq!(warned, ["feedback.trusted_keys[0]"]);
        assert_eq!(Config::parse(&valid()).unwrap().feedback_topic(), None);
        let off = Config::parse(&format!("{}{kafka}[feedback]\nenabled = false\n", valid()));
        assert_eq!(off.unwrap().feedback_topic(), None);
        assert_eq!(
            invalid_fields(&format!("{}[feedback]\nenabled = true\n", valid())),
            ["feedback.enabled"]
        );
        assert_eq!(
            invalid_fields(&format!(
                "{}{kafka}[feedback]\ntopic = \"bad topic\"\n",
                valid()
            )),
            ["feedback.topic"]
        );
        let dir = tempfile::tempdir().unwrap();
        let not_a_key = dir.path().join("k.pub");
        std::fs::write(&not_a_key, "hello\n").unwrap();
        let text = format!(
            "{}{kafka}[feedback]\ntrusted_keys = [\"{}\"]\n",
            valid(),
            not_a_key.display()
        );
        assert_eq!(invalid_fields(&text), ["feedback.trusted_keys[0]"]);
        assert!(error_of("[feedback]\nsecret = 1\n").contains("secret"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = valid()
            .replace("shaft_rpm = 1480", "shaft_rpm = -5")
            .replace("baud = 921600", "baud = 7");
        assert_eq!(invalid_fields(&text).len(), 2);
    }
}

#[cfg(test)]
mod doc_tests {
    use super::*;

    /// Every key of a fully populated configuration is documented in docs/config.md.
    #[test]
    fn every_field_is_documented() {
        let doc = include_str!("../../docs/config.md");
        let mut c = Config::parse(
            "[mqtt]\nurl = \"mqtt://x\"\nusername = \"u\"\npassword = \"p\"\n\
             [[serial]]\ndevice = \"/dev/x\"\n[serial.sensors]\n1 = \"a\"\n\
             [[asset]]\nid = \"a\"\nshaft_rpm = 1000\nbearing = \"skf-6205\"\n\
             severity = { ab_mm_s = 1, bc_mm_s = 2, cd_mm_s = 3 }\n",
        )
        .unwrap();
        c.features.envelope_band_hz = Some([1000.0, 2000.0]);
        // Every size field at once (validation refuses it; the keys are what is checked).
        c.window = WindowConfig {
            duration_s: Some(1.0),
            revolutions: Some(20.0),
            length: Some(8192),
            overlap: 0.5,
        };
        let value = toml::Value::try_from(&c).unwrap();
        fn keys(v: &toml::Value, out: &mut Vec<String>) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        out.push(k.clone());
                        keys(v, out);
                    }
                }
                toml::Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        keys(&value, &mut all);
        for key in all {
            if key == "1" {
                continue;
            }
            let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
            let as_word = doc.match_indices(key.as_str()).any(|(i, _)| {
                !doc[..i].ends_with(ident) && !doc[i + key.len()..].starts_with(ident)
            });
            assert!(as_word, "docs/config.md lacks `{key}`");
        }
    }
}
