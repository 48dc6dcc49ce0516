//! Ingest and restore of host trees.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use ferrix_castore::{CHUNK_SIZE, Node, ingest, restore};

use crate::{data, redb_store};

/// A tree with every node kind: files (empty, executable, larger than a
/// chunk), symlinks (relative, absolute, dangling), nested and empty dirs.
pub fn make_every_kind(root: &Path) {
    let w = |p: &str, bytes: &[u8], mode: u32| {
        let p = root.join(p);
        fs::write(&p, bytes).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    w("plain", b"hello\n", 0o644);
    w("empty-file", b"", 0o644);
    w("script", b"#!/bin/sh\necho hi\n", 0o755);
    w("sub/big", &data(CHUNK_SIZE * 2 + 5, 1), 0o644);
    w("sub/deeper/same-as-plain", b"hello\n", 0o600);
    symlink("plain", root.join("link")).unwrap();
    symlink("/nonexistent/absolute", root.join("sub/dangling")).unwrap();
    symlink("../..", root.join("sub/deeper/up")).unwrap();
}

/// Compares two host trees: kinds, contents, owner-execute bits, link targets.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (ma, mb) = (fs::symlink_metadata(a).unwrap(), fs::symlink_metadata(b).unwrap());
    let (ta, tb) = (ma.file_type(), mb.file_type());
    assert_eq!((ta.is_dir(), ta.is_file(), ta.is_symlink()), (tb.is_dir(), tb.is_file(), tb.is_symlink()), "{a:?} vs {b:?}");
    if ta.is_symlink() {
        assert_eq!(fs::read_link(a).unwrap(), fs::read_link(b).unwrap());
    } else if ta.is_file() {
        assert!(fs::read(a).unwrap() == fs::read(b).unwrap(), "contents of {a:?}");
        assert_eq!(ma.permissions().mode() & 0o100, mb.permissions().mode() & 0o100, "exec bit of {a:?}");
    } else {
        let names = |p: &Path| {
            let mut v: Vec<_> = fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name()).collect();
            v.sort();
            v
        };
        let (na, nb) = (names(a), names(b));
        assert_eq!(na, nb, "entries of {a:?}");
        for n in na {
            assert_same_tree(&a.join(&n), &b.join(&n));
        }
    }
}

#[test]
fn restored_files_have_exact_modes() {
    let b = crate::memory();
    let src = tempfile::tempdir().unwrap();
    make_every_kind(src.path());
    let root = ingest(&*b.services.blobs, &*b.services.directories, src.path()).unwrap();
    let out = src.path().with_extension("restored");
    restore(&*b.services.blobs, &*b.services.directories, &root, &out).unwrap();
    let mode = |p: &str| fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("script"), mode("plain"), mode("sub/deeper/same-as-plain")), (0o755, 0o644, 0o644));
    fs::remove_dir_all(&out).unwrap();
}

#[test]
fn single_file_and_symlink_roots() {
    let b = crate::memory();
    let (blobs, dirs) = (&*b.services.blobs, &*b.services.directories);
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    fs::write(&f, b"just a file").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o700)).unwrap();
    let node = ingest(blobs, dirs, &f).unwrap();
    assert_eq!(
        node,
        Node::File { digest: ferrix_castore::B3Digest::of(b"just a file"), size: 11, executable: true }
    );
    let l = tmp.path().join("l");
    symlink("f", &l).unwrap();
    assert_eq!(ingest(blobs, dirs, &l).unwrap(), Node::Symlink { target: b"f".to_vec() });

    restore(blobs, dirs, &node, &tmp.path().join("f2")).unwrap();
    assert_same_tree(&f, &tmp.path().join("f2"));
    restore(blobs, dirs, &Node::Symlink { target: b"f".to_vec() }, &tmp.path().join("l2")).unwrap();
    assert_same_tree(&l, &tmp.path().join("l2"));
    // Restoring onto an existing path is an error, not an overwrite.
    let err = restore(blobs, dirs, &node, &f).unwrap_err();
    assert!(err.to_string().contains("File exists"), "{err}");
}

#[test]
fn ingest_missing_path_is_a_clear_error() {
    let b = crate::memory();
    let err = ingest(&*b.services.blobs, &*b.services.directories, Path::new("/nonexistent/ferrix")).unwrap_err();
    assert!(err.to_string().starts_with("reading /nonexistent/ferrix: "), "{err}");
}

#[test]
fn ingest_rejects_fifo() {
    let b = crate::memory();
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo");
    let ok = std::process::Command::new("mkfifo").arg(&fifo).status().map(|s| s.success());
    if ok.unwrap_or(false) {
        let err = ingest(&*b.services.blobs, &*b.services.directories, tmp.path()).unwrap_err();
        assert!(err.to_string().contains("not a regular file, directory or symlink"), "{err}");
    }
}

/// Two trees sharing a large file: the second ingest stores only what is new.
#[test]
fn ingest_deduplicates_shared_files_redb() {
    let (store, tmp) = redb_store();
    let s = store.services();
    let shared = data(4 * CHUNK_SIZE + 99, 42);
    let make = |name: &str, unique: &[u8]| {
        let p = tmp.path().join(name);
        fs::create_dir_all(p.join("nested")).unwrap();
        fs::write(p.join("shared"), &shared).unwrap();
        fs::write(p.join("nested/shared-again"), &shared).unwrap();
        fs::write(p.join("unique"), unique).unwrap();
        p
    };
    let (a, b) = (make("a", b"only in a"), make("b", b"only in b!"));
    let db = store.path().to_owned();
    // The database and its chunk file.
    let file_len = || fs::metadata(&db).unwrap().len() + fs::metadata(db.with_extension("chunks")).unwrap().len();

    let before = (store.stats().unwrap(), file_len());
    ingest(&*s.blobs, &*s.directories, &a).unwrap();
    let after_a = (store.stats().unwrap(), file_len());
    ingest(&*s.blobs, &*s.directories, &b).unwrap();
    let after_b = (store.stats().unwrap(), file_len());

    let shared_len = shared.len() as u64;
    // Tree a: the shared file once (5 chunks) + its unique file.
    assert_eq!(after_a.0.chunk_bytes - before.0.chunk_bytes, shared_len + 9);
    assert_eq!(after_a.0.blobs - before.0.blobs, 2);
    // Tree b: only its unique file's bytes are new.
    assert_eq!(after_b.0.chunk_bytes - after_a.0.chunk_bytes, 10);
    assert_eq!(after_b.0.blobs - after_a.0.blobs, 1);
    assert_eq!(after_b.0.directories - after_a.0.directories, 1, "nested/ is identical, only the root differs");
    // The store's files grow by far less than the shared file for tree b.
    let growth_b = after_b.1.saturating_sub(after_a.1);
    assert!(growth_b < shared_len / 4, "file grew {growth_b} bytes for tree b");
    assert!(after_a.1 - before.1 >= shared_len, "tree a must actually be stored");
}
