//! Embedded backend (`redb:///path`): one redb database file (blob chunk
//! lists, directories and an index of chunks) plus, beside it, an
//! append-only chunk file (`path` with the extension `.chunks`) holding the
//! chunk bytes.
//!
//! Why chunk bytes live outside redb: redb rounds every value up to a power
//! of two pages, so a 1 MiB chunk took 2 MiB and was written twice, and its
//! cache held an import's dirty pages in memory. The chunk file is written
//! once, with `pwrite` at offsets reserved atomically (so writers run in
//! parallel), and redb maps each chunk digest to its (offset, length).
//!
//! Every blob close and directory put is one all-or-nothing transaction. A
//! directory put (and [`BlobService::flush`]) first syncs the chunk file,
//! then commits with fsync, which also makes every earlier blob commit
//! durable; blob closes alone skip both, so ingesting many small files does
//! not pay one fsync per file. A crash can lose blobs closed since the last
//! durable commit, but never a blob that a stored directory points to; bytes
//! the chunk file got after the last durable commit are unreferenced and
//! ignored (new chunks are appended after them). Closing the store (dropping
//! its last handle) makes everything durable. Only one process (or handle)
//! may have the database open; others get [`Error::StoreLocked`].

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redb::{Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::blob::{self, ChunkData, ChunkRef, ChunkStore, SmallBlob, decode_chunks, encode_chunks, total_len};
use crate::directory::{Directory, check_references};
use crate::error::{Error, Result};
use crate::{B3Digest, BlobReader, BlobService, BlobWriter, DirectoryService};

use super::Services;

/// chunk digest → where its bytes are in the chunk file: u64 LE offset,
/// u32 LE length
const CHUNKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("chunk_locations");
/// blob digest → chunk list (see `blob::encode_chunks`)
const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blobs");
/// directory digest → canonical encoding
const DIRS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("directories");

fn db_err(e: impl Into<redb::Error>) -> Error {
    Error::storage(e.into())
}

/// An open redb store file; hands out the blob and directory services that
/// share it.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    path: PathBuf,
    /// The chunk file, and the offset where the next chunk goes.
    chunks: File,
    /// The same file opened with `O_DIRECT`, for large aligned chunks (see
    /// [`Inner::append`]); `None` where the filesystem refuses it.
    direct: Option<File>,
    /// Reused page-aligned buffers for `direct` writes.
    aligned: Mutex<Vec<Vec<Page>>>,
    chunks_path: PathBuf,
    end: AtomicU64,
    /// Set after a commit without fsync; cleared when a durable commit starts.
    dirty: AtomicBool,
    /// Chunks whose bytes are in the chunk file but whose locations are not
    /// indexed yet: written by `put_chunks` for a blob still being written,
    /// indexed by that blob's commit. (A writer dropped without closing
    /// leaves its entries here until the store is closed.)
    staged: Mutex<HashMap<B3Digest, [u8; LOCATION_LEN]>>,
}

/// Length of a chunk location in the index.
const LOCATION_LEN: usize = 12;

fn location(offset: u64, len: u32) -> [u8; LOCATION_LEN] {
    let mut out = [0; LOCATION_LEN];
    out[..8].copy_from_slice(&offset.to_le_bytes());
    out[8..].copy_from_slice(&len.to_le_bytes());
    out
}

fn parse_location(digest: &B3Digest, v: &[u8]) -> Result<(u64, u32)> {
    if v.len() != LOCATION_LEN {
        return Err(Error::Corrupt(format!("chunk {digest} has a malformed location")));
    }
    Ok((
        u64::from_le_bytes(v[..8].try_into().expect("8 bytes")),
        u32::from_le_bytes(v[8..].try_into().expect("4 bytes")),
    ))
}

impl Inner {
    /// Commits nothing, durably, if a non-durable commit may be pending.
    fn flush(&self) -> Result<()> {
        if self.dirty.load(Ordering::SeqCst) {
            let txn = self.db.begin_write().map_err(db_err)?;
            self.commit_durable(txn)?;
        }
        Ok(())
    }

