//! Criterion benchmarks for the evaluator's hot paths: function calls and
//! integer arithmetic, a strict fold, attribute-set updates (the overlay
//! pattern that stacks `//` layers) and lookups, string interpolation and
//! `mapAttrs`. Whole-process comparisons with C++ Nix are `scripts/bench`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ferrix_eval::Eval;

fn run(src: &str) {
    let ev = Eval::default();
    let v = ev.eval_string(src, "/").expect("evaluates");
    black_box(ev.force_deep(&v).expect("forces"));
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("eval");
    g.sample_size(10);
    let cases = [
        ("fib 20 (calls, arithmetic)", "let fib = n: if n < 2 then n else fib (n - 1) + fib (n - 2); in fib 20"),
        ("foldl' over 10^5", "builtins.foldl' (a: x: a + x * 2) 0 (builtins.genList (i: i) 100000)"),
        (
            "1000 overlays (layered //, lookups)",
            r#"let
                 base = builtins.listToAttrs (builtins.genList (i: { name = "a${toString i}"; value = i; }) 2000);
                 step = s: i: s // { "b${toString i}" = i; sum = (s.sum or 0) + s."a${toString i}"; };
               in (builtins.foldl' step base (builtins.genList (i: i) 1000)).sum"#,
        ),
        (
            "mapAttrs + attrNames over 10^4",
            r#"let s = builtins.listToAttrs (builtins.genList (i: { name = "k${toString i}"; value = i; }) 10000);
               in builtins.length (builtins.attrNames (builtins.mapAttrs (n: v: v + 1) s))"#,
        ),
        (
            "string interpolation 10^4",
            r#"builtins.stringLength (builtins.concatStringsSep "," (builtins.genList (i: "item-${toString i}") 10000))"#,
        ),
    ];
    for (name, src) in cases {
        g.bench_function(name, |b| b.iter(|| run(src)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
