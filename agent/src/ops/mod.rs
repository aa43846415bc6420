//! Watching the process: liveness ([`health`]), the HTTP endpoint for metrics and health
//! ([`http`]) and systemd's readiness and watchdog notifications ([`notify`]).

#[cfg(feature = "test-support")]
pub mod faults;
pub mod health;
pub mod http;
pub mod notify;
