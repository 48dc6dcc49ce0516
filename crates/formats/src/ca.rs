//! Content addresses (`CAHash`): `fixed:r:sha256:…`, `fixed:sha1:…`, `text:sha256:…`.

use std::fmt;
use std::str::FromStr;

use crate::hash::{Encoding, HashAlgo, HashError, NixHash};

/// How the content was hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CaMethod {
    /// The file's bytes (`fixed:`, `outputHashMode = "flat"`).
    Flat,
    /// The NAR serialisation (`fixed:r:`, `outputHashMode = "recursive"`).
    Recursive,
    /// `builtins.toFile` / `.drv` files (`text:`); always sha256.
    Text,
}

impl CaMethod {
    /// The prefix in a derivation output's hash algo field: "", "r:" or "text:".
    pub fn algo_prefix(self) -> &'static str {
        match self {
            CaMethod::Flat => "",
            CaMethod::Recursive => "r:",
            CaMethod::Text => "text:",
        }
    }

    /// Parse a derivation output's `hashAlgo` field (`r:sha256`, `sha1`, `text:sha256`).
    pub fn parse_method_algo(s: &str) -> Result<(CaMethod, HashAlgo), CaError> {
        let (m, a) = if let Some(r) = s.strip_prefix("r:") {
            (CaMethod::Recursive, r)
        } else if let Some(r) = s.strip_prefix("text:") {
            (CaMethod::Text, r)
        } else {
            (CaMethod::Flat, s)
        };
        Ok((m, a.parse()?))
    }
}

/// Why a content address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    #[error("content address '{0}' has no 'fixed:' or 'text:' prefix")]
    BadPrefix(String),
    #[error("text content address '{0}' must use sha256")]
    TextNotSha256(String),
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// A content address: a method and a hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CAHash {
    pub method: CaMethod,
    pub hash: NixHash,
}

impl CAHash {
    pub fn new(method: CaMethod, hash: NixHash) -> CAHash {
        CAHash { method, hash }
    }

    /// `r:sha256`, `sha1`, `text:sha256`: the derivation-output form.
    pub fn method_algo(&self) -> String {
        format!("{}{}", self.method.algo_prefix(), self.hash.algo())
    }
}

impl fmt::Display for CAHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.hash.to_typed(Encoding::Nix32);
        match self.method {
            CaMethod::Text => write!(f, "text:{h}"),
            CaMethod::Flat => write!(f, "fixed:{h}"),
            CaMethod::Recursive => write!(f, "fixed:r:{h}"),
        }
    }
}

impl FromStr for CAHash {
    type Err = CaError;
    fn from_str(s: &str) -> Result<CAHash, CaError> {
        let (method, rest) = if let Some(r) = s.strip_prefix("text:") {
            (CaMethod::Text, r)
        } else if let Some(r) = s.strip_prefix("fixed:r:") {
            (CaMethod::Recursive, r)
        } else if let Some(r) = s.strip_prefix("fixed:") {
            (CaMethod::Flat, r)
        } else {
            return Err(CaError::BadPrefix(s.to_owned()));
        };
        let (algo, digest) = rest
            .split_once(':')
            .ok_or_else(|| HashError::MissingAlgo(rest.to_owned()))?;
        let algo: HashAlgo = algo.parse()?;
        if method == CaMethod::Text && algo != HashAlgo::Sha256 {
            return Err(CaError::TextNotSha256(s.to_owned()));
        }
        let hash = NixHash::parse_bare(digest, algo)?;
        Ok(CAHash { method, hash })
    }
}
