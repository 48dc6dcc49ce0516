//! The store's gRPC server: castore (blobs, directories) and path infos on
//! one port, so `grpc+http://host:port` names a whole [`Store`]. This is
//! what `ferrix store daemon` runs; any backend can sit behind it.

use std::future::Future;
use std::net::SocketAddr;

use ferrix_castore::backend::grpc::{self as cagrpc, ServerHandle};
use tonic::transport::server::Router;

use crate::error::Result;
use crate::pathinfo::grpc::PathInfoServer;
use crate::store::Store;

/// A tonic router serving everything `store` holds.
pub fn router(store: &Store) -> Router {
    cagrpc::router(store.castore()).add_service(PathInfoServer::new(store.path_info.clone()).into_service())
}

/// Serves `store` on an already bound listener until `shutdown` completes.
/// Runs on the caller's (multi-threaded) tokio runtime.
pub async fn serve_with_shutdown(
    store: &Store,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    Ok(cagrpc::serve_router_with_shutdown(router(store), listener, shutdown).await?)
}

/// Binds `addr` and serves `store` from a background thread with its own
/// runtime; dropping the handle stops the server (tests, synchronous callers).
pub fn spawn(store: &Store, addr: SocketAddr, worker_threads: usize) -> Result<ServerHandle> {
    Ok(cagrpc::spawn_router(router(store), addr, worker_threads)?)
}

