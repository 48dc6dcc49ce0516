//! ferrix-castore: content-addressed blobs (BLAKE3) and merkle directories.
//!
//! - [`BlobService`]: blobs by BLAKE3 digest; streaming writes hashed in the
//!   same pass, seekable reads that load one ≤1 MiB chunk at a time and
//!   verify it against the blob digest (see [`blob`]).
//! - [`DirectoryService`]: merkle [`Directory`] nodes by the digest of their
//!   canonical encoding (see [`directory`]); a directory is only stored once
//!   everything it points to is, so a stored directory's closure is complete.
//! - [`walk`]: depth-first, sorted-by-bytes traversal of a stored tree (the
//!   order NAR rendering needs).
//! - [`backend`]: `memory://` and `redb:///path` backends, built by
//!   [`from_url`]; both run through one shared test suite (`tests/it/suite.rs`).
//! - [`ingest`] / [`restore`]: move a host file tree into castore and back.
//! - [`tree::TreeBuilder`]: build directories from a depth-first entry stream
//!   (NAR import).
//!
//! The services are synchronous (`std::io`), `Send + Sync`, and shared as
//! `Arc<dyn …>`: nothing here needs an async runtime. This crate knows
//! nothing of Nix store paths, NAR or PathInfo: those live in `ferrix-store`,
//! which maps a store path to a root [`Node`] from here.
//!
//! ```
//! use ferrix_castore::{from_url, Directory, Entry, Name, Node};
//! let s = from_url("memory://")?;
//! let digest = s.blobs.put(b"hello")?;
//! let dir = Directory::new(vec![Entry::new(
//!     Name::try_from("greeting")?,
//!     Node::File { digest, size: 5, executable: false },
//! )])?;
//! assert_eq!(s.directories.put(&dir)?, dir.digest());
//! assert_eq!(s.blobs.get(&digest)?.as_deref(), Some(&b"hello"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod backend;
pub mod blob;
pub mod chunkbuf;
pub mod digest;
pub mod directory;
pub mod error;
pub mod fs;
pub mod tree;

pub use backend::{Services, from_url};
pub use blob::{BlobReader, BlobService, BlobWriter, CHUNK_SIZE};
pub use chunkbuf::{ChunkBuf, SharedChunk};
pub use digest::{B3Digest, DigestError};
pub use directory::{Directory, DirectoryError, DirectoryService, Entry, Name, Node, WalkEvent, walk};
pub use error::{Error, Result};
pub use fs::{ingest, restore};
