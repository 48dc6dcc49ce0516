//! The ONE shared test suite: every backend runs every case below.

use std::collections::BTreeSet;
use std::io::Write;

use ferrix_castore::{B3Digest, Node};
use ferrix_formats::nar::dump_path;
use ferrix_formats::{CAHash, CaMethod, HashAlgo, StorePath};
use ferrix_store::export::{resolve, restore_path};
use ferrix_store::import::{AddOptions, Method, NarExpect, add_path, import_nar, ingest_path};
use ferrix_store::nar::write_nar;
use ferrix_store::verify::verify_store;
use ferrix_store::{Error, PathInfo, Store};

use crate::tree::{data, make};

macro_rules! backend_suite {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    let b = crate::$backend();
                    super::$case(&b.store);
                }
            )*
        }
    };
}

macro_rules! all_backends {
    ($($case:ident),* $(,)?) => {
        backend_suite!(memory: $($case),*);
        backend_suite!(redb: $($case),*);
        backend_suite!(objectstore_memory: $($case),*);
        backend_suite!(objectstore_file: $($case),*);
        backend_suite!(grpc_memory: $($case),*);
        backend_suite!(grpc_redb: $($case),*);
    };
}

all_backends!(
    put_get_list_every_root_kind,
    put_rejects_missing_root,
    put_rejects_wrong_content_address,
    get_path_checks_the_name,
    has_paths_checks_the_name,
    ingested_paths_registered_together,
    add_tree_matches_nar_dump,
    add_single_file_and_symlink,
    add_flat_file,
    import_nar_gives_the_same_path_as_add,
    truncated_nar_registers_nothing,
    corrupt_nar_registers_nothing,
    wrong_expected_hash_registers_nothing,
    restore_round_trip,
    resolve_sub_paths,
    verify_healthy_store,
);

fn nothing(_: u64) {}

fn nar_of(path: &std::path::Path) -> Vec<u8> {
    dump_path(path, Vec::new()).expect("dump host path")
}

fn render(store: &Store, info: &PathInfo) -> Vec<u8> {
    write_nar(&*store.blobs, &*store.directories, &info.node, Vec::new()).expect("render NAR")
}

/// A valid CA path info for `node` whose NAR is `nar`.
fn info_for(store: &Store, name: &str, node: Node, nar: &[u8]) -> PathInfo {
    let hash = HashAlgo::Sha256.digest(nar);
    let ca = CAHash::new(CaMethod::Recursive, hash.clone());
    PathInfo {
        store_path: store.store_dir.make_ca_path(name, &ca).unwrap(),
        node,
        nar_size: nar.len() as u64,
        nar_sha256: hash.digest().try_into().unwrap(),
        references: BTreeSet::new(),
        deriver: None,
        signatures: vec![],
        ca: Some(ca),
    }
}

fn put_get_list_every_root_kind(s: &Store) {
    let blob = s.blobs.put(b"contents").unwrap();
    let file = info_for(
        s,
        "f",
        Node::File {
            digest: blob,
            size: 8,
            executable: false,
        },
        b"f",
    );
    let link = info_for(
        s,
        "l",
        Node::Symlink {
            target: b"/x".to_vec(),
        },
        b"l",
    );
    let dir = ferrix_castore::Directory::new(vec![]).unwrap();
    s.directories.put(&dir).unwrap();
    let mut d = info_for(s, "d", dir.node(), b"d");
    d.signatures = vec!["k:sig".into()];
    d.references.insert(file.store_path.clone());
    d.ca = None; // input-addressed paths may have references
    for i in [&file, &link, &d] {
        assert_eq!(&s.path_info.put(i.clone()).unwrap(), i);
        assert_eq!(
            s.path_info.get(&i.store_path.digest()).unwrap().as_ref(),
            Some(i)
        );
    }
    let mut want = vec![file, link, d];
    want.sort_by_key(|i| i.store_path.digest());
    assert_eq!(s.path_info.list().unwrap(), want);
    // Replacing is allowed.
    let mut again = want[0].clone();
    again.signatures.push("other:sig".into());
    s.path_info.put(again.clone()).unwrap();
    assert_eq!(
        s.path_info.get_path(&again.store_path).unwrap(),
        Some(again)
    );
}

