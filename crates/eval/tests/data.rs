//! Data-driven evaluator tests: every `data/*.nix` is evaluated strictly and
//! printed like `nix-instantiate --eval --strict`; the output (or the error
//! message) must equal `data/*.exp`. `UPDATE_EXPECT=1` rewrites the `.exp` files.

use std::path::Path;

use ferrix_eval::{print::print_value, Eval};

fn run_one(path: &Path) -> String {
    let ev = Eval::default();
    let r = ev.eval_file(path.to_str().expect("utf-8 path")).and_then(|v| ev.force_deep(&v));
    match r {
        Ok(v) => format!("{}\n", print_value(&v)),
        Err(e) => format!("error: {}\n", e.msg()),
    }
}

#[test]
fn data_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir).expect("tests/data exists").flatten().map(|e| e.path()).collect();
    entries.sort();
    let mut n = 0;
    for p in entries {
        if p.extension().is_none_or(|e| e != "nix") {
            continue;
        }
        n += 1;
        let got = run_one(&p);
        let exp_path = p.with_extension("exp");
        if update {
            std::fs::write(&exp_path, &got).expect("write .exp");
            continue;
        }
        let want = std::fs::read_to_string(&exp_path).unwrap_or_default();
        if got != want {
            failures.push(format!("{}:\n  want: {want}  got:  {got}", p.display()));
        }
    }
    assert!(n > 0, "no test files found");
    assert!(failures.is_empty(), "{} data tests differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn value_is_16_bytes() {
    assert_eq!(std::mem::size_of::<ferrix_eval::Value>(), 16);
}

/// Deep recursion fails cleanly instead of crashing the process.
#[test]
fn deep_recursion_is_a_clean_error() {
    let r = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(|| {
            let ev = Eval::default();
            let v = ev.eval_string("let sum = n: if n == 0 then 0 else n + sum (n - 1); in sum 100000", "/");
            match v {
                Ok(v) => format!("{:?}", v),
                Err(e) => e.msg().to_string(),
            }
        })
        .expect("spawn")
        .join()
        .expect("no panic");
    assert!(r == "5000050000" || r.contains("stack overflow"), "{r}");
}

/// A failed thunk gives the same error when forced again (memoised, as in Nix >= 2.34).
#[test]
fn failed_thunks_fail_again() {
    let ev = Eval::default();
    let v = ev
        .eval_string(
            "let x = if builtins.getEnv \"FERRIX_NEVER_SET\" == \"\" then throw \"no\" else 1; in [ (builtins.tryEval x).success (builtins.tryEval x).success ]",
            "/",
        )
        .and_then(|v| ev.force_deep(&v))
        .expect("evaluates");
    assert_eq!(print_value(&v), "[ false false ]");
}

/// The glue's hook: registering `derivationStrict` enables the `derivation`
/// wrapper (C++ Nix's derivation.nix).
#[test]
fn derivation_wrapper_uses_registered_derivation_strict() {
    use ferrix_eval::{Builtins, EvalOptions, HostIO, PrimOpDef, Span, Symbol, Value};
    fn fake_strict(ev: &Eval, a: &[Value], _: Span) -> ferrix_eval::Result<Value> {
        let attrs = ev.force_attrs(&a[0])?;
        let name = ev.force_str_nocontext(attrs.get(Symbol::new("name")).expect("name"))?;
        Ok(Value::attrs_from([
            (Symbol::new("drvPath"), Value::str(&format!("/nix/store/fake-{name}.drv"))),
            (Symbol::new("out"), Value::str(&format!("/nix/store/fake-{name}"))),
        ]))
    }
    let mut b = Builtins::default();
    b.add(PrimOpDef { name: "derivationStrict", arity: 1, func: fake_strict, forces: &[] });
    let ev = Eval::new(Box::new(HostIO), EvalOptions::default(), b);
    let v = ev
        .eval_string(
            "let d = derivation { name = \"x\"; builder = \"/bin/sh\"; system = \"x86_64-linux\"; }; in [ d.outPath d.drvPath d.type \"${d}\" (builtins.derivation == derivation) ]",
            "/",
        )
        .and_then(|v| ev.force_deep(&v))
        .expect("evaluates");
    assert_eq!(
        print_value(&v),
        "[ \"/nix/store/fake-x\" \"/nix/store/fake-x.drv\" \"derivation\" \"/nix/store/fake-x\" false ]"
    );
}
