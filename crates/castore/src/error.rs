//! The error type shared by every castore service and backend.

use std::path::PathBuf;

use crate::B3Digest;
use crate::directory::DirectoryError;

/// Displays a name or path that may not be UTF-8.
pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What can go wrong talking to a castore service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A directory is malformed (bad name, order, encoding).
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// A directory names a child directory that the service does not have.
    #[error("directory entry {name:?} points to directory {digest}, which is not in the store")]
    MissingDirectory { name: String, digest: B3Digest },
    /// A directory names a blob that the service does not have.
    #[error("directory entry {name:?} points to blob {digest}, which is not in the store")]
    MissingBlob { name: String, digest: B3Digest },
    /// A directory entry claims a size that does not match what it points to.
    #[error("directory entry {name:?} says size {claimed}, but {digest} has size {actual}")]
    SizeMismatch { name: String, digest: B3Digest, claimed: u64, actual: u64 },
    /// Content did not hash to the digest it was expected to have.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: B3Digest, actual: B3Digest },
    /// `put_tree` was given no directories.
    #[error("put_tree needs at least one directory")]
    EmptyTree,
    /// A directory reachable from a root is missing: the store is inconsistent.
    #[error("directory {0} is referenced but missing from the store")]
    DanglingDirectory(B3Digest),
    /// A blob reachable from a root is missing: the store is inconsistent.
    #[error("blob {0} is referenced but missing from the store")]
    DanglingBlob(B3Digest),
    /// Stored data failed its integrity check.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// Another process (or another handle in this one) has the store open.
    #[error("store is locked: {} is already open in another process or handle", path.display())]
    StoreLocked { path: PathBuf },
    /// The backend's storage engine failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// A service URL could not be understood.
    #[error("invalid castore URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// An I/O error on the host file system (ingest, restore) or in a stream.
    #[error("{context}: {source}")]
    Io { context: String, #[source] source: std::io::Error },
}

impl Error {
    #[cold]
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    #[cold]
    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        Error::Storage(e.to_string())
    }

    /// Turns this error into an `io::Error` for use inside `Read`/`Write` impls.
    pub(crate) fn into_io(self) -> std::io::Error {
        match self {
            Error::Io { source, .. } => source,
            Error::Corrupt(_) | Error::DigestMismatch { .. } => {
                std::io::Error::new(std::io::ErrorKind::InvalidData, self)
            }
            e => std::io::Error::other(e),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
