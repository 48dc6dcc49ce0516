//! Data-driven tests over tests/fixtures/formats (made by scripts/make-format-fixtures with C++ Nix).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use ferrix_formats::derivation::show_derivations_json;
use ferrix_formats::nar;
use ferrix_formats::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/formats")
}

fn tsv(path: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Undo `printf %b` escapes used in hashes.tsv.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                b'x' => {
                    out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
                    i += 2;
                }
                c => panic!("unknown escape {c}"),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn hashes_every_encoding() {
    let rows = tsv(&fixtures().join("hashes.tsv"));
    assert!(rows.len() >= 20);
    for r in rows {
        let algo: HashAlgo = r[0].parse().unwrap();
        let h = algo.digest(&unescape(&r[1]));
        assert_eq!(h.encode(Encoding::Base16), r[2], "{r:?}");
        assert_eq!(h.encode(Encoding::Nix32), r[3], "{r:?}");
        assert_eq!(h.encode(Encoding::Base64), r[4], "{r:?}");
        assert_eq!(h.to_sri(), r[5], "{r:?}");
        for bare in &r[2..5] {
            assert_eq!(NixHash::parse(bare, Some(algo)).unwrap(), h);
            assert_eq!(NixHash::parse(&format!("{algo}:{bare}"), None).unwrap(), h);
            assert_eq!(
                NixHash::parse(&format!("{algo}:{bare}"), Some(algo)).unwrap(),
                h
            );
        }
        assert_eq!(NixHash::parse(&r[5], None).unwrap(), h);
        assert_eq!(NixHash::parse(r[5].trim_end_matches('='), None).unwrap(), h);
        assert!(
            NixHash::parse(&r[2], None).is_err(),
            "bare digest without algo must fail"
        );
        let other = if algo == HashAlgo::Sha256 {
            HashAlgo::Sha1
        } else {
            HashAlgo::Sha256
        };
        assert!(matches!(
            NixHash::parse(&r[5], Some(other)),
            Err(HashError::AlgoMismatch { .. })
        ));
    }
}

fn nar_cases() -> Vec<(String, Vec<u8>, Vec<String>)> {
    tsv(&fixtures().join("nar/cases.tsv"))
        .into_iter()
        .map(|r| {
            let bytes = fs::read(fixtures().join(format!("nar/{}.nar", r[0]))).unwrap();
            (r[0].clone(), bytes, r)
        })
        .collect()
}

#[test]
fn nar_hashes_match_nix_hash() {
    for (name, bytes, r) in nar_cases() {
        assert_eq!(
            HashAlgo::Sha256.digest(&bytes).encode(Encoding::Base16),
            r[1],
            "{name}"
        );
        assert_eq!(
            HashAlgo::Sha256.digest(&bytes).encode(Encoding::Nix32),
            r[2],
            "{name}"
        );
        assert_eq!(HashAlgo::Sha1.digest(&bytes).to_sri(), r[3], "{name}");
        assert_eq!(
            HashAlgo::Sha512.digest(&bytes).encode(Encoding::Nix32),
            r[4],
            "{name}"
        );
    }
}

/// Copy a NAR through the reader into the writer.
fn recode(bytes: &[u8]) -> Vec<u8> {
    let mut rd = nar::NarReader::new(bytes);
    let mut out = Vec::new();
    let mut w = nar::NarWriter::new(&mut out).unwrap();
    fn node<W: std::io::Write>(
        rd: &mut nar::NarReader<&[u8]>,
        kind: nar::NodeKind,
        n: nar::Node<'_, W>,
    ) {
        match kind {
            nar::NodeKind::Regular { executable, size } => {
                let mut data = Vec::new();
                let mut buf = [0u8; 7];
                loop {
                    let k = rd.read_contents(&mut buf).unwrap();
                    if k == 0 {
                        break;
                    }
                    data.extend_from_slice(&buf[..k]);
                }
                assert_eq!(data.len() as u64, size);
                n.bytes(executable, &data).unwrap();
            }
            nar::NodeKind::Symlink { target } => n.symlink(&target).unwrap(),
            nar::NodeKind::Directory => {
                let mut d = n.directory().unwrap();
                loop {
                    match rd.next().unwrap().unwrap() {
                        nar::Event::EndDirectory => break,
                        nar::Event::Node { name, kind } => {
                            let child = d.entry(&name.unwrap()).unwrap();
                            node(rd, kind, child);
                        }
                    }
                }
                d.close().unwrap();
            }
        }
    }
    let Some(nar::Event::Node { name: None, kind }) = rd.next().unwrap() else {
        panic!("root")
    };
    node(&mut rd, kind, w.root());
    assert!(rd.next().unwrap().is_none());
    out
}

#[test]
fn nar_restore_is_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, bytes, _) in nar_cases() {
        // every proper prefix is rejected and leaves nothing behind
        for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 8] {
            let dest = tmp.path().join(format!("{name}-{cut}"));
            assert!(nar::restore(&bytes[..cut], &dest).is_err(), "{name}: prefix {cut} accepted");
            assert!(fs::symlink_metadata(&dest).is_err(), "{name}: partial restore left behind");
        }
        // an existing destination is refused and left untouched
        let dest = tmp.path().join(format!("{name}-existing"));
        fs::write(&dest, b"keep").unwrap();
        assert!(nar::restore(&bytes[..], &dest).is_err(), "{name}");
        assert_eq!(fs::read(&dest).unwrap(), b"keep");
    }
    let left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporary trees left behind: {left:?}");
}

