//! narinfo files (binary cache metadata), their fingerprint, and ed25519
//! signatures in Nix's `name:base64` key format.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use data_encoding::BASE64;
use ed25519_dalek::{Signer, Verifier};

use crate::ca::{CAHash, CaError};
use crate::hash::{Encoding, HashAlgo, HashError, NixHash};
use crate::store_path::{StoreDir, StorePath, StorePathError};

/// Why a narinfo or key could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NarInfoError {
    #[error("narinfo line {line}: expected 'Key: value'")]
    BadLine { line: usize },
    #[error("narinfo is missing the {0} field")]
    Missing(&'static str),
    #[error("narinfo field {field} appears twice")]
    DuplicateField { field: &'static str },
    #[error("narinfo field {field}: {msg}")]
    BadField { field: &'static str, msg: String },
    #[error("narinfo field {field}: {source}")]
    Hash {
        field: &'static str,
        source: HashError,
    },
    #[error("narinfo field {field}: {source}")]
    StorePath {
        field: &'static str,
        source: StorePathError,
    },
    #[error("narinfo field CA: {0}")]
    Ca(#[from] CaError),
    #[error("bad key '{0}': expected 'name:base64'")]
    BadKey(String),
    #[error("cannot compute the fingerprint of a path whose NAR size is unknown")]
    NoNarSize,
}

/// Everything a `.narinfo` file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NarInfo {
    pub store_path: StorePath,
    pub url: String,
    pub compression: Option<String>,
    pub file_hash: Option<NixHash>,
    pub file_size: Option<u64>,
    pub nar_hash: NixHash,
    pub nar_size: u64,
    pub references: BTreeSet<StorePath>,
    pub deriver: Option<StorePath>,
    pub system: Option<String>,
    pub sigs: BTreeSet<String>,
    pub ca: Option<CAHash>,
    /// Fields this parser does not know, in file order, kept so that
    /// printing a parsed narinfo loses nothing (they are printed last).
    pub extra: Vec<(String, String)>,
}

impl NarInfo {
    /// Parse narinfo text. Unknown fields are kept in [`NarInfo::extra`]
    /// (Nix ignores them). A missing `Compression` stays `None`; what it
    /// means is [`NarInfo::compression_or_default`].
    pub fn parse(text: &str, store_dir: &StoreDir) -> Result<NarInfo, NarInfoError> {
        let mut store_path = None;
        let mut url = None;
        let mut compression = None;
        let mut file_hash = None;
        let mut file_size = None;
        let mut nar_hash = None;
        let mut nar_size = None;
        let mut references = None;
        let mut deriver = None;
        let mut system = None;
        let mut sigs = BTreeSet::new();
        let mut ca = None;
        let mut extra = Vec::new();
        fn set<T>(slot: &mut Option<T>, v: T, field: &'static str) -> Result<(), NarInfoError> {
            if slot.replace(v).is_some() {
                return Err(NarInfoError::DuplicateField { field });
            }
            Ok(())
        }
        fn num(v: &str, field: &'static str) -> Result<u64, NarInfoError> {
            if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
                return Err(NarInfoError::BadField {
                    field,
                    msg: format!("'{v}' is not a number"),
                });
            }
            v.parse().map_err(|e| NarInfoError::BadField {
                field,
                msg: format!("'{v}': {e}"),
            })
        }
        let base = |v: &str, field: &'static str| {
            StorePath::from_base_name(v).map_err(|source| NarInfoError::StorePath { field, source })
        };
        for (i, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            let (k, v) = line
                .split_once(": ")
                .ok_or(NarInfoError::BadLine { line: i + 1 })?;
            match k {
                "StorePath" => {
                    let p = store_dir
                        .parse(v)
                        .map_err(|source| NarInfoError::StorePath {
                            field: "StorePath",
                            source,
                        })?;
                    set(&mut store_path, p.to_owned(), "StorePath")?
                }
                "URL" => set(&mut url, v.to_owned(), "URL")?,
                "Compression" => set(&mut compression, v.to_owned(), "Compression")?,
                "FileHash" => set(
                    &mut file_hash,
                    NixHash::parse_prefixed(v).map_err(|source| NarInfoError::Hash {
                        field: "FileHash",
                        source,
                    })?,
                    "FileHash",
                )?,
                "FileSize" => set(&mut file_size, num(v, "FileSize")?, "FileSize")?,
                "NarHash" => set(
                    &mut nar_hash,
                    NixHash::parse_prefixed(v).map_err(|source| NarInfoError::Hash {
                        field: "NarHash",
                        source,
                    })?,
                    "NarHash",
                )?,
                "NarSize" => set(&mut nar_size, num(v, "NarSize")?, "NarSize")?,
                "References" => {
                    let refs = v
                        .split(' ')
                        .filter(|s| !s.is_empty())
                        .map(|r| base(r, "References"))
                        .collect::<Result<BTreeSet<_>, _>>()?;
                    set(&mut references, refs, "References")?
                }
                "Deriver" => {
                    if v != "unknown-deriver" {
                        set(&mut deriver, base(v, "Deriver")?, "Deriver")?
                    }
                }
                "System" => set(&mut system, v.to_owned(), "System")?,
                "Sig" => {
                    sigs.insert(v.to_owned());
                }
                "CA" => set(&mut ca, v.parse::<CAHash>()?, "CA")?,
                _ => extra.push((k.to_owned(), v.to_owned())),
            }
        }
        Ok(NarInfo {
            store_path: store_path.ok_or(NarInfoError::Missing("StorePath"))?,
            url: url.ok_or(NarInfoError::Missing("URL"))?,
            compression,
            file_hash,
            file_size,
            nar_hash: nar_hash.ok_or(NarInfoError::Missing("NarHash"))?,
            nar_size: nar_size.ok_or(NarInfoError::Missing("NarSize"))?,
            references: references.unwrap_or_default(),
            deriver,
            system,
            sigs,
            ca,
            extra,
        })
    }

    /// The compression of the file at [`NarInfo::url`]: the `Compression`
    /// field, or `bzip2` when it is absent, as in Nix (old caches wrote
    /// bzip2 without saying so).
    pub fn compression_or_default(&self) -> &str {
        self.compression.as_deref().unwrap_or("bzip2")
    }

    /// Render in the field order Nix writes.
    pub fn to_text(&self, store_dir: &StoreDir) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "StorePath: {}", store_dir.display(&self.store_path));
        let _ = writeln!(s, "URL: {}", self.url);
        if let Some(c) = &self.compression {
            let _ = writeln!(s, "Compression: {c}");
        }
        if let Some(h) = &self.file_hash {
            let _ = writeln!(s, "FileHash: {}", h.to_typed(Encoding::Nix32));
        }
        if let Some(n) = self.file_size {
            let _ = writeln!(s, "FileSize: {n}");
        }
        let _ = writeln!(s, "NarHash: {}", self.nar_hash.to_typed(Encoding::Nix32));
        let _ = writeln!(s, "NarSize: {}", self.nar_size);
        let refs: Vec<String> = self.references.iter().map(|r| r.to_string()).collect();
        let _ = writeln!(s, "References: {}", refs.join(" "));
        if let Some(d) = &self.deriver {
            let _ = writeln!(s, "Deriver: {d}");
        }
        if let Some(sys) = &self.system {
            let _ = writeln!(s, "System: {sys}");
        }
        for sig in &self.sigs {
            let _ = writeln!(s, "Sig: {sig}");
        }
        if let Some(ca) = &self.ca {
            let _ = writeln!(s, "CA: {ca}");
        }
        for (k, v) in &self.extra {
            let _ = writeln!(s, "{k}: {v}");
        }
        s
    }

    /// `1;<path>;<narHash nix32>;<narSize>;<ref>,<ref>…`, what signatures sign.
    pub fn fingerprint(&self, store_dir: &StoreDir) -> Result<String, NarInfoError> {
        fingerprint(
            store_dir,
            &self.store_path,
            &self.nar_hash,
            self.nar_size,
            &self.references,
        )
    }

    /// Add a signature by `key`.
    pub fn sign(&mut self, store_dir: &StoreDir, key: &SecretKey) -> Result<(), NarInfoError> {
        let fp = self.fingerprint(store_dir)?;
        self.sigs.insert(key.sign(fp.as_bytes()));
        Ok(())
    }

    /// How many signatures verify against one of `keys`.
    pub fn count_valid_sigs(&self, store_dir: &StoreDir, keys: &[PublicKey]) -> usize {
        let Ok(fp) = self.fingerprint(store_dir) else {
            return 0;
        };
        self.sigs
            .iter()
            .filter(|s| keys.iter().any(|k| k.verify(fp.as_bytes(), s)))
            .count()
    }
}

