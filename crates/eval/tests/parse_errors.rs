//! Parse errors that C++ Nix words in its own way rather than as "syntax
//! error, unexpected …": the text and the position (line:column) it points at.

use ferrix_eval::Eval;

/// The error's first line and its `at «string»:L:C` position.
fn parse_error(src: &str) -> (String, String) {
    let ev = Eval::default();
    let e = ev.eval_string(src, "/").expect_err("does not parse");
    let r = e.render(false);
    let mut lines = r.lines();
    let msg = lines.next().unwrap_or_default().to_string();
    let at = lines.next().unwrap_or_default().trim().to_string();
    (msg, at)
}

#[test]
fn a_path_with_a_trailing_slash_is_its_own_error() {
    // C++ Nix (newer than 2.8, which gives no position) points just past the
    // slash: upstream's eval-fail-path-slash
    for (src, col) in [("/nix/store/", 12), ("./foo/", 7), ("~/foo/", 7), ("foo/bar/", 9), ("[ /a/b/ ]", 8)] {
        let (msg, at) = parse_error(src);
        assert_eq!(msg, "error: path has a trailing slash", "{src}");
        assert_eq!(at, format!("at «string»:1:{col}:"), "{src}");
    }
}

#[test]
fn a_slash_that_is_not_a_path_end_stays_a_syntax_error() {
    let (msg, _) = parse_error("a/");
    assert_eq!(msg, "error: syntax error, unexpected end of file");
    let (msg, _) = parse_error("// 1");
    assert_eq!(msg, "error: syntax error, unexpected '//'");
    let (msg, _) = parse_error("1 / / 2");
    assert!(msg.starts_with("error: syntax error"), "{msg}");
}

#[test]
fn a_nul_in_an_indented_string_shows_the_piece_as_written() {
    // upstream's eval-fail-string-nul-2: the lexer's piece (indentation
    // kept, from the line after `''`), at its start; continuation lines of
    // a message line up under its first
    let ev = Eval::default();
    let e = ev.eval_string("''\n  foo\n  \0\n  bar\n''", "/").expect_err("a NUL");
    let r = e.render(false);
    assert!(
        r.starts_with("error: input string '  foo\n         \u{2400}\n         bar\n       ' cannot be represented"),
        "{r}"
    );
    assert!(r.contains("at «string»:2:1:"), "{r}");
    // the piece ends at an escape; a NUL after one starts a piece of its own
    let e = ev.eval_string("''  a''$b\0c''", "/").expect_err("a NUL");
    let r = e.render(false);
    assert!(r.starts_with("error: input string 'b\u{2400}c' cannot"), "{r}");
    assert!(r.contains("at «string»:1:9:"), "{r}");
    // in a plain string: the unescaped text, just past the quote
    let e = ev.eval_string("\"foo\0bar\"", "/").expect_err("a NUL");
    assert!(e.render(false).starts_with("error: input string 'foo\u{2400}bar' cannot"));
}

#[test]
fn every_line_of_a_message_is_indented_under_the_first() {
    let ev = Eval::default();
    let e = ev.eval_string("throw \"a\\nb\\n\\nc\"", "/").expect_err("throws");
    assert_eq!(e.render(false).lines().take(4).collect::<Vec<_>>(), ["error: a", "       b", "       ", "       c"]);
}
