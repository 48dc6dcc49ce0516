//! Store paths: parsing, validation and computing text, fixed-output and output paths.

use std::fmt;

use crate::ca::{CAHash, CaMethod};
use crate::hash::{Encoding, HashAlgo, NixHash, compress_hash, sha256};
use crate::nixbase32;

/// Characters in the nix32 hash part of a store path.
pub const HASH_PART_LEN: usize = 32;
/// Bytes in the digest a hash part encodes.
pub const DIGEST_LEN: usize = 20;
/// Longest allowed name.
pub const MAX_NAME_LEN: usize = 211;

/// Why a store path is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorePathError {
    #[error("path '{0}' is not in the Nix store")]
    NotInStore(String),
    #[error("store path '{0}' is too short")]
    TooShort(String),
    #[error("store path '{0}' has an invalid hash part")]
    BadHash(String),
    #[error("store path '{0}' has an empty name")]
    EmptyName(String),
    #[error("store path '{0}' has a name longer than {MAX_NAME_LEN} characters")]
    NameTooLong(String),
    #[error("store path '{path}' contains illegal character {ch:?}")]
    BadChar { path: String, ch: char },
    #[error("derivation name '{0}' must not end in '.drv' for output paths")]
    DrvName(String),
    #[error(
        "cannot compute fixed-output path: references are not allowed unless the method is recursive sha256"
    )]
    RefsNotAllowed,
}

/// Check a store path name (the part after `hash-`): 1 to 211 characters
/// from `[A-Za-z0-9+-._?=]`. Like C++ Nix 2.8 (the oracle), a leading `.` is
/// allowed (`builtins.toFile ".foo"` works there); newer Nix versions are
/// stricter about `.`/`..`.
pub fn validate_name(name: &[u8], whole: &str) -> Result<(), StorePathError> {
    if name.is_empty() {
        return Err(StorePathError::EmptyName(whole.to_owned()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(StorePathError::NameTooLong(whole.to_owned()));
    }
    if let Some(&c) = name
        .iter()
        .find(|&&c| !(c.is_ascii_alphanumeric() || b"+-._?=".contains(&c)))
    {
        return Err(StorePathError::BadChar {
            path: whole.to_owned(),
            ch: c as char,
        });
    }
    Ok(())
}

/// A borrowed store path: digest plus name, parsed without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePathRef<'a> {
    hash_part: [u8; HASH_PART_LEN],
    name: &'a str,
}

/// An owned store path (`<hash>-<name>`, without the store directory).
///
/// Ordering is that of the base names, which is how Nix sorts store paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    hash_part: [u8; HASH_PART_LEN],
    name: String,
}

impl<'a> StorePathRef<'a> {
    /// Parse a base name `<32 nix32 chars>-<name>`.
    pub fn from_base_name(s: &'a str) -> Result<Self, StorePathError> {
        let b = s.as_bytes();
        if b.len() < HASH_PART_LEN + 2 || b[HASH_PART_LEN] != b'-' {
            return Err(StorePathError::TooShort(s.to_owned()));
        }
        let mut hash_part = [0u8; HASH_PART_LEN];
        hash_part.copy_from_slice(&b[..HASH_PART_LEN]);
        let mut d = [0u8; DIGEST_LEN];
        if nixbase32::decode_into(&hash_part, &mut d).is_err() {
            return Err(StorePathError::BadHash(s.to_owned()));
        }
        let name = &s[HASH_PART_LEN + 1..];
        validate_name(name.as_bytes(), s)?;
        Ok(StorePathRef { hash_part, name })
    }

    /// Parse from raw bytes (for example a NAR or a `.drv` file).
    pub fn from_base_name_bytes(b: &'a [u8]) -> Result<Self, StorePathError> {
        let s = std::str::from_utf8(b).map_err(|_| StorePathError::BadChar {
            path: String::from_utf8_lossy(b).into_owned(),
            ch: char::REPLACEMENT_CHARACTER,
        })?;
        Self::from_base_name(s)
    }

    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The 32-character nix32 hash part.
    pub fn hash_part(&self) -> &str {
        std::str::from_utf8(&self.hash_part).expect("validated nix32")
    }

    /// The 20-byte digest.
    pub fn digest(&self) -> [u8; DIGEST_LEN] {
        let mut d = [0u8; DIGEST_LEN];
        nixbase32::decode_into(&self.hash_part, &mut d).expect("validated nix32");
        d
    }