    /// Commits `txn` with fsync, which also persists every earlier commit,
    /// after syncing the chunk file: every chunk the index names (its bytes
    /// were written before its location was inserted) is on disk first.
    fn commit_durable(&self, txn: redb::WriteTransaction) -> Result<()> {
        // We hold the write lock: every non-durable commit so far is before ours.
        let was_dirty = self.dirty.swap(false, Ordering::SeqCst);
        let fail = |e: Error| {
            self.dirty.store(true, Ordering::SeqCst);
            e
        };
        if was_dirty {
            self.chunks
                .sync_data()
                .map_err(|e| fail(Error::io(format!("syncing {}", self.chunks_path.display()), e)))?;
        }
        txn.commit().map_err(|e| fail(db_err(e)))
    }

    /// Appends `data` to the chunk file and returns its location.
    ///
    /// A large chunk whose length is a whole number of pages goes at a
    /// page-aligned offset (the gap before it stays unreferenced) and is
    /// written with `O_DIRECT` (from the chunk's own memory when that is
    /// page-aligned, as shared chunk buffers are, else through a reused
    /// aligned copy): straight to disk, without first copying it
    /// into freshly allocated page cache, which costs more than hashing it
    /// (and, on VMs whose host backs guest memory lazily, much more). The
    /// sync before the next durable commit still covers it (metadata).
    /// Other chunks are written through the page cache.
    fn append(&self, data: &[u8]) -> Result<[u8; LOCATION_LEN]> {
        let len = u32::try_from(data.len()).map_err(|_| Error::Corrupt("chunk larger than 4 GiB".into()))?;
        let err = |e| Error::io(format!("writing {}", self.chunks_path.display()), e);
        if let Some(direct) = &self.direct
            && direct_size(data)
        {
            let offset = self.reserve(data.len() as u64, PAGE as u64);
            self.dirty.store(true, Ordering::SeqCst);
            let res = if (data.as_ptr() as usize).is_multiple_of(PAGE) {
                // Already page-aligned (a shared chunk buffer): no copy.
                direct.write_all_at(data, offset)
            } else {
                let mut pages = self
                    .aligned
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop()
                    .unwrap_or_default();
                pages.resize_with(data.len() / PAGE, || Page([0; PAGE]));
                let buf = page_bytes(&mut pages);
                buf.copy_from_slice(data);
                let res = direct.write_all_at(buf, offset);
                self.aligned.lock().unwrap_or_else(PoisonError::into_inner).push(pages);
                res
            };
            match res {
                Ok(()) => return Ok(location(offset, len)),
                // Refused after all (an unusual alignment rule): the page
                // cache copy below writes the same bytes at the same place.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.chunks.write_all_at(data, offset).map_err(err)?;
                    return Ok(location(offset, len));
                }
                Err(e) => return Err(err(e)),
            }
        }
        let offset = self.reserve(data.len() as u64, 1);
        self.dirty.store(true, Ordering::SeqCst);
        self.chunks.write_all_at(data, offset).map_err(err)?;
        start_writeback(&self.chunks, offset, data.len());
        Ok(location(offset, len))
    }

    /// Reserves `len` bytes at the end of the chunk file, at an offset that
    /// is a multiple of `align`.
    fn reserve(&self, len: u64, align: u64) -> u64 {
        let mut cur = self.end.load(Ordering::SeqCst);
        loop {
            let start = cur.next_multiple_of(align);
            match self.end.compare_exchange_weak(cur, start + len, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return start,
                Err(now) => cur = now,
            }
        }
    }

    fn read_chunk(&self, digest: &B3Digest, loc: &[u8]) -> Result<Arc<[u8]>> {
        let (offset, len) = parse_location(digest, loc)?;
        let mut buf = vec![0; len as usize];
        self.chunks.read_exact_at(&mut buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::Corrupt(format!("chunk {digest} lies beyond the end of {}", self.chunks_path.display()))
            } else {
                Error::io(format!("reading {}", self.chunks_path.display()), e)
            }
        })?;
        Ok(buf.into())
    }

    /// Stores the chunks the index does not have yet: bytes first (outside
    /// any transaction, so writers do not wait for each other), then their
    /// locations in `txn` (a chunk stored meanwhile by another writer wins;
    /// our copy stays unreferenced).
    fn put_chunks_in(
        &self,
        txn: &redb::WriteTransaction,
        written: &[(B3Digest, [u8; LOCATION_LEN])],
    ) -> Result<()> {
        let mut table = txn.open_table(CHUNKS).map_err(db_err)?;
        for (d, loc) in written {
            if table.get(d.as_bytes()).map_err(db_err)?.is_none() {
                table.insert(d.as_bytes(), loc.as_slice()).map_err(db_err)?;
            }
        }
        Ok(())
    }

    /// Writes the bytes of every chunk in `chunks` that is not indexed yet.
    fn write_new_chunks(&self, chunks: &[(B3Digest, ChunkData)]) -> Result<Vec<(B3Digest, [u8; LOCATION_LEN])>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(CHUNKS).map_err(db_err)?;
        let mut out = Vec::with_capacity(chunks.len());
        // Chunks that can go to disk from their own memory: gathered into one
        // vectored write at one reserved range (fewer, larger disk writes).
        let mut run: Vec<(B3Digest, &[u8])> = Vec::new();
        let staged: Vec<bool> = {
            let staged = self.staged.lock().unwrap_or_else(PoisonError::into_inner);
            chunks.iter().map(|(d, _)| staged.contains_key(d)).collect()
        };
        for ((d, data), staged) in chunks.iter().zip(staged) {
            if !staged
                && table.get(d.as_bytes()).map_err(db_err)?.is_none()
                && !out.iter().any(|(x, _)| x == d)
                && !run.iter().any(|(x, _)| x == d)
            {
                if self.direct.is_some() && direct_size(data) && (data.as_ptr() as usize).is_multiple_of(PAGE) {
                    run.push((*d, data));
                } else {
                    out.push((*d, self.append(data)?));
                }
            }
        }
        if !run.is_empty() {
            out.extend(self.append_direct_run(&run)?);
        }
        Ok(out)
    }

    /// Writes page-aligned whole-page chunks back to back at one page-aligned
    /// range of the chunk file, with `O_DIRECT`, in one vectored write.
    fn append_direct_run(&self, run: &[(B3Digest, &[u8])]) -> Result<Vec<(B3Digest, [u8; LOCATION_LEN])>> {
        let direct = self.direct.as_ref().expect("only called with O_DIRECT available");
        let total: u64 = run.iter().map(|(_, data)| data.len() as u64).sum();
        let start = self.reserve(total, PAGE as u64);
        self.dirty.store(true, Ordering::SeqCst);
        let mut locations = Vec::with_capacity(run.len());
        let mut offsets = Vec::with_capacity(run.len());
        let mut at = start;
        for (d, data) in run {
            let len = u32::try_from(data.len()).map_err(|_| Error::Corrupt("chunk larger than 4 GiB".into()))?;
            locations.push((*d, location(at, len)));
            offsets.push(at);
            at += data.len() as u64;
        }
        let err = |e| Error::io(format!("writing {}", self.chunks_path.display()), e);
        match pwritev_all(direct, run.iter().map(|(_, data)| *data), start) {
            Ok(()) => {}
            // Refused after all: write the same bytes at the same places
            // through the page cache.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                for ((_, data), offset) in run.iter().zip(offsets) {
                    self.chunks.write_all_at(data, offset).map_err(err)?;
                }
            }
            Err(e) => return Err(err(e)),
        }
        Ok(locations)
    }
}

