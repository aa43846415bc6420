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

/// SplitMix64 finaliser: decorrelates seeds derived from small integers, so `(seed, id)`
/// pairs give independent random streams. The one seed hash of the simulator and of the
/// lab's training-data generator.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
