//! Replay of real recordings: a file of raw little-endian samples of one channel becomes the
//! vibration source of a sensor node, so recordings go through the agent exactly as live data.

use crate::node::SignalSource;
use std::io;
use std::path::Path;

/// Sample encoding of a recording file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SampleFormat {
    /// IEEE 754 binary32, little-endian, in g.
    F32,
    /// Signed 16-bit, little-endian; multiplied by a scale factor to get g.
    I16,
}

/// A recording loaded into memory, as acceleration in g.
#[derive(Debug, Clone)]
pub struct Recording {
    samples: Vec<f32>,
    position: usize,
    looping: bool,
}

impl Recording {
    /// Reads a recording; `scale_g` converts i16 counts to g (ignored for f32).
    pub fn load(path: &Path, format: SampleFormat, scale_g: f32) -> io::Result<Self> {
        let bytes = std::fs::read(path)?;
        Self::from_bytes(&bytes, format, scale_g).map_err(|msg| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {msg}", path.display()),
            )
        })
    }

    /// Parses raw bytes of a recording.
    pub fn from_bytes(bytes: &[u8], format: SampleFormat, scale_g: f32) -> Result<Self, String> {
        let samples: Vec<f32> = match format {
            SampleFormat::F32 => {
                if !bytes.len().is_multiple_of(4) {
                    return Err(format!(
                        "{} bytes is not a whole number of f32 samples",
                        bytes.len()
                    ));
                }
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            }
            SampleFormat::I16 => {
                if !bytes.len().is_multiple_of(2) {
                    return Err(format!(
                        "{} bytes is not a whole number of i16 samples",
                        bytes.len()
                    ));
                }
                bytes
                    .chunks_exact(2)
                    .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) * scale_g)
                    .collect()
            }
        };
        if samples.is_empty() {
            return Err("the recording is empty".into());
        }
        if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
            return Err(format!("sample {i} is not a finite number"));
        }
        Ok(Self {
            samples,
            position: 0,
            looping: false,
        })
    }

    /// Starts over at the beginning when the end is reached, instead of stopping.
    pub fn looping(mut self, yes: bool) -> Self {
        self.looping = yes;
        self
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the recording has no samples (never true for a loaded one).
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Largest absolute value in g: the full scale a replay needs so nothing clips.
    pub fn peak_g(&self) -> f32 {
        self.samples.iter().fold(0.0, |m, s| m.max(s.abs()))
    }
}

impl SignalSource for Recording {
    /// Fills a whole block (one axis); a partial block at the end is not sent.
    fn next_vibration(&mut self, out: &mut [f32]) -> bool {
        if self.position + out.len() > self.samples.len() {
            if !self.looping || out.len() > self.samples.len() {
                return false;
            }
            self.position = 0;
        }
        out.copy_from_slice(&self.samples[self.position..self.position + out.len()]);
        self.position += out.len();
        true
    }

    fn temperature_c(&mut self, _t_s: f64) -> Option<f64> {
        None
    }

    /// The recording is the machine's own continuous signal: a snapshot replay sends the
    /// samples at the burst times and passes over those between, wrapping around when
    /// looping; false once the end is passed.
    fn skip(&mut self, samples_per_axis: usize, _axes: usize) -> bool {
        let end = self.position.saturating_add(samples_per_axis);
        if end <= self.samples.len() {
            self.position = end;
            true
        } else if self.looping {
            self.position = end % self.samples.len();
            true
        } else {
            self.position = self.samples.len();
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_is_sent_in_whole_blocks_then_ends() {
        let bytes: Vec<u8> = (0..10).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let mut r = Recording::from_bytes(&bytes, SampleFormat::F32, 1.0).unwrap();
        let mut block = [0.0; 4];
        assert!(r.next_vibration(&mut block));
        assert_eq!(block, [0.0, 1.0, 2.0, 3.0]);
        assert!(r.next_vibration(&mut block));
        assert!(!r.next_vibration(&mut block));
    }

    #[test]
    fn a_looping_recording_starts_over() {
        let bytes: Vec<u8> = (0..6i16).flat_map(|i| i.to_le_bytes()).collect();
        let mut r = Recording::from_bytes(&bytes, SampleFormat::I16, 0.5)
            .unwrap()
            .looping(true);
        let mut block = [0.0; 4];
        assert!(r.next_vibration(&mut block));
        assert!(r.next_vibration(&mut block));
        assert_eq!(block, [0.0, 0.5, 1.0, 1.5]);
    }

    #[test]
    fn a_skip_passes_over_samples_and_wraps_only_when_looping() {
        let bytes: Vec<u8> = (0..10).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let mut r = Recording::from_bytes(&bytes, SampleFormat::F32, 1.0).unwrap();
        let mut block = [0.0; 2];
        assert!(r.skip(3, 1));
        assert!(r.next_vibration(&mut block));
        assert_eq!(block, [3.0, 4.0]);
        assert!(!r.skip(6, 1), "passes the end");
        assert!(!r.next_vibration(&mut block));
        let mut looping = Recording::from_bytes(&bytes, SampleFormat::F32, 1.0)
            .unwrap()
            .looping(true);
        assert!(looping.skip(23, 1));
        assert!(looping.next_vibration(&mut block));
        assert_eq!(block, [3.0, 4.0]);
    }

    #[test]
    fn malformed_recordings_are_refused_with_a_reason() {
        assert!(
            Recording::from_bytes(&[0; 5], SampleFormat::F32, 1.0)
                .unwrap_err()
                .contains("f32")
        );
        assert!(
            Recording::from_bytes(&[], SampleFormat::I16, 1.0)
                .unwrap_err()
                .contains("empty")
        );
        let nan = f32::NAN.to_le_bytes();
        assert!(
            Recording::from_bytes(&nan, SampleFormat::F32, 1.0)
                .unwrap_err()
                .contains("finite")
        );
    }
}
