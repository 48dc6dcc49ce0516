//! Nix hashes: algorithms, every textual form Nix accepts, and a streaming hasher.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE64;
use sha2::Digest;

use crate::nixbase32;

/// A hash algorithm Nix knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgo {
    pub const ALL: [HashAlgo; 4] = [
        HashAlgo::Md5,
        HashAlgo::Sha1,
        HashAlgo::Sha256,
        HashAlgo::Sha512,
    ];

    /// Digest size in bytes.
    pub const fn size(self) -> usize {
        match self {
            HashAlgo::Md5 => 16,
            HashAlgo::Sha1 => 20,
            HashAlgo::Sha256 => 32,
            HashAlgo::Sha512 => 64,
        }
    }

    /// Nix's name for it (`md5`, `sha1`, `sha256`, `sha512`).
    pub const fn name(self) -> &'static str {
        match self {
            HashAlgo::Md5 => "md5",
            HashAlgo::Sha1 => "sha1",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha512 => "sha512",
        }
    }

    /// Length of the digest in each textual encoding.
    pub const fn encoded_len(self, enc: Encoding) -> usize {
        let n = self.size();
        match enc {
            Encoding::Base16 => 2 * n,
            Encoding::Nix32 => nixbase32::encoded_len(n),
            Encoding::Base64 | Encoding::Sri => n.div_ceil(3) * 4,
        }
    }

    /// Hash `data` in one go.
    pub fn digest(self, data: &[u8]) -> NixHash {
        let mut h = Hasher::new(self);
        h.update(data);
        h.finish()
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgo {
    type Err = HashError;
    fn from_str(s: &str) -> Result<Self, HashError> {
        match s {
            "md5" => Ok(HashAlgo::Md5),
            "sha1" => Ok(HashAlgo::Sha1),
            "sha256" => Ok(HashAlgo::Sha256),
            "sha512" => Ok(HashAlgo::Sha512),
            _ => Err(HashError::UnknownAlgo(s.to_owned())),
        }
    }
}

/// A textual encoding of a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Lowercase hexadecimal.
    Base16,
    /// nixbase32 (what Nix calls "base32").
    Nix32,
    /// Standard padded base64.
    Base64,
    /// `algo-base64` (Subresource Integrity).
    Sri,
}

impl FromStr for Encoding {
    type Err = HashError;
    fn from_str(s: &str) -> Result<Self, HashError> {
        match s {
            "base16" | "hex" => Ok(Encoding::Base16),
            "nix32" | "base32" => Ok(Encoding::Nix32),
            "base64" => Ok(Encoding::Base64),
            "sri" => Ok(Encoding::Sri),
            _ => Err(HashError::UnknownEncoding(s.to_owned())),
        }
    }
}

/// Why a hash could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("unknown hash algorithm '{0}'")]
    UnknownAlgo(String),
    #[error("unknown hash encoding '{0}'")]
    UnknownEncoding(String),
    #[error("hash '{0}' does not include a type")]
    MissingAlgo(String),
    #[error("hash '{hash}' should have type '{expected}'")]
    AlgoMismatch { hash: String, expected: HashAlgo },
    #[error("hash '{hash}' has wrong length for hash type '{algo}'")]
    WrongLength { hash: String, algo: HashAlgo },
    #[error("invalid {encoding} character {ch:?} in hash '{hash}'")]
    BadChar {
        hash: String,
        encoding: &'static str,
        ch: char,
    },
    #[error("hash '{0}' has non-zero leftover bits")]
    LeftoverBits(String),
    #[error("invalid SRI hash '{0}'")]
    BadSri(String),
}

/// A digest together with its algorithm.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NixHash {
    algo: HashAlgo,
    bytes: [u8; 64],
}

impl fmt::Debug for NixHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NixHash({})", self.to_sri())
    }
}

impl fmt::Display for NixHash {
    /// `algo:nix32`, the form Nix prints most often.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_typed(Encoding::Nix32))
    }
}

impl NixHash {
    /// Build from a digest of the right length for `algo`.
    pub fn from_digest(algo: HashAlgo, digest: &[u8]) -> Option<NixHash> {
        if digest.len() != algo.size() {
            return None;
        }
        let mut bytes = [0u8; 64];
        bytes[..digest.len()].copy_from_slice(digest);
        Some(NixHash { algo, bytes })
    }

    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    /// The raw digest.
    pub fn digest(&self) -> &[u8] {
        &self.bytes[..self.algo.size()]
    }

