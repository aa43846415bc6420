//! Where frames go: a serial device, a new pty pair, an MQTT broker, a file or stdout.
//!
//! Serial outputs and files carry the serial encoding (COBS between `0x00` delimiters); MQTT
//! carries one raw frame per message on `<prefix>/<asset>/<sensor_id>`. Writes block when the
//! receiver does not keep up (a full pty buffer, MQTT flow control), so in as-fast-as-possible
//! mode nothing is lost to the simulator's own speed.

use crate::link::Wire;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serialport::{SerialPort, TTYPort};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Errors of an output.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Opening or creating a serial port or pty failed.
    #[error("serial port {path}: {source}")]
    Serial {
        /// Device path, or "pty".
        path: String,
        /// Cause.
        source: serialport::Error,
    },
    /// Writing failed.
    #[error("write failed: {0}")]
    Io(#[from] io::Error),
    /// The MQTT URL is not `mqtt://host[:port]`.
    #[error("mqtt url `{0}`: expected mqtt://host[:port]")]
    MqttUrl(String),
    /// The MQTT client failed.
    #[error("mqtt: {0}")]
    Mqtt(String),
}

/// Which output to open.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputSpec {
    /// Create a pty pair and write to its master; receivers open the printed slave path.
    Pty,
    /// Write to an existing serial device at a baud rate.
    Serial {
        /// Device path, e.g. `/dev/ttyUSB0`.
        device: String,
        /// Baud rate.
        baud: u32,
    },
    /// Publish to an MQTT broker.
    Mqtt {
        /// `mqtt://host[:port]`.
        url: String,
        /// First topic level, e.g. `sensors`.
        topic_prefix: String,
        /// 0, 1 or 2.
        qos: u8,
        /// MQTT client id.
        client_id: String,
    },
    /// Append serial-encoded frames to a file.
    File(PathBuf),
    /// Write serial-encoded frames to stdout.
    Stdout,
}

/// An open output.
#[allow(missing_debug_implementations)]
pub enum Output {
    /// A serial port or pty master.
    Serial {
        /// The port.
        port: Box<dyn SerialPort>,
        /// For a pty: the slave end, held open so the line stays up while receivers come and go.
        slave: Option<TTYPort>,
        /// Path receivers open.
        path: String,
    },
    /// A file or stdout.
    Writer(BufWriter<Box<dyn Write + Send>>),
    /// An MQTT publisher.
    Mqtt(MqttOutput),
}

impl Output {
    /// Opens the output.
    pub fn open(spec: &OutputSpec) -> Result<Self, OutputError> {
        Ok(match spec {
            OutputSpec::Pty => {
                let (master, slave) = TTYPort::pair().map_err(|source| OutputError::Serial {
                    path: "pty".into(),
                    source,
                })?;
                let path = slave.name().unwrap_or_default();
                Self::Serial {
                    port: Box::new(master),
                    slave: Some(slave),
                    path,
                }
            }
            OutputSpec::Serial { device, baud } => {
                let port = serialport::new(device, *baud)
                    .timeout(Duration::from_millis(500))
                    .open()
                    .map_err(|source| OutputError::Serial {
                        path: device.clone(),
                        source,
                    })?;
                Self::Serial {
                    port,
                    slave: None,
                    path: device.clone(),
                }
            }
            OutputSpec::File(path) => Self::Writer(BufWriter::new(Box::new(
                File::options().create(true).append(true).open(path)?,
            ))),
            OutputSpec::Stdout => Self::Writer(BufWriter::new(Box::new(io::stdout()))),
            OutputSpec::Mqtt {
                url,
                topic_prefix,
                qos,
                client_id,
            } => Self::Mqtt(MqttOutput::connect(url, topic_prefix, *qos, client_id)?),
        })
    }

