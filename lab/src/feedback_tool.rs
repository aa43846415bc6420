//! `lab feedback`: operators' records on the feedback topic (docs/feedback-loop.md).
//!
//! - `label`: a label for the central store (alert confirmed or rejected, maintenance, the
//!   machine's true state over a time range); agents skip labels.
//! - `command`: a command to one agent (`recommission`, `shelve --for-s`), signed with a
//!   secret key file (`lab model keygen` makes one; the agent trusts its public half in
//!   `[feedback] trusted_keys`).
//!
//! Both are keyed by the asset id and put on the feedback topic, created (not compacted) if it
//! does not exist. The record formats are the agent's
//! ([`edgewatch_agent::analyze::feedback::record`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use edgewatch_agent::analyze::feedback::record::{
    Action, CommandBody, CommandRecord, FEEDBACK_SCHEMA_VERSION, Label, LabelKind, new_id,
};
use edgewatch_agent::analyze::feedback::{FeedbackConfig, utc};
use edgewatch_agent::analyze::lifecycle::package;
use edgewatch_agent::forward::config::KafkaConfig;

use crate::model_tool::{Created, client_config, create_topic_if_missing, send_acked};

/// Where a record goes.
#[derive(Debug, Clone, clap::Args)]
pub struct Publish {
    /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT...].
    #[arg(long)]
    pub brokers: String,
    /// The feedback topic (the agent's `[kafka] topic_prefix` and `[feedback] topic`).
    #[arg(long, default_value_t = format!("{}{}", KafkaConfig::default_topic_prefix(), FeedbackConfig::default_topic()))]
    pub topic: String,
    /// Partitions if the topic is created.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Replication factor if the topic is created.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i32,
    /// Further librdkafka settings, KEY=VALUE (e.g. security.protocol=ssl); repeatable.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE")]
    pub kafka_options: Vec<String>,
}

/// The kinds of label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LabelName {
    /// The alert was right (--alert-id, --fault).
    AlertConfirmed,
    /// A false alarm (--alert-id).
    AlertRejected,
    /// Maintenance was done (--at-unix-ms, --action).
    Maintenance,
    /// The machine's true state over a range (--from-unix-ms, --to-unix-ms, --state).
    AssetState,
}

/// `lab feedback` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum FeedbackCmd {
    /// Put an operator's label on the feedback topic.
    Label {
        /// The label.
        #[arg(long, value_enum)]
        label: LabelName,
        /// The asset.
        #[arg(long)]
        asset_id: String,
        /// The agent that watches it, if known.
        #[arg(long)]
        agent_id: Option<String>,
        /// Who labels.
        #[arg(long)]
        operator: String,
        /// alert_confirmed, alert_rejected: the alert's id.
        #[arg(long)]
        alert_id: Option<String>,
        /// alert_confirmed: the class found on the machine (outer, inner, ball, ...).
        #[arg(long)]
        fault: Option<String>,
        /// maintenance: when, ms since the Unix epoch (default: now).
        #[arg(long)]
        at_unix_ms: Option<u64>,
        /// maintenance: what was done.
        #[arg(long)]
        action: Option<String>,
        /// asset_state: start of the range, ms since the Unix epoch.
        #[arg(long)]
        from_unix_ms: Option<u64>,
        /// asset_state: end of the range, ms since the Unix epoch (default: now).
        #[arg(long)]
        to_unix_ms: Option<u64>,
        /// asset_state: a class name, the machine's true state over the range.
        #[arg(long)]
        state: Option<String>,
        /// Free text.
        #[arg(long)]
        note: Option<String>,
        /// Where it goes.
        #[command(flatten)]
        publish: Publish,
    },
    /// Sign a command to one agent with a secret key file and put it on the feedback topic.
    Command {
        /// What to do.
        #[arg(long, value_enum)]
        action: CommandAction,
        /// The agent (`[agent] id`).
        #[arg(long)]
        agent_id: String,
        /// The asset.
        #[arg(long)]
        asset_id: String,
        /// shelve: for how long from now, seconds.
        #[arg(long)]
        for_s: Option<f64>,
        /// Who issues it.
        #[arg(long)]
        issued_by: String,
        /// The secret key file (`lab model keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The command's id, 32 lowercase hex digits (default: a new one). The agent acts on
        /// an id once; sending the same id again is reported as a duplicate.
        #[arg(long)]
        command_id: Option<String>,
        /// Where it goes.
        #[command(flatten)]
        publish: Publish,
    },
}

