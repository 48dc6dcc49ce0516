//! The ONE shared test suite: every backend runs every case below.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use ferrix_castore::{
    B3Digest, BlobService, CHUNK_SIZE, Directory, Entry, Error, Name, Node, Services, WalkEvent,
};

use crate::data;

/// Instantiates every suite case as a `#[test]` for one backend.
macro_rules! backend_suite {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    let b = crate::$backend();
                    super::$case(&b.services);
                }
            )*
        }
    };
}

macro_rules! all_backends {
    ($($case:ident),* $(,)?) => {
        backend_suite!(memory: $($case),*);
        backend_suite!(redb: $($case),*);
        backend_suite!(objectstore_file: $($case),*);
        backend_suite!(grpc_memory: $($case),*);
        backend_suite!(grpc_redb: $($case),*);
    };
}

all_backends!(
    blob_sizes,
    blob_ranged_reads,
    blob_missing,
    blob_digest_mismatch,
    blob_abandoned_writer_is_invisible,
    blob_dedup_and_concurrent_writers,
    directory_all_kinds_round_trip,
    directory_rejects_missing_blob,
    directory_rejects_missing_child,
    directory_rejects_size_mismatch,
    directory_put_tree_all_or_nothing,
    directory_put_tree_deferred,
    directory_closure_and_walk,
    blob_random_writes_and_seeks,
    blob_put_many,
    blob_shared_writes,
);

// Ingest runs on every backend, gRPC included: an in-process ingest through
// the gRPC client once deadlocked (the server's blob writer ran rayon work on
// the global pool whose workers were all blocked in client uploads).
mod ingest {
    use super::{ingest_restore_round_trip, walk_then_tree_builder_round_trips};
    all_backends!(ingest_restore_round_trip, walk_then_tree_builder_round_trips);
}

fn name(s: &str) -> Name {
    Name::try_from(s).expect("valid name")
}

fn put(s: &Services, bytes: &[u8]) -> (B3Digest, u64) {
    (s.blobs.put(bytes).expect("put blob"), bytes.len() as u64)
}

fn file(s: &Services, n: &str, bytes: &[u8], executable: bool) -> Entry {
    let (digest, size) = put(s, bytes);
    Entry::new(name(n), Node::File { digest, size, executable })
}

/// Writes `bytes` in uneven pieces, so writes straddle chunk boundaries.
fn write_in_pieces(s: &Services, bytes: &[u8]) -> B3Digest {
    let mut w = s.blobs.open_write();
    for piece in bytes.chunks(77_777) {
        w.write_all(piece).expect("write");
    }
    assert_eq!(w.bytes_written(), bytes.len() as u64);
    w.close().expect("close")
}

fn blob_sizes(s: &Services) {
    for (i, len) in [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 5 * CHUNK_SIZE + 123].into_iter().enumerate() {
        let bytes = data(len, i as u64);
        let digest = write_in_pieces(s, &bytes);
        assert_eq!(digest, B3Digest::of(&bytes), "digest of {len} bytes");
        assert!(s.blobs.has(&digest).unwrap());
        assert_eq!(s.blobs.size(&digest).unwrap(), Some(len as u64));
        let r = s.blobs.open_read(&digest).unwrap().expect("blob present");
        assert_eq!(r.size(), len as u64);
        assert!(s.blobs.get(&digest).unwrap().expect("blob present") == bytes, "contents of {len} bytes");
    }
}

/// Many blobs at once (small ones share a transaction on redb), with
/// duplicates within the batch and of blobs stored before.
fn blob_put_many(s: &Services) {
    let before = data(300, 40);
    s.blobs.put(&before).unwrap();
    let blobs: Vec<Vec<u8>> =
        [data(0, 41), data(1, 42), before.clone(), data(300, 43), data(300, 43), data(CHUNK_SIZE, 44), data(CHUNK_SIZE + 1, 45)]
            .into();
    let refs: Vec<&[u8]> = blobs.iter().map(|b| b.as_slice()).collect();
    let digests = s.blobs.put_many(&refs).unwrap();
    assert_eq!(digests.len(), blobs.len());
    for (b, d) in blobs.iter().zip(&digests) {
        assert_eq!(*d, B3Digest::of(b));
        assert_eq!(s.blobs.size(d).unwrap(), Some(b.len() as u64));
        assert!(s.blobs.get(d).unwrap().expect("blob present") == *b, "contents of {} bytes", b.len());
    }
    assert!(s.blobs.put_many(&[]).unwrap().is_empty());
}

