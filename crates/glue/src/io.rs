//! [`StoreIO`]: the evaluator's I/O with a store behind it. Reads go to the
//! host file system; `import_path` computes the path `nix-store --add` would
//! give (NAR sha256, `source` path named after the basename) and hands the
//! import to the [`StoreSink`]. It also carries the glue's per-evaluation
//! state (known paths and derivations), reachable from builtins through
//! [`store_io`].

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ferrix_eval::{Error, Eval, EvalIO, FileType, HostIO, Result};
use ferrix_formats::nar::{NarWriter, Node};
use ferrix_formats::{CAHash, CaMethod, HashAlgo, Hasher, NixHash, StoreDir, StorePath};

use crate::store::{Known, StoreSink};

/// An [`EvalIO`] backed by a store (through [`StoreSink`]).
pub struct StoreIO {
    host: HostIO,
    pub store_dir: StoreDir,
    pub sink: Box<dyn StoreSink>,
    pub known: RefCell<Known>,
    /// Fetched store paths and where their content is on the host.
    pub fetched: RefCell<BTreeMap<StorePath, Fetched>>,
    /// (url, name, unpack) → (store path, hash) of fetches already done.
    pub fetch_cache: RefCell<BTreeMap<FetchKey, (StorePath, NixHash)>>,
}

/// A fetch as [`StoreIO::fetch_cache`] knows it: url, name, and whether it
/// is unpacked.
pub type FetchKey = (String, String, bool);

/// Content fetched during this evaluation: `root` inside a temporary
/// directory that lives as long as the evaluator.
pub struct Fetched {
    pub root: PathBuf,
    pub _dir: tempfile::TempDir,
}

impl StoreIO {
    pub fn new(store_dir: StoreDir, sink: Box<dyn StoreSink>) -> StoreIO {
        StoreIO {
            host: HostIO,
            store_dir,
            sink,
            known: RefCell::new(Known::default()),
            fetched: RefCell::default(),
            fetch_cache: RefCell::default(),
        }
    }

    /// Make every store write so far durable (the sink may batch them).
    pub fn flush(&self) -> Result<()> {
        self.sink.flush().map_err(Error::eval)
    }

    /// Register a store path with its references.
    pub fn register(&self, p: &StorePath, refs: BTreeSet<StorePath>) {
        self.known.borrow_mut().refs.insert(p.clone(), refs);
    }

    /// The host path holding `path` if it lies in fetched content.
    fn fetched_host_path(&self, path: &str) -> Option<String> {
        let fetched = self.fetched.borrow();
        if fetched.is_empty() {
            return None;
        }
        let (sp, sub) = self.store_dir.parse_prefix(path).ok()?;
        let f = fetched.get(&sp.to_owned())?;
        Some(format!("{}{sub}", f.root.display()))
    }

    /// Import a host path under `name` with the given method, keeping only
    /// entries below the root for which `filter` says yes. Returns the store path.
    pub fn import(
        &self,
        src: &str,
        name: &str,
        method: CaMethod,
        expected: Option<&NixHash>,
        filter: &mut dyn FnMut(&str, FileType) -> Result<bool>,
    ) -> Result<StorePath> {
        // Entries the filter rejected (their subtrees are never visited), so
        // the sink can copy exactly what was hashed.
        let mut excluded: HashSet<String> = HashSet::new();
        let hash = match method {
            CaMethod::Recursive => {
                let algo = expected.map(|h| h.algo()).unwrap_or(HashAlgo::Sha256);
                let mut record = |p: &str, t: FileType| -> Result<bool> {
                    let keep = filter(p, t)?;
                    if !keep {
                        excluded.insert(p.to_string());
                    }
                    Ok(keep)
                };
                nar_hash_filtered(src, algo, &mut record)?
            }
            _ => {
                let data = std::fs::read(src).map_err(|e| Error::eval(format!("opening file '{src}': {e}")))?;
                let algo = expected.map(|h| h.algo()).unwrap_or(HashAlgo::Sha256);
                algo.digest(&data)
            }
        };
        if let Some(e) = expected
            && *e != hash
        {
            return Err(Error::eval(format!(
                "hash mismatch in file downloaded from '{src}':\n  specified: {}\n  got:       {}",
                e.to_sri(),
                hash.to_sri()
            )));
        }
        let ca = CAHash::new(method, hash);
        let sp = self.store_dir.make_ca_path(name, &ca).map_err(|e| Error::eval(e.to_string()))?;
        let keep = |p: &Path| !excluded.contains(&*p.to_string_lossy());
        let f: Option<&dyn Fn(&Path) -> bool> = if excluded.is_empty() { None } else { Some(&keep) };
        self.sink.add_host_path(&sp, Path::new(src), &ca, f).map_err(Error::eval)?;
        self.register(&sp, BTreeSet::new());
        Ok(sp)
    }
}