/// The fingerprint of a path's metadata.
pub fn fingerprint(
    store_dir: &StoreDir,
    path: &StorePath,
    nar_hash: &NixHash,
    nar_size: u64,
    references: &BTreeSet<StorePath>,
) -> Result<String, NarInfoError> {
    if nar_size == 0 {
        return Err(NarInfoError::NoNarSize);
    }
    if nar_hash.algo() != HashAlgo::Sha256 {
        return Err(NarInfoError::BadField {
            field: "NarHash",
            msg: "must be sha256".into(),
        });
    }
    let refs: Vec<String> = references.iter().map(|r| store_dir.display(r)).collect();
    Ok(format!(
        "1;{};{};{};{}",
        store_dir.display(path),
        nar_hash.to_typed(Encoding::Nix32),
        nar_size,
        refs.join(",")
    ))
}

fn split_key(s: &str) -> Result<(&str, Vec<u8>), NarInfoError> {
    let s = s.trim();
    let (name, b64) = s
        .split_once(':')
        .ok_or_else(|| NarInfoError::BadKey(s.to_owned()))?;
    if name.is_empty() {
        return Err(NarInfoError::BadKey(s.to_owned()));
    }
    let bytes = BASE64
        .decode(b64.as_bytes())
        .map_err(|_| NarInfoError::BadKey(s.to_owned()))?;
    Ok((name, bytes))
}

