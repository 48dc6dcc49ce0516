//! The seam between the glue and a Nix store: what the glue writes (text
//! files, `.drv` files, imported host paths) goes through [`StoreSink`].
//! Until ferrix-store's PathInfo service is wired in, [`MemoryStore`] keeps
//! the writes in memory and [`DirStore`] writes text and `.drv` files into a
//! directory (for inspection and tests).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};

use ferrix_formats::store_path::HASH_PART_LEN;
use ferrix_formats::{CAHash, StoreDir, StorePath};

/// Where the glue puts what evaluation creates. Every method is called with
/// the store path already computed by the glue; implementations store the
/// contents under it (and may check it).
pub trait StoreSink {
    /// A text file (`builtins.toFile`) with its references.
    fn add_text(&self, path: &StorePath, contents: &[u8], refs: &BTreeSet<StorePath>) -> Result<(), String>;
    /// A `.drv` file (ATerm) with its references (input sources and input
    /// derivations), handed over (a sink that keeps them keeps these).
    fn add_derivation(&self, path: &StorePath, aterm: Vec<u8>, refs: BTreeSet<StorePath>) -> Result<(), String>;
    /// A host path imported with this content address (`"${./x}"`,
    /// `builtins.path`, `filterSource`). `filter` says which entries below
    /// the root to keep (absolute host paths); `None` keeps everything.
    fn add_host_path(
        &self,
        path: &StorePath,
        src: &Path,
        ca: &CAHash,
        filter: Option<&dyn Fn(&Path) -> bool>,
    ) -> Result<(), String>;
    /// The contents of a regular file at `sub` (empty or `/…`) below a store
    /// path this sink holds; `None` if it does not hold that path (the
    /// evaluator then looks on the host file system). Every sink must give
    /// back the text and `.drv` files it was given: the glue keeps no copy
    /// of the `.drv` files it writes and reads them back from here.
    fn read_file(&self, _path: &StorePath, _sub: &str) -> Option<Result<Vec<u8>, String>> {
        None
    }
    /// Make every write so far durable (a sink may batch them).
    fn flush(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What a [`MemoryStore`] holds for a store path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredObject {
    Text { contents: Vec<u8>, refs: BTreeSet<StorePath> },
    Derivation { aterm: Vec<u8>, refs: BTreeSet<StorePath> },
    HostPath { src: PathBuf, ca: CAHash },
}

/// Keeps every write in memory (the default until the ferrix store lands).
#[derive(Default)]
pub struct MemoryStore {
    pub objects: RefCell<BTreeMap<StorePath, StoredObject>>,
}

impl StoreSink for MemoryStore {
    fn add_text(&self, path: &StorePath, contents: &[u8], refs: &BTreeSet<StorePath>) -> Result<(), String> {
        self.objects
            .borrow_mut()
            .insert(path.clone(), StoredObject::Text { contents: contents.to_vec(), refs: refs.clone() });
        Ok(())
    }
    fn add_derivation(&self, path: &StorePath, aterm: Vec<u8>, refs: BTreeSet<StorePath>) -> Result<(), String> {
        self.objects.borrow_mut().insert(path.clone(), StoredObject::Derivation { aterm, refs });
        Ok(())
    }
    fn add_host_path(
        &self,
        path: &StorePath,
        src: &Path,
        ca: &CAHash,
        _filter: Option<&dyn Fn(&Path) -> bool>,
    ) -> Result<(), String> {
        self.objects
            .borrow_mut()
            .insert(path.clone(), StoredObject::HostPath { src: src.to_path_buf(), ca: ca.clone() });
        Ok(())
    }
    fn read_file(&self, path: &StorePath, sub: &str) -> Option<Result<Vec<u8>, String>> {
        let objects = self.objects.borrow();
        Some(match objects.get(path)? {
            StoredObject::Text { contents, .. } | StoredObject::Derivation { aterm: contents, .. } if sub.is_empty() => {
                Ok(contents.clone())
            }
            StoredObject::Text { .. } | StoredObject::Derivation { .. } => Err(format!("'{path}{sub}' is not in the store")),
            // FIXME: a filtered import reads through to excluded host files
            StoredObject::HostPath { src, .. } => {
                let p = format!("{}{sub}", src.display());
                std::fs::read(&p).map_err(|e| format!("opening file '{p}': {e}"))
            }
        })
    }
}

/// Writes text files and `.drv` files as `<root>/<hash>-<name>`; imported
/// host paths are only recorded (not copied) in `imported.tsv`.
pub struct DirStore {
    pub root: PathBuf,
}

impl DirStore {
    fn write(&self, path: &StorePath, bytes: &[u8]) -> Result<(), String> {
        std::fs::create_dir_all(&self.root).map_err(|e| format!("creating '{}': {e}", self.root.display()))?;
        let dest = self.root.join(path.to_string());
        let tmp = self.root.join(format!(".tmp-{path}"));
        std::fs::write(&tmp, bytes).map_err(|e| format!("writing '{}': {e}", tmp.display()))?;
        std::fs::rename(&tmp, &dest).map_err(|e| format!("writing '{}': {e}", dest.display()))
    }
}

impl StoreSink for DirStore {
    fn add_text(&self, path: &StorePath, contents: &[u8], _refs: &BTreeSet<StorePath>) -> Result<(), String> {
        self.write(path, contents)
    }
    fn add_derivation(&self, path: &StorePath, aterm: Vec<u8>, _refs: BTreeSet<StorePath>) -> Result<(), String> {
        self.write(path, &aterm)
    }
    fn read_file(&self, path: &StorePath, sub: &str) -> Option<Result<Vec<u8>, String>> {
        let p = self.root.join(path.to_string());
        if !sub.is_empty() || !p.is_file() {
            return None;
        }
        Some(std::fs::read(&p).map_err(|e| format!("opening file '{}': {e}", p.display())))
    }
    fn add_host_path(
        &self,
        path: &StorePath,
        src: &Path,
        ca: &CAHash,
        _filter: Option<&dyn Fn(&Path) -> bool>,
    ) -> Result<(), String> {
        use std::io::Write;
        std::fs::create_dir_all(&self.root).map_err(|e| format!("creating '{}': {e}", self.root.display()))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("imported.tsv"))
            .map_err(|e| e.to_string())?;
        writeln!(f, "{path}\t{}\t{ca}", src.display()).map_err(|e| e.to_string())
    }
}

/// Everything the glue knows about store paths made or read during
/// evaluation. Derivations made in this evaluation are not kept here: the
/// sink holds their `.drv` files (read back on the rare lookups, see
/// [`StoreSink::read_file`]) and only their modulo hashes stay in memory.
#[derive(Default)]
pub struct Known {
    /// References of text and imported paths made during evaluation and of
    /// `.drv` files read from the host store (for closures of `=` contexts).
    pub refs: BTreeMap<StorePath, BTreeSet<StorePath>>,
    /// `.drv` files read from the host's store directory, as ATerm bytes.
    pub drvs: BTreeMap<StorePath, Box<[u8]>>,
    /// Per `.drv` path (keyed by hash part): its
    /// `hashDerivationModulo(drv, mask_outputs = false)`, and whether this
    /// evaluation wrote it to the sink (one map: a chain of 10 000
    /// derivations keeps 10 000 entries to the end).
    pub modulo: FxHashMap<[u8; HASH_PART_LEN], ([u8; 32], bool)>,
}

/// The key [`Known`] uses for a store path.
pub fn key(p: &StorePath) -> [u8; HASH_PART_LEN] {
    p.hash_part().as_bytes().try_into().expect("a store path's hash part has HASH_PART_LEN bytes")
}

/// Display helper.
pub fn show(dir: &StoreDir, p: &StorePath) -> String {
    dir.display(p)
}
