//! Lazily evaluated expressions that read nothing from the innermost
//! frames run further up (`ir::trim_thunks`): the values must be the same
//! as if they kept every frame.

use ferrix_eval::{print::print_value, Eval};

fn eval(src: &str) -> String {
    let ev = Eval::default();
    let v = ev.eval_string(src, "/").and_then(|v| ev.force_deep(&v)).unwrap_or_else(|e| panic!("{src}: {}", e.render(true)));
    print_value(&v)
}

#[test]
fn thunks_that_skip_frames_see_the_same_variables() {
    let cases = [
        // attribute values, list items and arguments one, two, three frames up
        ("let a = 1; f = x: let b = 2; in { p = a; q = [ (a + 1) ]; r = y: a + y + b; }; in [ (f 0).p (f 0).q ((f 0).r 4) ]", "[ 1 [ 2 ] 7 ]"),
        ("let a = 10; in ((x: y: z: { r = a + 1; s = [ (a + x) (y + z) ]; }) 1 2 3)", "{ r = 11; s = [ 11 5 ]; }"),
        // a `with` variable inside a skipped-frame expression
        ("let s = { v = 5; }; in with s; let g = x: { w = v + 1; u = [ (v * 2) ]; }; in g 0", "{ u = [ 10 ]; w = 6; }"),
        // recursive sets, `inherit (…)` in them, and `let` bindings
        ("let o = { x = 1; }; in (q: rec { inherit (o) x; y = x + 1; z = [ (y + 1) ]; }) 0", "{ x = 1; y = 2; z = [ 3 ]; }"),
        ("let c = 3; in (x: let d = c + 1; e = [ d c ]; in e) 0", "[ 4 3 ]"),
        // formals' defaults reading outer frames and each other
        ("let c = 3; f = { a ? c + 1, b ? a * 2, ... }@args: [ a b (args.z or c) ]; in f { }", "[ 4 8 3 ]"),
        // closed expressions, dynamic names, interpolation
        ("(x: { c = [ 1 2 ]; d = \"s\"; }) 0", "{ c = [ 1 2 ]; d = \"s\"; }"),
        ("let n = \"k\"; in (x: { ${n} = \"${n}v\"; m = builtins.map (y: y + n) [ \"a\" ]; }) 0", "{ k = \"kv\"; m = [ \"ak\" ]; }"),
        // closures made at a skipped frame keep working when called later
        ("let a = 2; mk = x: { f = y: a * y; }; in ((mk 0).f 21)", "42"),
        ("let lib = { id = x: x; }; in builtins.foldl' (acc: x: acc ++ [ (lib.id (x + 1)) ]) [ ] [ 1 2 3 ]", "[ 2 3 4 ]"),
    ];
    for (src, want) in cases {
        assert_eq!(eval(src), want, "{src}");
    }
}

#[test]
fn a_scoped_import_keeps_its_scope() {
    let dir = std::env::temp_dir().join(format!("ferrix-frames-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("f.nix");
    std::fs::write(&file, "x: { a = [ (y + x) ]; b = z: y; }").expect("write");
    let src = format!("let f = builtins.scopedImport {{ y = 5; }} {}; in [ (f 1).a ((f 1).b 0) ]", file.display());
    let got = eval(&src);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(got, "[ [ 6 ] 5 ]");
}
