//! Error traces: every frame is kept however deep the failure, clones of an
//! error share their frames, and rendering elides repeated frames the way
//! C++ Nix (2.20 and later) does: a frame seen before is held back, and a
//! run of more than five held-back frames prints as
//! "(N duplicate frames omitted)".

use ferrix_eval::{Builtins, Error, Eval, EvalOptions, HostIO, Span};

/// An error whose frames, outermost first, are `outer_first`.
fn with_frames(outer_first: &[&str]) -> Error {
    let mut e = Error::eval("boom");
    for f in outer_first.iter().rev() {
        e = e.while_(*f, Span::NONE);
    }
    e
}

fn frames(rendered: &str) -> Vec<String> {
    rendered
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('…') || l.starts_with('('))
        .map(String::from)
        .collect()
}

#[test]
fn short_repeats_are_printed() {
    let e = with_frames(&["X", "Y", "X", "Y", "Z"]);
    assert_eq!(frames(&e.render(true)), ["… X", "… Y", "… X", "… Y", "… Z"]);
}

#[test]
fn long_repeats_are_counted() {
    let mut f = vec!["top"];
    for _ in 0..10 {
        f.extend(["call", "site"]);
    }
    f.push("bottom");
    let r = with_frames(&f).render(true);
    assert_eq!(frames(&r), ["… top", "… call", "… site", "(18 duplicate frames omitted)", "… bottom"]);
    assert!(r.ends_with("error: boom"), "{r}");
}

#[test]
fn a_frame_stays_seen_after_an_omission() {
    // A×10, B×10, A×10: the second run of A is all omitted (C++ Nix means
    // to forget the frames seen after an omission but clears a copy of its
    // set; its test eval-fail-mutual-recursion pins that output).
    let mut f = Vec::new();
    f.extend(std::iter::repeat_n("A", 10));
    f.extend(std::iter::repeat_n("B", 10));
    f.extend(std::iter::repeat_n("A", 10));
    f.push("end");
    let r = with_frames(&f).render(true);
    assert_eq!(
        frames(&r),
        ["… A", "(9 duplicate frames omitted)", "… B", "(19 duplicate frames omitted)", "… end"]
    );
}

#[test]
fn deep_traces_are_kept_whole_and_dropped_without_recursion() {
    // 200 000 frames, cloned (as a failed thunk keeps a copy) and dropped
    // (a recursive drop of the list would overflow the test thread's stack)
    let mut e = Error::eval("deep");
    for i in 0..200_000 {
        e = e.while_(if i % 2 == 0 { "a" } else { "b" }, Span::NONE);
    }
    let copy = e.clone();
    drop(e);
    let r = copy.render(true);
    assert_eq!(frames(&r), ["… b", "… a", "(199998 duplicate frames omitted)"]);
}

#[test]
fn stack_overflow_trace_counts_every_call() {
    // `max-call-depth` 100: calls at depths 0..=100 run, the next fails;
    // each call leaves "from call site" and "while calling" frames.
    let opts = EvalOptions { max_call_depth: 100, ..Default::default() };
    let ev = Eval::new(Box::new(HostIO), opts, Builtins::default());
    let err = ev.eval_string("(x: x x) (x: x x)", "/").expect_err("a stack overflow");
    let r = err.render(true);
    assert!(r.contains("(197 duplicate frames omitted)"), "{r}");
    assert!(r.contains("error: stack overflow; max-call-depth exceeded"), "{r}");
}

/// The error of evaluating `src` deeply.
fn error_of(src: &str) -> Error {
    let ev = Eval::default();
    ev.eval_string(src, "/").and_then(|v| ev.force_deep(&v)).expect_err("fails")
}

/// The frames and positions of an error, one line each (`… text @ L:C`,
/// the final error last).
fn located(src: &str) -> Vec<String> {
    let r = error_of(src).render(true);
    let mut out: Vec<String> = Vec::new();
    for l in r.lines().map(str::trim) {
        if let Some(at) = l.strip_prefix("at «string»:") {
            if let Some(last) = out.last_mut() {
                *last = format!("{last} @ {}", at.trim_end_matches(':'));
            }
        } else if l.starts_with('…') || l.starts_with("error: ") && l != "error:" {
            out.push(l.to_string());
        }
    }
    out
}

