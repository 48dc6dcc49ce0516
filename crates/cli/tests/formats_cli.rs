//! Runs the `ferrix` binary and C++ Nix on the same inputs and compares the
//! outputs byte for byte. C++ Nix must be on PATH (CI installs it); a missing
//! tool fails the test rather than skipping it.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn ferrix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrix"))
        .args(args)
        .output()
        .expect("running ferrix")
}

fn nix(tool: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(tool);
    if tool == "nix" {
        // `nix hash`, `nix copy`, … need this unless nix.conf enables it
        cmd.args(["--extra-experimental-features", "nix-command"]);
    }
    match cmd.args(args).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "C++ Nix tool `{tool}` is not on PATH: these oracle tests need Nix 2.8 installed (CI installs it)"
        ),
        Err(e) => panic!("running {tool}: {e}"),
    }
}

fn ok(o: Output, what: &str) -> Vec<u8> {
    assert!(
        o.status.success(),
        "{what} failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn s(b: Vec<u8>) -> String {
    String::from_utf8(b).expect("utf-8 output")
}

/// A tree with every node kind and names that sort differently bytewise and by locale.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("nested/deeper")).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    fs::write(root.join("B"), "B").unwrap();
    fs::write(root.join("a"), "a\n").unwrap();
    fs::write(root.join("_under"), "").unwrap();
    fs::write(root.join("ä"), "umlaut").unwrap();
    fs::write(root.join("10"), vec![0u8; 1000]).unwrap();
    fs::write(root.join("9"), (0..=255u8).collect::<Vec<_>>()).unwrap();
    fs::write(root.join("nested/deeper/file"), "deep").unwrap();
    fs::write(root.join("nested/run"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("nested/run"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("../a", root.join("nested/link")).unwrap();
    symlink("/does/not/exist", root.join("dangling")).unwrap();
}

#[test]
fn hash_path_matches_nix_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree);
    let file = tree.join("9");
    for p in [&tree, &file] {
        let ps = p.to_str().unwrap();
        for algo in ["md5", "sha1", "sha256", "sha512"] {
            let ours = s(ok(
                ferrix(&["hash", "path", "--type", algo, "--base16", ps]),
                "ferrix hash path",
            ));
            let theirs = s(ok(nix("nix-hash", &["--type", algo, ps]), "nix-hash"));
            assert_eq!(ours, theirs, "{algo} base16 {ps}");
            let ours = s(ok(
                ferrix(&["hash", "path", "--type", algo, "--base32", ps]),
                "ferrix hash path",
            ));
            let theirs = s(ok(
                nix("nix-hash", &["--type", algo, "--base32", ps]),
                "nix-hash",
            ));
            assert_eq!(ours, theirs, "{algo} base32 {ps}");
            // `nix hash path` prints SRI by default
            let ours = s(ok(
                ferrix(&["hash", "path", "--type", algo, ps]),
                "ferrix hash path",
            ));
            let theirs = s(ok(
                nix("nix", &["hash", "path", "--type", algo, ps]),
                "nix hash path",
            ));
            assert_eq!(ours, theirs, "{algo} sri {ps}");
        }
    }
    // several paths at once, one line each
    let ours = s(ok(
        ferrix(&[
            "hash",
            "path",
            tree.to_str().unwrap(),
            file.to_str().unwrap(),
        ]),
        "two paths",
    ));
    assert_eq!(ours.lines().count(), 2);
}

#[test]
fn hash_file_matches_nix() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    fs::write(&f, b"some file contents\n\x00\xff").unwrap();
    let fs_ = f.to_str().unwrap();
    for algo in ["md5", "sha1", "sha256", "sha512"] {
        let ours = s(ok(
            ferrix(&["hash", "file", "--type", algo, "--base16", fs_]),
            "ferrix hash file",
        ));
        let theirs = s(ok(
            nix("nix-hash", &["--flat", "--type", algo, fs_]),
            "nix-hash --flat",
        ));
        assert_eq!(ours, theirs, "{algo}");
        for (flag, nixflag) in [
            ("--base64", "--base64"),
            ("--sri", "--sri"),
            ("--base32", "--base32"),
        ] {
            let ours = s(ok(
                ferrix(&["hash", "file", "--type", algo, flag, fs_]),
                "ferrix hash file",
            ));
            let theirs = s(ok(
                nix("nix", &["hash", "file", "--type", algo, nixflag, fs_]),
                "nix hash file",
            ));
            assert_eq!(ours, theirs, "{algo} {flag}");
        }
        let ours = s(ok(
            ferrix(&["hash", "file", "--type", algo, fs_]),
            "ferrix hash file",
        ));
        let theirs = s(ok(
            nix("nix", &["hash", "file", "--type", algo, fs_]),
            "nix hash file",
        ));
        assert_eq!(ours, theirs, "{algo} default");
    }
}

