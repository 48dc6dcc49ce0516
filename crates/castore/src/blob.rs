//! Blobs: the [`BlobService`] trait, its streaming writer and seekable reader,
//! and the chunking that every built-in backend shares.
//!
//! A blob is named by the BLAKE3 digest of its whole contents. Backends store
//! it as chunks of at most [`CHUNK_SIZE`] bytes, each named by its own BLAKE3
//! digest (so identical chunks are stored once), plus a chunk list. A reader
//! loads one chunk at a time and checks each chunk's digest as it loads it, so
//! ranged reads never load the whole blob and corrupt data is never returned.
//!
//! Not yet: garbage collection. Chunks written by a writer that was dropped
//! without `close` stay stored, unreferenced.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use crate::B3Digest;
use crate::error::{Error, Result};

/// The largest chunk a blob is split into.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Stores blobs by the BLAKE3 digest of their contents.
pub trait BlobService: Send + Sync {
    /// The size of a stored blob, `None` if absent.
    fn size(&self, digest: &B3Digest) -> Result<Option<u64>>;

    /// Whether a blob is stored.
    fn has(&self, digest: &B3Digest) -> Result<bool> {
        Ok(self.size(digest)?.is_some())
    }

    /// Opens a stored blob for reading, `None` if absent.
    fn open_read(&self, digest: &B3Digest) -> Result<Option<Box<dyn BlobReader>>>;

    /// Starts a new blob. It becomes visible when the writer is closed;
    /// dropping the writer abandons it.
    fn open_write(&self) -> Box<dyn BlobWriter>;

    /// Makes every blob whose `close` returned before this call durable.
    ///
    /// Backends may defer the fsync of a closed blob until this call, or until
    /// the next durable write to the same store (the redb backend makes them
    /// durable with every directory put). The default does nothing, for
    /// backends that are durable on close or never durable.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Stores `data` as one blob.
    fn put(&self, data: &[u8]) -> Result<B3Digest> {
        let mut w = self.open_write();
        w.write_all(data).map_err(|e| Error::io("writing blob", e))?;
        w.close()
    }

    /// Reads a whole blob into memory (for small blobs; use
    /// [`BlobService::open_read`] to stream large ones).
    fn get(&self, digest: &B3Digest) -> Result<Option<Vec<u8>>> {
        let Some(mut r) = self.open_read(digest)? else { return Ok(None) };
        let mut out = Vec::with_capacity(usize::try_from(r.size()).unwrap_or(0));
        r.read_to_end(&mut out).map_err(|e| Error::io(format!("reading blob {digest}"), e))?;
        Ok(Some(out))
    }
}

/// A blob being written. Hashes the data as it is written.
pub trait BlobWriter: Write + Send {
    /// Bytes written so far.
    fn bytes_written(&self) -> u64;

    /// Finishes the blob, makes it visible and returns its digest. See
    /// [`BlobService::flush`] for when it becomes durable.
    fn close(self: Box<Self>) -> Result<B3Digest>;

    /// Like [`BlobWriter::close`], but only stores the blob if its digest is
    /// `expected`; otherwise returns [`Error::DigestMismatch`] and the blob
    /// stays invisible.
    fn close_expecting(self: Box<Self>, expected: &B3Digest) -> Result<B3Digest>;
}

/// A stored blob, readable from any offset. Reads return
/// `io::ErrorKind::InvalidData` if stored data fails its digest check.
pub trait BlobReader: Read + Seek + Send {
    /// Total size of the blob in bytes.
    fn size(&self) -> u64;
}

/// One entry of a blob's chunk list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRef {
    pub digest: B3Digest,
    pub len: u32,
}

/// Encodes a chunk list: per chunk, 32-byte digest then u32 LE length.
pub(crate) fn encode_chunks(chunks: &[ChunkRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunks.len() * 36);
    for c in chunks {
        out.extend_from_slice(c.digest.as_bytes());
        out.extend_from_slice(&c.len.to_le_bytes());
    }
    out
}

