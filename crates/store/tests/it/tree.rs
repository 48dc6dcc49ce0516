//! A host tree with every node kind and the awkward cases NAR cares about.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

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

fn file(p: &Path, bytes: &[u8], exec: bool) {
    fs::write(p, bytes).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 })).unwrap();
}

/// Builds the tree at `root` (which must not exist).
pub fn make(root: &Path) {
    fs::create_dir(root).unwrap();
    file(&root.join("a.txt"), b"hello\n", false);
    file(&root.join("run.sh"), b"#!/bin/sh\necho hi\n", true);
    file(&root.join("empty"), b"", false);
    file(&root.join("empty-exec"), b"", true);
    file(&root.join("eight"), b"12345678", false);
    file(&root.join("big.bin"), &data(3 * 1024 * 1024 + 5, 7), false);
    file(&root.join("B"), b"upper", false);
    file(&root.join("a b"), b"space", false);
    file(&root.join("é"), b"unicode", false);
    file(&root.join(std::ffi::OsStr::from_bytes(b"raw\xff")), b"not utf-8", false);
    symlink("a.txt", root.join("link")).unwrap();
    symlink("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x", root.join("abs-link")).unwrap();
    symlink("does/not/exist", root.join("dangling")).unwrap();
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    file(&root.join("sub/deeper/x"), b"x", true);
    file(&root.join("sub/y"), &data(1000, 3), false);
    // The same contents twice (deduplicated in castore).
    file(&root.join("sub/a.txt"), b"hello\n", false);
    fs::create_dir(root.join("emptydir")).unwrap();
}