/// What a command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CommandAction {
    /// Learn the asset's baseline and health references again.
    Recommission,
    /// No alert raised or escalated for the asset for --for-s seconds.
    Shelve,
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn need<T>(v: Option<T>, flag: &str, label: &str) -> Result<T> {
    v.ok_or_else(|| anyhow!("{flag} is required for {label}"))
}

/// Runs a `lab feedback` subcommand.
pub fn run(cmd: FeedbackCmd) -> Result<std::process::ExitCode> {
    let now = now_unix_ms();
    match cmd {
        FeedbackCmd::Label {
            label,
            asset_id,
            agent_id,
            operator,
            alert_id,
            fault,
            at_unix_ms,
            action,
            from_unix_ms,
            to_unix_ms,
            state,
            note,
            publish: to,
        } => {
            let kind = match label {
                LabelName::AlertConfirmed => LabelKind::AlertConfirmed {
                    alert_id: need(alert_id, "--alert-id", "alert-confirmed")?,
                    fault: need(fault, "--fault", "alert-confirmed")?,
                },
                LabelName::AlertRejected => LabelKind::AlertRejected {
                    alert_id: need(alert_id, "--alert-id", "alert-rejected")?,
                },
                LabelName::Maintenance => LabelKind::Maintenance {
                    at_unix_ms: at_unix_ms.unwrap_or(now),
                    action: need(action, "--action", "maintenance")?,
                },
                LabelName::AssetState => {
                    let from = need(from_unix_ms, "--from-unix-ms", "asset-state")?;
                    let to = to_unix_ms.unwrap_or(now);
                    if to < from {
                        bail!("--to-unix-ms is before --from-unix-ms");
                    }
                    LabelKind::AssetState {
                        from_unix_ms: from,
                        to_unix_ms: to,
                        state: need(state, "--state", "asset-state")?,
                    }
                }
            };
            let record = Label {
                schema_version: FEEDBACK_SCHEMA_VERSION,
                kind: "label".into(),
                feedback_id: new_id(),
                created_unix_ms: now,
                operator,
                asset_id: asset_id.clone(),
                agent_id,
                label: kind,
                note,
            };
            let bytes = serde_json::to_vec(&record)?;
            let at = publish(&to, &asset_id, &bytes)?;
            println!("label {} for {asset_id}: {at}", record.feedback_id);
        }
        FeedbackCmd::Command {
            action,
            agent_id,
            asset_id,
            for_s,
            issued_by,
            key,
            command_id,
            publish: to,
        } => {
            let (action, until) = match action {
                CommandAction::Recommission => {
                    if for_s.is_some() {
                        bail!("--for-s is for shelve only");
                    }
                    (Action::Recommission, None)
                }
                CommandAction::Shelve => {
                    let s = need(for_s, "--for-s", "shelve")?;
                    if !(s.is_finite() && s > 0.0) {
                        bail!("--for-s must be above 0");
                    }
                    (Action::Shelve, Some(now + (s * 1000.0).round() as u64))
                }
            };
            let command_id = command_id.unwrap_or_else(new_id);
            if command_id.len() != 32
                || !command_id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                bail!("--command-id must be 32 lowercase hex digits");
            }
            let key = package::read_secret_key(&key)?;
            let body = CommandBody {
                command_id: command_id.clone(),
                agent_id: agent_id.clone(),
                asset_id: asset_id.clone(),
                action,
                shelve_until_unix_ms: until,
                issued_by,
                created_unix_ms: now,
            };
            let mut record = CommandRecord::new(&body);
            record.sign(&key).map_err(|e| anyhow!("signing: {e}"))?;
            let at = publish(&to, &asset_id, &record.to_bytes())?;
            let until = until
                .map(|u| format!(" until {}", utc(u)))
                .unwrap_or_default();
            println!(
                "command {command_id}: {} {asset_id} on {agent_id}{until}, signed by {}: {at}",
                action.as_str(),
                package::key_id(&key.verifying_key())
            );
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Puts `bytes` keyed by `key` on the topic, creating it if missing; says where it went.
fn publish(to: &Publish, key: &str, bytes: &[u8]) -> Result<String> {
    let config = client_config(&to.brokers, &to.kafka_options)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let Created::As(how) = create_topic_if_missing(
        &rt,
        &config,
        &to.topic,
        to.partitions,
        to.replication_factor,
        false,
    )? {
        eprintln!("created topic {} ({how})", to.topic);
    }
    match send_acked(&rt, &config, &to.topic, key, bytes, Duration::from_secs(30))? {
        Ok((partition, offset)) => Ok(format!(
            "{} partition {partition} offset {offset}",
            to.topic
        )),
        Err(e) => Err(anyhow!("publishing to {}: {e}", to.topic)),
    }
}
