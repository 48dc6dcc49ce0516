//! ferrix-formats: the Nix data formats (nixbase32, hashes, store paths, derivations, NAR, narinfo), byte-for-byte like C++ Nix.
//!
//! This crate knows nothing of async, the evaluator or the store; it is pure
//! data formats plus the host-filesystem NAR dump/restore.

pub mod ca;
pub mod derivation;
pub mod hash;
pub mod nar;
pub mod narinfo;
pub mod nixbase32;
pub mod store_path;

pub use ca::{CAHash, CaMethod};
pub use derivation::{fixed_output_ca, Derivation, DerivationError, FinishedDerivation, Output, OutputCa};
pub use hash::{Encoding, HashAlgo, HashError, Hasher, NixHash};
pub use narinfo::{NarInfo, NarInfoError, PublicKey, SecretKey};
pub use store_path::{hash_placeholder, StoreDir, StorePath, StorePathError, StorePathRef};
