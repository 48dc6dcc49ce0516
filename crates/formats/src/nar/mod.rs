//! NAR (Nix ARchive): streaming writer, streaming pull reader, dump of a host
//! path and restore into a directory, byte-identical to `nix-store --dump`.

mod reader;
mod writer;

pub use reader::{Event, Limits, NarError, NarReader, NodeKind};
pub use writer::{Directory, NarWriter, Node, dump_path, dump_path_hashed};

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The magic string every NAR starts with.
pub const MAGIC: &[u8] = b"nix-archive-1";

/// Why a NAR could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Nar(#[from] NarError),
    #[error("cannot create '{path}': {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Restore a NAR read from `r` to `dest`, which must not exist yet.
///
/// All or nothing: the tree is built under a temporary name beside `dest`
/// and renamed into place only after the whole archive has been read and
/// validated, so a corrupt or truncated NAR leaves no `dest` behind.
pub fn restore<R: Read>(r: R, dest: &Path) -> Result<(), RestoreError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RestoreError::Io { path, source }
    };
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Ok(_) => return Err(io_err(dest)(io::Error::from(io::ErrorKind::AlreadyExists))),
        Err(e) => return Err(io_err(dest)(e)),
    }
    let file_name = dest.file_name().ok_or_else(|| io_err(dest)(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".restore-{}", std::process::id()));
    let tmp = dest.with_file_name(tmp_name);
    let result = restore_into(r, &tmp).and_then(|()| fs::rename(&tmp, dest).map_err(io_err(dest)));
    if result.is_err() {
        remove_partial(&tmp);
    }
    result
}

/// Best-effort removal of a partly restored tree (directories may have been
/// left without write permission by nothing we create, so plain removal works).
fn remove_partial(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => drop(fs::remove_dir_all(path)),
        Ok(_) => drop(fs::remove_file(path)),
        Err(_) => {}
    }
}

fn restore_into<R: Read>(r: R, dest: &Path) -> Result<(), RestoreError> {
    use std::os::unix::fs::{OpenOptionsExt, symlink};
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RestoreError::Io { path, source }
    };
    let mut nar = NarReader::new(r);
    let mut cur = dest.to_path_buf();
    let mut depth = 0usize;
    while let Some(ev) = nar.next()? {
        match ev {
            Event::Node { name, kind } => {
                if let Some(n) = &name {
                    cur.push(std::ffi::OsStr::new(&*bytes_to_os(n)));
                }
                match kind {
                    NodeKind::Directory => {
                        fs::create_dir(&cur).map_err(io_err(&cur))?;
                        depth += 1;
                        continue; // stay inside until EndDirectory
                    }
                    NodeKind::Regular { executable, .. } => {
                        let mut f = fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(if executable { 0o777 } else { 0o666 })
                            .open(&cur)
                            .map_err(io_err(&cur))?;
                        let mut buf = vec![0u8; 256 * 1024];
                        loop {
                            let n = nar.read_contents(&mut buf)?;
                            if n == 0 {
                                break;
                            }
                            io::Write::write_all(&mut f, &buf[..n]).map_err(io_err(&cur))?;
                        }
                    }
                    NodeKind::Symlink { target } => {
                        symlink(&*bytes_to_os(&target), &cur).map_err(io_err(&cur))?;
                    }
                }
                if name.is_some() {
                    cur.pop();
                }
            }
            Event::EndDirectory => {
                depth -= 1;
                if depth > 0 {
                    cur.pop();
                }
            }
        }
    }
    Ok(())
}

fn bytes_to_os(b: &[u8]) -> std::borrow::Cow<'_, std::ffi::OsStr> {
    use std::os::unix::ffi::OsStrExt;
    std::borrow::Cow::Borrowed(std::ffi::OsStr::from_bytes(b))
}

/// One line of a NAR listing: path (relative, `/`-separated; "" for the root) and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub path: Vec<u8>,
    pub kind: NodeKind,
}

/// List every node of a NAR without keeping file contents.
pub fn list<R: Read>(r: R) -> Result<Vec<ListEntry>, NarError> {
    let mut nar = NarReader::new(r);
    let mut prefix: Vec<usize> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    while let Some(ev) = nar.next()? {
        match ev {
            Event::Node { name, kind } => {
                let len = cur.len();
                if let Some(n) = name {
                    cur.push(b'/');
                    cur.extend_from_slice(&n);
                }
                out.push(ListEntry {
                    path: cur.clone(),
                    kind: kind.clone(),
                });
                if matches!(kind, NodeKind::Directory) {
                    prefix.push(len);
                } else {
                    cur.truncate(len);
                }
            }
            Event::EndDirectory => {
                let len = prefix.pop().expect("balanced directories");
                cur.truncate(len);
            }
        }
    }
    Ok(out)
}
