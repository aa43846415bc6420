//! Checks the hex test vectors in `docs/protocol.md` against the codec, both ways.

mod common;

use edgewatch_protocol::{
    CRC_LEN, DecodeError, Decoder, HEADER_LEN, MAX_FRAME_LEN, MAX_SERIAL_LEN, MAX_STUFFED_LEN,
    decode_frame,
};

const SPEC: &str = include_str!("../../docs/protocol.md");

/// The bytes of the fenced block after `<!-- vector: NAME -->` in the spec.
fn spec_vector(name: &str) -> Vec<u8> {
    let marker = format!("<!-- vector: {name} -->");
    let start = SPEC
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/protocol.md has no vector {name}"));
    let block = &SPEC[start + marker.len()..];
    let open = block.find("```text\n").expect("vector block opens") + "```text\n".len();
    let close = block[open..].find("```").expect("vector block closes");
    block[open..open + close]
        .split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).expect("hex byte"))
        .collect()
}

#[test]
fn every_frame_encodes_to_its_spec_vector() {
    for (name, frame) in common::vector_frames() {
        let mut raw = [0u8; MAX_FRAME_LEN];
        let n = frame.encode(&mut raw).unwrap();
        assert_eq!(n, frame.encoded_len(), "{name}");
        assert_eq!(raw[..n], spec_vector(&format!("{name}-raw")), "{name}-raw");
        let mut serial = [0u8; MAX_SERIAL_LEN];
        let m = frame.encode_stuffed(&mut serial).unwrap();
        assert!(m <= frame.stuffed_len(), "{name}");
        assert_eq!(
            serial[..m],
            spec_vector(&format!("{name}-serial")),
            "{name}-serial"
        );
    }
}

#[test]
fn every_spec_vector_decodes_to_its_frame() {
    for (name, frame) in common::vector_frames() {
        assert_eq!(
            decode_frame(&spec_vector(&format!("{name}-raw"))),
            Ok(frame.clone()),
            "{name}-raw"
        );
        let mut decoder = Decoder::new();
        let got: Vec<_> = decoder
            .decode(&spec_vector(&format!("{name}-serial")))
            .collect();
        assert_eq!(got, vec![Ok(frame)], "{name}-serial");
    }
}

#[test]
fn the_spec_rejection_examples_give_the_spec_errors() {
    let status = spec_vector("status-raw");
    let mut bad_crc = status.clone();
    *bad_crc.last_mut().unwrap() = 0x7c;
    assert!(matches!(
        decode_frame(&bad_crc),
        Err(DecodeError::Crc { .. })
    ));
    let mut bad_version = status.clone();
    bad_version[0] = 2;
    assert_eq!(
        decode_frame(&bad_version),
        Err(DecodeError::UnknownVersion(2))
    );
    assert_eq!(
        decode_frame(&status[..30]),
        Err(DecodeError::Truncated {
            len: 30,
            needed: 38
        })
    );
}

#[test]
fn the_crc_is_crc32c_by_its_check_value() {
    // A frame whose CRC is computed over a known body: re-derive CRC-32C("123456789") by
    // checking the documented check value against the crc crate's iSCSI algorithm.
    assert_eq!(
        crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(b"123456789"),
        0xe306_9283
    );
    assert!(SPEC.contains("`0xe3069283`"));
    // The status vector's trailer is that algorithm over its body.
    let status = spec_vector("status-raw");
    let body = status.len() - CRC_LEN;
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&status[..body]);
    assert_eq!(status[body..], crc.to_le_bytes());
    assert_eq!(body, HEADER_LEN + 14);
}

#[test]
fn the_spec_states_the_real_size_limits() {
    assert!(SPEC.contains(&format!("largest raw frame is {MAX_FRAME_LEN} bytes")));
    assert!(SPEC.contains(&format!("longer than {MAX_STUFFED_LEN} bytes")));
    assert!(SPEC.contains(&format!("grew beyond {MAX_STUFFED_LEN} bytes")));
}
