//! The shared derivation vectors (checked against C++ Nix): each expression
//! gives the expected string, and a derivation's output string carries the
//! expected `.drv` path in its context. `derivations-fail.tsv` must fail
//! with a clear error. Read from `../shared/vectors/` (or `$FERRIX_SHARED/vectors`).

/// A vector file from the shared corpus beside the checkout (never copied
/// into the project).
fn shared_vectors(name: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = std::env::var_os("FERRIX_SHARED")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain([root.join("../shared"), root.join("../../shared"), "/work/shared".into()]);
    for dir in candidates {
        let p = dir.join("vectors").join(name);
        if p.exists() {
            return std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
        }
    }
    panic!("cannot find shared/vectors/{name} beside the checkout; set FERRIX_SHARED")
}

fn eval(expr: &str) -> ferrix_eval::Result<(String, Vec<String>)> {
    let ev = ferrix_glue::new_eval(Default::default(), Box::new(ferrix_glue::MemoryStore::default()));
    let v = ev.eval_string(expr, "/")?;
    let s = ev.force_string(&v)?;
    let ctx = s.context.sorted_strs().into_iter().map(String::from).collect();
    Ok((s.to_str_lossy().into_owned(), ctx))
}

#[test]
fn derivation_vectors() {
    let tsv = shared_vectors("derivations.tsv");
    let mut n = 0;
    for line in tsv.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let (name, expr, want, want_drv) = (f[0], f[1], f[2], f.get(3).copied().unwrap_or(""));
        let (got, ctx) = eval(expr).unwrap_or_else(|e| panic!("{name}: {}", e.render(false)));
        assert_eq!(got, want, "{name}");
        if want_drv.is_empty() {
            assert!(ctx.is_empty(), "{name}: unexpected context {ctx:?}");
        } else {
            assert_eq!(ctx.len(), 1, "{name}: {ctx:?}");
            let drv = ctx[0].rsplit('!').next().unwrap();
            assert_eq!(drv, want_drv, "{name}");
        }
        n += 1;
    }
    assert_eq!(n, 22);
}

#[test]
fn derivation_fail_vectors() {
    let tsv = shared_vectors("derivations-fail.tsv");
    let expected = [
        ("invalid outputHash", "has wrong length for hash type 'sha256'"),
        ("sha1 algo with sha256 hash", "should have type 'sha1'"),
        ("duplicate outputs", "duplicate derivation output 'foo'"),
        ("empty name", "is not a valid store path name"),
    ];
    let mut n = 0;
    for line in tsv.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, expr) = line.split_once('\t').unwrap();
        let err = match eval(expr) {
            Ok(v) => panic!("{name}: expected an error, got {v:?}"),
            Err(e) => e.render(false),
        };
        let want = expected.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no expectation for {name}")).1;
        assert!(err.contains(want), "{name}: {err}");
        n += 1;
    }
    assert_eq!(n, 4);
}

/// Value-level checks of the returned attribute set.
#[test]
fn derivation_strict_result_contexts() {
    let ev = ferrix_glue::new_eval(Default::default(), Box::new(ferrix_glue::MemoryStore::default()));
    let v = ev
        .eval_string(
            r#"builtins.derivationStrict { name = "foo"; builder = "/bin/sh"; outputs = [ "out" "dev" ]; system = "x86_64-linux"; }"#,
            "/",
        )
        .unwrap();
    let a = ev.force_attrs(&v).unwrap();
    let names: Vec<String> = a.sorted_by_name().map(|x| x.name.as_str().into_owned()).collect();
    assert_eq!(names, ["dev", "drvPath", "out"]);
    let drv = ev.force_string(a.get(ferrix_eval::Symbol::new("drvPath")).unwrap()).unwrap();
    let drv_s = drv.to_str_lossy().into_owned();
    let ctx: Vec<String> = drv.context.sorted_strs().into_iter().map(String::from).collect();
    assert_eq!(ctx, [format!("={drv_s}")]);
    let dev = ev.force_string(a.get(ferrix_eval::Symbol::new("dev")).unwrap()).unwrap();
    let ctx: Vec<String> = dev.context.sorted_strs().into_iter().map(String::from).collect();
    assert_eq!(ctx, [format!("!dev!{drv_s}")]);
}

/// `--eval --strict` results of C++ Nix 2.8 for glue-heavy expressions
/// (data/eval-fixtures.tsv, made by data/make-eval-fixtures.sh). Runs
/// without Nix installed.
#[test]
fn eval_fixtures() {
    let tsv = include_str!("data/eval-fixtures.tsv");
    let mut n = 0;
    let mut failures = Vec::new();
    for line in tsv.lines().filter(|l| !l.is_empty()) {
        let (expr, want) = line.split_once('\t').unwrap();
        let ev = ferrix_glue::new_eval(Default::default(), Box::new(ferrix_glue::MemoryStore::default()));
        let got = ev
            .eval_string(expr, "/")
            .and_then(|v| ev.force_deep(&v))
            .map(|v| ferrix_eval::print::print_value(&v))
            .unwrap_or_else(|e| e.render(false));
        if got != want {
            failures.push(format!("{expr}\n  want: {want}\n  got:  {got}"));
        }
        n += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(n, 23);
}

/// `outputHashMode = "text"` (newer Nix; C++ Nix 2.8 rejects it): the output
/// is a text path without references, the drv hash is `fixed:out:text:…`.
#[test]
fn text_mode_fixed_output() {
    use ferrix_formats::{HashAlgo, StoreDir};
    let ev = ferrix_glue::new_eval(Default::default(), Box::new(ferrix_glue::MemoryStore::default()));
    let h = HashAlgo::Sha256.digest(b"hello");
    let expr = format!(
        r#"(derivation {{ name = "t"; builder = "/bin/sh"; system = "x"; outputHashMode = "text"; outputHash = "{}"; }}).outPath"#,
        h.to_sri()
    );
    let v = ev.eval_string(&expr, "/").unwrap();
    let got = ev.force_string(&v).unwrap().to_str_lossy().into_owned();
    let dir = StoreDir::default();
    let want = dir.make_text_path("t", &h, []).unwrap();
    assert_eq!(got, dir.display(&want));
}
