//! Integration tests of ferrix-castore through its public API: the shared
//! backend suite, the directory encoding, ingest and restore.

mod backends;
mod encoding;
mod fs;
mod grpc;
mod suite;

use ferrix_castore::Services;
use ferrix_castore::backend::grpc::ServerHandle;
use ferrix_castore::backend::redb::RedbStore;

/// A backend under test, with whatever keeps it alive.
pub struct Backend {
    pub services: Services,
    /// A gRPC server the services talk to (dropped after them).
    pub _server: Option<ServerHandle>,
    pub _dir: Option<tempfile::TempDir>,
}

pub fn memory() -> Backend {
    Backend { services: ferrix_castore::from_url("memory://").expect("memory:// parses"), _server: None, _dir: None }
}

pub fn redb() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("redb://{}", dir.path().join("store.redb").display());
    Backend { services: ferrix_castore::from_url(&url).expect("redb store opens"), _server: None, _dir: Some(dir) }
}

pub fn objectstore_file() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("objectstore+file://{}", dir.path().join("objects").display());
    Backend { services: ferrix_castore::from_url(&url).expect("object store opens"), _server: None, _dir: Some(dir) }
}

/// A real gRPC server on loopback (ephemeral port) serving `inner`, and the
/// `grpc+http://` client backend talking to it.
fn grpc_over(inner: Backend) -> Backend {
    let server = ferrix_castore::backend::grpc::spawn(inner.services, "127.0.0.1:0".parse().unwrap(), 2)
        .expect("gRPC server starts");
    let services = ferrix_castore::from_url(&server.url()).expect("gRPC client connects");
    Backend { services, _server: Some(server), _dir: inner._dir }
}

pub fn grpc_memory() -> Backend {
    grpc_over(memory())
}

pub fn grpc_redb() -> Backend {
    grpc_over(redb())
}

pub fn redb_store() -> (RedbStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    (RedbStore::open(&dir.path().join("store.redb")).expect("redb store opens"), dir)
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
