//! The models topic's consumer: a thread that reads every partition of the (compacted) topic
//! from its beginning and hands each message to the analysis thread as a package.
//!
//! No consumer group and no committed offsets: the topic is small (one package per model
//! version after compaction), and the lifecycle remembers every package it decided on, so
//! reading it whole at each start costs a few kilobytes and cannot skip a package a crash
//! interrupted. A topic that does not exist yet is looked for again every
//! [`RETRY_EVERY`]; messages larger than the package limit are not fetched
//! (`fetch.message.max.bytes`) and are reported by librdkafka as errors, which are logged.

use std::time::Duration;

use rdkafka::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::analyze::Input;
use crate::forward::config::KafkaConfig;

/// How often a missing topic is looked for.
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

/// Producer-only settings of [`KafkaConfig::client_config`] that a consumer does not take.
const PRODUCER_ONLY: [&str; 5] = [
    "enable.idempotence",
    "acks",
    "compression.codec",
    "linger.ms",
    "message.timeout.ms",
];

/// The consumer's librdkafka settings: the producer's connection and security settings,
/// without its producer-only ones.
pub fn consumer_config(kafka: &KafkaConfig, agent_id: &str) -> Option<ClientConfig> {
    let producer = kafka.client_config().ok()?;
    let mut c = ClientConfig::new();
    for (k, v) in producer.config_map() {
        if !PRODUCER_ONLY.contains(&k) {
            c.set(k, v);
        }
    }
    c.set("group.id", format!("edgewatch-agent-{agent_id}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "fetch.message.max.bytes",
            (super::package::MAX_PACKAGE_BYTES + 64 * 1024).to_string(),
        );
    Some(c)
}

/// Starts the consumer thread: messages of `topic` go to `tx` until `shutdown` or until the
/// analysis thread's channel closes.
pub fn spawn(
    config: ClientConfig,
    topic: String,
    tx: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("models-consumer".into())
        .spawn(move || run(&config, &topic, &tx, &shutdown))
}

fn run(config: &ClientConfig, topic: &str, tx: &mpsc::Sender<Input>, shutdown: &CancellationToken) {
    let consumer: BaseConsumer = match config.create() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the models topic consumer cannot be created: no packages over Kafka");
            return;
        }
    };
    if !assign_when_exists(&consumer, topic, Offset::Beginning, "models", shutdown) {
        return;
    }
    while !shutdown.is_cancelled() {
        match consumer.poll(Duration::from_millis(250)) {
            None => {}
            Some(Ok(m)) => {
                let Some(bytes) = m.payload() else {
                    // A tombstone: a model version withdrawn from the topic. Nothing to do: a
                    // package already taken stays under the lifecycle's rules.
                    continue;
                };
                metrics::counter!("edgewatch_model_packages_consumed_total").increment(1);
                let input = Input::Package {
                    bytes: bytes.to_vec(),
                    source: format!("kafka:{}/{}@{}", m.topic(), m.partition(), m.offset()),
                };
                if tx.blocking_send(input).is_err() {
                    return;
                }
            }
            Some(Err(e)) => {
                metrics::counter!("edgewatch_model_consumer_errors_total").increment(1);
                tracing::warn!(error = %e, topic, "models topic");
                if sleep_or_stop(shutdown, Duration::from_secs(1)) {
                    return;
                }
            }
        }
    }
}

/// Assigns every partition of `topic` (the `what` topic, for the log) at `offset`, once the
/// topic exists (looking again every [`RETRY_EVERY`]); false when `shutdown` came first. The
/// agent's own consumers (models, feedback) assign rather than subscribe: every agent reads
/// every partition, and no rebalance ever takes one away.
pub(crate) fn assign_when_exists(
    consumer: &BaseConsumer,
    topic: &str,
    offset: Offset,
    what: &str,
    shutdown: &CancellationToken,
) -> bool {
    let mut warned = false;
    loop {
        if shutdown.is_cancelled() {
            return false;
        }
        let partitions = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                m.topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map(|t| t.partitions().len())
            })
            .filter(|n| *n > 0);
        if let Some(n) = partitions {
            let mut list = TopicPartitionList::new();
            for p in 0..n {
                let _ = list.add_partition_offset(topic, p as i32, offset);
            }
            match consumer.assign(&list) {
                Ok(()) => {
                    tracing::info!(topic, partitions = n, "reading the {what} topic");
                    return true;
                }
                Err(e) => tracing::warn!(error = %e, topic, "cannot read the {what} topic"),
            }
        } else if !warned {
            tracing::info!(
                topic,
                "the {what} topic does not exist yet: looking again every {} s",
                RETRY_EVERY.as_secs()
            );
            warned = true;
        }
        if sleep_or_stop(shutdown, RETRY_EVERY) {
            return false;
        }
    }
}

/// Sleeps `d` in short steps; true when `shutdown` came first.
pub(crate) fn sleep_or_stop(shutdown: &CancellationToken, d: Duration) -> bool {
    let step = Duration::from_millis(100);
    let mut left = d;
    while !left.is_zero() {
        if shutdown.is_cancelled() {
            return true;
        }
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
    shutdown.is_cancelled()
}
