//! Backends, one module each, and [`from_url`], which builds one from a URL.
//!
//! | URL                      | backend                                      |
//! |--------------------------|----------------------------------------------|
//! | `memory://`              | [`memory`]: in-process, lost on exit          |
//! | `redb:///abs/path/to/db` | [`redb`]: one embedded database file (default) |
//! | `objectstore+file:///abs/dir` | [`objectstore`]: objects in a local directory |
//! | `objectstore+memory://`  | [`objectstore`] over an in-process store (tests) |
//! | `grpc+http://host:port`  | [`grpc`]: a castore gRPC server ([`grpc::serve`]) |
//!
//! `grpc+https://` and `grpc+unix://` are reserved and not implemented yet.
//! Paths are taken literally (no percent-decoding).

pub mod grpc;
pub mod memory;
pub mod objectstore;
pub mod redb;

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::{BlobService, DirectoryService};

/// A blob service and a directory service that belong together: the
/// directory service checks blob references against this blob service.
#[derive(Clone)]
pub struct Services {
    pub blobs: Arc<dyn BlobService>,
    pub directories: Arc<dyn DirectoryService>,
}

/// Builds the services a URL names (see the module documentation).
pub fn from_url(url: &str) -> Result<Services> {
    let bad = |reason: &str| Error::InvalidUrl { url: url.to_owned(), reason: reason.to_owned() };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("expected SCHEME://…"))?;
    match scheme {
        "memory" => {
            if !rest.is_empty() {
                return Err(bad("memory:// takes no path"));
            }
            Ok(memory::services())
        }
        "redb" => {
            if rest.contains(['?', '#']) {
                return Err(bad("query strings and fragments are not supported"));
            }
            let path = Path::new(rest);
            if !path.is_absolute() {
                return Err(bad("expected an absolute path: redb:///absolute/path/to/db"));
            }
            Ok(redb::RedbStore::open(path)?.services())
        }
        "objectstore+file" => {
            let path = Path::new(rest);
            if !path.is_absolute() {
                return Err(bad("expected an absolute path: objectstore+file:///absolute/dir"));
            }
            Ok(objectstore::ObjectStoreBackend::local(path)?.services())
        }
        "objectstore+memory" => {
            if !rest.is_empty() {
                return Err(bad("objectstore+memory:// takes no path"));
            }
            Ok(objectstore::ObjectStoreBackend::in_memory()?.services())
        }
        "grpc+http" => {
            if rest.is_empty() || rest.contains(['/', '?', '#']) {
                return Err(bad("expected grpc+http://host:port"));
            }
            Ok(grpc::GrpcBackend::connect(&format!("http://{rest}"))?.services())
        }
        "grpc+https" | "grpc+unix" | "objectstore+s3" => {
            Err(bad("this backend is not implemented yet"))
        }
        _ => Err(bad("unknown scheme; known: memory://, redb:///path, objectstore+file:///dir, grpc+http://host:port")),
    }
}
