//! Forwarding the outbox to Kafka.
//!
//! Two parts, the shape of a sans-IO protocol implementation:
//!
//! - [`core::Forwarder`], a deterministic state machine with no rdkafka, no tokio and no clock:
//!   ordering, the send window ([`window::SendWindow`]: which records are with the producer,
//!   where to resume after a failure), the rate cap ([`pace::Throttle`]), retry backoff
//!   ([`crate::backoff::Backoff`]), producer recreation and the shutdown grace. It is tested
//!   under a simulated clock.
//! - [`run`], the driver: a `select!` loop that creates the rdkafka producer, executes the
//!   core's actions (produce, read and delete outbox records, off the async threads since sled
//!   blocks), feeds it delivery reports, flush notifications, the stop signal and its own
//!   timer, sorts librdkafka's errors for it ([`classify`]), and records the metrics and logs.
//!
//! The producer is rdkafka's `FutureProducer` with `enable.idempotence=true` and `acks=all`, so
//! librdkafka itself retries in order and without duplicates while the connection comes and
//! goes; the key is the asset id, so each asset's records share a partition and keep their
//! order.
//!
//! - A record is deleted from the outbox only on a successful delivery report.
//! - A failed report (retriable, or a message timeout if one is configured) stops sending,
//!   waits for everything in flight, and resends from the oldest failed record after a backoff.
//! - A record the broker rejects for what it is (too large, invalid) is dropped and counted as
//!   `rejected`: it would block the outbox forever otherwise.
//! - A fatal producer error (the idempotent producer's fatal state) drops the producer, creates
//!   a new one, and resends everything not acknowledged, from the outbox, in order.
//! - After a restart the cursor starts at the first record in the outbox: records that were
//!   delivered but not yet deleted are sent again with the same `record_id`.
//!
//! Shutdown: after `stop` the forwarder keeps sending and collecting reports until the outbox
//! has nothing more to send and nothing is in flight, at most [`SHUTDOWN_GRACE`]; anything
//! unacknowledged stays in the outbox for the next start.

pub mod config;
pub mod core;
pub mod pace;
pub mod window;

pub use config::KafkaConfig;

use self::core::{Action, Delivery, ErrorClass, Event, Forwarder, Outgoing, Refusal, Settings};
use crate::clock::Clock;
use crate::field::FieldError;
use crate::outbox::{Kind, Outbox, OutboxError, Seq, count_drop};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long the forwarder keeps sending after it was told to stop.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Kafka header carrying the record's outbox sequence (8 bytes, big-endian): lets a consumer
/// check per-agent completeness and order. Not part of the message schema.
pub const SEQ_HEADER: &str = "edgewatch-seq";

/// What the driver can fail at. Every one is retried or outlived: the producer is created
/// again after a backoff, an outbox read is retried, a lost delete only sends a record again.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The `[kafka]` settings do not make a producer configuration (e.g. an unreadable
    /// password file).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Config(Vec<FieldError>),
    /// librdkafka refused to create the producer.
    #[error(transparent)]
    Producer(#[from] KafkaError),
    /// The outbox failed.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// A blocking call run off the async threads panicked or was cancelled.
    #[error("blocking task: {0}")]
    Blocking(#[from] tokio::task::JoinError),
}

/// Sorts a failed delivery (or a refused send) for the core. A record the broker will never
/// take is rejected whatever the producer's state; anything else is fatal if the producer is
/// in its fatal state (`producer_fatal`: librdkafka's `fatal_error()`), else retriable.
pub fn classify(e: &KafkaError, producer_fatal: bool) -> ErrorClass {
    match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord,
        ) => ErrorClass::Reject,
        _ if producer_fatal => ErrorClass::Fatal,
        _ => ErrorClass::Retriable,
    }
}

fn create_producer(cfg: &KafkaConfig) -> Result<FutureProducer, ForwardError> {
    let config = cfg.client_config().map_err(ForwardError::Config)?;
    Ok(config.create()?)
}

