//! Path infos over gRPC (`grpc+http://host:port`): [`GrpcPathInfoService`],
//! the client backend, and [`PathInfoServer`], which serves any
//! [`PathInfoService`]. The server runs next to the castore gRPC services on
//! the same port ([`crate::server`], `ferrix store daemon`), so one URL
//! names a whole store.
//!
//! The protocol is `proto/pathinfo.proto`. Path infos travel in their
//! database encoding ([`PathInfo::encode`]); the server decodes and checks
//! each one (a malformed one is `INVALID_ARGUMENT`) and its backend checks
//! the root node against the server's castore, as every backend does. Errors
//! the store names (a missing root, an invalid path info, a locked store)
//! are carried in the status details and rebuilt by the client.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

use super::PathInfoService;
use crate::error::{Error, Result};
use crate::path_info::PathInfo;

/// Generated protobuf messages and tonic client and server stubs.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("ferrix.store.v1");
}

use proto::path_info_error_detail::Kind;
use proto::path_info_service_client::PathInfoServiceClient;
use proto::path_info_service_server::{self, PathInfoServiceServer};
use proto::{EncodedPathInfo, GetPathInfoRequest, GetPathInfoResponse, ListPathInfoRequest, PathInfoErrorDetail};

/// The largest message either side accepts (the same bound as castore's).
pub const MAX_MESSAGE_SIZE: usize = ferrix_castore::backend::grpc::MAX_MESSAGE_SIZE;

/// A store error as a gRPC status, with the details the client needs to
/// rebuild it.
fn to_status(e: &Error) -> Status {
    let (code, detail) = match e {
        Error::MissingRoot { path, what } => (
            Code::FailedPrecondition,
            Some(PathInfoErrorDetail { kind: Kind::MissingRoot as i32, path: path.clone(), what: what.clone() }),
        ),
        Error::InvalidPathInfo { path, reason } => (
            Code::InvalidArgument,
            Some(PathInfoErrorDetail { kind: Kind::InvalidPathInfo as i32, path: path.clone(), what: reason.clone() }),
        ),
        Error::StoreLocked { path } => (
            Code::Unavailable,
            Some(PathInfoErrorDetail {
                kind: Kind::StoreLocked as i32,
                path: path.display().to_string(),
                what: String::new(),
            }),
        ),
        Error::Corrupt(_) => (Code::DataLoss, None),
        _ => (Code::Internal, None),
    };
    match detail {
        Some(d) => Status::with_details(code, e.to_string(), d.encode_to_vec().into()),
        None => Status::new(code, e.to_string()),
    }
}

/// Rebuilds the store error a status carries; anything else (transport
/// failures, refused requests) becomes [`Error::Storage`].
fn from_status(s: &Status) -> Error {
    let generic = || Error::Storage(format!("path info gRPC server: {}: {}", s.code(), s.message()));
    let Ok(d) = PathInfoErrorDetail::decode(s.details()) else { return generic() };
    match Kind::try_from(d.kind).unwrap_or(Kind::Other) {
        Kind::Other => generic(),
        Kind::MissingRoot => Error::MissingRoot { path: d.path, what: d.what },
        Kind::InvalidPathInfo => Error::InvalidPathInfo { path: d.path, reason: d.what },
        Kind::StoreLocked => Error::StoreLocked { path: d.path.into() },
    }
}

#[allow(clippy::result_large_err)]
fn decode_request(bytes: &[u8]) -> Result<PathInfo, Status> {
    PathInfo::decode(bytes).map_err(|e| Status::invalid_argument(format!("malformed path info: {e}")))
}

/// Serves a [`PathInfoService`] (add it to a tonic router with
/// [`PathInfoServer::into_service`]).
pub struct PathInfoServer {
    paths: Arc<dyn PathInfoService>,
}

impl PathInfoServer {
    pub fn new(paths: Arc<dyn PathInfoService>) -> Self {
        Self { paths }
    }

    /// The tonic service, refusing messages above [`MAX_MESSAGE_SIZE`].
    pub fn into_service(self) -> PathInfoServiceServer<Self> {
        PathInfoServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    /// Runs a blocking backend call on tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn PathInfoService) -> Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let paths = self.paths.clone();
        match tokio::task::spawn_blocking(move || f(&*paths)).await {
            Ok(r) => r.map_err(|e| to_status(&e)),
            Err(e) => Err(Status::internal(format!("path info call failed: {e}"))),
        }
    }
}

type ListStream = tokio_stream::Iter<std::vec::IntoIter<Result<EncodedPathInfo, Status>>>;

