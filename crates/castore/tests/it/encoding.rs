//! The canonical directory encoding, names and digests.

use ferrix_castore::{B3Digest, Directory, DirectoryError, Entry, Name, Node};
use proptest::prelude::*;

fn name(s: &str) -> Name {
    Name::try_from(s).unwrap()
}

fn link(n: &str) -> Entry {
    Entry::new(name(n), Node::Symlink { target: b"t".to_vec() })
}

#[test]
fn canonical_order_is_enforced() {
    let err = Directory::new(vec![link("b"), link("a")]).unwrap_err();
    assert_eq!(err, DirectoryError::Unsorted { prev: "b".into(), next: "a".into() });
    assert_eq!(Directory::new(vec![link("a"), link("a")]).unwrap_err(), DirectoryError::Duplicate("a".into()));
    assert_eq!(Directory::from_unsorted(vec![link("a"), link("a")]).unwrap_err(), DirectoryError::Duplicate("a".into()));
    // Byte order, not locale order: "B" (0x42) < "a" (0x61) < "é" (0xc3 0xa9).
    let d = Directory::from_unsorted(vec![link("é"), link("a"), link("B")]).unwrap();
    let names: Vec<&[u8]> = d.entries().iter().map(|e| e.name.as_bytes()).collect();
    assert_eq!(names, [&b"B"[..], b"a", "é".as_bytes()]);
    assert!(d.get(b"a").is_some() && d.get(b"b").is_none());
    // A hand-made unsorted encoding is rejected by decode too.
    let mut bytes = Directory::new(vec![link("a"), link("b")]).unwrap().encode();
    let pos = bytes.iter().position(|&b| b == b'a').unwrap();
    bytes[pos] = b'c';
    assert!(matches!(Directory::decode(&bytes), Err(DirectoryError::Unsorted { .. })));
}

#[test]
fn names_are_validated() {
    for (bad, reason) in [("", "empty"), (".", "`.` and `..` are not allowed"), ("..", "`.` and `..` are not allowed"), ("a/b", "contains `/`"), ("a\0b", "contains NUL")] {
        assert_eq!(Name::try_from(bad).unwrap_err(), DirectoryError::InvalidName { name: bad.into(), reason }, "{bad:?}");
    }
    assert!(Name::new(vec![0xff, 0xfe]).is_ok(), "names need not be UTF-8");
    assert!(Name::try_from("...").is_ok());
    let e = Entry::new(name("l"), Node::Symlink { target: vec![] });
    assert!(matches!(Directory::new(vec![e]), Err(DirectoryError::InvalidSymlinkTarget { .. })));
}

#[test]
fn encoding_is_pinned() {
    // Golden digests: changing the encoding changes every stored digest.
    assert_eq!(Directory::default().encode(), [0, 0, 0, 0]);
    let d = Directory::new(vec![
        Entry::new(name("d"), Directory::default().node()),
        Entry::new(name("f"), Node::File { digest: B3Digest::of(b""), size: 0, executable: true }),
        link("l"),
    ])
    .unwrap();
    let mut want = vec![3, 0, 0, 0];
    want.extend([1, 0, 0, 0, b'd', 0]);
    want.extend(Directory::default().digest().as_bytes());
    want.extend([0; 8]);
    want.extend([1, 0, 0, 0, b'f', 1]);
    want.extend(B3Digest::of(b"").as_bytes());
    want.extend([0; 8]);
    want.push(1);
    want.extend([1, 0, 0, 0, b'l', 2, 1, 0, 0, 0, b't']);
    assert_eq!(d.encode(), want);
    assert_eq!(d.digest(), B3Digest::of(&want));
    assert_eq!(Directory::default().digest().to_string(), B3Digest::of(&[0, 0, 0, 0]).to_string());
}

#[test]
fn decode_errors_are_clear() {
    let e = |b: &[u8]| Directory::decode(b).unwrap_err().to_string();
    assert_eq!(e(&[]), "malformed directory encoding at byte 0: truncated: need 4 bytes, 0 left");
    assert_eq!(e(&[0, 0, 0, 0, 9]), "malformed directory encoding at byte 4: 1 trailing bytes");
    assert_eq!(e(&[1, 0, 0, 0, 1, 0, 0, 0, b'x', 7]), "malformed directory encoding at byte 9: unknown entry kind 7");
    assert_eq!(e(&[255, 255, 255, 255]), "malformed directory encoding at byte 4: truncated: need 4 bytes, 0 left");
    assert_eq!(
        e(&[1, 0, 0, 0, 1, 0, 0, 0, b'/', 2, 1, 0, 0, 0, b't']),
        "malformed directory encoding at byte 4: invalid entry name \"/\": contains `/`"
    );
}

