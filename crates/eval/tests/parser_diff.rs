//! The hand-written parser against rnix (its oracle and the syntax-error
//! path): for every `.nix` file of nixpkgs 20.09, nixpkgs lib and the
//! upstream language tests, both front ends must build the same syntax tree
//! (compared as a canonical dump, every offset included), and the lowering's
//! string processing must agree with rnix's on every string literal. Where
//! the hand-written parser gives up, rnix must report a syntax error, apart
//! from the few odd forms listed in `LEFT_TO_RNIX`; where it accepts, rnix
//! must too. Every file is also lowered (it must not panic).

use std::path::{Path, PathBuf};

use ferrix_eval::parse::{fast_parser_bail_offset, parse_both, string_mismatches};
use ferrix_eval::{Eval, decode_source};

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

/// Files rnix parses without errors but the hand-written parser leaves to
/// rnix (pipe operators, whose lowering is an error), by file name.
const LEFT_TO_RNIX: &[&str] = &["eval-fail-pipe-operators.nix"];

/// Where two dumps (ASCII text) first differ, with some context.
fn first_difference(a: &str, b: &str) -> String {
    let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let ctx = |s: &str| s.get(at.saturating_sub(150)..(at + 150).min(s.len())).unwrap_or("").to_string();
    format!("at dump byte {at}:\n  fast: …{}…\n  rnix: …{}…", ctx(a), ctx(b))
}

fn check(dirs: &[&str]) -> (usize, usize) {
    let shared = shared();
    let mut files = Vec::new();
    for d in dirs {
        nix_files(&shared.join(d), &mut files);
    }
    assert!(!files.is_empty());
    let ev = Eval::default();
    let mut fast_n = 0;
    let mut problems = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).expect("read");
        let text = decode_source(&bytes);
        let (fast, rnix) = parse_both(&text);
        let name = f.file_name().expect("name").to_string_lossy();
        match (fast, &rnix) {
            (Some(fast), Ok(rnix)) => {
                fast_n += 1;
                if fast != *rnix {
                    problems.push(format!("{}: trees differ {}", f.display(), first_difference(&fast, rnix)));
                }
            }
            (Some(_), Err(e)) => problems.push(format!("{}: the fast parser accepts it, rnix says {e}", f.display())),
            (None, Ok(_)) if !LEFT_TO_RNIX.contains(&name.as_ref()) => {
                let at = fast_parser_bail_offset(&text).unwrap_or(0);
                let snippet: String = text.get(at..).unwrap_or("").chars().take(40).collect();
                problems.push(format!("{}: the fast parser gave up at byte {at}: {snippet:?}", f.display()));
            }
            _ => {}
        }
        if rnix.is_ok() {
            for m in string_mismatches(&text) {
                problems.push(format!("{}: {m}", f.display()));
            }
        }
        let base = f.parent().expect("parent").to_string_lossy().into_owned();
        let _ = ev.parse_discard(&text, &base, false);
    }
    assert!(problems.is_empty(), "{} problems in {} files:\n{}", problems.len(), files.len(), problems.join("\n"));
    (files.len(), fast_n)
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