/// Writes every byte of `bufs`, in order, at `offset` (`pwritev`, repeated
/// after a short write).
fn pwritev_all<'a>(file: &File, bufs: impl Iterator<Item = &'a [u8]>, mut offset: u64) -> std::io::Result<()> {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;
    let mut slices: Vec<IoSlice<'_>> = bufs.map(IoSlice::new).collect();
    let mut left = &mut slices[..];
    while !left.is_empty() {
        let count = left.len().min(512) as libc::c_int;
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix; the
        // slices borrow live buffers for the duration of the call.
        let n = unsafe { libc::pwritev(file.as_raw_fd(), left.as_ptr().cast(), count, offset as libc::off_t) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut left, n as usize);
        offset += n as u64;
    }
    Ok(())
}

/// Whether a chunk of this length is written with `O_DIRECT`.
fn direct_size(data: &[u8]) -> bool {
    data.len() >= DIRECT_MIN && data.len().is_multiple_of(PAGE)
}

/// The unit of `O_DIRECT` alignment we use (offsets, lengths, buffers).
const PAGE: usize = 4096;
/// Chunks at least this large go through `O_DIRECT`.
const DIRECT_MIN: usize = 64 * 1024;

/// One page-aligned page of a buffer for `O_DIRECT` writes.
#[repr(C, align(4096))]
struct Page([u8; PAGE]);