    /// The digest alone in an encoding (SRI gives the `algo-` prefix as well).
    pub fn encode(&self, enc: Encoding) -> String {
        match enc {
            Encoding::Base16 => hex::encode(self.digest()),
            Encoding::Nix32 => nixbase32::encode(self.digest()),
            Encoding::Base64 => BASE64.encode(self.digest()),
            Encoding::Sri => self.to_sri(),
        }
    }

    /// `algo:digest` (or `algo-base64` for SRI).
    pub fn to_typed(&self, enc: Encoding) -> String {
        match enc {
            Encoding::Sri => self.to_sri(),
            _ => format!("{}:{}", self.algo, self.encode(enc)),
        }
    }

    /// `algo-base64`.
    pub fn to_sri(&self) -> String {
        format!("{}-{}", self.algo, BASE64.encode(self.digest()))
    }

    /// Parse any form Nix accepts: `algo:digest` (base16, nix32, base64 by
    /// length), SRI `algo-base64`, or a bare digest when `algo` is given.
    /// When both a prefix and `algo` are present they must agree.
    pub fn parse(s: &str, algo: Option<HashAlgo>) -> Result<NixHash, HashError> {
        if let Some((prefix, rest)) = s.split_once(':') {
            let a: HashAlgo = prefix.parse()?;
            check_algo(s, a, algo)?;
            return Self::parse_bare(rest, a).map_err(|e| rename(e, s));
        }
        if let Some((prefix, rest)) = s.split_once('-')
            && let Ok(a) = prefix.parse::<HashAlgo>()
        {
            check_algo(s, a, algo)?;
            return Self::parse_sri_digest(rest, a).map_err(|e| rename(e, s));
        }
        match algo {
            Some(a) => Self::parse_bare(s, a),
            None => Err(HashError::MissingAlgo(s.to_owned())),
        }
    }

    /// Parse a string that must carry its algorithm (`algo:…` or SRI).
    pub fn parse_prefixed(s: &str) -> Result<NixHash, HashError> {
        if !s.contains(':') && !s.contains('-') {
            return Err(HashError::MissingAlgo(s.to_owned()));
        }
        Self::parse(s, None)
    }

    /// Parse an SRI hash (`algo-base64`, padding optional).
    pub fn parse_sri(s: &str) -> Result<NixHash, HashError> {
        let (prefix, rest) = s
            .split_once('-')
            .ok_or_else(|| HashError::BadSri(s.to_owned()))?;
        let a: HashAlgo = prefix.parse()?;
        Self::parse_sri_digest(rest, a).map_err(|e| rename(e, s))
    }

    fn parse_sri_digest(rest: &str, algo: HashAlgo) -> Result<NixHash, HashError> {
        let trimmed = rest.trim_end_matches('=');
        if let Some(c) = trimmed
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '+' || *c == '/'))
        {
            return Err(HashError::BadChar {
                hash: rest.to_owned(),
                encoding: "base64",
                ch: c,
            });
        }
        let padded = format!("{trimmed}{}", "=".repeat((4 - trimmed.len() % 4) % 4));
        if padded.len() != algo.encoded_len(Encoding::Base64) || rest.len() > padded.len() {
            return Err(HashError::WrongLength {
                hash: rest.to_owned(),
                algo,
            });
        }
        let d = BASE64
            .decode(padded.as_bytes())
            .map_err(|_| HashError::BadSri(rest.to_owned()))?;
        NixHash::from_digest(algo, &d).ok_or_else(|| HashError::WrongLength {
            hash: rest.to_owned(),
            algo,
        })
    }

    /// Parse a bare digest for a known algorithm; its length decides the encoding.
    pub fn parse_bare(s: &str, algo: HashAlgo) -> Result<NixHash, HashError> {
        let b = s.as_bytes();
        let mut bytes = [0u8; 64];
        let out = &mut bytes[..algo.size()];
        if b.len() == algo.encoded_len(Encoding::Base16) {
            for (i, pair) in b.chunks(2).enumerate() {
                out[i] = (hexval(s, pair[0])? << 4) | hexval(s, pair[1])?;
            }
        } else if b.len() == algo.encoded_len(Encoding::Nix32) {
            nixbase32::decode_into(b, out).map_err(|e| match e {
                nixbase32::DecodeError::InvalidChar(ch) => HashError::BadChar {
                    hash: s.to_owned(),
                    encoding: "nix32",
                    ch,
                },
                _ => HashError::LeftoverBits(s.to_owned()),
            })?;
        } else if b.len() == algo.encoded_len(Encoding::Base64) {
            if let Some(c) = s
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
            {
                return Err(HashError::BadChar {
                    hash: s.to_owned(),
                    encoding: "base64",
                    ch: c,
                });
            }
            let d = BASE64.decode(b).map_err(|_| HashError::BadChar {
                hash: s.to_owned(),
                encoding: "base64",
                ch: '=',
            })?;
            if d.len() != algo.size() {
                return Err(HashError::WrongLength {
                    hash: s.to_owned(),
                    algo,
                });
            }
            out.copy_from_slice(&d);
        } else {
            return Err(HashError::WrongLength {
                hash: s.to_owned(),
                algo,
            });
        }
        Ok(NixHash { algo, bytes })
    }
}

