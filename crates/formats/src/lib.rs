//! ferrix-formats: the Nix data formats (nixbase32, hashes, store paths, derivations, NAR, narinfo), byte-for-byte like C++ Nix.