fn page_bytes(pages: &mut [Page]) -> &mut [u8] {
    // SAFETY: `Page` is `repr(C)` around a byte array with no padding (its
    // size equals its alignment), so the pages are contiguous initialised
    // bytes, borrowed mutably for as long as `pages` is.
    unsafe { std::slice::from_raw_parts_mut(pages.as_mut_ptr().cast::<u8>(), pages.len() * PAGE) }
}

/// Opens the chunk file a second time with `O_DIRECT`, if the platform and
/// filesystem allow it.
fn open_direct(path: &Path) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` to disk now,
/// without waiting: the sync before the next durable commit then finds most
/// of a large import already written, instead of writing it all while the
/// importer waits. Only a hint (a failure is ignored): durability still comes
/// from that sync.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: usize) {
    use std::os::fd::AsRawFd;
    if len < WRITEBACK_MIN {
        return;
    }
    // SAFETY: sync_file_range only reads its integer arguments; the fd is open
    // for as long as `file` is borrowed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as libc::off64_t, len as libc::off64_t, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File, _: u64, _: usize) {}

/// Smaller appends (small files) are left to the sync before the commit.
#[cfg(target_os = "linux")]
const WRITEBACK_MIN: usize = 256 * 1024;

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort: nothing can report an error from here, and a failure
        // loses only blobs that no stored directory points to yet.
        let _ = self.flush();
    }
}

/// What a redb store holds (for tests and diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    pub chunks: u64,
    pub chunk_bytes: u64,
    pub blobs: u64,
    pub directories: u64,
}

impl RedbStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = match Database::builder().create(path) {
            Ok(db) => db,
            Err(DatabaseError::DatabaseAlreadyOpen) => {
                return Err(Error::StoreLocked { path: path.to_owned() });
            }
            Err(e) => return Err(Error::Storage(format!("opening {}: {e}", path.display()))),
        };
        // Create the tables on first use only: a write commit here would
        // cost every process that opens the store an fsync.
        let exist = db.begin_read().is_ok_and(|r| [CHUNKS, BLOBS, DIRS].into_iter().all(|t| r.open_table(t).is_ok()));
        if !exist {
            let txn = db.begin_write().map_err(db_err)?;
            for t in [CHUNKS, BLOBS, DIRS] {
                txn.open_table(t).map_err(db_err)?;
            }
            txn.commit().map_err(db_err)?;
        }
        // Opened only while we hold the database, so only we append to it.
        let chunks_path = path.with_extension("chunks");
        let chunks = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&chunks_path)
            .map_err(|e| Error::io(format!("opening {}", chunks_path.display()), e))?;
        let end = chunks.metadata().map_err(|e| Error::io(format!("reading {}", chunks_path.display()), e))?.len();
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                path: path.to_owned(),
                direct: open_direct(&chunks_path),
                aligned: Mutex::new(Vec::new()),
                chunks,
                chunks_path,
                end: AtomicU64::new(end),
                dirty: AtomicBool::new(false),
                staged: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn blob_service(&self) -> RedbBlobService {
        RedbBlobService { store: self.clone() }
    }

    pub fn directory_service(&self) -> RedbDirectoryService {
        RedbDirectoryService { store: self.clone() }
    }

    pub fn services(&self) -> Services {
        Services { blobs: Arc::new(self.blob_service()), directories: Arc::new(self.directory_service()) }
    }

    /// Counts what is stored (walks the chunk table).
    pub fn stats(&self) -> Result<StoreStats> {
        let txn = self.inner.db.begin_read().map_err(db_err)?;
        let chunks = txn.open_table(CHUNKS).map_err(db_err)?;
        let mut chunk_bytes = 0;
        for item in chunks.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            chunk_bytes += u64::from(parse_location(&B3Digest::from(*k.value()), v.value())?.1);
        }
        Ok(StoreStats {
            chunks: chunks.len().map_err(db_err)?,
            chunk_bytes,
            blobs: txn.open_table(BLOBS).map_err(db_err)?.len().map_err(db_err)?,
            directories: txn.open_table(DIRS).map_err(db_err)?.len().map_err(db_err)?,
        })
    }

    /// Overwrites a stored chunk's bytes: for tests of corruption detection.
    #[doc(hidden)]
    pub fn corrupt_chunk_for_tests(&self, digest: &B3Digest, data: &[u8]) -> Result<()> {
        let loc = self.inner.append(data)?;
        let txn = self.inner.db.begin_write().map_err(db_err)?;
        txn.open_table(CHUNKS).map_err(db_err)?.insert(digest.as_bytes(), loc.as_slice()).map_err(db_err)?;
        self.inner.commit_durable(txn)
    }
}

fn blob_size(table: &impl ReadableTable<&'static [u8; 32], &'static [u8]>, d: &B3Digest) -> Result<Option<u64>> {
    match table.get(d.as_bytes()).map_err(db_err)? {
        Some(v) => Ok(Some(total_len(&decode_chunks(v.value())?))),
        None => Ok(None),
    }
}

/// The blob service of a [`RedbStore`].
#[derive(Clone)]
pub struct RedbBlobService {
    store: RedbStore,
}

impl ChunkStore for RedbBlobService {
    fn get_chunk(&self, digest: &B3Digest) -> Result<Option<Arc<[u8]>>> {
        let inner = &self.store.inner;
        let txn = inner.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(CHUNKS).map_err(db_err)?;
        match table.get(digest.as_bytes()).map_err(db_err)? {
            Some(loc) => Ok(Some(inner.read_chunk(digest, loc.value())?)),
            None => Ok(None),
        }
    }

    fn put_chunks(&self, chunks: &[(B3Digest, ChunkData)]) -> Result<()> {
        // Not yet referenced by any blob, so not yet worth an fsync: the
        // durable commit of the blob itself makes them durable too.
        // Their locations are indexed only by the commit of a blob that
        // names them: one redb transaction per blob, not per batch (every
        // non-durable redb commit holds memory until the next durable one).
        let inner = &self.store.inner;
        let written = inner.write_new_chunks(chunks)?;
        let mut staged = inner.staged.lock().unwrap_or_else(PoisonError::into_inner);
        for (d, loc) in written {
            staged.entry(d).or_insert(loc);
        }
        Ok(())
    }

    fn commit_blob(&self, digest: &B3Digest, chunks: &[ChunkRef], tail: &[(B3Digest, ChunkData)]) -> Result<()> {
        let inner = &self.store.inner;
        let written = inner.write_new_chunks(tail)?;
        let mut txn = inner.db.begin_write().map_err(db_err)?;
        txn.set_durability(Durability::None).map_err(db_err)?;
        inner.put_chunks_in(&txn, &written)?;
        let mut staged = inner.staged.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let mut table = txn.open_table(CHUNKS).map_err(db_err)?;
            for c in chunks {
                if table.get(c.digest.as_bytes()).map_err(db_err)?.is_none() {
                    // Written by `put_chunks` earlier; indexed now. Never
                    // commit a blob that would be unreadable.
                    let loc = staged
                        .get(&c.digest)
                        .ok_or_else(|| Error::Corrupt(format!("chunk {} vanished before commit", c.digest)))?;
                    table.insert(c.digest.as_bytes(), loc.as_slice()).map_err(db_err)?;
                }
            }
            let mut blobs = txn.open_table(BLOBS).map_err(db_err)?;
            blobs.insert(digest.as_bytes(), encode_chunks(chunks).as_slice()).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        inner.dirty.store(true, Ordering::SeqCst);
        for c in chunks {
            staged.remove(&c.digest);
        }
        Ok(())
    }

    /// One transaction for all of them (the chunk bytes are appended first).
    fn commit_blobs(&self, blobs: &[SmallBlob<'_>]) -> Result<()> {
        let inner = &self.store.inner;
        let mut written = Vec::with_capacity(blobs.len());
        {
            let txn = inner.db.begin_read().map_err(db_err)?;
            let table = txn.open_table(CHUNKS).map_err(db_err)?;
            let mut seen = std::collections::HashSet::with_capacity(blobs.len());
            for b in blobs {
                if seen.insert(b.digest) && table.get(b.digest.as_bytes()).map_err(db_err)?.is_none() {
                    written.push((b.digest, inner.append(b.data)?));
                }
            }
        }
        let mut txn = inner.db.begin_write().map_err(db_err)?;
        txn.set_durability(Durability::None).map_err(db_err)?;
        inner.put_chunks_in(&txn, &written)?;
        {
            let table = txn.open_table(CHUNKS).map_err(db_err)?;
            let mut table_blobs = txn.open_table(BLOBS).map_err(db_err)?;
            for b in blobs {
                // Never commit a blob that would be unreadable.
                if table.get(b.digest.as_bytes()).map_err(db_err)?.is_none() {
                    return Err(Error::Corrupt(format!("chunk {} vanished before commit", b.digest)));
                }
                table_blobs.insert(b.digest.as_bytes(), encode_chunks(std::slice::from_ref(&b.chunk)).as_slice()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
        inner.dirty.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn get_blob(&self, digest: &B3Digest) -> Result<Option<Vec<ChunkRef>>> {
        let txn = self.store.inner.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(BLOBS).map_err(db_err)?;
        match table.get(digest.as_bytes()).map_err(db_err)? {
            Some(v) => Ok(Some(decode_chunks(v.value())?)),
            None => Ok(None),
        }
    }
}

impl BlobService for RedbBlobService {
    fn size(&self, digest: &B3Digest) -> Result<Option<u64>> {
        let txn = self.store.inner.db.begin_read().map_err(db_err)?;
        blob_size(&txn.open_table(BLOBS).map_err(db_err)?, digest)
    }
    fn open_read(&self, digest: &B3Digest) -> Result<Option<Box<dyn BlobReader>>> {
        blob::open_read(self, digest)
    }
    fn open_write(&self) -> Box<dyn BlobWriter> {
        blob::open_write(self)
    }
    fn put_many(&self, blobs: &[&[u8]]) -> Result<Vec<B3Digest>> {
        blob::put_many(self, blobs)
    }
    fn flush(&self) -> Result<()> {
        self.store.inner.flush()
    }
}

/// The directory service of a [`RedbStore`]; checks blob references against
/// the same database, inside the same transaction.
#[derive(Clone)]
pub struct RedbDirectoryService {
    store: RedbStore,
}

impl DirectoryService for RedbDirectoryService {
    fn get(&self, digest: &B3Digest) -> Result<Option<Directory>> {
        let txn = self.store.inner.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(DIRS).map_err(db_err)?;
        match table.get(digest.as_bytes()).map_err(db_err)? {
            Some(v) => {
                let bytes = v.value();
                if B3Digest::of(bytes) != *digest {
                    return Err(Error::Corrupt(format!("directory {digest} does not match its digest")));
                }
                Ok(Some(Directory::decode(bytes).map_err(|e| Error::Corrupt(format!("directory {digest}: {e}")))?))
            }
            None => Ok(None),
        }
    }

    fn has(&self, digest: &B3Digest) -> Result<bool> {
        let txn = self.store.inner.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(DIRS).map_err(db_err)?;
        Ok(table.get(digest.as_bytes()).map_err(db_err)?.is_some())
    }

    fn put_tree(&self, dirs: &[Directory]) -> Result<B3Digest> {
        self.put_tree_with(dirs, true)
    }

    /// A commit without fsync (marked dirty, like a blob commit): the next
    /// durable commit or [`Inner::flush`] makes it durable.
    fn put_tree_deferred(&self, dirs: &[Directory]) -> Result<B3Digest> {
        self.put_tree_with(dirs, false)
    }
}

impl RedbDirectoryService {
    fn put_tree_with(&self, dirs: &[Directory], durable: bool) -> Result<B3Digest> {
        let mut txn = self.store.inner.db.begin_write().map_err(db_err)?;
        if !durable {
            txn.set_durability(Durability::None).map_err(db_err)?;
        }
        let mut last = None;
        {
            let mut table = txn.open_table(DIRS).map_err(db_err)?;
            let blobs = txn.open_table(BLOBS).map_err(db_err)?;
            for dir in dirs {
                check_references(
                    dir,
                    |d| match table.get(d.as_bytes()).map_err(db_err)? {
                        Some(v) => Ok(Some(
                            Directory::decode(v.value())
                                .map_err(|e| Error::Corrupt(format!("directory {d}: {e}")))?
                                .size(),
                        )),
                        None => Ok(None),
                    },
                    |d| blob_size(&blobs, d),
                )?;
                let bytes = dir.encode();
                let digest = B3Digest::of(&bytes);
                table.insert(digest.as_bytes(), bytes.as_slice()).map_err(db_err)?;
                last = Some(digest);
            }
        }
        let last = last.ok_or(Error::EmptyTree)?;
        // Dropping `txn` on an error above aborts it: nothing is stored.
        if durable {
            self.store.inner.commit_durable(txn)?;
        } else {
            txn.commit().map_err(db_err)?;
            self.store.inner.dirty.store(true, Ordering::SeqCst);
        }
        Ok(last)
    }
}
