//! Bounded channels between the stages, and what each does when it is full.
//!
//! Every bounded channel in the agent names its policy: in the configuration where an operator
//! may choose ([`WhenFull`], `[pipeline] ingest_when_full`), in its type where the choice is
//! fixed by what flows through it (see the channel table in `runtime.rs`).

use serde::{Deserialize, Serialize};

/// What a bounded channel does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// The producer waits. For MQTT this holds back acknowledgements, so the broker keeps the
    /// messages (nothing is lost); for serial the kernel's buffer absorbs the wait until it
    /// overflows.
    Block,
    /// The new item is dropped and counted.
    DropNewest,
}
