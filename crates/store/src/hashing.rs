//! [`ThreadedSha256`]: a `Write` sink that hashes (sha256) and counts on a
//! helper thread (started only once more than a batch is written), so the
//! NAR hash of a large import overlaps with reading files and storing blobs
//! on the calling thread.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use ferrix_castore::SharedChunk;
use ferrix_formats::{HashAlgo, Hasher, NixHash};

/// What the hashing thread gets: bytes gathered into a batch, or a shared
/// chunk buffer passed on without copying.
enum Batch {
    Owned(Vec<u8>),
    Shared(SharedChunk),
}

/// Lets the writer of a [`ThreadedSha256`] pass a shared buffer to the
/// hashing thread without a copy: [`ShareHandle::offer`] it, then write
/// exactly its bytes (the whole slice, in one `write_all`) into the sink,
/// directly or through wrappers that pass the slice on unchanged. The sink
/// recognises the slice by its address and length and takes the buffer
/// itself instead of copying the bytes.
#[derive(Clone)]
pub struct ShareHandle(Arc<Mutex<Option<SharedChunk>>>);

impl ShareHandle {
    pub fn offer(&self, chunk: SharedChunk) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(chunk);
    }
}

/// Bytes gathered before they are handed to the hashing thread.
const BATCH: usize = 1 << 20;

/// Hashes everything written to it; [`finish`] returns the sha256 and the
/// byte count. Up to one batch ([`BATCH`] bytes) is only gathered and hashed
/// on the calling thread at the end, so importing a small file or tree
/// starts no thread; past that, or when a shared buffer is offered, a
/// helper thread is started (once) and hashes from then on.
///
/// [`finish`]: ThreadedSha256::finish
pub struct ThreadedSha256 {
    buf: Vec<u8>,
    /// `None` until the helper thread is started.
    tx: Option<SyncSender<Batch>>,
    offered: ShareHandle,
    /// Hashed batches come back here to be filled again: no allocation (and
    /// no page faults on fresh memory) per batch.
    spare: Option<Receiver<Vec<u8>>>,
    worker: Option<JoinHandle<(NixHash, u64)>>,
}

impl ThreadedSha256 {
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            buf: Vec::new(),
            tx: None,
            offered: ShareHandle(Arc::new(Mutex::new(None))),
            spare: None,
            worker: None,
        })
    }

    /// Starts the helper thread, if it is not running yet.
    fn start(&mut self) -> io::Result<()> {
        if self.tx.is_some() {
            return Ok(());
        }
        // A few batches in flight: enough to keep both threads busy, little memory.
        let (tx, rx) = sync_channel::<Batch>(4);
        let (back, spare) = sync_channel::<Vec<u8>>(8);
        let worker = std::thread::Builder::new()
            .name("nar-sha256".into())
            .spawn(move || {
                let mut h = Hasher::new(HashAlgo::Sha256);
                let mut n = 0u64;
                for batch in rx {
                    match batch {
                        Batch::Owned(mut batch) => {
                            h.update(&batch);
                            n += batch.len() as u64;
                            batch.clear();
                            let _ = back.try_send(batch);
                        }
                        Batch::Shared(chunk) => {
                            h.update(&chunk);
                            n += chunk.len() as u64;
                        }
                    }
                }
                (h.finish(), n)
            })?;
        self.tx = Some(tx);
        self.spare = Some(spare);
        self.worker = Some(worker);
        Ok(())
    }

    /// The handle through which shared buffers are offered.
    pub fn share_handle(&self) -> ShareHandle {
        self.offered.clone()
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.start()?;
        let next = self.empty_batch();
        let batch = std::mem::replace(&mut self.buf, next);
        self.send_batch(Batch::Owned(batch))
    }

    fn send_batch(&self, batch: Batch) -> io::Result<()> {
        let tx = self.tx.as_ref().expect("sender lives until finish");
        tx.send(batch)
            .map_err(|_| io::Error::other("the NAR hashing thread stopped"))
    }

    /// The offered shared buffer, if `data` is exactly its bytes.
    fn take_offered(&self, data: &[u8]) -> Option<SharedChunk> {
        let mut offered = self.offered.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &*offered {
            Some(c) if c.as_ptr() == data.as_ptr() && c.len() == data.len() => offered.take(),
            _ => None,
        }
    }

    fn empty_batch(&self) -> Vec<u8> {
        self.spare
            .as_ref()
            .and_then(|s| s.try_recv().ok())
            .unwrap_or_else(|| Vec::with_capacity(BATCH))
    }

    /// The sha256 and size of everything written.
    pub fn finish(mut self) -> io::Result<(NixHash, u64)> {
        if self.tx.is_none() {
            // Never more than one batch: hashed here, no thread started.
            let mut h = Hasher::new(HashAlgo::Sha256);
            h.update(&self.buf);
            return Ok((h.finish(), self.buf.len() as u64));
        }
        self.send()?;
        drop(self.tx.take());
        let worker = self.worker.take().expect("worker lives until finish");
        worker
            .join()
            .map_err(|_| io::Error::other("the NAR hashing thread panicked"))
    }
}

