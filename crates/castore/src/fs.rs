//! Moving host file trees in and out of castore: [`ingest`] and [`restore`].

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::directory::{Directory, Entry, Name, Node, WalkEvent, walk};
use crate::error::{Error, Result};
use crate::{B3Digest, BlobService, CHUNK_SIZE, DirectoryService};

/// A host tree as scanned, before file contents are uploaded.
enum Scanned {
    /// Index into the list of files to upload.
    File { index: usize, executable: bool },
    Symlink(Vec<u8>),
    Directory(Vec<(Name, Scanned)>),
}

fn scan(path: &Path, files: &mut Vec<PathBuf>) -> Result<Scanned> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(path).map_err(|e| Error::io(format!("reading link {}", path.display()), e))?;
        Ok(Scanned::Symlink(target.into_os_string().into_encoded_bytes()))
    } else if ft.is_file() {
        files.push(path.to_owned());
        Ok(Scanned::File { index: files.len() - 1, executable: meta.permissions().mode() & 0o100 != 0 })
    } else if ft.is_dir() {
        let mut entries = Vec::new();
        let rd = fs::read_dir(path).map_err(|e| Error::io(format!("listing {}", path.display()), e))?;
        for de in rd {
            let de = de.map_err(|e| Error::io(format!("listing {}", path.display()), e))?;
            let name = Name::new(de.file_name().as_bytes())?;
            entries.push((name, scan(&de.path(), files)?));
        }
        Ok(Scanned::Directory(entries))
    } else {
        Err(Error::io(
            format!("ingesting {}", path.display()),
            io::Error::new(io::ErrorKind::Unsupported, "not a regular file, directory or symlink"),
        ))
    }
}

/// Streams one host file into a blob, hashing as it reads.
fn upload(blobs: &dyn BlobService, path: &Path) -> Result<(B3Digest, u64)> {
    let ctx = || format!("reading {}", path.display());
    let mut f = fs::File::open(path).map_err(|e| Error::io(ctx(), e))?;
    let len = f.metadata().map_err(|e| Error::io(ctx(), e))?.len();
    let mut w = blobs.open_write();
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(CHUNK_SIZE).clamp(1, CHUNK_SIZE) + 1];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(ctx(), e)),
        };
        w.write_all(&buf[..n]).map_err(|e| Error::io(format!("storing {}", path.display()), e))?;
    }
    let size = w.bytes_written();
    Ok((w.close()?, size))
}

/// Turns a scanned tree into nodes, appending directories children-first.
fn build(s: Scanned, uploaded: &[(B3Digest, u64)], out: &mut Vec<Directory>) -> Result<Node> {
    Ok(match s {
        Scanned::File { index, executable } => {
            let (digest, size) = uploaded[index];
            Node::File { digest, size, executable }
        }
        Scanned::Symlink(target) => Node::Symlink { target },
        Scanned::Directory(children) => {
            let entries = children
                .into_iter()
                .map(|(name, s)| Ok(Entry::new(name, build(s, uploaded, out)?)))
                .collect::<Result<Vec<_>>>()?;
            let dir = Directory::from_unsorted(entries)?;
            let node = dir.node();
            out.push(dir);
            node
        }
    })
}

/// Ingests the file, directory or symlink at `path` (symlinks are not
/// followed) and returns its root node. File contents are uploaded on all
/// cores (rayon); the directories are then stored in one all-or-nothing
/// `put_tree`, and everything is durable when this returns. A file is
/// executable if its owner-execute bit is set.
pub fn ingest(blobs: &dyn BlobService, dirs: &dyn DirectoryService, path: &Path) -> Result<Node> {
    let mut files = Vec::new();
    let scanned = scan(path, &mut files)?;
    let uploaded = files.par_iter().map(|p| upload(blobs, p)).collect::<Result<Vec<_>>>()?;
    let mut tree = Vec::new();
    let root = build(scanned, &uploaded, &mut tree)?;
    if !tree.is_empty() {
        dirs.put_tree(&tree)?;
    }
    // Usually a no-op after put_tree, but needed for a lone-file root or for
    // services that do not share one store.
    blobs.flush()?;
    Ok(root)
}

/// Writes the tree under `root` to `dest`, which must not exist yet. Files
/// get mode 0755 if executable, 0644 otherwise; symlinks are created as is.
pub fn restore(blobs: &dyn BlobService, dirs: &dyn DirectoryService, root: &Node, dest: &Path) -> Result<()> {
    let target = |rel: &[u8]| {
        if rel.is_empty() { dest.to_owned() } else { dest.join(OsStr::from_bytes(rel)) }
    };
    walk(dirs, root, &mut |ev| match ev {
        WalkEvent::EnterDirectory { path } => {
            let p = target(path);
            fs::create_dir(&p).map_err(|e| Error::io(format!("creating {}", p.display()), e))
        }
        WalkEvent::LeaveDirectory { .. } => Ok(()),
        WalkEvent::Symlink { path, target: t } => {
            let p = target(path);
            symlink(OsStr::from_bytes(t), &p).map_err(|e| Error::io(format!("creating {}", p.display()), e))
        }
        WalkEvent::File { path, digest, size, executable } => {
            let p = target(path);
            let ctx = || format!("writing {}", p.display());
            let mut r = blobs.open_read(digest)?.ok_or(Error::DanglingBlob(*digest))?;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(if executable { 0o755 } else { 0o644 })
                .open(&p)
                .map_err(|e| Error::io(ctx(), e))?;
            // Exact modes, whatever the umask.
            f.set_permissions(fs::Permissions::from_mode(if executable { 0o755 } else { 0o644 }))
                .map_err(|e| Error::io(ctx(), e))?;
            let n = io::copy(&mut r, &mut f).map_err(|e| Error::io(ctx(), e))?;
            if n != size {
                return Err(Error::Corrupt(format!("blob {digest} has {n} bytes, directory says {size}")));
            }
            Ok(())
        }
    })
}
