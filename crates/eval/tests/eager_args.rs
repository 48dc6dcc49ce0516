//! Builtin arguments the builtin forces first are evaluated before the
//! call instead of suspended (`PrimOpDef::forces`): values, errors and
//! their traces must be exactly those of the all-lazy calls.

use ferrix_eval::{print::print_value, Builtins, Eval, EvalOptions, HostIO};

/// The value of `src` (deeply forced), or its error rendered with the
/// whole trace, with builtins' arguments evaluated early or not.
fn outcome(src: &str, lazy_builtin_args: bool, max_call_depth: usize) -> String {
    let opts = EvalOptions { lazy_builtin_args, max_call_depth, ..Default::default() };
    let ev = Eval::new(Box::new(HostIO), opts, Builtins::default());
    match ev.eval_string(src, "/").and_then(|v| ev.force_deep(&v)) {
        Ok(v) => print_value(&v),
        Err(e) => format!("error ({:?}):\n{}", e.kind(), e.render(true)),
    }
}

fn same(src: &str, max_call_depth: usize) -> String {
    let eager = outcome(src, false, max_call_depth);
    let lazy = outcome(src, true, max_call_depth);
    assert_eq!(eager, lazy, "{src}");
    eager
}

#[test]
fn values_and_errors_are_those_of_lazy_arguments() {
    let cases = [
        // values
        "builtins.length (builtins.filter (x: x > 1) [ 1 2 3 ])",
        "builtins.map (x: x * 2) (builtins.tail [ 1 2 3 ])",
        "builtins.foldl' (a: b: a + b) 0 (builtins.genList (x: x) 10)",
        "builtins.seq (builtins.length [ ]) (builtins.isAttrs { })",
        "builtins.elemAt (builtins.attrNames { b = 1; a = 2; }) (0 + 1)",
        "builtins.catAttrs \"a\" (builtins.map (x: { a = x; }) [ 1 2 ])",
        "let l = builtins.elemAt [ 1 2 ]; in l (1 - 1)",
        "let m = builtins.map; in m (x: x + 1) (builtins.tail [ 1 2 ])",
        "builtins.hasAttr (\"a\" + \"b\") (builtins.listToAttrs [ { name = \"ab\"; value = 1; } ])",
        "builtins.addErrorContext \"ctx\" (builtins.length [ 1 ])",
        "let s = { a = [ 1 2 ]; }; in builtins.length s.a + builtins.length s.a",
        // the argument's own failure, with the builtin's frames
        "builtins.length (throw \"boom\")",
        "builtins.length (abort \"stop\")",
        "builtins.length (assert false; [ ])",
        "builtins.map (x: x) (throw \"list\")",
        "builtins.isAttrs (builtins.head [ ])",
        "builtins.addErrorContext \"while doing this\" (throw \"inner\")",
        "builtins.removeAttrs (throw \"set\") (throw \"names\")",
        "builtins.seq (throw \"first\") (throw \"second\")",
        "builtins.seq 1 (throw \"second\")",
        "builtins.genList (x: x) (1 + \"a\")",
        "builtins.length { }.a",
        "let f = x: builtins.length (x + 1); in f 1",
        "let s = { a = throw \"in a set\"; }; in builtins.length s.a",
        "let x = throw \"shared\"; in builtins.length x",
        // a builtin that stops at an earlier argument never evaluates a later one
        "builtins.elemAt 5 (throw \"index\")",
        "builtins.elemAt [ 1 ] (throw \"index\")",
        "builtins.hasAttr 1 (throw \"set\")",
        "builtins.foldl' 1 0 (throw \"list\")",
        "builtins.any (throw \"f\") (throw \"list\")",
        "builtins.concatMap (x: [ x ]) (throw \"list\")",
        "builtins.catAttrs \"a\" [ { a = 1; } (throw \"elem\") ]",
        "let l = builtins.elemAt (throw \"list\"); in l (throw \"index\")",
        // caught failures, and the failed thunk forced again after
        "builtins.tryEval (builtins.length (throw \"caught\"))",
        "let x = throw \"again\"; r = builtins.tryEval (builtins.length x); in [ r (builtins.length x) ]",
        "let x = { }.missing; r = builtins.tryEval (builtins.isAttrs (x + 1)); in r",
        // recursion through an argument
        "let x = builtins.length x; in x",
        "let s = { a = builtins.length s.a; }; in s.a",
        "let x = builtins.seq 1 x; in x",
    ];
    for src in cases {
        same(src, 10_000);
    }
}

#[test]
fn stack_overflows_happen_at_the_same_depth() {
    // each level is a call of `f` and one of `length` (two of the 100):
    // 50 levels of "from call site" and "while calling 'f'"
    let out = same("let f = n: builtins.length (f (n + 1)); in f 0", 100);
    assert!(out.contains("(99 duplicate frames omitted)") && out.contains("stack overflow"), "{out}");
    same("let f = n: builtins.seq n (f (n + 1)); in f 0", 100);
    same("let f = n: builtins.map (x: x) (f n); in f 0", 100);
}