fn arb_name() -> impl Strategy<Value = Name> {
    proptest::collection::vec(any::<u8>(), 1..12).prop_filter_map("valid name", |b| Name::new(b).ok())
}

fn arb_node() -> impl Strategy<Value = Node> {
    let digest = any::<[u8; 32]>().prop_map(B3Digest::from_bytes);
    prop_oneof![
        (digest.clone(), 0..u64::MAX / 1024).prop_map(|(digest, size)| Node::Directory { digest, size }),
        (digest, any::<u64>(), any::<bool>()).prop_map(|(digest, size, executable)| Node::File { digest, size, executable }),
        proptest::collection::vec(1..=255u8, 1..20).prop_map(|target| Node::Symlink { target }),
    ]
}

fn arb_directory() -> impl Strategy<Value = Directory> {
    proptest::collection::btree_map(arb_name(), arb_node(), 0..20).prop_map(|m| {
        Directory::new(m.into_iter().map(|(name, node)| Entry::new(name, node)).collect()).expect("sorted, unique")
    })
}

proptest! {
    #[test]
    fn encoding_round_trips(d in arb_directory()) {
        let bytes = d.encode();
        prop_assert_eq!(Directory::decode(&bytes).unwrap(), d);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        // Whatever decodes must re-encode to the same bytes (one encoding per directory).
        if let Ok(d) = Directory::decode(&bytes) {
            prop_assert_eq!(d.encode(), bytes);
        }
    }

    #[test]
    fn decoding_mutated_encodings_never_panics(d in arb_directory(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut bytes = d.encode();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(d2) = Directory::decode(&bytes) {
            prop_assert_eq!(d2.encode(), bytes.clone());
        }
        bytes.truncate(cut.index(bytes.len()));
        if let Ok(d3) = Directory::decode(&bytes) {
            prop_assert_eq!(d3.encode(), bytes);
        }
    }
}

#[test]
fn tree_builder_rejects_malformed_streams() {
    use ferrix_castore::tree::{TreeBuilder, TreeError};
    let link = || Node::Symlink { target: b"t".to_vec() };
    let mut t = TreeBuilder::default();
    assert_eq!(t.enter_directory(Some(name("x"))), Err(TreeError::NamedRoot("x".into())));
    assert_eq!(t.leave_directory(), Err(TreeError::Unbalanced));
    t.enter_directory(None).unwrap();
    assert_eq!(t.add(None, link()), Err(TreeError::UnnamedEntry));
    t.add(Some(name("a")), link()).unwrap();
    t.add(Some(name("a")), link()).unwrap();
    assert_eq!(t.leave_directory(), Err(TreeError::Directory(DirectoryError::Duplicate("a".into()))));

    let mut t = TreeBuilder::default();
    t.enter_directory(None).unwrap();
    t.enter_directory(Some(name("d"))).unwrap();
    t.leave_directory().unwrap();
    assert_eq!(TreeBuilder::default().finish().unwrap_err(), TreeError::Empty);
    t.leave_directory().unwrap();
    assert!(matches!(t.add(Some(name("late")), link()), Err(TreeError::AfterRoot(_))));
    let (root, dirs) = t.finish().unwrap();
    assert_eq!(dirs.len(), 2);
    assert_eq!(root, Node::Directory { digest: dirs[1].digest(), size: 1 });

    let mut t = TreeBuilder::default();
    t.enter_directory(None).unwrap();
    assert_eq!(t.finish().unwrap_err(), TreeError::Unfinished(1));
    let mut t = TreeBuilder::default();
    assert!(matches!(t.add(None, Node::Symlink { target: vec![] }), Err(TreeError::InvalidSymlinkTarget { .. })));
    t.add(None, link()).unwrap();
    assert_eq!(t.finish().unwrap().0, link());
}
