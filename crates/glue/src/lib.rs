//! ferrix-glue: derivation builtins, string contexts, path import and store-backed evaluation IO.
//!
//! The evaluator (`ferrix-eval`) knows nothing of the store; the glue adds
//! the builtins that make store paths (`derivationStrict`, `toFile`, `path`,
//! `filterSource`, `storePath`, `placeholder`, `fetchurl`, `fetchTarball`) and [`StoreIO`], an
//! `EvalIO` that imports host paths. What evaluation writes goes through
//! the [`StoreSink`] seam.
//!
//! ```
//! let ev = ferrix_glue::new_eval(Default::default(), Box::new(ferrix_glue::MemoryStore::default()));
//! let v = ev.eval_string(
//!     r#"(derivation { name = "foo"; builder = "/bin/sh"; system = "x86_64-linux"; }).drvPath"#, "/").unwrap();
//! let s = ev.force_string(&v).unwrap();
//! assert_eq!(s.to_str_lossy(), "/nix/store/9d794zbx10n43fa6zaqf33pfymdrm4r2-foo.drv");
//! ```

pub mod context;
pub mod derivation;
pub mod ferrix_store;
pub mod fetch;
pub mod instantiate;
pub mod io;
pub mod json;
pub mod paths;
pub mod store;

use ferrix_eval::{Builtins, Eval, EvalOptions, PrimOpDef};
use ferrix_formats::StoreDir;

pub use ferrix_store::{FerrixStore, LazyFerrixStore};
pub use io::{store_io, StoreIO};
pub use store::{DirStore, MemoryStore, StoreSink, StoredObject};

/// The glue's builtins, to add to the core set.
pub fn builtins() -> Builtins {
    let mut b = Builtins::default();
    for def in [
        PrimOpDef { name: "derivationStrict", arity: 1, func: derivation::derivation_strict, forces: &[] },
        PrimOpDef { name: "placeholder", arity: 1, func: derivation::placeholder, forces: &[] },
        PrimOpDef { name: "toFile", arity: 2, func: paths::to_file, forces: &[] },
        PrimOpDef { name: "path", arity: 1, func: paths::path, forces: &[] },
        PrimOpDef { name: "filterSource", arity: 2, func: paths::filter_source, forces: &[] },
        PrimOpDef { name: "storePath", arity: 1, func: paths::store_path, forces: &[] },
        PrimOpDef { name: "fetchurl", arity: 1, func: fetch::fetchurl, forces: &[] },
        PrimOpDef { name: "fetchTarball", arity: 1, func: fetch::fetch_tarball, forces: &[] },
    ] {
        b.add(def);
    }
    b
}

/// An evaluator with the glue's builtins and a [`StoreIO`] writing to `sink`.
pub fn new_eval(opts: EvalOptions, sink: Box<dyn StoreSink>) -> Eval {
    let io = StoreIO::new(StoreDir::new(opts.store_dir.clone()), sink);
    Eval::new(Box::new(io), opts, builtins())
}
