//! The edgewatch gateway agent as a library. The `agent` binary (`run`, `validate`) is a thin
//! command line over it; the lab tools (`edgewatch-lab`) reuse it offline.
//!
//! One folder per stage of the data path, in the order data flows:
//!
//! ```text
//! ingest ──Ingest──► assemble ──AssembledWindow──► analyze ──WindowReport──► report ──Record──► outbox ──► forward ──► Kafka
//! serial, MQTT       sequencer, windows,          features, model,          summaries,         sled,       rdkafka,
//! (decode frames)    temperature trend            baseline, alerts          messages           ledger      delete on ack
//! ```
//!
//! Each stage is a pure core that takes the time as an argument and a thin driver (a task or a
//! thread) around it; [`runtime`] alone wires them together. [`ops`] holds what watches the
//! process (health, the HTTP endpoint, systemd notification), [`clock`] the process's one
//! clock, [`config`] the whole configuration file, built from each stage's own section.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod analyze;
pub mod assemble;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod field;
pub mod forward;
pub mod ingest;
pub mod ops;
pub mod outbox;
pub mod queue;
pub mod report;
pub mod runtime;
