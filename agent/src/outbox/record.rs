//! The on-disk record format.
//!
//! ```text
//! struct Record {            // all integers big-endian
//!     version: u8,           // 1: payload stored as is; 2: payload compressed (below)
//!     kind: u8,              // 0 alert, 1 summary, 2 health, 3 model status, 4 command status
//!     created_unix_ms: u64,  // wall clock when the record was made (oldest-age metric)
//!     key_len: u16,
//!     key: [u8; key_len],    // the Kafka key (asset id; agent id for health), UTF-8
//!     payload: [u8],         // version 1: the Kafka message value (versioned JSON)
//!                            // version 2: value_len: u32, then the value as one LZ4 block
//!                            //            compressed against DICTIONARY
//!     crc32c: u32,           // CRC-32C of every byte before it
//! }
//! ```
//!
//! The agent writes version 2 when that is smaller, version 1 otherwise, and reads both. The
//! Kafka value is sent byte for byte as it was made either way. Version 2 stores a typical
//! summary in about half its bytes and an alert in about 40 % (header included, measured on
//! messages with random ids and full-precision numbers), and so fewer bytes are written to a
//! gateway's SD card for each one (docs/benchmarks.md): the messages are short JSON documents,
//! too short to compress well on their own, but most of their bytes (field names, enum values,
//! ids' shape) repeat a built-in example of each message kind.
//!
//! `DICTIONARY` (record-dict-v2.json) is part of format version 2: records stored with it can
//! only be read with the same bytes, so it never changes; a better one needs a new version.

use crc::{CRC_32_ISCSI, Crc};
use serde::Serialize;

/// The newest version byte this agent writes and reads.
pub const RECORD_VERSION: u8 = VERSION_LZ4;
const VERSION_PLAIN: u8 = 1;
const VERSION_LZ4: u8 = 2;
const HEADER: usize = 1 + 1 + 8 + 2;
/// Version 2's dictionary: one example message of each kind, as this agent writes them.
const DICTIONARY: &[u8] = include_bytes!("record-dict-v2.json");
/// Kafka values are far smaller (the producer's `message.max.bytes` is 1 MB by default); a
/// stored length beyond this is damage, and is not allocated.
const MAX_VALUE_LEN: usize = 16 << 20;
const CRC: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// What a record carries; also its priority under the byte cap (alerts are dropped last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An alert raised, escalated or cleared.
    Alert,
    /// A per-asset feature summary.
    Summary,
    /// An agent heartbeat.
    Health,
    /// A model lifecycle event (package received, refused, shadow, promoted, rolled back).
    ModelStatus,
    /// The outcome of a command from the feedback topic (applied, duplicate, refused).
    CommandStatus,
}

impl Kind {
    /// Every kind, in the order the cap evicts them (first evicted first).
    pub const EVICTION_ORDER: [Kind; 5] = [
        Kind::Health,
        Kind::Summary,
        Kind::CommandStatus,
        Kind::ModelStatus,
        Kind::Alert,
    ];

    /// Label for metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Alert => "alert",
            Kind::Summary => "summary",
            Kind::Health => "health",
            Kind::ModelStatus => "model_status",
            Kind::CommandStatus => "command_status",
        }
    }

    const fn code(self) -> u8 {
        match self {
            Kind::Alert => 0,
            Kind::Summary => 1,
            Kind::Health => 2,
            Kind::ModelStatus => 3,
            Kind::CommandStatus => 4,
        }
    }

    const fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(Kind::Alert),
            1 => Some(Kind::Summary),
            2 => Some(Kind::Health),
            3 => Some(Kind::ModelStatus),
            4 => Some(Kind::CommandStatus),
            _ => None,
        }
    }
}

/// One message waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What it is.
    pub kind: Kind,
    /// Wall clock when it was made, ms since the Unix epoch.
    pub created_unix_ms: u64,
    /// Kafka key.
    pub key: String,
    /// Kafka value.
    pub payload: Vec<u8>,
}

/// Why stored bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the fixed fields.
    #[error("record of {0} bytes is truncated")]
    Truncated(usize),
    /// Written by an agent with a newer format.
    #[error("record format version {0} is not supported (this agent reads versions 1 and 2)")]
    Version(u8),
    /// Unknown kind byte.
    #[error("unknown record kind {0}")]
    Kind(u8),
    /// The checksum does not match.
    #[error("record checksum mismatch")]
    Checksum,
    /// The key is not UTF-8.
    #[error("record key is not UTF-8")]
    Key,
    /// A compressed payload that does not decompress to its stated length.
    #[error("compressed record payload is damaged")]
    Compressed,
}

