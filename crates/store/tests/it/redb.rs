//! Behaviour specific to one backend: persistence and locking of redb,
//! damage detection with a store whose castore has lost data.

use std::sync::Arc;

use ferrix_castore::backend::memory::MemoryBlobService;
use ferrix_castore::{BlobService, Node};
use ferrix_store::import::{AddOptions, add_path};
use ferrix_store::verify::verify_store;
use ferrix_store::{Error, open_store};

use crate::tree::make;

#[test]
fn redb_store_persists_and_locks() {
    let b = crate::redb();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make(&root);
    let info = add_path(&b.store, &root, &AddOptions::default(), &mut |_| {}).unwrap();
    let err = open_store(&b.url).err().expect("second open fails");
    assert!(err.to_string().starts_with("store is locked"), "{err}");
    let url = b.url.clone();
    drop(b.store);
    let again = open_store(&url).unwrap();
    assert_eq!(
        again.path_info.get_path(&info.store_path).unwrap(),
        Some(info.clone())
    );
    let report = verify_store(&again, &mut |_, _| {}).unwrap();
    assert_eq!((report.checked, report.damaged), (1, vec![]));
}

#[test]
fn bad_urls() {
    for (url, msg) in [
        ("redb://relative/x", "expected an absolute directory"),
        ("objectstore+file://rel", "expected an absolute directory"),
        ("nope://", "unknown scheme"),
        ("memory://x", "takes no path"),
        ("grpc+https://localhost:1", "not implemented"),
        ("grpc+http://host:1/path", "expected grpc+http://host:port"),
        ("objectstore+s3://bucket", "not implemented"),
        ("/just/a/path", "expected SCHEME"),
    ] {
        let err = open_store(url).err().unwrap();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err}");
        assert!(err.to_string().contains(msg), "{url}: {err}");
    }
    // Nothing listens on port 1: a clear error naming the server.
    let err = open_store("grpc+http://127.0.0.1:1").err().unwrap();
    assert!(err.to_string().contains("cannot connect to castore gRPC server http://127.0.0.1:1"), "{err}");
}

/// A memory store whose blob service we can reach to damage it.
fn damaged_store() -> (
    ferrix_store::Store,
    MemoryBlobService,
    ferrix_store::PathInfo,
    tempfile::TempDir,
) {
    let blobs = MemoryBlobService::default();
    let dirs =
        ferrix_castore::backend::memory::MemoryDirectoryService::new(Arc::new(blobs.clone()));
    let castore = ferrix_castore::Services {
        blobs: Arc::new(blobs.clone()),
        directories: Arc::new(dirs),
    };
    let store_dir = ferrix_formats::StoreDir::default();
    let store = ferrix_store::Store {
        blobs: castore.blobs.clone(),
        directories: castore.directories.clone(),
        path_info: Arc::new(ferrix_store::pathinfo::memory::MemoryPathInfoService::new(
            castore,
            store_dir.clone(),
        )),
        store_dir,
    };
    let tmp = tempfile::tempdir().unwrap();
    make(&tmp.path().join("tree"));
    let info = add_path(
        &store,
        &tmp.path().join("tree"),
        &AddOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    (store, blobs, info, tmp)
}

#[test]
fn verify_reports_a_corrupt_chunk() {
    let (store, blobs, _info, _tmp) = damaged_store();
    // "hello\n" is one chunk whose digest is the blob digest.
    let d = blobs.put(b"hello\n").unwrap();
    assert!(blobs.corrupt_chunk_for_tests(&d, b"HELLO\n"));
    let report = verify_store(&store, &mut |_, _| {}).unwrap();
    assert_eq!(report.damaged.len(), 1);
    assert!(
        report.damaged[0].problem.contains("corrupt"),
        "{}",
        report.damaged[0].problem
    );
}

#[test]
fn verify_reports_missing_blobs() {
    let (store, _blobs, info, _tmp) = damaged_store();
    // The same directories and path infos over an empty blob service.
    let lost = ferrix_store::Store {
        blobs: Arc::new(MemoryBlobService::default()),
        ..store
    };
    let report = verify_store(&lost, &mut |_, _| {}).unwrap();
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].path, info.store_path);
    assert!(
        report.damaged[0]
            .problem
            .contains("is referenced but missing"),
        "{}",
        report.damaged[0].problem
    );
    assert!(matches!(info.node, Node::Directory { .. }));
}

/// A store written before the `path_names` table existed (only
/// `path_infos`): opening it rebuilds the names, so `has_paths` still finds
/// every registered path, and paths added afterwards are found too.
#[test]
fn redb_has_paths_after_the_names_table_is_lost() {
    use redb::{ReadableDatabase, TableDefinition};
    let b = crate::redb();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make(&root);
    let info = add_path(&b.store, &root, &AddOptions::default(), &mut |_| {}).unwrap();
    let url = b.url.clone();
    drop(b.store);
    // as an older ferrix left it: no names table
    let db_path = std::path::Path::new(url.strip_prefix("redb://").unwrap()).join("pathinfo.redb");
    {
        let db = redb::Database::open(&db_path).unwrap();
        let txn = db.begin_write().unwrap();
        let names: TableDefinition<&[u8; 20], &[u8]> = TableDefinition::new("path_names");
        assert!(txn.delete_table(names).unwrap(), "the names table existed");
        txn.commit().unwrap();
        let r = db.begin_read().unwrap();
        assert!(r.open_table(names).is_err());
    }
    let again = open_store(&url).unwrap();
    let other = ferrix_formats::StorePath::from_base_name("00000000000000000000000000000000-other").unwrap();
    let renamed = ferrix_formats::StorePath::from_base_name(&format!("{}-renamed", info.store_path.hash_part())).unwrap();
    assert_eq!(again.path_info.has_paths(&[&info.store_path, &other, &renamed]).unwrap(), vec![true, false, false]);
    let root2 = tmp.path().join("tree2");
    std::fs::create_dir_all(&root2).unwrap();
    std::fs::write(root2.join("f"), b"another").unwrap();
    let info2 = add_path(&again, &root2, &AddOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(again.path_info.has_paths(&[&info2.store_path, &info.store_path]).unwrap(), vec![true, true]);
}