/// Runs `f` (a blocking outbox or librdkafka call) off the async threads.
async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ForwardError>
where
    T: Send + 'static,
    E: Send + 'static,
    ForwardError: From<E>,
{
    Ok(tokio::task::spawn_blocking(f).await??)
}

/// Sleeps until agent time `at_ms`; forever if `None`.
async fn sleep_until(clock: Clock, at_ms: Option<u64>) {
    match at_ms {
        Some(ms) => tokio::time::sleep_until(clock.instant_at(ms).into()).await,
        None => std::future::pending().await,
    }
}

/// Runs the forwarder until `stop` is cancelled and the outbox is sent or [`SHUTDOWN_GRACE`]
/// is over. `flushed` is notified when new records became durable.
///
/// Stop it through `stop`: dropping the future instead loses nothing durable (unacknowledged
/// records stay in the outbox) but skips the final outbox flush and the producer's orderly
/// drop.
pub async fn run(
    cfg: KafkaConfig,
    outbox: Arc<dyn Outbox>,
    flushed: Arc<Notify>,
    stop: CancellationToken,
    clock: Clock,
) {
    tracing::info!(brokers = %cfg.brokers.join(","), prefix = %cfg.topic_prefix, "kafka forwarder started");
    let mut core = Forwarder::new(&Settings::from(&cfg), rand::random());
    let mut kafka = Kafka::new(cfg, outbox, clock);
    let mut stopping = false;
    'run: loop {
        while let Some(action) = core.poll_action(clock.now_ms()) {
            if kafka.execute(&mut core, action).await.is_break() {
                break 'run;
            }
        }
        while let Some(event) = core.poll_event() {
            match event {
                Event::Resending { from, wait_ms } => tracing::warn!(
                    from,
                    wait_ms,
                    "delivery failed; resending from the outbox after a backoff"
                ),
            }
        }
        metrics::gauge!("edgewatch_kafka_in_flight").set(core.in_flight() as f64);
        let wake = core.poll_timeout();
        tokio::select! {
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                core.handle_stop(clock.now_ms());
            }
            Some(joined) = kafka.reports.join_next(), if !kafka.reports.is_empty() => {
                // Every report that is in, then one delete for all of them.
                if let Ok(report) = joined {
                    kafka.report(&mut core, report);
                }
                while let Some(joined) = kafka.reports.try_join_next() {
                    if let Ok(report) = joined {
                        kafka.report(&mut core, report);
                    }
                }
            }
            _ = flushed.notified() => core.handle_flushed(),
            _ = sleep_until(clock, wake) => {}
        }
    }
    kafka.shut_down(core.in_flight()).await;
}

type Report = (Seq, Result<(), KafkaError>);

/// Full topic names by kind.
#[derive(Debug)]
struct Topics {
    alert: String,
    summary: String,
    health: String,
    model_status: String,
    command_status: String,
}

impl Topics {
    fn of(&self, kind: Kind) -> &str {
        match kind {
            Kind::Alert => &self.alert,
            Kind::Summary => &self.summary,
            Kind::Health => &self.health,
            Kind::ModelStatus => &self.model_status,
            Kind::CommandStatus => &self.command_status,
        }
    }
}

/// The driver's side: the producer, the outbox, the delivery reports awaited.
struct Kafka {
    cfg: Arc<KafkaConfig>,
    topics: Topics,
    outbox: Arc<dyn Outbox>,
    clock: Clock,
    producer: Option<FutureProducer>,
    reports: JoinSet<Report>,
}

impl Kafka {
    fn new(cfg: KafkaConfig, outbox: Arc<dyn Outbox>, clock: Clock) -> Self {
        Self {
            topics: Topics {
                alert: cfg.topic(Kind::Alert),
                summary: cfg.topic(Kind::Summary),
                health: cfg.topic(Kind::Health),
                model_status: cfg.topic(Kind::ModelStatus),
                command_status: cfg.topic(Kind::CommandStatus),
            },
            cfg: Arc::new(cfg),
            outbox,
            clock,
            producer: None,
            reports: JoinSet::new(),
        }
    }

