//! Object-storage backend (`objectstore+file:///abs/dir`, `objectstore+memory://`):
//! chunks, blob chunk lists and directories as objects in an
//! [`object_store`] store, driven by a private tokio runtime so the services
//! stay synchronous.
//!
//! Layout: `chunks/<hex>`, `blobs/<hex>` (chunk list), `directories/<hex>`
//! (canonical encoding). Every object is written whole (the local file
//! system backend writes a temporary file, fsyncs it and renames it), and
//! objects are written children-first: a blob's chunk list after its chunks,
//! a directory after everything it names. A crash can leave unreferenced
//! objects, never a reference to a missing one. Called from inside an async
//! runtime, each call blocks that runtime's thread (prefer `spawn_blocking`).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path as HostPath;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::blob::{self, ChunkData, ChunkRef, ChunkStore, decode_chunks, encode_chunks, total_len};
use crate::directory::{Directory, check_references};
use crate::error::{Error, Result};
use crate::{B3Digest, BlobReader, BlobService, BlobWriter, DirectoryService};

use super::Services;

/// An object store and the runtime that drives it; cheap to clone.
#[derive(Clone)]
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    rt: Arc<tokio::runtime::Runtime>,
}

fn os_err(e: object_store::Error) -> Error {
    Error::storage(e)
}

fn key(kind: &str, d: &B3Digest) -> Path {
    Path::from(format!("{kind}/{d}"))
}

impl ObjectStoreBackend {
    /// Wraps any object store.
    pub fn new(store: Arc<dyn ObjectStore>) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ferrix-castore-objectstore")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the object store runtime", e))?;
        Ok(Self { store, rt: Arc::new(rt) })
    }

    /// A local directory (created if missing), with fsync on every write.
    pub fn local(dir: &HostPath) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(os_err)?.with_fsync(true);
        Self::new(Arc::new(fs))
    }

    /// An in-process object store (for tests).
    pub fn in_memory() -> Result<Self> {
        Self::new(Arc::new(object_store::memory::InMemory::new()))
    }

    pub fn services(&self) -> Services {
        Services {
            blobs: Arc::new(ObjectStoreBlobService { backend: self.clone() }),
            directories: Arc::new(ObjectStoreDirectoryService { backend: self.clone() }),
        }
    }

    /// Runs `f` on the private runtime. Called from inside another tokio
    /// runtime (where `block_on` would panic), it blocks on a helper thread.
    fn block_on<T: Send>(&self, f: impl Future<Output = T> + Send) -> T {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.rt.block_on(f);
        }
        std::thread::scope(|s| {
            s.spawn(|| self.rt.block_on(f))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// An object's bytes, `None` if absent.
    fn get(&self, path: &Path) -> Result<Option<bytes::Bytes>> {
        self.block_on(async {
            match self.store.get(path).await {
                Ok(r) => r.bytes().await.map(Some).map_err(os_err),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(os_err(e)),
            }
        })
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        self.block_on(async {
            match self.store.head(path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(os_err(e)),
            }
        })
    }

    fn put(&self, path: &Path, data: Vec<u8>) -> Result<()> {
        self.block_on(self.store.put(path, PutPayload::from(data))).map(|_| ()).map_err(os_err)
    }

    fn blob_size(&self, d: &B3Digest) -> Result<Option<u64>> {
        Ok(self.get_blob(d)?.map(|c| total_len(&c)))
    }

    fn get_blob(&self, d: &B3Digest) -> Result<Option<Vec<ChunkRef>>> {
        self.get(&key("blobs", d))?.map(|b| decode_chunks(&b)).transpose()
    }

    fn get_directory(&self, d: &B3Digest) -> Result<Option<Directory>> {
        let Some(bytes) = self.get(&key("directories", d))? else { return Ok(None) };
        if B3Digest::of(&bytes) != *d {
            return Err(Error::Corrupt(format!("directory {d} does not match its digest")));
        }
        Directory::decode(&bytes).map(Some).map_err(|e| Error::Corrupt(format!("directory {d}: {e}")))
    }
}

/// Blobs in an object store.
#[derive(Clone)]
pub struct ObjectStoreBlobService {
    backend: ObjectStoreBackend,
}

impl ChunkStore for ObjectStoreBlobService {
    fn get_chunk(&self, digest: &B3Digest) -> Result<Option<Arc<[u8]>>> {
        Ok(self.backend.get(&key("chunks", digest))?.map(|b| Arc::from(&b[..])))
    }

    fn put_chunks(&self, chunks: &[(B3Digest, ChunkData)]) -> Result<()> {
        for (d, data) in chunks {
            let k = key("chunks", d);
            if !self.backend.exists(&k)? {
                self.backend.put(&k, data.to_vec())?;
            }
        }
        Ok(())
    }

    fn commit_blob(&self, digest: &B3Digest, chunks: &[ChunkRef], tail: &[(B3Digest, ChunkData)]) -> Result<()> {
        self.put_chunks(tail)?;
        // Never publish a chunk list naming a missing chunk.
        let in_tail: std::collections::HashSet<_> = tail.iter().map(|(d, _)| *d).collect();
        for c in chunks.iter().filter(|c| !in_tail.contains(&c.digest)) {
            if !self.backend.exists(&key("chunks", &c.digest))? {
                return Err(Error::Corrupt(format!("chunk {} vanished before commit", c.digest)));
            }
        }
        self.backend.put(&key("blobs", digest), encode_chunks(chunks))
    }

    fn get_blob(&self, digest: &B3Digest) -> Result<Option<Vec<ChunkRef>>> {
        self.backend.get_blob(digest)
    }
}

impl BlobService for ObjectStoreBlobService {
    fn size(&self, digest: &B3Digest) -> Result<Option<u64>> {
        self.backend.blob_size(digest)
    }
    fn open_read(&self, digest: &B3Digest) -> Result<Option<Box<dyn BlobReader>>> {
        blob::open_read(self, digest)
    }
    fn open_write(&self) -> Box<dyn BlobWriter> {
        blob::open_write(self)
    }
}

/// Directories in an object store, checked against its blobs.
#[derive(Clone)]
pub struct ObjectStoreDirectoryService {
    backend: ObjectStoreBackend,
}

impl DirectoryService for ObjectStoreDirectoryService {
    fn get(&self, digest: &B3Digest) -> Result<Option<Directory>> {
        self.backend.get_directory(digest)
    }

    fn has(&self, digest: &B3Digest) -> Result<bool> {
        self.backend.exists(&key("directories", digest))
    }

    fn put_tree(&self, dirs: &[Directory]) -> Result<B3Digest> {
        // Check everything first, so a rejected batch writes nothing.
        let mut batch: HashMap<B3Digest, u64> = HashMap::new();
        let mut encoded = Vec::with_capacity(dirs.len());
        for dir in dirs {
            check_references(
                dir,
                |d| match batch.get(d) {
                    Some(size) => Ok(Some(*size)),
                    None => Ok(self.backend.get_directory(d)?.map(|c| c.size())),
                },
                |d| self.backend.blob_size(d),
            )?;
            let bytes = dir.encode();
            let digest = B3Digest::of(&bytes);
            batch.insert(digest, dir.size());
            encoded.push((digest, bytes));
        }
        let last = encoded.last().map(|(d, _)| *d).ok_or(Error::EmptyTree)?;
        // Children first: a parent object never exists before its children.
        for (digest, bytes) in encoded {
            self.backend.put(&key("directories", &digest), bytes)?;
        }
        Ok(last)
    }
}
