//! Copying store paths between a ferrix store and a binary cache.
//!
//! [`copy_from`] fetches narinfos (and, with `closure`, those of every
//! reference), checks signatures against the trusted keys, then imports the
//! NARs references first: each NAR is decompressed and ingested into castore
//! as a stream, its NAR hash and size (and the file hash and size, when the
//! narinfo gives them) are checked, and only then is the path registered.
//! [`copy_to`] writes a closure into a cache: uncompressed NARs
//! (`Compression: none`, streamed from castore) first, each path's narinfo
//! after its NAR, references before referrers, as `nix copy --to` does.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::mpsc;

use ferrix_formats::hash::Encoding;
use ferrix_formats::{
    CAHash, CaMethod, HashAlgo, Hasher, NarInfo, NixHash, PublicKey, SecretKey, StoreDir, StorePath,
};
use ferrix_store::import::{IngestedNar, NarExpect, ingest_nar};
use ferrix_store::nar::write_nar;
use ferrix_store::{PathInfo, Store};

use crate::chunked::ChunkedWriter;
use crate::compression::{Compression, finish_decoder};
use crate::error::{Error, Result};
use crate::remote::Remote;

/// Options of [`copy_from`].
#[derive(Debug, Clone, Default)]
pub struct FromOptions {
    /// Also copy everything the paths refer to, recursively.
    pub closure: bool,
    /// If set, every path must carry a signature by one of these keys (a
    /// `fixed:r:sha256` path whose content address is its NAR hash needs
    /// none: its NAR hash is checked anyway).
    pub trusted_keys: Option<Vec<PublicKey>>,
}

/// What happened to one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub path: StorePath,
    /// Already present at the destination with the same NAR hash.
    pub skipped: bool,
}

/// The narinfo of `path` in the cache, checked to describe that path.
pub fn fetch_narinfo(remote: &Remote, store_dir: &StoreDir, path: &StorePath) -> Result<NarInfo> {
    let rel = format!("{}.narinfo", path.hash_part());
    let text = remote
        .get_text(&rel)?
        .ok_or_else(|| Error::NotInCache(store_dir.display(path)))?;
    let ni = NarInfo::parse(&text, store_dir).map_err(|source| Error::NarInfo {
        what: remote.describe(&rel),
        source,
    })?;
    if ni.store_path != *path {
        return Err(Error::Cache(format!(
            "{} describes {}, not {}",
            remote.describe(&rel),
            store_dir.display(&ni.store_path),
            store_dir.display(path)
        )));
    }
    if ni.nar_hash.algo() != HashAlgo::Sha256 {
        return Err(Error::Cache(format!(
            "{}: NarHash must be sha256",
            remote.describe(&rel)
        )));
    }
    Ok(ni)
}

/// Checks `ni`'s signatures against `keys` (see [`FromOptions::trusted_keys`]).
pub fn check_trust(ni: &NarInfo, store_dir: &StoreDir, keys: &[PublicKey]) -> Result<()> {
    if ni.count_valid_sigs(store_dir, keys) > 0 {
        return Ok(());
    }
    if let Some(CAHash {
        method: CaMethod::Recursive,
        hash,
    }) = &ni.ca
        && *hash == ni.nar_hash
    {
        return Ok(());
    }
    Err(Error::Untrusted {
        path: store_dir.display(&ni.store_path),
    })
}

/// Reads through to a hasher, counting bytes.
struct Hashing<'a, R: ?Sized> {
    inner: &'a mut R,
    hasher: &'a mut Hasher,
    count: &'a mut u64,
}

impl<R: Read + ?Sized> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        *self.count += n as u64;
        Ok(n)
    }
}

/// A NAR file ingested into castore (not registered).
#[derive(Debug, Clone)]
pub struct IngestedFile {
    pub nar: IngestedNar,
    /// sha256 and size of the file as it was read (compressed).
    pub file_hash: NixHash,
    pub file_size: u64,
}

