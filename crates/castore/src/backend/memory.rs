//! In-memory backend (`memory://`): hash maps behind locks; for tests and
//! short-lived stores.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::blob::{self, ChunkData, ChunkRef, ChunkStore};
use crate::directory::{Directory, check_references};
use crate::error::{Error, Result};
use crate::{B3Digest, BlobReader, BlobService, BlobWriter, DirectoryService};

use super::Services;

/// A blob service and a directory service that checks against it.
pub fn services() -> Services {
    let blobs = MemoryBlobService::default();
    let directories = MemoryDirectoryService::new(Arc::new(blobs.clone()));
    Services { blobs: Arc::new(blobs), directories: Arc::new(directories) }
}

#[derive(Default)]
struct BlobMaps {
    chunks: HashMap<B3Digest, Arc<[u8]>>,
    blobs: HashMap<B3Digest, Vec<ChunkRef>>,
}

/// Blobs held in memory. Clones share the same storage.
#[derive(Clone, Default)]
pub struct MemoryBlobService {
    inner: Arc<RwLock<BlobMaps>>,
}

impl MemoryBlobService {
    /// Total bytes of distinct chunks held.
    pub fn stored_bytes(&self) -> u64 {
        let m = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        m.chunks.values().map(|c| c.len() as u64).sum()
    }

    /// Reverses a stored blob's chunk list: for tests of chunk-list checks.
    #[doc(hidden)]
    pub fn reverse_chunk_list_for_tests(&self, digest: &B3Digest) -> bool {
        let mut m = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        m.blobs.get_mut(digest).map(|c| c.reverse()).is_some()
    }

    /// Replaces a stored chunk's bytes without changing its name: for tests of
    /// corruption detection.
    #[doc(hidden)]
    pub fn corrupt_chunk_for_tests(&self, digest: &B3Digest, data: &[u8]) -> bool {
        let mut m = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        m.chunks.get_mut(digest).map(|c| *c = Arc::from(data)).is_some()
    }
}

impl ChunkStore for MemoryBlobService {
    fn get_chunk(&self, digest: &B3Digest) -> Result<Option<Arc<[u8]>>> {
        let m = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        Ok(m.chunks.get(digest).cloned())
    }

    fn put_chunks(&self, chunks: &[(B3Digest, ChunkData)]) -> Result<()> {
        let mut m = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        for (d, data) in chunks {
            m.chunks.entry(*d).or_insert_with(|| Arc::from(&data[..]));
        }
        Ok(())
    }

    fn commit_blob(&self, digest: &B3Digest, chunks: &[ChunkRef], tail: &[(B3Digest, ChunkData)]) -> Result<()> {
        let mut m = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        for (d, data) in tail {
            m.chunks.entry(*d).or_insert_with(|| Arc::from(&data[..]));
        }
        // Every chunk must be present, or the blob would be unreadable.
        if let Some(c) = chunks.iter().find(|c| !m.chunks.contains_key(&c.digest)) {
            return Err(Error::Corrupt(format!("chunk {} vanished before commit", c.digest)));
        }
        m.blobs.insert(*digest, chunks.to_vec());
        Ok(())
    }

    fn get_blob(&self, digest: &B3Digest) -> Result<Option<Vec<ChunkRef>>> {
        let m = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        Ok(m.blobs.get(digest).cloned())
    }
}

impl BlobService for MemoryBlobService {
    fn size(&self, digest: &B3Digest) -> Result<Option<u64>> {
        blob::size(self, digest)
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
}

/// Directories held in memory, checked against a blob service on `put`.
pub struct MemoryDirectoryService {
    blobs: Arc<dyn BlobService>,
    dirs: RwLock<HashMap<B3Digest, Directory>>,
}

impl MemoryDirectoryService {
    pub fn new(blobs: Arc<dyn BlobService>) -> Self {
        Self { blobs, dirs: RwLock::default() }
    }
}

impl DirectoryService for MemoryDirectoryService {
    fn get(&self, digest: &B3Digest) -> Result<Option<Directory>> {
        let m = self.dirs.read().unwrap_or_else(PoisonError::into_inner);
        Ok(m.get(digest).cloned())
    }

    fn has(&self, digest: &B3Digest) -> Result<bool> {
        let m = self.dirs.read().unwrap_or_else(PoisonError::into_inner);
        Ok(m.contains_key(digest))
    }

    fn put_tree(&self, dirs: &[Directory]) -> Result<B3Digest> {
        // Validate all first, then insert: all or nothing.
        let mut m = self.dirs.write().unwrap_or_else(PoisonError::into_inner);
        let mut batch: HashMap<B3Digest, &Directory> = HashMap::new();
        let mut last = None;
        for dir in dirs {
            check_references(
                dir,
                |d| Ok(batch.get(d).map(|x| x.size()).or_else(|| m.get(d).map(Directory::size))),
                |d| self.blobs.size(d),
            )?;
            let digest = dir.digest();
            batch.insert(digest, dir);
            last = Some(digest);
        }
        let last = last.ok_or(Error::EmptyTree)?;
        for (d, dir) in batch {
            m.entry(d).or_insert_with(|| dir.clone());
        }
        Ok(last)
    }
}
