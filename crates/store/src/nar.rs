//! Rendering NARs from castore: [`write_nar`] streams the NAR serialisation
//! of a castore node into any `Write`, byte-identical to `nix-store --dump`
//! of the same tree; [`nar_hash`] computes its sha256 and size without
//! keeping it anywhere.

use std::io::{self, Write};

use ferrix_castore::{BlobService, DirectoryService, Error as CaError, Node};
use ferrix_formats::HashAlgo;
use ferrix_formats::hash::HashingWriter;
use ferrix_formats::nar::{self, NarWriter};

use crate::error::{Error, Result};

/// Writes the NAR of `root` into `w` and returns `w`. File contents are
/// streamed from blobs (each chunk checked against its digest as it is read);
/// a missing blob or directory, or a blob whose size differs from what its
/// node says, is an error.
pub fn write_nar<W: Write>(blobs: &dyn BlobService, dirs: &dyn DirectoryService, root: &Node, w: W) -> Result<W> {
    let mut nar = NarWriter::new(w).map_err(|e| Error::io("writing NAR", e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut path = Vec::new();
    render(blobs, dirs, root, nar.root(), &mut buf, &mut path)?;
    Ok(nar.into_inner())
}

/// The sha256 and size of `root`'s NAR serialisation.
pub fn nar_hash(blobs: &dyn BlobService, dirs: &dyn DirectoryService, root: &Node) -> Result<([u8; 32], u64)> {
    let w = write_nar(blobs, dirs, root, HashingWriter::new(io::sink(), HashAlgo::Sha256))?;
    let (_, hash, size) = w.finish();
    Ok((hash.digest().try_into().expect("sha256 is 32 bytes"), size))
}

fn at(path: &[u8]) -> String {
    if path.is_empty() { "/".to_owned() } else { format!("/{}", String::from_utf8_lossy(path)) }
}

fn render<W: Write>(
    blobs: &dyn BlobService,
    dirs: &dyn DirectoryService,
    node: &Node,
    out: nar::Node<'_, W>,
    buf: &mut [u8],
    path: &mut Vec<u8>,
) -> Result<()> {
    let ctx = |path: &[u8]| format!("rendering NAR at {}", at(path));
    match node {
        Node::File { digest, size, executable } => {
            let mut r = blobs.open_read(digest)?.ok_or(CaError::DanglingBlob(*digest))?;
            if r.size() != *size {
                return Err(CaError::Corrupt(format!(
                    "{}: blob {digest} has {} bytes, its node says {size}",
                    at(path),
                    r.size()
                ))
                .into());
            }
            out.file_with_buffer(*executable, *size, &mut r, buf).map_err(|e| Error::io(ctx(path), e))
        }
        Node::Symlink { target } => out.symlink(target).map_err(|e| Error::io(ctx(path), e)),
        Node::Directory { digest, .. } => {
            let dir = dirs.get(digest)?.ok_or(CaError::DanglingDirectory(*digest))?;
            let mut d = out.directory().map_err(|e| Error::io(ctx(path), e))?;
            for e in dir.entries() {
                let len = path.len();
                if len > 0 {
                    path.push(b'/');
                }
                path.extend_from_slice(e.name.as_bytes());
                let child = d.entry(e.name.as_bytes()).map_err(|err| Error::io(ctx(path), err))?;
                render(blobs, dirs, &e.node, child, buf, path)?;
                path.truncate(len);
            }
            d.close().map_err(|e| Error::io(ctx(path), e))
        }
    }
}
