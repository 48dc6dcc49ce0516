//! The gRPC client backend: [`BlobService`] and [`DirectoryService`] over a
//! tonic channel, driven by a private tokio runtime.

use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

use super::proto::blob_service_client::BlobServiceClient;
use super::proto::directory_service_client::DirectoryServiceClient;
use super::proto::{
    BlobChunk, EncodedDirectory, GetDirectoryRequest, PutBlobRequest, PutBlobResponse, ReadBlobRequest,
    StatBlobRequest,
};
use super::{MAX_MESSAGE_SIZE, PIECE_SIZE, from_status};
use crate::backend::Services;
use crate::error::{Error, Result};
use crate::{B3Digest, BlobReader, BlobService, BlobWriter, Directory, DirectoryService};

/// The private runtime every client call runs on.
#[derive(Clone)]
struct Rt(Arc<tokio::runtime::Runtime>);

impl Rt {
    /// Runs `f` on the private runtime. Called from inside another tokio
    /// runtime (where `block_on` would panic), it blocks on a helper thread.
    fn block_on<T: Send>(&self, f: impl Future<Output = T> + Send) -> T {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.0.block_on(f);
        }
        std::thread::scope(|s| {
            s.spawn(|| self.0.block_on(f)).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

fn digest_bytes(d: &B3Digest) -> Bytes {
    Bytes::copy_from_slice(d.as_bytes())
}

/// A server reply that should hold a digest.
fn reply_digest(what: &str, b: &[u8]) -> Result<B3Digest> {
    B3Digest::try_from(b).map_err(|e| Error::Storage(format!("castore gRPC server sent a bad {what}: {e}")))
}

/// A connection to a castore gRPC server; cheap to clone.
#[derive(Clone)]
pub struct GrpcBackend {
    blobs: BlobServiceClient<Channel>,
    dirs: DirectoryServiceClient<Channel>,
    rt: Rt,
}

impl GrpcBackend {
    /// Connects to `http://host:port` (or `https://…`), failing if the
    /// server cannot be reached within a few seconds. Lost connections are
    /// re-established by later calls.
    pub fn connect(uri: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidUrl { url: uri.to_owned(), reason };
        let endpoint = Endpoint::from_shared(uri.to_owned())
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ferrix-castore-grpc-client")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the gRPC client runtime", e))?;
        let rt = Rt(Arc::new(rt));
        let channel = rt
            .block_on(endpoint.connect())
            .map_err(|e| Error::Storage(format!("cannot connect to castore gRPC server {uri}: {e}")))?;
        let blobs = BlobServiceClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        let dirs = DirectoryServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        Ok(Self { blobs, dirs, rt })
    }

    pub fn services(&self) -> Services {
        Services {
            blobs: Arc::new(GrpcBlobService { backend: self.clone() }),
            directories: Arc::new(GrpcDirectoryService { backend: self.clone() }),
        }
    }
}

/// Blobs on a castore gRPC server.
pub struct GrpcBlobService {
    backend: GrpcBackend,
}

impl BlobService for GrpcBlobService {
    fn size(&self, digest: &B3Digest) -> Result<Option<u64>> {
        let mut c = self.backend.blobs.clone();
        let req = StatBlobRequest { digest: digest_bytes(digest) };
        let r = self.backend.rt.block_on(c.stat(req)).map_err(|s| from_status(&s))?.into_inner();
        Ok(r.found.then_some(r.size))
    }

    fn open_read(&self, digest: &B3Digest) -> Result<Option<Box<dyn BlobReader>>> {
        let Some(size) = self.size(digest)? else { return Ok(None) };
        Ok(Some(Box::new(GrpcBlobReader {
            client: self.backend.blobs.clone(),
            rt: self.backend.rt.clone(),
            digest: *digest,
            size,
            pos: 0,
            stream: None,
            piece: Bytes::new(),
            hasher: Some(Box::new(blake3::Hasher::new())),
        })))
    }