/// A signing key as `nix-store --generate-binary-cache-key` writes it
/// (`name:base64(seed ‖ public key)`).
#[derive(Clone)]
pub struct SecretKey {
    pub name: String,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.name)
    }
}

impl SecretKey {
    /// Parse `name:base64` (64 bytes; a 32-byte seed alone is accepted too).
    pub fn parse(s: &str) -> Result<SecretKey, NarInfoError> {
        let (name, bytes) = split_key(s)?;
        let key = match bytes.len() {
            64 => ed25519_dalek::SigningKey::from_keypair_bytes(
                bytes.as_slice().try_into().expect("64"),
            )
            .map_err(|_| {
                NarInfoError::BadKey(format!("{name}: public half does not match the seed"))
            })?,
            32 => ed25519_dalek::SigningKey::from_bytes(bytes.as_slice().try_into().expect("32")),
            _ => {
                return Err(NarInfoError::BadKey(format!(
                    "{name}: secret key must be 64 bytes"
                )));
            }
        };
        Ok(SecretKey {
            name: name.to_owned(),
            key,
        })
    }

    /// From a 32-byte seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> SecretKey {
        SecretKey {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// `name:base64(64 bytes)`.
    pub fn to_text(&self) -> String {
        format!(
            "{}:{}",
            self.name,
            BASE64.encode(&self.key.to_keypair_bytes())
        )
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// `name:base64(signature)` over `data`.
    pub fn sign(&self, data: &[u8]) -> String {
        format!(
            "{}:{}",
            self.name,
            BASE64.encode(&self.key.sign(data).to_bytes())
        )
    }
}

/// A public key (`name:base64(32 bytes)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub name: String,
    key: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    pub fn parse(s: &str) -> Result<PublicKey, NarInfoError> {
        let (name, bytes) = split_key(s)?;
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| NarInfoError::BadKey(format!("{name}: public key must be 32 bytes")))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&arr)
            .map_err(|_| NarInfoError::BadKey(format!("{name}: not a valid ed25519 point")))?;
        Ok(PublicKey {
            name: name.to_owned(),
            key,
        })
    }

    pub fn to_text(&self) -> String {
        format!("{}:{}", self.name, BASE64.encode(self.key.as_bytes()))
    }

    /// Whether `sig` (`name:base64`) is this key's signature over `data`.
    pub fn verify(&self, data: &[u8], sig: &str) -> bool {
        let Some((name, b64)) = sig.split_once(':') else {
            return false;
        };
        if name != self.name {
            return false;
        }
        let Ok(bytes) = BASE64.decode(b64.as_bytes()) else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&bytes) else {
            return false;
        };
        self.key.verify(data, &sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "StorePath: /nix/store/s7zxfmvqlbyzb27sfbkjgk50ml36shhg-ferrix-bc-a\n\
URL: nar/06x84prlmcm4iha4mvqm0brmmi9ki2fl1j5zlmw6c4i5axm7fbir.nar.bz2\n\
NarHash: sha256:1h5965q2v7rs5k46lrbgsv76f7cns6mlp04yx9xs18by7ziy0230\n\
NarSize: 128\n\
References: \n\
Deriver: unknown-deriver\n\
X-Future: kept as is\n";

    #[test]
    fn missing_compression_means_bzip2_and_unknown_fields_survive() {
        let sd = StoreDir::default();
        let ni = NarInfo::parse(TEXT, &sd).unwrap();
        assert_eq!(ni.compression, None);
        assert_eq!(ni.compression_or_default(), "bzip2");
        assert_eq!(ni.deriver, None);
        assert_eq!(
            ni.extra,
            vec![("X-Future".to_owned(), "kept as is".to_owned())]
        );
        let text = ni.to_text(&sd);
        assert!(text.ends_with("X-Future: kept as is\n"), "{text}");
        assert_eq!(NarInfo::parse(&text, &sd).unwrap(), ni);
    }
}