/// Reads one (compressed) NAR file from `raw` to its end, ingesting the NAR
/// into castore and checking `expect`. Nothing is registered; a failure
/// leaves at most unreferenced castore objects behind.
pub fn ingest_file(
    store: &Store,
    raw: &mut (dyn Read + Send),
    compression: Compression,
    expect: &NarExpect,
    what: &str,
) -> Result<IngestedFile> {
    let mut hasher = Hasher::new(HashAlgo::Sha256);
    let mut count = 0u64;
    let nar = {
        let hashing = Hashing {
            inner: &mut *raw,
            hasher: &mut hasher,
            count: &mut count,
        };
        let mut r = BufReader::with_capacity(1 << 16, compression.decoder(hashing)?);
        let nar = ingest_nar(
            &*store.blobs,
            &*store.directories,
            &mut r,
            expect,
            &mut |_| {},
        )
        .map_err(|e| add_context(e, what))?;
        if !r
            .fill_buf()
            .map_err(|e| Error::io(what.to_owned(), e))?
            .is_empty()
        {
            return Err(Error::Cache(format!(
                "{what}: trailing data after the end of the NAR"
            )));
        }
        finish_decoder(r, what)?;
        nar
    };
    // Whatever follows the compressed stream still counts for the file hash.
    let mut rest = Hashing {
        inner: raw,
        hasher: &mut hasher,
        count: &mut count,
    };
    io::copy(&mut rest, &mut io::sink()).map_err(|e| Error::io(what.to_owned(), e))?;
    Ok(IngestedFile {
        nar,
        file_hash: hasher.finish(),
        file_size: count,
    })
}

fn add_context(e: ferrix_store::Error, what: &str) -> Error {
    match e {
        ferrix_store::Error::Io { context, source } => Error::Io {
            context: format!("{what}: {context}"),
            source,
        },
        e @ (ferrix_store::Error::Nar(_)
        | ferrix_store::Error::NarHashMismatch { .. }
        | ferrix_store::Error::NarSizeMismatch { .. }) => Error::Cache(format!("{what}: {e}")),
        e => Error::Store(e),
    }
}

/// The [`PathInfo`] a verified NAR and its narinfo make.
pub fn path_info(ni: &NarInfo, nar: &IngestedNar) -> PathInfo {
    PathInfo {
        store_path: ni.store_path.clone(),
        node: nar.root.clone(),
        nar_size: nar.nar_size,
        nar_sha256: nar.nar_sha256,
        references: ni.references.clone(),
        deriver: ni.deriver.clone(),
        signatures: ni.sigs.iter().cloned().collect(),
        ca: ni.ca.clone(),
    }
}

/// Fetches and registers the path `ni` describes (references must already
/// be in the store). The NAR is checked before anything is registered.
pub fn import_path(store: &Store, remote: &Remote, ni: &NarInfo) -> Result<PathInfo> {
    let sd = &store.store_dir;
    let what = remote.describe(&ni.url);
    for r in &ni.references {
        if *r != ni.store_path && store.path_info.get_path(r)?.is_none() {
            return Err(Error::Cache(format!(
                "cannot add {}: its reference {} is not in the store",
                sd.display(&ni.store_path),
                sd.display(r)
            )));
        }
    }
    let compression = Compression::from_name(ni.compression_or_default())?;
    let mut raw = remote
        .get(&ni.url)?
        .ok_or_else(|| Error::Cache(format!("{what}: the cache has no such file")))?;
    let expect = NarExpect {
        sha256: Some(ni.nar_hash.clone()),
        size: Some(ni.nar_size),
    };
    let got = ingest_file(store, &mut *raw, compression, &expect, &what)?;
    if let Some(h) = &ni.file_hash
        && *h != got.file_hash
    {
        return Err(Error::Cache(format!(
            "{what}: file hash mismatch: narinfo says {}, got {}",
            h.to_typed(Encoding::Nix32),
            got.file_hash.to_typed(Encoding::Nix32)
        )));
    }
    if let Some(n) = ni.file_size
        && n != got.file_size
    {
        return Err(Error::Cache(format!(
            "{what}: file size mismatch: narinfo says {n} bytes, got {}",
            got.file_size
        )));
    }
    Ok(store.path_info.put(path_info(ni, &got.nar))?)
}

