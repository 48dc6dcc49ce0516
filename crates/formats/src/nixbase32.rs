//! nixbase32: Nix's base-32 encoding (own alphabet, least significant bits first).

/// The 32 characters Nix uses, in digit order (no `e`, `o`, `u`, `t`).
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

const INVALID: u8 = 0xff;

const DECODE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 32 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Why a nixbase32 string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid character {0:?} in nixbase32 string")]
    InvalidChar(char),
    #[error("nixbase32 string has length {got}, expected {expected}")]
    WrongLength { got: usize, expected: usize },
    #[error("nixbase32 string has non-zero leftover bits")]
    LeftoverBits,
}

/// Number of nixbase32 characters needed for `n` bytes.
pub const fn encoded_len(n: usize) -> usize {
    if n == 0 { 0 } else { (n * 8 - 1) / 5 + 1 }
}

/// Number of bytes a nixbase32 string of `n` characters decodes to.
pub const fn decoded_len(n: usize) -> usize {
    n * 5 / 8
}

/// Encode bytes as nixbase32, writing into `out` (which must be `encoded_len` long).
pub fn encode_into(input: &[u8], out: &mut [u8]) {
    let len = encoded_len(input.len());
    assert_eq!(
        out.len(),
        len,
        "output buffer must be encoded_len(input) long"
    );
    for (k, slot) in out.iter_mut().enumerate() {
        let n = len - 1 - k;
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        let lo = input[i] >> j;
        let hi = if i + 1 < input.len() {
            ((input[i + 1] as u16) << (8 - j)) as u8
        } else {
            0
        };
        *slot = ALPHABET[((lo | hi) & 0x1f) as usize];
    }
}

/// Encode bytes as a nixbase32 string.
pub fn encode(input: &[u8]) -> String {
    let mut out = vec![0u8; encoded_len(input.len())];
    encode_into(input, &mut out);
    String::from_utf8(out).expect("alphabet is ASCII")
}

/// Decode a nixbase32 string into `out`, whose length gives the expected byte count.
pub fn decode_into(input: &[u8], out: &mut [u8]) -> Result<(), DecodeError> {
    let expected = encoded_len(out.len());
    if input.len() != expected {
        return Err(DecodeError::WrongLength {
            got: input.len(),
            expected,
        });
    }
    out.fill(0);
    let size = out.len();
    for (k, &c) in input.iter().enumerate() {
        let digit = DECODE[c as usize];
        if digit == INVALID {
            return Err(DecodeError::InvalidChar(c as char));
        }
        let n = input.len() - 1 - k;
        let b = n * 5;
        let i = b / 8;
        let j = b % 8;
        out[i] |= ((digit as u16) << j) as u8;
        let carry = ((digit as u16) >> (8 - j)) as u8;
        if i + 1 < size {
            out[i + 1] |= carry;
        } else if carry != 0 {
            return Err(DecodeError::LeftoverBits);
        }
    }
    Ok(())
}

/// Decode a nixbase32 string of any valid length.
pub fn decode(input: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let n = decoded_len(input.len());
    if encoded_len(n) != input.len() {
        // e.g. a length no byte count encodes to; report the nearest shorter one
        if let Some(&c) = input.iter().find(|&&c| DECODE[c as usize] == INVALID) {
            return Err(DecodeError::InvalidChar(c as char));
        }
        return Err(DecodeError::WrongLength {
            got: input.len(),
            expected: encoded_len(n),
        });
    }
    let mut out = vec![0u8; n];
    decode_into(input, &mut out)?;
    Ok(out)
}

/// Whether `c` is a nixbase32 character.
pub fn is_valid_char(c: u8) -> bool {
    DECODE[c as usize] != INVALID
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(encode(&[]), "");
        assert_eq!(encode(&[0x1f]), "0z");
        // sha256("") in nix32, as printed by `nix-hash --type sha256 --to-base32`
        let h = hex::decode("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            .unwrap();
        assert_eq!(
            encode(&h),
            "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
        );
        assert_eq!(
            decode(b"0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73").unwrap(),
            h
        );
    }

    #[test]
    fn rejects() {
        assert_eq!(decode(b"0e"), Err(DecodeError::InvalidChar('e')));
        // two chars decode to one byte; 'z' as the top digit overflows
        assert_eq!(decode(b"z0"), Err(DecodeError::LeftoverBits));
        assert!(matches!(
            decode(b"000"),
            Err(DecodeError::WrongLength { .. })
        ));
    }
}
