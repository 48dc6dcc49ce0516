//! Warnings printed while evaluating, byte for byte as C++ Nix prints them.

use std::process::Command;

/// stderr of `ferrix instantiate --eval` on `src` (a file in a temporary
/// directory, so positions name it).
fn warnings(src: &str) -> (String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("w.nix");
    std::fs::write(&file, src).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrix"))
        .args(["instantiate", "--eval", "--store", "memory://"])
        .arg(&file)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr).replace(&file.display().to_string(), "W");
    (err, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn builtins_warn_hangs_later_lines_under_the_prefix() {
    assert_eq!(warnings("builtins.warn \"foo\\nbar\" 1").0, "evaluation warning: foo\n                    bar\n");
    // a message that starts with a line break is printed as it is
    assert_eq!(warnings("builtins.warn \"\\nfoo\\nbar\" 1").0, "evaluation warning:\nfoo\nbar\n");
}

#[test]
fn base32_as_a_hash_format_is_deprecated() {
    let (err, out) = warnings(
        "builtins.convertHash { hash = \"sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\"; toHashFormat = \"base32\"; }",
    );
    assert_eq!(err, "warning: \"base32\" is a deprecated alias for hash format \"nix32\".\n");
    assert_eq!(out, "\"0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73\"\n");
}

#[test]
fn or_as_an_argument_is_cursed_but_not_in_function_position() {
    let (err, _) = warnings("let or = 1; f = x: x; in [ (f (x: x) or) (map or []) (f (f or)) ]");
    assert_eq!(
        err,
        "warning: at W:1:31: This expression uses `or` as an identifier in a way that will change in a future Nix release.\n\
         Wrap this entire expression in parentheses to preserve its current meaning:\n    ((x: x) or)\n\
         Give feedback at https://github.com/NixOS/nix/pull/11121\n"
    );
}

#[test]
fn structured_attrs_warn_about_top_level_output_checks() {
    let (err, _) = warnings(
        "(derivationStrict {\n  name = \"d\";\n  system = \"x\";\n  builder = \"/b\";\n  __structuredAttrs = true;\n  maxSize = 1;\n}).out\n",
    );
    assert_eq!(
        err,
        "warning:\n         … while evaluating derivation 'd'\n\n         warning: 'structuredAttrs' disables the effect of the \
         derivation attribute 'maxSize'; use 'outputChecks.<output>.maxSize' instead\n         at W:6:3:\n              5|   \
         __structuredAttrs = true;\n              6|   maxSize = 1;\n               |   ^\n              7| }).out\n"
    );
}
