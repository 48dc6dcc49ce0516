//! [`StoreSink`] for the ferrix store (ferrix-store over castore): text and
//! `.drv` files become single-file paths with their references and a
//! `text:sha256` content address; host imports go through
//! `ferrix_store::import::add_path` (a filtered tree is first copied to a
//! temporary directory, so exactly what was hashed is stored).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ferrix_castore::Node;
use ferrix_formats::hash::HashingWriter;
use ferrix_formats::nar::NarWriter;
use ferrix_formats::{CAHash, CaMethod, HashAlgo, StorePath};
use ferrix_store::import::{add_path, AddOptions, Method};
use ferrix_store::{PathInfo, Store};

use crate::store::StoreSink;

/// The ferrix store as the glue's sink.
pub struct FerrixStore(pub Store);

impl FerrixStore {
    /// Open the store a URL names (`memory://`, `redb:///path`, …).
    pub fn open(url: &str) -> Result<FerrixStore, String> {
        ferrix_store::open_store(url).map(FerrixStore).map_err(|e| format!("opening store '{url}': {e}"))
    }

    fn add_single_file(&self, path: &StorePath, contents: &[u8], refs: &BTreeSet<StorePath>) -> Result<(), String> {
        let store = &self.0;
        let err = |e: &dyn std::fmt::Display| format!("writing '{}' to the store: {e}", store.store_dir.display(path));
        if store.path_info.get_path(path).map_err(|e| err(&e))?.is_some() {
            return Ok(());
        }
        let digest = store.blobs.put(contents).map_err(|e| err(&e))?;
        let node = Node::File { digest, size: contents.len() as u64, executable: false };
        let mut nar = NarWriter::new(HashingWriter::new(std::io::sink(), HashAlgo::Sha256)).map_err(|e| err(&e))?;
        nar.root().bytes(false, contents).map_err(|e| err(&e))?;
        let (_, nar_hash, nar_size) = nar.into_inner().finish();
        let ca = CAHash::new(CaMethod::Text, HashAlgo::Sha256.digest(contents));
        store
            .path_info
            .put(PathInfo {
                store_path: path.clone(),
                node,
                nar_size,
                nar_sha256: nar_hash.digest().try_into().expect("sha256 is 32 bytes"),
                references: refs.clone(),
                deriver: None,
                signatures: Vec::new(),
                ca: Some(ca),
            })
            .map_err(|e| err(&e))?;
        Ok(())
    }
}

impl StoreSink for FerrixStore {
    fn read_file(&self, path: &StorePath, sub: &str) -> Option<Result<Vec<u8>, String>> {
        self.read(path, sub)
    }
    fn add_text(&self, path: &StorePath, contents: &[u8], refs: &BTreeSet<StorePath>) -> Result<(), String> {
        self.add_single_file(path, contents, refs)
    }
    fn add_derivation(&self, path: &StorePath, aterm: &[u8], refs: &BTreeSet<StorePath>) -> Result<(), String> {
        self.add_single_file(path, aterm, refs)
    }
    fn add_host_path(
        &self,
        path: &StorePath,
        src: &Path,
        ca: &CAHash,
        filter: Option<&dyn Fn(&Path) -> bool>,
    ) -> Result<(), String> {
        let store = &self.0;
        if store.path_info.get_path(path).map_err(|e| e.to_string())?.is_some() {
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
        let info = add_path(store, from, &opts, &mut |_| {}).map_err(|e| format!("importing '{}': {e}", src.display()))?;
        if info.store_path != *path {
            return Err(format!(
                "importing '{}' gave {} where the evaluator computed {}",
                src.display(),
                store.store_dir.display(&info.store_path),
                store.store_dir.display(path)
            ));
        }
        Ok(())
    }
}

impl FerrixStore {
    fn read(&self, path: &StorePath, sub: &str) -> Option<Result<Vec<u8>, String>> {
        use std::io::Read;
        let store = &self.0;
        let display = format!("{}{sub}", store.store_dir.display(path));
        let info = store.path_info.get_path(path).ok()??;
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
    fn add_derivation(&self, path: &StorePath, aterm: &[u8], refs: &BTreeSet<StorePath>) -> Result<(), String> {
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
}
