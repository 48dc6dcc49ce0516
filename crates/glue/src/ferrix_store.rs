//! [`StoreSink`] for the ferrix store (ferrix-store over castore): text and
//! `.drv` files become single-file paths with their references and a
//! `text:sha256` content address; host imports go through
//! `ferrix_store::import::ingest_path` (a filtered tree is first copied to a
//! temporary directory, so exactly what was hashed is stored). Everything is
//! registered in batches: one durable commit for many paths.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ferrix_castore::{B3Digest, Node};
use ferrix_formats::hash::HashingWriter;
use ferrix_formats::nar::NarWriter;
use ferrix_formats::{CAHash, CaMethod, HashAlgo, StorePath};
use ferrix_store::import::{ingest_path, AddOptions, Method};
use ferrix_store::{PathInfo, Store};

use crate::store::StoreSink;

/// How many paths wait, their content in castore, before they are
/// registered in one durable transaction.
const MAX_PENDING: usize = 4096;
/// How many single files (`.drv` files, `toFile` texts) wait before they are
/// checked against the store in one read and the new ones' blobs are stored
/// in one transaction (a batch costs a read transaction; what waits is
/// memory: 1024 `.drv` files of a chain of derivations held 1.7 MB).
const MAX_UNCHECKED: usize = 256;

/// The ferrix store as the glue's sink.
///
/// What evaluation writes is registered in batches rather than with an
/// fsync per path (a large package set writes thousands of `.drv` files and
/// imports hundreds of source paths):
///
/// - `.drv` files and `toFile` texts wait in `unchecked` (bytes and
///   references) until [`MAX_UNCHECKED`] are there or something reads one:
///   then one read of the path info table drops those already registered (a
///   re-evaluation writes nothing), and the new ones' blobs are stored in one
///   transaction (`BlobService::put_many`) and their path infos join
///   `pending`.
/// - Imported host paths are ingested into castore at once (directories
///   without fsync, `ingest_path`) and their path infos join `pending`.
/// - `pending` is registered with `PathInfoService::put_many` (which makes
///   the castore content durable first, then commits all path infos in one
///   durable transaction: each path all or nothing) on [`StoreSink::flush`],
///   when [`MAX_PENDING`] are waiting, and on drop. Until then pending and
///   unchecked paths are served from here.
pub struct FerrixStore {
    pub store: Store,
    unchecked: RefCell<BTreeMap<StorePath, SingleFile>>,
    pending: RefCell<BTreeMap<StorePath, PathInfo>>,
}

impl FerrixStore {
    pub fn new(store: Store) -> FerrixStore {
        FerrixStore { store, unchecked: Default::default(), pending: Default::default() }
    }

    /// Open the store a URL names (`memory://`, `redb:///path`, …).
    pub fn open(url: &str) -> Result<FerrixStore, String> {
        ferrix_store::open_store(url).map(FerrixStore::new).map_err(|e| format!("opening store '{url}': {e}"))
    }

    /// Check the unchecked single files against the store: those already
    /// registered are dropped, the others' blobs stored and their path infos
    /// made pending.
    fn settle(&self) -> Result<(), String> {
        let unchecked = std::mem::take(&mut *self.unchecked.borrow_mut());
        if unchecked.is_empty() {
            return Ok(());
        }
        let store = &self.store;
        let paths: Vec<&StorePath> = unchecked.keys().collect();
        let have = store
            .path_info
            .has_paths(&paths)
            .map_err(|e| format!("looking up {} store paths: {e}", paths.len()))?;
        let mut blobs: Vec<&[u8]> = Vec::new();
        let mut infos = Vec::new();
        for ((path, (contents, refs)), have) in unchecked.iter().zip(have) {
            if have {
                continue;
            }
            let err = |e: &dyn std::fmt::Display| format!("writing '{}' to the store: {e}", store.store_dir.display(path));
            let info = single_file_info(path, contents, refs.iter().cloned().collect()).map_err(|e| err(&e))?;
            info.validate(&store.store_dir).map_err(|e| err(&e))?;
            blobs.push(contents);
            infos.push(info);
        }
        if !blobs.is_empty() {
            store.blobs.put_many(&blobs).map_err(|e| format!("storing {} new files: {e}", blobs.len()))?;
        }
        let full = {
            let mut pending = self.pending.borrow_mut();
            for info in infos {
                pending.insert(info.store_path.clone(), info);
            }
            pending.len() >= MAX_PENDING
        };
        if full {
            self.register_pending()?;
        }
        Ok(())
    }

    /// Register the pending path infos (one durable transaction).
    fn register_pending(&self) -> Result<(), String> {
        let infos: Vec<PathInfo> = std::mem::take(&mut *self.pending.borrow_mut()).into_values().collect();
        if infos.is_empty() {
            return Ok(());
        }
        let n = infos.len();
        self.store.path_info.put_many(infos).map_err(|e| format!("registering {n} new store paths: {e}"))
    }