#[test]
fn nar_read_write_restore_dump_roundtrip() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = nar_cases();
    assert!(cases.len() >= 15);
    for (name, bytes, _) in cases {
        assert_eq!(recode(&bytes), bytes, "{name}: reader→writer");
        let dest = tmp.path().join(&name);
        nar::restore(&bytes[..], &dest).unwrap_or_else(|e| panic!("{name}: {e}"));
        let dumped = nar::dump_path(&dest, Vec::new()).unwrap();
        assert_eq!(dumped, bytes, "{name}: restore→dump");
        let (h, n) = nar::dump_path_hashed(&dest, HashAlgo::Sha256).unwrap();
        assert_eq!(n, bytes.len() as u64);
        assert_eq!(h, HashAlgo::Sha256.digest(&bytes));
        let listing = nar::list(&bytes[..]).unwrap();
        assert!(!listing.is_empty());
    }
}

#[test]
fn nar_every_truncation_is_an_error() {
    for (name, bytes, _) in nar_cases() {
        if bytes.len() > 4096 {
            continue;
        }
        for cut in 0..bytes.len() {
            let r = nar::NarReader::new(&bytes[..cut]).validate();
            assert!(r.is_err(), "{name}: truncated at {cut} was accepted");
        }
        assert!(nar::NarReader::new(&bytes[..]).validate().is_ok());
    }
}

// -- hand-built malformed NARs

fn tok(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
    out.resize(out.len().div_ceil(8) * 8, 0);
}

fn dir_nar(names: &[&[u8]]) -> Vec<u8> {
    let mut o = Vec::new();
    for t in [&b"nix-archive-1"[..], b"(", b"type", b"directory"] {
        tok(&mut o, t);
    }
    for n in names {
        for t in [
            &b"entry"[..],
            b"(",
            b"name",
            n,
            b"node",
            b"(",
            b"type",
            b"regular",
            b"contents",
            b"",
            b")",
            b")",
        ] {
            tok(&mut o, t);
        }
    }
    tok(&mut o, b")");
    o
}

