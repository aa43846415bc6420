//! The on-disk record format.
//!
//! ```text
//! struct Record {            // all integers big-endian
//!     version: u8,           // RECORD_VERSION
//!     kind: u8,              // 0 alert, 1 summary, 2 health
//!     created_unix_ms: u64,  // wall clock when the record was made (oldest-age metric)
//!     key_len: u16,
//!     key: [u8; key_len],    // the Kafka key (asset id; agent id for health), UTF-8
//!     payload: [u8],         // the Kafka message value (versioned JSON), sent byte for byte
//!     crc32c: u32,           // CRC-32C of every byte before it
//! }
//! ```

use crc::{CRC_32_ISCSI, Crc};
use serde::Serialize;

/// The version byte written by this agent.
pub const RECORD_VERSION: u8 = 1;
const HEADER: usize = 1 + 1 + 8 + 2;
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
}

impl Kind {
    /// Every kind, in the order the cap evicts them (first evicted first).
    pub const EVICTION_ORDER: [Kind; 3] = [Kind::Health, Kind::Summary, Kind::Alert];

    /// Label for metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Alert => "alert",
            Kind::Summary => "summary",
            Kind::Health => "health",
        }
    }

    const fn code(self) -> u8 {
        match self {
            Kind::Alert => 0,
            Kind::Summary => 1,
            Kind::Health => 2,
        }
    }

    const fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(Kind::Alert),
            1 => Some(Kind::Summary),
            2 => Some(Kind::Health),
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
    #[error("record format version {0} is not supported (this agent writes {RECORD_VERSION})")]
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
}

impl Record {
    /// Encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER + self.key.len() + self.payload.len() + 4
    }

    /// The stored form. Keys longer than 65535 bytes are cut (asset ids are short).
    pub fn encode(&self) -> Vec<u8> {
        let key = &self.key.as_bytes()[..self.key.len().min(u16::MAX as usize)];
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(RECORD_VERSION);
        out.push(self.kind.code());
        out.extend_from_slice(&self.created_unix_ms.to_be_bytes());
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&self.payload);
        let crc = CRC.checksum(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses and checks stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < HEADER + 4 {
            return Err(DecodeError::Truncated(bytes.len()));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if CRC.checksum(body).to_be_bytes() != crc {
            return Err(DecodeError::Checksum);
        }
        if body[0] != RECORD_VERSION {
            return Err(DecodeError::Version(body[0]));
        }
        let kind = Kind::from_code(body[1]).ok_or(DecodeError::Kind(body[1]))?;
        let created_unix_ms = u64::from_be_bytes(body[2..10].try_into().expect("8 bytes"));
        let key_len = usize::from(u16::from_be_bytes([body[10], body[11]]));
        if body.len() < HEADER + key_len {
            return Err(DecodeError::Truncated(bytes.len()));
        }
        let key = std::str::from_utf8(&body[HEADER..HEADER + key_len])
            .map_err(|_| DecodeError::Key)?
            .to_string();
        Ok(Self {
            kind,
            created_unix_ms,
            key,
            payload: body[HEADER + key_len..].to_vec(),
        })
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

    #[test]
    fn a_truncated_record_is_refused() {
        assert_eq!(Record::decode(&[1, 0, 0]), Err(DecodeError::Truncated(3)));
    }
}