fn blob_ranged_reads(s: &Services) {
    let len = 3 * CHUNK_SIZE + 17;
    let bytes = data(len, 7);
    let digest = s.blobs.put(&bytes).unwrap();
    let mut r = s.blobs.open_read(&digest).unwrap().expect("present");
    for (start, n) in [(0, 10), (CHUNK_SIZE - 5, 10), (2 * CHUNK_SIZE, CHUNK_SIZE + 17), (len - 1, 1), (12345, 2 * CHUNK_SIZE)] {
        assert_eq!(r.seek(SeekFrom::Start(start as u64)).unwrap(), start as u64);
        let mut buf = vec![0; n];
        r.read_exact(&mut buf).unwrap();
        assert!(buf == bytes[start..start + n], "range {start}+{n}");
    }
    assert_eq!(r.seek(SeekFrom::End(-4)).unwrap(), (len - 4) as u64);
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &bytes[len - 4..]);
    // At and past the end: reads return 0 bytes.
    assert_eq!(r.read(&mut [0; 8]).unwrap(), 0);
    r.seek(SeekFrom::Start(len as u64 + 100)).unwrap();
    assert_eq!(r.read(&mut [0; 8]).unwrap(), 0);
    // Backwards relative seek.
    r.seek(SeekFrom::Start(CHUNK_SIZE as u64 + 3)).unwrap();
    r.seek(SeekFrom::Current(-6)).unwrap();
    let mut buf = [0; 6];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(buf, bytes[CHUNK_SIZE - 3..CHUNK_SIZE + 3]);
    // Seeking before the start is an error, not a panic.
    assert_eq!(r.seek(SeekFrom::Current(-(len as i64) - 10)).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
}

fn blob_missing(s: &Services) {
    let d = B3Digest::of(b"never stored");
    assert!(!s.blobs.has(&d).unwrap());
    assert_eq!(s.blobs.size(&d).unwrap(), None);
    assert!(s.blobs.open_read(&d).unwrap().is_none());
    assert_eq!(s.blobs.get(&d).unwrap(), None);
}

fn blob_digest_mismatch(s: &Services) {
    let bytes = data(CHUNK_SIZE + 10, 3);
    let wrong = B3Digest::of(b"something else");
    let mut w = s.blobs.open_write();
    w.write_all(&bytes).unwrap();
    match w.close_expecting(&wrong) {
        Err(Error::DigestMismatch { expected, actual }) => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, B3Digest::of(&bytes));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(!s.blobs.has(&B3Digest::of(&bytes)).unwrap(), "a mismatched blob stays invisible");
    let mut w = s.blobs.open_write();
    w.write_all(&bytes).unwrap();
    assert_eq!(w.close_expecting(&B3Digest::of(&bytes)).unwrap(), B3Digest::of(&bytes));
    assert!(s.blobs.has(&B3Digest::of(&bytes)).unwrap());
}

fn blob_abandoned_writer_is_invisible(s: &Services) {
    let bytes = data(10 * CHUNK_SIZE, 4); // enough that chunks are handed to the backend early
    let mut w = s.blobs.open_write();
    w.write_all(&bytes).unwrap();
    drop(w);
    assert!(!s.blobs.has(&B3Digest::of(&bytes)).unwrap());
}

fn blob_dedup_and_concurrent_writers(s: &Services) {
    let blobs: Arc<dyn BlobService> = s.blobs.clone();
    let digests: Vec<B3Digest> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let blobs = blobs.clone();
                sc.spawn(move || blobs.put(&data(CHUNK_SIZE + i, (i % 2) as u64 + 100)).unwrap())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, d) in digests.iter().enumerate() {
        assert_eq!(s.blobs.get(d).unwrap().unwrap(), data(CHUNK_SIZE + i, (i % 2) as u64 + 100));
    }
    assert_eq!(s.blobs.put(b"same").unwrap(), s.blobs.put(b"same").unwrap());
}