    fn producer_fatal(&self) -> bool {
        self.producer
            .as_ref()
            .is_some_and(|p| p.client().fatal_error().is_some())
    }

    /// Does what the core asked; `Break` on [`Action::Stop`].
    async fn execute(&mut self, core: &mut Forwarder, action: Action) -> ControlFlow<()> {
        match action {
            Action::CreateProducer => self.create(core).await,
            Action::RecreateProducer => {
                if let Some(old) = self.producer.take() {
                    if let Some((code, reason)) = old.client().fatal_error() {
                        tracing::error!(?code, %reason, "fatal producer error: recreating the producer and resending from the outbox");
                    }
                    // Dropping a producer purges its queue and waits up to 500 ms.
                    let _ = tokio::task::spawn_blocking(move || drop(old)).await;
                }
                metrics::counter!("edgewatch_kafka_producer_recreated_total").increment(1);
                self.create(core).await;
            }
            Action::Fetch { from, max } => {
                let outbox = self.outbox.clone();
                match blocking(move || outbox.peek(from, max)).await {
                    Ok(peeked) => {
                        for _ in &peeked.corrupt {
                            count_drop(Kind::Summary, "corrupt");
                        }
                        core.handle_records(self.clock.now_ms(), peeked.records);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the outbox");
                        core.handle_fetch_failed(self.clock.now_ms());
                    }
                }
            }
            Action::Send(out) => self.send(core, out),
            Action::Delete { seqs } => {
                let outbox = self.outbox.clone();
                if let Err(e) = blocking(move || outbox.delete(&seqs)).await {
                    tracing::error!(error = %e, "cannot delete acknowledged records (they will be sent again)");
                }
            }
            Action::Stop => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }

    async fn create(&mut self, core: &mut Forwarder) {
        let cfg = self.cfg.clone();
        match blocking(move || create_producer(&cfg)).await {
            Ok(p) => {
                self.producer = Some(p);
                core.handle_producer_created();
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot create the Kafka producer; retrying");
                core.handle_producer_failed(self.clock.now_ms());
            }
        }
    }

    /// Hands one record to librdkafka and tells the core whether it took it.
    fn send(&mut self, core: &mut Forwarder, out: Outgoing) {
        let now_ms = self.clock.now_ms();
        let Some(p) = self.producer.as_ref() else {
            // Not reached: the core sends only with a producer.
            core.handle_send_refused(now_ms, out, Refusal::Retriable);
            return;
        };
        let seq = out.seq;
        let seq_bytes = seq.to_be_bytes();
        let fr = FutureRecord::to(self.topics.of(out.record.kind))
            .key(out.record.key.as_bytes())
            .payload(out.record.payload.as_slice())
            .headers(OwnedHeaders::new().insert(Header {
                key: SEQ_HEADER,
                value: Some(&seq_bytes[..]),
            }));
        match p.send_result(fr).map_err(|(e, _)| e) {
            Ok(delivery) => {
                core.handle_sent(now_ms, seq);
                self.reports.spawn(async move {
                    let r = match delivery.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((e, _))) => Err(e),
                        Err(_) => Err(KafkaError::Canceled),
                    };
                    (seq, r)
                });
            }
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                // librdkafka's queue is full: the core offers this record again shortly.
                core.handle_send_refused(now_ms, out, Refusal::QueueFull);
            }
            Err(e) if classify(&e, false) == ErrorClass::Reject => {
                // librdkafka says at once that no broker will take this record (larger than
                // message.max.bytes, say): the same as a rejecting delivery report, so it is
                // dropped and counted instead of offered again forever ahead of the rest.
                core.handle_sent(now_ms, seq);
                self.report(core, (seq, Err(e)));
            }
            Err(e) => {
                tracing::warn!(seq, error = %e, "the producer refused a record");
                metrics::counter!("edgewatch_kafka_retries_total").increment(1);
                let why = if self.producer_fatal() {
                    Refusal::Fatal
                } else {
                    Refusal::Retriable
                };
                core.handle_send_refused(now_ms, out, why);
            }
        }
    }

    /// Feeds one delivery report to the core and records what it did.
    fn report(&self, core: &mut Forwarder, (seq, result): Report) {
        let error = result.err();
        let class = error.as_ref().map(|e| classify(e, self.producer_fatal()));
        let outcome = core.handle_delivery(self.clock.now_ms(), seq, class.map_or(Ok(()), Err));
        match (outcome, &error) {
            (
                Delivery::Acked {
                    kind,
                    bytes,
                    latency_ms,
                    created_unix_ms,
                },
                _,
            ) => {
                metrics::counter!("edgewatch_kafka_delivered_total", "kind" => kind.as_str())
                    .increment(1);
                metrics::counter!("edgewatch_kafka_delivered_bytes_total").increment(bytes);
                metrics::histogram!("edgewatch_kafka_delivery_seconds")
                    .record(latency_ms as f64 / 1000.0);
                let age = self.clock.unix_ms().saturating_sub(created_unix_ms);
                metrics::histogram!("edgewatch_kafka_record_age_seconds")
                    .record(age as f64 / 1000.0);
            }
            (Delivery::Rejected { kind }, Some(e)) => {
                tracing::error!(seq, error = %e, kind = kind.as_str(), "the broker rejected a record; dropped");
                count_drop(kind, "rejected");
            }
            (Delivery::Failed, Some(e)) => {
                metrics::counter!("edgewatch_kafka_retries_total").increment(1);
                tracing::debug!(seq, error = %e, "delivery failed; will resend");
            }
            _ => {}
        }
    }

    /// After [`Action::Stop`]: makes the deletes durable, drops the producer.
    async fn shut_down(mut self, left_in_flight: usize) {
        let outbox = self.outbox.clone();
        let _ = blocking(move || outbox.flush()).await;
        self.reports.abort_all();
        // Dropping a producer purges its queue and waits up to 500 ms: not on a runtime thread.
        if let Some(p) = self.producer.take() {
            let _ = tokio::task::spawn_blocking(move || drop(p)).await;
        }
        tracing::info!(left_in_flight, "kafka forwarder stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_the_broker_cannot_take_are_rejected_and_a_fatal_producer_makes_the_rest_fatal() {
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidMessageSize,
            RDKafkaErrorCode::InvalidMessage,
            RDKafkaErrorCode::InvalidRecord,
        ] {
            let e = KafkaError::MessageProduction(code);
            assert_eq!(classify(&e, false), ErrorClass::Reject, "{code:?}");
            assert_eq!(classify(&e, true), ErrorClass::Reject, "{code:?}");
        }
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert_eq!(classify(&timeout, false), ErrorClass::Retriable);
        assert_eq!(classify(&timeout, true), ErrorClass::Fatal);
        assert_eq!(
            classify(&KafkaError::Canceled, false),
            ErrorClass::Retriable
        );
    }

    #[test]
    fn a_record_librdkafka_refuses_at_once_for_its_size_is_classed_rejected() {
        // No broker is needed: librdkafka checks message.max.bytes in the send call itself.
        let p: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("message.max.bytes", "1000")
            .create()
            .unwrap();
        let payload = vec![0u8; 5000];
        let refused = p
            .send_result(FutureRecord::<[u8], [u8]>::to("t").payload(&payload[..]))
            .err()
            .expect("refused in the send call")
            .0;
        assert_eq!(classify(&refused, false), ErrorClass::Reject, "{refused:?}");
    }
}
