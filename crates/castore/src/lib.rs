//! ferrix-castore: content-addressed blobs (BLAKE3) and merkle directories.