/// A child directory and a parent holding every entry kind.
fn sample_tree(s: &Services) -> (Directory, Directory) {
    let child = Directory::new(vec![file(s, "inner", b"inner file", false)]).unwrap();
    let parent = Directory::new(vec![
        file(s, "a-empty", b"", false),
        file(s, "b-exec", b"#!/bin/sh\n", true),
        Entry::new(name("c-dir"), child.node()),
        Entry::new(name("d-empty-dir"), Directory::default().node()),
        Entry::new(name("e-link"), Node::Symlink { target: b"../somewhere/else".to_vec() }),
        Entry::new(name("f-\u{e9}\u{1f600} non-utf8 \u{ff}"), Node::Symlink { target: vec![0xff, b'x'] }),
    ])
    .unwrap();
    (child, parent)
}

fn directory_all_kinds_round_trip(s: &Services) {
    let (child, parent) = sample_tree(s);
    let d = &s.directories;
    assert_eq!(d.put(&child).unwrap(), child.digest());
    assert_eq!(d.put(&Directory::default()).unwrap(), Directory::default().digest());
    assert_eq!(d.put(&parent).unwrap(), parent.digest());
    assert_eq!(d.get(&parent.digest()).unwrap().as_ref(), Some(&parent));
    assert_eq!(d.get(&child.digest()).unwrap().as_ref(), Some(&child));
    assert!(d.has(&parent.digest()).unwrap());
    assert_eq!(d.get(&B3Digest::of(b"nope")).unwrap(), None);
    assert!(!d.has(&B3Digest::of(b"nope")).unwrap());
    assert_eq!(parent.size(), 7); // six entries plus the one inside c-dir
    // Putting again is a no-op.
    assert_eq!(d.put(&parent).unwrap(), parent.digest());
}

fn directory_rejects_missing_blob(s: &Services) {
    let dir = Directory::new(vec![Entry::new(
        name("ghost"),
        Node::File { digest: B3Digest::of(b"not stored"), size: 10, executable: false },
    )])
    .unwrap();
    let err = s.directories.put(&dir).unwrap_err();
    assert!(matches!(err, Error::MissingBlob { ref name, .. } if name == "ghost"), "{err}");
    assert!(err.to_string().contains("which is not in the store"), "{err}");
    assert!(!s.directories.has(&dir.digest()).unwrap());
}

fn directory_rejects_missing_child(s: &Services) {
    let orphan = Directory::new(vec![file(s, "x", b"x", false)]).unwrap();
    let dir = Directory::new(vec![Entry::new(name("sub"), orphan.node())]).unwrap();
    let err = s.directories.put(&dir).unwrap_err();
    assert!(matches!(err, Error::MissingDirectory { ref name, digest } if name == "sub" && digest == orphan.digest()), "{err}");
    assert!(!s.directories.has(&dir.digest()).unwrap());
}

fn directory_rejects_size_mismatch(s: &Services) {
    let (digest, _) = put(s, b"four");
    let lying = Directory::new(vec![Entry::new(name("f"), Node::File { digest, size: 5, executable: false })]).unwrap();
    assert!(matches!(s.directories.put(&lying), Err(Error::SizeMismatch { claimed: 5, actual: 4, .. })));
    let child = Directory::new(vec![file(s, "x", b"x", false)]).unwrap();
    s.directories.put(&child).unwrap();
    let lying = Directory::new(vec![Entry::new(name("d"), Node::Directory { digest: child.digest(), size: 9 })]).unwrap();
    assert!(matches!(s.directories.put(&lying), Err(Error::SizeMismatch { claimed: 9, actual: 1, .. })));
    assert!(!s.directories.has(&lying.digest()).unwrap());
}