    pub fn to_owned(&self) -> StorePath {
        StorePath {
            hash_part: self.hash_part,
            name: self.name.to_owned(),
        }
    }
}

impl StorePath {
    /// Build from a digest and a name, validating the name.
    pub fn from_digest(digest: &[u8; DIGEST_LEN], name: &str) -> Result<StorePath, StorePathError> {
        let mut hash_part = [0u8; HASH_PART_LEN];
        nixbase32::encode_into(digest, &mut hash_part);
        // the whole base name is only needed for an error message
        validate_name(name.as_bytes(), "").map_err(|e| {
            let whole = format!("{}-{name}", std::str::from_utf8(&hash_part).expect("ascii"));
            rewrite_whole(e, &whole)
        })?;
        Ok(StorePath {
            hash_part,
            name: name.to_owned(),
        })
    }

    /// Parse a base name `<hash>-<name>`.
    pub fn from_base_name(s: &str) -> Result<StorePath, StorePathError> {
        StorePathRef::from_base_name(s).map(|p| p.to_owned())
    }

    pub fn as_ref(&self) -> StorePathRef<'_> {
        StorePathRef {
            hash_part: self.hash_part,
            name: &self.name,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn hash_part(&self) -> &str {
        std::str::from_utf8(&self.hash_part).expect("validated nix32")
    }

    pub fn digest(&self) -> [u8; DIGEST_LEN] {
        self.as_ref().digest()
    }

    /// Whether this is a `.drv` path.
    pub fn is_derivation(&self) -> bool {
        self.name.ends_with(".drv")
    }
}

impl fmt::Display for StorePathRef<'_> {
    /// The base name `<hash>-<name>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hash_part())?;
        f.write_str("-")?;
        f.write_str(self.name)
    }
}

impl fmt::Display for StorePath {
    /// The base name `<hash>-<name>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hash_part())?;
        f.write_str("-")?;
        f.write_str(&self.name)
    }
}

/// `<dir>/<hash>-<name>` appended to `out` (no formatting machinery: this
/// runs several times for every derivation).
fn push_full(out: &mut String, dir: &str, hash_part: &[u8; HASH_PART_LEN], name: &str) {
    out.reserve(dir.len() + HASH_PART_LEN + 2 + name.len());
    out.push_str(dir);
    out.push('/');
    out.push_str(std::str::from_utf8(hash_part).expect("validated nix32"));
    out.push('-');
    out.push_str(name);
}

/// The store directory (`/nix/store` by default) and the path computations that depend on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreDir(String);

impl Default for StoreDir {
    fn default() -> Self {
        StoreDir("/nix/store".to_owned())
    }
}

