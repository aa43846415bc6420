//! The messages sent to Kafka: versioned JSON, one schema per topic in `schemas/`.
//!
//! Every message carries `schema_version`, `type`, `record_id` (random, made once when the
//! record is created: a consumer deduplicates on it), `agent_id`, `asset_id`, `sensor_id`,
//! `window_start_us`/`window_end_us` (sensor clock), `model_version` (null without a model),
//! `created_unix_ms` (the agent's wall clock) and `lineage` (agent version, configuration hash,
//! feature-code version, baseline learned time, source). Builders are pure: ids and clocks are
//! inputs.
//!
//! Evolution rule (docs/feedback-loop.md, "Schema evolution"): a field may be added without a
//! version change (the schemas allow unknown fields and the new field is optional, so a
//! consumer of either version reads records of the other); removing, renaming or retyping a
//! field, or changing its meaning, raises `schema_version`. Version 2 added `lineage`, the drift
//! and model-input fields, and opened the schemas to unknown fields (version 1's were closed, so
//! adding a field broke a strict version-1 validator: hence the bump).

use crate::analyze::alert::{AlertEvent, Finding, Level, Transition};
use crate::outbox::{Kind, Record};
use serde::Serialize;

/// Version of the message schemas written by this agent.
pub const SCHEMA_VERSION: u32 = 2;

/// Who writes the records: the agent's id, version and configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `agent.id`.
    pub agent_id: String,
    /// The agent's version.
    pub agent_version: String,
    /// First 16 hex digits of SHA-256 of the configuration's bytes.
    pub config_hash: String,
}

impl Origin {
    /// This agent build, with `agent_id` and the configuration's hash
    /// ([`crate::config::config_hash`]).
    pub fn new(agent_id: &str, config_hash: &str) -> Self {
        Self {
            agent_id: agent_id.to_string(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            config_hash: config_hash.to_string(),
        }
    }

    fn lineage<'a>(
        &'a self,
        baseline_learned_us: Option<u64>,
        source: Option<&'a str>,
    ) -> Lineage<'a> {
        Lineage {
            agent_version: &self.agent_version,
            config_hash: &self.config_hash,
            feature_version: crate::analyze::features::FEATURE_CODE_VERSION,
            baseline_learned_us,
            source,
        }
    }
}

/// Where a record's data came from and what made it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lineage<'a> {
    /// The agent's version.
    pub agent_version: &'a str,
    /// Hash of the configuration ([`Origin::config_hash`]).
    pub config_hash: &'a str,
    /// [`crate::analyze::features::FEATURE_CODE_VERSION`].
    pub feature_version: u32,
    /// Sensor time the asset's baseline was learned, µs; null without one or for agent records.
    pub baseline_learned_us: Option<u64>,
    /// `serial:<port>` or `mqtt:<topic>`; null for agent records.
    pub source: Option<&'a str>,
}

/// Fields every message starts with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope<'a> {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `alert`, `summary` or `health`.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Deduplication id, the same on every resend.
    pub record_id: &'a str,
    /// `agent.id`.
    pub agent_id: &'a str,
    /// Asset, `null` for agent heartbeats.
    pub asset_id: Option<&'a str>,
    /// Sensor, `null` for agent heartbeats.
    pub sensor_id: Option<u32>,
    /// Sensor time of the first window's start, µs.
    pub window_start_us: Option<u64>,
    /// Sensor time of the last window's end, µs.
    pub window_end_us: Option<u64>,
    /// Model version, when a model scored the windows.
    pub model_version: Option<&'a str>,
    /// Wall clock when the record was made, ms since the Unix epoch.
    pub created_unix_ms: u64,
    /// What made the record from what.
    pub lineage: Lineage<'a>,
}

impl<'a> Envelope<'a> {
    /// The envelope of a record about the agent rather than a window (heartbeats, model and
    /// command status): no sensor, no window times, no baseline or source.
    fn agent(
        origin: &'a Origin,
        kind: Kind,
        record_id: &'a str,
        asset_id: Option<&'a str>,
        model_version: Option<&'a str>,
        created_unix_ms: u64,
    ) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            kind,
            record_id,
            agent_id: &origin.agent_id,
            asset_id,
            sensor_id: None,
            window_start_us: None,
            window_end_us: None,
            model_version,
            created_unix_ms,
            lineage: origin.lineage(None, None),
        }
    }
}

#[derive(Serialize)]
struct AlertMessage<'a> {
    #[serde(flatten)]
    envelope: Envelope<'a>,
    alert_id: &'a str,
    transition: Transition,
    level: Level,
    agent_clock_ms: u64,
    finding: &'a Finding,
    input_names: &'static [&'static str],
    inputs: &'a [crate::analyze::alert::InputVector],
}

