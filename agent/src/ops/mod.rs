//! Watching the process: liveness ([`health`]), the HTTP endpoint for metrics and health
//! ([`http`]), systemd's readiness and watchdog notifications ([`notify`]), and the typed
//! events that log and count ([`events`]).

pub mod events;
#[cfg(feature = "test-support")]
pub mod faults;
pub mod health;
pub mod http;
pub mod notify;
