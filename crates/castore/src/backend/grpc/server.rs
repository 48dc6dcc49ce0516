//! The gRPC server: serves any [`Services`] over the castore protocol.
//!
//! Every call into the (synchronous) services runs on tokio's blocking pool,
//! so a slow disk never stalls the server's async threads, and inside the
//! server's own rayon pool: backends hash with rayon, and a client in the same
//! process may be blocking every global rayon worker while it waits for this
//! server (ingest uploads files from rayon workers).
//!
//! Every path matters: a blob upload's writer thread once ran outside the
//! pool, so its `rayon::join` queued on the global pool while every global
//! worker was blocked in a client upload waiting for that very writer: an
//! in-process ingest through the gRPC client hung (regression test: the
//! `ingest` cases of the shared suite run on `grpc_memory` and `grpc_redb`).

use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Router, TcpIncoming};
use tonic::{Request, Response, Status, Streaming};

use super::proto::blob_service_server::{self, BlobServiceServer};
use super::proto::directory_service_server::{self, DirectoryServiceServer};
use super::proto::{
    BlobChunk, EncodedDirectory, GetDirectoryRequest, HasDirectoryResponse, PutBlobRequest, PutBlobResponse,
    PutTreeResponse, ReadBlobRequest, StatBlobRequest, StatBlobResponse,
};
use super::{MAX_MESSAGE_SIZE, PIECE_SIZE, parse_digest, to_status};
use crate::backend::Services;
use crate::error::{Error, Result};
use crate::{B3Digest, BlobService, Directory, DirectoryService};

/// The most bytes of directories one `PutTree` call may send.
const MAX_PUT_TREE_BYTES: usize = 512 << 20;

type Pool = Arc<rayon::ThreadPool>;

/// Runs a blocking service call on the blocking pool, inside `pool`.
async fn blocking<T: Send + 'static>(
    pool: &Pool,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T, Status> {
    let pool = pool.clone();
    match tokio::task::spawn_blocking(move || pool.install(f)).await {
        Ok(r) => r.map_err(|e| to_status(&e)),
        Err(e) => Err(Status::internal(format!("castore call failed: {e}"))),
    }
}

struct BlobServer {
    blobs: Arc<dyn BlobService>,
    pool: Pool,
}

/// What the upload loop hands to the thread that owns the blob writer.
enum Upload {
    Data(Bytes),
    Finish(Option<B3Digest>),
}

#[tonic::async_trait]
impl blob_service_server::BlobService for BlobServer {
    async fn stat(&self, req: Request<StatBlobRequest>) -> Result<Response<StatBlobResponse>, Status> {
        let digest = parse_digest("digest", &req.get_ref().digest)?;
        let blobs = self.blobs.clone();
        let size = blocking(&self.pool, move || blobs.size(&digest)).await?;
        Ok(Response::new(StatBlobResponse { found: size.is_some(), size: size.unwrap_or(0) }))
    }

    type ReadStream = ReceiverStream<Result<BlobChunk, Status>>;