fn put_rejects_missing_root(s: &Store) {
    let absent = B3Digest::of(b"absent");
    let cases = [
        Node::File {
            digest: absent,
            size: 6,
            executable: false,
        },
        Node::Directory {
            digest: absent,
            size: 0,
        },
        Node::File {
            digest: s.blobs.put(b"four").unwrap(),
            size: 5,
            executable: false,
        },
    ];
    for node in cases {
        let info = info_for(s, "missing", node, b"x");
        let err = s.path_info.put(info).unwrap_err();
        assert!(matches!(err, Error::MissingRoot { .. }), "{err}");
        assert!(err.to_string().contains("is not in the castore"), "{err}");
    }
    assert_eq!(s.path_info.list().unwrap(), vec![]);
}

fn put_rejects_wrong_content_address(s: &Store) {
    let mut info = info_for(
        s,
        "x",
        Node::Symlink {
            target: b"t".to_vec(),
        },
        b"x",
    );
    info.store_path = StorePath::from_base_name("xpcvxsx5sw4rbq666blz6sxqlmsqphmr-x").unwrap();
    let err = s.path_info.put(info).unwrap_err();
    assert!(matches!(err, Error::InvalidPathInfo { .. }), "{err}");
    assert_eq!(s.path_info.list().unwrap(), vec![]);
}

fn get_path_checks_the_name(s: &Store) {
    let info = info_for(
        s,
        "right",
        Node::Symlink {
            target: b"t".to_vec(),
        },
        b"x",
    );
    s.path_info.put(info.clone()).unwrap();
    let wrong =
        StorePath::from_base_name(&format!("{}-wrong", info.store_path.hash_part())).unwrap();
    assert_eq!(s.path_info.get_path(&wrong).unwrap(), None);
    assert_eq!(s.path_info.get_path(&info.store_path).unwrap(), Some(info));
}

fn has_paths_checks_the_name(s: &Store) {
    let info = info_for(s, "here", Node::Symlink { target: b"t".to_vec() }, b"y");
    s.path_info.put(info.clone()).unwrap();
    let wrong = StorePath::from_base_name(&format!("{}-wrong", info.store_path.hash_part())).unwrap();
    let absent = StorePath::from_base_name("00000000000000000000000000000000-absent").unwrap();
    assert_eq!(s.path_info.has_paths(&[]).unwrap(), Vec::<bool>::new());
    assert_eq!(
        s.path_info.has_paths(&[&absent, &info.store_path, &wrong, &info.store_path]).unwrap(),
        vec![false, true, false, true]
    );
}

/// `ingest_path` stores the content but registers nothing; `put_many`
/// registers several ingested paths at once, each exactly as `add_path`
/// would have.
fn ingested_paths_registered_together(s: &Store) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make(&root);
    let file = tmp.path().join("file.txt");
    std::fs::write(&file, b"a small file\n").unwrap();
    let tree = ingest_path(s, &root, &AddOptions::default(), &mut nothing).unwrap();
    let single = ingest_path(s, &file, &AddOptions::default(), &mut nothing).unwrap();
    let flat = ingest_path(s, &file, &AddOptions { method: Method::Flat, name: Some("flat".into()) }, &mut nothing).unwrap();
    for i in [&tree, &single, &flat] {
        assert_eq!(s.path_info.get_path(&i.store_path).unwrap(), None, "ingest_path registered {}", i.store_path);
    }
    assert_eq!(render(s, &tree), nar_of(&root));
    s.path_info.put_many(vec![tree.clone(), single.clone(), flat.clone()]).unwrap();
    assert_eq!(
        s.path_info.has_paths(&[&tree.store_path, &single.store_path, &flat.store_path]).unwrap(),
        vec![true, true, true]
    );
    for i in [&tree, &single, &flat] {
        assert_eq!(s.path_info.get_path(&i.store_path).unwrap().as_ref(), Some(i));
    }
    assert_eq!(add_path(s, &root, &AddOptions::default(), &mut nothing).unwrap(), tree);
    assert_eq!(render(s, &single), nar_of(&file));
}