impl Record {
    /// The stored form: [`encode`](Self::encode)'s length (which compresses to find it).
    pub fn encoded_len(&self) -> usize {
        self.encode().len()
    }

    /// The stored form, compressed when that is smaller. Keys longer than 65535 bytes are cut
    /// at the last whole character that fits (asset ids are at most 255 bytes: the
    /// configuration refuses longer ones), so a cut key is still UTF-8 and the record decodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut cut = self.key.len().min(u16::MAX as usize);
        while !self.key.is_char_boundary(cut) {
            cut -= 1;
        }
        let key = &self.key.as_bytes()[..cut];
        let compressed = (self.payload.len() <= MAX_VALUE_LEN)
            .then(|| lz4_flex::block::compress_with_dict(&self.payload, DICTIONARY))
            .filter(|c| c.len() + 4 < self.payload.len());
        let stored_len = compressed
            .as_ref()
            .map_or(self.payload.len(), |c| c.len() + 4);
        let mut out = Vec::with_capacity(HEADER + key.len() + stored_len + 4);
        out.push(if compressed.is_some() {
            VERSION_LZ4
        } else {
            VERSION_PLAIN
        });
        out.push(self.kind.code());
        out.extend_from_slice(&self.created_unix_ms.to_be_bytes());
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key);
        match &compressed {
            Some(c) => {
                out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
                out.extend_from_slice(c);
            }
            None => out.extend_from_slice(&self.payload),
        }
        let crc = CRC.checksum(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses and checks stored bytes (either version).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let p = parse(bytes)?;
        let payload = if p.version == VERSION_PLAIN {
            p.stored.to_vec()
        } else {
            decompress(p.stored)?
        };
        Ok(Self {
            kind: p.kind,
            created_unix_ms: p.created_unix_ms,
            key: p.key.to_string(),
            payload,
        })
    }

    /// Checks stored bytes like [`decode`](Self::decode) but for the value, which is neither
    /// copied nor decompressed: what the outbox's ledger needs when it scans every stored record
    /// at start-up. A damaged compressed value (under a valid checksum) is found when the record
    /// is read to be sent.
    pub fn meta(bytes: &[u8]) -> Result<Meta, DecodeError> {
        parse(bytes).map(|p| Meta {
            kind: p.kind,
            created_unix_ms: p.created_unix_ms,
        })
    }
}

/// A stored record's kind and creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// What it is.
    pub kind: Kind,
    /// Wall clock when it was made, ms since the Unix epoch.
    pub created_unix_ms: u64,
}

/// The checked fields of a stored record, borrowing from it.
struct Parsed<'a> {
    version: u8,
    kind: Kind,
    created_unix_ms: u64,
    key: &'a str,
    stored: &'a [u8],
}

