//! Property tests for the hand-written parser: arbitrary input never
//! panics, and wherever it accepts a text rnix builds the same tree;
//! generated well-formed expressions are accepted, and their string literals
//! are processed as rnix processes them. Everything is also lowered (it must
//! not panic).

use ferrix_eval::Eval;
use ferrix_eval::parse::{fast_parser_accepts, parse_both, string_mismatches};
use proptest::prelude::*;

thread_local! {
    static EV: Eval = Eval::default();
}

/// Where the fast parser accepts, rnix must build the same tree; where it
/// gives up on a text that `must_accept`, rnix must report a syntax error.
fn agree(text: &str, must_accept: bool) -> Result<(), TestCaseError> {
    let (fast, rnix) = parse_both(text);
    match fast {
        Some(fast) => prop_assert_eq!(Ok(fast), rnix.clone(), "text: {:?}", text),
        None => prop_assert!(!must_accept || rnix.is_err(), "fast parser gave up on {:?}; rnix: {:?}", text, rnix),
    }
    if rnix.is_ok() {
        let m = string_mismatches(text);
        prop_assert!(m.is_empty(), "text: {:?}: {:?}", text, m);
    }
    EV.with(|ev| {
        let _ = ev.parse_discard(text, "/base", false);
    });
    Ok(())
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100000).prop_map(|n| n.to_string()),
        Just("9223372036854775808".to_string()),
        prop_oneof![Just("1.5"), Just(".5"), Just("2.e3"), Just("1.0e-2"), Just("0.")].prop_map(String::from),
        prop_oneof![Just("x"), Just("y"), Just("builtins"), Just("true"), Just("null"), Just("__curPos"), Just("undefinedvar")]
            .prop_map(String::from),
        "[a-z ]{0,6}".prop_map(|s| format!("\"{s}\\n\\\"\\${{x}}\"")),
        "[a-z]{0,4}".prop_map(|s| format!("\"{s}${{x}}{s}\"")),
        "[a-z]{0,4}".prop_map(|s| format!("''\n    {s}\n  ${{x}} ''${{y}} '''\n  $$x\n  ''")),
        "[a-z]{1,4}".prop_map(|s| format!("''{s} ''\\n''")),
        prop_oneof![
            Just("./a/b"),
            Just("../c"),
            Just("a/b"),
            Just("/abs/x"),
            Just("~/h"),
            Just("./p${x}/q"),
            Just("/${x}"),
            Just("<nixpkgs>"),
            Just("<nixpkgs/lib>"),
            Just("http://example.org/a?b=c"),
        ]
        .prop_map(String::from),
    ]
}

fn expr() -> impl Strategy<Value = String> {
    leaf().prop_recursive(5, 48, 4, |inner| {
        let e = inner.clone();
        prop_oneof![
            e.clone().prop_map(|a| format!("({a})")),
            prop::collection::vec(e.clone(), 0..4).prop_map(|v| format!("[ {} ]", v.into_iter().map(|x| format!("({x})")).collect::<Vec<_>>().join(" "))),
            (e.clone(), e.clone(), any::<bool>()).prop_map(|(a, b, rec)| format!(
                "{}{{ a = {a}; b.c = {b}; b.d = 1; inherit x; inherit (y) z; \"s t\" = 2; ${{\"dy\"}} = 3; ${{x}} = 4; }}",
                if rec { "rec " } else { "" }
            )),
            (e.clone(), e.clone()).prop_map(|(a, b)| format!("let a = {a}; f = x: x; inherit (a) q; in {b}")),
            (e.clone(), e.clone()).prop_map(|(a, b)| format!("let {{ a = {a}; body = {b}; }}")),
            e.clone().prop_map(|a| format!("x: {a}")),
            (e.clone(), e.clone()).prop_map(|(a, b)| format!("{{ x, y ? {a}, ... }}@args: {b}")),
            e.clone().prop_map(|a| format!("args@{{ x, z }}: {a}")),
            e.clone().prop_map(|a| format!("{{}}: {a}")),
            (e.clone(), e.clone(), e.clone()).prop_map(|(a, b, c)| format!("if {a} then {b} else {c}")),
            (e.clone(), e.clone()).prop_map(|(a, b)| format!("with {a}; {b}")),
            (e.clone(), e.clone()).prop_map(|(a, b)| format!("assert {a}; {b}")),
            (e.clone(), e.clone()).prop_map(|(a, b)| format!("({a}).a.\"b\".${{x}} or {b}")),
            e.clone().prop_map(|a| format!("({a}) ? a.b")),
            e.clone().prop_map(|a| format!("-{a}")),
            e.clone().prop_map(|a| format!("!{a}")),
            (e.clone(), e.clone(), e.clone()).prop_map(|(a, b, c)| format!("{a} {b} {c}")),
            (
                e.clone(),
                e.clone(),
                prop_oneof![
                    Just("+"),
                    Just("-"),
                    Just("*"),
                    Just("/"),
                    Just("++"),
                    Just("//"),
                    Just("=="),
                    Just("!="),
                    Just("<"),
                    Just("<="),
                    Just(">"),
                    Just(">="),
                    Just("&&"),
                    Just("||"),
                    Just("->"),
                ]
            )
                .prop_map(|(a, b, op)| format!("{a} {op} {b}")),
            (e.clone(), e).prop_map(|(a, b)| format!("{a} /* c */ # d\n {b}")),
        ]
    })
}

