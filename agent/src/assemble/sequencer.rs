//! Per-sensor ordering of frames by sequence number.
//!
//! Sensors number every frame (of any kind) with one wrapping `u32` counter. Links duplicate,
//! reorder and lose frames (MQTT redelivery after a reconnect, serial noise). A [`Sequencer`]
//! restores order:
//!
//! - the expected frame is released at once, followed by any buffered successors;
//! - a frame ahead of the expected one is held, at most `max_held` frames and at most
//!   `max_wait` of (caller-supplied) time; past either bound the missing frames are declared lost
//!   ([`Sequenced::Gap`]) and the held frames are released;
//! - a frame behind the expected one, by at most `restart_distance`, is a duplicate and dropped;
//!   further behind, the sensor restarted (its counter began again): the sequencer resets and
//!   reports [`Sequenced::Restart`].
//!
//! Time is an input (`now_ms`), so every rule is tested without sleeping.

use edgewatch_protocol::Frame;
use std::collections::BTreeMap;

/// What the sequencer releases, in order.
#[derive(Debug, Clone, PartialEq)]
// Frames pass through once, by value; boxing would add an allocation per frame.
#[allow(clippy::large_enum_variant)]
pub enum Sequenced {
    /// The next frame in sequence.
    Frame(Frame),
    /// `missing` frames were lost before the next released frame.
    Gap {
        /// How many sequence numbers were skipped.
        missing: u32,
    },
    /// The sensor's counter started over (reboot); state downstream should reset.
    Restart,
}

/// Bounds of the reordering buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequencerLimits {
    /// Most frames held while waiting for a missing one.
    pub max_held: usize,
    /// Longest time a frame is held while waiting for a missing one, in ms.
    pub max_wait_ms: u64,
    /// How far behind the expected number a frame may be and still count as a duplicate
    /// rather than a restart.
    pub restart_distance: u32,
}

impl Default for SequencerLimits {
    fn default() -> Self {
        Self {
            max_held: 16,
            max_wait_ms: 500,
            restart_distance: 1024,
        }
    }
}

/// Counters of one sequencer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequencerStats {
    /// Frames released in order.
    pub released: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Frames that arrived ahead of a missing one and were released after waiting.
    pub reordered: u64,
    /// Sequence numbers declared lost.
    pub lost: u64,
    /// Counter restarts seen.
    pub restarts: u64,
}

/// Restores the order of one sensor's frames.
#[derive(Debug)]
pub struct Sequencer {
    limits: SequencerLimits,
    expected: Option<u32>,
    /// Held frames by their distance ahead of `expected`, with their arrival time.
    held: BTreeMap<u32, (u64, Frame)>,
    stats: SequencerStats,
}