fn add_tree_matches_nar_dump(s: &Store) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make(&root);
    let mut read = 0;
    let info = add_path(s, &root, &AddOptions::default(), &mut |n| read += n).unwrap();
    let nar = nar_of(&root);
    assert_eq!(render(s, &info), nar);
    assert_eq!(info.nar_size, nar.len() as u64);
    assert_eq!(info.nar_hash(), HashAlgo::Sha256.digest(&nar));
    let ca = CAHash::new(CaMethod::Recursive, HashAlgo::Sha256.digest(&nar));
    assert_eq!(
        info.store_path,
        s.store_dir.make_ca_path("tree", &ca).unwrap()
    );
    assert_eq!(info.ca, Some(ca));
    assert_eq!(
        read,
        2 * 1024 * 1024 + 5 + 1000 + 8 + 6 + 18 + 8 + 5 + 5 + 7 + 9 + 1
    );
    assert_eq!(
        s.path_info.get_path(&info.store_path).unwrap(),
        Some(info.clone())
    );
    // Adding again gives the same path.
    assert_eq!(
        add_path(s, &root, &AddOptions::default(), &mut nothing).unwrap(),
        info
    );
}

fn add_single_file_and_symlink(s: &Store) {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("hello.sh");
    std::fs::write(&f, b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let l = tmp.path().join("lnk");
    std::os::unix::fs::symlink("hello.sh", &l).unwrap();
    for p in [&f, &l] {
        let info = add_path(s, p, &AddOptions::default(), &mut nothing).unwrap();
        assert_eq!(render(s, &info), nar_of(p), "{}", p.display());
        assert_eq!(
            info.store_path.name(),
            p.file_name().unwrap().to_str().unwrap()
        );
    }
}

fn add_flat_file(s: &Store) {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("blob.bin");
    let bytes = data(2 * 1024 * 1024 + 3, 9);
    std::fs::write(&f, &bytes).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let opts = AddOptions {
        method: Method::Flat,
        name: None,
    };
    let info = add_path(s, &f, &opts, &mut nothing).unwrap();
    let ca = CAHash::new(CaMethod::Flat, HashAlgo::Sha256.digest(&bytes));
    assert_eq!(
        info.store_path,
        s.store_dir.make_ca_path("blob.bin", &ca).unwrap()
    );
    assert_eq!(info.ca, Some(ca));
    // As with `nix-store --add-fixed`, the executable bit is kept.
    assert!(matches!(
        info.node,
        Node::File {
            executable: true,
            ..
        }
    ));
    assert_eq!(render(s, &info), nar_of(&f));
    // Flat import of a directory is refused, registering nothing.
    let n = s.path_info.list().unwrap().len();
    std::fs::create_dir(tmp.path().join("dir")).unwrap();
    let err = add_path(s, &tmp.path().join("dir"), &opts, &mut nothing).unwrap_err();
    assert!(err.to_string().contains("needs a regular file"), "{err}");
    std::os::unix::fs::symlink("blob.bin", tmp.path().join("lnk")).unwrap();
    let err = add_path(s, &tmp.path().join("lnk"), &opts, &mut nothing).unwrap_err();
    assert!(err.to_string().contains("needs a regular file"), "{err}");
    assert_eq!(s.path_info.list().unwrap().len(), n);
}

fn import_nar_gives_the_same_path_as_add(s: &Store) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make(&root);
    let nar = nar_of(&root);
    let expect = NarExpect {
        sha256: Some(HashAlgo::Sha256.digest(&nar)),
        size: Some(nar.len() as u64),
    };
    let mut seen = 0;
    let imported = import_nar(s, "tree", &nar[..], &expect, &mut |n| seen += n).unwrap();
    assert_eq!(seen, nar.len() as u64);
    assert_eq!(render(s, &imported), nar);
    let added = add_path(s, &root, &AddOptions::default(), &mut nothing).unwrap();
    assert_eq!(added, imported);
}

fn assert_rejected(s: &Store, nar: &[u8], expect: &NarExpect, what: &str) -> Error {
    let err = import_nar(s, "tree", nar, expect, &mut nothing).expect_err(what);
    assert_eq!(
        s.path_info.list().unwrap(),
        vec![],
        "{what}: nothing may be registered"
    );
    err
}

fn truncated_nar_registers_nothing(s: &Store) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make(&root);
    let nar = nar_of(&root);
    let cuts: Vec<usize> = (0..200)
        .chain((200..nar.len()).step_by(4099))
        .chain([nar.len() - 8, nar.len() - 1])
        .collect();
    for cut in cuts {
        let err = assert_rejected(s, &nar[..cut], &NarExpect::default(), "truncated NAR");
        assert!(
            err.to_string().contains("truncated") || cut < 16,
            "cut {cut}: {err}"
        );
    }
}