/// The glue's state behind an evaluator built by [`crate::new_eval`].
pub fn store_io(ev: &Eval) -> Result<&StoreIO> {
    ev.io
        .as_any()
        .and_then(|a| a.downcast_ref::<StoreIO>())
        .ok_or_else(|| Error::eval("this builtin needs a store: build the evaluator with ferrix_glue::new_eval"))
}

/// The last path component (what `nix-store --add` names the path).
pub fn base_name(path: &str) -> &str {
    let p = path.trim_end_matches('/');
    p.rsplit('/').next().unwrap_or(p)
}

/// Where `<nix/…>` resolves: files bundled with the glue, as C++ Nix serves
/// its corepkgs from memory.
pub const COREPKGS: &str = "/__corepkgs__";

/// C++ Nix 2.8's `<nix/fetchurl.nix>` (the exact text matters: it shapes
/// the fixed-output derivations it makes).
pub const FETCHURL_NIX: &str = include_str!("fetchurl.nix");

fn corepkg(path: &str) -> Option<&'static str> {
    match path.strip_prefix(COREPKGS)? {
        "/fetchurl.nix" => Some(FETCHURL_NIX),
        _ => None,
    }
}

impl EvalIO for StoreIO {
    fn read_file(&self, path: &str) -> std::result::Result<Vec<u8>, String> {
        if let Some(text) = corepkg(path) {
            return Ok(text.as_bytes().to_vec());
        }
        if let Some(p) = self.fetched_host_path(path) {
            return self.host.read_file(&p);
        }
        if let Ok((sp, sub)) = self.store_dir.parse_prefix(path)
            && let Some(r) = self.sink.read_file(&sp.to_owned(), sub)
        {
            return r;
        }
        self.host.read_file(path)
    }
    fn read_dir(&self, path: &str) -> std::result::Result<Vec<(String, FileType)>, String> {
        if let Some(p) = self.fetched_host_path(path) {
            return self.host.read_dir(&p);
        }
        self.host.read_dir(path)
    }
    fn path_exists(&self, path: &str) -> bool {
        corepkg(path).is_some()
            || self.fetched_host_path(path).is_some_and(|p| self.host.path_exists(&p))
            || self.host.path_exists(path)
            || self
                .store_dir
                .parse_prefix(path)
                .is_ok_and(|(sp, sub)| self.sink.read_file(&sp.to_owned(), sub).is_some_and(|r| r.is_ok()))
    }
    fn file_type(&self, path: &str) -> std::result::Result<FileType, String> {
        if corepkg(path).is_some() {
            return Ok(FileType::Regular);
        }
        if let Some(p) = self.fetched_host_path(path) {
            return self.host.file_type(&p);
        }
        self.host.file_type(path)
    }
    fn import_path(&self, path: &str) -> std::result::Result<String, String> {
        let name = base_name(path).to_string();
        if name.ends_with(".drv") {
            return Err("file names are not allowed to end in '.drv'".into());
        }
        if !self.host.path_exists(path) {
            return Err(format!("path '{path}' does not exist"));
        }
        let sp = self
            .import(path, &name, CaMethod::Recursive, None, &mut |_, _| Ok(true))
            .map_err(|e| e.msg().to_string())?;
        Ok(self.store_dir.display(&sp))
    }
    fn canonicalize(&self, path: &str) -> std::result::Result<String, String> {
        if corepkg(path).is_some() {
            return Ok(path.to_string());
        }
        self.host.canonicalize(path)
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
    fn search_path_fallback(&self, path: &str) -> Option<String> {
        let p = format!("{COREPKGS}/{}", path.strip_prefix("nix/")?);
        corepkg(&p).map(|_| p)
    }
}

fn ioe(path: &str, e: io::Error) -> Error {
    Error::eval(format!("while importing '{path}': {e}"))
}

/// NAR hash of a host tree, asking `filter(path, type)` for every entry
/// below the root (not the root itself), in NAR (sorted) order.
pub fn nar_hash_filtered(
    root: &str,
    algo: HashAlgo,
    filter: &mut dyn FnMut(&str, FileType) -> Result<bool>,
) -> Result<NixHash> {
    let hasher = HashSink(Hasher::new(algo));
    let mut nar = NarWriter::new(io::BufWriter::with_capacity(1 << 16, hasher)).map_err(|e| ioe(root, e))?;
    dump(root, nar.root(), filter)?;
    let w = nar.into_inner();
    let w = w.into_inner().map_err(|e| ioe(root, e.into_error()))?;
    Ok(w.0.finish())
}

struct HashSink(Hasher);
impl Write for HashSink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn file_type_of(md: &std::fs::Metadata) -> FileType {
    let ft = md.file_type();
    if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_dir() {
        FileType::Directory
    } else if ft.is_file() {
        FileType::Regular
    } else {
        FileType::Unknown
    }
}

fn dump<W: Write>(path: &str, node: Node<'_, W>, filter: &mut dyn FnMut(&str, FileType) -> Result<bool>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::symlink_metadata(path).map_err(|e| ioe(path, e))?;
    match file_type_of(&md) {
        FileType::Regular => {
            let mut f = std::fs::File::open(path).map_err(|e| ioe(path, e))?;
            let exec = md.permissions().mode() & 0o100 != 0;
            // no bigger than the file: most sources are small, and a zeroed
            // 64 KiB buffer per file cost more than hashing them
            let mut buf = vec![0u8; md.len().clamp(1, 1 << 16) as usize];
            node.file_with_buffer(exec, md.len(), &mut f as &mut dyn Read, &mut buf).map_err(|e| ioe(path, e))
        }
        FileType::Symlink => {
            use std::os::unix::ffi::OsStrExt;
            let t = std::fs::read_link(path).map_err(|e| ioe(path, e))?;
            node.symlink(t.as_os_str().as_bytes()).map_err(|e| ioe(path, e))
        }
        FileType::Directory => {
            use std::os::unix::ffi::OsStrExt;
            let mut names: Vec<Vec<u8>> = std::fs::read_dir(path)
                .map_err(|e| ioe(path, e))?
                .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
                .collect::<io::Result<_>>()
                .map_err(|e| ioe(path, e))?;
            names.sort();
            let mut dir = node.directory().map_err(|e| ioe(path, e))?;
            for n in names {
                let child = format!("{}/{}", path.trim_end_matches('/'), String::from_utf8_lossy(&n));
                let cmd = std::fs::symlink_metadata(&child).map_err(|e| ioe(&child, e))?;
                if !filter(&child, file_type_of(&cmd))? {
                    continue;
                }
                let entry = dir.entry(&n).map_err(|e| ioe(&child, e))?;
                dump(&child, entry, filter)?;
            }
            dir.close().map_err(|e| ioe(path, e))
        }
        FileType::Unknown => Err(Error::eval(format!("file '{path}' has an unsupported type"))),
    }
}