fn check_err(bytes: &[u8], what: &str) -> String {
    match nar::NarReader::new(bytes).validate() {
        Ok(_) => panic!("{what}: malformed NAR accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn nar_rejects_noncanonical() {
    assert!(
        nar::NarReader::new(&dir_nar(&[b"a", b"b"])[..])
            .validate()
            .is_ok()
    );
    assert!(check_err(&dir_nar(&[b"b", b"a"]), "unsorted").contains("not sorted"));
    assert!(check_err(&dir_nar(&[b"a", b"a"]), "duplicate").contains("not sorted"));
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        assert!(
            check_err(&dir_nar(&[bad]), "bad name").contains("invalid entry name"),
            "{bad:?}"
        );
    }
    // bad padding: non-zero byte after "type"
    let mut b = dir_nar(&[]);
    b[24 + 16 + 8 + 4] = 1; // magic, "(", then the padding after "type"
    assert!(check_err(&b, "padding").contains("padding"));
    // oversized name length
    let mut o = Vec::new();
    for t in [
        &b"nix-archive-1"[..],
        b"(",
        b"type",
        b"directory",
        b"entry",
        b"(",
        b"name",
    ] {
        tok(&mut o, t);
    }
    o.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(check_err(&o, "huge").contains("exceeds"));
    // bad magic
    let mut m = Vec::new();
    tok(&mut m, b"nix-archive-2");
    assert!(check_err(&m, "magic").contains("magic"));
    // unknown node type
    let mut u = Vec::new();
    for t in [&b"nix-archive-1"[..], b"(", b"type", b"fifo", b")"] {
        tok(&mut u, t);
    }
    assert!(check_err(&u, "type").contains("unknown node type"));
}

#[test]
fn store_paths_match_nix() {
    let sd = StoreDir::default();
    let rows = tsv(&fixtures().join("store-paths.tsv"));
    assert!(rows.len() >= 15);
    for r in rows {
        let method = match r[0].as_str() {
            "flat" => CaMethod::Flat,
            "recursive" => CaMethod::Recursive,
            "text" => CaMethod::Text,
            m => panic!("{m}"),
        };
        let hash = NixHash::parse(&r[2], None).unwrap();
        let refs: BTreeSet<StorePath> = if r[3] == "-" {
            BTreeSet::new()
        } else {
            r[3].split(',')
                .map(|p| sd.parse(p).unwrap().to_owned())
                .collect()
        };
        let p = sd
            .make_fixed_output_path(&r[1], method, &hash, &refs, false)
            .unwrap();
        assert_eq!(sd.display(&p), r[4], "{r:?}");
        assert_eq!(sd.parse(&r[4]).unwrap().to_owned(), p);
    }
}

struct Drvs {
    sd: StoreDir,
    drvs: HashMap<StorePath, (Vec<u8>, Derivation)>,
    modulo: HashMap<StorePath, [u8; 32]>,
}

impl Drvs {
    fn load() -> Drvs {
        let sd = StoreDir::default();
        let mut drvs = HashMap::new();
        for e in fs::read_dir(fixtures().join("drv")).unwrap() {
            let p = e.unwrap().path();
            let f = p.file_name().unwrap().to_str().unwrap().to_owned();
            if !f.ends_with(".drv") {
                continue;
            }
            let bytes = fs::read(&p).unwrap();
            let drv = Derivation::from_aterm(&bytes, &sd).unwrap_or_else(|e| panic!("{f}: {e}"));
            drvs.insert(StorePath::from_base_name(&f).unwrap(), (bytes, drv));
        }
        Drvs {
            sd,
            drvs,
            modulo: HashMap::new(),
        }
    }

    fn modulo(&mut self, p: &StorePath) -> [u8; 32] {
        if let Some(h) = self.modulo.get(p) {
            return *h;
        }
        let drv = self.drvs[p].1.clone();
        for i in drv.input_drvs.keys() {
            self.modulo(i);
        }
        let known = self.modulo.clone();
        let h = drv
            .hash_modulo(&self.sd, false, &mut |i| known.get(i).copied())
            .unwrap();
        self.modulo.insert(p.clone(), h);
        h
    }
}

#[test]
fn derivations_roundtrip_and_paths() {
    let mut d = Drvs::load();
    assert!(d.drvs.len() >= 30);
    let paths: Vec<StorePath> = d.drvs.keys().cloned().collect();
    for p in &paths {
        let (bytes, drv) = d.drvs[p].clone();
        let f = p.to_string();
        assert_eq!(drv.to_aterm(&d.sd), bytes, "{f}: ATerm round trip");
        drv.validate().unwrap();
        let name = String::from_utf8(drv.env[&b"name".to_vec()].clone()).unwrap();
        assert_eq!(&drv.drv_path(&d.sd, &name).unwrap(), p, "{f}: drv path");
        // recompute the output paths from scratch
        for i in drv.input_drvs.keys() {
            d.modulo(i);
        }
        let known = d.modulo.clone();
        let mut blank = drv.clone();
        for (o, out) in blank.outputs.iter_mut() {
            out.path = None;
            blank.env.insert(o.as_bytes().to_vec(), Vec::new());
        }
        // `finish` (what derivationStrict uses) on the same blank derivation:
        // the same bytes and path, and the modulo hash it splices from the
        // bytes equals `hash_modulo` of the finished derivation
        let finished = blank
            .clone()
            .finish(&d.sd, &name, &mut |i| known.get(i).copied())
            .unwrap();
        assert_eq!(finished.aterm, bytes, "{f}: finish ATerm");
        assert_eq!(&finished.drv_path, p, "{f}: finish drv path");
        assert_eq!(
            finished.modulo_hash,
            drv.hash_modulo(&d.sd, false, &mut |i| known.get(i).copied())
                .unwrap(),
            "{f}: finish modulo hash"
        );
        blank
            .fill_output_paths(&d.sd, &name, &mut |i| known.get(i).copied())
            .unwrap();
        assert_eq!(blank, drv, "{f}: output paths");
        // JSON like nix show-derivation
        let json = fs::read(fixtures().join(format!("drv/{f}.json"))).unwrap();
        let mut ours = show_derivations_json(&d.sd, [(p, &drv)]);
        ours.push(b'\n');
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&json),
            "{f}: JSON"
        );
        assert!(ours == json, "{f}: JSON bytes");
    }
}