impl Write for ThreadedSha256 {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !data.is_empty()
            && let Some(chunk) = self.take_offered(data)
        {
            self.start()?;
            self.send()?; // keeps the bytes in order
            self.send_batch(Batch::Shared(chunk))?;
            return Ok(data.len());
        }
        if self.buf.len() + data.len() > BATCH && !self.buf.is_empty() {
            self.send()?;
        }
        if data.len() >= BATCH {
            // Large writes go over as one batch of their own.
            self.start()?;
            let mut batch = self.empty_batch();
            batch.extend_from_slice(data);
            self.send_batch(Batch::Owned(batch))?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ThreadedSha256 {
    fn drop(&mut self) {
        // Abandoned (an error elsewhere): stop the worker and wait for it.
        drop(self.tx.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_plain_hash() {
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for split in [1, 100, 4096, BATCH - 1, BATCH, 3 * BATCH + 5] {
            let mut t = ThreadedSha256::new().unwrap();
            for piece in data.chunks(split) {
                t.write_all(piece).unwrap();
            }
            assert_eq!(
                t.finish().unwrap(),
                (HashAlgo::Sha256.digest(&data), data.len() as u64),
                "split {split}"
            );
        }
        // Shared buffers, offered or not, among small writes.
        let mut t = ThreadedSha256::new().unwrap();
        let share = t.share_handle();
        let mut expected = Vec::new();
        for (i, piece) in data.chunks(ferrix_castore::CHUNK_SIZE - 3).enumerate() {
            let mut c = ferrix_castore::ChunkBuf::new();
            c.fill_from(&mut &piece[..], piece.len()).unwrap();
            let c = Arc::new(c);
            if i % 3 != 2 {
                share.offer(c.clone());
            }
            t.write_all(b"(x)").unwrap();
            t.write_all(&c).unwrap();
            expected.extend_from_slice(b"(x)");
            expected.extend_from_slice(piece);
        }
        assert_eq!(
            t.finish().unwrap(),
            (HashAlgo::Sha256.digest(&expected), expected.len() as u64)
        );
        let empty = ThreadedSha256::new().unwrap();
        assert_eq!(empty.finish().unwrap(), (HashAlgo::Sha256.digest(b""), 0));
        // Small: no thread is started.
        let mut small = ThreadedSha256::new().unwrap();
        small.write_all(&data[..BATCH - 10]).unwrap();
        small.write_all(&data[BATCH - 10..BATCH]).unwrap();
        assert!(small.worker.is_none());
        assert_eq!(small.finish().unwrap(), (HashAlgo::Sha256.digest(&data[..BATCH]), BATCH as u64));
    }
}