    /// Whether `path` is written: registered, pending or unchecked.
    fn has(&self, path: &StorePath) -> Result<bool, String> {
        if self.pending.borrow().contains_key(path) || self.unchecked.borrow().contains_key(path) {
            return Ok(true);
        }
        let have = self.store.path_info.has_paths(&[path]).map_err(|e| e.to_string())?;
        Ok(have[0])
    }

    /// The registered or pending path info of `path`.
    fn info(&self, path: &StorePath) -> Result<Option<PathInfo>, String> {
        if self.unchecked.borrow().contains_key(path) {
            self.settle()?;
        }
        if let Some(i) = self.pending.borrow().get(path) {
            return Ok(Some(i.clone()));
        }
        self.store.path_info.get_path(path).map_err(|e| e.to_string())
    }

    fn add_single_file(&self, path: &StorePath, contents: Vec<u8>, refs: BTreeSet<StorePath>) -> Result<(), String> {
        if self.pending.borrow().contains_key(path) {
            return Ok(());
        }
        let full = {
            let mut unchecked = self.unchecked.borrow_mut();
            unchecked.entry(path.clone()).or_insert_with(|| (contents, refs.into_iter().collect()));
            unchecked.len() >= MAX_UNCHECKED
        };
        if full {
            self.settle()?;
        }
        Ok(())
    }
}

/// A `.drv` file or `toFile` text not yet checked against the store: its
/// bytes and references (sorted; a vector, since a `BTreeSet` of a few
/// paths is a 600-byte node).
type SingleFile = (Vec<u8>, Vec<StorePath>);

/// The path info of a single-file text path (`text:sha256` content address).
fn single_file_info(path: &StorePath, contents: &[u8], refs: BTreeSet<StorePath>) -> std::io::Result<PathInfo> {
    let digest = B3Digest::of(contents);
    let node = Node::File { digest, size: contents.len() as u64, executable: false };
    let mut nar = NarWriter::new(HashingWriter::new(std::io::sink(), HashAlgo::Sha256))?;
    nar.root().bytes(false, contents)?;
    let (_, nar_hash, nar_size) = nar.into_inner().finish();
    let ca = CAHash::new(CaMethod::Text, HashAlgo::Sha256.digest(contents));
    Ok(PathInfo {
        store_path: path.clone(),
        node,
        nar_size,
        nar_sha256: nar_hash.digest().try_into().expect("sha256 is 32 bytes"),
        references: refs,
        deriver: None,
        signatures: Vec::new(),
        ca: Some(ca),
    })
}

impl Drop for FerrixStore {
    fn drop(&mut self) {
        // Callers that report errors flush first; this only keeps a caller
        // that forgot from losing what it wrote.
        if let Err(e) = self.flush() {
            eprintln!("error: {e}");
        }
    }
}

impl StoreSink for FerrixStore {
    fn read_file(&self, path: &StorePath, sub: &str) -> Option<Result<Vec<u8>, String>> {
        self.read(path, sub)
    }
    fn add_text(&self, path: &StorePath, contents: &[u8], refs: &BTreeSet<StorePath>) -> Result<(), String> {
        self.add_single_file(path, contents.to_vec(), refs.clone())
    }
    fn add_derivation(&self, path: &StorePath, aterm: Vec<u8>, refs: BTreeSet<StorePath>) -> Result<(), String> {
        self.add_single_file(path, aterm, refs)
    }
    fn flush(&self) -> Result<(), String> {
        self.settle()?;
        self.register_pending()
    }
    fn add_host_path(
        &self,
        path: &StorePath,
        src: &Path,
        ca: &CAHash,
        filter: Option<&dyn Fn(&Path) -> bool>,
    ) -> Result<(), String> {
        let store = &self.store;
        if self.has(path)? {
            return Ok(());
        }
        let method = match ca.method {
            CaMethod::Flat => Method::Flat,
            _ => Method::Recursive,
        };
        let opts = AddOptions { method, name: Some(path.name().to_string()) };
        let copy;
        let from: &Path = match filter {
            None => src,
            Some(f) => {
                copy = FilteredCopy::new(src, f)?;
                &copy.root
            }
        };
        let info = ingest_path(store, from, &opts, &mut |_| {}).map_err(|e| format!("importing '{}': {e}", src.display()))?;
        if info.store_path != *path {
            return Err(format!(
                "importing '{}' gave {} where the evaluator computed {}",
                src.display(),
                store.store_dir.display(&info.store_path),
                store.store_dir.display(path)
            ));
        }
        let full = {
            let mut pending = self.pending.borrow_mut();
            pending.insert(info.store_path.clone(), info);
            pending.len() >= MAX_PENDING
        };
        if full {
            self.register_pending()?;
        }
        Ok(())
    }
}