fn directory_put_tree_all_or_nothing(s: &Services) {
    let (child, parent) = sample_tree(s);
    let empty = Directory::default();
    // The last directory names a missing blob: nothing of the batch may be stored.
    let bad = Directory::new(vec![
        Entry::new(name("p"), parent.node()),
        Entry::new(name("z"), Node::File { digest: B3Digest::of(b"missing"), size: 1, executable: false }),
    ])
    .unwrap();
    let batch = [child.clone(), empty.clone(), parent.clone(), bad];
    assert!(matches!(s.directories.put_tree(&batch), Err(Error::MissingBlob { .. })));
    for d in &batch {
        assert!(!s.directories.has(&d.digest()).unwrap(), "{:?} leaked from a failed put_tree", d.digest());
    }
    // Parents before children is rejected.
    assert!(matches!(
        s.directories.put_tree(&[parent.clone(), child.clone(), empty.clone()]),
        Err(Error::MissingDirectory { .. })
    ));
    assert!(matches!(s.directories.put_tree(&[]), Err(Error::EmptyTree)));
    // Children first works, and returns the root's digest.
    assert_eq!(s.directories.put_tree(&[child, empty, parent.clone()]).unwrap(), parent.digest());
    assert!(s.directories.has(&parent.digest()).unwrap());
}

/// Checked and all or nothing like `put_tree`, readable at once, and made
/// durable by the blob service's flush.
fn directory_put_tree_deferred(s: &Services) {
    let (child, parent) = sample_tree(s);
    let bad = Directory::new(vec![
        Entry::new(name("p"), parent.node()),
        Entry::new(name("z"), Node::File { digest: B3Digest::of(b"missing"), size: 1, executable: false }),
    ])
    .unwrap();
    let batch = [child.clone(), Directory::default(), parent.clone(), bad];
    assert!(matches!(s.directories.put_tree_deferred(&batch), Err(Error::MissingBlob { .. })));
    for d in &batch {
        assert!(!s.directories.has(&d.digest()).unwrap(), "{:?} leaked from a failed put_tree_deferred", d.digest());
    }
    assert!(matches!(s.directories.put_tree_deferred(&[]), Err(Error::EmptyTree)));
    assert_eq!(s.directories.put_tree_deferred(&[child.clone(), Directory::default(), parent.clone()]).unwrap(), parent.digest());
    assert_eq!(s.directories.get(&parent.digest()).unwrap(), Some(parent.clone()));
    s.blobs.flush().unwrap();
    assert!(s.directories.has(&child.digest()).unwrap());
}

fn directory_closure_and_walk(s: &Services) {
    let (child, parent) = sample_tree(s);
    let top = Directory::new(vec![
        Entry::new(name("one"), parent.node()),
        Entry::new(name("two"), parent.node()), // shared subtree: listed once in the closure
    ])
    .unwrap();
    let root = s.directories.put_tree(&[child.clone(), Directory::default(), parent.clone(), top.clone()]).unwrap();
    let closure = s.directories.closure(&root).unwrap();
    let got: Vec<B3Digest> = closure.iter().map(|(d, _)| *d).collect();
    assert_eq!(got, vec![top.digest(), parent.digest(), child.digest(), Directory::default().digest()]);
    assert!(matches!(s.directories.closure(&B3Digest::of(b"x")), Err(Error::DanglingDirectory(_))));
    ferrix_castore::directory::check_closure(&*s.directories, &*s.blobs, &top.node()).unwrap();

    let mut events = Vec::new();
    ferrix_castore::walk(&*s.directories, &top.node(), &mut |ev| {
        let l = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        events.push(match ev {
            WalkEvent::EnterDirectory { path } => format!("enter {}", l(path)),
            WalkEvent::LeaveDirectory { path } => format!("leave {}", l(path)),
            WalkEvent::File { path, size, executable, .. } => format!("file {} {size} {executable}", l(path)),
            WalkEvent::Symlink { path, target } => format!("link {} -> {}", l(path), l(target)),
        });
        Ok(())
    })
    .unwrap();
    let copy = |p: &str| {
        vec![
            format!("enter {p}"),
            format!("file {p}/a-empty 0 false"),
            format!("file {p}/b-exec 10 true"),
            format!("enter {p}/c-dir"),
            format!("file {p}/c-dir/inner 10 false"),
            format!("leave {p}/c-dir"),
            format!("enter {p}/d-empty-dir"),
            format!("leave {p}/d-empty-dir"),
            format!("link {p}/e-link -> ../somewhere/else"),
            format!("link {p}/f-\u{e9}\u{1f600} non-utf8 \u{ff} -> \u{fffd}x"),
            format!("leave {p}"),
        ]
    };
    let mut want = vec!["enter ".to_owned()];
    want.extend(copy("one"));
    want.extend(copy("two"));
    want.push("leave ".to_owned());
    assert_eq!(events, want);
}