pub(crate) fn decode_chunks(bytes: &[u8]) -> Result<Vec<ChunkRef>> {
    if !bytes.len().is_multiple_of(36) {
        return Err(Error::Corrupt(format!("chunk list has length {}, not a multiple of 36", bytes.len())));
    }
    Ok(bytes
        .chunks_exact(36)
        .map(|c| ChunkRef {
            digest: B3Digest::try_from(&c[..32]).expect("32 bytes"),
            len: u32::from_le_bytes(c[32..].try_into().expect("4 bytes")),
        })
        .collect())
}

pub(crate) fn total_len(chunks: &[ChunkRef]) -> u64 {
    chunks.iter().map(|c| u64::from(c.len)).sum()
}

/// What a backend provides so that [`ChunkedWriter`]/[`ChunkedReader`] can
/// implement blobs on top of it.
pub(crate) trait ChunkStore: Clone + Send + Sync + 'static {
    /// A chunk's bytes, unchecked.
    fn get_chunk(&self, digest: &B3Digest) -> Result<Option<Arc<[u8]>>>;
    /// Stores chunks that no blob references yet (need not be durable).
    fn put_chunks(&self, chunks: &[(B3Digest, Vec<u8>)]) -> Result<()>;
    /// Atomically stores `tail` chunks and the blob's chunk list.
    fn commit_blob(&self, digest: &B3Digest, chunks: &[ChunkRef], tail: &[(B3Digest, Vec<u8>)]) -> Result<()>;
    /// A blob's chunk list.
    fn get_blob(&self, digest: &B3Digest) -> Result<Option<Vec<ChunkRef>>>;
}

/// Chunks not yet handed to the store are flushed once they exceed this.
const PENDING_LIMIT: usize = 8 * CHUNK_SIZE;

pub(crate) struct ChunkedWriter<S: ChunkStore> {
    store: S,
    hasher: blake3::Hasher,
    buf: Vec<u8>,
    chunks: Vec<ChunkRef>,
    pending: Vec<(B3Digest, Vec<u8>)>,
    pending_bytes: usize,
    written: u64,
}

impl<S: ChunkStore> ChunkedWriter<S> {
    pub(crate) fn new(store: S) -> Self {
        Self {
            store,
            hasher: blake3::Hasher::new(),
            buf: Vec::new(),
            chunks: Vec::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            written: 0,
        }
    }

    /// Moves the buffer into `pending` as a finished chunk.
    fn cut_chunk(&mut self) {
        let data = std::mem::take(&mut self.buf);
        // Large chunks are hashed on several threads.
        let digest = if data.len() >= 128 * 1024 {
            self.hasher.update_rayon(&data);
            B3Digest::from(blake3::Hasher::new().update_rayon(&data).finalize())
        } else {
            self.hasher.update(&data);
            B3Digest::of(&data)
        };
        let len = u32::try_from(data.len()).expect("chunk is at most CHUNK_SIZE");
        self.chunks.push(ChunkRef { digest, len });
        self.pending_bytes += data.len();
        self.pending.push((digest, data));
    }

    fn finish(mut self, expected: Option<&B3Digest>) -> Result<B3Digest> {
        if !self.buf.is_empty() {
            self.cut_chunk();
        }
        let digest = B3Digest::from(self.hasher.finalize());
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(Error::DigestMismatch { expected: *expected, actual: digest });
        }
        self.store.commit_blob(&digest, &self.chunks, &self.pending)?;
        Ok(digest)
    }
}