fn corrupt_nar_registers_nothing(s: &Store) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make(&root);
    let nar = nar_of(&root);
    let mut bad = nar.clone();
    bad[0] = b'X';
    let err = assert_rejected(s, &bad, &NarExpect::default(), "bad magic");
    assert!(err.to_string().contains("not a NAR"), "{err}");
    // Every `type` token in the NAR turned into `tyPe`.
    let at = nar.windows(4).position(|w| w == b"type").unwrap();
    let mut bad = nar.clone();
    bad[at + 2] = b'P';
    let err = assert_rejected(s, &bad, &NarExpect::default(), "bad token");
    assert!(err.to_string().contains("expected \"type\""), "{err}");
    // Unsorted entries: swap the names "a.txt" and "B" would need equal
    // lengths; instead make an entry name contain '/'.
    let at = nar.windows(5).position(|w| w == b"a.txt").unwrap();
    let mut bad = nar.clone();
    bad[at + 1] = b'/';
    let err = assert_rejected(s, &bad, &NarExpect::default(), "bad name");
    assert!(err.to_string().contains("invalid entry name"), "{err}");
}

fn wrong_expected_hash_registers_nothing(s: &Store) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make(&root);
    let nar = nar_of(&root);
    let expect = NarExpect {
        sha256: Some(HashAlgo::Sha256.digest(b"something else")),
        size: None,
    };
    let err = assert_rejected(s, &nar, &expect, "wrong hash");
    assert!(
        err.to_string()
            .starts_with("NAR hash mismatch: expected sha256:"),
        "{err}"
    );
    let expect = NarExpect {
        sha256: None,
        size: Some(nar.len() as u64 + 1),
    };
    let err = assert_rejected(s, &nar, &expect, "wrong size");
    assert!(err.to_string().starts_with("NAR size mismatch"), "{err}");
    // Trailing data is not part of the NAR; import reads exactly one NAR.
    let mut r = std::io::Cursor::new([nar.clone(), b"trailing".to_vec()].concat());
    import_nar(s, "tree", &mut r, &NarExpect::default(), &mut nothing).unwrap();
    assert_eq!(r.position(), nar.len() as u64);
}

fn restore_round_trip(s: &Store) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make(&root);
    let info = add_path(s, &root, &AddOptions::default(), &mut nothing).unwrap();
    let out = tmp.path().join("out");
    restore_path(s, &info, &out).unwrap();
    assert_eq!(nar_of(&out), nar_of(&root));
    // The destination must not exist.
    assert!(restore_path(s, &info, &out).is_err());
}

fn resolve_sub_paths(s: &Store) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make(&root);
    let info = add_path(s, &root, &AddOptions::default(), &mut nothing).unwrap();
    let x = resolve(s, &info.node, "/sub/deeper/x", "P").unwrap();
    assert!(matches!(
        x,
        Node::File {
            size: 1,
            executable: true,
            ..
        }
    ));
    assert_eq!(resolve(s, &info.node, "", "P").unwrap(), info.node);
    assert_eq!(
        resolve(s, &info.node, "/link", "P").unwrap(),
        Node::Symlink {
            target: b"a.txt".to_vec()
        }
    );
    let e = resolve(s, &info.node, "/sub/nope", "P").unwrap_err();
    assert_eq!(
        e.to_string(),
        "P/sub/nope: no such file or directory in the store"
    );
    let e = resolve(s, &info.node, "/a.txt/x", "P").unwrap_err();
    assert_eq!(e.to_string(), "P/a.txt: not a directory");
    // Symlinks are not followed.
    assert!(resolve(s, &info.node, "/link/x", "P").is_err());
}

fn verify_healthy_store(s: &Store) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make(&root);
    add_path(s, &root, &AddOptions::default(), &mut nothing).unwrap();
    let mut f = std::fs::File::create(tmp.path().join("f")).unwrap();
    f.write_all(b"flat").unwrap();
    add_path(
        s,
        &tmp.path().join("f"),
        &AddOptions {
            method: Method::Flat,
            name: Some("renamed".into()),
        },
        &mut nothing,
    )
    .unwrap();
    let mut seen = 0;
    let report = verify_store(s, &mut |_, p| {
        assert_eq!(p, None);
        seen += 1
    })
    .unwrap();
    assert_eq!((report.checked, report.damaged.len(), seen), (2, 0, 2));
}
