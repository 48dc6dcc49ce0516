//! [`PathInfo`]: what the store knows about one store path, and its binary
//! encoding in the path info database.

use std::collections::BTreeSet;

use ferrix_castore::{B3Digest, Node};
use ferrix_formats::hash::Encoding;
use ferrix_formats::{CAHash, HashAlgo, NixHash, StoreDir, StorePath};

use crate::error::{Error, Result};

/// One registered store path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    pub store_path: StorePath,
    /// The castore node holding the contents.
    pub node: Node,
    /// Size of the NAR serialisation in bytes.
    pub nar_size: u64,
    /// sha256 of the NAR serialisation.
    pub nar_sha256: [u8; 32],
    /// Store paths this one refers to (may include itself).
    pub references: BTreeSet<StorePath>,
    pub deriver: Option<StorePath>,
    /// `keyname:base64sig`, as in narinfo files.
    pub signatures: Vec<String>,
    /// Content address, if the path is content-addressed.
    pub ca: Option<CAHash>,
}

impl PathInfo {
    /// The NAR hash as a [`NixHash`].
    pub fn nar_hash(&self) -> NixHash {
        NixHash::from_digest(HashAlgo::Sha256, &self.nar_sha256).expect("32-byte sha256")
    }

    /// `sha256:<nix32>`, the form narinfo files use.
    pub fn nar_hash_string(&self) -> String {
        self.nar_hash().to_typed(Encoding::Nix32)
    }

    /// Checks what can be checked without castore: a content address must
    /// give exactly this store path.
    pub fn validate(&self, store_dir: &StoreDir) -> Result<()> {
        let bad = |reason: String| Error::InvalidPathInfo {
            path: store_dir.display(&self.store_path),
            reason,
        };
        if let Node::Symlink { target } = &self.node
            && ferrix_castore::directory::validate_symlink_target(target).is_err()
        {
            return Err(bad("root symlink has an invalid target".into()));
        }
        if let Some(ca) = &self.ca {
            let self_ref = self.references.contains(&self.store_path);
            let refs = self.references.iter().filter(|r| **r != self.store_path);
            let computed = store_dir
                .make_fixed_output_path(self.store_path.name(), ca.method, &ca.hash, refs, self_ref)
                .map_err(|e| bad(format!("content address {ca}: {e}")))?;
            if computed != self.store_path {
                return Err(bad(format!(
                    "content address {ca} gives {}, not this path",
                    store_dir.display(&computed)
                )));
            }
        }
        Ok(())
    }

    /// The binary encoding stored in the path info database:
    ///
    /// ```text
    /// "FXPI" u8 version=1
    /// str store_path (base name)
    /// node: u8 kind (0 dir: digest[32] u64 size | 1 file: digest[32] u64 size u8 exec | 2 symlink: str target)
    /// u64 nar_size  [32] nar_sha256
    /// u32 n  str reference × n
    /// u8 has_deriver [str deriver]
    /// u32 n  str signature × n
    /// u8 has_ca [str ca]
    /// ```
    /// with `str := u32 len, bytes`, integers little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        put_str(&mut out, self.store_path.to_string().as_bytes());
        match &self.node {
            Node::Directory { digest, size } => {
                out.push(0);
                out.extend_from_slice(digest.as_bytes());
                out.extend_from_slice(&size.to_le_bytes());
            }
            Node::File {
                digest,
                size,
                executable,
            } => {
                out.push(1);
                out.extend_from_slice(digest.as_bytes());
                out.extend_from_slice(&size.to_le_bytes());
                out.push(u8::from(*executable));
            }
            Node::Symlink { target } => {
                out.push(2);
                put_str(&mut out, target);
            }
        }
        out.extend_from_slice(&self.nar_size.to_le_bytes());
        out.extend_from_slice(&self.nar_sha256);
        put_u32(&mut out, self.references.len());
        for r in &self.references {
            put_str(&mut out, r.to_string().as_bytes());
        }
        match &self.deriver {
            Some(d) => {
                out.push(1);
                put_str(&mut out, d.to_string().as_bytes());
            }
            None => out.push(0),
        }
        put_u32(&mut out, self.signatures.len());
        for s in &self.signatures {
            put_str(&mut out, s.as_bytes());
        }
        match &self.ca {
            Some(ca) => {
                out.push(1);
                put_str(&mut out, ca.to_string().as_bytes());
            }
            None => out.push(0),
        }
        out
    }

    /// Only the store path of an encoded path info (what existence checks
    /// need), without decoding the rest.
    pub fn decode_store_path(bytes: &[u8]) -> Result<StorePath> {
        Reader::open(bytes)?.store_path()
    }

    /// Decodes [`PathInfo::encode`]'s output; anything else is an error.
    pub fn decode(bytes: &[u8]) -> Result<PathInfo> {
        let mut r = Reader::open(bytes)?;
        let store_path = r.store_path()?;
        let node = match r.u8()? {
            0 => Node::Directory {
                digest: r.digest()?,
                size: r.u64()?,
            },
            1 => {
                let digest = r.digest()?;
                let size = r.u64()?;
                let executable = match r.u8()? {
                    0 => false,
                    1 => true,
                    b => return Err(r.err(&format!("executable flag {b}"))),
                };
                Node::File {
                    digest,
                    size,
                    executable,
                }
            }
            2 => Node::Symlink {
                target: r.str()?.to_vec(),
            },
            k => return Err(r.err(&format!("unknown node kind {k}"))),
        };
        let nar_size = r.u64()?;
        let nar_sha256: [u8; 32] = r.take(32)?.try_into().expect("took 32");
        let mut references = BTreeSet::new();
        for _ in 0..r.u32()? {
            references.insert(r.store_path()?);
        }
        let deriver = if r.flag()? {
            Some(r.store_path()?)
        } else {
            None
        };
        let n = r.u32()?;
        let mut signatures = Vec::with_capacity((n as usize).min(64));
        for _ in 0..n {
            signatures.push(r.utf8()?.to_owned());
        }
        let ca = if r.flag()? {
            let s = r.utf8()?;
            Some(
                s.parse::<CAHash>()
                    .map_err(|e| r.err(&format!("content address: {e}")))?,
            )
        } else {
            None
        };
        if r.pos != bytes.len() {
            return Err(r.err("trailing bytes"));
        }
        Ok(PathInfo {
            store_path,
            node,
            nar_size,
            nar_sha256,
            references,
            deriver,
            signatures,
            ca,
        })
    }
}

