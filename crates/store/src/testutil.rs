//! Test helpers shared by this crate's integration tests and the `ferrix`
//! CLI tests (dev-only: behind the `testutil` feature): deterministic data
//! and host trees with every node kind NAR cares about.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes a file with mode 0755 (`exec`) or 0644.
pub fn file(p: &Path, bytes: &[u8], exec: bool) {
    fs::write(p, bytes).expect("writing a test file");
    fs::set_permissions(p, fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 }))
        .expect("setting a test file's mode");
}

/// A tree at `root` (which must not exist) with every node kind and the
/// awkward cases: empty files, executables, non-UTF-8 and upper-case names,
/// absolute, relative and dangling symlinks, an empty directory, a file of
/// more than two chunks, and the same contents twice.
pub fn make_tree(root: &Path, seed: u64) {
    fs::create_dir(root).expect("creating the test tree");
    file(&root.join("a.txt"), format!("hello {seed}\n").as_bytes(), false);
    file(&root.join("run.sh"), b"#!/bin/sh\necho hi\n", true);
    file(&root.join("empty"), b"", false);
    file(&root.join("empty-exec"), b"", true);
    file(&root.join("eight"), b"12345678", false);
    file(&root.join("big.bin"), &data(2 * 1024 * 1024 + 5, seed), false);
    file(&root.join("B"), b"upper", false);
    file(&root.join("a b"), b"space", false);
    file(&root.join("é"), b"unicode", false);
    file(&root.join(std::ffi::OsStr::from_bytes(b"raw\xff")), b"not utf-8", false);
    symlink("a.txt", root.join("link")).expect("symlink");
    symlink("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x", root.join("abs-link")).expect("symlink");
    symlink("does/not/exist", root.join("dangling")).expect("symlink");
    fs::create_dir_all(root.join("sub/deeper")).expect("mkdir");
    file(&root.join("sub/deeper/x"), b"x", true);
    file(&root.join("sub/y"), &data(1000, seed + 1), false);
    // The same contents twice (deduplicated in castore).
    file(&root.join("sub/a.txt"), b"hello\n", false);
    fs::create_dir(root.join("emptydir")).expect("mkdir");
}

/// A wide and deep tree of `files` small files (every 7th executable, sizes
/// 0..2000 bytes, some repeated contents) in nested directories, with a
/// symlink and an empty directory in every directory.
pub fn make_wide_tree(root: &Path, files: usize, seed: u64) {
    fs::create_dir(root).expect("creating the test tree");
    for i in 0..files {
        let dir = root.join(format!("d{:02}/e{:02}", i % 50, (i / 50) % 4));
        if !dir.exists() {
            fs::create_dir_all(&dir).expect("mkdir");
            symlink("../sibling", dir.join("link")).expect("symlink");
            fs::create_dir(dir.join("empty")).expect("mkdir");
        }
        let len = (i * 37) % 2000;
        // Every 10th file repeats an earlier file's contents.
        let bytes = if i % 10 == 9 { data(len, seed) } else { data(len, seed + i as u64) };
        file(&dir.join(format!("f{i:05}")), &bytes, i % 7 == 0);
    }
}

/// A file of `size` bytes written quickly: sparse (reads as zeros) except
/// for 64 KiB of pseudo-random bytes every 64 MiB and at the end, so chunks
/// at different offsets differ.
pub fn make_sparse_file(path: &Path, size: u64, seed: u64) {
    let mut f = fs::File::create(path).expect("creating the sparse file");
    f.set_len(size).expect("sizing the sparse file");
    let piece = 64 * 1024;
    let mut at = 0u64;
    let mut n = 0;
    while at + piece as u64 <= size {
        f.seek(SeekFrom::Start(at)).expect("seek");
        f.write_all(&data(piece, seed + n)).expect("write");
        at += 64 << 20;
        n += 1;
    }
    if size >= piece as u64 {
        f.seek(SeekFrom::Start(size - piece as u64)).expect("seek");
        f.write_all(&data(piece, seed + n)).expect("write");
    }
}
