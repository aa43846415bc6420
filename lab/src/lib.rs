//! `lab`: the tools around the gateway agent that never run on a gateway. Each reuses the
//! agent's own code (`edgewatch-agent`: ordering, windowing, features, model, alert logic) so
//! what is evaluated, trained on or demonstrated is what a gateway computes.
//!
//! - [`demo`]: the simulator and the whole agent pipeline in one process, with a live view.
//! - [`eval`]: recordings through windowing, features, model and alert logic (`lab eval`).
//! - [`recordings`]: the recording-folder format (`index.csv`) and the envelope-detector table
//!   (`lab eval-features`).
//! - [`speed`]: the agent's shaft-speed estimate on recordings against their index speed
//!   (`lab speed`).
//! - [`training`]: labelled model-input vectors from simulated machines (`lab export-features`).
//! - [`replay_features`]: a recorded serial stream through the agent's decoder and features,
//!   offline (`lab replay-features`; the cross-build check compares native and emulated runs).
//! - [`model_tool`]: signing keys and model packages, and the lifecycle's Kafka topics
//!   (`lab model keygen|package|sign|verify|publish|status`).
//! - [`feedback_tool`]: operators' labels and signed commands on the feedback topic
//!   (`lab feedback label|command`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod demo;
pub mod eval;
pub mod feedback_tool;
pub mod model_tool;
pub mod recordings;
pub mod replay_features;
pub mod rtf;
pub mod speed;
pub mod training;
