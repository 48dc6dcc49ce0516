//! The error type of the binary cache crate.

use ferrix_formats::NarInfoError;

/// What can go wrong serving or copying through a binary cache.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store below failed, or content did not match (NAR hash, size…).
    #[error(transparent)]
    Store(#[from] ferrix_store::Error),
    /// A narinfo could not be parsed.
    #[error("{what}: {source}")]
    NarInfo {
        what: String,
        #[source]
        source: NarInfoError,
    },
    /// A cache URL could not be understood.
    #[error("invalid binary cache URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// A file or request failed in a way the cache protocol does not allow.
    #[error("{0}")]
    Cache(String),
    /// A narinfo is not signed by any trusted key.
    #[error("{path} is not signed by any trusted key")]
    Untrusted { path: String },
    /// A path asked for is not in the cache.
    #[error("{0} is not in the binary cache")]
    NotInCache(String),
    /// A credentials or key file could not be used.
    #[error("{0}")]
    Config(String),
    /// Host file-system or stream I/O failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    #[cold]
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
