//! `ferrix eval-jobs` on a small synthetic tree (`tests/data/eval_jobs_tree.nix`)
//! against live `nix-env -qaP --drv-path` (C++ Nix 2.8): the same (attribute,
//! drv path) pairs, and the same lines for any number of workers and when
//! every unit of the walk runs in a fresh process (a tiny memory bound).
//!
//! The tree has a set reached under three names after a distinct set with
//! the same drvPath: nix-env lists the distinct one and the first of the
//! three. A second worker that walks the first of the three while the other
//! walks the rest used to list the wrong name (the rule applied out of walk
//! order across processes).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn tree() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/eval_jobs_tree.nix")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e} (C++ Nix 2.8 must be on PATH for the oracle)"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn nix_env_pairs(extra: &[&str]) -> BTreeSet<(String, String)> {
    run(Command::new("nix-env").arg("-f").arg(tree()).args(["-qaP", "--drv-path"]).args(extra))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[f.len() - 1].to_string())
        })
        .collect()
}

/// The output lines (sorted) and the (attribute, drv path) pairs.
fn eval_jobs(extra: &[&str]) -> (Vec<String>, BTreeSet<(String, String)>) {
    let out = run(Command::new(env!("CARGO_BIN_EXE_ferrix")).env("FERRIX_STORE", "memory://").arg("eval-jobs").arg(tree()).args(extra));
    let mut lines: Vec<String> = out.lines().map(String::from).collect();
    lines.sort();
    let mut pairs = BTreeSet::new();
    for line in &lines {
        let j: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line}: {e}"));
        if j.get("error").is_none() {
            let attr = j["attr"].as_str().expect("attr").to_string();
            assert!(pairs.insert((attr, j["drvPath"].as_str().expect("drvPath").to_string())), "duplicate line {line}");
        }
    }
    (lines, pairs)
}

#[test]
fn eval_jobs_synthetic_tree_matches_nix_env_for_any_worker_count() {
    let expected = nix_env_pairs(&[]);
    assert!(expected.iter().any(|(a, _)| a == "b") && !expected.iter().any(|(a, _)| a == "c"), "nix-env lists b, not c: {expected:?}");
    let (one, pairs) = eval_jobs(&["--workers", "1"]);
    let only_nix: Vec<_> = expected.difference(&pairs).collect();
    let only_ours: Vec<_> = pairs.difference(&expected).collect();
    // nix-env leaves out a derivation whose drvPath fails; ferrix gives it an error line.
    assert!(only_nix.is_empty() && only_ours.is_empty(), "only nix-env: {only_nix:?}\nonly ferrix: {only_ours:?}");
    for attr in ["group.broken", "group.asserted", "group.badDrvPath"] {
        assert!(one.iter().any(|l| l.contains(&format!("\"attr\":\"{attr}\",\"error\""))), "no error line for {attr}:\n{}", one.join("\n"));
    }
    for extra in [&["--workers", "2"][..], &["--workers", "3"], &["--workers", "2", "--max-memory-per-worker", "1K"]] {
        let (lines, _) = eval_jobs(extra);
        assert_eq!(lines, one, "eval-jobs {extra:?} differs from --workers 1");
    }
}

#[test]
fn eval_jobs_below_an_attribute_path() {
    let expected = nix_env_pairs(&["-A", "group"]);
    let (one, pairs) = eval_jobs(&["-A", "group", "--workers", "1"]);
    assert_eq!(pairs, expected);
    let (two, _) = eval_jobs(&["-A", "group", "--workers", "2", "--max-memory-per-worker", "1K"]);
    assert_eq!(two, one);
}

#[test]
fn eval_jobs_root_failure_is_an_error_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrix"))
        .env("FERRIX_STORE", "memory://")
        .args(["eval-jobs", "-E", "throw \"no tree\"", "--workers", "2"])
        .output()
        .expect("running ferrix");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("no tree"), "{text}");
}

/// A worker that dies inside a unit (here: an allocation the address-space
/// limit refuses, which aborts the process) costs that attribute an error
/// line; the walk goes on in a fresh worker and lists the others. Workers
/// report finished units in batches, so the dead worker's last units are
/// walked again, one at a time, to find the one it died in.
#[test]
fn eval_jobs_worker_death_blames_one_attribute() {
    // The process that dies is the zygote walking the first units itself
    // (replaced by a fresh one), or, with FERRIX_EVAL_JOBS_COLD, a worker
    // forked from it; with two workers, possibly the second one, forked
    // before the zygote's walk, walking from the end while the zygote walks.
    for (cold, workers) in [(false, 1), (true, 1), (false, 2)] {
        worker_death(cold, workers);
    }
}

fn worker_death(cold: bool, workers: usize) {
    let expr = r#"let d = name: derivation { inherit name; system = "x"; builder = "/bin/sh"; }; in {
      a = d "a"; b = d "b";
      c = d "c${toString (builtins.length (builtins.genList (x: x) 400000000))}";
      e = d "e"; f = d "f"; }"#;
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -v 4000000 && exec \"$0\" eval-jobs -E \"$1\" --workers \"$2\""])
        .arg(env!("CARGO_BIN_EXE_ferrix"))
        .arg(expr)
        .arg(workers.to_string())
        .env("FERRIX_STORE", "memory://");
    if cold {
        cmd.env("FERRIX_EVAL_JOBS_COLD", "1");
    }
    let out = cmd.output().expect("running ferrix");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let attrs: Vec<(String, bool)> = text
        .lines()
        .map(|l| {
            let j: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}"));
            (j["attr"].as_str().expect("attr").to_string(), j.get("error").is_some())
        })
        .collect();
    let expected: Vec<(String, bool)> = [("a", false), ("b", false), ("c", true), ("e", false), ("f", false)].iter().map(|(a, e)| (a.to_string(), *e)).collect();
    assert_eq!(attrs, expected, "{text}");
    assert!(text.contains("evaluation worker died"), "{text}");
}
