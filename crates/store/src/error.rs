//! The error type of the store layer.

use std::path::PathBuf;

use ferrix_formats::StorePathError;
use ferrix_formats::nar::NarError;

/// What can go wrong in the store layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The castore below failed (missing blob, corrupt chunk, storage error…).
    #[error(transparent)]
    Castore(#[from] ferrix_castore::Error),
    /// A NAR being imported is malformed or truncated.
    #[error(transparent)]
    Nar(#[from] NarError),
    /// A store path or store path name is invalid.
    #[error(transparent)]
    StorePath(#[from] StorePathError),
    /// Imported content did not have the NAR hash it was expected to have.
    #[error("NAR hash mismatch: expected {expected}, got {actual}")]
    NarHashMismatch { expected: String, actual: String },
    /// Imported content did not have the NAR size it was expected to have.
    #[error("NAR size mismatch: expected {expected} bytes, got {actual}")]
    NarSizeMismatch { expected: u64, actual: u64 },
    /// A PathInfo names a root node that castore does not hold.
    #[error("cannot register {path}: its root {what} is not in the castore")]
    MissingRoot { path: String, what: String },
    /// A PathInfo is inconsistent (for example its CA does not give its path).
    #[error("invalid path info for {path}: {reason}")]
    InvalidPathInfo { path: String, reason: String },
    /// A sub-path inside a store path does not exist.
    #[error("{path}: no such file or directory in the store")]
    NoSuchEntry { path: String },
    /// A sub-path goes through something that is not a directory.
    #[error("{path}: not a directory")]
    NotADirectory { path: String },
    /// Stored path info failed to decode.
    #[error("path info database is corrupt: {0}")]
    Corrupt(String),
    /// Another process (or handle) has the path info database open.
    #[error("store is locked: {} is already open in another process or handle", path.display())]
    StoreLocked { path: PathBuf },
    /// The path info database failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// A store URL could not be understood.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// Host file-system or stream I/O failed.
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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