/// The record of an alert event; `baseline_learned_us` and `source` of its deciding window.
pub fn alert_record(
    origin: &Origin,
    record_id: &str,
    event: &AlertEvent,
    created_unix_ms: u64,
    baseline_learned_us: Option<u64>,
    source: Option<&str>,
) -> Record {
    let msg = AlertMessage {
        envelope: Envelope {
            schema_version: SCHEMA_VERSION,
            kind: Kind::Alert,
            record_id,
            agent_id: &origin.agent_id,
            asset_id: Some(&event.asset),
            sensor_id: Some(event.sensor_id),
            window_start_us: Some(event.window_start_us),
            window_end_us: Some(event.window_end_us),
            model_version: event.finding.model_version.as_deref(),
            created_unix_ms,
            lineage: origin.lineage(baseline_learned_us, source),
        },
        alert_id: &event.id,
        transition: event.transition,
        level: event.level,
        agent_clock_ms: event.at_ms,
        finding: &event.finding,
        input_names: &crate::analyze::features::FEATURE_NAMES,
        inputs: &event.inputs,
    };
    Record {
        kind: Kind::Alert,
        created_unix_ms,
        key: event.asset.clone(),
        payload: serde_json::to_vec(&msg).expect("alert messages serialize"),
    }
}

/// The record of a finished feature summary.
pub fn summary_record(
    origin: &Origin,
    record_id: &str,
    s: &super::summary::Summary,
    created_unix_ms: u64,
) -> Record {
    #[derive(Serialize)]
    struct SummaryMessage<'a> {
        #[serde(flatten)]
        envelope: Envelope<'a>,
        #[serde(flatten)]
        summary: &'a super::summary::Summary,
    }
    let msg = SummaryMessage {
        envelope: Envelope {
            schema_version: SCHEMA_VERSION,
            kind: Kind::Summary,
            record_id,
            agent_id: &origin.agent_id,
            asset_id: Some(&s.asset),
            sensor_id: Some(s.sensor_id),
            window_start_us: Some(s.window_start_us),
            window_end_us: Some(s.window_end_us),
            model_version: s.model_version.as_deref(),
            created_unix_ms,
            lineage: origin.lineage(s.baseline_learned_us, s.source.as_deref()),
        },
        summary: s,
    };
    Record {
        kind: Kind::Summary,
        created_unix_ms,
        key: s.asset.clone(),
        payload: serde_json::to_vec(&msg).expect("summaries serialize"),
    }
}

/// What a heartbeat reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Heartbeat {
    /// Seconds since the agent started.
    pub uptime_s: f64,
    /// Frames assembled since start.
    pub frames_assembled: u64,
    /// Windows scored since start.
    pub windows_scored: u64,
    /// Records in the outbox.
    pub outbox_records: u64,
    /// Bytes in the outbox.
    pub outbox_bytes: u64,
    /// Records dropped by the outbox since start (cap, full queue, corrupt).
    pub outbox_dropped: u64,
}

/// A record about the agent rather than a window (key: the agent id, so one agent's records of
/// a topic stay in order): the envelope of [`Envelope::agent`] and `body`'s fields.
fn agent_record<T: Serialize>(
    origin: &Origin,
    kind: Kind,
    record_id: &str,
    asset_id: Option<&str>,
    model_version: Option<&str>,
    body: &T,
    created_unix_ms: u64,
) -> Record {
    #[derive(Serialize)]
    struct Message<'a, T> {
        #[serde(flatten)]
        envelope: Envelope<'a>,
        #[serde(flatten)]
        body: &'a T,
    }
    let msg = Message {
        envelope: Envelope::agent(
            origin,
            kind,
            record_id,
            asset_id,
            model_version,
            created_unix_ms,
        ),
        body,
    };
    Record {
        kind,
        created_unix_ms,
        key: origin.agent_id.clone(),
        payload: serde_json::to_vec(&msg).expect("agent records serialize"),
    }
}

/// The record of an agent heartbeat.
pub fn health_record(
    origin: &Origin,
    record_id: &str,
    h: &Heartbeat,
    created_unix_ms: u64,
) -> Record {
    agent_record(
        origin,
        Kind::Health,
        record_id,
        None,
        None,
        h,
        created_unix_ms,
    )
}

/// The record of a model lifecycle event.
pub fn model_status_record(
    origin: &Origin,
    record_id: &str,
    e: &crate::analyze::lifecycle::Event,
    created_unix_ms: u64,
) -> Record {
    let version = Some(e.active.version.as_str());
    agent_record(
        origin,
        Kind::ModelStatus,
        record_id,
        None,
        version,
        e,
        created_unix_ms,
    )
}

/// The record of what became of a command or a refused record of the feedback topic.
pub fn command_status_record(
    origin: &Origin,
    record_id: &str,
    s: &crate::analyze::feedback::CommandStatus,
    created_unix_ms: u64,
) -> Record {
    let asset = s.asset_id.as_deref();
    agent_record(
        origin,
        Kind::CommandStatus,
        record_id,
        asset,
        None,
        s,
        created_unix_ms,
    )
}

/// A fresh random record id (128 bits, hex).
pub fn new_record_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
