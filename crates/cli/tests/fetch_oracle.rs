//! Oracle tests for the fetchers and for a realistic package set, against
//! C++ Nix 2.8 run in the test (its fetches write to /nix/store).
//!
//! A tiny HTTP server on 127.0.0.1 (a std `TcpListener` thread) serves a
//! scratch directory; `ferrix instantiate` and `nix-instantiate` evaluate the
//! same expressions against it:
//! - `builtins.fetchurl` / `builtins.fetchTarball` (http:// and file://, with
//!   and without `sha256` and `name`, every compression) give the same store
//!   paths, and hash mismatches, missing files and bad tarballs fail in both;
//! - the package set in `tests/data/pkgset` (a dozen derivations, one shared
//!   builder script, sources imported from a directory, a fixed-output
//!   `<nix/fetchurl.nix>` fetch, eval-time fetches) instantiates to the same
//!   `.drv` closure, byte for byte.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Serve the files under `root` over HTTP/1.0-style GET (one request per
/// connection) on an ephemeral port; returns `http://127.0.0.1:PORT`.
fn serve(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            // Skip the headers.
            loop {
                let mut h = String::new();
                match reader.read_line(&mut h) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if h == "\r\n" || h == "\n" => break,
                    Ok(_) => {}
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
            let file = root.join(&path);
            let response = match std::fs::read(&file) {
                Ok(body) if !path.contains("..") => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    if !request.starts_with("HEAD") {
                        r.extend_from_slice(&body);
                    }
                    r
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found".to_vec(),
            };
            let _ = conn.write_all(&response);
        }
    });
    format!("http://{addr}")
}

fn nix_instantiate() -> &'static str {
    match Command::new("nix-instantiate").arg("--version").output() {
        Ok(o) if o.status.success() => "nix-instantiate",
        _ => panic!("nix-instantiate (C++ Nix 2.8) is needed for the fetcher oracle tests; install Nix (CI does)"),
    }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let o = cmd.output().expect("spawn");
    Run { ok: o.status.success(), stdout: String::from_utf8_lossy(&o.stdout).into_owned(), stderr: String::from_utf8_lossy(&o.stderr).into_owned() }
}

fn ferrix() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrix"))
}

fn sh(dir: &Path, script: &str) {
    let st = Command::new("sh").arg("-ec").arg(script).current_dir(dir).status().expect("sh");
    assert!(st.success(), "{script}");
}

/// A served directory: a text file, a tree, and that tree as tarballs in
/// every compression, plus a tarball with two top-level entries.
fn served_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let tree = dir.join("pkg-1.0");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("default.nix"), "{ answer = 42; files = builtins.attrNames (builtins.readDir ./.); }\n").unwrap();
    std::fs::write(tree.join("bin/run"), "#!/bin/sh\necho run\n").unwrap();
    std::fs::set_permissions(tree.join("bin/run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("default.nix", tree.join("link")).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello over http\n").unwrap();
    std::fs::write(dir.join("other"), "second top-level entry\n").unwrap();
    sh(
        dir,
        "tar czf pkg.tar.gz pkg-1.0; tar cJf pkg.tar.xz pkg-1.0; tar cjf pkg.tar.bz2 pkg-1.0; \
         tar cf pkg.tar pkg-1.0; tar cf - pkg-1.0 | zstd -q > pkg.tar.zst; tar czf two.tar.gz pkg-1.0 other; \
         tar czf single-file.tar.gz hello.txt",
    );
}

