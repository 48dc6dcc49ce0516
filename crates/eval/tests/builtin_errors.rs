//! Builtins' error texts where C++ Nix words them in a way of its own.

use ferrix_eval::Eval;

fn error_of(src: &str) -> String {
    let ev = Eval::default();
    match ev.eval_string(src, "/").and_then(|v| ev.force_deep(&v)) {
        Ok(v) => panic!("{src}: evaluated to {}", ferrix_eval::print::print_value(&v)),
        Err(e) => e.msg().to_string(),
    }
}

#[test]
fn toml_integers_out_of_range_are_drawn_as_toml11_draws_them() {
    // upstream's eval-fail-fromTOML-overflow and -underflow
    assert_eq!(
        error_of("builtins.fromTOML ''attr = 9223372036854775808''"),
        "while parsing TOML: [error] toml::parse_dec_integer: too large integer: current max digits = 2^63\n \
         --> fromTOML\n   |\n 1 | attr = 9223372036854775808\n   |                           ^-- must be < 2^63\n"
    );
    assert!(error_of("builtins.fromTOML ''attr = -9223372036854775809''").ends_with("   |                            ^-- must be < 2^63\n"));
    // a later line (the string's first line break is dropped): the gutter
    // widens with the line number
    let line = "x = 10_000_000_000_000_000_000";
    let src = format!("builtins.fromTOML ''{}{line}''", "\n".repeat(11));
    let want = format!("\n    |\n 11 | {line}\n    | {}^-- must be < 2^63\n", " ".repeat(line.len()));
    assert!(error_of(&src).ends_with(&want), "{}", error_of(&src));
    // the limits themselves still parse; other errors keep the parser's words
    let ev = Eval::default();
    let v = ev.eval_string("(builtins.fromTOML ''a = -9223372036854775808'').a", "/").and_then(|v| ev.force_deep(&v));
    assert!(v.is_ok());
    assert!(error_of("builtins.fromTOML ''a = ''").starts_with("while parsing TOML: "));
}