impl StoreDir {
    /// A store directory; trailing slashes are dropped.
    pub fn new(dir: impl Into<String>) -> StoreDir {
        let mut d: String = dir.into();
        while d.len() > 1 && d.ends_with('/') {
            d.pop();
        }
        StoreDir(d)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parse an absolute store path `<dir>/<hash>-<name>` (nothing after it).
    pub fn parse<'a>(&self, path: &'a str) -> Result<StorePathRef<'a>, StorePathError> {
        let rest = path
            .strip_prefix(self.0.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| StorePathError::NotInStore(path.to_owned()))?;
        if rest.contains('/') {
            return Err(StorePathError::NotInStore(path.to_owned()));
        }
        StorePathRef::from_base_name(rest).map_err(|e| rewrite_whole(e, path))
    }

    /// Parse an absolute store path that may have a sub-path after it;
    /// returns the store path and the rest (empty or starting with `/`).
    pub fn parse_prefix<'a>(
        &self,
        path: &'a str,
    ) -> Result<(StorePathRef<'a>, &'a str), StorePathError> {
        let rest = path
            .strip_prefix(self.0.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| StorePathError::NotInStore(path.to_owned()))?;
        let end = rest.find('/').unwrap_or(rest.len());
        let p = StorePathRef::from_base_name(&rest[..end]).map_err(|e| rewrite_whole(e, path))?;
        Ok((p, &rest[end..]))
    }

    /// `<dir>/<hash>-<name>`.
    pub fn display(&self, p: &StorePath) -> String {
        let mut s = String::new();
        self.push_display(&mut s, p);
        s
    }

    /// `<dir>/<hash>-<name>` appended to `out`.
    pub fn push_display(&self, out: &mut String, p: &StorePath) {
        push_full(out, &self.0, &p.hash_part, &p.name);
    }

    /// `<dir>/<hash>-<name>` for a borrowed path.
    pub fn display_ref(&self, p: &StorePathRef<'_>) -> String {
        let mut s = String::new();
        push_full(&mut s, &self.0, &p.hash_part, p.name);
        s
    }

    /// Nix's `makeStorePath`: fingerprint `type:sha256:<hex>:<dir>:<name>`,
    /// sha256, XOR-folded to 20 bytes.
    pub fn make_store_path(
        &self,
        ty: &str,
        hash: &NixHash,
        name: &str,
    ) -> Result<StorePath, StorePathError> {
        // `{ty}:{algo}:{hex}:{dir}:{name}`, built in one allocation
        let digest = hash.digest();
        let algo = hash.algo().name();
        let mut fp = String::with_capacity(ty.len() + algo.len() + 2 * digest.len() + self.0.len() + name.len() + 4);
        fp.push_str(ty);
        fp.push(':');
        fp.push_str(algo);
        fp.push(':');
        let mut hex = [0u8; 128];
        let hex = &mut hex[..2 * digest.len()];
        hex::encode_to_slice(digest, hex).expect("two hex digits per byte");
        fp.push_str(std::str::from_utf8(hex).expect("hex is ascii"));
        fp.push(':');
        fp.push_str(&self.0);
        fp.push(':');
        fp.push_str(name);
        let digest = compress_hash::<DIGEST_LEN>(&sha256(fp.as_bytes()));
        StorePath::from_digest(&digest, name)
    }

    fn make_type<'a>(
        &self,
        ty: &str,
        refs: impl IntoIterator<Item = &'a StorePath>,
        self_ref: bool,
    ) -> String {
        let mut s = ty.to_owned();
        for r in refs {
            s.push(':');
            self.push_display(&mut s, r);
        }
        if self_ref {
            s.push_str(":self");
        }
        s
    }

    /// The path of a text file (`builtins.toFile`, `.drv` files) with these
    /// contents' sha256 and references (sorted, as a `BTreeSet` gives them).
    pub fn make_text_path<'a>(
        &self,
        name: &str,
        content_sha256: &NixHash,
        refs: impl IntoIterator<Item = &'a StorePath>,
    ) -> Result<StorePath, StorePathError> {
        debug_assert_eq!(content_sha256.algo(), HashAlgo::Sha256);
        self.make_store_path(&self.make_type("text", refs, false), content_sha256, name)
    }

    /// The path of a text file with these contents.
    pub fn compute_text_path<'a>(
        &self,
        name: &str,
        contents: &[u8],
        refs: impl IntoIterator<Item = &'a StorePath>,
    ) -> Result<StorePath, StorePathError> {
        self.make_text_path(name, &HashAlgo::Sha256.digest(contents), refs)
    }

    /// A fixed-output path (`nix-store --add-fixed`, fixed-output derivations,
    /// `builtins.path`). Recursive sha256 is the `source` case and may have
    /// references; every other case must not.
    pub fn make_fixed_output_path<'a>(
        &self,
        name: &str,
        method: CaMethod,
        hash: &NixHash,
        refs: impl IntoIterator<Item = &'a StorePath>,
        self_ref: bool,
    ) -> Result<StorePath, StorePathError> {
        match method {
            CaMethod::Text => self.make_text_path(name, hash, refs),
            CaMethod::Recursive if hash.algo() == HashAlgo::Sha256 => {
                self.make_store_path(&self.make_type("source", refs, self_ref), hash, name)
            }
            _ => {
                if refs.into_iter().next().is_some() || self_ref {
                    return Err(StorePathError::RefsNotAllowed);
                }
                let inner = format!(
                    "fixed:out:{}{}:",
                    if method == CaMethod::Recursive {
                        "r:"
                    } else {
                        ""
                    },
                    hash.to_typed(Encoding::Base16)
                );
                self.make_store_path(
                    "output:out",
                    &HashAlgo::Sha256.digest(inner.as_bytes()),
                    name,
                )
            }
        }
    }

    /// The path for a content address (no references).
    pub fn make_ca_path(&self, name: &str, ca: &CAHash) -> Result<StorePath, StorePathError> {
        self.make_fixed_output_path(name, ca.method, &ca.hash, [], false)
    }

    /// An input-addressed derivation output path: `output:<id>` with the
    /// derivation's modulo hash; the name is `<drv>` or `<drv>-<output>`.
    pub fn make_output_path(
        &self,
        output: &str,
        drv_hash: &[u8; 32],
        drv_name: &str,
    ) -> Result<StorePath, StorePathError> {
        let name = output_path_name(drv_name, output);
        let h = NixHash::from_digest(HashAlgo::Sha256, drv_hash).expect("32 bytes");
        let mut ty = String::with_capacity(7 + output.len());
        ty.push_str("output:");
        ty.push_str(output);
        self.make_store_path(&ty, &h, &name)
    }
}