fn ingest_restore_round_trip(s: &Services) {
    let src = tempfile::tempdir().unwrap();
    crate::fs::make_every_kind(src.path());
    let root = ferrix_castore::ingest(&*s.blobs, &*s.directories, src.path()).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let out = dest.path().join("out");
    ferrix_castore::restore(&*s.blobs, &*s.directories, &root, &out).unwrap();
    crate::fs::assert_same_tree(src.path(), &out);
    // Ingesting the restored copy gives the same root.
    assert_eq!(ferrix_castore::ingest(&*s.blobs, &*s.directories, &out).unwrap(), root);
}

/// The deep chain puts 20 000 directories. On objectstore+file each is an
/// fsync'd file (minutes in all), and what it checks (walk, closure, put_tree
/// batching) does not depend on the backend's storage, so the fast backends run it.
mod deep_chain {
    #[test]
    fn memory() {
        super::directory_deep_chain_walks(&crate::memory().services);
    }
    #[test]
    fn redb() {
        super::directory_deep_chain_walks(&crate::redb().services);
    }
    #[test]
    fn grpc_memory() {
        super::directory_deep_chain_walks(&crate::grpc_memory().services);
    }
}

/// A stored chain of directories far deeper than any stack would allow to recurse.
fn directory_deep_chain_walks(s: &Services) {
    const DEPTH: usize = 20_000;
    let mut chain = vec![Directory::default()];
    for _ in 0..DEPTH {
        let below = chain.last().expect("non-empty").node();
        chain.push(Directory::new(vec![Entry::new(name("d"), below)]).unwrap());
    }
    let root = s.directories.put_tree(&chain).unwrap();
    let top = chain.last().unwrap().node();
    assert_eq!(top, Node::Directory { digest: root, size: DEPTH as u64 });
    let (mut enters, mut deepest) = (0, 0);
    ferrix_castore::walk(&*s.directories, &top, &mut |ev| {
        if let WalkEvent::EnterDirectory { path } = ev {
            enters += 1;
            deepest = deepest.max(path.len());
        }
        Ok(())
    })
    .unwrap();
    assert_eq!((enters, deepest), (DEPTH + 1, 2 * DEPTH - 1));
    assert_eq!(s.directories.closure(&root).unwrap().len(), DEPTH + 1);
}

/// Property: any blob written in any pieces reads back the same from any offset.
fn blob_random_writes_and_seeks(s: &Services) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config { cases: 12, ..Config::default() });
    let strategy = (
        0..3 * CHUNK_SIZE + 10,
        any::<u64>(),
        proptest::collection::vec(1..300_000usize, 1..8),
        proptest::collection::vec((any::<prop::sample::Index>(), 0..2 * CHUNK_SIZE), 1..6),
    );
    runner
        .run(&strategy, |(len, seed, pieces, reads)| {
            let bytes = data(len, seed);
            let mut w = s.blobs.open_write();
            let mut at = 0;
            for p in pieces.iter().cycle() {
                if at == len {
                    break;
                }
                let end = (at + p).min(len);
                w.write_all(&bytes[at..end]).unwrap();
                at = end;
            }
            let digest = w.close().unwrap();
            prop_assert_eq!(digest, B3Digest::of(&bytes));
            let mut r = s.blobs.open_read(&digest).unwrap().expect("present");
            for (start, n) in reads {
                let start = if len == 0 { 0 } else { start.index(len) };
                let n = n.min(len - start);
                r.seek(SeekFrom::Start(start as u64)).unwrap();
                let mut buf = vec![0; n];
                r.read_exact(&mut buf).unwrap();
                prop_assert!(buf == bytes[start..start + n], "range {}+{}", start, n);
            }
            Ok(())
        })
        .unwrap();
}

