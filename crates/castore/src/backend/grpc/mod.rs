//! gRPC backend (`grpc+http://host:port`): a tonic server that serves any
//! castore [`Services`](super::Services), and a client backend that talks to
//! it, so several processes or machines share one store.
//!
//! - [`serve`] / [`serve_with_shutdown`]: run the server on the caller's tokio
//!   runtime; [`spawn`]: run it on its own runtime in a background thread
//!   (tests, or a synchronous caller), stopped when the [`ServerHandle`] drops.
//! - [`GrpcBackend::connect`]: the client; [`from_url`](super::from_url)
//!   builds it from `grpc+http://host:port`. Like the object-store backend it
//!   owns a private tokio runtime, so its services stay synchronous and can
//!   be called from inside another runtime (which then blocks one thread).
//!
//! The protocol is `proto/castore.proto`. Blobs go up as a client stream of
//! pieces; the server hashes them as they arrive, and the blob becomes
//! visible only once the stream ends with a `finish` message whose digest
//! (if given) matches. Blobs come down as a server stream of a byte range, so
//! a reader seeks without fetching the whole blob. Directories travel in
//! their canonical encoding; the server's backend checks their references
//! (`put_tree` is all or nothing), and the client checks every directory it
//! receives against its digest.
//!
//! What the client verifies: directories always; a blob only when it is read
//! sequentially from offset 0 to its end (`get`, `read_to_end`), where the
//! BLAKE3 of the received bytes must equal the blob digest. A ranged read
//! after a seek trusts the server (which verifies its own chunks).

mod client;
mod server;

pub use client::{GrpcBackend, GrpcBlobService, GrpcDirectoryService};
pub use server::{ServerHandle, router, serve, serve_router_with_shutdown, serve_with_shutdown, spawn, spawn_router};

/// Generated protobuf messages and tonic client and server stubs.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("ferrix.castore.v1");
}

use prost::Message;
use tonic::{Code, Status};

use crate::B3Digest;
use crate::error::Error;
use proto::ErrorDetail;
use proto::error_detail::Kind;

/// The largest gRPC message either side accepts or sends (a directory's
/// encoding must fit in one message; blob pieces are far smaller).
pub const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// Blob bytes per streamed message, in both directions.
pub(crate) const PIECE_SIZE: usize = 256 << 10;

/// Parses a digest field of a request.
#[allow(clippy::result_large_err)]
pub(crate) fn parse_digest(field: &str, bytes: &[u8]) -> Result<B3Digest, Status> {
    B3Digest::try_from(bytes).map_err(|e| Status::invalid_argument(format!("{field}: {e}")))
}

/// A castore error as a gRPC status, with the details the client needs to
/// rebuild it.
pub(crate) fn to_status(e: &Error) -> Status {
    let mut d = ErrorDetail::default();
    let digest = |x: &B3Digest| bytes::Bytes::copy_from_slice(x.as_bytes());
    let code = match e {
        Error::DigestMismatch { expected, actual } => {
            d.kind = Kind::DigestMismatch as i32;
            d.digest = digest(expected);
            d.other = digest(actual);
            Code::InvalidArgument
        }
        Error::MissingBlob { name, digest: x } => {
            d.kind = Kind::MissingBlob as i32;
            d.name = name.clone();
            d.digest = digest(x);
            Code::FailedPrecondition
        }
        Error::MissingDirectory { name, digest: x } => {
            d.kind = Kind::MissingDirectory as i32;
            d.name = name.clone();
            d.digest = digest(x);
            Code::FailedPrecondition
        }
        Error::SizeMismatch { name, digest: x, claimed, actual } => {
            d.kind = Kind::SizeMismatch as i32;
            d.name = name.clone();
            d.digest = digest(x);
            d.claimed = *claimed;
            d.actual = *actual;
            Code::FailedPrecondition
        }
        Error::EmptyTree => {
            d.kind = Kind::EmptyTree as i32;
            Code::InvalidArgument
        }
        Error::DanglingDirectory(x) => {
            d.kind = Kind::DanglingDirectory as i32;
            d.digest = digest(x);
            Code::DataLoss
        }
        Error::DanglingBlob(x) => {
            d.kind = Kind::DanglingBlob as i32;
            d.digest = digest(x);
            Code::DataLoss
        }
        Error::Corrupt(msg) => {
            d.kind = Kind::Corrupt as i32;
            d.message = msg.clone();
            Code::DataLoss
        }
        Error::Directory(_) => Code::InvalidArgument,
        _ => Code::Internal,
    };
    Status::with_details(code, e.to_string(), d.encode_to_vec().into())
}

/// Rebuilds the castore error a status carries; statuses without details
/// (transport failures, bad requests) become [`Error::Storage`].
pub(crate) fn from_status(s: &Status) -> Error {
    let generic = || Error::Storage(format!("castore gRPC server: {}: {}", s.code(), s.message()));
    let Ok(d) = ErrorDetail::decode(s.details()) else { return generic() };
    let digest = |b: &[u8]| B3Digest::try_from(b).ok();
    let kind = Kind::try_from(d.kind).unwrap_or(Kind::Other);
    let rebuilt = match kind {
        Kind::Other => None,
        Kind::DigestMismatch => digest(&d.digest)
            .zip(digest(&d.other))
            .map(|(expected, actual)| Error::DigestMismatch { expected, actual }),
        Kind::MissingBlob => digest(&d.digest).map(|digest| Error::MissingBlob { name: d.name.clone(), digest }),
        Kind::MissingDirectory => {
            digest(&d.digest).map(|digest| Error::MissingDirectory { name: d.name.clone(), digest })
        }
        Kind::SizeMismatch => digest(&d.digest).map(|digest| Error::SizeMismatch {
            name: d.name.clone(),
            digest,
            claimed: d.claimed,
            actual: d.actual,
        }),
        Kind::EmptyTree => Some(Error::EmptyTree),
        Kind::DanglingDirectory => digest(&d.digest).map(Error::DanglingDirectory),
        Kind::DanglingBlob => digest(&d.digest).map(Error::DanglingBlob),
        Kind::Corrupt => Some(Error::Corrupt(d.message.clone())),
    };
    rebuilt.unwrap_or_else(generic)
}
