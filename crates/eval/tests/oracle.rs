//! Oracle test: the same expressions through ferrix-eval and C++ Nix's
//! `nix-instantiate --eval --strict`; outputs must be identical.

use std::process::Command;

use ferrix_eval::{print::print_value, Eval};

const EXPRS: &[&str] = &[
    "1 + 2 * 3 - 4 / 2",
    "[ 1 2.5 \"a\" null true false ]",
    "{ b = 1; a = { c = [ ]; }; \"x y\" = 2; }",
    "let f = x: x * 2; in map f [ 1 2 3 ]",
    "builtins.foldl' (a: b: a + b) 0 (builtins.genList (x: x) 100)",
    "rec { a = 1; b = a + 1; c = b * 10; }",
    "let x = { y.z = 1; y.w = 2; }; in x",
    "with { a = 1; }; a + 1",
    "({ a, b ? 2, ... }@args: a + b + builtins.length (builtins.attrNames args)) { a = 1; c = 3; }",
    "\"a${toString 1}b${\"c\"}\"",
    "''\n  indented\n    more\n''",
    "builtins.attrNames { z = 1; a = 2; m = 3; }",
    "builtins.sort builtins.lessThan [ 3 1 2 10 ]",
    "builtins.concatStringsSep \", \" [ \"a\" \"b\" ]",
    "builtins.replaceStrings [ \"a\" \"b\" ] [ \"x\" \"yy\" ] \"aabbc\"",
    "builtins.split \"(a)b\" \"xabyab\"",
    "builtins.match \"([a-z]+)-([0-9]+)\" \"foo-123\"",
    "builtins.compareVersions \"1.2.3\" \"1.10\"",
    "builtins.splitVersion \"1.2pre3-rc1\"",
    "builtins.parseDrvName \"hello-2.10\"",
    "builtins.toJSON { a = [ 1 2.5 \"s\" null true ]; b.c = \"d\"; }",
    "builtins.fromJSON ''{\"a\": [1, 2.5, \"x\", null], \"b\": {}}''",
    "builtins.hashString \"sha256\" \"hello\"",
    "builtins.hashString \"md5\" \"hello\"",
    "builtins.tryEval (throw \"x\")",
    "builtins.tryEval (assert false; 1)",
    "builtins.functionArgs ({ a, b ? 1 }: a)",
    "builtins.typeOf 1.5",
    "[ (1.0 / 3) 1.0e10 1.0e-5 123456789.0 0.1 (-2.5) ]",
    "builtins.substring 1 3 \"abcdef\"",
    "builtins.stringLength \"héllo\"",
    "builtins.intersectAttrs { a = 1; b = 2; } { b = 3; c = 4; }",
    "builtins.removeAttrs { a = 1; b = 2; } [ \"a\" ]",
    "builtins.listToAttrs [ { name = \"a\"; value = 1; } { name = \"a\"; value = 2; } ]",
    "builtins.mapAttrs (n: v: n + v) { x = \"1\"; y = \"2\"; }",
    "builtins.genericClosure { startSet = [ { key = 1; } ]; operator = x: if x.key < 5 then [ { key = x.key + 1; } ] else [ ]; }",
    "builtins.partition (x: x > 2) [ 1 2 3 4 ]",
    "builtins.groupBy (x: if x > 2 then \"big\" else \"small\") [ 1 2 3 4 ]",
    "builtins.zipAttrsWith (n: vs: vs) [ { a = 1; } { a = 2; b = 3; } ]",
    "builtins.concatMap (x: [ x x ]) [ 1 2 ]",
    // concatMap's results: a list held elsewhere (copied, left intact), a
    // shared tail, a list a `let` binding holds
    "let l = [ 1 2 ]; in [ (builtins.concatMap (x: l) [ 1 2 ]) l ]",
    "builtins.concatMap (x: builtins.tail [ 0 x x ]) [ 1 2 ]",
    "builtins.concatMap (x: let r = [ x (x + 1) ]; in r) [ 1 2 ]",
    "builtins.elem 2 [ 1 2 3 ]",
    "{ a = 1; } // { b = 2; } // { a = 3; }",
    "[ 1 ] ++ [ 2 3 ]",
    // tails share their list's elements: tails of tails, compared, concatenated, emptied
    "let l = builtins.genList (x: x) 5; t = builtins.tail; in [ (t l) (t (t l)) (t (t l) == [ 2 3 4 ]) (t (t l) ++ t l) (t [ 1 ]) (builtins.elemAt (t (t (t l))) 1) (builtins.length (t (t l))) ]",
    "let un = l: if builtins.length l < 2 then l else (if builtins.head l != builtins.elemAt l 1 then [ (builtins.head l) ] else [ ]) ++ un (builtins.tail l); in un (builtins.sort builtins.lessThan (builtins.genList (x: x / 3) 3000))",
    "builtins.fromTOML \"a = 1\\n[b]\\nc = \\\"d\\\"\"",
    "builtins.toXML { a = 1; b = [ \"x\" ]; }",
    "let x = { a = 1; }; in [ x x ]",
    "builtins.bitAnd 12 10",
    "builtins.floor 2.7",
    "toString [ 1 \"a\" null true 2.5 ]",
    "builtins.dirOf \"/a/b/c\"",
    "baseNameOf \"/a/b/c\"",
    "\"\\${x} \\n \\t\"",
    // strings built in place: patterns sharing a first byte (list order wins),
    // matches far apart and close together, long unmatched runs
    "builtins.replaceStrings [ \"ab\" \"a\" \"abc\" \"b\" ] [ \"X\" \"Y\" \"Z\" \"W\" ] \"abcab a bb aab\"",
    "builtins.replaceStrings [ \"q\" \"zz\" ] [ \"Q\" \"-\" ] \"zzz ${builtins.concatStringsSep \"\" (builtins.genList (_: \"y\") 40)}zz\"",
    "builtins.replaceStrings [ \"a\" \"b\" \"c\" \"d\" ] [ \"1\" \"22\" \"\" \"4444\" ] \"abcd xyz dcba abcdabcd\"",
    "builtins.replaceStrings [ \"\" \"a\" ] [ \"-\" \"A\" ] \"bab\"",
    "builtins.replaceStrings [ \"x\" ] [ \"y\" ] \"no match here\"",
    "[ (builtins.substring 0 100 \"abc\") (builtins.substring 3 1 \"abc\") (builtins.substring 1 (-1) \"abcd\") (builtins.substring 10 2 \"abc\") (builtins.substring 0 0 \"abc\") ]",
    "builtins.concatStringsSep \"-\" [ \"a\" { outPath = \"o\"; } \"\" { __toString = s: \"t\"; } ]",
    "[ (builtins.concatStringsSep \",\" [ ]) (builtins.concatStringsSep \",\" [ \"one\" ]) (builtins.concatStringsSep \"\" [ \"a\" \"b\" ]) ]",
    "let s = \"s\"; in [ \"${s}\" \"${s}${s}x${toString 42}${toString (-7)}\" (s + \"t\") (\"\" + s) (s + { outPath = \"p\"; }) ]",
    // split by a literal (lib.splitString escapes its separator) and by a regex
    "[ (builtins.split \"\\\\.\" \"a.b..c.\") (builtins.split \"ab\" \"xabyababa\") (builtins.split \",\" \"\") (builtins.split \"x\" \"abc\") (builtins.split \"\\\\\\\\\" \"a\\\\b\") (builtins.split \".\" \"ab\") (builtins.split \"a|b\" \"cab\") ]",
    "let lib = { splitString = sep: s: builtins.filter builtins.isString (builtins.split (builtins.replaceStrings [ \".\" \"+\" ] [ \"\\\\.\" \"\\\\+\" ] sep) s); }; in [ (lib.splitString \".\" \"1.2.3\") (lib.splitString \"+\" \"a+b\") (lib.splitString \"::\" \"a::b:::c\") ]",
    "builtins.stringLength (builtins.concatStringsSep \", \" (builtins.genList (i: \"<${toString i}>\") 2000))",
];

