//! ferrix-castore: content-addressed blobs (BLAKE3) and merkle directories.
//!
//! - [`BlobService`]: blobs by BLAKE3 digest; streaming writes, ranged reads.
//! - [`DirectoryService`]: merkle [`Directory`] nodes by the digest of their
//!   canonical encoding; a directory is only stored once all it points to is.
//! - [`backend`]: `memory://` and `redb:///path` backends, built by
//!   [`backend::from_url`].
//! - [`ingest`] / [`restore`]: move a host file tree into castore and back.
//!
//! The services are synchronous (`std::io`), `Send + Sync`, and shared as
//! `Arc<dyn …>`; nothing here needs an async runtime.

pub mod backend;
pub mod blob;
pub mod digest;
pub mod directory;
pub mod error;
pub mod fs;

pub use backend::{Services, from_url};
pub use blob::{BlobReader, BlobService, BlobWriter, CHUNK_SIZE};
pub use digest::{B3Digest, DigestError};
pub use directory::{Directory, DirectoryError, DirectoryService, Entry, Name, Node, WalkEvent, walk};
pub use error::{Error, Result};
pub use fs::{ingest, restore};
