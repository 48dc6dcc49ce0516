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

/// Syntax errors in the words of C++ Nix's parser (2.20+: its tokens'
/// names, and the tokens it expected where it lists them), at the token it
/// could not take.
#[test]
fn syntax_errors_name_the_tokens_as_cpp_nix_does() {
    let cases = [
        ("if 1 else 2", "error: syntax error, unexpected 'else', expecting 'then'", "at «string»:1:6:"),
        ("if 1 then 2", "error: syntax error, unexpected end of file, expecting 'else'", "at «string»:1:12:"),
        ("(1 2", "error: syntax error, unexpected end of file, expecting ')'", "at «string»:1:5:"),
        ("with {}; 1 2 )", "error: syntax error, unexpected ')', expecting end of file", "at «string»:1:14:"),
        ("{ a = 1 }", "error: syntax error, unexpected '}', expecting ';'", "at «string»:1:9:"),
        ("{ a.b 1 }", "error: syntax error, unexpected integer, expecting '.' or '='", "at «string»:1:7:"),
        ("{ a = 1; ./p = 2; }", "error: syntax error, unexpected path, expecting 'inherit'", "at «string»:1:10:"),
        ("x.${y", "error: syntax error, unexpected end of file, expecting '}'", "at «string»:1:6:"),
        ("x ? 2", "error: syntax error, unexpected integer, expecting identifier or 'or' or '${' or '\"'", "at «string»:1:5:"),
        ("{ a, b c }: a", "error: syntax error, unexpected identifier, expecting '}' or ','", "at «string»:1:8:"),
        ("{ a, 1 }: a", "error: syntax error, unexpected integer, expecting identifier or '...'", "at «string»:1:6:"),
        ("{ ~/q = 1; }", "error: syntax error, unexpected '~/…' path, expecting 'inherit'", "at «string»:1:3:"),
        ("let <p> = 1; in 2", "error: syntax error, unexpected '<…>' path, expecting 'in' or 'inherit'", "at «string»:1:5:"),
        ("\"a${b}c", "error: syntax error, unexpected end of file, expecting '\"'", "at «string»:1:8:"),
        ("1 + é", "error: syntax error, unexpected invalid token", "at «string»:1:5:"),
    ];
    for (src, msg, at) in cases {
        assert_eq!(parse_error(src), (msg.to_string(), at.to_string()), "{src}");
    }
}

/// An indented string is no attribute name in C++ Nix (rnix takes one).
#[test]
fn an_indented_string_is_no_attribute_name() {
    assert_eq!(
        parse_error("{ a = 1; }.''a''").0,
        "error: syntax error, unexpected start of an indented string, expecting identifier or 'or' or '${' or '\"'"
    );
    assert_eq!(parse_error("{ ''a'' = 1; }").0, "error: syntax error, unexpected start of an indented string, expecting 'inherit'");
    let ev = Eval::default();
    let v = ev.eval_string("{ \"a\" = 1; }.\"a\"", "/").expect("a plain string is a name");
    assert_eq!(ferrix_eval::print::print_value(&ev.force(&v).expect("forces")), "1");
}

/// An attribute defined twice: the whole path, at the binding (checked
/// against C++ Nix 2.8); a set literal merges into the sets attribute paths
/// made for the same name, level by level, as in C++ Nix 2.20+.
#[test]
fn duplicate_attributes_name_the_whole_path_at_the_binding() {
    assert_eq!(
        parse_error("{ a = 1; a.b.c = 2; }"),
        ("error: attribute 'a.b.c' already defined at «string»:1:3".to_string(), "at «string»:1:10:".to_string())
    );
    assert_eq!(
        parse_error("{ a.b = 1; a.b = 2; }"),
        ("error: attribute 'a.b' already defined at «string»:1:3".to_string(), "at «string»:1:12:".to_string())
    );
    assert_eq!(
        parse_error("{ x.y.y = 3; x = { y.y = 3; }; }"),
        ("error: attribute 'x.y.y' already defined at «string»:1:3".to_string(), "at «string»:1:20:".to_string())
    );
    let ev = Eval::default();
    let v = ev.eval_string("{ x.y.a = 3; x = { y.b = 4; z = 5; }; }", "/").and_then(|v| ev.force_deep(&v)).expect("merges");
    assert_eq!(ferrix_eval::print::print_value(&v), "{ x = { y = { a = 3; b = 4; }; z = 5; }; }");
}

/// Quoted source lines leave out trailing blanks, as C++ Nix prints them.
#[test]
fn quoted_lines_have_no_trailing_blanks() {
    let ev = Eval::default();
    let e = ev.eval_string("{\n  a = 1;  \t\n  a = 2; \n}", "/").expect_err("duplicate");
    let r = e.render(false);
    assert!(r.contains("\n            2|   a = 1;\n            3|   a = 2;\n"), "{r}");
}
