//! Properties of NAR import and rendering over generated trees and mutated
//! NARs: NAR is canonical, so any byte string the importer accepts must
//! render back to exactly itself; anything else is an error, never a panic,
//! and registers nothing.

use ferrix_formats::nar::{self, NarWriter};
use ferrix_store::import::{NarExpect, import_nar};
use ferrix_store::nar::write_nar;
use ferrix_store::open_store;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Tree {
    File(bool, Vec<u8>),
    Link(Vec<u8>),
    Dir(std::collections::BTreeMap<Vec<u8>, Tree>),
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'B'), Just(b'.'), Just(b' '), Just(0xffu8), Just(b'z')], 1..6)
        .prop_filter("valid entry name", |n| n != b"." && n != b"..")
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(x, d)| Tree::File(x, d)),
        proptest::collection::vec(1u8..=255, 1..20).prop_map(Tree::Link),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        proptest::collection::btree_map(name(), inner, 0..5).prop_map(Tree::Dir)
    })
}

fn write<W: std::io::Write>(t: &Tree, node: nar::Node<'_, W>) {
    match t {
        Tree::File(x, d) => node.bytes(*x, d).unwrap(),
        Tree::Link(target) => node.symlink(target).unwrap(),
        Tree::Dir(entries) => {
            let mut dir = node.directory().unwrap();
            for (n, child) in entries {
                write(child, dir.entry(n).unwrap());
            }
            dir.close().unwrap();
        }
    }
}

fn to_nar(t: &Tree) -> Vec<u8> {
    let mut w = NarWriter::new(Vec::new()).unwrap();
    write(t, w.root());
    w.into_inner()
}

/// Imports `bytes`; if accepted, the rendering must equal the accepted prefix.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let store = open_store("memory://").unwrap();
    let mut r = std::io::Cursor::new(bytes);
    match import_nar(&store, "x", &mut r, &NarExpect::default(), &mut |_| {}) {
        Ok(info) => {
            let consumed = &bytes[..r.position() as usize];
            let rendered = write_nar(&*store.blobs, &*store.directories, &info.node, Vec::new()).unwrap();
            prop_assert!(rendered == consumed, "accepted NAR does not render back to itself");
            prop_assert_eq!(info.nar_size, consumed.len() as u64);
        }
        Err(_) => prop_assert_eq!(store.path_info.list().unwrap().len(), 0),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn generated_trees_round_trip(t in tree()) {
        let nar = to_nar(&t);
        let store = open_store("memory://").unwrap();
        let info = import_nar(&store, "x", &nar[..], &NarExpect::default(), &mut |_| {}).unwrap();
        let rendered = write_nar(&*store.blobs, &*store.directories, &info.node, Vec::new()).unwrap();
        prop_assert!(rendered == nar);
    }

    #[test]
    fn mutated_nars_never_panic(t in tree(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let nar = to_nar(&t);
        let mut flipped = nar.clone();
        let i = at.index(flipped.len());
        flipped[i] = byte;
        check(&flipped)?;
        check(&nar[..cut.index(nar.len())])?;
        let mut inserted = nar.clone();
        inserted.insert(i, byte);
        check(&inserted)?;
    }
}
