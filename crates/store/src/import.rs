//! Getting content into the store: host paths ([`add_path`]) and NAR
//! streams ([`import_nar`], [`ingest_nar`]).
//!
//! Both read their input exactly once. [`add_path`] walks the host tree in
//! NAR order and feeds every file's bytes to its castore blob writer and,
//! framed as the NAR serialisation, to a sha256 hasher at the same time: the
//! NAR is never written anywhere. Directories are stored in one all-or-nothing
//! `put_tree` once every blob is durable, and the [`PathInfo`] is put last.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use ferrix_castore::{
    BlobService, BlobWriter, CHUNK_SIZE, ChunkBuf, Directory, DirectoryService, Entry,
    Error as CaError, Name, Node, SharedChunk,
};
use ferrix_formats::nar::{self, Event, NarReader, NarWriter, NodeKind};
use ferrix_formats::store_path::validate_name;
use ferrix_formats::{CAHash, CaMethod, HashAlgo, Hasher, NixHash};

use crate::error::{Error, Result};
use crate::hashing::{ShareHandle, ThreadedSha256};
use crate::path_info::PathInfo;
use crate::store::Store;

/// How a host path becomes a store path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Method {
    /// The NAR serialisation of the tree is hashed (`nix-store --add`,
    /// `--add-fixed --recursive sha256`): `fixed:r:sha256` / "source" paths.
    #[default]
    Recursive,
    /// A single regular file's bytes are hashed (`nix-store --add-fixed
    /// sha256 FILE`): `fixed:sha256`. As C++ Nix 2.8 does there, the stored
    /// file keeps its executable bit; a symlink is refused.
    Flat,
}

/// Options of [`add_path`].
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    pub method: Method,
    /// The store path name; by default the base name of the (absolute,
    /// lexically normalised) host path, as `nix-store --add` does.
    pub name: Option<String>,
}

/// Imports the host path `path` as a content-addressed store path, giving
/// exactly the path `nix-store --add` (recursive) or `nix-store --add-fixed
/// sha256` (flat) gives. `progress` is called with the number of file bytes
/// read since the previous call.
pub fn add_path(
    store: &Store,
    path: &Path,
    opts: &AddOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<PathInfo> {
    let info = ingest_path(store, path, opts, progress)?;
    register(store, info)
}

/// Puts a path info, unless the path is registered with the same contents:
/// then what is on record (signatures, deriver) is kept, not overwritten.
fn register(store: &Store, info: PathInfo) -> Result<PathInfo> {
    if let Some(existing) = store.path_info.get_path(&info.store_path)?
        && existing.node == info.node
        && existing.nar_sha256 == info.nar_sha256
    {
        return Ok(existing);
    }
    store.path_info.put(info)
}

/// The first half of [`add_path`]: the content goes into castore (its
/// directories with [`DirectoryService::put_tree_deferred`], so it may not
/// be durable yet) and the path info is returned, not registered. Register
/// it with [`PathInfoService::put`] or, with others, `put_many`, which make
/// the castore content durable first (`check_root`): many small imports
/// then cost one fsync together.
///
/// [`PathInfoService::put`]: crate::PathInfoService::put
pub fn ingest_path(
    store: &Store,
    path: &Path,
    opts: &AddOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<PathInfo> {
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => default_name(path)?,
    };
    // Check the name before doing any work.
    validate_name(name.as_bytes(), &name)?;

    // grown to the largest small file met, at most SMALL_BUF: most imports
    // are a few small files, which should not pay for zeroing a MiB each
    let mut buf = Vec::new();
    let mut directories = Vec::new();
    let hashing = ThreadedSha256::new().map_err(|e| Error::io("starting the NAR hasher", e))?;
    let share = hashing.share_handle();
    let mut nar = NarWriter::new(hashing).map_err(|e| Error::io("hashing NAR", e))?;
    let (root, flat_hash) = match opts.method {
        Method::Recursive => {
            let mut ing = Ingester {
                blobs: &*store.blobs,
                directories: &mut directories,
                progress,
                share,
            };
            (ing.node(path, nar.root(), &mut buf)?, None)
        }
        Method::Flat => {
            let ctx = || format!("reading {}", path.display());
            let meta = fs::symlink_metadata(path).map_err(|e| Error::io(ctx(), e))?;
            if !meta.is_file() {
                return Err(Error::io(
                    ctx(),
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "flat (--flat / --add-fixed) import needs a regular file",
                    ),
                ));
            }
            let mut flat = Hasher::new(HashAlgo::Sha256);
            let mut ing = Ingester {
                blobs: &*store.blobs,
                directories: &mut directories,
                progress,
                share,
            };
            let executable = meta.permissions().mode() & 0o100 != 0;
            let node = ing.file(
                path,
                meta.len(),
                executable,
                nar.root(),
                &mut buf,
                Some(&mut flat),
            )?;
            (node, Some(flat.finish()))
        }
    };
    let (nar_hash, nar_size) = nar
        .into_inner()
        .finish()
        .map_err(|e| Error::io("hashing NAR", e))?;
    if !directories.is_empty() {
        store.directories.put_tree_deferred(&directories)?;
    }
    let (method, ca_hash) = match flat_hash {
        Some(h) => (CaMethod::Flat, h),
        None => (CaMethod::Recursive, nar_hash.clone()),
    };
    ca_path_info(store, &name, root, nar_hash, nar_size, CAHash::new(method, ca_hash))
}