#[test]
fn derivation_cases_table() {
    let mut d = Drvs::load();
    let rows = tsv(&fixtures().join("drv/cases.tsv"));
    assert!(rows.len() >= 30);
    for r in rows {
        let p = d.sd.parse(&r[1]).unwrap().to_owned();
        let drv = d.drvs[&p].1.clone();
        let outs: Vec<String> = drv
            .outputs
            .iter()
            .map(|(n, o)| {
                format!(
                    "{n}={}",
                    o.path.as_ref().map(|p| d.sd.display(p)).unwrap_or_default()
                )
            })
            .collect();
        assert_eq!(outs.join(";"), r[2], "{}", r[0]);
        d.modulo(&p);
    }
}

/// A vector file from the shared corpus beside the checkout (never copied
/// into the project); a missing corpus is a failure, not a skip.
fn shared_vectors(name: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = std::env::var_os("FERRIX_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join("../shared"), root.join("../../shared"), "/work/shared".into()]);
    for dir in candidates {
        let p = dir.join("vectors").join(name);
        if p.exists() {
            return fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
        }
    }
    panic!("cannot find shared/vectors/{name} beside the checkout; set FERRIX_SHARED")
}

#[test]
fn shared_vectors_paths() {
    // shared/vectors/derivations.tsv rows whose drvs are in the fixtures
    let d = Drvs::load();
    // The vectors live outside this repository; their derivations are also
    // fixture cases named "vector: …", which `derivation_cases_table` checks.
    let vector_cases = tsv(&fixtures().join("drv/cases.tsv"))
        .iter()
        .filter(|r| r[0].starts_with("vector: "))
        .count();
    assert!(vector_cases >= 19, "{vector_cases}");
    let text = shared_vectors("derivations.tsv");
    let mut n = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 4 {
            continue;
        }
        if cols[2].starts_with('/') && !cols[3].is_empty() {
            let drv = d.sd.parse(cols[3]).unwrap().to_owned();
            let (_, dd) = &d.drvs[&drv];
            assert!(
                dd.outputs
                    .values()
                    .any(|o| d.sd.display(o.path.as_ref().unwrap()) == cols[2]),
                "{}",
                cols[0]
            );
            n += 1;
        } else if cols[1].starts_with("builtins.placeholder") {
            let arg = cols[1]
                .trim_start_matches("builtins.placeholder ")
                .trim_matches('"');
            assert_eq!(hash_placeholder(arg), cols[2]);
            n += 1;
        }
    }
    assert!(n >= 20, "{n}");
}