impl<S: ChunkStore> Write for ChunkedWriter<S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK_SIZE - self.buf.len();
        let n = data.len().min(room);
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(data.len().clamp(4096, CHUNK_SIZE));
        }
        self.buf.extend_from_slice(&data[..n]);
        self.written += n as u64;
        if self.buf.len() == CHUNK_SIZE {
            self.cut_chunk();
            if self.pending_bytes >= PENDING_LIMIT {
                let pending = std::mem::take(&mut self.pending);
                self.pending_bytes = 0;
                self.store.put_chunks(&pending).map_err(Error::into_io)?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: ChunkStore> BlobWriter for ChunkedWriter<S> {
    fn bytes_written(&self) -> u64 {
        self.written
    }

    fn close(self: Box<Self>) -> Result<B3Digest> {
        (*self).finish(None)
    }

    fn close_expecting(self: Box<Self>, expected: &B3Digest) -> Result<B3Digest> {
        (*self).finish(Some(expected))
    }
}

pub(crate) struct ChunkedReader<S: ChunkStore> {
    store: S,
    chunks: Vec<ChunkRef>,
    /// `starts[i]` is the offset of chunk `i`; one extra entry holds the size.
    starts: Vec<u64>,
    pos: u64,
    current: Option<(usize, Arc<[u8]>)>,
}

impl<S: ChunkStore> ChunkedReader<S> {
    pub(crate) fn new(store: S, chunks: Vec<ChunkRef>) -> Self {
        let mut starts = Vec::with_capacity(chunks.len() + 1);
        let mut at = 0u64;
        starts.push(0);
        for c in &chunks {
            at += u64::from(c.len);
            starts.push(at);
        }
        Self { store, chunks, starts, pos: 0, current: None }
    }

    fn load(&mut self, i: usize) -> io::Result<Arc<[u8]>> {
        if let Some((ci, data)) = &self.current
            && *ci == i
        {
            return Ok(data.clone());
        }
        let want = self.chunks[i];
        let data = self
            .store
            .get_chunk(&want.digest)
            .map_err(Error::into_io)?
            .ok_or_else(|| Error::Corrupt(format!("chunk {} is missing", want.digest)).into_io())?;
        let actual = B3Digest::of(&data);
        if actual != want.digest || data.len() != want.len as usize {
            return Err(Error::Corrupt(format!(
                "chunk {} has digest {actual} and length {} (expected length {})",
                want.digest,
                data.len(),
                want.len
            ))
            .into_io());
        }
        self.current = Some((i, data.clone()));
        Ok(data)
    }
}

impl<S: ChunkStore> Read for ChunkedReader<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let size = *self.starts.last().expect("starts is never empty");
        if out.is_empty() || self.pos >= size {
            return Ok(0);
        }
        // The chunk containing `pos`: the last start <= pos.
        let i = self.starts.partition_point(|&s| s <= self.pos) - 1;
        let data = self.load(i)?;
        let off = (self.pos - self.starts[i]) as usize;
        let n = out.len().min(data.len() - off);
        out[..n].copy_from_slice(&data[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<S: ChunkStore> Seek for ChunkedReader<S> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let size = *self.starts.last().expect("starts is never empty");
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let new = new.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek to a negative or overflowing position")
        })?;
        self.pos = new;
        Ok(new)
    }
}

impl<S: ChunkStore> BlobReader for ChunkedReader<S> {
    fn size(&self) -> u64 {
        *self.starts.last().expect("starts is never empty")
    }
}

/// Implements [`BlobService`] for a [`ChunkStore`].
pub(crate) fn open_read<S: ChunkStore>(store: &S, digest: &B3Digest) -> Result<Option<Box<dyn BlobReader>>> {
    Ok(store
        .get_blob(digest)?
        .map(|chunks| Box::new(ChunkedReader::new(store.clone(), chunks)) as Box<dyn BlobReader>))
}

pub(crate) fn open_write<S: ChunkStore>(store: &S) -> Box<dyn BlobWriter> {
    Box::new(ChunkedWriter::new(store.clone()))
}

pub(crate) fn size<S: ChunkStore>(store: &S, digest: &B3Digest) -> Result<Option<u64>> {
    Ok(store.get_blob(digest)?.map(|c| total_len(&c)))
}