fn check_algo(s: &str, got: HashAlgo, want: Option<HashAlgo>) -> Result<(), HashError> {
    match want {
        Some(w) if w != got => Err(HashError::AlgoMismatch {
            hash: s.to_owned(),
            expected: w,
        }),
        _ => Ok(()),
    }
}

/// Report errors about the digest part with the whole string the user gave.
fn rename(e: HashError, whole: &str) -> HashError {
    match e {
        HashError::WrongLength { algo, .. } => HashError::WrongLength {
            hash: whole.to_owned(),
            algo,
        },
        HashError::BadChar { encoding, ch, .. } => HashError::BadChar {
            hash: whole.to_owned(),
            encoding,
            ch,
        },
        HashError::LeftoverBits(_) => HashError::LeftoverBits(whole.to_owned()),
        HashError::BadSri(_) => HashError::BadSri(whole.to_owned()),
        e => e,
    }
}

fn hexval(s: &str, c: u8) -> Result<u8, HashError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(HashError::BadChar {
            hash: s.to_owned(),
            encoding: "base16",
            ch: c as char,
        }),
    }
}

/// A streaming hasher for any [`HashAlgo`]; also an [`std::io::Write`] sink.
#[derive(Clone)]
pub enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algo: HashAlgo) -> Hasher {
        match algo {
            HashAlgo::Md5 => Hasher::Md5(md5::Md5::new()),
            HashAlgo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlgo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn algo(&self) -> HashAlgo {
        match self {
            Hasher::Md5(_) => HashAlgo::Md5,
            Hasher::Sha1(_) => HashAlgo::Sha1,
            Hasher::Sha256(_) => HashAlgo::Sha256,
            Hasher::Sha512(_) => HashAlgo::Sha512,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> NixHash {
        let algo = self.algo();
        let d: Vec<u8> = match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        };
        NixHash::from_digest(algo, &d).expect("digest length matches algorithm")
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: std::io::Write> HashingWriter<W> {
    pub fn new(inner: W, algo: HashAlgo) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(algo),
            count: 0,
        }
    }
    /// The inner writer, the hash and the byte count.
    pub fn finish(self) -> (W, NixHash, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// sha256 of `data` as raw bytes.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// Fold a digest to `n` bytes by XOR, as Nix's `compressHash` does.
pub fn compress_hash<const N: usize>(digest: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, b) in digest.iter().enumerate() {
        out[i % N] ^= b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let h = HashAlgo::Sha256.digest(b"");
        let forms = [
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_owned(),
            "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73".to_owned(),
            "sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".to_owned(),
            "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".to_owned(),
            "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU".to_owned(),
        ];
        for f in &forms {
            assert_eq!(NixHash::parse(f, None).unwrap(), h, "{f}");
            assert_eq!(NixHash::parse(f, Some(HashAlgo::Sha256)).unwrap(), h, "{f}");
        }
        assert_eq!(h.to_typed(Encoding::Base16), forms[0]);
        assert_eq!(h.to_typed(Encoding::Nix32), forms[1]);
        assert_eq!(h.to_typed(Encoding::Base64), forms[2]);
        assert_eq!(h.to_sri(), forms[3]);
        assert!(matches!(
            NixHash::parse(&forms[0], Some(HashAlgo::Sha1)),
            Err(HashError::AlgoMismatch { .. })
        ));
        assert!(matches!(
            NixHash::parse("e3b0", None),
            Err(HashError::MissingAlgo(_))
        ));
        assert!(matches!(
            NixHash::parse("sha256:e3b0", None),
            Err(HashError::WrongLength { .. })
        ));
        assert!(matches!(
            NixHash::parse(
                "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c7e",
                None
            ),
            Err(HashError::BadChar { .. })
        ));
    }
}