/// Walking a stored tree and feeding the events to a TreeBuilder rebuilds it
/// exactly: the walk order is what a NAR reader produces.
fn walk_then_tree_builder_round_trips(s: &Services) {
    use ferrix_castore::tree::TreeBuilder;
    let src = tempfile::tempdir().unwrap();
    crate::fs::make_every_kind(src.path());
    let root = ferrix_castore::ingest(&*s.blobs, &*s.directories, src.path()).unwrap();
    let mut t = TreeBuilder::default();
    let last = |p: &[u8]| (!p.is_empty()).then(|| Name::new(p.rsplit(|&b| b == b'/').next().unwrap()).unwrap());
    ferrix_castore::walk(&*s.directories, &root, &mut |ev| {
        match ev {
            WalkEvent::EnterDirectory { path } => t.enter_directory(last(path)),
            WalkEvent::LeaveDirectory { .. } => t.leave_directory(),
            WalkEvent::File { path, digest, size, executable } => {
                t.add(last(path), Node::File { digest: *digest, size, executable })
            }
            WalkEvent::Symlink { path, target } => t.add(last(path), Node::Symlink { target: target.to_vec() }),
        }
        .unwrap();
        Ok(())
    })
    .unwrap();
    let (rebuilt, dirs) = t.finish().unwrap();
    assert_eq!(rebuilt, root);
    assert_eq!(s.directories.put_tree(&dirs).unwrap(), dirs.last().unwrap().digest());
}

/// Writes `bytes` as `pieces` (length, shared?) repeated, then checks the
/// digest is BLAKE3 of the whole and the blob reads back whole.
fn write_pieces(s: &Services, bytes: &[u8], pieces: &[(usize, bool)]) -> Result<(), String> {
    let mut w = s.blobs.open_write();
    let mut at = 0;
    for &(p, shared) in pieces.iter().cycle() {
        if at == bytes.len() {
            break;
        }
        let end = (at + p).min(bytes.len());
        if shared {
            let mut c = ferrix_castore::ChunkBuf::new();
            c.fill_from(&mut &bytes[at..end], end - at).unwrap();
            w.write_shared(Arc::new(c)).unwrap();
        } else {
            w.write_all(&bytes[at..end]).unwrap();
        }
        at = end;
    }
    if w.bytes_written() != bytes.len() as u64 {
        return Err(format!("bytes_written {} of {}", w.bytes_written(), bytes.len()));
    }
    let digest = w.close().unwrap();
    if digest != B3Digest::of(bytes) || digest.as_bytes() != blake3::hash(bytes).as_bytes() {
        return Err(format!("digest of {} bytes in pieces {pieces:?}", bytes.len()));
    }
    if s.blobs.get(&digest).unwrap().as_deref() != Some(bytes) {
        return Err(format!("read back of {} bytes in pieces {pieces:?}", bytes.len()));
    }
    Ok(())
}

/// Shared chunk buffers (whole chunks, short tails, mixed with plain
/// writes) give the same blobs as plain writes, for every size around the
/// chunk boundaries; the same blob written twice dedups.
fn blob_shared_writes(s: &Services) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    const C: usize = CHUNK_SIZE;
    for len in [0, 1, C - 1, C, C + 1, 2 * C, 2 * C + 7, 3 * C - 1, 5 * C] {
        let bytes = data(len, len as u64);
        write_pieces(s, &bytes, &[(C, true)]).unwrap();
        write_pieces(s, &bytes, &[(C, true), (C, true), (5, false)]).unwrap();
        write_pieces(s, &bytes, &[(C - 1, true)]).unwrap();
        write_pieces(s, &bytes, &[(100, false), (C, true)]).unwrap();
    }
    let mut runner = TestRunner::new(Config { cases: 8, ..Config::default() });
    let strategy = (
        0..4 * C + 10,
        any::<u64>(),
        proptest::collection::vec(prop_oneof![Just(C), 1..C + 1].prop_flat_map(|n| (Just(n), any::<bool>())), 1..5),
    );
    runner
        .run(&strategy, |(len, seed, pieces)| {
            let bytes = data(len, seed);
            write_pieces(s, &bytes, &pieces).map_err(TestCaseError::fail)
        })
        .unwrap();
}
