//! `ferrix instantiate --parse` prints the expression as C++ Nix shows the
//! one its parser makes.

use std::process::Command;

#[test]
fn parse_prints_the_expression_as_cpp_nix_shows_it() {
    let src = "let f = { b, a ? 1, ... }@args: x: if a < b then -x else a * b / 2 - 1; s = \"a${toString 1}b\"; in \
               with { q = 1; }; assert q >= 1 && !(q <= 0) || q > 5; [ (f { b = 2; }).c or null \
               ({ x.y = 1; x.z = 2; } ? x.y) <nixpkgs> ./a/${s} 1.5 rec { inherit s; inherit (f) g h; \"${s}\" = 1; } \
               (let { body = 1; }) ]";
    let out = Command::new(env!("CARGO_BIN_EXE_ferrix"))
        .args(["instantiate", "--parse", "-E", src])
        .current_dir("/")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // C++ Nix 2.8 prints exactly this but for two forms newer C++ Nix
    // changed (and upstream's parse-okay tests pin): formals sorted by name,
    // and `inherit s; inherit (f) g h;` where 2.8 printed `g = (f).g; …`
    let want = "(let f = ({ a ? 1, b, ... } @ args: (x: (if (__lessThan a b) then (__sub 0 x) else \
                (__sub (__div (__mul a b) 2) 1)))); s = (\"a\" + (toString 1) + \"b\"); in (with { q = 1; }; \
                assert (((! (__lessThan q 1)) && (! (! (__lessThan 0 q)))) || (__lessThan 5 q)); \
                [ (((f { b = 2; })).c or (null)) ((({ x = { y = 1; z = 2; }; }) ? x.y)) \
                ((__findFile __nixPath \"nixpkgs\")) ((/a/ + s)) (1.5) (rec { inherit s; inherit (f) g h; \
                \"${(s)}\" = 1; }) ((rec { body = 1; }).body) ]))\n";
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

#[test]
fn parse_prints_a_lint_warning_once() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrix"))
        .args(["instantiate", "--parse", "--lint-url-literals", "warn", "-E", "[ http://a.b/c ./p ]"])
        .current_dir("/")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[ (\"http://a.b/c\") (/p) ]\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("URL literals are discouraged").count(), 1, "{err}");
}