/// The path info of a content-addressed path without references.
fn ca_path_info(
    store: &Store,
    name: &str,
    node: Node,
    nar_hash: NixHash,
    nar_size: u64,
    ca: CAHash,
) -> Result<PathInfo> {
    let store_path = store.store_dir.make_ca_path(name, &ca)?;
    Ok(PathInfo {
        store_path,
        node,
        nar_size,
        nar_sha256: nar_hash.digest().try_into().expect("sha256 is 32 bytes"),
        references: Default::default(),
        deriver: None,
        signatures: Vec::new(),
        ca: Some(ca),
    })
}

/// `nix-store --add`'s name: the base name of the absolute path, with `.`
/// and `..` resolved lexically (symlinks are not resolved).
pub fn default_name(path: &Path) -> Result<String> {
    let abs = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("finding the current directory", e))?
            .join(path)
    };
    let mut norm = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                norm.pop();
            }
            Component::CurDir => {}
            c => norm.push(c),
        }
    }
    let name = norm.file_name().ok_or_else(|| {
        Error::io(
            path.display().to_string(),
            io::Error::new(io::ErrorKind::InvalidInput, "path has no base name"),
        )
    })?;
    Ok(String::from_utf8_lossy(name.as_bytes()).into_owned())
}

/// Walks a host tree in NAR order, uploading blobs and collecting directories.
struct Ingester<'a> {
    blobs: &'a dyn BlobService,
    /// Children before parents, ready for `put_tree`.
    directories: &'a mut Vec<Directory>,
    progress: &'a mut dyn FnMut(u64),
    /// Offers the NAR hasher each large file's chunk buffers (no copy).
    share: ShareHandle,
}

/// Files at least this large are read chunk by chunk into shared buffers.
const SHARED_MIN: u64 = 2 * CHUNK_SIZE as u64;

/// The largest read buffer for a smaller file.
const SMALL_BUF: usize = 1 << 20;

/// Reads a file, copying every byte into a blob writer (and a flat hasher).
struct Tee<'a> {
    file: fs::File,
    blob: &'a mut dyn BlobWriter,
    flat: Option<&'a mut Hasher>,
    progress: &'a mut dyn FnMut(u64),
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.blob.write_all(&buf[..n])?;
        if let Some(h) = self.flat.as_deref_mut() {
            h.update(&buf[..n]);
        }
        (self.progress)(n as u64);
        Ok(n)
    }
}

