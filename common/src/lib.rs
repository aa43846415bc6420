//! What the gateway agent and the sensor simulator both need, and nothing else: bearing
//! kinematics with the named bearing presets ([`bearing`]), and the logging set-up of their
//! binaries ([`logging`]). Kept small on purpose: the gateway binary depends on it, so
//! everything here ships to every gateway.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bearing;
pub mod logging;