fn parse(bytes: &[u8]) -> Result<Parsed<'_>, DecodeError> {
    if bytes.len() < HEADER + 4 {
        return Err(DecodeError::Truncated(bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if CRC.checksum(body).to_be_bytes() != crc {
        return Err(DecodeError::Checksum);
    }
    let version = body[0];
    if version != VERSION_PLAIN && version != VERSION_LZ4 {
        return Err(DecodeError::Version(version));
    }
    let kind = Kind::from_code(body[1]).ok_or(DecodeError::Kind(body[1]))?;
    let created_unix_ms = u64::from_be_bytes(body[2..10].try_into().expect("8 bytes"));
    let key_len = usize::from(u16::from_be_bytes([body[10], body[11]]));
    if body.len() < HEADER + key_len {
        return Err(DecodeError::Truncated(bytes.len()));
    }
    let key = std::str::from_utf8(&body[HEADER..HEADER + key_len]).map_err(|_| DecodeError::Key)?;
    Ok(Parsed {
        version,
        kind,
        created_unix_ms,
        key,
        stored: &body[HEADER + key_len..],
    })
}

/// Version 2's payload: the value's length, then the LZ4 block.
fn decompress(stored: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let (len, block) = stored
        .split_first_chunk::<4>()
        .ok_or(DecodeError::Compressed)?;
    let len = u32::from_be_bytes(*len) as usize;
    if len > MAX_VALUE_LEN {
        return Err(DecodeError::Compressed);
    }
    let mut value = vec![0; len];
    match lz4_flex::block::decompress_into_with_dict(block, &mut value, DICTIONARY) {
        Ok(n) if n == len => Ok(value),
        _ => Err(DecodeError::Compressed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![Just(Kind::Alert), Just(Kind::Summary), Just(Kind::Health)]
    }

    proptest! {
        #[test]
        fn every_record_survives_a_round_trip(
            kind in kind(),
            created in any::<u64>(),
            key in "[a-z0-9-]{0,40}",
            payload in proptest::collection::vec(any::<u8>(), 0..2000),
        ) {
            let r = Record { kind, created_unix_ms: created, key, payload };
            let bytes = r.encode();
            prop_assert_eq!(bytes.len(), r.encoded_len());
            prop_assert_eq!(Record::decode(&bytes).unwrap(), r);
        }

        #[test]
        fn any_flipped_bit_is_detected(
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            bit in any::<prop::sample::Index>(),
        ) {
            let r = Record { kind: Kind::Alert, created_unix_ms: 7, key: "pump-1".into(), payload };
            let mut bytes = r.encode();
            let i = bit.index(bytes.len() * 8);
            bytes[i / 8] ^= 1 << (i % 8);
            prop_assert!(Record::decode(&bytes).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Record::decode(&bytes);
        }
    }

    #[test]
    fn a_newer_version_is_refused_by_name() {
        let r = Record {
            kind: Kind::Summary,
            created_unix_ms: 1,
            key: "k".into(),
            payload: b"{}".to_vec(),
        };
        let mut bytes = r.encode();
        bytes[0] = 9;
        let n = bytes.len();
        let crc = CRC.checksum(&bytes[..n - 4]).to_be_bytes();
        bytes[n - 4..].copy_from_slice(&crc);
        assert_eq!(Record::decode(&bytes), Err(DecodeError::Version(9)));
    }

    fn summary_json(n: u32) -> Vec<u8> {
        format!(
            r#"{{"schema_version":1,"type":"summary","record_id":"{:032x}","agent_id":"gw-7","asset_id":"press-{n}","sensor_id":{n},"window_start_us":{},"window_end_us":{},"model_version":"edgewatch-classifier-1","created_unix_ms":{},"windows":14,"rms_g_mean":0.{:017},"rms_g_max":0.{:017},"velocity_rms_mm_s_mean":1.{:016},"velocity_rms_mm_s_max":2.{:016},"kurtosis_max":3.{:015},"crest_factor_max":4.{:015},"bearing_line_db_max":7.{:015},"worst_zone":"A","worst_level":"normal","anomaly_max":null,"temperature_c":51.25,"class":"healthy","class_probability":0.{:016},"active_alert":null}}"#,
            u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834),
            u64::from(n) * 5_000_017,
            u64::from(n) * 5_000_017 + 5_000_000,
            1_764_496_800_000 + u64::from(n),
            u64::from(n) * 7_919,
            u64::from(n) * 104_729,
            u64::from(n) * 1_299_709,
            u64::from(n) * 15_485_863,
            u64::from(n) * 7,
            u64::from(n) * 11,
            u64::from(n) * 13,
            u64::from(n) * 179_424_673,
        )
        .into_bytes()
    }

    proptest! {
        #[test]
        fn json_messages_are_compressed_and_survive_a_round_trip(n in any::<u32>(), kind in kind()) {
            let r = Record { kind, created_unix_ms: 9, key: format!("press-{n}"), payload: summary_json(n) };
            let bytes = r.encode();
            prop_assert_eq!(bytes[0], VERSION_LZ4);
            prop_assert_eq!(Record::decode(&bytes).unwrap(), r);
        }

        #[test]
        fn any_flipped_bit_of_a_compressed_record_is_detected(
            n in any::<u32>(),
            bit in any::<prop::sample::Index>(),
        ) {
            let r = Record { kind: Kind::Summary, created_unix_ms: 7, key: "pump-1".into(), payload: summary_json(n) };
            let mut bytes = r.encode();
            prop_assert_eq!(bytes[0], VERSION_LZ4);
            let i = bit.index(bytes.len() * 8);
            bytes[i / 8] ^= 1 << (i % 8);
            prop_assert!(Record::decode(&bytes).is_err());
        }
    }

    #[test]
    fn a_summary_is_stored_at_less_than_half_its_size() {
        let payload = summary_json(424_242);
        let r = Record {
            kind: Kind::Summary,
            created_unix_ms: 1,
            key: "press-424242".into(),
            payload,
        };
        let stored = r.encode().len();
        assert!(
            stored * 2 < r.payload.len(),
            "{} bytes of JSON stored in {stored}",
            r.payload.len()
        );
    }

    #[test]
    fn meta_reads_kind_and_time_of_either_version_and_checks_the_checksum() {
        for payload in [summary_json(5), vec![0x5a, 0x01, 0xc3]] {
            let r = Record {
                kind: Kind::Health,
                created_unix_ms: 77,
                key: "gw".into(),
                payload,
            };
            let mut bytes = r.encode();
            let meta = Record::meta(&bytes).unwrap();
            assert_eq!((meta.kind, meta.created_unix_ms), (Kind::Health, 77));
            let last = bytes.len() - 5;
            bytes[last] ^= 1;
            assert_eq!(Record::meta(&bytes), Err(DecodeError::Checksum));
        }
    }

    #[test]
    fn incompressible_payloads_are_stored_as_version_1() {
        let r = Record {
            kind: Kind::Alert,
            created_unix_ms: 3,
            key: "k".into(),
            payload: (0..64u8).map(|i| i.wrapping_mul(97) ^ 0x5a).collect(),
        };
        let bytes = r.encode();
        assert_eq!(bytes[0], VERSION_PLAIN);
        assert_eq!(bytes.len(), HEADER + 1 + 64 + 4);
        assert_eq!(Record::decode(&bytes).unwrap(), r);
    }

    /// Bytes an agent of format version 1 wrote (kind summary, created 0x0102030405060708,
    /// key "ab", payload "{}"): outboxes from before version 2 are still read.
    #[test]
    fn a_record_written_in_version_1_is_read() {
        let mut bytes = vec![1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 2, b'a', b'b', b'{', b'}'];
        let crc = CRC.checksum(&bytes).to_be_bytes();
        assert_eq!(
            crc,
            [0xe8, 0x7d, 0x5f, 0x3c],
            "CRC-32C as version 1 computed it"
        );
        bytes.extend_from_slice(&crc);
        let r = Record::decode(&bytes).unwrap();
        assert_eq!(
            r,
            Record {
                kind: Kind::Summary,
                created_unix_ms: 0x0102_0304_0506_0708,
                key: "ab".into(),
                payload: b"{}".to_vec(),
            }
        );
    }

    /// Version 2 records can only be read with the dictionary they were written with.
    #[test]
    fn the_dictionary_never_changes() {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(DICTIONARY);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex, "cc186c4f162bf84d4e6c765bfab7803e1545648dd96e45c74096ee0f2c6da78f",
            "record-dict-v2.json changed: stored version-2 records would become unreadable; \
             restore it and add a new format version for a new dictionary"
        );
    }

    fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
        let crc = CRC.checksum(&body).to_be_bytes();
        body.extend_from_slice(&crc);
        body
    }

    #[test]
    fn a_damaged_compressed_payload_with_a_valid_checksum_is_refused() {
        let header = vec![VERSION_LZ4, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b'k'];
        // A length beyond the limit is refused before anything is allocated.
        let mut huge = header.clone();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        huge.extend_from_slice(&[0x10, b'x']);
        assert_eq!(
            Record::decode(&with_crc(huge)),
            Err(DecodeError::Compressed)
        );
        // A block that decodes to fewer bytes than stated.
        let mut short = header.clone();
        short.extend_from_slice(&10u32.to_be_bytes());
        short.extend_from_slice(&lz4_flex::block::compress_with_dict(b"{}", DICTIONARY));
        assert_eq!(
            Record::decode(&with_crc(short)),
            Err(DecodeError::Compressed)
        );
        // A block that is not LZ4, and one cut short of its length field.
        let mut garbage = header.clone();
        garbage.extend_from_slice(&100u32.to_be_bytes());
        garbage.extend_from_slice(&[0xff; 8]);
        assert_eq!(
            Record::decode(&with_crc(garbage)),
            Err(DecodeError::Compressed)
        );
        let mut cut = header;
        cut.extend_from_slice(&[0, 0]);
        assert_eq!(Record::decode(&with_crc(cut)), Err(DecodeError::Compressed));
    }

    #[test]
    fn a_truncated_record_is_refused() {
        assert_eq!(Record::decode(&[1, 0, 0]), Err(DecodeError::Truncated(3)));
    }

    #[test]
    fn a_key_too_long_is_cut_on_a_character_and_the_record_still_decodes() {
        // 'é' is two bytes: 32768 of them are 65536 bytes, one past the limit, so a byte cut
        // would split the last one.
        let r = Record {
            kind: Kind::Alert,
            created_unix_ms: 1,
            key: "é".repeat(32_768),
            payload: b"{}".to_vec(),
        };
        let back = Record::decode(&r.encode()).expect("decodes");
        assert_eq!(back.key, "é".repeat(32_767));
        assert_eq!(back.payload, r.payload);
    }
}
