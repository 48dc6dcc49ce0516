//! The shared test trees live in `ferrix_store::testutil` (also used by the
//! CLI tests); `make` is the tree most cases use.

use std::path::Path;

pub use ferrix_store::testutil::data;

/// The tree with every node kind (see `testutil::make_tree`).
pub fn make(root: &Path) {
    ferrix_store::testutil::make_tree(root, 7);
}