#[test]
fn hash_convert_matches_nix() {
    let inputs = [
        (
            "sha256",
            "10551daed7fa467d0b58826e7eb9a0f2af7d693de319f2ef775fffcda244b9f6",
        ),
        (
            "sha256",
            "sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=",
        ),
        ("sha1", "sha1:kl50xhsnl1g5j9acjls25jbcsn5b5r0s"),
        ("md5", "md5:6183de633b31364201d2f8acae281315"),
        (
            "sha512",
            "sha512-DPkYCnZKuoY6Z7bXLwkYvBMcZ3JkLLLc5aNPCnAvlHDdwr8SXBIZixmVwjPDS0r9NGxUojNMNQqUilG26LTmtg==",
        ),
    ];
    for (algo, h) in inputs {
        for (to, sub) in [
            ("base16", "to-base16"),
            ("nix32", "to-base32"),
            ("base64", "to-base64"),
            ("sri", "to-sri"),
        ] {
            let ours = s(ok(
                ferrix(&["hash", "convert", "--to", to, "--type", algo, h]),
                "ferrix hash convert",
            ));
            let theirs = s(ok(
                nix("nix", &["hash", sub, "--type", algo, h]),
                "nix hash to-*",
            ));
            assert_eq!(ours, theirs, "{h} → {to}");
        }
    }
}

#[test]
fn nar_dump_and_restore_match_nix_store() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree);
    let ours = ok(
        ferrix(&["nar", "dump", tree.to_str().unwrap()]),
        "ferrix nar dump",
    );
    let theirs = ok(
        nix("nix-store", &["--dump", tree.to_str().unwrap()]),
        "nix-store --dump",
    );
    assert!(
        ours == theirs,
        "NAR bytes differ ({} vs {} bytes)",
        ours.len(),
        theirs.len()
    );

    // our restore of Nix's NAR, dumped again by Nix
    let nar_file = tmp.path().join("x.nar");
    fs::write(&nar_file, &theirs).unwrap();
    let restored = tmp.path().join("restored");
    let st = Command::new(env!("CARGO_BIN_EXE_ferrix"))
        .args(["nar", "restore", restored.to_str().unwrap()])
        .stdin(fs::File::open(&nar_file).unwrap())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(st.success());
    let again = ok(
        nix("nix-store", &["--dump", restored.to_str().unwrap()]),
        "nix-store --dump",
    );
    assert!(again == theirs, "restore lost information");
    assert_eq!(
        fs::read_link(restored.join("nested/link")).unwrap(),
        Path::new("../a")
    );
    assert!(
        fs::metadata(restored.join("nested/run"))
            .unwrap()
            .permissions()
            .mode()
            & 0o100
            != 0
    );

    // Nix restores our NAR
    let ours_file = tmp.path().join("ours.nar");
    fs::write(&ours_file, &ours).unwrap();
    let r2 = tmp.path().join("r2");
    let st = Command::new(nix_path("nix-store"))
        .args(["--restore", r2.to_str().unwrap()])
        .stdin(fs::File::open(&ours_file).unwrap())
        .status()
        .unwrap();
    assert!(st.success());

    // listing
    let ours = s(ok(
        ferrix(&["nar", "ls", nar_file.to_str().unwrap()]),
        "ferrix nar ls",
    ));
    let theirs = s(ok(
        nix(
            "nix",
            &["nar", "ls", "-lR", nar_file.to_str().unwrap(), "/"],
        ),
        "nix nar ls",
    ));
    assert_eq!(ours, theirs);
}