    fn open_write(&self) -> Box<dyn BlobWriter> {
        let (tx, rx) = mpsc::channel(4);
        let mut client = self.backend.blobs.clone();
        let call = self.backend.rt.0.spawn(async move { client.put(ReceiverStream::new(rx)).await });
        Box::new(GrpcBlobWriter {
            rt: self.backend.rt.clone(),
            tx: Some(tx),
            call: Some(call),
            buf: Vec::new(),
            written: 0,
            hasher: Box::new(blake3::Hasher::new()),
        })
    }
}

/// Reads a blob as ranged server streams: a stream runs from the current
/// position to the end and is dropped (cancelling it) on a seek.
struct GrpcBlobReader {
    client: BlobServiceClient<Channel>,
    rt: Rt,
    digest: B3Digest,
    size: u64,
    pos: u64,
    stream: Option<Streaming<BlobChunk>>,
    /// Received bytes starting at `pos`, not yet read.
    piece: Bytes,
    /// Hashes what was read while reading sequentially from offset 0.
    hasher: Option<Box<blake3::Hasher>>,
}

fn status_io(s: &Status) -> io::Error {
    match s.code() {
        Code::DataLoss => io::Error::new(io::ErrorKind::InvalidData, from_status(s)),
        _ => from_status(s).into_io(),
    }
}

impl GrpcBlobReader {
    /// Makes `piece` non-empty (`pos < size` must hold).
    fn fill(&mut self) -> io::Result<()> {
        while self.piece.is_empty() {
            if self.stream.is_none() {
                let mut c = self.client.clone();
                let req = ReadBlobRequest { digest: digest_bytes(&self.digest), offset: self.pos, length: None };
                let stream = self.rt.block_on(c.read(req)).map_err(|s| status_io(&s))?.into_inner();
                self.stream = Some(stream);
            }
            let stream = self.stream.as_mut().expect("opened above");
            match self.rt.block_on(stream.message()) {
                Ok(Some(chunk)) => self.piece = chunk.data,
                Ok(None) => {
                    self.stream = None;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("blob {} ended at {} of {} bytes", self.digest, self.pos, self.size),
                    ));
                }
                Err(s) => {
                    self.stream = None;
                    return Err(status_io(&s));
                }
            }
        }
        Ok(())
    }
}

impl Read for GrpcBlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        self.fill()?;
        let left = usize::try_from(self.size - self.pos).unwrap_or(usize::MAX);
        let n = out.len().min(self.piece.len()).min(left);
        out[..n].copy_from_slice(&self.piece[..n]);
        self.piece.advance(n);
        self.pos += n as u64;
        if let Some(h) = &mut self.hasher {
            h.update(&out[..n]);
            if self.pos == self.size {
                let got = B3Digest::from(h.finalize());
                self.hasher = None;
                if got != self.digest {
                    let e = Error::Corrupt(format!("blob {} from the server hashes to {got}", self.digest));
                    return Err(e.into_io());
                }
            }
        }
        Ok(n)
    }
}

impl Seek for GrpcBlobReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the blob"))?;
        if target != self.pos {
            // Forward within the received piece: keep the stream.
            match target.checked_sub(self.pos) {
                Some(skip) if skip < self.piece.len() as u64 => self.piece.advance(skip as usize),
                _ => {
                    self.stream = None;
                    self.piece = Bytes::new();
                }
            }
            self.hasher = (target == 0).then(|| Box::new(blake3::Hasher::new()));
            self.pos = target;
        }
        Ok(target)
    }
}

impl BlobReader for GrpcBlobReader {
    fn size(&self) -> u64 {
        self.size
    }
}

/// Streams a blob to the server as it is written.
struct GrpcBlobWriter {
    rt: Rt,
    tx: Option<mpsc::Sender<PutBlobRequest>>,
    call: Option<JoinHandle<Result<tonic::Response<PutBlobResponse>, Status>>>,
    buf: Vec<u8>,
    written: u64,
    hasher: Box<blake3::Hasher>,
}

impl GrpcBlobWriter {
    fn send(&mut self, msg: PutBlobRequest) -> Result<()> {
        let tx = self.tx.as_ref().expect("the writer is open");
        if futures::executor::block_on(tx.send(msg)).is_ok() {
            return Ok(());
        }
        // The call ended early: its result says why.
        self.tx = None;
        Err(self.finish_call().err().unwrap_or_else(|| Error::Storage("blob upload ended early".into())))
    }

    fn send_buf(&mut self) -> Result<()> {
        let data = Bytes::from(std::mem::take(&mut self.buf));
        self.send(PutBlobRequest { data, finish: false, expected_digest: Bytes::new() })
    }

    fn finish_call(&mut self) -> Result<B3Digest> {
        let call = self.call.take().expect("the call is awaited once");
        match self.rt.block_on(call) {
            Ok(Ok(r)) => reply_digest("blob digest", &r.into_inner().digest),
            Ok(Err(s)) => Err(from_status(&s)),
            Err(e) => Err(Error::Storage(format!("blob upload task failed: {e}"))),
        }
    }

