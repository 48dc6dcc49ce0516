//! Blobs: the [`BlobService`] trait, its streaming writer and seekable reader,
//! and the chunking that every built-in backend shares.
//!
//! A blob is named by the BLAKE3 digest of its whole contents. Backends store
//! it as chunks of at most [`CHUNK_SIZE`] bytes plus a chunk list. A blob of
//! one chunk names its chunk by the blob digest. A longer blob names each
//! chunk by a key derived from the chunk's BLAKE3 chaining value at its
//! offset (see below), so every byte is hashed once when a blob is written:
//! identical chunks at the same offset of two blobs (e.g. two versions of a
//! file that differ near its end) are stored once; identical bytes at
//! different offsets are not recognised as the same chunk. A reader
//! loads one chunk at a time and checks each chunk's digest as it loads it, so
//! ranged reads never load the whole blob and corrupt data is never returned.
//!
//! How reads are verified: every chunk but the last is exactly
//! [`CHUNK_SIZE`] (a power of two), so each chunk is a complete subtree of the
//! blob's BLAKE3 tree. The chunk list stores each chunk's BLAKE3 *chaining
//! value* at its offset. Opening a blob merges those chaining values up to
//! the root and compares it with the blob digest (so the chunk list itself is
//! authenticated); loading a chunk recomputes its chaining value (one hashing
//! pass) and compares. A blob of at most one chunk is checked by its digest.
//!
//! Not yet: garbage collection. Chunks written by a writer that was dropped
//! without `close` stay stored, unreferenced.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use crate::B3Digest;
use crate::chunkbuf::SharedChunk;
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

    /// Stores each of `blobs` as a blob, as [`BlobService::put`] does one
    /// (each is visible once this returns; durable as after `put`).
    /// Backends may store many small blobs in one transaction.
    fn put_many(&self, blobs: &[&[u8]]) -> Result<Vec<B3Digest>> {
        blobs.iter().map(|b| self.put(b)).collect()
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
    /// Appends the bytes of a shared buffer. Backends that keep chunks take a
    /// full chunk (written at a chunk boundary) without copying it; others
    /// copy it as `write_all` does.
    fn write_shared(&mut self, data: SharedChunk) -> io::Result<()> {
        self.write_all(&data)
    }

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
    /// The chunk's name in the chunk store: the blob digest for a blob of
    /// one chunk, else [`chunk_key`] of `cv`.
    pub digest: B3Digest,
    /// The chunk's BLAKE3 chaining value at its offset in this blob.
    pub cv: [u8; 32],
    pub len: u32,
}

const CHUNK_REF_LEN: usize = 32 + 32 + 4;

/// Encodes a chunk list: per chunk, digest, chaining value, u32 LE length.
pub(crate) fn encode_chunks(chunks: &[ChunkRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunks.len() * CHUNK_REF_LEN);
    for c in chunks {
        out.extend_from_slice(c.digest.as_bytes());
        out.extend_from_slice(&c.cv);
        out.extend_from_slice(&c.len.to_le_bytes());
    }
    out
}

pub(crate) fn decode_chunks(bytes: &[u8]) -> Result<Vec<ChunkRef>> {
    if !bytes.len().is_multiple_of(CHUNK_REF_LEN) {
        return Err(Error::Corrupt(format!(
            "chunk list has length {}, not a multiple of {CHUNK_REF_LEN}",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(CHUNK_REF_LEN)
        .map(|c| ChunkRef {
            digest: B3Digest::try_from(&c[..32]).expect("32 bytes"),
            cv: c[32..64].try_into().expect("32 bytes"),
            len: u32::from_le_bytes(c[64..].try_into().expect("4 bytes")),
        })
        .collect())
}

/// The name of a chunk of a multi-chunk blob in the chunk store, given its
/// chaining value (which commits to its bytes and its offset). Hashed with a
/// context of its own so that it never equals a digest of stored bytes.
pub fn chunk_key(cv: &[u8; 32]) -> B3Digest {
    B3Digest::from(*blake3::Hasher::new_derive_key("ferrix castore chunk key v1").update(cv).finalize().as_bytes())
}

/// The key under which the chunk store keeps the `index`th chunk of a blob
/// of more than one chunk (`data` is that chunk's bytes): for tests that
/// tamper with stored chunks.
#[doc(hidden)]
pub fn chunk_key_of(data: &[u8], index: usize) -> B3Digest {
    chunk_key(&chaining_value(data, (index * CHUNK_SIZE) as u64))
}

/// A chunk's bytes on their way to the chunk store: copied out of a
/// writer's buffer, or a shared buffer taken as it is.
pub(crate) enum ChunkData {
    Owned(Vec<u8>),
    Shared(SharedChunk),
}

impl std::ops::Deref for ChunkData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            ChunkData::Owned(v) => v,
            ChunkData::Shared(c) => c,
        }
    }
}

