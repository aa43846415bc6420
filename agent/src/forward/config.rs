//! `[kafka]` configuration and the librdkafka settings made from it.

use crate::field::FieldError;
use crate::outbox::Kind;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Producer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// LZ4: cheap on a gateway CPU.
    Lz4,
    /// Zstandard: smaller on the wire, more CPU.
    Zstd,
    /// None.
    None,
}

/// How the agent authenticates and encrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No TLS, no SASL.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL without TLS (only on a trusted network).
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    fn librdkafka(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }
    fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
    fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// librdkafka properties the agent sets itself; `properties` may not override them.
pub const MANAGED_PROPERTIES: [&str; 6] = [
    "bootstrap.servers",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
];

/// `[kafka]`: where records are forwarded. Without this section the outbox still fills (up to
/// its cap) and nothing is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Prefix of every topic name.
    #[serde(default = "KafkaConfig::default_topic_prefix")]
    pub topic_prefix: String,
    /// Alerts topic (after the prefix).
    #[serde(default = "KafkaConfig::default_alerts_topic")]
    pub alerts_topic: String,
    /// Feature summaries topic (after the prefix).
    #[serde(default = "KafkaConfig::default_summaries_topic")]
    pub summaries_topic: String,
    /// Heartbeats topic (after the prefix).
    #[serde(default = "KafkaConfig::default_health_topic")]
    pub health_topic: String,
    /// Model lifecycle events topic (after the prefix).
    #[serde(default = "KafkaConfig::default_model_status_topic")]
    pub model_status_topic: String,
    /// Command outcomes topic (after the prefix): what the agent did with each command from
    /// the feedback topic.
    #[serde(default = "KafkaConfig::default_command_status_topic")]
    pub command_status_topic: String,
    /// The compacted topic model packages arrive on (after the prefix); empty: packages only
    /// from `[model] package_dir`.
    #[serde(default = "KafkaConfig::default_models_topic")]
    pub models_topic: String,
    /// `lz4`, `zstd` or `none`.
    #[serde(default = "KafkaConfig::default_compression")]
    pub compression: Compression,
    /// How long the producer waits to fill a batch, ms.
    #[serde(default = "KafkaConfig::default_linger_ms")]
    pub linger_ms: u64,
    /// Records handed to the producer and not yet acknowledged, at most.
    #[serde(default = "KafkaConfig::default_max_in_flight")]
    pub max_in_flight: usize,
    /// Sending rate cap, records/s, so a backlog replay does not flood a thin uplink.
    #[serde(default = "KafkaConfig::default_replay_records_per_s")]
    pub replay_records_per_s: f64,
    /// Sending rate cap, payload bytes/s; 0: no byte cap.
    #[serde(default)]
    pub replay_bytes_per_s: u64,
    /// First wait after a failed delivery, ms (doubles, with jitter, up to the maximum).
    #[serde(default = "KafkaConfig::default_retry_min_ms")]
    pub retry_min_ms: u64,
    /// Longest wait between retries, ms.
    #[serde(default = "KafkaConfig::default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// How long librdkafka keeps trying one message before reporting it failed, ms; 0 (the
    /// default): until it is delivered, which keeps per-asset order through any outage.
    #[serde(default)]
    pub message_timeout_ms: u64,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[serde(default = "KafkaConfig::default_security_protocol")]
    pub security_protocol: SecurityProtocol,
    /// CA certificate (PEM) that signs the brokers' certificates; default: the system store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), for mutual TLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM), for mutual TLS.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    #[serde(default)]
    pub username: Option<String>,
    /// SASL password; prefer `password_file`.
    #[serde(default)]
    pub password: Option<String>,
    /// File whose first line is the SASL password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Other librdkafka producer properties, passed through (e.g. `"batch.size" = "65536"`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// `"edgewatch."`.
    pub fn default_topic_prefix() -> String {
        "edgewatch.".into()
    }
    /// `"alerts"`.
    pub fn default_alerts_topic() -> String {
        "alerts".into()
    }
    /// `"summaries"`.
    pub fn default_summaries_topic() -> String {
        "summaries".into()
    }
    /// `"health"`.
    pub fn default_health_topic() -> String {
        "health".into()
    }
    /// `"model-status"`.
    pub fn default_model_status_topic() -> String {
        "model-status".into()
    }
    /// `"command-status"`.
    pub fn default_command_status_topic() -> String {
        "command-status".into()
    }
    /// `"models"`.
    pub fn default_models_topic() -> String {
        "models".into()
    }
    /// The full name of the models topic, `None` when it is switched off.
    pub fn models_topic(&self) -> Option<String> {
        (!self.models_topic.is_empty())
            .then(|| format!("{}{}", self.topic_prefix, self.models_topic))
    }
    /// `lz4`.
    pub const fn default_compression() -> Compression {
        Compression::Lz4
    }
    /// 50 ms.
    pub const fn default_linger_ms() -> u64 {
        50
    }
    /// 1000 records.
    pub const fn default_max_in_flight() -> usize {
        1000
    }
    /// 200 records/s.
    pub const fn default_replay_records_per_s() -> f64 {
        200.0
    }
    /// 500 ms.
    pub const fn default_retry_min_ms() -> u64 {
        500
    }
    /// 30 s.
    pub const fn default_retry_max_ms() -> u64 {
        30_000
    }
    /// `plaintext`.
    pub const fn default_security_protocol() -> SecurityProtocol {
        SecurityProtocol::Plaintext
    }

    /// The full topic name of a kind of record.
    pub fn topic(&self, kind: Kind) -> String {
        let name = match kind {
            Kind::Alert => &self.alerts_topic,
            Kind::Summary => &self.summaries_topic,
            Kind::Health => &self.health_topic,
            Kind::ModelStatus => &self.model_status_topic,
            Kind::CommandStatus => &self.command_status_topic,
        };
        format!("{}{}", self.topic_prefix, name)
    }

    /// The librdkafka producer settings, or the fields that prevent them.
    pub fn client_config(&self) -> Result<ClientConfig, Vec<FieldError>> {
        let mut p = self.problems();
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers.join(","))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "compression.codec",
                match self.compression {
                    Compression::Lz4 => "lz4",
                    Compression::Zstd => "zstd",
                    Compression::None => "none",
                },
            )
            .set("linger.ms", self.linger_ms.to_string())
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            // librdkafka backs off reconnects up to 10 s by default: after an uplink outage
            // the backlog would wait that long for a broker that is already back. One broker
            // connection attempt per second is cheap. `properties` can override it.
            .set("reconnect.backoff.max.ms", "1000")
            .set("security.protocol", self.security_protocol.librdkafka());
        for (key, file) in [
            ("ssl.ca.location", &self.ca_file),
            ("ssl.certificate.location", &self.cert_file),
            ("ssl.key.location", &self.key_file),
        ] {
            if let Some(f) = file {
                c.set(key, f.display().to_string());
            }
        }
        if let Some(m) = &self.sasl_mechanism {
            c.set("sasl.mechanism", m);
        }
        if let Some(u) = &self.username {
            c.set("sasl.username", u);
        }
        let password = match crate::ingest::credentials::password(
            self.password.as_deref(),
            self.password_file.as_deref(),
        ) {
            Ok(pw) => pw,
            Err(e) => {
                let f = self.password_file.as_deref().unwrap_or(Path::new(""));
                p.push(field(
                    "password_file",
                    format!("cannot read {}: {e}", f.display()),
                ));
                None
            }
        };
        if let Some(pw) = password {
            c.set("sasl.password", pw);
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        if p.is_empty() { Ok(c) } else { Err(p) }
    }

    /// Checks the settings, including the passthrough properties (by letting librdkafka parse
    /// them, without connecting).
    pub fn validate(&self) -> Vec<FieldError> {
        let config = match self.client_config() {
            Ok(c) => c,
            Err(p) => return p,
        };
        match config.create::<rdkafka::producer::BaseProducer>() {
            Ok(_) => vec![],
            Err(e) => {
                let text = e.to_string();
                let named = self
                    .properties
                    .keys()
                    .find(|k| text.contains(&format!("\"{k}\"")) || text.contains(k.as_str()));
                vec![match named {
                    Some(k) => field(&format!("properties.{k}"), text),
                    None => field("properties", text),
                }]
            }
        }
    }

    fn problems(&self) -> Vec<FieldError> {
        let mut p = Vec::new();
        if self.brokers.is_empty() {
            p.push(field(
                "brokers",
                "list at least one broker as \"host:port\"".into(),
            ));
        }
        for (i, b) in self.brokers.iter().enumerate() {
            let ok = b
                .rsplit_once(':')
                .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                p.push(field(
                    &format!("brokers[{i}]"),
                    format!("`{b}` is not host:port"),
                ));
            }
        }
        let legal = |t: &str| {
            !t.is_empty()
                && t.len() <= 249
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        for (name, topic) in [
            ("alerts_topic", &self.alerts_topic),
            ("summaries_topic", &self.summaries_topic),
            ("health_topic", &self.health_topic),
            ("model_status_topic", &self.model_status_topic),
            ("command_status_topic", &self.command_status_topic),
        ] {
            let full = format!("{}{}", self.topic_prefix, topic);
            if topic.is_empty() || !legal(&full) {
                p.push(field(
                    name,
                    format!("`{full}` is not a Kafka topic name (letters, digits, . _ -)"),
                ));
            }
        }
        if let Some(full) = self.models_topic()
            && !legal(&full)
        {
            p.push(field(
                "models_topic",
                format!("`{full}` is not a Kafka topic name (letters, digits, . _ -)"),
            ));
        }
        if self.max_in_flight == 0 {
            p.push(field("max_in_flight", "must be > 0".into()));
        }
        if !(self.replay_records_per_s.is_finite() && self.replay_records_per_s > 0.0) {
            p.push(field("replay_records_per_s", "must be > 0".into()));
        }
        if self.retry_min_ms == 0 {
            p.push(field("retry_min_ms", "must be > 0".into()));
        }
        if self.retry_max_ms < self.retry_min_ms {
            p.push(field("retry_max_ms", "is less than retry_min_ms".into()));
        }
        if self.linger_ms > 300_000 {
            p.push(field("linger_ms", "must be at most 300000".into()));
        }
        let tls = self.security_protocol.tls();
        for (name, f) in [
            ("ca_file", &self.ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
        ] {
            if let Some(f) = f {
                if !tls {
                    p.push(field(
                        name,
                        "TLS files are set but security_protocol is not ssl or sasl_ssl".into(),
                    ));
                } else if !f.is_file() {
                    p.push(field(
                        name,
                        format!("file {} does not exist or is not readable", f.display()),
                    ));
                }
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            p.push(field(
                "key_file",
                "cert_file and key_file go together".into(),
            ));
        }
        let sasl = self.security_protocol.sasl();
        match (&self.sasl_mechanism, sasl) {
            (None, true) => p.push(field(
                "sasl_mechanism",
                "required with sasl_plaintext or sasl_ssl (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
                    .into(),
            )),
            (Some(m), true)
                if !matches!(m.as_str(), "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512") =>
            {
                p.push(field(
                    "sasl_mechanism",
                    format!("`{m}` is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
                ))
            }
            (Some(_), false) => p.push(field(
                "sasl_mechanism",
                "set but security_protocol is not sasl_plaintext or sasl_ssl".into(),
            )),
            _ => {}
        }
        if sasl && self.username.is_none() {
            p.push(field("username", "SASL needs a username".into()));
        }
        if sasl && self.password.is_none() && self.password_file.is_none() {
            p.push(field(
                "password",
                "SASL needs password or password_file".into(),
            ));
        }
        if self.password.is_some() && self.password_file.is_some() {
            p.push(field(
                "password",
                "give either password or password_file, not both".into(),
            ));
        }
        if !sasl && (self.username.is_some() || self.password.is_some()) {
            p.push(field(
                "username",
                "set but security_protocol is not sasl_plaintext or sasl_ssl".into(),
            ));
        }
        for k in self.properties.keys() {
            if MANAGED_PROPERTIES.contains(&k.as_str()) {
                p.push(field(
                    &format!("properties.{k}"),
                    "is set by the agent (idempotent, acks=all) and cannot be overridden".into(),
                ));
            }
        }
        p
    }
}

fn field(name: &str, reason: String) -> FieldError {
    FieldError {
        field: format!("kafka.{name}"),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> KafkaConfig {
        toml::from_str(&format!("brokers = [\"127.0.0.1:9092\"]\n{extra}")).unwrap()
    }

    fn fields(c: &KafkaConfig) -> Vec<String> {
        c.validate().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn the_defaults_are_valid_and_idempotent_with_acks_all_and_lz4() {
        let c = parse("");
        assert!(fields(&c).is_empty(), "{:?}", c.validate());
        let cc = c.client_config().unwrap();
        assert_eq!(cc.get("enable.idempotence"), Some("true"));
        assert_eq!(cc.get("acks"), Some("all"));
        assert_eq!(cc.get("compression.codec"), Some("lz4"));
        assert_eq!(c.topic(Kind::Alert), "edgewatch.alerts");
    }

    #[test]
    fn an_unknown_passthrough_property_is_named() {
        let c = parse("[properties]\n\"no.such.thing\" = \"1\"\n\"batch.size\" = \"65536\"\n");
        assert_eq!(fields(&c), vec!["kafka.properties.no.such.thing"]);
    }

    #[test]
    fn a_managed_property_cannot_be_overridden() {
        let c = parse("[properties]\nacks = \"1\"\n");
        assert_eq!(fields(&c), vec!["kafka.properties.acks"]);
    }

    #[test]
    fn tls_and_sasl_settings_are_checked_together() {
        let c = parse(
            "security_protocol = \"sasl_ssl\"\nca_file = \"/nonexistent/ca.pem\"\n\
             cert_file = \"Cargo.toml\"\nsasl_mechanism = \"GSSAPI\"\n",
        );
        let f = fields(&c);
        for want in [
            "kafka.ca_file",
            "kafka.key_file",
            "kafka.sasl_mechanism",
            "kafka.username",
            "kafka.password",
        ] {
            assert!(f.contains(&want.to_string()), "{want} not in {f:?}");
        }
        let c = parse("ca_file = \"Cargo.toml\"\nusername = \"u\"\n");
        let f = fields(&c);
        assert!(f.contains(&"kafka.ca_file".to_string()), "{f:?}");
        assert!(f.contains(&"kafka.username".to_string()), "{f:?}");
    }

    #[test]
    fn bad_brokers_and_topics_are_named() {
        let mut c = parse("alerts_topic = \"bad topic\"\n");
        c.brokers = vec!["nohost".into()];
        let f = fields(&c);
        assert!(f.contains(&"kafka.brokers[0]".to_string()), "{f:?}");
        assert!(f.contains(&"kafka.alerts_topic".to_string()), "{f:?}");
    }
}
