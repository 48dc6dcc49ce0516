//! What `ferrix instantiate` prints for a failed evaluation, byte for byte.

use std::path::Path;
use std::process::Command;

/// `ferrix instantiate ARGS --store memory:// FILE`: its exit code and stderr.
fn instantiate(args: &[&str], file: &Path) -> (Option<i32>, Vec<u8>) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrix"))
        .arg("instantiate")
        .args(args)
        .args(["--store", "memory://"])
        .arg(file)
        .output()
        .expect("runs");
    (out.status.code(), out.stderr)
}

#[test]
fn source_lines_in_errors_keep_bytes_that_are_not_utf8() {
    // upstream's eval-fail-toJSON-non-utf-8: the quoted source line shows
    // the file's 0xFF byte as it is, as C++ Nix prints it
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.nix");
    std::fs::write(&file, b"builtins.toJSON \"_invalid UTF-8: \xff_\"\n").expect("write");
    let (code, stderr) = instantiate(&["--eval", "--show-trace"], &file);
    assert_eq!(code, Some(1));
    let line: &[u8] = b"            1| builtins.toJSON \"_invalid UTF-8: \xff_\"\n";
    assert!(stderr.windows(line.len()).any(|w| w == line), "{}", String::from_utf8_lossy(&stderr));
    let msg: &[u8] = b"error: JSON serialization error: [json.exception.type_error.316] invalid UTF-8 byte at index 16: 0xFF";
    assert!(stderr.windows(msg.len()).any(|w| w == msg), "{}", String::from_utf8_lossy(&stderr));
}

#[test]
fn traces_through_the_derivation_wrapper_quote_cpp_nix_lines() {
    // the wrapper is laid out as C++ Nix's derivation-internal.nix, so a
    // failure in a derivation's attributes is traced at its lines (here
    // `drvPath` on line 50, which instantiation selects)
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("drv.nix");
    std::fs::write(
        &file,
        "derivation { name = \"x\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; args = [ (throw \"kaboom\") ]; }\n",
    )
    .expect("write");
    let (code, stderr) = instantiate(&[], &file);
    assert_eq!(code, Some(1));
    let err = String::from_utf8_lossy(&stderr);
    for want in [
        "at «nix-internal»/derivation-internal.nix:50:17:",
        "           49|       outPath = strict.${outputName};",
        "           50|       drvPath = strict.drvPath;",
        "           51|       type = \"derivation\";",
        "error: kaboom",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn infinite_recursion_is_reported_at_the_variable_that_reentered() {
    // upstream's eval-fail-blackhole and -recursion: `y = x` shares x's
    // thunk (a slot written already), so forcing x evaluates `y` (3:7),
    // which finds x being evaluated; `{ } // a` re-enters `a` at 2:14
    let dir = tempfile::tempdir().expect("tempdir");
    for (src, line) in [
        ("let {\n  body = x;\n  x = y;\n  y = x;\n}\n", "       at FILE:3:7:"),
        ("let\n  a = { } // a;\nin\na.foo\n", "       at FILE:2:14:"),
    ] {
        let file = dir.path().join("rec.nix");
        std::fs::write(&file, src).expect("write");
        let (code, stderr) = instantiate(&["--eval", "--strict"], &file);
        assert_eq!(code, Some(1));
        let err = String::from_utf8_lossy(&stderr);
        let want = format!("error: infinite recursion encountered\n{}", line.replace("FILE", &file.display().to_string()));
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
}
