//! Integration tests of ferrix-store through its public API: the shared
//! backend suite, then behaviour specific to one backend.

mod grpc;
mod nar_props;
mod redb;
mod suite;
mod tree;

use ferrix_castore::backend::grpc::ServerHandle;
use ferrix_store::{Store, open_store};

/// A backend under test, with whatever keeps it alive.
pub struct Backend {
    pub store: Store,
    pub url: String,
    /// The gRPC server the store talks to (dropped after the store).
    pub _server: Option<ServerHandle>,
    pub _dir: Option<tempfile::TempDir>,
}

pub fn memory() -> Backend {
    Backend {
        store: open_store("memory://").expect("memory:// opens"),
        url: "memory://".into(),
        _server: None,
        _dir: None,
    }
}

pub fn redb() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("redb://{}", dir.path().join("store").display());
    Backend {
        store: open_store(&url).expect("redb store opens"),
        url,
        _server: None,
        _dir: Some(dir),
    }
}

pub fn objectstore_memory() -> Backend {
    let url = "objectstore+memory://".to_owned();
    Backend {
        store: open_store(&url).expect("objectstore+memory:// opens"),
        url,
        _server: None,
        _dir: None,
    }
}

pub fn objectstore_file() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("objectstore+file://{}", dir.path().join("store").display());
    Backend {
        store: open_store(&url).expect("objectstore+file store opens"),
        url,
        _server: None,
        _dir: Some(dir),
    }
}

/// A real store gRPC server on loopback (ephemeral port) serving `inner`,
/// and the `grpc+http://` store talking to it.
fn grpc_over(inner: Backend) -> Backend {
    let server = ferrix_store::server::spawn(&inner.store, "127.0.0.1:0".parse().unwrap(), 2)
        .expect("store gRPC server starts");
    let url = server.url();
    Backend {
        store: open_store(&url).expect("grpc+http:// store connects"),
        url,
        _server: Some(server),
        _dir: inner._dir,
    }
}

pub fn grpc_memory() -> Backend {
    grpc_over(memory())
}

pub fn grpc_redb() -> Backend {
    grpc_over(redb())
}