    // the trait takes the writer boxed, so that it can be a trait object
    #[allow(clippy::boxed_local)]
    fn finish(mut self: Box<Self>, expected: Option<&B3Digest>) -> Result<B3Digest> {
        let data = Bytes::from(std::mem::take(&mut self.buf));
        let expected_digest = expected.map(digest_bytes).unwrap_or_default();
        self.send(PutBlobRequest { data, finish: true, expected_digest })?;
        self.tx = None; // ends the stream: the server commits
        let digest = self.finish_call()?;
        let local = B3Digest::from(self.hasher.finalize());
        if digest != local {
            return Err(Error::Corrupt(format!("the server stored blob {digest}, but {local} was sent")));
        }
        Ok(digest)
    }
}

impl Write for GrpcBlobWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(PIECE_SIZE - self.buf.len());
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(PIECE_SIZE);
        }
        self.buf.extend_from_slice(&data[..n]);
        self.hasher.update(&data[..n]);
        self.written += n as u64;
        if self.buf.len() == PIECE_SIZE {
            self.send_buf().map_err(Error::into_io)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BlobWriter for GrpcBlobWriter {
    fn bytes_written(&self) -> u64 {
        self.written
    }

    fn close(self: Box<Self>) -> Result<B3Digest> {
        self.finish(None)
    }

    fn close_expecting(self: Box<Self>, expected: &B3Digest) -> Result<B3Digest> {
        self.finish(Some(expected))
    }
}

impl Drop for GrpcBlobWriter {
    fn drop(&mut self) {
        // Not closed: the stream ends without `finish` and the call is
        // cancelled, so the server stores nothing.
        self.tx = None;
        if let Some(call) = self.call.take() {
            call.abort();
        }
    }
}

/// Directories on a castore gRPC server, checked against its blobs there.
pub struct GrpcDirectoryService {
    backend: GrpcBackend,
}

fn decode_checked(digest: &B3Digest, bytes: &[u8]) -> Result<Directory> {
    if B3Digest::of(bytes) != *digest {
        return Err(Error::Corrupt(format!("directory {digest} from the server does not match its digest")));
    }
    Directory::decode(bytes).map_err(|e| Error::Corrupt(format!("directory {digest} from the server: {e}")))
}

impl DirectoryService for GrpcDirectoryService {
    fn get(&self, digest: &B3Digest) -> Result<Option<Directory>> {
        let mut c = self.backend.dirs.clone();
        let req = GetDirectoryRequest { digest: digest_bytes(digest) };
        match self.backend.rt.block_on(c.get(req)) {
            Ok(r) => decode_checked(digest, &r.into_inner().encoded).map(Some),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(from_status(&s)),
        }
    }

    fn has(&self, digest: &B3Digest) -> Result<bool> {
        let mut c = self.backend.dirs.clone();
        let req = GetDirectoryRequest { digest: digest_bytes(digest) };
        Ok(self.backend.rt.block_on(c.has(req)).map_err(|s| from_status(&s))?.into_inner().found)
    }

    fn put_tree(&self, dirs: &[Directory]) -> Result<B3Digest> {
        let last = dirs.last().ok_or(Error::EmptyTree)?.digest();
        let msgs: Vec<EncodedDirectory> = dirs.iter().map(|d| EncodedDirectory { encoded: d.encode().into() }).collect();
        let mut c = self.backend.dirs.clone();
        let r = self.backend.rt.block_on(c.put_tree(tokio_stream::iter(msgs))).map_err(|s| from_status(&s))?;
        let root = reply_digest("root digest", &r.into_inner().root)?;
        if root != last {
            return Err(Error::Storage(format!("castore gRPC server stored root {root}, expected {last}")));
        }
        Ok(root)
    }

    fn closure(&self, root: &B3Digest) -> Result<Vec<(B3Digest, Directory)>> {
        let mut c = self.backend.dirs.clone();
        let req = GetDirectoryRequest { digest: digest_bytes(root) };
        self.backend.rt.block_on(async {
            let mut stream = c.closure(req).await.map_err(|s| from_status(&s))?.into_inner();
            let mut out = Vec::new();
            while let Some(msg) = stream.message().await.map_err(|s| from_status(&s))? {
                let digest = B3Digest::of(&msg.encoded);
                let dir = Directory::decode(&msg.encoded)
                    .map_err(|e| Error::Corrupt(format!("directory {digest} from the server: {e}")))?;
                out.push((digest, dir));
            }
            match out.first() {
                Some((d, _)) if d == root => Ok(out),
                _ => Err(Error::Corrupt(format!("the server's closure of {root} does not start with it"))),
            }
        })
    }
}
