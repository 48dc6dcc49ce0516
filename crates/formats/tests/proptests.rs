//! Property tests: every format round-trips, and no parser panics on arbitrary input.

use std::collections::{BTreeMap, BTreeSet};

use ferrix_formats::derivation::{Derivation, Output, OutputCa};
use ferrix_formats::nar;
use ferrix_formats::*;
use proptest::prelude::*;

fn algo() -> impl Strategy<Value = HashAlgo> {
    prop::sample::select(HashAlgo::ALL.to_vec())
}

fn nix_hash() -> impl Strategy<Value = NixHash> {
    (algo(), prop::collection::vec(any::<u8>(), 64))
        .prop_map(|(a, b)| NixHash::from_digest(a, &b[..a.size()]).unwrap())
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+_?=-][A-Za-z0-9+._?=-]{0,40}"
}

fn store_path() -> impl Strategy<Value = StorePath> {
    (any::<[u8; 20]>(), name()).prop_map(|(d, n)| StorePath::from_digest(&d, &n).unwrap())
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

fn derivation() -> impl Strategy<Value = Derivation> {
    let output = (
        prop::option::of(store_path()),
        prop::option::of((any::<bool>(), nix_hash(), any::<u8>())),
    )
        .prop_map(|(path, ca)| Output {
            path,
            ca: ca.map(|(fixed, h, m)| {
                let method = [CaMethod::Flat, CaMethod::Recursive, CaMethod::Text][m as usize % 3];
                if fixed {
                    OutputCa::Fixed(CAHash::new(method, h))
                } else {
                    OutputCa::Floating {
                        method,
                        algo: h.algo(),
                    }
                }
            }),
        });
    (
        prop::collection::btree_map(name(), output, 1..4),
        prop::collection::btree_map(
            store_path(),
            prop::collection::btree_set(name(), 1..3),
            0..3,
        ),
        prop::collection::btree_set(store_path(), 0..3),
        bytes(),
        bytes(),
        prop::collection::vec(bytes(), 0..4),
        prop::collection::btree_map(bytes(), bytes(), 0..5),
    )
        .prop_map(
            |(outputs, input_drvs, input_srcs, system, builder, args, env)| Derivation {
                outputs,
                input_drvs,
                input_srcs,
                system,
                builder,
                args,
                env,
            },
        )
}

/// An in-memory file tree for NAR round trips.
#[derive(Debug, Clone)]
enum Tree {
    File(bool, Vec<u8>),
    Link(Vec<u8>),
    Dir(BTreeMap<Vec<u8>, Tree>),
}

fn entry_name() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("no / or NUL", |c| *c != b'/' && *c != 0),
        1..12,
    )
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        (any::<bool>(), prop::collection::vec(any::<u8>(), 0..100))
            .prop_map(|(x, d)| Tree::File(x, d)),
        prop::collection::vec(1u8..=255, 1..30).prop_map(Tree::Link),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop::collection::btree_map(entry_name(), inner, 0..6).prop_map(Tree::Dir)
    })
}

fn write_tree<W: std::io::Write>(t: &Tree, n: nar::Node<'_, W>) {
    match t {
        Tree::File(x, d) => n.bytes(*x, d).unwrap(),
        Tree::Link(l) => n.symlink(l).unwrap(),
        Tree::Dir(m) => {
            let mut d = n.directory().unwrap();
            for (k, v) in m {
                write_tree(v, d.entry(k).unwrap());
            }
            d.close().unwrap();
        }
    }
}

fn nar_of(t: &Tree) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = nar::NarWriter::new(&mut out).unwrap();
    write_tree(t, w.root());
    out
}