/// Copies `paths` (and with `closure` their closures) from `remote` into
/// `store`, references first. Paths already in the store with the same NAR
/// hash are skipped.
pub fn copy_from(
    store: &Store,
    remote: &Remote,
    paths: &[StorePath],
    opts: &FromOptions,
) -> Result<Vec<Copied>> {
    let sd = &store.store_dir;
    check_cache_info(remote, sd)?;
    let mut infos: BTreeMap<StorePath, NarInfo> = BTreeMap::new();
    let mut queue: Vec<StorePath> = paths.to_vec();
    while let Some(p) = queue.pop() {
        if infos.contains_key(&p) {
            continue;
        }
        let ni = fetch_narinfo(remote, sd, &p)?;
        if let Some(keys) = &opts.trusted_keys {
            check_trust(&ni, sd, keys)?;
        }
        if opts.closure {
            queue.extend(
                ni.references
                    .iter()
                    .filter(|r| !infos.contains_key(*r))
                    .cloned(),
            );
        }
        infos.insert(p, ni);
    }
    let order = topo_order(infos.keys().cloned(), |p| {
        infos[p]
            .references
            .iter()
            .filter(|r| infos.contains_key(*r))
            .cloned()
            .collect()
    });
    let mut out = Vec::new();
    for p in order {
        let ni = &infos[&p];
        let have = store.path_info.get_path(&p)?;
        if have.is_some_and(|h| h.nar_sha256 == ni.nar_hash.digest()) {
            out.push(Copied {
                path: p,
                skipped: true,
            });
            continue;
        }
        import_path(store, remote, ni)?;
        out.push(Copied {
            path: p,
            skipped: false,
        });
    }
    Ok(out)
}

/// The cache's `nix-cache-info`, if any, must name this store directory.
fn check_cache_info(remote: &Remote, sd: &StoreDir) -> Result<()> {
    if let Some(text) = remote.get_text("nix-cache-info")? {
        for line in text.lines() {
            if let Some(dir) = line.strip_prefix("StoreDir: ")
                && dir != sd.as_str()
            {
                return Err(Error::Cache(format!(
                    "{} is a cache for store directory {dir}, not {}",
                    remote.describe(""),
                    sd.as_str()
                )));
            }
        }
    }
    Ok(())
}

/// `items` ordered so that every item comes after the items `deps` names.
fn topo_order<T: Ord + Clone>(
    items: impl IntoIterator<Item = T>,
    deps: impl Fn(&T) -> Vec<T>,
) -> Vec<T> {
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for item in items {
        // Iterative post-order DFS (closures can be deep).
        let mut stack = vec![(item, false)];
        while let Some((t, expanded)) = stack.pop() {
            if done.contains(&t) {
                continue;
            }
            if expanded {
                done.insert(t.clone());
                out.push(t);
            } else {
                stack.push((t.clone(), true));
                for d in deps(&t) {
                    if d != t && !done.contains(&d) {
                        stack.push((d, false));
                    }
                }
            }
        }
    }
    out
}

/// Options of [`copy_to`].
#[derive(Debug, Clone, Default)]
pub struct ToOptions {
    /// Also copy everything the paths refer to, recursively.
    pub closure: bool,
    /// Add a signature by this key to each narinfo written.
    pub sign_key: Option<SecretKey>,
}

/// The narinfo a ferrix store gives for one of its paths: an uncompressed
/// NAR at `nar/<nar hash>.nar` (so the file hash is the NAR hash), the
/// recorded signatures, plus one by `sign_key` if given.
pub fn narinfo_for(info: &PathInfo, sd: &StoreDir, sign_key: Option<&SecretKey>) -> NarInfo {
    let nar_hash = info.nar_hash();
    let mut ni = NarInfo {
        store_path: info.store_path.clone(),
        url: nar_url(&nar_hash, Compression::None),
        compression: Some("none".into()),
        file_hash: Some(nar_hash.clone()),
        file_size: Some(info.nar_size),
        nar_hash,
        nar_size: info.nar_size,
        references: info.references.clone(),
        deriver: info.deriver.clone(),
        system: None,
        sigs: info.signatures.iter().cloned().collect(),
        ca: info.ca.clone(),
        extra: Vec::new(),
    };
    if let Some(k) = sign_key {
        // Only fails for a zero NAR size, which no NAR has.
        let _ = ni.sign(sd, k);
    }
    ni
}

/// `nar/<nix32 hash>.nar[.ext]`.
pub fn nar_url(file_hash: &NixHash, c: Compression) -> String {
    format!(
        "nar/{}.nar{}",
        file_hash.encode(Encoding::Nix32),
        c.extension()
    )
}

