//! The edgewatch gateway agent as a library: configuration, sources, ordering and windowing,
//! features, and the pipeline that joins them. The `agent` binary is a thin command line over it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alert;
pub mod baseline;
pub mod config;
pub mod demo;
pub mod eval;
pub mod features;
pub mod forward;
pub mod health;
pub mod http;
pub mod model;
pub mod notify;
pub mod outbox;
pub mod pipeline;
pub mod replay;
pub mod runtime;
pub mod scoring;
pub mod sequencer;
pub mod source;
pub mod training;
pub mod window;
