//! ferrix-store: the Nix store layer over ferrix-castore.
//!
//! A Nix store path is mapped to a [`PathInfo`]: a castore root node plus the
//! NAR size and sha256, references, deriver, signatures and content address
//! that Nix clients expect. NARs are never stored: they are rendered from
//! castore on demand ([`nar::write_nar`]) and imported into castore as a
//! stream ([`import::import_nar`]).
//!
//! - [`PathInfoService`]: path infos by store path digest; `memory://`,
//!   `redb://` and `grpc+http://` backends ([`pathinfo`]).
//! - [`server`]: castore and path infos served over gRPC on one port
//!   (`ferrix store daemon`).
//! - [`open_store`]: a [`Store`] (blob, directory and path info services)
//!   from a URL.
//! - [`import`]: host paths ([`import::add_path`], one read pass) and NAR
//!   streams into the store. [`export`]: store paths back out, lookups.
//! - [`verify`]: recompute every path's NAR hash from castore.
//!
//! All or nothing: a [`PathInfo`] is put last, in its own transaction, after
//! every blob and directory it names is durable: `put` checks that the root
//! node is there and flushes the blob service (castore may defer blob fsyncs
//! until a flush or a directory put) before committing. A crash at any point leaves at most unreferenced
//! blobs behind, never a registered path with missing content.
//!
//! Like castore, everything here is synchronous and `Send + Sync`.

pub mod error;
pub mod export;
pub mod hashing;
pub mod import;
pub mod nar;
pub mod path_info;
pub mod pathinfo;
pub mod server;
pub mod store;
#[cfg(feature = "testutil")]
pub mod testutil;
pub mod verify;

pub use error::{Error, Result};
pub use path_info::PathInfo;
pub use pathinfo::PathInfoService;
pub use store::{Store, default_store_url, open_store};
