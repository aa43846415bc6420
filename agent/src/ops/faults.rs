//! Fault injection for the end-to-end tests, compiled only into test builds (the
//! `test-support` feature, which the test crates enable): a gateway binary has none of it.

/// When `EDGEWATCH_FAULT_STALL_AFTER_MS` is set, the assembler stops turning (it awaits
/// forever, as a deadlocked stage would) that many ms after start. Lets the end-to-end tests
/// check that a stuck pipeline stops the systemd watchdog pings. Shutdown then cannot drain and
/// the agent exits with failure after the deadline.
pub const STALL_ENV: &str = "EDGEWATCH_FAULT_STALL_AFTER_MS";

/// The agent time (ms) asked for by [`STALL_ENV`], if any.
pub fn stall_after_ms() -> Option<u64> {
    std::env::var(STALL_ENV).ok()?.trim().parse().ok()
}