#[test]
fn generated_expressions_are_mostly_valid() {
    // Guard against a generator whose output rnix rejects: then the
    // property above would hold trivially.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut accepted, n) = (0, 300);
    for _ in 0..n {
        let text = expr().new_tree(&mut runner).expect("tree").current();
        accepted += usize::from(fast_parser_accepts(&text));
    }
    assert!(accepted * 4 > n * 3, "{accepted} of {n} generated expressions parse");
}

/// Corners of the grammar, each accepted by the fast parser and parsed into
/// the same tree by rnix.
#[test]
fn grammar_corners_agree() {
    let cases = [
        r#"let or = a: a; fold = f: z: l: z; in fold or [] [true]"#,
        r#"{ a.b = 1; }.a.b or 2"#,
        r#"{ or = 1; }.or"#,
        r#"x: x.or or 3"#,
        r#"let a = 1; b = 2; in a/b"#,
        r#"let a = {}; b = {}; in a//b"#,
        r#"let a = 4; b = 2; in a/ b"#,
        r#"[ 1/2 ./a/b ../c ~/d /e/f <nixpkgs> http://x.org/?a=b ]"#,
        r#"let b = "x"; in [ ./a${b}c /${b} ~/p${b} ]"#,
        r#"[ .5 1. 2.5e3 0.e-1 007 ]"#,
        r#"__curPos"#,
        r#"{ a ? 1, ... }@x: x"#,
        r#"x@{ a, b ? a }: b"#,
        r#"{}: 1"#,
        r#"{ }"#,
        r#"let x = 1; in assert x == 1 && !(x != 1) -> true; x"#,
        r#"let x = 1; in assert [ (x) { a.b = x; } (y: y) ]; x"#,
        r#"let x = 1; in assert __curPos == x; x"#,
        r#"{ a.b = 1; a = { c = 2; }; a.d.e = 3; }"#,
        r#"rec { a = 1; inherit (b) c; b = { c = a; }; }"#,
        r#"let { body = x; x = 1; }"#,
        r#"{ a = 1; a = 2; }"#,
        r#"{ a = { b = 1; }; a = { b = 2; }; }"#,
        r#"({ x, x }: x)"#,
        r#"undefined_variable"#,
        r#"let s = "a"; in { ${s} = 1; "${s}b" = 2; "c" = 3; ${"d"} = 4; }"#,
        "''\n    a\n      b ${\"c\"}\n    ''$ ''' ''\\n\n  ''",
        "\"\\n\\t\\r\\$\\\\ $${x} $$ \\${\"",
        r#"-1 - -2 * 3 ++ [] ? a"#,
        r#"!true || false && true == false"#,
        r#"1 < 2 || 2 <= 3 || 3 > 4 || 4 >= 5"#,
        r#"with builtins; with { a = 1; }; a + length []"#,
        "# comment\n/* block */ 1 /**/",
        r#"let inherit (builtins) map; in map"#,
        "\"a\u{0}b\"",
        "\"\u{e9}\u{1F37A}\" + ''\u{2018}x\u{2019}''",
    ];
    for text in cases {
        assert!(fast_parser_accepts(text), "fast parser gave up on {text:?}");
        agree(text, true).unwrap_or_else(|e| panic!("{e}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_and_agrees(s in any::<String>()) {
        let _ = fast_parser_accepts(&s);
        agree(&s, false)?;
    }

    #[test]
    fn nixish_soup_agrees(s in r#"[a-z0-9 ./{}()\[\];:=?@,"'$!<>+*/~#\n-]{0,40}"#) {
        agree(&s, false)?;
    }

    #[test]
    fn generated_expressions_agree(e in expr()) {
        agree(&e, true)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// What `--parse` prints (C++ Nix's `Expr::show`), parsed and shown
    /// again, is stable after one round (a concatenation of one string,
    /// `"${x}"`, shows as `(x)`, which shows as `x`; otherwise every form is
    /// shown fully bracketed and desugared once).
    #[test]
    fn shown_expressions_are_nix_and_show_stably(e in expr()) {
        EV.with(|ev| {
            let show = |t: &str| {
                ev.parse_show(t, "«t»", "/base").map(|b| String::from_utf8_lossy(&b).into_owned()).map_err(|e| e.render(false))
            };
            // (C++ Nix shows an interpolated path as a sum starting with
            // a bare path, `(/ + x)`, which is no Nix: those are left out)
            // (its free variables bound, so that it lowers)
            let e = format!("x: y: undefinedvar: {e}");
            if let Ok(first) = show(&e)
                && let Ok(second) = show(&first)
            {
                prop_assert_eq!(show(&second), Ok(second.clone()), "from {:?}", e);
            }
            Ok(())
        })?;
    }
}