impl Ingester<'_> {
    fn node<W: Write>(
        &mut self,
        path: &Path,
        out: nar::Node<'_, W>,
        buf: &mut Vec<u8>,
    ) -> Result<Node> {
        let ctx = || format!("reading {}", path.display());
        let meta = fs::symlink_metadata(path).map_err(|e| Error::io(ctx(), e))?;
        let ft = meta.file_type();
        if ft.is_file() {
            self.file(
                path,
                meta.len(),
                meta.permissions().mode() & 0o100 != 0,
                out,
                buf,
                None,
            )
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(|e| Error::io(ctx(), e))?;
            let target = target.into_os_string().into_encoded_bytes();
            out.symlink(&target).map_err(|e| Error::io(ctx(), e))?;
            Ok(Node::Symlink { target })
        } else if ft.is_dir() {
            let mut names = Vec::new();
            for de in fs::read_dir(path).map_err(|e| Error::io(ctx(), e))? {
                names.push(de.map_err(|e| Error::io(ctx(), e))?.file_name());
            }
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            let mut dir = out.directory().map_err(|e| Error::io(ctx(), e))?;
            let mut entries = Vec::with_capacity(names.len());
            for n in names {
                let child = path.join(&n);
                let out = dir.entry(n.as_bytes()).map_err(|e| Error::io(ctx(), e))?;
                let node = self.node(&child, out, buf)?;
                entries.push(Entry::new(
                    Name::new(n.as_bytes()).map_err(CaError::from)?,
                    node,
                ));
            }
            dir.close().map_err(|e| Error::io(ctx(), e))?;
            let d = Directory::new(entries).map_err(CaError::from)?;
            let node = d.node();
            self.directories.push(d);
            Ok(node)
        } else {
            Err(Error::io(
                ctx(),
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "not a regular file, directory or symlink",
                ),
            ))
        }
    }

    fn file<W: Write>(
        &mut self,
        path: &Path,
        size: u64,
        executable: bool,
        out: nar::Node<'_, W>,
        buf: &mut Vec<u8>,
        flat: Option<&mut Hasher>,
    ) -> Result<Node> {
        let ctx = || format!("reading {}", path.display());
        let mut file = fs::File::open(path).map_err(|e| Error::io(ctx(), e))?;
        let mut blob = self.blobs.open_write();
        if size >= SHARED_MIN {
            // Each chunk is read once into a page-aligned buffer that the NAR
            // hasher, the blob writer (BLAKE3) and the chunk store all use
            // as it is: the only copy is the kernel's, out of the page cache.
            let (share, progress, blob_w) = (&self.share, &mut *self.progress, &mut *blob);
            let mut flat = flat;
            out.file_from_writer(executable, size, |w| {
                let mut left = size;
                while left > 0 {
                    let n = left.min(CHUNK_SIZE as u64) as usize;
                    let mut c = ChunkBuf::new();
                    c.fill_from(&mut file, n).map_err(|e| {
                        if e.kind() == io::ErrorKind::UnexpectedEof {
                            io::Error::other("file changed size while it was read")
                        } else {
                            e
                        }
                    })?;
                    let c: SharedChunk = std::sync::Arc::new(c);
                    if let Some(h) = flat.as_deref_mut() {
                        h.update(&c);
                    }
                    share.offer(c.clone());
                    w.write_all(&c)?;
                    blob_w.write_shared(c)?;
                    progress(n as u64);
                    left -= n as u64;
                }
                Ok(())
            })
            .map_err(|e| Error::io(ctx(), e))?;
            let digest = blob.close()?;
            return Ok(Node::File {
                digest,
                size,
                executable,
            });
        }
        let mut tee = Tee {
            file,
            blob: &mut *blob,
            flat,
            progress: &mut *self.progress,
        };
        let want = size.min(SMALL_BUF as u64) as usize;
        if buf.len() < want {
            buf.resize(want, 0);
        }
        out.file_with_buffer(executable, size, &mut tee, buf)
            .map_err(|e| Error::io(ctx(), e))?;
        if blob.bytes_written() != size {
            return Err(Error::io(
                ctx(),
                io::Error::other("file changed size while it was read"),
            ));
        }
        let digest = blob.close()?;
        Ok(Node::File {
            digest,
            size,
            executable,
        })
    }
}

/// What a NAR import must match.
#[derive(Debug, Clone, Default)]
pub struct NarExpect {
    /// The NAR's sha256, if known (e.g. from a narinfo).
    pub sha256: Option<NixHash>,
    /// The NAR's size in bytes, if known.
    pub size: Option<u64>,
}

/// A NAR ingested into castore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestedNar {
    pub root: Node,
    pub nar_sha256: [u8; 32],
    pub nar_size: u64,
}

