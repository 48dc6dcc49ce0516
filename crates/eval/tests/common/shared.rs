//! Locating `../shared` (the read-only corpora) from tests and benches.

use std::path::{Path, PathBuf};

/// The shared corpora beside the checkout (also from a worktree one level
/// deeper), or `$FERRIX_SHARED`.
pub fn shared() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = std::env::var_os("FERRIX_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join("../shared"), root.join("../../shared"), "/work/shared".into()]);
    for dir in candidates {
        if dir.join("nixpkgs-lib").is_dir() {
            return dir;
        }
    }
    panic!("cannot find shared/ beside the checkout; set FERRIX_SHARED")
}