fn hash_of(args: &[&str]) -> String {
    let o = Command::new("nix-hash").args(args).output().expect("nix-hash");
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn fetchers_give_the_store_paths_cpp_nix_gives() {
    let nix = nix_instantiate();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    served_dir(&dir);
    let url = serve(dir.clone());
    let d = dir.display();
    let flat = hash_of(&["--type", "sha256", "--flat", "--base32", &format!("{d}/hello.txt")]);
    let nar = hash_of(&["--type", "sha256", "--base32", &format!("{d}/pkg-1.0")]);
    let hex = hash_of(&["--type", "sha256", &format!("{d}/pkg-1.0")]);
    let cases = [
        format!(r#"builtins.fetchurl "{url}/hello.txt""#),
        format!(r#"builtins.fetchurl "file://{d}/hello.txt""#),
        format!(r#"builtins.fetchurl {{ url = "{url}/hello.txt"; sha256 = "{flat}"; }}"#),
        format!(r#"builtins.fetchurl {{ url = "{url}/hello.txt"; name = "greeting"; }}"#),
        format!(r#"builtins.fetchurl "{url}/pkg.tar.gz""#),
        format!(r#"builtins.fetchTarball "{url}/pkg.tar.gz""#),
        format!(r#"builtins.fetchTarball "{url}/pkg.tar.xz""#),
        format!(r#"builtins.fetchTarball "{url}/pkg.tar.bz2""#),
        format!(r#"builtins.fetchTarball "{url}/pkg.tar.zst""#),
        format!(r#"builtins.fetchTarball "{url}/pkg.tar""#),
        format!(r#"builtins.fetchTarball "file://{d}/pkg.tar.gz""#),
        format!(r#"builtins.fetchTarball {{ url = "{url}/pkg.tar.gz"; sha256 = "{nar}"; }}"#),
        format!(r#"builtins.fetchTarball {{ url = "{url}/pkg.tar.xz"; sha256 = "{hex}"; name = "pkg-src"; }}"#),
        format!(r#"builtins.fetchTarball "{url}/single-file.tar.gz""#),
        format!(r#"import (builtins.fetchTarball "{url}/pkg.tar.gz")"#),
        format!(r#"builtins.readFile "${{builtins.fetchTarball "{url}/pkg.tar.bz2"}}/bin/run""#),
        format!(r#"builtins.readDir (builtins.fetchTarball "{url}/pkg.tar.zst")"#),
        format!(r#"builtins.getContext (builtins.fetchurl "{url}/hello.txt")"#),
        format!(r#"builtins.readFile (builtins.fetchurl "{url}/hello.txt")"#),
    ];
    let mut failures = Vec::new();
    for e in &cases {
        let cpp = run(Command::new(nix).args(["--eval", "--strict", "-E", e]).current_dir(&dir));
        let ours = run(ferrix().args(["instantiate", "--eval", "--strict", "-E", e]).current_dir(&dir));
        if !cpp.ok {
            failures.push(format!("{e}: C++ Nix failed: {}", cpp.stderr));
        } else if !ours.ok || ours.stdout != cpp.stdout {
            failures.push(format!("{e}\n  nix:    {:?}\n  ferrix: {:?} {}", cpp.stdout, ours.stdout, ours.stderr));
        }
    }
    assert!(failures.is_empty(), "{} of {} fetch cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn bad_fetches_fail_like_cpp_nix() {
    let nix = nix_instantiate();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    served_dir(&dir);
    let url = serve(dir.clone());
    let zero = "0".repeat(52);
    let cases = [
        (format!(r#"builtins.fetchurl {{ url = "{url}/hello.txt"; sha256 = "{zero}"; }}"#), "hash mismatch in file downloaded from"),
        (format!(r#"builtins.fetchTarball {{ url = "{url}/pkg.tar.gz"; sha256 = "{zero}"; }}"#), "hash mismatch in file downloaded from"),
        (format!(r#"builtins.fetchurl "{url}/missing""#), "unable to download"),
        (format!(r#"builtins.fetchTarball "{url}/two.tar.gz""#), "contains an unexpected number of top-level files"),
        (format!(r#"builtins.fetchurl {{ url = "{url}/hello.txt"; md5 = "x"; }}"#), "unsupported argument 'md5' to 'fetchurl'"),
        (r#"builtins.fetchTarball { }"#.to_string(), "'url' argument required"),
    ];
    for (e, want) in &cases {
        let cpp = run(Command::new(nix).args(["--eval", "--strict", "-E", e]).current_dir(&dir));
        let ours = run(ferrix().args(["instantiate", "--eval", "--strict", "-E", e]).current_dir(&dir));
        assert!(!cpp.ok, "{e}: C++ Nix succeeded");
        assert!(!ours.ok, "{e}: ferrix succeeded: {}", ours.stdout);
        assert!(ours.stderr.contains(want), "{e}: ferrix said {:?}, want {want:?}", ours.stderr);
        assert!(!ours.stderr.contains("panicked"), "{e}: {}", ours.stderr);
    }
}

fn copy_tree(src: &Path, dst: &Path) {
    sh(Path::new("/"), &format!("cp -r '{}' '{}'", src.display(), dst.display()));
}

#[test]
fn package_set_instantiates_to_the_same_drv_closure() {
    let nix = nix_instantiate();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let set = dir.join("pkgset");
    copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pkgset"), &set);
    let served = set.join("served");
    sh(&served, "tar czf extra.tar.gz extra-src");
    let url = serve(served);
    let drv_dir = dir.join("drvs");
    let args = ["--argstr", "server", url.as_str()];
    let cpp = run(Command::new(nix).arg(set.join("default.nix")).args(args).current_dir(&dir));
    assert!(cpp.ok, "nix-instantiate failed: {}", cpp.stderr);
    let ours = run(ferrix().arg("instantiate").arg(set.join("default.nix")).args(args).env("FERRIX_DRV_DIR", &drv_dir).current_dir(&dir));
    assert!(ours.ok, "ferrix failed: {}", ours.stderr);
    assert_eq!(ours.stdout, cpp.stdout, "printed .drv paths differ");
    let tops: Vec<&str> = cpp.stdout.lines().collect();
    assert!(tops.len() >= 12, "the set has a dozen derivations: {tops:?}");

    // The whole closure C++ Nix made: every .drv file and text file in it.
    let q = run(Command::new("nix-store").arg("-qR").args(&tops));
    assert!(q.ok, "{}", q.stderr);
    let mut compared = 0;
    let mut sources = 0;
    for p in q.stdout.lines() {
        let fname = p.strip_prefix("/nix/store/").expect("store path");
        let theirs = Path::new(p);
        let ours_file = drv_dir.join(fname);
        if ours_file.is_file() {
            let a = std::fs::read(theirs).unwrap();
            let b = std::fs::read(&ours_file).unwrap();
            assert!(a == b, "{fname} differs\n  nix:    {}\n  ferrix: {}", String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
            compared += 1;
        } else {
            assert!(!fname.ends_with(".drv"), "ferrix did not write {fname}");
            sources += 1;
        }
    }
    // Imported sources and fetched content: every path ferrix recorded is in the closure C++ Nix made.
    let imported = std::fs::read_to_string(drv_dir.join("imported.tsv")).unwrap_or_default();
    for line in imported.lines() {
        let p = line.split('\t').next().unwrap();
        assert!(Path::new(&format!("/nix/store/{p}")).exists(), "imported path {p} is not what C++ Nix made");
    }
    // Nothing extra: ferrix wrote no file outside C++ Nix's closure.
    for ent in std::fs::read_dir(&drv_dir).unwrap() {
        let f = ent.unwrap().file_name().to_string_lossy().into_owned();
        if f != "imported.tsv" {
            assert!(q.stdout.contains(&format!("/nix/store/{f}\n")), "ferrix wrote {f}, which is not in C++ Nix's closure");
        }
    }
    assert!(compared >= 14, "only {compared} files compared");
    assert!(sources >= 5, "only {sources} source paths in the closure");
}