/// The chaining value of `data` as the subtree starting at `offset`.
pub(crate) fn chaining_value(data: &[u8], offset: u64) -> [u8; 32] {
    use blake3::hazmat::HasherExt;
    let mut h = blake3::Hasher::new();
    h.set_input_offset(offset);
    if data.len() >= 128 * 1024 {
        h.update_rayon(data);
    } else {
        h.update(data);
    }
    h.finalize_non_root()
}

/// The blob digest a chunk list describes: chaining values merged the way
/// BLAKE3 shapes its tree. `None` if the list is malformed (a chunk other
/// than the last is not CHUNK_SIZE, or the last is empty or too long).
fn root_of(chunks: &[ChunkRef]) -> Option<B3Digest> {
    use blake3::hazmat::{Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root};
    let (last, full) = chunks.split_last()?;
    if full.iter().any(|c| c.len as usize != CHUNK_SIZE) || last.len == 0 || last.len as usize > CHUNK_SIZE {
        return None;
    }
    if chunks.len() == 1 {
        return Some(last.digest); // a one-chunk blob's digest is its chunk's digest
    }
    // Merges chunks[..] covering `len` bytes into one chaining value.
    fn merge(chunks: &[ChunkRef], len: u64) -> [u8; 32] {
        if chunks.len() == 1 {
            return chunks[0].cv;
        }
        let left = left_subtree_len(len);
        let split = (left / CHUNK_SIZE as u64) as usize;
        merge_subtrees_non_root(&merge(&chunks[..split], left), &merge(&chunks[split..], len - left), Mode::Hash)
    }
    let len = total_len(chunks);
    let left = left_subtree_len(len);
    let split = (left / CHUNK_SIZE as u64) as usize;
    let root = merge_subtrees_root(&merge(&chunks[..split], left), &merge(&chunks[split..], len - left), Mode::Hash);
    Some(B3Digest::from(root))
}

/// Checks a chunk list against the digest of the blob it claims to be.
fn verify_chunk_list(digest: &B3Digest, chunks: &[ChunkRef]) -> Result<()> {
    let ok = if chunks.is_empty() { *digest == B3Digest::of(b"") } else { root_of(chunks) == Some(*digest) };
    if ok { Ok(()) } else { Err(Error::Corrupt(format!("chunk list of blob {digest} does not match its digest"))) }
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
    fn put_chunks(&self, chunks: &[(B3Digest, ChunkData)]) -> Result<()>;
    /// Atomically stores `tail` chunks and the blob's chunk list.
    fn commit_blob(&self, digest: &B3Digest, chunks: &[ChunkRef], tail: &[(B3Digest, ChunkData)]) -> Result<()>;
    /// A blob's chunk list.
    fn get_blob(&self, digest: &B3Digest) -> Result<Option<Vec<ChunkRef>>>;
    /// [`ChunkStore::commit_blob`] for several blobs (all or nothing where
    /// the backend has transactions).
    fn commit_blobs(&self, blobs: &[SmallBlob<'_>]) -> Result<()> {
        for b in blobs {
            self.commit_blob(&b.digest, std::slice::from_ref(&b.chunk), &[(b.digest, ChunkData::Owned(b.data.to_vec()))])?;
        }
        Ok(())
    }
}

/// A blob of one chunk (at most [`CHUNK_SIZE`] bytes, not empty).
pub(crate) struct SmallBlob<'a> {
    pub digest: B3Digest,
    pub chunk: ChunkRef,
    pub data: &'a [u8],
}

/// [`BlobService::put_many`] over a [`ChunkStore`]: blobs of one chunk are
/// hashed here and committed together; empty and larger ones go through
/// the writer one by one.
pub(crate) fn put_many<S: ChunkStore>(store: &S, blobs: &[&[u8]]) -> Result<Vec<B3Digest>> {
    let mut small = Vec::with_capacity(blobs.len());
    let mut out = Vec::with_capacity(blobs.len());
    for &data in blobs {
        if data.is_empty() || data.len() > CHUNK_SIZE {
            let mut w = open_write(store);
            w.write_all(data).map_err(|e| Error::io("writing blob", e))?;
            out.push(w.close()?);
            continue;
        }
        let digest = B3Digest::of(data);
        let len = u32::try_from(data.len()).expect("at most CHUNK_SIZE");
        small.push(SmallBlob { digest, chunk: ChunkRef { digest, cv: chaining_value(data, 0), len }, data });
        out.push(digest);
    }
    if !small.is_empty() {
        store.commit_blobs(&small)?;
    }
    Ok(out)
}

/// Chunks not yet handed to the store are flushed once they exceed this.
/// At least two chunks, so that a blob's first chunk is still pending when
/// `finish` learns whether it is the only one.
const PENDING_LIMIT: usize = 4 * CHUNK_SIZE;
const _: () = assert!(PENDING_LIMIT > CHUNK_SIZE);

