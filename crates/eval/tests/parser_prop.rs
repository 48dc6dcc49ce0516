//! Property tests for the fast parser: arbitrary input never panics, and
//! wherever it accepts a text the result is the rnix pipeline's (same IR
//! dump or same error); generated well-formed expressions are accepted and
//! lowered exactly as rnix's pipeline lowers them.

use ferrix_eval::Eval;
use ferrix_eval::parse::fast_parser_accepts;
use proptest::prelude::*;

thread_local! {
    static EV: Eval = Eval::default();
}

/// The fast result must equal rnix's wherever the fast parser accepts.
fn agree(text: &str, must_accept: bool) -> Result<(), TestCaseError> {
    EV.with(|ev| {
        let (fast, old) = ev.parse_both(text, "«prop»", "/base");
        match fast {
            Some(fast) => prop_assert_eq!(fast, old, "text: {:?}", text),
            None => {
                prop_assert!(!must_accept || old.is_err(), "fast parser gave up on {:?}; rnix: {:?}", text, old)
            }
        }
        Ok(())
    })
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