fn nix_path(tool: &str) -> String {
    nix(tool, &["--version"]);
    tool.to_owned()
}

#[test]
fn nar_dump_single_file_and_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    // bigger than the 8 MiB threshold of the read-ahead thread
    fs::write(
        &f,
        (0..(9u32 << 20) + 5)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
    let l = tmp.path().join("l");
    symlink("f", &l).unwrap();
    for p in [&f, &l] {
        let ours = ok(
            ferrix(&["nar", "dump", p.to_str().unwrap()]),
            "ferrix nar dump",
        );
        let theirs = ok(
            nix("nix-store", &["--dump", p.to_str().unwrap()]),
            "nix-store --dump",
        );
        assert!(ours == theirs, "{}", p.display());
    }
}

#[test]
fn derivation_show_matches_nix() {
    let exprs = [
        r#"derivation { name = "cli-a"; builder = "/bin/sh"; system = "x86_64-linux"; outputs = [ "out" "dev" ]; args = [ "-c" "echo \"hi\"\n" ]; }"#,
        r#"derivation { name = "cli-fod"; builder = "/bin/sh"; system = "x86_64-linux"; outputHash = "sha256-Q3QXOoy+iN4VK2CflvRulYvPZXYgF0dO7FoF7CvWFTA="; outputHashMode = "recursive"; }"#,
        r#"let a = derivation { name = "cli-dep"; builder = "/bin/sh"; system = "x86_64-linux"; }; in derivation { name = "cli-top"; builder = "/bin/sh"; system = "x86_64-linux"; dep = a; src = builtins.toFile "s" "x"; }"#,
    ];
    let tmp = tempfile::tempdir().unwrap();
    for e in exprs {
        let drv = s(ok(
            nix("nix-instantiate", &["--expr", e]),
            "nix-instantiate",
        ));
        let drv = drv.trim();
        let ours = s(ok(
            ferrix(&["derivation", "show", drv]),
            "ferrix derivation show",
        ));
        let theirs = s(ok(
            nix("nix", &["show-derivation", drv]),
            "nix show-derivation",
        ));
        assert_eq!(ours, theirs, "{e}");
        // a copy outside the store gets the same key (path computed from contents)
        let copy = tmp.path().join("copy.drv");
        fs::copy(drv, &copy).unwrap();
        let ours2 = s(ok(
            ferrix(&["derivation", "show", copy.to_str().unwrap()]),
            "ferrix derivation show copy",
        ));
        assert_eq!(ours2, theirs, "copy of {drv}");
    }
}

fn fails_cleanly(args: &[&str], stdin: Option<&[u8]>, needle: &str) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferrix"));
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = c.spawn().unwrap();
    if let Some(data) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(
        err.contains("error:") && err.contains(needle),
        "{args:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
}

