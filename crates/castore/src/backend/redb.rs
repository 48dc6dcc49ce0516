//! Embedded backend (`redb:///path`): blobs, chunks and directories in one
//! redb database file.
//!
//! Every blob close and directory put is one all-or-nothing transaction. A
//! directory put (and [`BlobService::flush`]) commits with fsync, which also
//! makes every earlier blob commit durable; blob closes alone skip the fsync,
//! so ingesting many small files does not pay one fsync per file. A crash
//! can lose blobs closed since the last durable commit, but never a blob that
//! a stored directory points to. Closing the store (dropping its last handle)
//! makes everything durable. Only one process (or handle) may have the file
//! open; others get [`Error::StoreLocked`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::blob::{self, ChunkRef, ChunkStore, decode_chunks, encode_chunks, total_len};
use crate::directory::{Directory, check_references};
use crate::error::{Error, Result};
use crate::{B3Digest, BlobReader, BlobService, BlobWriter, DirectoryService};

use super::Services;

/// chunk digest → chunk bytes
const CHUNKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("chunks");
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
    /// Set after a commit without fsync; cleared when a durable commit starts.
    dirty: AtomicBool,
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

    /// Commits `txn` with fsync, which also persists every earlier commit.
    fn commit_durable(&self, txn: redb::WriteTransaction) -> Result<()> {
        // We hold the write lock: every non-durable commit so far is before ours.
        self.dirty.store(false, Ordering::SeqCst);
        txn.commit().map_err(|e| {
            self.dirty.store(true, Ordering::SeqCst);
            db_err(e)
        })
    }
}

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
        let txn = db.begin_write().map_err(db_err)?;
        for t in [CHUNKS, BLOBS, DIRS] {
            txn.open_table(t).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(Self { inner: Arc::new(Inner { db, path: path.to_owned(), dirty: AtomicBool::new(false) }) })
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
            let (_, v) = item.map_err(db_err)?;
            chunk_bytes += v.value().len() as u64;
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
        let txn = self.inner.db.begin_write().map_err(db_err)?;
        txn.open_table(CHUNKS).map_err(db_err)?.insert(digest.as_bytes(), data).map_err(db_err)?;
        txn.commit().map_err(db_err)
    }
}

fn put_chunk_if_absent(table: &mut redb::Table<&[u8; 32], &[u8]>, d: &B3Digest, data: &[u8]) -> Result<()> {
    if table.get(d.as_bytes()).map_err(db_err)?.is_none() {
        table.insert(d.as_bytes(), data).map_err(db_err)?;
    }
    Ok(())
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
        let txn = self.store.inner.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(CHUNKS).map_err(db_err)?;
        Ok(table.get(digest.as_bytes()).map_err(db_err)?.map(|v| Arc::from(v.value())))
    }

    fn put_chunks(&self, chunks: &[(B3Digest, Vec<u8>)]) -> Result<()> {
        // Not yet referenced by any blob, so not yet worth an fsync: the
        // durable commit of the blob itself makes them durable too.
        let mut txn = self.store.inner.db.begin_write().map_err(db_err)?;
        txn.set_durability(Durability::None).map_err(db_err)?;
        {
            let mut table = txn.open_table(CHUNKS).map_err(db_err)?;
            for (d, data) in chunks {
                put_chunk_if_absent(&mut table, d, data)?;
            }
        }
        txn.commit().map_err(db_err)?;
        self.store.inner.dirty.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn commit_blob(&self, digest: &B3Digest, chunks: &[ChunkRef], tail: &[(B3Digest, Vec<u8>)]) -> Result<()> {
        let mut txn = self.store.inner.db.begin_write().map_err(db_err)?;
        txn.set_durability(Durability::None).map_err(db_err)?;
        {
            let mut table = txn.open_table(CHUNKS).map_err(db_err)?;
            for (d, data) in tail {
                put_chunk_if_absent(&mut table, d, data)?;
            }
            // Never commit a blob that would be unreadable.
            for c in chunks {
                if table.get(c.digest.as_bytes()).map_err(db_err)?.is_none() {
                    return Err(Error::Corrupt(format!("chunk {} vanished before commit", c.digest)));
                }
            }
            let mut blobs = txn.open_table(BLOBS).map_err(db_err)?;
            blobs.insert(digest.as_bytes(), encode_chunks(chunks).as_slice()).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        self.store.inner.dirty.store(true, Ordering::SeqCst);
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
        let txn = self.store.inner.db.begin_write().map_err(db_err)?;
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
        self.store.inner.commit_durable(txn)?;
        Ok(last)
    }
}