    async fn read(&self, req: Request<ReadBlobRequest>) -> Result<Response<Self::ReadStream>, Status> {
        let req = req.into_inner();
        let digest = parse_digest("digest", &req.digest)?;
        let blobs = self.blobs.clone();
        let Some(mut r) = blocking(&self.pool, move || blobs.open_read(&digest)).await? else {
            return Err(Status::not_found(format!("blob {digest} is not in the store")));
        };
        let (tx, rx) = mpsc::channel(4);
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let size = r.size();
            let start = req.offset.min(size);
            let end = req.length.map_or(size, |l| start.saturating_add(l).min(size));
            let send = |item| tx.blocking_send(item).is_ok();
            if let Err(e) = pool.install(|| r.seek(SeekFrom::Start(start))) {
                send(Err(Status::internal(format!("seeking in blob {digest}: {e}"))));
                return;
            }
            let mut at = start;
            while at < end {
                let n = usize::try_from(end - at).unwrap_or(usize::MAX).min(PIECE_SIZE);
                let mut buf = vec![0; n];
                if let Err(e) = pool.install(|| r.read_exact(&mut buf)) {
                    let code = if e.kind() == std::io::ErrorKind::InvalidData {
                        tonic::Code::DataLoss
                    } else {
                        tonic::Code::Internal
                    };
                    send(Err(Status::new(code, format!("reading blob {digest} at {at}: {e}"))));
                    return;
                }
                if !send(Ok(BlobChunk { data: buf.into() })) {
                    return; // the client went away
                }
                at += n as u64;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn put(&self, req: Request<Streaming<PutBlobRequest>>) -> Result<Response<PutBlobResponse>, Status> {
        let mut stream = req.into_inner();
        let (tx, mut rx) = mpsc::channel::<Upload>(4);
        let blobs = self.blobs.clone();
        let pool = self.pool.clone();
        // The writer lives on a blocking thread, inside the server's rayon
        // pool (writes hash chunks with `rayon::join`); it commits only on
        // `Finish`.
        let writer = tokio::task::spawn_blocking(move || {
            pool.install(move || -> Result<Option<B3Digest>> {
                let mut w = blobs.open_write();
                while let Some(m) = rx.blocking_recv() {
                    match m {
                        Upload::Data(b) => w.write_all(&b).map_err(|e| Error::io("writing blob", e))?,
                        Upload::Finish(Some(expected)) => return w.close_expecting(&expected).map(Some),
                        Upload::Finish(None) => return w.close().map(Some),
                    }
                }
                Ok(None) // abandoned: dropping `w` stores nothing
            })
        });
        let mut finish = None;
        let outcome: Result<(), Status> = async {
            while let Some(msg) = stream.message().await? {
                if finish.is_some() {
                    return Err(Status::invalid_argument("blob upload: a message after the finishing one"));
                }
                if !msg.data.is_empty() && tx.send(Upload::Data(msg.data)).await.is_err() {
                    return Ok(()); // the writer failed; its error is reported below
                }
                if msg.finish {
                    let expected = if msg.expected_digest.is_empty() {
                        None
                    } else {
                        Some(parse_digest("expected_digest", &msg.expected_digest)?)
                    };
                    finish = Some(expected);
                }
            }
            match finish {
                Some(expected) => {
                    let _ = tx.send(Upload::Finish(expected)).await;
                    Ok(())
                }
                None => Err(Status::invalid_argument(
                    "blob upload ended without a finishing message; nothing was stored",
                )),
            }
        }
        .await;
        drop(tx);
        let written = writer.await.map_err(|e| Status::internal(format!("blob writer failed: {e}")));
        outcome?;
        match written? {
            Ok(Some(digest)) => Ok(Response::new(PutBlobResponse { digest: Bytes::copy_from_slice(digest.as_bytes()) })),
            Ok(None) => Err(Status::internal("blob writer stopped early")),
            Err(e) => Err(to_status(&e)),
        }
    }
}

struct DirectoryServer {
    directories: Arc<dyn DirectoryService>,
    pool: Pool,
}

fn encoded(dir: &Directory) -> EncodedDirectory {
    EncodedDirectory { encoded: dir.encode().into() }
}

type ClosureStream = Pin<Box<dyn Stream<Item = Result<EncodedDirectory, Status>> + Send>>;

#[tonic::async_trait]
impl directory_service_server::DirectoryService for DirectoryServer {
    async fn get(&self, req: Request<GetDirectoryRequest>) -> Result<Response<EncodedDirectory>, Status> {
        let digest = parse_digest("digest", &req.get_ref().digest)?;
        let dirs = self.directories.clone();
        match blocking(&self.pool, move || dirs.get(&digest)).await? {
            Some(dir) => Ok(Response::new(encoded(&dir))),
            None => Err(Status::not_found(format!("directory {digest} is not in the store"))),
        }
    }

    async fn has(&self, req: Request<GetDirectoryRequest>) -> Result<Response<HasDirectoryResponse>, Status> {
        let digest = parse_digest("digest", &req.get_ref().digest)?;
        let dirs = self.directories.clone();
        let found = blocking(&self.pool, move || dirs.has(&digest)).await?;
        Ok(Response::new(HasDirectoryResponse { found }))
    }

    async fn put_tree(&self, req: Request<Streaming<EncodedDirectory>>) -> Result<Response<PutTreeResponse>, Status> {
        let mut stream = req.into_inner();
        let (mut batch, mut total) = (Vec::new(), 0usize);
        while let Some(msg) = stream.message().await? {
            total += msg.encoded.len();
            if total > MAX_PUT_TREE_BYTES {
                return Err(Status::resource_exhausted(format!(
                    "put_tree: more than {MAX_PUT_TREE_BYTES} bytes of directories in one call"
                )));
            }
            let dir = Directory::decode(&msg.encoded).map_err(|e| {
                Status::invalid_argument(format!("put_tree: directory #{} is malformed: {e}", batch.len()))
            })?;
            batch.push(dir);
        }
        let dirs = self.directories.clone();
        let root = blocking(&self.pool, move || dirs.put_tree(&batch)).await?;
        Ok(Response::new(PutTreeResponse { root: Bytes::copy_from_slice(root.as_bytes()) }))
    }

    type ClosureStream = ClosureStream;

    async fn closure(&self, req: Request<GetDirectoryRequest>) -> Result<Response<ClosureStream>, Status> {
        let digest = parse_digest("digest", &req.get_ref().digest)?;
        let dirs = self.directories.clone();
        let closure = blocking(&self.pool, move || dirs.closure(&digest)).await?;
        let items: Vec<Result<EncodedDirectory, Status>> = closure.iter().map(|(_, d)| Ok(encoded(d))).collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }
}

/// A tonic router serving `services` (to add more services, or serve it on a
/// custom listener). Messages above [`MAX_MESSAGE_SIZE`](super::MAX_MESSAGE_SIZE)
/// are refused.
pub fn router(services: Services) -> Router {
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get().max(4));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ferrix-castore-grpc-{i}"))
        .build()
        .expect("a rayon pool with a fixed thread count builds");
    let pool = Arc::new(pool);
    let blobs = BlobServiceServer::new(BlobServer { blobs: services.blobs, pool: pool.clone() })
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let dirs = DirectoryServiceServer::new(DirectoryServer { directories: services.directories, pool })
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    tonic::transport::Server::builder().add_service(blobs).add_service(dirs)
}

fn transport_err(e: tonic::transport::Error) -> Error {
    Error::Storage(format!("castore gRPC server: {e}"))
}

/// Serves `services` on `addr` until the process ends. Runs on the caller's
/// tokio runtime (multi-threaded, with the time driver enabled).
pub async fn serve(services: Services, addr: SocketAddr) -> Result<()> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::io(format!("binding {addr}"), e))?;
    serve_with_shutdown(services, listener, std::future::pending()).await
}