#[test]
fn matches_nix_instantiate() {
    let probe = Command::new("nix-instantiate").arg("--version").output();
    if probe.is_err() {
        panic!("nix-instantiate is not installed: the oracle test needs C++ Nix (CI installs the nix-bin package)");
    }
    let mut diffs = Vec::new();
    let mut compared = 0;
    for e in EXPRS {
        let out = Command::new("nix-instantiate")
            .args(["--eval", "--strict", "-E", e])
            .env("NIX_REMOTE", "dummy://")
            .output()
            .expect("run nix-instantiate");
        let want = String::from_utf8_lossy(&out.stdout).into_owned();
        let ev = Eval::default();
        let got = match ev.eval_string(e, "/").and_then(|v| ev.force_deep(&v)) {
            Ok(v) => format!("{}\n", print_value(&v)),
            Err(err) => format!("error: {}\n", err.msg()),
        };
        if !out.status.success() {
            continue; // C++ Nix 2.8 lacks some newer builtins; only compare where it succeeds
        }
        compared += 1;
        if got != want {
            diffs.push(format!("{e}\n  nix:    {want}  ferrix: {got}"));
        }
    }
    assert!(compared >= EXPRS.len() - 5, "only {compared} of {} expressions could be compared", EXPRS.len());
    assert!(diffs.is_empty(), "{} expressions differ from nix-instantiate:\n{}", diffs.len(), diffs.join("\n"));
}
