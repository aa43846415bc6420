//! Link fault injection: what can go wrong between a sensor node and the gateway.
//!
//! Pure and deterministic for a seed: [`Injector::apply`] takes a frame and the simulated time and
//! says what goes on the wire instead. Every fault is switched on separately and counted in
//! [`InjectionStats`], so a test can compare what the receiver saw with what was done to it.

use edgewatch_protocol::{Frame, MAX_FRAME_LEN, MAX_SERIAL_LEN};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A window of simulated time during which one sensor (or all, when `sensor_id` is `None`)
/// sends nothing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    /// The sensor that goes quiet; all sensors when absent.
    pub sensor_id: Option<u32>,
    /// Start of the silence, seconds of simulated time.
    pub from_s: f64,
    /// Length of the silence in seconds.
    pub duration_s: f64,
}

/// A step of a sensor clock: from `at_s` on, timestamps are off by `jump_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampJump {
    /// Simulated time of the step in seconds.
    pub at_s: f64,
    /// Size of the step in milliseconds (negative: the clock goes back).
    pub jump_ms: i64,
}

/// Which link faults to inject, and how often. Probabilities are per frame.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkFaults {
    /// Probability that a burst of random bytes (1 to `garbage_max_bytes`) precedes a frame.
    #[serde(default)]
    pub garbage: f64,
    /// Longest garbage burst in bytes (default 64).
    #[serde(default = "default_garbage_max")]
    pub garbage_max_bytes: usize,
    /// Probability that a frame is lost on the link (its sequence number is still used).
    #[serde(default)]
    pub drop: f64,
    /// Probability that a frame arrives with a corrupted CRC.
    #[serde(default)]
    pub corrupt_crc: f64,
    /// Probability that a frame arrives twice.
    #[serde(default)]
    pub duplicate: f64,
    /// Windows during which sensors go silent.
    #[serde(default)]
    pub silence: Vec<Silence>,
    /// Sensor clock steps.
    #[serde(default)]
    pub timestamp_jump: Vec<TimestampJump>,
}

const fn default_garbage_max() -> usize {
    64
}

/// How many faults the injector applied, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InjectionStats {
    /// Frames handed to the injector.
    pub frames_in: u64,
    /// Frames put on the wire intact (a duplicate counts twice).
    pub frames_out: u64,
    /// Garbage bursts sent.
    pub garbage_bursts: u64,
    /// Chunks a serial receiver will reject because of garbage: a burst containing `0x00`
    /// bytes splits into several, and bursts with no frame between them (the frame was
    /// dropped or silenced) merge. An MQTT receiver rejects `garbage_bursts` messages instead.
    pub garbage_chunks: u64,
    /// Frames dropped at random.
    pub dropped: u64,
    /// Frames sent with a corrupted CRC.
    pub corrupted: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Frames withheld during a silence.
    pub silenced: u64,
    /// Frames whose timestamp was shifted by a clock step.
    pub time_shifted: u64,
}

/// One thing to put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// Bytes that are not a frame.
    Garbage(Vec<u8>),
    /// A raw frame (header, payload, CRC), possibly with a corrupted CRC.
    Frame {
        /// Sensor that sent it.
        sensor_id: u32,
        /// The raw frame bytes.
        raw: Vec<u8>,
    },
}

impl Wire {
    /// The bytes for a serial line: garbage as is, frames COBS-stuffed between delimiters.
    pub fn serial_bytes(&self) -> Vec<u8> {
        match self {
            Self::Garbage(g) => g.clone(),
            Self::Frame { raw, .. } => {
                let mut out = vec![0u8; MAX_SERIAL_LEN];
                // Raw frames come from `Frame::encode`, so they fit a serial buffer.
                let n = edgewatch_protocol::stuff(raw, &mut out).unwrap_or(0);
                out.truncate(n);
                out
            }
        }
    }
}

/// Applies [`LinkFaults`] to a stream of frames.
#[derive(Debug)]
pub struct Injector {
    faults: LinkFaults,
    rng: ChaCha8Rng,
    stats: InjectionStats,
    /// The last bytes on the wire were garbage not ended by a `0x00`: the next garbage joins
    /// that chunk on a serial line.
    open_garbage: bool,
}

