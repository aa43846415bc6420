//! Sensor-node simulator library: machine physics and scenarios ([`physics`]), sensor nodes that
//! turn signals into frames ([`node`]), link fault injection ([`link`]), logging set-up
//! shared with the agent ([`logging`]), outputs ([`output`]),
//! replay of recordings ([`replay`]) and the run loop ([`driver`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod driver;
pub mod link;
/// The logging set-up shared with the agent (`edgewatch-common`).
pub use edgewatch_common::logging;
pub mod node;
pub mod output;
pub mod physics;
pub mod replay;

use node::{NodeSettings, SensorNode, SignalSource};
use physics::scenario::{AssetSim, Scenario, ScenarioError};

impl SignalSource for AssetSim {
    fn next_vibration(&mut self, out: &mut [f32]) -> bool {
        AssetSim::next_vibration(self, out);
        true
    }

    fn temperature_c(&mut self, t_s: f64) -> Option<f64> {
        Some(self.temperature_at(t_s))
    }

    /// Exact for gaps up to [`physics::scenario::EXACT_SKIP_MAX_S`], fast-forwarded beyond.
    fn skip(&mut self, samples_per_axis: usize, _axes: usize) -> bool {
        AssetSim::skip(self, samples_per_axis as u64);
        true
    }
}

/// One sensor node per asset of a validated scenario.
pub fn nodes_for(scenario: &Scenario) -> Result<Vec<SensorNode>, ScenarioError> {
    scenario
        .asset_sims()?
        .into_iter()
        .map(|sim| {
            let settings = NodeSettings {
                sensor_id: sim.sensor_id(),
                asset: sim.id().to_string(),
                sample_rate_hz: sim.sample_rate_hz(),
                block_size: sim.block_size(),
                axes: sim.axes() as u8,
                full_scale_g: sim.full_scale_g(),
                temperature_interval_s: Some(f64::from(scenario.temperature_interval_ms) / 1e3),
                status_interval_s: Some(f64::from(scenario.status_interval_ms) / 1e3),
                // Nodes booted at different times: their clocks disagree, as real ones do.
                clock_offset_us: u64::from(sim.sensor_id()) * 7_919_000,
                burst: scenario.burst,
            };
            Ok(SensorNode::new(settings, Box::new(sim)))
        })
        .collect()
}
