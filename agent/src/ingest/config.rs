//! `[[serial]]` and `[mqtt]`: the sources' configuration sections.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[[serial]]`: one serial port carrying COBS-framed sensor frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialSource {
    /// Device path, e.g. `/dev/ttyUSB0` or `/dev/serial/by-id/...`.
    pub device: PathBuf,
    /// Baud rate.
    #[serde(default = "SerialSource::default_baud")]
    pub baud: u32,
    /// First reconnect delay after the device disappears, ms (doubles up to the maximum).
    #[serde(default = "SerialSource::default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, ms.
    #[serde(default = "SerialSource::default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// Optional sensor-to-asset mapping for sensors on this port, e.g. `7 = "pump-1"`; adds to
    /// the assets' own `sensors` lists.
    #[serde(default)]
    pub sensors: BTreeMap<String, String>,
}

impl SerialSource {
    /// 921600 baud: one axis at 12.8 kHz needs about 256 kbaud; a USB CDC device ignores it.
    pub const fn default_baud() -> u32 {
        921_600
    }
    /// 200 ms.
    pub const fn default_reconnect_min_ms() -> u64 {
        200
    }
    /// 10 s.
    pub const fn default_reconnect_max_ms() -> u64 {
        10_000
    }
}

/// `[mqtt]`: a broker the sensors publish to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSource {
    /// `mqtt://host[:port]` (default port 1883) or `mqtts://host[:port]` (TLS, default 8883).
    pub url: String,
    /// Client id; with `clean_session = false` the broker keeps the session under this id.
    #[serde(default = "MqttSource::default_client_id")]
    pub client_id: String,
    /// Topic filters to subscribe to.
    #[serde(default = "MqttSource::default_topics")]
    pub topics: Vec<String>,
    /// Subscription QoS, 0 to 2. At QoS 1 with a persistent session nothing is lost while the
    /// agent is disconnected.
    #[serde(default = "MqttSource::default_qos")]
    pub qos: u8,
    /// Start a new session on every connect (loses messages sent while away).
    #[serde(default)]
    pub clean_session: bool,
    /// Keep-alive interval, s.
    #[serde(default = "MqttSource::default_keep_alive_s")]
    pub keep_alive_s: u64,
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
    /// Password; prefer `password_file`.
    #[serde(default)]
    pub password: Option<String>,
    /// File whose first line is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// CA certificate (PEM) to verify the broker, for `mqtts://`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), for mutual TLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM), for mutual TLS.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// First reconnect delay, ms (doubles with jitter up to the maximum).
    #[serde(default = "MqttSource::default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, ms.
    #[serde(default = "MqttSource::default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
}

impl MqttSource {
    /// `"edgewatch-agent"`.
    pub fn default_client_id() -> String {
        "edgewatch-agent".into()
    }
    /// `["sensors/#"]`, the simulator's and the documented sensor topic layout.
    pub fn default_topics() -> Vec<String> {
        vec!["sensors/#".into()]
    }
    /// 1.
    pub const fn default_qos() -> u8 {
        1
    }
    /// 15 s.
    pub const fn default_keep_alive_s() -> u64 {
        15
    }
    /// 200 ms.
    pub const fn default_reconnect_min_ms() -> u64 {
        200
    }
    /// 30 s.
    pub const fn default_reconnect_max_ms() -> u64 {
        30_000
    }

    /// Host, port and whether TLS is used, from `url`.
    pub fn endpoint(&self) -> Result<(String, u16, bool), String> {
        let (rest, tls) = if let Some(r) = self.url.strip_prefix("mqtt://") {
            (r, false)
        } else if let Some(r) = self.url.strip_prefix("mqtts://") {
            (r, true)
        } else {
            return Err(format!(
                "`{}` must start with mqtt:// or mqtts://",
                self.url
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("`{p}` in `{}` is not a port number", self.url))?,
            ),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err(format!("`{}` has no host", self.url));
        }
        Ok((host.to_string(), port, tls))
    }
}