#[tonic::async_trait]
impl path_info_service_server::PathInfoService for PathInfoServer {
    async fn get(&self, req: Request<GetPathInfoRequest>) -> Result<Response<GetPathInfoResponse>, Status> {
        let digest: [u8; 20] = req.get_ref().digest.as_ref().try_into().map_err(|_| {
            Status::invalid_argument(format!(
                "digest: expected the 20 bytes of a store path digest, got {}",
                req.get_ref().digest.len()
            ))
        })?;
        let info = self.blocking(move |p| p.get(&digest)).await?;
        Ok(Response::new(GetPathInfoResponse {
            found: info.is_some(),
            encoded: info.map(|i| Bytes::from(i.encode())).unwrap_or_default(),
        }))
    }

    async fn put(&self, req: Request<EncodedPathInfo>) -> Result<Response<EncodedPathInfo>, Status> {
        let info = decode_request(&req.get_ref().encoded)?;
        let stored = self.blocking(move |p| p.put(info)).await?;
        Ok(Response::new(EncodedPathInfo { encoded: stored.encode().into() }))
    }

    type ListStream = ListStream;

    async fn list(&self, _: Request<ListPathInfoRequest>) -> Result<Response<ListStream>, Status> {
        let all = self.blocking(|p| p.list()).await?;
        let items: Vec<_> = all.iter().map(|i| Ok(EncodedPathInfo { encoded: i.encode().into() })).collect();
        Ok(Response::new(tokio_stream::iter(items)))
    }
}

/// Path infos on a store gRPC server; cheap to clone. Owns a private tokio
/// runtime, so it can be called from synchronous code and from inside
/// another runtime (which then blocks one thread).
#[derive(Clone)]
pub struct GrpcPathInfoService {
    client: PathInfoServiceClient<Channel>,
    rt: Arc<tokio::runtime::Runtime>,
}

impl GrpcPathInfoService {
    /// Connects to `http://host:port`, failing if the server cannot be
    /// reached within a few seconds.
    pub fn connect(uri: &str) -> Result<Self> {
        let endpoint = Endpoint::from_shared(uri.to_owned())
            .map_err(|e| Error::InvalidUrl { url: uri.to_owned(), reason: e.to_string() })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ferrix-pathinfo-grpc-client")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the gRPC client runtime", e))?;
        let rt = Arc::new(rt);
        let channel = block_on(&rt, endpoint.connect())
            .map_err(|e| Error::Storage(format!("cannot connect to store gRPC server {uri}: {e}")))?;
        let client = PathInfoServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        Ok(Self { client, rt })
    }
}

/// Runs `f` on `rt`; from inside another runtime (where `block_on` would
/// panic) it blocks on a helper thread.
fn block_on<T: Send>(rt: &tokio::runtime::Runtime, f: impl Future<Output = T> + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return rt.block_on(f);
    }
    std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
}

/// A path info the server sent: it must decode.
fn reply(bytes: &[u8]) -> Result<PathInfo> {
    PathInfo::decode(bytes).map_err(|e| Error::Storage(format!("path info gRPC server sent a bad path info: {e}")))
}

impl PathInfoService for GrpcPathInfoService {
    fn get(&self, digest: &[u8; 20]) -> Result<Option<PathInfo>> {
        let mut c = self.client.clone();
        let req = GetPathInfoRequest { digest: Bytes::copy_from_slice(digest) };
        let r = block_on(&self.rt, c.get(req)).map_err(|s| from_status(&s))?.into_inner();
        if !r.found {
            return Ok(None);
        }
        let info = reply(&r.encoded)?;
        if info.store_path.digest() != *digest {
            return Err(Error::Storage(format!(
                "path info gRPC server answered for {} when asked for another path",
                info.store_path
            )));
        }
        Ok(Some(info))
    }

    fn put(&self, info: PathInfo) -> Result<PathInfo> {
        let mut c = self.client.clone();
        let req = EncodedPathInfo { encoded: info.encode().into() };
        let r = block_on(&self.rt, c.put(req)).map_err(|s| from_status(&s))?.into_inner();
        reply(&r.encoded)
    }

    fn list(&self) -> Result<Vec<PathInfo>> {
        let mut c = self.client.clone();
        block_on(&self.rt, async move {
            let mut stream = c.list(ListPathInfoRequest {}).await.map_err(|s| from_status(&s))?.into_inner();
            let mut out = Vec::new();
            while let Some(m) = stream.message().await.map_err(|s| from_status(&s))? {
                out.push(reply(&m.encoded)?);
            }
            Ok(out)
        })
    }
}