/// Serves `services` on an already bound listener until `shutdown`
/// completes, then waits for open calls to finish.
pub async fn serve_with_shutdown(
    services: Services,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    serve_router_with_shutdown(router(services), listener, shutdown).await
}

/// Serves a router (from [`router`], possibly with more services added) on
/// an already bound listener until `shutdown` completes.
pub async fn serve_router_with_shutdown(
    router: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    router.serve_with_incoming_shutdown(incoming, shutdown).await.map_err(transport_err)
}

/// A server running in a background thread; dropping it stops the server.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl ServerHandle {
    /// The address the server listens on (the real port if bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL a client backend connects to: `grpc+http://ADDR`.
    pub fn url(&self) -> String {
        format!("grpc+http://{}", self.addr)
    }

    /// Stops the server: open calls get up to a second to finish.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(Error::Storage("castore gRPC server thread panicked".into()))),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// Binds `addr` (e.g. `127.0.0.1:0`) and serves `services` from a background
/// thread with its own tokio runtime (`worker_threads` async threads).
pub fn spawn(services: Services, addr: SocketAddr, worker_threads: usize) -> Result<ServerHandle> {
    spawn_router(router(services), addr, worker_threads)
}

/// Like [`spawn`], for a router built with [`router`] and more services.
pub fn spawn_router(router: Router, addr: SocketAddr, worker_threads: usize) -> Result<ServerHandle> {
    let std_listener = std::net::TcpListener::bind(addr).map_err(|e| Error::io(format!("binding {addr}"), e))?;
    let addr = std_listener.local_addr().map_err(|e| Error::io("reading the bound address", e))?;
    std_listener.set_nonblocking(true).map_err(|e| Error::io("configuring the listener", e))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads.max(1))
        .thread_name("ferrix-castore-grpc-server")
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the gRPC server runtime", e))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ferrix-castore-grpc-server".into())
        .spawn(move || {
            let result = rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener)
                    .map_err(|e| Error::io("registering the listener", e))?;
                let (graceful, graceful_rx) = oneshot::channel::<()>();
                let server = serve_router_with_shutdown(router, listener, async {
                    let _ = graceful_rx.await;
                });
                tokio::pin!(server);
                tokio::select! {
                    r = &mut server => return r,
                    _ = stopped => {}
                }
                let _ = graceful.send(());
                // Clients that keep their connection open would hold a
                // graceful shutdown forever: give them a second.
                tokio::time::timeout(Duration::from_secs(1), server).await.unwrap_or(Ok(()))
            });
            rt.shutdown_timeout(Duration::from_secs(1));
            result
        })
        .map_err(|e| Error::io("starting the gRPC server thread", e))?;
    Ok(ServerHandle { addr, stop: Some(stop), thread: Some(thread) })
}
