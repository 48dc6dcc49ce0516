//! A writer that hands what is written on in pieces, for streaming a NAR
//! from the thread that renders it to whoever consumes it.

use std::io::{self, Write};

/// Size of the pieces a [`ChunkedWriter`] passes on.
pub(crate) const CHUNK: usize = 1 << 16;

/// Collects writes and passes them to `send` in pieces of at least
/// [`CHUNK`] bytes; `flush` passes on what is left. An error from `send`
/// (the consumer went away) is the write's error.
pub(crate) struct ChunkedWriter<F: FnMut(Vec<u8>) -> io::Result<()>> {
    buf: Vec<u8>,
    send: F,
}

impl<F: FnMut(Vec<u8>) -> io::Result<()>> ChunkedWriter<F> {
    pub(crate) fn new(send: F) -> Self {
        ChunkedWriter { buf: Vec::with_capacity(CHUNK), send }
    }
}

impl<F: FnMut(Vec<u8>) -> io::Result<()>> Write for ChunkedWriter<F> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            (self.send)(chunk)?;
        }
        Ok(())
    }
}
