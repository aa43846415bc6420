//! Feeds arbitrary bytes to the serial decoder (in pieces whose sizes the input chooses) and to
//! the raw-frame decoder. Any panic is a bug. Every frame that decodes must re-encode to bytes
//! that decode to the same frame.
#![no_main]

use edgewatch_protocol::{Decoder, MAX_FRAME_LEN, MAX_SERIAL_LEN, decode_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (split, bytes) = match data.split_first() {
        Some((s, rest)) => (usize::from(*s).max(1), rest),
        None => return,
    };
    let mut decoder = Decoder::new();
    for piece in bytes.chunks(split * 17) {
        for result in decoder.decode(piece) {
            if let Ok(frame) = result {
                let mut raw = [0u8; MAX_FRAME_LEN];
                let n = frame.encode(&mut raw).expect("a decoded frame re-encodes");
                assert_eq!(decode_frame(&raw[..n]).as_ref(), Ok(&frame));
                let mut serial = [0u8; MAX_SERIAL_LEN];
                frame.encode_stuffed(&mut serial).expect("a decoded frame re-stuffs");
            }
        }
    }
    if let Ok(frame) = decode_frame(bytes) {
        let mut raw = [0u8; MAX_FRAME_LEN];
        let n = frame.encode(&mut raw).expect("a decoded frame re-encodes");
        assert_eq!(&raw[..n], bytes, "raw decoding is canonical");
    }
});
