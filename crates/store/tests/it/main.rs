//! Integration tests of ferrix-store through its public API: the shared
//! backend suite, then behaviour specific to one backend.

mod nar_props;
mod redb;
mod suite;
mod tree;

use ferrix_store::{Store, open_store};

/// A backend under test, with whatever keeps it alive.
pub struct Backend {
    pub store: Store,
    pub url: String,
    pub _dir: Option<tempfile::TempDir>,
}

pub fn memory() -> Backend {
    Backend { store: open_store("memory://").expect("memory:// opens"), url: "memory://".into(), _dir: None }
}

pub fn redb() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("redb://{}", dir.path().join("store").display());
    Backend { store: open_store(&url).expect("redb store opens"), url, _dir: Some(dir) }
}

pub fn objectstore_memory() -> Backend {
    let url = "objectstore+memory://".to_owned();
    Backend { store: open_store(&url).expect("objectstore+memory:// opens"), url, _dir: None }
}

pub fn objectstore_file() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("objectstore+file://{}", dir.path().join("store").display());
    Backend { store: open_store(&url).expect("objectstore+file store opens"), url, _dir: Some(dir) }
}
