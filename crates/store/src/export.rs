//! Getting content out of the store: restoring a store path to a host
//! directory, and resolving sub-paths for `ls`/`cat`.

use std::path::Path;

use ferrix_castore::{Directory, Error as CaError, Node};

use crate::error::{Error, Result};
use crate::path_info::PathInfo;
use crate::store::Store;

/// Writes the contents of `info` to `dest`, which must not exist yet. Files
/// get mode 0755 if executable, 0644 otherwise.
pub fn restore_path(store: &Store, info: &PathInfo, dest: &Path) -> Result<()> {
    ferrix_castore::restore(&*store.blobs, &*store.directories, &info.node, dest)?;
    Ok(())
}

/// The node at `sub` (`""` or `/a/b`, as [`Store::lookup`] returns it) below
/// `root`. Symlinks on the way are not followed. `display` names the root
/// in errors.
pub fn resolve(store: &Store, root: &Node, sub: &str, display: &str) -> Result<Node> {
    let mut node = root.clone();
    let mut at = display.to_owned();
    for comp in sub.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let dir = match &node {
            Node::Directory { digest, .. } => directory(store, digest)?,
            _ => return Err(Error::NotADirectory { path: at }),
        };
        at.push('/');
        at.push_str(comp);
        node = dir.get(comp.as_bytes()).cloned().ok_or_else(|| Error::NoSuchEntry { path: at.clone() })?;
    }
    Ok(node)
}

/// A stored directory; a missing one is a damaged store.
pub fn directory(store: &Store, digest: &ferrix_castore::B3Digest) -> Result<Directory> {
    Ok(store.directories.get(digest)?.ok_or(CaError::DanglingDirectory(*digest))?)
}