#[test]
fn errors_are_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.drv");
    fs::write(&bad, "Derive([(\"out\"").unwrap();
    let garbage = tmp.path().join("garbage.nar");
    fs::write(&garbage, b"not a nar at all").unwrap();
    let r = tmp.path().join("r");
    fails_cleanly(&["hash", "path", "/does/not/exist"], None, "No such file");
    fails_cleanly(&["hash", "file", "/does/not/exist"], None, "No such file");
    fails_cleanly(
        &["hash", "convert", "--to", "sri", "--type", "sha1", "abc"],
        None,
        "wrong length",
    );
    fails_cleanly(
        &["hash", "convert", "--to", "sri", "abc"],
        None,
        "does not include a type",
    );
    fails_cleanly(
        &["hash", "convert", "--to", "sri", "sha256:zzzz"],
        None,
        "wrong length",
    );
    fails_cleanly(
        &["nar", "restore", r.to_str().unwrap()],
        Some(b"garbage garbage garbage"),
        "NAR",
    );
    fails_cleanly(
        &["nar", "restore", r.to_str().unwrap()],
        Some(b""),
        "truncated",
    );
    fails_cleanly(&["nar", "ls", garbage.to_str().unwrap()], None, "NAR");
    fails_cleanly(&["nar", "dump", "/does/not/exist"], None, "No such file");
    fails_cleanly(
        &["derivation", "show", bad.to_str().unwrap()],
        None,
        "parse error",
    );
}

/// Keys from `nix-store --generate-binary-cache-key` work both ways: C++ Nix
/// accepts our signatures (`nix store verify --sigs-needed 1`) and we accept
/// the ones it makes (`nix copy` with `secret-key`).
#[test]
fn narinfo_signatures_interoperate_with_nix() {
    use ferrix_formats::{NarInfo, PublicKey, SecretKey, StoreDir};
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (sec, public) = (t.join("sec"), t.join("pub"));
    ok(
        nix(
            "nix-store",
            &[
                "--generate-binary-cache-key",
                "ferrix-interop-1",
                sec.to_str().unwrap(),
                public.to_str().unwrap(),
            ],
        ),
        "generate key",
    );
    let f = t.join("payload");
    let unique = format!("{:?} {}", std::time::SystemTime::now(), std::process::id());
    fs::write(&f, unique).unwrap();
    let path = s(ok(
        nix("nix-store", &["--add", f.to_str().unwrap()]),
        "nix-store --add",
    ));
    let path = path.trim();
    let hash_part = &path["/nix/store/".len().."/nix/store/".len() + 32];
    let sd = StoreDir::default();
    let public_text = fs::read_to_string(&public).unwrap();

    // ours → Nix
    let ours = t.join("cache-ours");
    let url = format!("file://{}?compression=none", ours.display());
    ok(nix("nix", &["copy", "--to", &url, path]), "nix copy");
    let ni_file = ours.join(format!("{hash_part}.narinfo"));
    let mut ni = NarInfo::parse(&fs::read_to_string(&ni_file).unwrap(), &sd).unwrap();
    // without a CA field Nix insists on a signature
    ni.ca = None;
    ni.sigs.clear();
    fs::write(&ni_file, ni.to_text(&sd)).unwrap();
    let verify = |keys: &str| {
        nix(
            "nix",
            &[
                "store",
                "verify",
                "--no-contents",
                "--sigs-needed",
                "1",
                "--store",
                &url,
                "--trusted-public-keys",
                keys,
                path,
            ],
        )
    };
    assert!(
        !verify(&public_text).status.success(),
        "unsigned path must not verify"
    );
    ni.sign(
        &sd,
        &SecretKey::parse(&fs::read_to_string(&sec).unwrap()).unwrap(),
    )
    .unwrap();
    fs::write(&ni_file, ni.to_text(&sd)).unwrap();
    let v = verify(public_text.trim());
    assert!(
        v.status.success(),
        "Nix rejected our signature: {}",
        String::from_utf8_lossy(&v.stderr)
    );

    // Nix → ours
    let theirs = t.join("cache-nix");
    let url = format!(
        "file://{}?compression=none&secret-key={}",
        theirs.display(),
        sec.display()
    );
    ok(
        nix("nix", &["copy", "--to", &url, path]),
        "nix copy with secret-key",
    );
    let text = fs::read_to_string(theirs.join(format!("{hash_part}.narinfo"))).unwrap();
    let ni = NarInfo::parse(&text, &sd).unwrap();
    assert_eq!(ni.to_text(&sd), text);
    assert_eq!(
        ni.count_valid_sigs(&sd, &[PublicKey::parse(&public_text).unwrap()]),
        1
    );
}