impl Sequencer {
    /// An empty sequencer; the first frame sets the expected number.
    pub fn new(limits: SequencerLimits) -> Self {
        Self {
            limits,
            expected: None,
            held: BTreeMap::new(),
            stats: SequencerStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> SequencerStats {
        self.stats
    }

    /// Accepts a frame that arrived at `now_ms`; appends what is released to `out`.
    pub fn push(&mut self, frame: Frame, now_ms: u64, out: &mut Vec<Sequenced>) {
        let seq = frame.header.sequence;
        let Some(expected) = self.expected else {
            self.expected = Some(seq);
            return self.push(frame, now_ms, out);
        };
        let ahead = seq.wrapping_sub(expected);
        let behind = expected.wrapping_sub(seq);
        if ahead == 0 {
            self.release(frame, out);
            self.drain(out);
        } else if behind != 0 && behind <= self.limits.restart_distance {
            self.stats.duplicates += 1;
        } else if ahead <= u32::MAX / 2 && ahead < self.limits.restart_distance {
            if self.held.insert(ahead, (now_ms, frame)).is_some() {
                self.stats.duplicates += 1;
            }
            if self.held.len() > self.limits.max_held {
                self.skip_to_first_held(out);
            }
        } else {
            // Far behind (or absurdly far ahead): the sensor started counting again.
            self.stats.restarts += 1;
            self.held.clear();
            self.expected = Some(seq);
            out.push(Sequenced::Restart);
            self.release(frame, out);
        }
    }

    /// Releases held frames whose wait exceeded `max_wait_ms` at `now_ms`.
    pub fn poll(&mut self, now_ms: u64, out: &mut Vec<Sequenced>) {
        while let Some((_, (arrived, _))) = self.held.first_key_value() {
            if now_ms.saturating_sub(*arrived) < self.limits.max_wait_ms {
                break;
            }
            self.skip_to_first_held(out);
        }
    }

    fn release(&mut self, frame: Frame, out: &mut Vec<Sequenced>) {
        self.expected = Some(frame.header.sequence.wrapping_add(1));
        self.stats.released += 1;
        out.push(Sequenced::Frame(frame));
    }

    /// Declares everything before the first held frame lost and releases from there.
    fn skip_to_first_held(&mut self, out: &mut Vec<Sequenced>) {
        let Some((&ahead, _)) = self.held.first_key_value() else {
            return;
        };
        self.stats.lost += u64::from(ahead);
        out.push(Sequenced::Gap { missing: ahead });
        self.rebase(ahead);
        self.drain(out);
    }

    /// Shifts held keys after `expected` moved forward by `by`.
    fn rebase(&mut self, by: u32) {
        let held = std::mem::take(&mut self.held);
        self.held = held.into_iter().map(|(k, v)| (k - by, v)).collect();
        self.expected = self.expected.map(|e| e.wrapping_add(by));
    }

    /// Releases consecutive held frames starting at the expected number.
    fn drain(&mut self, out: &mut Vec<Sequenced>) {
        // Keys are distances from the old expected number; re-key relative to the new one.
        loop {
            let Some(expected) = self.expected else {
                return;
            };
            let next = self
                .held
                .iter()
                .find(|(_, (_, f))| f.header.sequence == expected)
                .map(|(&k, _)| k);
            let Some(key) = next else {
                break;
            };
            let (_, frame) = self.held.remove(&key).expect("key just found");
            self.stats.reordered += 1;
            self.stats.released += 1;
            self.expected = Some(expected.wrapping_add(1));
            out.push(Sequenced::Frame(frame));
        }
        // Normalise keys to distances from the current expected number.
        if let Some(expected) = self.expected {
            let held = std::mem::take(&mut self.held);
            self.held = held
                .into_values()
                .map(|(t, f)| (f.header.sequence.wrapping_sub(expected), (t, f)))
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgewatch_protocol::{Header, Payload, Status};

    fn frame(seq: u32) -> Frame {
        Frame {
            header: Header {
                sensor_id: 1,
                sequence: seq,
                timestamp_us: 0,
            },
            payload: Payload::Status(Status::default()),
        }
    }

    fn run(seqs: &[u32]) -> (Vec<Sequenced>, SequencerStats) {
        let mut s = Sequencer::new(SequencerLimits::default());
        let mut out = Vec::new();
        for &q in seqs {
            s.push(frame(q), 0, &mut out);
        }
        (out, s.stats())
    }

    fn seqs(out: &[Sequenced]) -> Vec<u32> {
        out.iter()
            .filter_map(|s| match s {
                Sequenced::Frame(f) => Some(f.header.sequence),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn in_order_frames_pass_straight_through() {
        let (out, stats) = run(&[5, 6, 7, 8]);
        assert_eq!(seqs(&out), [5, 6, 7, 8]);
        assert_eq!(stats.released, 4);
    }

    #[test]
    fn duplicates_are_dropped_and_counted() {
        let (out, stats) = run(&[1, 2, 2, 3, 1, 4]);
        assert_eq!(seqs(&out), [1, 2, 3, 4]);
        assert_eq!(stats.duplicates, 2);
    }

    #[test]
    fn reordered_frames_come_out_in_order() {
        let (out, stats) = run(&[1, 3, 4, 2, 5]);
        assert_eq!(seqs(&out), [1, 2, 3, 4, 5]);
        assert_eq!(stats.reordered, 2);
        assert!(!out.iter().any(|s| matches!(s, Sequenced::Gap { .. })));
    }

    #[test]
    fn a_missing_frame_becomes_a_gap_after_the_wait() {
        let mut s = Sequencer::new(SequencerLimits::default());
        let mut out = Vec::new();
        s.push(frame(1), 0, &mut out);
        s.push(frame(3), 10, &mut out);
        s.push(frame(4), 20, &mut out);
        s.poll(400, &mut out);
        assert_eq!(seqs(&out), [1]);
        s.poll(510, &mut out);
        assert_eq!(seqs(&out), [1, 3, 4]);
        assert!(out.contains(&Sequenced::Gap { missing: 1 }));
        assert_eq!(s.stats().lost, 1);
        // A late arrival of the lost frame is now a duplicate.
        s.push(frame(2), 600, &mut out);
        assert_eq!(seqs(&out), [1, 3, 4]);
        assert_eq!(s.stats().duplicates, 1);
    }

    #[test]
    fn too_many_held_frames_force_the_gap_without_waiting() {
        let mut input = vec![0];
        input.extend(3..=20);
        let (out, stats) = run(&input);
        assert_eq!(out[1], Sequenced::Gap { missing: 2 });
        assert_eq!(stats.lost, 2);
        assert_eq!(seqs(&out).len(), input.len());
    }

    #[test]
    fn a_counter_that_starts_over_is_a_restart() {
        let (out, stats) = run(&[5000, 5001, 0, 1]);
        assert_eq!(seqs(&out), [5000, 5001, 0, 1]);
        assert!(out.contains(&Sequenced::Restart));
        assert_eq!(stats.restarts, 1);
    }

    #[test]
    fn the_counter_wraps_without_a_gap() {
        let (out, stats) = run(&[u32::MAX - 1, u32::MAX, 0, 1]);
        assert_eq!(seqs(&out), [u32::MAX - 1, u32::MAX, 0, 1]);
        assert_eq!(stats.restarts, 0);
        assert_eq!(stats.lost, 0);
    }
}