#[test]
fn lazy_applications_of_builtins_are_placed_at_the_function() {
    // C++ Nix shows a call that `genList`, `map` or `zipAttrsWith` set up
    // (no call site of its own) at the function's position: upstream's
    // eval-fail-genList-3, eval-fail-zipAttrsWith-3/-4
    assert_eq!(
        located(r#"builtins.genList (x: x + "foo") 2"#),
        [
            "… while evaluating list element at index 0",
            "… from call site @ 1:19",
            "… while calling anonymous lambda @ 1:19",
            "error: cannot add a string to an integer @ 1:26",
        ]
    );
    assert_eq!(
        located(r#"builtins.map (x: x + "foo") [ 1 ]"#),
        [
            "… while evaluating list element at index 0",
            "… from call site @ 1:15",
            "… while calling anonymous lambda @ 1:15",
            "error: cannot add a string to an integer @ 1:22",
        ]
    );
    assert_eq!(
        located("builtins.zipAttrsWith (_: 1) [ { foo = 1; } ]"),
        ["… while evaluating the attribute 'foo'", "error: attempt to call something which is not a function but an integer: 1 @ 1:24"]
    );
    // `mapAttrs` does not force its function first: no position (upstream's
    // eval-fail-mapAttrs-3)
    assert_eq!(
        located(r#"builtins.mapAttrs (x: x + "1") { foo.bar = 1; }"#),
        ["… while evaluating the attribute 'foo'", "error: attempt to call something which is not a function but a string: \"foo1\""]
    );
}

#[test]
fn to_json_places_list_elements_at_the_attribute_holding_the_list() {
    // as upstream's eval-fail-toJSON: a list element's frame is shown at
    // the position of the attribute the list came from (or of the call)
    assert_eq!(
        located(r#"builtins.toJSON { a = [ 1 (throw "no") ]; }"#),
        [
            "… while calling the 'toJSON' builtin @ 1:1",
            "… while evaluating attribute 'a' @ 1:19",
            "… while evaluating list element at index 1 @ 1:19",
            "… while calling the 'throw' builtin @ 1:28",
            "error: no",
        ]
    );
    assert_eq!(
        located(r#"builtins.toJSON [ (throw "no") ]"#),
        [
            "… while calling the 'toJSON' builtin @ 1:1",
            "… while evaluating list element at index 0 @ 1:1",
            "… while calling the 'throw' builtin @ 1:20",
            "error: no",
        ]
    );
}

#[test]
fn an_operand_of_plus_is_placed_at_its_parenthesis() {
    // `+` is C++ Nix's string concatenation, whose operands are placed
    // where their source starts, `(` included (upstream's
    // eval-fail-nested-list-items); `==` points into the parentheses
    assert_eq!(
        located(r#""" + (let v = [ 1 ]; in v)"#),
        ["… while evaluating a path segment @ 1:6", "error: cannot coerce a list to a string: [ 1 ]"]
    );
    assert_eq!(located(r#"1 + ( "a")"#).last().map(String::as_str), Some("error: cannot add a string to an integer @ 1:5"));
}

#[test]
fn without_show_trace_the_trace_is_cut_short_but_keeps_context_frames() {
    // as C++ Nix 2.20+ without --show-trace (upstream's
    // eval-fail-addErrorContext-example): no call frames, three frames,
    // then only `addErrorContext`'s, and a line saying so
    let src = r#"let f = n: if n == 0 then throw "kaboom" else builtins.addErrorContext "at ${toString n}" ("x" + f (n - 1)); in f 5"#;
    let err = error_of(src);
    assert_eq!(
        frames(&err.render(false)),
        [
            "… at 5",
            "… in an operand of '+'",
            "… at 4",
            "… at 3",
            "… at 2",
            "… at 1",
            "(stack trace truncated; use '--show-trace' to show the full, detailed trace)",
        ]
    );
    // with it, every frame (call frames too)
    let full = frames(&err.render(true));
    assert!(full.iter().any(|f| f == "… from call site"), "{full:?}");
    assert!(!full.iter().any(|f| f.starts_with("(stack trace truncated")), "{full:?}");
    // a short trace is not marked
    let err = error_of(r#"builtins.toJSON { a = throw "x"; }"#);
    assert_eq!(frames(&err.render(false)), ["… while evaluating attribute 'a'"]);
}

#[test]
fn a_memoised_error_keeps_the_frames_of_its_first_unwinding() {
    // as C++ Nix 2.34+ (upstream's eval-fail-memoised-error-trace-not-mutated):
    // `a` failed first under "forcing b"; forced again under "forcing d" it
    // shows both, and not "forcing c" (each forcing gets a fresh copy)
    let src = r#"let
  a = throw "nope";
  b = builtins.addErrorContext "forcing b" a;
  c = builtins.addErrorContext "forcing c" a;
  d = builtins.addErrorContext "forcing d" a;
in builtins.seq (builtins.tryEval b) (builtins.seq (builtins.tryEval c) d)"#;
    assert_eq!(
        frames(&error_of(src).render(true)),
        [
            "… while calling the 'seq' builtin",
            "… while calling the 'seq' builtin",
            "… forcing d",
            "… forcing b",
            "… while calling the 'throw' builtin",
        ]
    );
}
