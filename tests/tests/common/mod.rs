//! Frame helpers shared by the end-to-end test files.

use edgewatch_protocol::{Frame, MAX_SERIAL_LEN};
use firmware_sim::link::{Injector, LinkFaults};
use serialport::TTYPort;
use std::io::Write;

/// `n` frames of firmware-sim's `healthy` scenario, starting after `skip` frames.
// Not every test file that shares this module streams the healthy machine.
#[allow(dead_code)]
pub fn sim_frames(skip: usize, n: usize) -> Vec<Frame> {
    scenario_frames("healthy", skip, n)
}

/// `n` frames of the built-in scenario `name`, starting after `skip` frames.
pub fn scenario_frames(name: &str, skip: usize, n: usize) -> Vec<Frame> {
    let scenario = firmware_sim::physics::scenario::Scenario::builtin(name).unwrap();
    let mut nodes = firmware_sim::nodes_for(&scenario).unwrap();
    let mut injector = Injector::new(LinkFaults::default(), 1);
    firmware_sim::driver::collect(&mut nodes, &mut injector, (skip + n) as u64)
        .into_iter()
        .skip(skip)
        .filter_map(|(_, w)| match w {
            firmware_sim::link::Wire::Frame { raw, .. } => {
                edgewatch_protocol::decode_frame(&raw).ok()
            }
            firmware_sim::link::Wire::Garbage(_) => None,
        })
        .collect()
}

pub fn write_frames(port: &mut TTYPort, frames: &[Frame]) {
    let mut buf = vec![0u8; MAX_SERIAL_LEN];
    for f in frames {
        let n = f.encode_stuffed(&mut buf).unwrap();
        port.write_all(&buf[..n]).unwrap();
    }
    port.flush().unwrap();
}