fn rewrite_whole(e: StorePathError, whole: &str) -> StorePathError {
    use StorePathError::*;
    let w = whole.to_owned();
    match e {
        TooShort(_) => TooShort(w),
        BadHash(_) => BadHash(w),
        EmptyName(_) => EmptyName(w),
        NameTooLong(_) => NameTooLong(w),
        BadChar { ch, .. } => BadChar { path: w, ch },
        e => e,
    }
}

/// `<drv>` for the `out` output, `<drv>-<output>` otherwise.
pub fn output_path_name(drv_name: &str, output: &str) -> String {
    if output == "out" {
        drv_name.to_owned()
    } else {
        format!("{drv_name}-{output}")
    }
}

/// `/` followed by the nix32 of sha256(`nix-output:<output>`): what
/// `builtins.placeholder` returns.
pub fn hash_placeholder(output: &str) -> String {
    format!(
        "/{}",
        nixbase32::encode(&sha256(format!("nix-output:{output}").as_bytes()))
    )
}

/// Placeholder for an output of a content-addressed derivation that is not
/// built yet (`nix-upstream-output:<drvhash>:<output name>`).
pub fn downstream_placeholder(drv_path: &StorePath, output: &str) -> String {
    let drv_name = drv_path
        .name()
        .strip_suffix(".drv")
        .unwrap_or(drv_path.name());
    let clear = format!(
        "nix-upstream-output:{}:{}",
        drv_path.hash_part(),
        output_path_name(drv_name, output)
    );
    format!("/{}", nixbase32::encode(&sha256(clear.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_out() {
        // builtins.placeholder "out"
        assert_eq!(
            hash_placeholder("out"),
            "/1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9"
        );
    }

    #[test]
    fn parse_and_errors() {
        let sd = StoreDir::default();
        let p = sd
            .parse("/nix/store/xpcvxsx5sw4rbq666blz6sxqlmsqphmr-foo")
            .unwrap();
        assert_eq!(p.name(), "foo");
        // Nix 2.8 accepts a leading dot (builtins.toFile ".foo" "x")
        assert_eq!(
            sd.parse("/nix/store/q144f75swlv405pb69crqqkdwiza7nlk-.foo")
                .unwrap()
                .name(),
            ".foo"
        );
        let long = format!(
            "/nix/store/xpcvxsx5sw4rbq666blz6sxqlmsqphmr-{}",
            "a".repeat(211)
        );
        assert!(sd.parse(&long).is_ok());
        assert!(matches!(
            sd.parse(&format!("{long}b")),
            Err(StorePathError::NameTooLong(_))
        ));
        assert!(matches!(
            sd.parse("/nix/store/xpcvxsx5sw4rbq666blz6sxqlmsqphmr-"),
            Err(StorePathError::TooShort(_))
        ));
        assert!(matches!(
            sd.parse("/nix/store/xpcvxsx5sw4rbq666blz6sxqlmsqphmr-a b"),
            Err(StorePathError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            sd.parse("/nix/store/epcvxsx5sw4rbq666blz6sxqlmsqphmr-foo"),
            Err(StorePathError::BadHash(_))
        ));
        assert!(matches!(
            sd.parse("/nix/stor/xpcvxsx5sw4rbq666blz6sxqlmsqphmr-foo"),
            Err(StorePathError::NotInStore(_))
        ));
    }
}

#[cfg(test)]
mod placeholder_tests {
    use super::*;

    /// `"${a}"` / `"${a.dev}"` for a floating content-addressed derivation in
    /// C++ Nix 2.8 (`--extra-experimental-features ca-derivations`).
    #[test]
    fn downstream_placeholder_matches_nix() {
        let drv = StorePath::from_base_name("wchyfjsvgy0fwrk2kak0dxj7xk7c8bm4-fl.drv").unwrap();
        assert_eq!(
            downstream_placeholder(&drv, "out"),
            "/148crsnhdi48fs4i72gpln610rr5dpz9vzhabs95f09xsshms9fz"
        );
        assert_eq!(
            downstream_placeholder(&drv, "dev"),
            "/1n7jz55y0bbrqm78hjfxmfcm4l1ynmb0iqswyaalmmxs5mh1py9c"
        );
    }
}
