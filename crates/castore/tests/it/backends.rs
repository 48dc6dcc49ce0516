//! Behaviour specific to one backend or to URLs: redb locking, durability
//! across reopening and process death, corruption detection, URL errors.

use std::io::Read;

use ferrix_castore::backend::redb::RedbStore;
use ferrix_castore::{B3Digest, BlobService, CHUNK_SIZE, Directory, DirectoryService, Entry, Error, Name, Node};

use crate::{data, redb_store};

#[test]
fn second_open_reports_store_locked() {
    let (store, _tmp) = redb_store();
    let blob = store.blob_service().put(b"kept").unwrap();
    let err = RedbStore::open(store.path()).err().expect("second open must fail");
    assert!(matches!(err, Error::StoreLocked { .. }), "{err}");
    assert!(err.to_string().starts_with("store is locked: "), "{err}");
    let url = format!("redb://{}", store.path().display());
    assert!(matches!(ferrix_castore::from_url(&url).err(), Some(Error::StoreLocked { .. })));
    // Nothing lost for the holder.
    assert_eq!(store.blob_service().get(&blob).unwrap().as_deref(), Some(&b"kept"[..]));
}

/// The lock holds across processes too: a child process (this test binary,
/// re-run on one test) tries to open the store while we hold it.
#[test]
fn second_process_reports_store_locked() {
    if let Ok(path) = std::env::var("FERRIX_CASTORE_LOCK_PROBE") {
        match RedbStore::open(std::path::Path::new(&path)) {
            Err(Error::StoreLocked { .. }) => std::process::exit(42),
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => std::process::exit(0),
        }
    }
    let (store, _tmp) = redb_store();
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new(exe)
        .args(["--exact", "backends::second_process_reports_store_locked", "--nocapture"])
        .env("FERRIX_CASTORE_LOCK_PROBE", store.path())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(42), "child should have seen StoreLocked");
    // Once we close it, another open works and sees the data.
    let blob = store.blob_service().put(b"durable").unwrap();
    let path = store.path().to_owned();
    drop(store);
    let again = RedbStore::open(&path).unwrap();
    assert!(again.blob_service().has(&blob).unwrap());
}

#[test]
fn data_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    let big = data(3 * CHUNK_SIZE + 1, 9);
    let (blob, dir) = {
        let store = RedbStore::open(&path).unwrap();
        let blob = store.blob_service().put(&big).unwrap();
        let dir = Directory::new(vec![Entry::new(
            Name::try_from("big").unwrap(),
            Node::File { digest: blob, size: big.len() as u64, executable: false },
        )])
        .unwrap();
        store.directory_service().put(&dir).unwrap();
        (blob, dir)
    };
    let store = RedbStore::open(&path).unwrap();
    assert!(store.blob_service().get(&blob).unwrap().unwrap() == big);
    assert_eq!(store.directory_service().get(&dir.digest()).unwrap(), Some(dir));
}

#[test]
fn corrupt_chunk_is_detected_on_read() {
    let (store, _tmp) = redb_store();
    let bytes = data(2 * CHUNK_SIZE, 5);
    let digest = store.blob_service().put(&bytes).unwrap();
    let second_chunk = ferrix_castore::blob::chunk_key_of(&bytes[CHUNK_SIZE..], 1);
    store.corrupt_chunk_for_tests(&second_chunk, &data(CHUNK_SIZE, 6)).unwrap();
    let mut r = store.blob_service().open_read(&digest).unwrap().unwrap();
    let mut first = vec![0; CHUNK_SIZE];
    r.read_exact(&mut first).unwrap(); // the intact chunk still reads
    let err = r.read(&mut [0; 10]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("store is corrupt"), "{err}");
}

#[test]
fn memory_corrupt_chunk_is_detected_on_read() {
    let blobs = ferrix_castore::backend::memory::MemoryBlobService::default();
    let digest = blobs.put(b"precious").unwrap();
    assert!(blobs.corrupt_chunk_for_tests(&B3Digest::of(b"precious"), b"garbage!"));
    let err = blobs.get(&digest).unwrap_err();
    assert!(err.to_string().contains("store is corrupt"), "{err}");
}

#[test]
fn url_errors_are_clear() {
    let msg = |u: &str| ferrix_castore::from_url(u).err().expect("must fail").to_string();
    assert_eq!(msg("redb://relative/path"), "invalid castore URL \"redb://relative/path\": expected an absolute path: redb:///absolute/path/to/db");
    assert_eq!(msg("memory"), "invalid castore URL \"memory\": expected SCHEME://…");
    assert_eq!(msg("memory://x"), "invalid castore URL \"memory://x\": memory:// takes no path");
    assert!(msg("grpc+https://[::1]:8000").ends_with("this backend is not implemented yet"));
    assert_eq!(msg("grpc+http://host:1/path"), "invalid castore URL \"grpc+http://host:1/path\": expected grpc+http://host:port");
    assert!(msg("s3://bucket").ends_with("unknown scheme; known: memory://, redb:///path, objectstore+file:///dir, grpc+http://host:port"));
}

