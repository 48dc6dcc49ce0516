//! The fast parser against the rnix pipeline (its oracle): for every `.nix`
//! file of nixpkgs 20.09, nixpkgs lib and the upstream language tests, both
//! front ends must give the same IR (compared as a canonical dump, spans
//! included) or the same error. Where the fast parser leaves a file to rnix
//! the result is rnix's by construction; such files must be syntax errors,
//! apart from the few odd forms listed in `LEFT_TO_RNIX`.

use std::path::{Path, PathBuf};

use ferrix_eval::{decode_source, Eval};

#[path = "common/shared.rs"]
mod shared;
use shared::shared;

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let meta = std::fs::symlink_metadata(&p).expect("metadata");
        if meta.is_dir() {
            nix_files(&p, out);
        } else if meta.is_file() && p.extension().is_some_and(|x| x == "nix") {
            out.push(p);
        }
    }
}

/// Files rnix parses without errors but the fast parser leaves to rnix
/// (pipe operators, whose lowering is an error), by file name.
const LEFT_TO_RNIX: &[&str] = &["eval-fail-pipe-operators.nix"];

fn check(dirs: &[&str]) -> (usize, usize) {
    let shared = shared();
    let mut files = Vec::new();
    for d in dirs {
        nix_files(&shared.join(d), &mut files);
    }
    assert!(!files.is_empty());
    let ev = Eval::default();
    let mut fast_n = 0;
    let mut mismatches = Vec::new();
    let mut unexpected_bail = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).expect("read");
        let text = decode_source(&bytes);
        let base = f.parent().expect("parent").to_string_lossy().into_owned();
        let (fast, old) = ev.parse_both(&text, &f.to_string_lossy(), &base);
        match fast {
            Some(fast) => {
                fast_n += 1;
                if fast != old {
                    mismatches.push(format!("{}:\n  fast: {:.600}\n  rnix: {:.600}", f.display(), fmt(&fast), fmt(&old)));
                }
            }
            None => {
                let name = f.file_name().expect("name").to_string_lossy();
                if old.is_ok() && !LEFT_TO_RNIX.contains(&name.as_ref()) {
                    let at = ferrix_eval::parse::fast_parser_bail_offset(&text).unwrap_or(0);
                    let snippet: String = text.get(at..).unwrap_or("").chars().take(40).collect();
                    unexpected_bail.push(format!("{} at byte {at}: {snippet:?}", f.display()));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{} of {} files differ:\n{}", mismatches.len(), files.len(), mismatches.join("\n"));
    assert!(unexpected_bail.is_empty(), "the fast parser gave up on valid files:\n{}", unexpected_bail.join("\n"));
    (files.len(), fast_n)
}

fn fmt(r: &Result<String, String>) -> String {
    match r {
        Ok(s) => format!("ok {s}"),
        Err(e) => format!("err {e}"),
    }
}

#[test]
fn parser_diff_lang_tests() {
    let (n, fast) = check(&["nix-lang-tests/lang"]);
    assert!(n > 400 && fast > 300, "{n} files, {fast} parsed by the fast parser");
}

#[test]
fn parser_diff_nixpkgs_lib() {
    let (n, fast) = check(&["nixpkgs-lib"]);
    assert!(n > 200 && fast == n, "{n} files, {fast} parsed by the fast parser");
}

#[test]
fn parser_diff_nixpkgs() {
    let (n, fast) = check(&["nixpkgs-20.09"]);
    assert!(n > 18000 && fast + 5 > n, "{n} files, {fast} parsed by the fast parser");
}