impl Injector {
    /// An injector with its own random stream.
    pub fn new(faults: LinkFaults, seed: u64) -> Self {
        Self {
            faults,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6c69_6e6b),
            stats: InjectionStats::default(),
            open_garbage: false,
        }
    }

    /// What was done so far.
    pub fn stats(&self) -> InjectionStats {
        self.stats
    }

    /// Whether `sensor_id` is silent at simulated time `now_s`.
    pub fn is_silent(&self, sensor_id: u32, now_s: f64) -> bool {
        self.faults.silence.iter().any(|s| {
            s.sensor_id.is_none_or(|id| id == sensor_id)
                && now_s >= s.from_s
                && now_s < s.from_s + s.duration_s
        })
    }

    /// Total clock offset in µs that applies at `now_s`.
    fn clock_offset_us(&self, now_s: f64) -> i64 {
        self.faults
            .timestamp_jump
            .iter()
            .filter(|j| now_s >= j.at_s)
            .map(|j| j.jump_ms * 1000)
            .sum()
    }

    /// What goes on the wire for `frame`, produced at simulated time `now_s`.
    pub fn apply(&mut self, mut frame: Frame, now_s: f64, out: &mut Vec<Wire>) {
        self.stats.frames_in += 1;
        let f = &self.faults;
        if f.garbage > 0.0 && self.rng.random_bool(f.garbage.min(1.0)) {
            let len = self.rng.random_range(1..=f.garbage_max_bytes.max(1));
            let bytes: Vec<u8> = (0..len).map(|_| self.rng.random()).collect();
            self.stats.garbage_bursts += 1;
            let mut chunks = bytes.split(|&b| b == 0).filter(|c| !c.is_empty()).count() as u64;
            if self.open_garbage && bytes[0] != 0 {
                chunks -= 1;
            }
            self.stats.garbage_chunks += chunks;
            self.open_garbage = bytes.last() != Some(&0);
            out.push(Wire::Garbage(bytes));
        }
        if self.is_silent(frame.header.sensor_id, now_s) {
            self.stats.silenced += 1;
            return;
        }
        let f = &self.faults;
        if f.drop > 0.0 && self.rng.random_bool(f.drop.min(1.0)) {
            self.stats.dropped += 1;
            return;
        }
        let offset = self.clock_offset_us(now_s);
        if offset != 0 {
            frame.header.timestamp_us = frame.header.timestamp_us.saturating_add_signed(offset);
            self.stats.time_shifted += 1;
        }
        let mut raw = vec![0u8; MAX_FRAME_LEN];
        let n = match frame.encode(&mut raw) {
            Ok(n) => n,
            // Frames come from our own generator and are valid; an invalid one is not sent.
            Err(_) => return,
        };
        raw.truncate(n);
        let f = &self.faults;
        if f.corrupt_crc > 0.0 && self.rng.random_bool(f.corrupt_crc.min(1.0)) {
            let bit = self.rng.random_range(0..32);
            raw[n - 4 + bit / 8] ^= 1 << (bit % 8);
            self.stats.corrupted += 1;
            self.open_garbage = false;
            out.push(Wire::Frame {
                sensor_id: frame.header.sensor_id,
                raw,
            });
            return;
        }
        let copies = if f.duplicate > 0.0 && self.rng.random_bool(f.duplicate.min(1.0)) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        self.open_garbage = false;
        for _ in 0..copies {
            self.stats.frames_out += 1;
            out.push(Wire::Frame {
                sensor_id: frame.header.sensor_id,
                raw: raw.clone(),
            });
        }
    }
}

/// Error in a `--inject` specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFaultsError(String);

impl fmt::Display for ParseFaultsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseFaultsError {}

fn number<T: FromStr>(key: &str, v: &str) -> Result<T, ParseFaultsError> {
    v.parse()
        .map_err(|_| ParseFaultsError(format!("--inject {key}: `{v}` is not a number")))
}

fn probability(key: &str, v: &str) -> Result<f64, ParseFaultsError> {
    let p: f64 = number(key, v)?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(ParseFaultsError(format!(
            "--inject {key}: {p} is not a probability between 0 and 1"
        )))
    }
}

impl FromStr for LinkFaults {
    type Err = ParseFaultsError;

