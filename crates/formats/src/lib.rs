//! ferrix-formats: the Nix data formats (nixbase32, hashes, store paths, derivations, NAR, narinfo), byte-for-byte like C++ Nix.
//!
//! This crate knows nothing of async, the evaluator or the store; it is pure
//! data formats plus dumping/restoring NARs from/to the host file system.
//! C++ Nix 2.8 is the oracle: `tests/fixtures/formats` is made from it by
//! `scripts/make-format-fixtures`.
//!
//! Where to look:
//! - [`nixbase32`]: Nix's base-32.
//! - [`hash`]: [`NixHash`] (parse every textual form, print in each
//!   [`Encoding`]), streaming [`Hasher`], [`hash::HashingWriter`].
//! - [`ca`]: [`CAHash`] (`fixed:r:sha256:…`, `text:sha256:…`).
//! - [`store_path`]: [`StorePath`] / [`StorePathRef`], and [`StoreDir`], which
//!   computes text, fixed-output and derivation-output paths;
//!   [`hash_placeholder`].
//! - [`derivation`]: [`Derivation`] (ATerm parse/print, validation,
//!   [`Derivation::hash_modulo`], [`Derivation::finish`] for the evaluator's
//!   `derivationStrict`, `nix show-derivation` JSON), [`fixed_output_ca`].
//! - [`nar`]: [`nar::NarWriter`] (typed node/directory API for any tree),
//!   [`nar::dump_path`], [`nar::NarReader`] (pull parser over any `Read`),
//!   [`nar::restore`], [`nar::list`].
//! - [`narinfo`]: [`NarInfo`] parse/print, fingerprint, ed25519
//!   [`SecretKey`] / [`PublicKey`] in Nix's `name:base64` format.
//!
//! ```
//! use ferrix_formats::{Derivation, StoreDir};
//! let sd = StoreDir::default();
//! let mut drv = Derivation::with_outputs(["out"]);
//! drv.system = b"x86_64-linux".to_vec();
//! drv.builder = b"/bin/sh".to_vec();
//! for (k, v) in [("builder", "/bin/sh"), ("name", "foo"), ("system", "x86_64-linux")] {
//!     drv.env.insert(k.into(), v.into());
//! }
//! // no input derivations, so no modulo hashes to look up
//! let done = drv.finish(&sd, "foo", &mut |_| None).unwrap();
//! assert_eq!(sd.display(&done.drv_path), "/nix/store/9d794zbx10n43fa6zaqf33pfymdrm4r2-foo.drv");
//! assert_eq!(
//!     sd.display(done.derivation.output_paths()["out"]),
//!     "/nix/store/xpcvxsx5sw4rbq666blz6sxqlmsqphmr-foo"
//! );
//! ```

pub mod ca;
pub mod derivation;
pub mod hash;
pub mod nar;
pub mod narinfo;
pub mod nixbase32;
pub mod store_path;

pub use ca::{CAHash, CaMethod};
pub use derivation::{
    Derivation, DerivationError, DerivationParts, FinishedDerivation, FinishedParts, Output, OutputCa, finish_parts,
    fixed_output_ca,
};
pub use hash::{Encoding, HashAlgo, HashError, Hasher, NixHash};
pub use narinfo::{NarInfo, NarInfoError, PublicKey, SecretKey};
pub use store_path::{StoreDir, StorePath, StorePathError, StorePathRef, hash_placeholder};
