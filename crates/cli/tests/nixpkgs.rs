//! Real nixpkgs (`../shared/nixpkgs-20.09`) through `ferrix instantiate` and
//! `ferrix eval-jobs`:
//! - `-A hello` gives the drv path C++ Nix gives, and every `.drv` in its
//!   closure (`nix-store -qR` after `nix-instantiate`) is byte-identical to
//!   the one ferrix writes (live against C++ Nix 2.8);
//! - every attribute of `tests/nixpkgs/attrs.txt` (widely used packages from
//!   across the tree) gives the drv path recorded by C++ Nix in
//!   `tests/nixpkgs/attrs.tsv` (made by `scripts/make-nixpkgs-fixtures`);
//! - `eval-jobs -A perlPackages` lists the same (attribute, drv path) pairs
//!   as `nix-env -qaP --drv-path -A perlPackages`, with 1 and 2 workers and
//!   with workers restarted past a small memory bound.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared nixpkgs tree beside the checkout (never copied into the project).
fn nixpkgs() -> PathBuf {
    let root = repo();
    let candidates = std::env::var_os("FERRIX_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join("../shared"), root.join("../../shared"), "/work/shared".into()]);
    for dir in candidates {
        let p = dir.join("nixpkgs-20.09");
        if p.join("default.nix").exists() {
            return p;
        }
    }
    panic!("cannot find shared/nixpkgs-20.09 beside the checkout; set FERRIX_SHARED")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e} (C++ Nix 2.8 must be on PATH for the oracle)"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn ferrix() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferrix"));
    c.env("FERRIX_STORE", "memory://").env_remove("FERRIX_DRV_DIR");
    c
}

#[test]
fn hello_closure_is_byte_identical() {
    let pkgs = nixpkgs();
    let nix = run(Command::new("nix-instantiate").arg(&pkgs).args(["-A", "hello"]));
    let tmp = tempfile::tempdir().expect("tempdir");
    let ours = run(ferrix().env("FERRIX_DRV_DIR", tmp.path()).arg("instantiate").arg(&pkgs).args(["-A", "hello"]));
    assert_eq!(ours, nix);
    let closure = run(Command::new("nix-store").arg("-qR").arg(nix.trim()));
    let mut drvs = 0;
    for p in closure.lines().filter(|p| p.ends_with(".drv")) {
        let name = p.strip_prefix("/nix/store/").expect("store path");
        let theirs = std::fs::read(p).unwrap_or_else(|e| panic!("reading {p}: {e}"));
        let mine = std::fs::read(tmp.path().join(name)).unwrap_or_else(|e| panic!("ferrix did not write {name}: {e}"));
        assert!(mine == theirs, "{name} differs:\nnix:    {}\nferrix: {}", String::from_utf8_lossy(&theirs), String::from_utf8_lossy(&mine));
        drvs += 1;
    }
    assert!(drvs > 50, "hello's closure has only {drvs} derivations");
}

#[test]
fn widely_used_attributes_match_cpp_nix() {
    let tsv = std::fs::read_to_string(repo().join("tests/nixpkgs/attrs.tsv")).expect("tests/nixpkgs/attrs.tsv");
    let listed: Vec<String> = std::fs::read_to_string(repo().join("tests/nixpkgs/attrs.txt"))
        .expect("tests/nixpkgs/attrs.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    let expected: Vec<(String, String)> = tsv
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (a, p) = l.split_once('\t').expect("attr<TAB>path");
            (a.to_string(), p.to_string())
        })
        .collect();
    let attrs: Vec<&String> = expected.iter().map(|(a, _)| a).collect();
    assert_eq!(attrs, listed.iter().collect::<Vec<_>>(), "attrs.tsv is stale: run scripts/make-nixpkgs-fixtures");
    assert!(expected.len() >= 200);
    let mut cmd = ferrix();
    cmd.arg("instantiate").arg(nixpkgs());
    for (a, _) in &expected {
        cmd.args(["-A", a]);
    }
    let out = run(&mut cmd);
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), expected.len(), "one drv path per attribute");
    let wrong: Vec<String> = expected
        .iter()
        .zip(&got)
        .filter(|((_, p), g)| p != *g)
        .map(|((a, p), g)| format!("{a}: nix {p}, ferrix {g}"))
        .collect();
    assert!(wrong.is_empty(), "{} of {} attributes differ:\n{}", wrong.len(), expected.len(), wrong.join("\n"));
}

fn eval_jobs_pairs(extra: &[&str]) -> (BTreeSet<(String, String)>, usize) {
    let out = run(ferrix().arg("eval-jobs").arg(nixpkgs()).args(["-A", "perlPackages"]).args(extra));
    let mut pairs = BTreeSet::new();
    let mut errors = 0;
    for line in out.lines() {
        let j: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line}: {e}"));
        let attr = j["attr"].as_str().expect("attr").to_string();
        if j.get("error").is_some() {
            errors += 1;
            continue;
        }
        for k in ["name", "system"] {
            assert!(j[k].is_string(), "{line} lacks {k}");
        }
        assert!(j["outputs"]["out"].as_str().is_some_and(|p| p.starts_with("/nix/store/")), "{line}");
        assert!(pairs.insert((attr, j["drvPath"].as_str().expect("drvPath").to_string())), "duplicate line {line}");
    }
    (pairs, errors)
}

#[test]
fn eval_jobs_matches_nix_env_on_perl_packages() {
    let nix = run(Command::new("nix-env").arg("-f").arg(nixpkgs()).args(["-qaP", "--drv-path", "-A", "perlPackages"]));
    let expected: BTreeSet<(String, String)> = nix
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[f.len() - 1].to_string())
        })
        .collect();
    assert!(expected.len() > 1000, "nix-env listed only {} perl packages", expected.len());
    let (one, errors_one) = eval_jobs_pairs(&["--workers", "1"]);
    let only_nix: Vec<_> = expected.difference(&one).collect();
    let only_ours: Vec<_> = one.difference(&expected).collect();
    assert!(only_nix.is_empty() && only_ours.is_empty(), "only nix-env: {only_nix:?}\nonly ferrix: {only_ours:?}");
    let (two, errors_two) = eval_jobs_pairs(&["--workers", "2"]);
    assert_eq!(two, one, "--workers 2 lists what --workers 1 lists");
    assert_eq!(errors_two, errors_one);
    // Workers restarted every few hundred MiB still list the same.
    let (small, errors_small) = eval_jobs_pairs(&["--workers", "2", "--max-memory-per-worker", "150"]);
    assert_eq!(small, one, "workers restarted past the memory bound list what one worker lists");
    assert_eq!(errors_small, errors_one);
}
