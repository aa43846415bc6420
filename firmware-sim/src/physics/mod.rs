//! Machine physics: pure, deterministic signal models with time as an input.
//!
//! - [`bearing`]: bearing kinematics (defect frequencies from geometry).
//! - [`vibration`]: accelerometer signal synthesis with injectable faults.
//! - [`thermal`]: first-order bearing/housing temperature.
//! - [`scenario`]: scenario files, built-in scenarios, and per-asset generators.
//!
//! Nothing here reads a clock or does I/O: the caller supplies sample counts and elapsed
//! times, and every random draw comes from a seeded generator, so a scenario and seed always
//! reproduce the same data.

/// Bearing kinematics live in `edgewatch-common`, shared with the agent.
pub use edgewatch_common::bearing;
pub mod scenario;
pub mod thermal;
pub mod vibration;

#[cfg(test)]
mod test_support;
