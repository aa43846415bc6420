//! MQTT source: one task around rumqttc's event loop.
//!
//! QoS 1 with a persistent session (`clean_session = false`) by default: while the agent is away
//! the broker queues messages for its client id and delivers them on reconnect. Subscriptions are
//! sent again on every connection acknowledgement (a broker that lost the session, or a clean
//! session, would otherwise deliver nothing). Reconnects wait with exponential backoff and full
//! jitter. Each message's payload is one raw frame; anything else is counted and skipped.
//!
//! Back-pressure: with the `block` policy the task awaits room in the pipeline's channel and
//! stops reading the socket meanwhile, so the broker holds the messages rather than the agent
//! dropping them.

use super::config::MqttSource;
use super::{IngestSender, count_reject};
use crate::backoff::Backoff;
use crate::ops::events::{Event as _, SourceLost};
use edgewatch_protocol::decode_frame;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Errors building the client from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum MqttSetupError {
    /// A bad URL or QoS (validation should have caught it).
    #[error("mqtt: {0}")]
    Config(String),
    /// A credentials or TLS file could not be read.
    #[error("mqtt: cannot read {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, MqttSetupError> {
    std::fs::read(path).map_err(|source| MqttSetupError::File {
        path: path.display().to_string(),
        source,
    })
}

fn qos(q: u8) -> Result<QoS, MqttSetupError> {
    match q {
        0 => Ok(QoS::AtMostOnce),
        1 => Ok(QoS::AtLeastOnce),
        2 => Ok(QoS::ExactlyOnce),
        q => Err(MqttSetupError::Config(format!("qos {q}"))),
    }
}

/// Builds the client options from the configuration.
pub fn options(cfg: &MqttSource) -> Result<MqttOptions, MqttSetupError> {
    let (host, port, tls) = cfg.endpoint().map_err(MqttSetupError::Config)?;
    let mut opts = MqttOptions::new(cfg.client_id.clone(), host, port);
    opts.set_clean_session(cfg.clean_session);
    opts.set_keep_alive(Duration::from_secs(cfg.keep_alive_s));
    opts.set_max_packet_size(64 * 1024, 64 * 1024);
    if let Some(user) = &cfg.username {
        let password =
            super::credentials::password(cfg.password.as_deref(), cfg.password_file.as_deref())
                .map_err(|source| MqttSetupError::File {
                    path: cfg
                        .password_file
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    source,
                })?
                .unwrap_or_default();
        opts.set_credentials(user.clone(), password);
    }
    if tls {
        let ca = match &cfg.ca_file {
            Some(f) => read(f)?,
            None => {
                return Err(MqttSetupError::Config(
                    "mqtts:// needs ca_file (the CA that signed the broker's certificate)".into(),
                ));
            }
        };
        let client_auth = match (&cfg.cert_file, &cfg.key_file) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            _ => None,
        };
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth,
        }));
    }
    Ok(opts)
}

/// Runs the MQTT source until `shutdown` or until the pipeline closes.
pub async fn run(
    cfg: MqttSource,
    tx: IngestSender,
    shutdown: CancellationToken,
) -> Result<(), MqttSetupError> {
    let name: Arc<str> = "mqtt".into();
    let opts = options(&cfg)?;
    let sub_qos = qos(cfg.qos)?;
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let mut backoff = Backoff::new(cfg.reconnect_min_ms, cfg.reconnect_max_ms);
    let connected = metrics::gauge!("edgewatch_source_connected", "source" => "mqtt");
    // `mqtt:<topic>` per topic, made once (bounded: a broker with more topics than this shares
    // one name for the rest).
    const MAX_ORIGINS: usize = 4096;
    let mut origins: std::collections::HashMap<String, Arc<str>> = Default::default();
    let other: Arc<str> = "mqtt:(other)".into();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                tracing::info!(session_present = ack.session_present, "mqtt connected");
                connected.set(1.0);
                backoff.reset();
                for topic in &cfg.topics {
                    if let Err(e) = client.try_subscribe(topic.clone(), sub_qos) {
                        tracing::error!(topic, error = %e, "cannot queue mqtt subscription");
                    }
                }
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => match decode_frame(&p.payload) {
                Ok(frame) => {
                    // Not cancellable: a frame already taken from the broker is delivered to the
                    // pipeline, which keeps draining until every source has stopped.
                    let origin = match origins.get(&p.topic) {
                        Some(o) => o.clone(),
                        None if origins.len() < MAX_ORIGINS => {
                            let o: Arc<str> = format!("mqtt:{}", p.topic).into();
                            origins.insert(p.topic.clone(), o.clone());
                            o
                        }
                        None => other.clone(),
                    };
                    if tx.send_from(&name, &origin, frame).await.is_err() {
                        break;
                    }
                }
                Err(e) => count_reject(&name, &e),
            },
            Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                tracing::debug!(?ack.return_codes, "mqtt subscribed");
            }
            Ok(_) => {}
            Err(e) => {
                connected.set(0.0);
                let delay = backoff.next_delay_ms(rand::random());
                SourceLost {
                    source: "mqtt",
                    error: &e,
                    retry_ms: Some(delay),
                }
                .emit();
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                }
            }
        }
    }
    connected.set(0.0);
    // Tell the broker we leave on purpose; a persistent session keeps queuing for us.
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
    tracing::info!("mqtt source stopped");
    Ok(())
}
