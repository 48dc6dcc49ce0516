//! `ferrix repl` driven through stdin (not a terminal, so rustyline reads
//! plain lines and prints no prompt): bindings, multi-line input, commands,
//! errors; and the printed values compared with `nix repl` (C++ Nix 2.8,
//! whose output is stripped of prompts, echoed continuation lines and
//! colours). Deliberate differences, not compared: ferrix prints strings and
//! attribute names as modern Nix does (`"\${"` escaped, keywords such as
//! `"if"` quoted as attribute names), where 2.8's repl did neither; error
//! messages follow modern Nix too. Tab completion is tested in the binary's unit tests
//! (`repl::tests`), since it needs a terminal.

use std::io::Write;
use std::process::{Command, Stdio};

fn drive(cmd: &mut Command, input: &str) -> (String, String) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    let o = child.wait_with_output().expect("wait");
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn ferrix_repl(dir: &std::path::Path, input: &str) -> (String, String) {
    drive(
        Command::new(env!("CARGO_BIN_EXE_ferrix")).args(["repl", "--store", "memory://"]).current_dir(dir),
        input,
    )
}

#[test]
fn repl_commands_through_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("lib.nix"), "{ greeting ? \"hi\" }: { inherit greeting; twice = n: n * 2; }\n").unwrap();
    let input = r#"x = 20
y = x + 1
y * 2
{ a = 1;
  b = "two"; }
:p { n = { m = [ 1 { k = 2; } ]; }; }
:t y
:t builtins.map
:a { p = 1; q = 2; }
p + q
:l lib.nix
greeting
twice 4
z = throw "lazy"
z
''
  indented
''
nosuch
:?
:q
1 + 1
"#;
    let (out, err) = ferrix_repl(dir, input);
    let want = r#"42
{ a = 1; b = "two"; }
{ n = { m = [ 1 { k = 2; } ]; }; }
an integer
the built-in function 'map'
3
"hi"
8
"indented\n"
"#;
    let (head, help) = out.split_at(want.len().min(out.len()));
    assert_eq!(head, want, "stdout:\n{out}\nstderr:\n{err}");
    assert!(help.starts_with("The following commands are available:"), "{help}");
    assert!(!out.contains("\n2\n"), "input after :q was evaluated: {out}");
    assert!(err.contains("Added 2 variables.\nAdded 2 variables.\n"), "{err}");
    assert!(err.contains("error: lazy"), "{err}");
    assert!(err.contains("error: undefined variable 'nosuch'"), "{err}");
}

/// The lines `nix repl` prints for values (no prompts, echoes, blank lines or colours).
fn nix_values(out: &str) -> Vec<String> {
    let mut s = String::new();
    let mut chars = out.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            s.push(c);
        }
    }
    s.lines()
        .filter(|l| !l.is_empty() && !l.starts_with("nix-repl>") && !l.starts_with("Welcome to Nix") && !l.starts_with("  "))
        .map(str::to_string)
        .collect()
}

#[test]
fn repl_prints_values_like_nix_repl() {
    match Command::new("nix").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!("nix (C++ Nix 2.8) is needed for the repl oracle test; install Nix (CI does)"),
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("set.nix"), "{ alpha = 1; beta = [ 1 2 ]; gamma.delta = \"d\"; }\n").unwrap();
    let input = r#"1 + 2
{ a = 1; b = { c = [ 1 2 ]; }; s = "x"; "a b" = null; }
:p { a = 1; b = { c = [ 1 2 ]; }; }
x = 5
x * 2
:t x
:t "s"
:t { }
:t [ ]
:t null
:t 1.5
:t true
[ 1 (2 + 1) { a = 1; } [ 2 ] ]
"tab\tquote\"dollar$x"
./foo
null
true
1.5
0.1
[ ]
{ }
{ a = 1;
  b = 2; }
let
  f = n: n * 3;
in f 4
:a { zz = 3; yy = 4; }
zz + yy
:l set.nix
gamma
:p gamma
derivation { name = "repl-test"; builder = "/bin/sh"; system = "x86_64-linux"; }
{ d = derivation { name = "repl-test"; builder = "/bin/sh"; system = "x86_64-linux"; }; }
builtins.attrNames { b = 1; a = 2; }
builtins.toJSON { a = [ 1 "x" ]; }
:q
"#;
    let (theirs, nerr) = drive(Command::new("nix").args(["repl"]).current_dir(dir), input);
    let (ours, ferr) = ferrix_repl(dir, input);
    let theirs = nix_values(&theirs);
    let ours: Vec<String> = ours.lines().map(str::to_string).collect();
    assert!(theirs.len() >= 25, "nix repl printed too little: {theirs:?}\n{nerr}");
    assert_eq!(ours, theirs, "ferrix stderr:\n{ferr}");
}
