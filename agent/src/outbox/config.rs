//! `[outbox]` configuration.

use crate::field::FieldError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[outbox]`: where records wait until Kafka acknowledges them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Directory of the sled database; empty: `<agent.data_dir>/outbox`.
    #[serde(default)]
    pub dir: PathBuf,
    /// Cap on the encoded size of the records held, bytes.
    #[serde(default = "OutboxConfig::default_max_bytes")]
    pub max_bytes: u64,
    /// Longest time a summary, heartbeat or acknowledgement stays unflushed, ms (alerts are
    /// flushed before their append returns). 0 flushes after every append.
    #[serde(default = "OutboxConfig::default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// One feature summary per sensor per this many seconds.
    #[serde(default = "OutboxConfig::default_summary_interval_s")]
    pub summary_interval_s: f64,
    /// One agent heartbeat per this many seconds; 0 disables them.
    #[serde(default = "OutboxConfig::default_heartbeat_interval_s")]
    pub heartbeat_interval_s: f64,
    /// Records queued between the pipeline and the outbox writer; when full, summaries and
    /// heartbeats are dropped (counted) and alerts wait at most 5 s.
    #[serde(default = "OutboxConfig::default_queue_capacity")]
    pub queue_capacity: usize,
}

impl OutboxConfig {
    /// 64 MiB.
    pub const fn default_max_bytes() -> u64 {
        64 << 20
    }
    /// 1000 ms.
    pub const fn default_flush_interval_ms() -> u64 {
        1000
    }
    /// 60 s.
    pub const fn default_summary_interval_s() -> f64 {
        60.0
    }
    /// 60 s.
    pub const fn default_heartbeat_interval_s() -> f64 {
        60.0
    }
    /// 1024 records.
    pub const fn default_queue_capacity() -> usize {
        1024
    }

    /// The database directory for an agent whose data directory is `data_dir`.
    pub fn resolved_dir(&self, data_dir: &Path) -> PathBuf {
        if self.dir.as_os_str().is_empty() {
            data_dir.join("outbox")
        } else {
            self.dir.clone()
        }
    }

    /// Range checks, as field errors with TOML paths.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut p = Vec::new();
        let mut check = |ok: bool, field: &str, reason: String| {
            if !ok {
                p.push(FieldError {
                    field: format!("outbox.{field}"),
                    reason,
                });
            }
        };
        check(
            self.max_bytes >= 64 << 10,
            "max_bytes",
            format!("{} bytes is less than the minimum 65536", self.max_bytes),
        );
        check(
            self.flush_interval_ms <= 60_000,
            "flush_interval_ms",
            format!("{} ms is more than a minute", self.flush_interval_ms),
        );
        check(
            self.summary_interval_s.is_finite() && self.summary_interval_s >= 0.01,
            "summary_interval_s",
            format!("{} is not at least 0.01 s", self.summary_interval_s),
        );
        check(
            self.heartbeat_interval_s == 0.0
                || (self.heartbeat_interval_s.is_finite() && self.heartbeat_interval_s >= 0.1),
            "heartbeat_interval_s",
            format!(
                "{} is not 0 (off) or at least 0.1 s",
                self.heartbeat_interval_s
            ),
        );
        check(
            self.queue_capacity > 0,
            "queue_capacity",
            "must be > 0".into(),
        );
        p
    }
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::new(),
            max_bytes: Self::default_max_bytes(),
            flush_interval_ms: Self::default_flush_interval_ms(),
            summary_interval_s: Self::default_summary_interval_s(),
            heartbeat_interval_s: Self::default_heartbeat_interval_s(),
            queue_capacity: Self::default_queue_capacity(),
        }
    }
}