/// A thread that stores batches of chunks for one [`ChunkedWriter`].
struct Storer {
    batches: std::sync::mpsc::SyncSender<Vec<(B3Digest, ChunkData)>>,
    done: std::sync::mpsc::Receiver<Result<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Storer {
    fn start<S: ChunkStore>(store: S) -> Result<Storer> {
        let (batches, rx) = std::sync::mpsc::sync_channel::<Vec<(B3Digest, ChunkData)>>(1);
        let (tx, done) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("castore-put".into())
            .spawn(move || {
                for batch in rx {
                    let res = store.put_chunks(&batch);
                    drop(batch); // give the buffers back before reporting
                    if tx.send(res).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::io("starting a thread to store chunks", e))?;
        Ok(Storer { batches, done, thread: Some(thread) })
    }
}

impl Drop for Storer {
    fn drop(&mut self) {
        // Closing the channel ends the thread after its current batch.
        let (dead, _) = std::sync::mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.batches, dead));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) struct ChunkedWriter<S: ChunkStore> {
    store: S,
    buf: Vec<u8>,
    /// A shared buffer shorter than a chunk, taken at a chunk boundary by
    /// `write_shared`: the blob's last chunk, unless more data follows (then
    /// it is copied into `buf`).
    held: Option<SharedChunk>,
    chunks: Vec<ChunkRef>,
    pending: Vec<(B3Digest, ChunkData)>,
    pending_bytes: usize,
    /// The previous batch of chunks, being stored on a thread of its own
    /// while the caller goes on with the next (hashing overlaps writing).
    storer: Option<Storer>,
    /// Whether a batch was handed to `storer` and its result not yet taken.
    storing: bool,
    written: u64,
}

impl<S: ChunkStore> ChunkedWriter<S> {
    pub(crate) fn new(store: S) -> Self {
        Self {
            store,
            buf: Vec::new(),
            held: None,
            chunks: Vec::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            storer: None,
            storing: false,
            written: 0,
        }
    }

    /// Moves the buffer into `pending` as a finished chunk.
    fn cut_chunk(&mut self) {
        let data = std::mem::take(&mut self.buf);
        self.cut(ChunkData::Owned(data));
    }

    /// Adds `data` to `pending` as the next chunk. Hashes it once, as a
    /// subtree of the blob: if it turns out to be the only chunk, `finish`
    /// hashes it again as a whole blob (at most one chunk's worth of bytes).
    fn cut(&mut self, data: ChunkData) {
        let offset = self.chunks.len() as u64 * CHUNK_SIZE as u64;
        let cv = chaining_value(&data, offset);
        let digest = chunk_key(&cv);
        let len = u32::try_from(data.len()).expect("chunk is at most CHUNK_SIZE");
        self.chunks.push(ChunkRef { digest, cv, len });
        self.pending_bytes += data.len();
        self.pending.push((digest, data));
    }

    /// Copies a held short shared buffer into `buf`, before more data.
    fn unhold(&mut self) {
        if let Some(c) = self.held.take() {
            self.buf.reserve_exact(CHUNK_SIZE);
            self.buf.extend_from_slice(&c);
        }
    }

    /// Stores the pending chunks if there are enough of them.
    fn maybe_store(&mut self) -> Result<()> {
        if self.pending_bytes >= PENDING_LIMIT { self.store_pending() } else { Ok(()) }
    }

    /// Waits for the batch being stored, if any.
    fn wait_stored(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.storing) {
            return Ok(());
        }
        let storer = self.storer.as_ref().expect("a batch is stored only by a storer");
        storer
            .done
            .recv()
            .unwrap_or_else(|_| Err(Error::io("storing chunks", io::Error::other("the storing thread stopped"))))
    }

    /// Hands the pending chunks to the writer's storing thread (started
    /// with the first batch, one for the writer's whole life: short-lived
    /// threads cost memory that per-thread allocator caches never return),
    /// once the previous batch is stored: at most two batches are in memory.
    fn store_pending(&mut self) -> Result<()> {
        self.wait_stored()?;
        if self.storer.is_none() {
            self.storer = Some(Storer::start(self.store.clone())?);
        }
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let storer = self.storer.as_ref().expect("just started");
        storer
            .batches
            .send(pending)
            .map_err(|_| Error::io("storing chunks", io::Error::other("the storing thread stopped")))?;
        self.storing = true;
        Ok(())
    }

    fn finish(mut self, expected: Option<&B3Digest>) -> Result<B3Digest> {
        let last = match self.held.take() {
            Some(c) => Some(ChunkData::Shared(c)),
            None if !self.buf.is_empty() => Some(ChunkData::Owned(std::mem::take(&mut self.buf))),
            None => None,
        };
        if let Some(last) = last {
            if self.chunks.is_empty() {
                // The only chunk: named by the blob digest, one hashing pass.
                let digest = B3Digest::of(&last);
                let len = u32::try_from(last.len()).expect("chunk is at most CHUNK_SIZE");
                self.chunks.push(ChunkRef { digest, cv: [0; 32], len });
                self.pending.push((digest, last));
            } else {
                self.cut(last);
            }
        } else if self.chunks.len() == 1 {
            // Exactly one full chunk, cut before we knew it was the only one:
            // rename it by the blob digest. It is still pending (a batch is
            // stored only once PENDING_LIMIT > CHUNK_SIZE bytes are pending).
            let (name, data) = self.pending.last_mut().expect("the only chunk is still pending");
            *name = B3Digest::of(data);
            self.chunks[0].digest = *name;
        }
        self.wait_stored()?;
        let digest = if self.chunks.is_empty() {
            B3Digest::of(b"")
        } else {
            root_of(&self.chunks).expect("the writer cuts every chunk but the last at CHUNK_SIZE")
        };
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
        if data.is_empty() {
            return Ok(0);
        }
        self.unhold();
        let room = CHUNK_SIZE - self.buf.len();
        let n = data.len().min(room);
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(data.len().clamp(4096, CHUNK_SIZE));
        }
        self.buf.extend_from_slice(&data[..n]);
        self.written += n as u64;
        if self.buf.len() == CHUNK_SIZE {
            self.cut_chunk();
            self.maybe_store().map_err(Error::into_io)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: ChunkStore> BlobWriter for ChunkedWriter<S> {
    fn write_shared(&mut self, data: SharedChunk) -> io::Result<()> {
        if !self.buf.is_empty() || self.held.is_some() || data.len() > CHUNK_SIZE {
            return self.write_all(&data);
        }
        if data.is_empty() {
            return Ok(());
        }
        self.written += data.len() as u64;
        if data.len() < CHUNK_SIZE {
            self.held = Some(data);
            return Ok(());
        }
        self.cut(ChunkData::Shared(data));
        self.maybe_store().map_err(Error::into_io)
    }

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
    /// `chunks` must have passed [`verify_chunk_list`].
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
        let ok = data.len() == want.len as usize
            && if self.chunks.len() == 1 {
                B3Digest::of(&data) == want.digest
            } else {
                chaining_value(&data, self.starts[i]) == want.cv
            };
        if !ok {
            return Err(Error::Corrupt(format!(
                "chunk {} (bytes {}..{}) does not match the blob's chunk list",
                want.digest,
                self.starts[i],
                self.starts[i + 1]
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
    let Some(chunks) = store.get_blob(digest)? else { return Ok(None) };
    verify_chunk_list(digest, &chunks)?;
    Ok(Some(Box::new(ChunkedReader::new(store.clone(), chunks))))
}

pub(crate) fn open_write<S: ChunkStore>(store: &S) -> Box<dyn BlobWriter> {
    Box::new(ChunkedWriter::new(store.clone()))
}

pub(crate) fn size<S: ChunkStore>(store: &S, digest: &B3Digest) -> Result<Option<u64>> {
    Ok(store.get_blob(digest)?.map(|c| total_len(&c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Merging per-chunk chaining values gives exactly BLAKE3 of the whole,
    /// for every tree shape up to 9 chunks.
    #[test]
    fn root_of_matches_blake3() {
        let data: Vec<u8> = (0..9 * CHUNK_SIZE + 1).map(|i| (i * 31 + i / 7) as u8).collect();
        for k in 1..=9 {
            for len in [k * CHUNK_SIZE - 1, k * CHUNK_SIZE, k * CHUNK_SIZE + 1] {
                let chunks: Vec<ChunkRef> = data[..len]
                    .chunks(CHUNK_SIZE)
                    .enumerate()
                    .map(|(i, c)| ChunkRef {
                        digest: B3Digest::of(c),
                        cv: chaining_value(c, (i * CHUNK_SIZE) as u64),
                        len: c.len() as u32,
                    })
                    .collect();
                assert_eq!(root_of(&chunks), Some(B3Digest::of(&data[..len])), "length {len}");
                assert_eq!(decode_chunks(&encode_chunks(&chunks)).unwrap(), chunks);
            }
        }
    }

    #[test]
    fn malformed_chunk_lists_have_no_root() {
        let c = |len| ChunkRef { digest: B3Digest::of(b""), cv: [0; 32], len };
        assert_eq!(root_of(&[]), None);
        assert_eq!(root_of(&[c(0)]), None);
        assert_eq!(root_of(&[c(CHUNK_SIZE as u32 + 1)]), None);
        assert_eq!(root_of(&[c(5), c(5)]), None);
        assert!(decode_chunks(&[0; 67]).is_err());
    }
}