impl FerrixStore {
    fn read(&self, path: &StorePath, sub: &str) -> Option<Result<Vec<u8>, String>> {
        use std::io::Read;
        let store = &self.store;
        let display = format!("{}{sub}", store.store_dir.display(path));
        let info = match self.info(path) {
            Ok(i) => i?,
            Err(e) => return Some(Err(e)),
        };
        let r = (|| -> Result<Vec<u8>, String> {
            let node = ferrix_store::export::resolve(store, &info.node, sub, &display).map_err(|e| e.to_string())?;
            match node {
                Node::File { digest, size, .. } => {
                    let mut r = store
                        .blobs
                        .open_read(&digest)
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| format!("{display}: blob {digest} is missing"))?;
                    let mut out = Vec::with_capacity(size as usize);
                    (&mut r).take(size).read_to_end(&mut out).map_err(|e| format!("reading {display}: {e}"))?;
                    Ok(out)
                }
                _ => Err(format!("'{display}' is not a regular file")),
            }
        })();
        Some(r)
    }
}

/// A filtered copy of a host tree in a temporary directory (removed on drop).
struct FilteredCopy {
    dir: PathBuf,
    root: PathBuf,
}

impl FilteredCopy {
    fn new(src: &Path, filter: &dyn Fn(&Path) -> bool) -> Result<FilteredCopy, String> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!("ferrix-import-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating '{}': {e}", dir.display()))?;
        let root = dir.join(src.file_name().unwrap_or_else(|| "root".as_ref()));
        let c = FilteredCopy { dir, root };
        copy_tree(src, &c.root, filter)?;
        Ok(c)
    }
}

impl Drop for FilteredCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn copy_tree(src: &Path, dst: &Path, filter: &dyn Fn(&Path) -> bool) -> Result<(), String> {
    let e = |p: &Path, err: std::io::Error| format!("copying '{}': {err}", p.display());
    let md = std::fs::symlink_metadata(src).map_err(|err| e(src, err))?;
    if md.file_type().is_symlink() {
        let t = std::fs::read_link(src).map_err(|err| e(src, err))?;
        std::os::unix::fs::symlink(t, dst).map_err(|err| e(dst, err))
    } else if md.is_dir() {
        std::fs::create_dir(dst).map_err(|err| e(dst, err))?;
        for ent in std::fs::read_dir(src).map_err(|err| e(src, err))? {
            let ent = ent.map_err(|err| e(src, err))?;
            let p = ent.path();
            if filter(&p) {
                copy_tree(&p, &dst.join(ent.file_name()), filter)?;
            }
        }
        Ok(())
    } else {
        std::fs::copy(src, dst).map_err(|err| e(src, err))?;
        Ok(())
    }
}

/// The ferrix store, opened on first use: an evaluation that writes and
/// reads nothing from the store never opens (or locks) it, and a store that
/// cannot be opened is an error only when it is needed.
pub struct LazyFerrixStore {
    url: Result<String, String>,
    store: std::cell::OnceCell<Result<FerrixStore, String>>,
}

impl LazyFerrixStore {
    /// `url` is the store URL, or why there is none (e.g. no data directory).
    pub fn new(url: Result<String, String>) -> LazyFerrixStore {
        LazyFerrixStore { url, store: std::cell::OnceCell::new() }
    }

    fn get(&self) -> Result<&FerrixStore, String> {
        self.store
            .get_or_init(|| self.url.as_deref().map_err(Clone::clone).and_then(FerrixStore::open))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl StoreSink for LazyFerrixStore {
    fn add_text(&self, path: &StorePath, contents: &[u8], refs: &BTreeSet<StorePath>) -> Result<(), String> {
        self.get()?.add_text(path, contents, refs)
    }
    fn add_derivation(&self, path: &StorePath, aterm: Vec<u8>, refs: BTreeSet<StorePath>) -> Result<(), String> {
        self.get()?.add_derivation(path, aterm, refs)
    }
    fn add_host_path(
        &self,
        path: &StorePath,
        src: &Path,
        ca: &CAHash,
        filter: Option<&dyn Fn(&Path) -> bool>,
    ) -> Result<(), String> {
        self.get()?.add_host_path(path, src, ca, filter)
    }
    fn read_file(&self, path: &StorePath, sub: &str) -> Option<Result<Vec<u8>, String>> {
        match self.get() {
            Ok(s) => s.read_file(path, sub),
            Err(e) => Some(Err(e)),
        }
    }
    fn flush(&self) -> Result<(), String> {
        match self.store.get() {
            Some(Ok(s)) => s.flush(),
            _ => Ok(()), // never opened: nothing written
        }
    }
}
