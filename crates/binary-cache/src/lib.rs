//! ferrix-binary-cache: Nix binary caches over a ferrix store.
//!
//! A Nix binary cache is a tree of files: `nix-cache-info`, one
//! `<hash>.narinfo` per store path (see [`ferrix_formats::NarInfo`]) and the
//! (possibly compressed) NARs they point to. C++ Nix reads such caches over
//! `http://` and `file://`, and writes them with `nix copy --to`.
//!
//! - [`server`]: an axum HTTP server that serves a ferrix [`Store`] as a
//!   binary cache (NARs rendered from castore as a stream, never whole) and
//!   accepts `nix copy --to http://…` uploads from clients holding the
//!   upload credentials ([`auth`]), verifying each NAR before anything is
//!   registered.
//! - [`remote`]: reading and writing `http://` and `file://` caches.
//! - [`copy`]: store paths (optionally with their closures) from a cache
//!   into a store, verifying NAR hashes and signatures, and back.
//! - [`compression`]: the `Compression` values Nix writes (none, xz, zstd,
//!   bzip2).
//!
//! [`Store`]: ferrix_store::Store

pub mod auth;
mod chunked;
pub mod compression;
pub mod copy;
pub mod error;
pub mod remote;
pub mod server;

pub use error::{Error, Result};
