//! [`ThreadedSha256`]: a `Write` sink that hashes (sha256) and counts on a
//! helper thread, so the NAR hash of an import overlaps with reading files
//! and storing blobs on the calling thread.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use ferrix_formats::{HashAlgo, Hasher, NixHash};

/// Bytes gathered before they are handed to the hashing thread.
const BATCH: usize = 1 << 20;

/// Hashes everything written to it on a helper thread; [`finish`] returns
/// the sha256 and the byte count.
///
/// [`finish`]: ThreadedSha256::finish
pub struct ThreadedSha256 {
    buf: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    /// Hashed batches come back here to be filled again: no allocation (and
    /// no page faults on fresh memory) per batch.
    spare: Receiver<Vec<u8>>,
    worker: Option<JoinHandle<(NixHash, u64)>>,
}

impl ThreadedSha256 {
    pub fn new() -> io::Result<Self> {
        // A few batches in flight: enough to keep both threads busy, little memory.
        let (tx, rx) = sync_channel::<Vec<u8>>(4);
        let (back, spare) = sync_channel::<Vec<u8>>(8);
        let worker = std::thread::Builder::new()
            .name("nar-sha256".into())
            .spawn(move || {
                let mut h = Hasher::new(HashAlgo::Sha256);
                let mut n = 0u64;
                for batch in rx {
                    h.update(&batch);
                    n += batch.len() as u64;
                    let mut batch = batch;
                    batch.clear();
                    let _ = back.try_send(batch);
                }
                (h.finish(), n)
            })?;
        Ok(Self {
            buf: Vec::with_capacity(BATCH),
            tx: Some(tx),
            spare,
            worker: Some(worker),
        })
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self.empty_batch();
        let batch = std::mem::replace(&mut self.buf, next);
        let tx = self.tx.as_ref().expect("sender lives until finish");
        tx.send(batch)
            .map_err(|_| io::Error::other("the NAR hashing thread stopped"))
    }

    fn empty_batch(&self) -> Vec<u8> {
        self.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(BATCH))
    }

    /// The sha256 and size of everything written.
    pub fn finish(mut self) -> io::Result<(NixHash, u64)> {
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
        if self.buf.len() + data.len() > BATCH && !self.buf.is_empty() {
            self.send()?;
        }
        if data.len() >= BATCH {
            // Large writes go over as one batch of their own.
            let mut batch = self.empty_batch();
            batch.extend_from_slice(data);
            let tx = self.tx.as_ref().expect("sender lives until finish");
            tx.send(batch)
                .map_err(|_| io::Error::other("the NAR hashing thread stopped"))?;
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
        let empty = ThreadedSha256::new().unwrap();
        assert_eq!(empty.finish().unwrap(), (HashAlgo::Sha256.digest(b""), 0));
    }
}