fn read_tree(r: &mut nar::NarReader<&[u8]>, kind: nar::NodeKind) -> Result<Tree, nar::NarError> {
    Ok(match kind {
        nar::NodeKind::Regular { executable, .. } => {
            // never trust the declared size for allocation
            let mut d = Vec::new();
            let mut buf = [0u8; 64];
            loop {
                let n = r.read_contents(&mut buf)?;
                if n == 0 {
                    break;
                }
                d.extend_from_slice(&buf[..n]);
            }
            Tree::File(executable, d)
        }
        nar::NodeKind::Symlink { target } => Tree::Link(target),
        nar::NodeKind::Directory => {
            let mut m = BTreeMap::new();
            loop {
                match r.next()? {
                    None => return Err(nar::NarError::Truncated),
                    Some(nar::Event::EndDirectory) => return Ok(Tree::Dir(m)),
                    Some(nar::Event::Node { name, kind }) => {
                        let t = read_tree(r, kind)?;
                        m.insert(name.expect("entries have names"), t);
                    }
                }
            }
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn nixbase32_roundtrip(b in prop::collection::vec(any::<u8>(), 0..80)) {
        let e = nixbase32::encode(&b);
        prop_assert_eq!(e.len(), nixbase32::encoded_len(b.len()));
        prop_assert_eq!(nixbase32::decode(e.as_bytes()).unwrap(), b);
    }

    #[test]
    fn nixbase32_never_panics(s in prop::collection::vec(any::<u8>(), 0..80)) {
        let _ = nixbase32::decode(&s);
    }

    #[test]
    fn hash_roundtrip_all_encodings(h in nix_hash()) {
        for enc in [Encoding::Base16, Encoding::Nix32, Encoding::Base64] {
            prop_assert_eq!(&NixHash::parse(&h.to_typed(enc), None).unwrap(), &h);
            prop_assert_eq!(&NixHash::parse(&h.encode(enc), Some(h.algo())).unwrap(), &h);
        }
        prop_assert_eq!(&NixHash::parse(&h.to_sri(), None).unwrap(), &h);
        prop_assert_eq!(&NixHash::parse_sri(h.to_sri().trim_end_matches('=')).unwrap(), &h);
    }

    #[test]
    fn hash_parse_never_panics(s in ".{0,140}", a in prop::option::of(algo())) {
        let _ = NixHash::parse(&s, a);
        let _ = NixHash::parse_sri(&s);
        let _ = s.parse::<CAHash>();
    }

    #[test]
    fn ca_roundtrip(h in nix_hash(), m in 0u8..3) {
        let method = [CaMethod::Flat, CaMethod::Recursive, CaMethod::Text][m as usize];
        prop_assume!(method != CaMethod::Text || h.algo() == HashAlgo::Sha256);
        let ca = CAHash::new(method, h);
        prop_assert_eq!(ca.to_string().parse::<CAHash>().unwrap(), ca);
    }

    #[test]
    fn store_path_roundtrip(p in store_path(), dir in prop::sample::select(vec!["/nix/store", "/tmp/s", "/a/b/c"])) {
        let sd = StoreDir::new(dir);
        let abs = sd.display(&p);
        prop_assert_eq!(sd.parse(&abs).unwrap().to_owned(), p.clone());
        prop_assert_eq!(StorePath::from_base_name(&p.to_string()).unwrap(), p.clone());
        prop_assert_eq!(StorePath::from_digest(&p.digest(), p.name()).unwrap(), p);
    }

    #[test]
    fn store_path_never_panics(s in ".{0,80}") {
        let sd = StoreDir::default();
        let _ = sd.parse(&s);
        let _ = sd.parse_prefix(&s);
        let _ = StorePathRef::from_base_name(&s);
        let _ = StorePathRef::from_base_name_bytes(s.as_bytes());
    }

    #[test]
    fn aterm_roundtrip(d in derivation()) {
        let sd = StoreDir::default();
        let a = d.to_aterm(&sd);
        let back = Derivation::from_aterm(&a, &sd).unwrap();
        prop_assert_eq!(&back, &d);
        prop_assert_eq!(back.to_aterm(&sd), a);
    }

    #[test]
    fn aterm_never_panics(b in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Derivation::from_aterm(&b, &StoreDir::default());
    }

    #[test]
    fn aterm_mutations_never_panic(d in derivation(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let sd = StoreDir::default();
        let mut a = d.to_aterm(&sd);
        let i = pos.index(a.len());
        a[i] = byte;
        let _ = Derivation::from_aterm(&a, &sd);
        a.truncate(i);
        prop_assert!(Derivation::from_aterm(&a, &sd).is_err());
    }

    #[test]
    fn nar_write_read_write(t in tree()) {
        let bytes = nar_of(&t);
        let mut r = nar::NarReader::new(&bytes[..]);
        let Some(nar::Event::Node { name: None, kind }) = r.next().unwrap() else { panic!("root") };
        let back = read_tree(&mut r, kind).unwrap();
        prop_assert!(r.next().unwrap().is_none());
        prop_assert_eq!(nar_of(&back), bytes);
    }

    #[test]
    fn nar_restore_dump(t in tree()) {
        let bytes = nar_of(&t);
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("x");
        nar::restore(&bytes[..], &dest).unwrap();
        prop_assert_eq!(nar::dump_path(&dest, Vec::new()).unwrap(), bytes);
    }

    #[test]
    fn nar_never_panics(b in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = nar::NarReader::new(&b[..]).validate();
        let _ = nar::list(&b[..]);
    }

    #[test]
    fn nar_mutations_rejected_or_valid(t in tree(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = nar_of(&t);
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        // must not panic; if accepted, re-encoding what was read gives the same bytes
        let mut r = nar::NarReader::new(&bytes[..]);
        if let Ok(Some(nar::Event::Node { name: None, kind })) = r.next()
            && let Ok(back) = read_tree(&mut r, kind)
                && let Ok(None) = r.next()
            {
                prop_assert_eq!(nar_of(&back), bytes);
            }
    }

    #[test]
    fn nar_restore_of_mutated_archives_never_panics(t in tree(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = nar_of(&t);
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("x");
        if nar::restore(&bytes[..], &dest).is_ok() {
            // whatever was accepted dumps back to the same archive
            prop_assert_eq!(nar::dump_path(&dest, Vec::new()).unwrap(), bytes);
        } else {
            // all or nothing: a rejected archive leaves no destination
            prop_assert!(std::fs::symlink_metadata(&dest).is_err());
        }
        // nothing escapes the destination
        let outside: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert!(outside.len() <= 1, "{:?}", outside);
    }

    #[test]
    fn narinfo_roundtrip(
        p in store_path(),
        url in "[a-z0-9/.]{1,30}",
        comp in prop::option::of("[a-z]{1,5}"),
        fh in prop::option::of(any::<[u8; 32]>()),
        fsz in prop::option::of(any::<u64>()),
        nh in any::<[u8; 32]>(),
        nsz in 1u64..,
        refs in prop::collection::btree_set(store_path(), 0..4),
        deriver in prop::option::of(store_path()),
        system in prop::option::of("[a-z0-9_-]{1,20}"),
        sigs in prop::collection::btree_set("[a-z.-]{1,10}:[A-Za-z0-9+/]{10}==", 0..3),
        ca in prop::option::of(nix_hash()),
    ) {
        let sd = StoreDir::default();
        let ni = NarInfo {
            store_path: p,
            url,
            compression: comp,
            file_hash: fh.map(|h| NixHash::from_digest(HashAlgo::Sha256, &h).unwrap()),
            file_size: fsz,
            nar_hash: NixHash::from_digest(HashAlgo::Sha256, &nh).unwrap(),
            nar_size: nsz,
            references: refs,
            deriver,
            system,
            sigs,
            ca: ca.map(|h| CAHash::new(CaMethod::Recursive, h)),
            extra: Vec::new(),
        };
        let text = ni.to_text(&sd);
        let back = NarInfo::parse(&text, &sd).unwrap();
        prop_assert_eq!(&back, &ni);
        prop_assert_eq!(back.to_text(&sd), text);
    }

    #[test]
    fn narinfo_sign_verify(seed in any::<[u8; 32]>(), p in store_path(), nh in any::<[u8; 32]>(), nsz in 1u64..) {
        let sd = StoreDir::default();
        let key = SecretKey::from_seed("k-1", &seed);
        let mut ni = NarInfo {
            store_path: p, url: "nar/x".into(), compression: None, file_hash: None, file_size: None,
            nar_hash: NixHash::from_digest(HashAlgo::Sha256, &nh).unwrap(), nar_size: nsz,
            references: BTreeSet::new(), deriver: None, system: None, sigs: BTreeSet::new(), ca: None, extra: Vec::new(),
        };
        ni.sign(&sd, &key).unwrap();
        let k2 = SecretKey::parse(&key.to_text()).unwrap();
        let public = PublicKey::parse(&k2.public_key().to_text()).unwrap();
        prop_assert_eq!(ni.count_valid_sigs(&sd, &[public]), 1);
    }

    #[test]
    fn narinfo_and_keys_never_panic(s in "(?s).{0,300}") {
        let _ = NarInfo::parse(&s, &StoreDir::default());
        let _ = SecretKey::parse(&s);
        let _ = PublicKey::parse(&s);
    }
}
