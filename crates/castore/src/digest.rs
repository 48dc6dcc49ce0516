//! `B3Digest`: the 32-byte BLAKE3 digest that names every blob, chunk and directory.

use std::fmt;
use std::str::FromStr;

/// Length of a BLAKE3 digest in bytes.
pub const DIGEST_LEN: usize = 32;

/// A BLAKE3 digest. Printed and parsed as 64 lowercase hex digits (uppercase is
/// accepted when parsing).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct B3Digest([u8; DIGEST_LEN]);

/// Why a byte string or text is not a valid [`B3Digest`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("invalid BLAKE3 digest: expected {DIGEST_LEN} bytes, got {0}")]
    WrongLength(usize),
    #[error("invalid BLAKE3 digest: expected 64 hex digits, got {0}")]
    WrongHexLength(usize),
    #[error("invalid BLAKE3 digest: {byte:?} at position {pos} is not a hex digit")]
    NotHex { pos: usize, byte: char },
}

impl B3Digest {
    /// The digest of `data`, hashed in one go.
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    pub const fn from_bytes(bytes: [u8; DIGEST_LEN]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; DIGEST_LEN] {
        &self.0
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, DigestError> {
        let b = s.as_bytes();
        if b.len() != DIGEST_LEN * 2 {
            return Err(DigestError::WrongHexLength(s.chars().count()));
        }
        let mut out = [0u8; DIGEST_LEN];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            let hi = hex_val(pair[0]).ok_or_else(|| not_hex(s, 2 * i))?;
            let lo = hex_val(pair[1]).ok_or_else(|| not_hex(s, 2 * i + 1))?;
            out[i] = hi << 4 | lo;
        }
        Ok(Self(out))
    }

    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cold]
fn not_hex(s: &str, pos: usize) -> DigestError {
    // `s` has 64 bytes but may not be ASCII; report the character that covers `pos`.
    let byte = s
        .char_indices()
        .take_while(|(i, _)| *i <= pos)
        .last()
        .map_or('?', |(_, c)| c);
    DigestError::NotHex { pos, byte }
}

impl TryFrom<&[u8]> for B3Digest {
    type Error = DigestError;
    fn try_from(b: &[u8]) -> Result<Self, DigestError> {
        <[u8; DIGEST_LEN]>::try_from(b)
            .map(Self)
            .map_err(|_| DigestError::WrongLength(b.len()))
    }
}

impl From<[u8; DIGEST_LEN]> for B3Digest {
    fn from(b: [u8; DIGEST_LEN]) -> Self {
        Self(b)
    }
}

impl From<blake3::Hash> for B3Digest {
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

impl FromStr for B3Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        Self::from_hex(s)
    }
}

impl fmt::Display for B3Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for B3Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "B3Digest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let d = B3Digest::of(b"hello");
        assert_eq!(
            d.to_string(),
            "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
        );
        assert_eq!(d.to_string().parse::<B3Digest>(), Ok(d));
        assert_eq!(d.to_string().to_uppercase().parse::<B3Digest>(), Ok(d));
    }

    #[test]
    fn malformed() {
        assert_eq!("abc".parse::<B3Digest>(), Err(DigestError::WrongHexLength(3)));
        let mut s = "0".repeat(63);
        s.push('g');
        assert_eq!(s.parse::<B3Digest>(), Err(DigestError::NotHex { pos: 63, byte: 'g' }));
        let s = format!("é{}", "0".repeat(62));
        assert_eq!(s.parse::<B3Digest>(), Err(DigestError::NotHex { pos: 0, byte: 'é' }));
        assert_eq!(
            B3Digest::try_from(&[0u8; 31][..]),
            Err(DigestError::WrongLength(31))
        );
        assert_eq!(
            DigestError::WrongLength(31).to_string(),
            "invalid BLAKE3 digest: expected 32 bytes, got 31"
        );
    }
}
