//! Streaming decoder for the serial framing (COBS, `0x00` delimiters).
//!
//! The decoder accumulates bytes up to a delimiter in a fixed buffer, then unstuffs the chunk in
//! place and decodes it with [`crate::decode_frame`]. Empty chunks (two delimiters in a row, as
//! between two frames) are skipped silently; every other chunk yields exactly one frame or one
//! error. A chunk that outgrows the buffer is dropped up to the next delimiter and reported once
//! as [`DecodeError::Oversize`]. So a reader that starts mid-stream, or meets garbage, loses at
//! most the chunk it is in and finds the next frame at the next delimiter.

use crate::error::DecodeError;
use crate::frame::{Frame, decode_frame};
use crate::{DELIMITER, MAX_STUFFED_LEN};
use heapless::Vec;

/// What one call to [`Decoder::feed`] produced.
#[derive(Debug)]
// A decoded frame is returned by value: the crate cannot box without an allocator, and the
// caller moves it once into its own storage.
#[allow(clippy::large_enum_variant)]
pub enum Feed<'a> {
    /// All input was consumed without completing a chunk.
    NeedMore,
    /// A frame completed; `rest` is the input after its delimiter.
    Frame(Frame, &'a [u8]),
    /// A chunk was rejected; `rest` is the input after its delimiter.
    Error(DecodeError, &'a [u8]),
}

/// Streaming serial decoder with a fixed buffer of [`MAX_STUFFED_LEN`] bytes.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8, MAX_STUFFED_LEN>,
    /// The current chunk overflowed `buf`; drop bytes until the next delimiter.
    overflowed: bool,
}

impl Decoder {
    /// A decoder in its initial state (as after a delimiter).
    pub const fn new() -> Self {
        Self {
            buf: Vec::new(),
            overflowed: false,
        }
    }

    /// Bytes held of an incomplete chunk.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Forgets any incomplete chunk, e.g. after the serial device was reopened.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.overflowed = false;
    }

    /// Consumes `input` up to and including the first delimiter that completes a non-empty
    /// chunk, and says what that chunk was. Call again with the returned rest until
    /// [`Feed::NeedMore`].
    pub fn feed<'a>(&mut self, mut input: &'a [u8]) -> Feed<'a> {
        loop {
            let Some(pos) = input.iter().position(|&b| b == DELIMITER) else {
                self.absorb(input);
                return Feed::NeedMore;
            };
            self.absorb(&input[..pos]);
            input = &input[pos + 1..];
            if self.overflowed {
                self.reset();
                return Feed::Error(DecodeError::Oversize, input);
            }
            if self.buf.is_empty() {
                continue;
            }
            let result = match cobs::decode_in_place(&mut self.buf) {
                Ok(n) => decode_frame(&self.buf[..n]),
                Err(_) => Err(DecodeError::Stuffing),
            };
            self.buf.clear();
            return match result {
                Ok(frame) => Feed::Frame(frame, input),
                Err(e) => Feed::Error(e, input),
            };
        }
    }

    /// An iterator over every frame or error that `input` completes.
    pub fn decode<'d, 'a>(&'d mut self, input: &'a [u8]) -> DecodeIter<'d, 'a> {
        DecodeIter {
            decoder: self,
            input,
        }
    }

    fn absorb(&mut self, bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        if self.buf.extend_from_slice(bytes).is_err() {
            self.buf.clear();
            self.overflowed = true;
        }
    }
}

/// Iterator returned by [`Decoder::decode`].
#[derive(Debug)]
pub struct DecodeIter<'d, 'a> {
    decoder: &'d mut Decoder,
    input: &'a [u8],
}

impl Iterator for DecodeIter<'_, '_> {
    type Item = Result<Frame, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.input.is_empty() {
            return None;
        }
        match self.decoder.feed(self.input) {
            Feed::NeedMore => {
                self.input = &[];
                None
            }
            Feed::Frame(f, rest) => {
                self.input = rest;
                Some(Ok(f))
            }
            Feed::Error(e, rest) => {
                self.input = rest;
                Some(Err(e))
            }
        }
    }
}
