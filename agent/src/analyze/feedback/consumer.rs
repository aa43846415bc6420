//! The feedback topic's consumer: a thread that reads every partition of the topic, triages
//! each record ([`super::record::triage`]), hands commands for this agent to the analysis
//! thread, reports what became of each, and only then commits the record's offset.
//!
//! Offsets are kept by Kafka for the consumer group `edgewatch-agent-<agent id>` (the same
//! group id as the models consumer, which commits nothing): a restart resumes after the last
//! record whose outcome was durable in the outbox, so a crash can only make the agent read a
//! command again, which it then reports as a `duplicate`. The partitions are assigned, not
//! subscribed (one agent per group: no rebalancing to wait for). A record that cannot be read
//! is refused and reported like any other; nothing a record holds stops the consumer.

use std::time::Duration;

use rdkafka::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::record::{self, Triage};
use super::{Acted, CommandStatus};
use crate::analyze::Input;
use crate::analyze::alert::AlertEvent;
use crate::analyze::lifecycle::consumer::{assign_when_exists, sleep_or_stop};
use crate::forward::config::KafkaConfig;

/// Makes an outcome durable (the alert a shelve cleared first, then the status); true once
/// both are on disk. Called on the consumer thread; may block.
pub type Report = Box<dyn FnMut(&CommandStatus, Option<&AlertEvent>) -> bool + Send>;

/// What the consumer needs.
pub struct FeedbackConsumer {
    /// librdkafka settings ([`consumer_config`]).
    pub config: ClientConfig,
    /// The full topic name.
    pub topic: String,
    /// `[agent] id`.
    pub agent_id: String,
    /// `[feedback] trusted_keys`, read.
    pub trusted_keys: Vec<ed25519_dalek::VerifyingKey>,
    /// The analysis thread's input.
    pub tx: mpsc::Sender<Input>,
    /// Where outcomes go.
    pub report: Report,
    /// Wall clock, ms since the Unix epoch.
    pub unix_ms: Box<dyn Fn() -> u64 + Send>,
}

impl std::fmt::Debug for FeedbackConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedbackConsumer")
            .field("topic", &self.topic)
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

/// The consumer's librdkafka settings: the producer's connection and security settings (as
/// the models consumer has them), records read from the beginning when the group has no
/// committed offset.
pub fn consumer_config(kafka: &KafkaConfig, agent_id: &str) -> Option<ClientConfig> {
    let mut c = crate::analyze::lifecycle::consumer::consumer_config(kafka, agent_id)?;
    c.set("auto.offset.reset", "earliest").set(
        "fetch.message.max.bytes",
        (record::MAX_RECORD_BYTES + 64 * 1024).to_string(),
    );
    Some(c)
}

/// Starts the consumer thread; it ends at `shutdown` or when the analysis thread's channel
/// closes.
pub fn spawn(
    c: FeedbackConsumer,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    for reason in record::Refusal::REASONS {
        metrics::counter!("edgewatch_feedback_refused_total", "reason" => reason).absolute(0);
    }
    std::thread::Builder::new()
        .name("feedback-consumer".into())
        .spawn(move || run(c, &shutdown))
}

fn run(mut c: FeedbackConsumer, shutdown: &CancellationToken) {
    let consumer: BaseConsumer = match c.config.create() {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "the feedback topic consumer cannot be created: no commands over Kafka");
            return;
        }
    };
    let topic = c.topic.clone();
    if c.trusted_keys.is_empty() {
        tracing::warn!(
            topic,
            "no usable [feedback] trusted_keys: every command on the feedback topic is refused"
        );
    }
    if !assign_when_exists(&consumer, &topic, Offset::Stored, "feedback", shutdown) {
        return;
    }
    while !shutdown.is_cancelled() {
        let m = match consumer.poll(Duration::from_millis(250)) {
            None => continue,
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                metrics::counter!("edgewatch_feedback_consumer_errors_total").increment(1);
                tracing::warn!(error = %e, topic, "feedback topic");
                if sleep_or_stop(shutdown, Duration::from_secs(1)) {
                    return;
                }
                continue;
            }
        };
        let source = format!("kafka:{}/{}@{}", m.topic(), m.partition(), m.offset());
        let (partition, offset) = (m.partition(), m.offset());
        let bytes = m.payload().map(<[u8]>::to_vec);
        drop(m);
        if handle(&mut c, bytes.as_deref(), &source, shutdown).is_none() {
            // Shutting down before the outcome was durable: not committed, read again.
            return;
        }
        let mut list = TopicPartitionList::new();
        let _ = list.add_partition_offset(&topic, partition, Offset::Offset(offset + 1));
        if let Err(e) = consumer.commit(&list, CommitMode::Sync) {
            // Read again after a restart: a command then is a duplicate.
            metrics::counter!("edgewatch_feedback_consumer_errors_total").increment(1);
            tracing::warn!(error = %e, source, "cannot commit the feedback offset");
        }
    }
}

/// One record: `Some` once handled and its outcome durable (commit), `None` when shutting
/// down first.
fn handle(
    c: &mut FeedbackConsumer,
    bytes: Option<&[u8]>,
    source: &str,
    shutdown: &CancellationToken,
) -> Option<()> {
    let Some(bytes) = bytes else {
        // A tombstone: nothing to act on.
        return Some(());
    };
    let now = (c.unix_ms)();
    let acted = match record::triage(bytes, &c.agent_id, &c.trusted_keys) {
        Triage::Label => {
            count_record("label");
            metrics::counter!("edgewatch_feedback_skipped_total", "reason" => "label").increment(1);
            return Some(());
        }
        Triage::NotAddressed => {
            count_record("command");
            metrics::counter!("edgewatch_feedback_skipped_total", "reason" => "not_addressed")
                .increment(1);
            tracing::debug!(source, "command for another agent");
            return Some(());
        }
        Triage::Refused { refusal, body } => {
            count_record(if body.is_some() {
                "command"
            } else {
                "malformed"
            });
            Acted {
                status: CommandStatus::refused(&refusal, body.as_ref(), source, now),
                cleared: None,
            }
        }
        Triage::Act(v) => {
            count_record("command");
            let (reply, rx) = tokio::sync::oneshot::channel();
            let input = Input::Command {
                command: v.body,
                source: source.to_string(),
                reply,
            };
            if c.tx.blocking_send(input).is_err() {
                return None;
            }
            rx.blocking_recv().ok()?
        }
    };
    // Durable before the offset moves; retried while the writer cannot take it.
    while !(c.report)(&acted.status, acted.cleared.as_ref()) {
        tracing::error!(
            source,
            "the outcome of a feedback record could not be stored: retrying"
        );
        if sleep_or_stop(shutdown, Duration::from_secs(1)) {
            return None;
        }
    }
    acted.status.emit();
    Some(())
}

fn count_record(kind: &'static str) {
    metrics::counter!("edgewatch_feedback_records_total", "type" => kind).increment(1);
}
