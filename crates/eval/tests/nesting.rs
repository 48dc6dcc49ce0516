//! Deeply nested source: as deep as C++ Nix's parser goes (its bison stack
//! of 10 000 entries) parses, evaluates and prints; deeper is an error,
//! never a crash.

use ferrix_eval::{print::print_value, Eval};

fn eval(src: &str) -> Result<String, String> {
    let ev = Eval::default();
    ev.eval_string(src, "/").and_then(|v| ev.force_deep(&v)).map(|v| print_value(&v)).map_err(|e| e.render(false))
}

fn nest(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

#[test]
fn nix_deepest_nesting_evaluates() {
    // the deepest each shape goes in C++ Nix 2.8 before "memory exhausted"
    assert_eq!(eval(&nest("(", "1", ")", 9_995)).as_deref(), Ok("1"));
    assert_eq!(eval(&nest("[ ", "1", " ]", 4_998)), Ok(nest("[ ", "1", " ]", 4_998)));
    assert_eq!(eval(&nest("{ a = ", "1", "; }", 2_496)), Ok(nest("{ a = ", "1", "; }", 2_496)));
    let mut f = String::from("a");
    for i in (0..1_665).rev() {
        f = format!("((x{i}: [ {f} ]) {i})");
    }
    let got = eval(&format!("let a = 1; in {f}")).expect("evaluates");
    assert_eq!(got, nest("[ ", "1", " ]", 1_665));
}

#[test]
fn deeper_nesting_is_an_error() {
    let err = eval(&nest("(", "1", ")", 12_000)).expect_err("too deep");
    assert!(err.starts_with("error: syntax error, expression nested too deeply"), "{err}");
}