const MAGIC: &[u8; 4] = b"FXPI";
const VERSION: u8 = 1;

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).expect("count fits in u32").to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, s.len());
    out.extend_from_slice(s);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader past the header (magic and a known version).
    fn open(bytes: &'a [u8]) -> Result<Reader<'a>> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != MAGIC {
            return Err(r.err("bad magic"));
        }
        let v = r.u8()?;
        if v != VERSION {
            return Err(r.err(&format!("unknown version {v}")));
        }
        Ok(r)
    }
    #[cold]
    fn err(&self, what: &str) -> Error {
        Error::Corrupt(format!("path info encoding at byte {}: {what}", self.pos))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let rest = &self.bytes[self.pos..];
        if rest.len() < n {
            return Err(self.err("truncated"));
        }
        self.pos += n;
        Ok(&rest[..n])
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn flag(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.err(&format!("flag {b} is not 0 or 1"))),
        }
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("took 4"),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("took 8"),
        ))
    }
    fn digest(&mut self) -> Result<B3Digest> {
        Ok(B3Digest::from_bytes(
            self.take(32)?.try_into().expect("took 32"),
        ))
    }
    fn str(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn utf8(&mut self) -> Result<&'a str> {
        let b = self.str()?;
        std::str::from_utf8(b).map_err(|_| self.err("string is not UTF-8"))
    }
    fn store_path(&mut self) -> Result<StorePath> {
        let s = self.utf8()?;
        StorePath::from_base_name(s).map_err(|e| self.err(&e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrix_formats::CaMethod;
    use proptest::prelude::*;

    fn sample() -> PathInfo {
        let sd = StoreDir::default();
        let hash = HashAlgo::Sha256.digest(b"nar");
        let path = sd
            .make_fixed_output_path("hello", CaMethod::Recursive, &hash, [], false)
            .unwrap();
        PathInfo {
            store_path: path.clone(),
            node: Node::File {
                digest: B3Digest::of(b"x"),
                size: 1,
                executable: true,
            },
            nar_size: 120,
            nar_sha256: hash.digest().try_into().unwrap(),
            references: BTreeSet::new(),
            deriver: Some(
                StorePath::from_base_name("xpcvxsx5sw4rbq666blz6sxqlmsqphmr-foo.drv").unwrap(),
            ),
            signatures: vec!["cache:abc=".into()],
            ca: Some(CAHash::new(CaMethod::Recursive, hash)),
        }
    }

    #[test]
    fn round_trip_and_validate() {
        let info = sample();
        assert_eq!(PathInfo::decode(&info.encode()).unwrap(), info);
        info.validate(&StoreDir::default()).unwrap();
        let mut wrong = info.clone();
        wrong.ca = Some(CAHash::new(CaMethod::Flat, wrong.ca.unwrap().hash));
        let e = wrong
            .validate(&StoreDir::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("gives /nix/store/"), "{e}");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(PathInfo::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(PathInfo::decode(&long).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = PathInfo::decode(&bytes);
        }

        #[test]
        fn round_trip(target in proptest::collection::vec(1u8..=255, 1..50), size in any::<u64>(),
                      sigs in proptest::collection::vec("[a-z]+:[A-Za-z0-9+/=]{4,20}", 0..3)) {
            let mut info = sample();
            info.node = Node::Symlink { target };
            info.nar_size = size;
            info.signatures = sigs;
            info.ca = None;
            info.deriver = None;
            info.references.insert(info.store_path.clone());
            prop_assert_eq!(PathInfo::decode_store_path(&info.encode()).unwrap(), info.store_path.clone());
            prop_assert_eq!(PathInfo::decode(&info.encode()).unwrap(), info);
        }
    }
}