    /// The device path receivers open, for serial outputs.
    pub fn serial_path(&self) -> Option<&str> {
        match self {
            Self::Serial { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Sends one wire item of a sensor on `asset`.
    pub fn send(&mut self, wire: &Wire, asset: &str) -> Result<(), OutputError> {
        match self {
            Self::Serial { port, .. } => write_all_patiently(port.as_mut(), &wire.serial_bytes()),
            Self::Writer(w) => Ok(w.write_all(&wire.serial_bytes())?),
            Self::Mqtt(m) => m.publish(wire, asset),
        }
    }

    /// Flushes; for MQTT waits until the broker acknowledged every QoS ≥ 1 message (at most
    /// `timeout`), then disconnects.
    pub fn finish(self, timeout: Duration) -> Result<(), OutputError> {
        match self {
            Self::Serial {
                mut port, slave, ..
            } => {
                port.flush()?;
                // Closing a pty master hangs up the line and discards what the receiver has not
                // read yet: wait (at most `timeout`) until the receiver has taken everything.
                // The kernel moves written bytes to the receiving side asynchronously, so both
                // queues can read empty while the last bytes are in between: the line must stay
                // empty for a while, not be empty once.
                if let Some(slave) = slave {
                    let deadline = Instant::now() + timeout;
                    let mut quiet = 0;
                    while quiet < 5 && Instant::now() < deadline {
                        let pending =
                            slave.bytes_to_read().unwrap_or(0) + port.bytes_to_write().unwrap_or(0);
                        quiet = if pending == 0 { quiet + 1 } else { 0 };
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                Ok(())
            }
            Self::Writer(mut w) => Ok(w.flush()?),
            Self::Mqtt(m) => m.finish(timeout),
        }
    }
}

/// Writes all of `bytes`, waiting while the line is full (a pty whose reader is slow or absent).
fn write_all_patiently(port: &mut dyn SerialPort, mut bytes: &[u8]) -> Result<(), OutputError> {
    while !bytes.is_empty() {
        match port.write(bytes) {
            Ok(0) => return Err(OutputError::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => bytes = &bytes[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// An MQTT publisher with its network thread.
#[allow(missing_debug_implementations)]
pub struct MqttOutput {
    client: Client,
    topic_prefix: String,
    qos: QoS,
    published: u64,
    acked: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

fn parse_mqtt_url(url: &str) -> Result<(String, u16), OutputError> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| OutputError::MqttUrl(url.into()))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse().map_err(|_| OutputError::MqttUrl(url.into()))?,
        ),
        None => (rest.to_string(), 1883),
    };
    if host.is_empty() {
        return Err(OutputError::MqttUrl(url.into()));
    }
    Ok((host, port))
}

impl MqttOutput {
    fn connect(url: &str, prefix: &str, qos: u8, client_id: &str) -> Result<Self, OutputError> {
        let (host, port) = parse_mqtt_url(url)?;
        let qos = match qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            2 => QoS::ExactlyOnce,
            q => return Err(OutputError::Mqtt(format!("qos {q} is not 0, 1 or 2"))),
        };
        let mut opts = MqttOptions::new(client_id, host, port);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(64 * 1024, 64 * 1024);
        opts.set_inflight(100);
        // A persistent session: rumqttc republishes unacknowledged messages after a reconnect
        // only when the broker resumes the session; with a clean session it discards them.
        opts.set_clean_session(false);
        let (client, mut connection) = Client::new(opts, 256);
        let acked = Arc::new(AtomicU64::new(0));
        let counter = acked.clone();
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || {
                for event in connection.iter() {
                    match event {
                        Ok(Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_))) => {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "mqtt connection error; reconnecting");
                            std::thread::sleep(Duration::from_millis(500));
                        }
                    }
                }
            })
            .map_err(OutputError::Io)?;
        Ok(Self {
            client,
            topic_prefix: prefix.trim_end_matches('/').to_string(),
            qos,
            published: 0,
            acked,
            thread: Some(thread),
        })
    }

    fn publish(&mut self, wire: &Wire, asset: &str) -> Result<(), OutputError> {
        let (sensor, payload) = match wire {
            Wire::Frame { sensor_id, raw } => (sensor_id.to_string(), raw.clone()),
            // Garbage on MQTT is a message that is not a frame, on a topic of its own sensor.
            Wire::Garbage(g) => ("garbage".to_string(), g.clone()),
        };
        let topic = format!("{}/{asset}/{sensor}", self.topic_prefix);
        self.client
            .publish(topic, self.qos, false, payload)
            .map_err(|e| OutputError::Mqtt(e.to_string()))?;
        self.published += 1;
        Ok(())
    }

    fn finish(mut self, timeout: Duration) -> Result<(), OutputError> {
        let deadline = Instant::now() + timeout;
        if self.qos != QoS::AtMostOnce {
            while self.acked.load(Ordering::Relaxed) < self.published {
                if Instant::now() > deadline {
                    return Err(OutputError::Mqtt(format!(
                        "only {} of {} messages acknowledged before the timeout",
                        self.acked.load(Ordering::Relaxed),
                        self.published
                    )));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        } else {
            // QoS 0 has no acknowledgement: give the network thread a moment to write.
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.client.disconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_urls_parse_with_and_without_port() {
        assert_eq!(
            parse_mqtt_url("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".into(), 1884)
        );
        assert_eq!(
            parse_mqtt_url("mqtt://broker").unwrap(),
            ("broker".into(), 1883)
        );
        assert!(parse_mqtt_url("http://x").is_err());
        assert!(parse_mqtt_url("mqtt://:1").is_err());
    }
}
