//! TRON addresses: 21 bytes (version byte 0x41 + 20-byte account id), shown to people as
//! 34-character base58check strings starting with `T`.
//!
//! Full-node logs carry the bare 20-byte id as hex; TronGrid returns base58. Both meet here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The chain payments are read from, as stored in `orders.chain` and metric labels.
pub const CHAIN: &str = "tron";
/// The token paid in, as stored in `orders.token`.
pub const TOKEN: &str = "USDT";

/// Version byte of every TRON mainnet address.
pub const VERSION: u8 = 0x41;

/// A validated TRON address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TronAddress([u8; 21]);

/// Why a string is not a TRON address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TronAddressError {
    #[error("a TRON address has 34 characters, this one has {0}")]
    Length(usize),
    #[error("a TRON address uses base58 characters only (no 0, O, I or l)")]
    Alphabet,
    #[error("the address checksum does not match (mistyped?)")]
    Checksum,
    #[error("not a TRON address: its version byte is 0x{0:02x}, expected 0x41")]
    Version(u8),
    #[error("not a valid hex account id")]
    Hex,
}

fn checksum(payload: &[u8]) -> [u8; 4] {
    let first = Sha256::digest(payload);
    let second = Sha256::digest(first);
    [second[0], second[1], second[2], second[3]]
}

impl TronAddress {
    /// Parses a base58check address as people and TronGrid write it.
    pub fn parse(s: &str) -> Result<Self, TronAddressError> {
        let chars = s.chars().count();
        if chars != 34 {
            return Err(TronAddressError::Length(chars));
        }
        let raw = bs58::decode(s)
            .into_vec()
            .map_err(|_| TronAddressError::Alphabet)?;
        if raw.len() != 25 {
            return Err(TronAddressError::Checksum);
        }
        let (payload, check) = raw.split_at(21);
        if checksum(payload) != check {
            return Err(TronAddressError::Checksum);
        }
        if payload[0] != VERSION {
            return Err(TronAddressError::Version(payload[0]));
        }
        let mut bytes = [0u8; 21];
        bytes.copy_from_slice(payload);
        Ok(TronAddress(bytes))
    }

    /// From the 21-byte hex form (`41` + 40 hex digits) used by the full-node API.
    pub fn from_hex21(hex_str: &str) -> Result<Self, TronAddressError> {
        let raw = hex::decode(hex_str).map_err(|_| TronAddressError::Hex)?;
        let bytes: [u8; 21] = raw.try_into().map_err(|_| TronAddressError::Hex)?;
        if bytes[0] != VERSION {
            return Err(TronAddressError::Version(bytes[0]));
        }
        Ok(TronAddress(bytes))
    }

    /// From the bare 20-byte account id (40 hex digits), as in event logs and topics.
    pub fn from_account_hex(hex_str: &str) -> Result<Self, TronAddressError> {
        let raw = hex::decode(hex_str).map_err(|_| TronAddressError::Hex)?;
        if raw.len() != 20 {
            return Err(TronAddressError::Hex);
        }
        let mut bytes = [0u8; 21];
        bytes[0] = VERSION;
        bytes[1..].copy_from_slice(&raw);
        Ok(TronAddress(bytes))
    }

    /// The 21-byte hex form, lowercase.
    pub fn to_hex21(&self) -> String {
        hex::encode(self.0)
    }

    /// The 20-byte account id as lowercase hex (no version byte).
    pub fn account_hex(&self) -> String {
        hex::encode(&self.0[1..])
    }

    pub fn as_bytes(&self) -> &[u8; 21] {
        &self.0
    }
}

impl fmt::Display for TronAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = [0u8; 25];
        raw[..21].copy_from_slice(&self.0);
        raw[21..].copy_from_slice(&checksum(&self.0));
        f.write_str(&bs58::encode(raw).into_string())
    }
}

impl fmt::Debug for TronAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TronAddress({self})")
    }
}

impl TryFrom<String> for TronAddress {
    type Error = TronAddressError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TronAddress::parse(&s)
    }
}

impl FromStr for TronAddress {
    type Err = TronAddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TronAddress::parse(s)
    }
}

impl Serialize for TronAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TronAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        TronAddress::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared test vectors, kept in the repository beside the code that must honour them.
    const VECTORS: &str = include_str!("../../tests/data/tron-addresses.txt");

    #[test]
    fn every_shared_vector_is_classified_right() {
        let mut valid = 0;
        let mut invalid = 0;
        for line in VECTORS.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["valid", addr, hex21] => {
                    let a = TronAddress::parse(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
                    assert_eq!(a.to_hex21(), *hex21);
                    assert_eq!(a.to_string(), *addr, "re-encodes to the same text");
                    assert_eq!(TronAddress::from_hex21(hex21).unwrap(), a);
                    valid += 1;
                }
                ["invalid", addr, why] => {
                    assert!(
                        TronAddress::parse(addr).is_err(),
                        "{addr} ({why}) was accepted"
                    );
                    invalid += 1;
                }
                other => panic!("unreadable vector line: {other:?}"),
            }
        }
        assert!(
            valid >= 6 && invalid >= 11,
            "vectors were read: {valid}/{invalid}"
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            TronAddress::parse("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6"),
            Err(TronAddressError::Length(33))
        );
        assert_eq!(
            TronAddress::parse("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u"),
            Err(TronAddressError::Checksum)
        );
        assert_eq!(
            TronAddress::parse("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj60"),
            Err(TronAddressError::Alphabet)
        );
        assert!(matches!(
            TronAddress::parse("TpSyGx2w2bR9GdrDrYtrYwbvSPhwSmg7ER"),
            Err(TronAddressError::Version(0x42))
        ));
    }

    #[test]
    fn decodes_log_topics_from_the_full_node_sample() {
        let from =
            TronAddress::from_account_hex("2b41b215051fabb8fa7a82348e6802cf43b9e319").unwrap();
        let to = TronAddress::from_account_hex("e54f448d91153818a4573d6c151171ce8e607bbe").unwrap();
        assert_eq!(from.to_string(), "TDuvkvLEhHvy3VQDWowtt16n3W5khHgsaL");
        assert_eq!(to.to_string(), "TWsghcMkFXe1hnwZAWVQ9fUrZBtYv2aGJ8");
    }
}