/// Reads exactly one NAR from `r` (not a byte after it; pass a buffered
/// reader, the NAR parser reads small tokens), streaming file
/// contents into blobs; checks `expect`; only then stores the directories.
/// Never buffers the NAR whole. A malformed or truncated NAR, or one that
/// does not match `expect`, is an error and leaves no directory stored
/// (blobs already written stay, unreferenced).
pub fn ingest_nar(
    blobs: &dyn BlobService,
    dirs: &dyn DirectoryService,
    r: impl Read,
    expect: &NarExpect,
    progress: &mut dyn FnMut(u64),
) -> Result<IngestedNar> {
    if let Some(h) = &expect.sha256
        && h.algo() != HashAlgo::Sha256
    {
        return Err(Error::NarHashMismatch {
            expected: h.to_string(),
            actual: "a sha256 NAR hash".into(),
        });
    }
    let hashing = HashingReader {
        inner: r,
        hasher: Hasher::new(HashAlgo::Sha256),
        count: 0,
        progress,
    };
    let mut nar = NarReader::new(hashing);
    let mut stack: Vec<(Option<Name>, Vec<Entry>)> = Vec::new();
    let mut directories = Vec::new();
    let mut root = None;
    let mut buf = vec![0u8; 1 << 20];
    while let Some(ev) = nar.next()? {
        let (name, node) = match ev {
            Event::Node { name, kind } => {
                let name = name.map(Name::new).transpose().map_err(CaError::from)?;
                let node = match kind {
                    NodeKind::Directory => {
                        stack.push((name, Vec::new()));
                        continue;
                    }
                    NodeKind::Symlink { target } => Node::Symlink { target },
                    NodeKind::Regular { executable, size } => {
                        let mut w = blobs.open_write();
                        loop {
                            let n = nar.read_contents(&mut buf)?;
                            if n == 0 {
                                break;
                            }
                            w.write_all(&buf[..n])
                                .map_err(|e| Error::io("storing NAR file contents", e))?;
                        }
                        Node::File {
                            digest: w.close()?,
                            size,
                            executable,
                        }
                    }
                };
                (name, node)
            }
            Event::EndDirectory => {
                let (name, entries) = stack.pop().expect("NarReader balances directories");
                let d = Directory::new(entries).map_err(CaError::from)?;
                let node = d.node();
                directories.push(d);
                (name, node)
            }
        };
        match stack.last_mut() {
            Some((_, entries)) => entries.push(Entry::new(name.expect("entries have names"), node)),
            None => root = Some(node),
        }
    }
    let root = root.expect("NarReader yields a root before finishing");
    let h = nar.into_inner();
    let (nar_hash, nar_size) = (h.hasher.finish(), h.count);
    if let Some(size) = expect.size
        && size != nar_size
    {
        return Err(Error::NarSizeMismatch {
            expected: size,
            actual: nar_size,
        });
    }
    if let Some(want) = &expect.sha256
        && *want != nar_hash
    {
        return Err(Error::NarHashMismatch {
            expected: want.to_typed(ferrix_formats::Encoding::Nix32),
            actual: nar_hash.to_typed(ferrix_formats::Encoding::Nix32),
        });
    }
    if !directories.is_empty() {
        dirs.put_tree(&directories)?;
    }
    Ok(IngestedNar {
        root,
        nar_sha256: nar_hash.digest().try_into().expect("sha256 is 32 bytes"),
        nar_size,
    })
}

/// Imports one NAR from `r` as the content-addressed path `nix-store --add`
/// of the unpacked tree named `name` would give (`fixed:r:sha256`).
pub fn import_nar(
    store: &Store,
    name: &str,
    r: impl Read,
    expect: &NarExpect,
    progress: &mut dyn FnMut(u64),
) -> Result<PathInfo> {
    validate_name(name.as_bytes(), name)?;
    let ing = ingest_nar(&*store.blobs, &*store.directories, r, expect, progress)?;
    register_nar(store, name, ing)
}

/// Registers an ingested NAR as the content-addressed path (`fixed:r:sha256`)
/// named `name`: the second half of [`import_nar`], for callers that check
/// something (such as trailing input) between ingesting and registering.
pub fn register_nar(store: &Store, name: &str, ing: IngestedNar) -> Result<PathInfo> {
    let hash = NixHash::from_digest(HashAlgo::Sha256, &ing.nar_sha256).expect("32 bytes");
    let info = ca_path_info(
        store,
        name,
        ing.root,
        hash.clone(),
        ing.nar_size,
        CAHash::new(CaMethod::Recursive, hash),
    )?;
    register(store, info)
}

/// Hashes and counts what is read through it.
struct HashingReader<'a, R> {
    inner: R,
    hasher: Hasher,
    count: u64,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        (self.progress)(n as u64);
        Ok(n)
    }
}