    /// Parses the command-line form, comma-separated `key=value` pairs:
    /// `garbage=0.01,garbage-max=64,drop=0.01,corrupt=0.01,duplicate=0.01,`
    /// `silence=SENSOR@FROM_S+DURATION_S` (`*` for all sensors), `ts-jump=AT_S:JUMP_MS`.
    /// `silence` and `ts-jump` may repeat.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut faults = LinkFaults {
            garbage_max_bytes: default_garbage_max(),
            ..LinkFaults::default()
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                ParseFaultsError(format!("--inject: `{part}` is not of the form key=value"))
            })?;
            match key {
                "garbage" => faults.garbage = probability(key, value)?,
                "garbage-max" => faults.garbage_max_bytes = number(key, value)?,
                "drop" => faults.drop = probability(key, value)?,
                "corrupt" => faults.corrupt_crc = probability(key, value)?,
                "duplicate" => faults.duplicate = probability(key, value)?,
                "silence" => {
                    let bad = || {
                        ParseFaultsError(format!(
                            "--inject silence: `{value}` is not SENSOR@FROM_S+DURATION_S"
                        ))
                    };
                    let (sensor, window) = value.split_once('@').ok_or_else(bad)?;
                    let (from, dur) = window.split_once('+').ok_or_else(bad)?;
                    faults.silence.push(Silence {
                        sensor_id: if sensor == "*" {
                            None
                        } else {
                            Some(number(key, sensor)?)
                        },
                        from_s: number(key, from)?,
                        duration_s: number(key, dur)?,
                    });
                }
                "ts-jump" => {
                    let (at, jump) = value.split_once(':').ok_or_else(|| {
                        ParseFaultsError(format!("--inject ts-jump: `{value}` is not AT_S:JUMP_MS"))
                    })?;
                    faults.timestamp_jump.push(TimestampJump {
                        at_s: number(key, at)?,
                        jump_ms: number(key, jump)?,
                    });
                }
                other => {
                    return Err(ParseFaultsError(format!(
                        "--inject: unknown fault `{other}` (known: garbage, garbage-max, drop, \
                         corrupt, duplicate, silence, ts-jump)"
                    )));
                }
            }
        }
        Ok(faults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgewatch_protocol::{Decoder, Header, Payload, Status};

    fn status(seq: u32) -> Frame {
        Frame {
            header: Header {
                sensor_id: 3,
                sequence: seq,
                timestamp_us: u64::from(seq) * 1000,
            },
            payload: Payload::Status(Status::default()),
        }
    }

    fn run(faults: LinkFaults, n: u32) -> (Vec<Wire>, InjectionStats) {
        let mut inj = Injector::new(faults, 7);
        let mut out = Vec::new();
        for seq in 0..n {
            inj.apply(status(seq), f64::from(seq) * 0.1, &mut out);
        }
        (out, inj.stats())
    }

    #[test]
    fn no_faults_means_every_frame_goes_out_once() {
        let (out, stats) = run(LinkFaults::default(), 100);
        assert_eq!(out.len(), 100);
        assert_eq!(stats.frames_out, 100);
    }

    #[test]
    fn a_receiver_sees_exactly_what_the_stats_say() {
        let faults: LinkFaults = "garbage=0.2,drop=0.1,corrupt=0.1,duplicate=0.1"
            .parse()
            .unwrap();
        let (out, stats) = run(faults, 2000);
        let stream: Vec<u8> = out.iter().flat_map(Wire::serial_bytes).collect();
        let results: Vec<_> = Decoder::new().decode(&stream).collect();
        let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
        let errors = results.iter().filter(|r| r.is_err()).count() as u64;
        assert_eq!(ok, stats.frames_out);
        assert_eq!(errors, stats.garbage_chunks + stats.corrupted);
        assert_eq!(stats.frames_in, 2000);
        assert_eq!(
            stats.frames_out,
            2000 - stats.dropped - stats.corrupted + stats.duplicated
        );
        for (count, name) in [
            (stats.garbage_bursts, "garbage"),
            (stats.dropped, "drop"),
            (stats.corrupted, "corrupt"),
            (stats.duplicated, "duplicate"),
        ] {
            assert!(count > 100, "{name}: {count}");
        }
    }

    #[test]
    fn a_silence_withholds_only_its_window() {
        let faults: LinkFaults = "silence=3@2+1.5".parse().unwrap();
        let (out, stats) = run(faults, 100);
        assert_eq!(stats.silenced, 15);
        assert_eq!(out.len(), 85);
        let other: LinkFaults = "silence=4@2+1.5".parse().unwrap();
        assert_eq!(run(other, 100).1.silenced, 0);
    }

    #[test]
    fn a_timestamp_jump_shifts_later_frames() {
        let faults: LinkFaults = "ts-jump=5:2000".parse().unwrap();
        let (out, stats) = run(faults, 100);
        assert_eq!(stats.time_shifted, 50);
        let Wire::Frame { raw, .. } = &out[60] else {
            panic!("frame expected")
        };
        let f = edgewatch_protocol::decode_frame(raw).unwrap();
        assert_eq!(f.header.timestamp_us, 60_000 + 2_000_000);
    }

    #[test]
    fn bad_specifications_name_the_fault() {
        for (spec, needle) in [
            ("garbage=2", "garbage"),
            ("drop=x", "drop"),
            ("bogus=1", "bogus"),
            ("silence=3", "silence"),
            ("ts-jump=4", "ts-jump"),
            ("nokey", "nokey"),
        ] {
            let err = spec.parse::<LinkFaults>().unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }
}