/// A process that dies without closing the store keeps every blob that was
/// flushed or that a stored directory points to. The child is this test
/// binary, re-run on this one test.
#[test]
fn killed_process_keeps_flushed_blobs_and_directories() {
    if let Ok(path) = std::env::var("FERRIX_CASTORE_CRASH_PROBE") {
        let store = RedbStore::open(std::path::Path::new(&path)).unwrap();
        let (blobs, dirs) = (store.blob_service(), store.directory_service());
        blobs.put(b"a: closed, then flushed by b").unwrap();
        blobs.put(b"b: flushed").unwrap();
        let e_bytes = b"e: in a deferred tree, then flushed";
        let e = blobs.put(e_bytes).unwrap();
        let deferred = Directory::new(vec![Entry::new(
            Name::try_from("e").unwrap(),
            Node::File { digest: e, size: e_bytes.len() as u64, executable: false },
        )])
        .unwrap();
        dirs.put_tree_deferred(&[deferred]).unwrap();
        blobs.flush().unwrap();
        let d = blobs.put(b"d: named by a directory").unwrap();
        let dir = Directory::new(vec![Entry::new(
            Name::try_from("d").unwrap(),
            Node::File { digest: d, size: 23, executable: false },
        )])
        .unwrap();
        dirs.put(&dir).unwrap();
        blobs.put(b"c: closed, never flushed").unwrap();
        std::process::exit(7); // no destructors run: like a crash of this process
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "backends::killed_process_keeps_flushed_blobs_and_directories", "--nocapture"])
        .env("FERRIX_CASTORE_CRASH_PROBE", &path)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(7));
    let store = RedbStore::open(&path).unwrap();
    let blobs = store.blob_service();
    for kept in [
        &b"a: closed, then flushed by b"[..],
        b"b: flushed",
        b"d: named by a directory",
        b"e: in a deferred tree, then flushed",
    ] {
        assert!(blobs.has(&B3Digest::of(kept)).unwrap(), "{:?} lost", String::from_utf8_lossy(kept));
    }
    let dir = store.stats().unwrap().directories;
    assert_eq!(dir, 2, "the stored and the deferred-then-flushed directory");
    // "c" was never made durable; whether it survives a process exit is up to
    // redb (the OS keeps written pages), so it is not asserted either way.
}

#[test]
fn objectstore_memory_url_and_use_inside_an_async_runtime() {
    let s = ferrix_castore::from_url("objectstore+memory://").unwrap();
    // A caller that is itself inside a tokio runtime must not panic.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let d = rt.block_on(async { s.blobs.put(b"from async").unwrap() });
    assert_eq!(s.blobs.get(&d).unwrap().as_deref(), Some(&b"from async"[..]));
    let msg = ferrix_castore::from_url("objectstore+file://rel").err().unwrap().to_string();
    assert!(msg.ends_with("expected an absolute path: objectstore+file:///absolute/dir"), "{msg}");
}

#[test]
fn objectstore_file_data_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("objectstore+file://{}", tmp.path().join("objects").display());
    let big = data(2 * CHUNK_SIZE + 3, 11);
    let dir = {
        let s = ferrix_castore::from_url(&url).unwrap();
        let digest = s.blobs.put(&big).unwrap();
        let dir = Directory::new(vec![Entry::new(
            Name::try_from("big").unwrap(),
            Node::File { digest, size: big.len() as u64, executable: true },
        )])
        .unwrap();
        s.directories.put(&dir).unwrap();
        dir
    };
    let s = ferrix_castore::from_url(&url).unwrap();
    assert_eq!(s.directories.get(&dir.digest()).unwrap().as_ref(), Some(&dir));
    assert!(s.blobs.get(&B3Digest::of(&big)).unwrap().unwrap() == big);
}

/// Every chunk is intact, but the chunk list is wrong: opening the blob
/// notices, because the list is checked against the blob digest.
#[test]
fn memory_reordered_chunk_list_is_detected_on_open() {
    let blobs = ferrix_castore::backend::memory::MemoryBlobService::default();
    let bytes = data(3 * CHUNK_SIZE + 1, 8);
    let digest = blobs.put(&bytes).unwrap();
    assert!(blobs.reverse_chunk_list_for_tests(&digest));
    let err = blobs.open_read(&digest).err().expect("must fail");
    assert_eq!(err.to_string(), format!("store is corrupt: chunk list of blob {digest} does not match its digest"));
}
