//! The [`PathInfoService`] trait and its backends, one module each.
//!
//! | backend    | module      |
//! |------------|-------------|
//! | `memory://`| [`memory`]  |
//! | `redb://`  | [`redb`]    |
//! | `grpc+http://` | [`grpc`] (a server running [`crate::server`]) |
//!
//! Every backend checks, on `put`, that the root node a [`PathInfo`] names
//! is in castore ([`check_root`]), and validates the PathInfo itself.

pub mod grpc;
pub mod memory;
pub mod redb;

use ferrix_castore::{Node, Services};
use ferrix_formats::{StoreDir, StorePath};

use crate::error::{Error, Result};
use crate::path_info::PathInfo;

/// Stores [`PathInfo`]s by the 20-byte digest of their store path.
pub trait PathInfoService: Send + Sync {
    /// The path info whose store path has this digest, `None` if absent.
    fn get(&self, digest: &[u8; 20]) -> Result<Option<PathInfo>>;

    /// Registers a path info (durably, in its own transaction), replacing any
    /// previous one for the same path. Fails, storing nothing, if the path
    /// info is invalid or its root node is not in castore.
    fn put(&self, info: PathInfo) -> Result<PathInfo>;

    /// Every registered path info, sorted by store path digest.
    fn list(&self) -> Result<Vec<PathInfo>>;

    /// Registers several path infos, checked like [`put`](Self::put). The
    /// default puts them one by one; a backend that can commits them in one
    /// durable transaction, all or nothing (many small `.drv` files then cost
    /// one fsync instead of one each).
    fn put_many(&self, infos: Vec<PathInfo>) -> Result<()> {
        for info in infos {
            self.put(info)?;
        }
        Ok(())
    }

    /// Whether each of these exact store paths is registered. The default
    /// looks them up one by one; a backend that can answers all of them
    /// from one read (a warm re-evaluation asks this for every `.drv` file
    /// and source path it would write).
    fn has_paths(&self, paths: &[&StorePath]) -> Result<Vec<bool>> {
        paths.iter().map(|p| Ok(self.get_path(p)?.is_some())).collect()
    }

    /// The path info for exactly this store path (digest and name).
    fn get_path(&self, path: &StorePath) -> Result<Option<PathInfo>> {
        Ok(self.get(&path.digest())?.filter(|i| i.store_path == *path))
    }
}

/// Checks that `info`'s root node is in castore: a directory must be stored
/// (castore only stores a directory once its whole closure is), a file's
/// blob must be stored with the size the node claims. Then flushes the blob
/// service, so that every blob closed so far is durable (castore backends
/// may defer the fsync of a blob close): after this returns, the path info
/// may be committed.
pub fn check_root(castore: &Services, store_dir: &StoreDir, info: &PathInfo) -> Result<()> {
    info.validate(store_dir)?;
    let missing = |what: String| Error::MissingRoot {
        path: store_dir.display(&info.store_path),
        what,
    };
    match &info.node {
        Node::Directory { digest, .. } => {
            if !castore.directories.has(digest)? {
                return Err(missing(format!("directory {digest}")));
            }
        }
        Node::File { digest, size, .. } => match castore.blobs.size(digest)? {
            Some(s) if s == *size => {}
            Some(s) => {
                return Err(missing(format!(
                    "blob {digest} of size {size} (stored size {s})"
                )));
            }
            None => return Err(missing(format!("blob {digest}"))),
        },
        Node::Symlink { .. } => {}
    }
    castore.blobs.flush()?;
    Ok(())
}