fn narinfos() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = fs::read_dir(fixtures().join("narinfo"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "narinfo"))
        .map(|p| {
            (
                p.file_name().unwrap().to_str().unwrap().to_owned(),
                fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn narinfo_roundtrip_and_signatures() {
    let sd = StoreDir::default();
    let sec =
        SecretKey::parse(&fs::read_to_string(fixtures().join("narinfo/key.sec")).unwrap()).unwrap();
    let public =
        PublicKey::parse(&fs::read_to_string(fixtures().join("narinfo/key.pub")).unwrap()).unwrap();
    assert_eq!(sec.public_key(), public);
    assert_eq!(
        sec.to_text(),
        fs::read_to_string(fixtures().join("narinfo/key.sec"))
            .unwrap()
            .trim()
    );
    assert_eq!(
        public.to_text(),
        fs::read_to_string(fixtures().join("narinfo/key.pub"))
            .unwrap()
            .trim()
    );
    let all = narinfos();
    assert!(all.len() >= 15);
    for (f, text) in all {
        let ni = NarInfo::parse(&text, &sd).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(ni.to_text(&sd), text, "{f}");
        assert_eq!(
            ni.count_valid_sigs(&sd, std::slice::from_ref(&public)),
            1,
            "{f}: signature"
        );
        let mut resigned = ni.clone();
        resigned.sigs.clear();
        resigned.sign(&sd, &sec).unwrap();
        assert_eq!(resigned.sigs, ni.sigs, "{f}: ed25519 is deterministic");
        let mut tampered = ni.clone();
        tampered.nar_size += 1;
        assert_eq!(
            tampered.count_valid_sigs(&sd, std::slice::from_ref(&public)),
            0
        );
    }
}

#[test]
fn big_file_dump_uses_read_ahead_and_matches_in_memory_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("big");
    let data: Vec<u8> = (0..(17u32 << 20) + 3)
        .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
        .collect();
    fs::write(&f, &data).unwrap();
    let dumped = nar::dump_path(&f, Vec::new()).unwrap();
    let mut expected = Vec::new();
    let mut w = nar::NarWriter::new(&mut expected).unwrap();
    w.root().bytes(false, &data).unwrap();
    assert!(dumped == expected);
    let (h, n) = nar::dump_path_hashed(&f, HashAlgo::Sha256).unwrap();
    assert_eq!(
        (h, n),
        (HashAlgo::Sha256.digest(&expected), expected.len() as u64)
    );
}

#[test]
fn writer_rejects_wrong_sizes_and_bad_names() {
    let mut out = Vec::new();
    let mut w = nar::NarWriter::new(&mut out).unwrap();
    assert!(
        w.root()
            .file_from_writer(false, 3, |w| w.write_all(b"ab"))
            .is_err()
    );
    let mut out = Vec::new();
    let mut w = nar::NarWriter::new(&mut out).unwrap();
    assert!(
        w.root()
            .file_from_writer(false, 1, |w| w.write_all(b"ab"))
            .is_err()
    );
    let mut out = Vec::new();
    let mut w = nar::NarWriter::new(&mut out).unwrap();
    assert!(w.root().file(false, 5, &mut &b"abc"[..]).is_err());
    let mut out = Vec::new();
    let mut w = nar::NarWriter::new(&mut out).unwrap();
    let mut d = w.root().directory().unwrap();
    d.entry(b"b").unwrap().bytes(false, b"").unwrap();
    assert!(d.entry(b"a").is_err(), "unsorted");
    assert!(d.entry(b"b").is_err(), "duplicate");
    assert!(d.entry(b"c/d").is_err(), "slash");
    assert!(d.entry(b"..").is_err(), "dotdot");
    // a file written in pieces equals the same file written at once
    let mut a = Vec::new();
    nar::NarWriter::new(&mut a)
        .unwrap()
        .root()
        .bytes(true, b"hello world")
        .unwrap();
    let mut b = Vec::new();
    nar::NarWriter::new(&mut b)
        .unwrap()
        .root()
        .file_from_writer(true, 11, |w| {
            w.write_all(b"hello")?;
            w.write_all(b" world")
        })
        .unwrap();
    assert_eq!(a, b);
}