/// The closure of `paths` in `store`, references before referrers.
pub fn store_closure(store: &Store, paths: &[StorePath]) -> Result<Vec<PathInfo>> {
    let mut infos: BTreeMap<StorePath, PathInfo> = BTreeMap::new();
    let mut queue = paths.to_vec();
    while let Some(p) = queue.pop() {
        if infos.contains_key(&p) {
            continue;
        }
        let info = store.path_info.get_path(&p)?.ok_or_else(|| {
            Error::Cache(format!(
                "{} is not in the store",
                store.store_dir.display(&p)
            ))
        })?;
        queue.extend(info.references.iter().cloned());
        infos.insert(p, info);
    }
    let order = topo_order(infos.keys().cloned(), |p| {
        infos[p].references.iter().cloned().collect()
    });
    Ok(order.into_iter().map(|p| infos[&p].clone()).collect())
}

/// Copies `paths` (with `closure`, their closures) from `store` into
/// `remote`. Paths whose narinfo the cache already has are skipped.
pub fn copy_to(
    store: &Store,
    remote: &Remote,
    paths: &[StorePath],
    opts: &ToOptions,
) -> Result<Vec<Copied>> {
    let sd = &store.store_dir;
    let infos =
        if opts.closure {
            store_closure(store, paths)?
        } else {
            let mut v = Vec::new();
            for p in paths {
                v.push(store.path_info.get_path(p)?.ok_or_else(|| {
                    Error::Cache(format!("{} is not in the store", sd.display(p)))
                })?);
            }
            v
        };
    check_cache_info(remote, sd)?;
    if !remote.exists("nix-cache-info")? {
        let text = format!("StoreDir: {}\n", sd.as_str());
        remote.put(
            "nix-cache-info",
            &mut text.as_bytes(),
            "text/x-nix-cache-info",
        )?;
    }
    let mut out = Vec::new();
    for info in infos {
        let rel = format!("{}.narinfo", info.store_path.hash_part());
        if remote.exists(&rel)? {
            out.push(Copied {
                path: info.store_path,
                skipped: true,
            });
            continue;
        }
        let ni = narinfo_for(&info, sd, opts.sign_key.as_ref());
        upload_nar(store, remote, &info, &ni.url)?;
        remote.put(&rel, &mut ni.to_text(sd).as_bytes(), "text/x-nix-narinfo")?;
        out.push(Copied {
            path: info.store_path,
            skipped: false,
        });
    }
    Ok(out)
}

/// Streams `info`'s NAR, rendered from castore, to `rel` in the cache. A
/// rendering failure reaches the upload as a read error, so a damaged store
/// path never ends up as a short file in the cache.
fn upload_nar(store: &Store, remote: &Remote, info: &PathInfo, rel: &str) -> Result<()> {
    let (tx, rx) = mpsc::sync_channel::<Chunk>(4);
    std::thread::scope(|s| {
        let render = s.spawn(move || {
            let chunks = tx.clone();
            let w = ChunkedWriter::new(move |chunk| {
                chunks
                    .send(Chunk::Data(chunk))
                    .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
            });
            let res =
                write_nar(&*store.blobs, &*store.directories, &info.node, w).and_then(|mut w| {
                    w.flush().map_err(|e| ferrix_store::Error::Io {
                        context: "writing NAR".into(),
                        source: e,
                    })
                });
            let _ = tx.send(match &res {
                Ok(()) => Chunk::Done,
                Err(e) => Chunk::Failed(e.to_string()),
            });
            res
        });
        let mut r = ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            done: false,
        };
        let put = remote.put(rel, &mut r, "application/x-nix-nar");
        drop(r);
        let rendered = render.join().expect("NAR rendering thread does not panic");
        // A failed upload (an HTTP status, or the rendering error it read)
        // says more than the renderer, which then only sees the upload stop.
        put?;
        rendered.map_err(Error::from)
    })
}

enum Chunk {
    Data(Vec<u8>),
    Done,
    Failed(String),
}

struct ChunkReader {
    rx: mpsc::Receiver<Chunk>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Chunk::Data(d)) => {
                    self.cur = d;
                    self.pos = 0;
                }
                Ok(Chunk::Done) => self.done = true,
                Ok(Chunk::Failed(e)) => return Err(io::Error::other(e)),
                Err(_) => return Err(io::Error::other("NAR rendering stopped")),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
