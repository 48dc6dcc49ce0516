//! Lazily evaluated expressions that read nothing from the innermost
//! frames run further up (`ir::trim_thunks`): the values must be the same
//! as if they kept every frame.

use ferrix_eval::{print::print_value, Eval};

fn eval(src: &str) -> String {
    let ev = Eval::default();
    let v = ev.eval_string(src, "/").and_then(|v| ev.force_deep(&v)).unwrap_or_else(|e| panic!("{src}: {}", e.render(true)));
    print_value(&v)
}

#[test]
fn thunks_that_skip_frames_see_the_same_variables() {
    let cases = [
        // attribute values, list items and arguments one, two, three frames up
        ("let a = 1; f = x: let b = 2; in { p = a; q = [ (a + 1) ]; r = y: a + y + b; }; in [ (f 0).p (f 0).q ((f 0).r 4) ]", "[ 1 [ 2 ] 7 ]"),
        ("let a = 10; in ((x: y: z: { r = a + 1; s = [ (a + x) (y + z) ]; }) 1 2 3)", "{ r = 11; s = [ 11 5 ]; }"),
        // a `with` variable inside a skipped-frame expression
        ("let s = { v = 5; }; in with s; let g = x: { w = v + 1; u = [ (v * 2) ]; }; in g 0", "{ u = [ 10 ]; w = 6; }"),
        // recursive sets, `inherit (…)` in them, and `let` bindings
        ("let o = { x = 1; }; in (q: rec { inherit (o) x; y = x + 1; z = [ (y + 1) ]; }) 0", "{ x = 1; y = 2; z = [ 3 ]; }"),
        ("let c = 3; in (x: let d = c + 1; e = [ d c ]; in e) 0", "[ 4 3 ]"),
        // formals' defaults reading outer frames and each other
        ("let c = 3; f = { a ? c + 1, b ? a * 2, ... }@args: [ a b (args.z or c) ]; in f { }", "[ 4 8 3 ]"),
        // closed expressions, dynamic names, interpolation
        ("(x: { c = [ 1 2 ]; d = \"s\"; }) 0", "{ c = [ 1 2 ]; d = \"s\"; }"),
        ("let n = \"k\"; in (x: { ${n} = \"${n}v\"; m = builtins.map (y: y + n) [ \"a\" ]; }) 0", "{ k = \"kv\"; m = [ \"ak\" ]; }"),
        // closures made at a skipped frame keep working when called later
        ("let a = 2; mk = x: { f = y: a * y; }; in ((mk 0).f 21)", "42"),
        ("let lib = { id = x: x; }; in builtins.foldl' (acc: x: acc ++ [ (lib.id (x + 1)) ]) [ ] [ 1 2 3 ]", "[ 2 3 4 ]"),
    ];
    for (src, want) in cases {
        assert_eq!(eval(src), want, "{src}");
    }
}

#[test]
fn a_scoped_import_keeps_its_scope() {
    let dir = std::env::temp_dir().join(format!("ferrix-frames-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("f.nix");
    std::fs::write(&file, "x: { a = [ (y + x) ]; b = z: y; }").expect("write");
    let src = format!("let f = builtins.scopedImport {{ y = 5; }} {}; in [ (f 1).a ((f 1).b 0) ]", file.display());
    let got = eval(&src);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(got, "[ [ 6 ] 5 ]");
}

/// Programs built from a stream of choices: integer expressions with
/// every kind of binder (`let`, lambdas with and without formals, `rec`
/// sets, `with`) and lazy position (attribute values, list items,
/// arguments, bindings, defaults), variables read from any frame around,
/// and closures that leave the frame they were made in.
struct Gen<'a> {
    choices: &'a [u8],
    at: usize,
    fresh: u32,
}

impl Gen<'_> {
    fn pick(&mut self, n: u8) -> u8 {
        let c = self.choices.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        c % n
    }

    fn name(&mut self) -> String {
        self.fresh += 1;
        format!("v{}", self.fresh)
    }

    /// An integer expression over the names in `scope` (innermost last).
    fn int(&mut self, scope: &mut Vec<String>, budget: u32) -> String {
        if budget == 0 || self.at >= self.choices.len() {
            return match scope.len() {
                0 => format!("{}", self.pick(10)),
                n => scope[n - 1 - usize::from(self.pick(n.min(250) as u8))].clone(),
            };
        }
        let b = budget - 1;
        match self.pick(12) {
            0 => format!("{}", self.pick(100)),
            1 if !scope.is_empty() => scope[scope.len() - 1 - usize::from(self.pick(scope.len().min(250) as u8))].clone(),
            2 => format!("({} + {})", self.int(scope, b), self.int(scope, b)),
            3 => {
                let v = self.name();
                let bound = self.int(scope, b);
                scope.push(v.clone());
                let body = self.int(scope, b);
                scope.pop();
                format!("(let {v} = {bound}; in {body})")
            }
            4 => {
                let v = self.name();
                let arg = self.int(scope, b);
                scope.push(v.clone());
                let body = self.int(scope, b);
                scope.pop();
                format!("(({v}: {body}) {arg})")
            }
            5 => {
                let (v, w) = (self.name(), self.name());
                let given = self.int(scope, b);
                let dv = self.int(scope, b);
                scope.push(v.clone());
                // (`w`'s default may read `v`: defaults see each other)
                let dw = self.int(scope, b);
                scope.push(w.clone());
                let body = self.int(scope, b);
                scope.truncate(scope.len() - 2);
                format!("(({{ {v} ? {dv}, {w} ? {dw} }}@a: {body} + a.{w}) {{ {w} = {given}; }})")
            }
            6 => {
                let v = self.name();
                let x = self.int(scope, b);
                scope.push(v.clone());
                let r = self.int(scope, b);
                scope.pop();
                format!("(rec {{ {v} = {x}; r = {r}; }}).r")
            }
            7 => format!("{{ a = {}; b = {}; }}.b", self.int(scope, b), self.int(scope, b)),
            8 => format!("(builtins.elemAt [ {} {} ] 1)", self.int(scope, b), self.int(scope, b)),
            9 => {
                // a `with` variable (the names are all different, so no
                // binder in between hides it)
                let v = self.name();
                let x = self.int(scope, b);
                scope.push(v.clone());
                let body = self.int(scope, b);
                scope.pop();
                format!("(with {{ {v} = {x}; }}; {body})")
            }
            10 => {
                // a closure made in one frame, called from another
                let (f, v) = (self.name(), self.name());
                scope.push(v.clone());
                let body = self.int(scope, b);
                scope.pop();
                let arg = self.int(scope, b);
                format!("((let {f} = {v}: {body}; in {f}) {arg})")
            }
            _ => {
                let v = self.name();
                let arg = self.int(scope, b);
                scope.push(v.clone());
                let r = self.int(scope, b);
                let s = self.int(scope, b);
                scope.pop();
                format!("(builtins.head (builtins.map ({v}: {{ r = {r}; s = [ {s} ]; }}) [ {arg} ])).r")
            }
        }
    }
}

fn run(src: &str, keep_frames: bool) -> String {
    let opts = ferrix_eval::EvalOptions { keep_frames, ..Default::default() };
    let ev = Eval::new(Box::new(ferrix_eval::HostIO), opts, Default::default());
    match ev.eval_string(src, "/").and_then(|v| ev.force_deep(&v)) {
        Ok(v) => print_value(&v),
        Err(e) => format!("error: {}", e.render(false)),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]
    /// Trimmed frames never change a value: each program evaluates to the
    /// same result as with every frame kept.
    #[test]
    fn trimming_keeps_every_value(choices in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..160)) {
        let mut g = Gen { choices: &choices, at: 0, fresh: 0 };
        let mut scope = Vec::new();
        let body = g.int(&mut scope, 7);
        // results that keep closures and lists of thunks, forced at the end
        let src = format!("let top = {body}; in [ top (x: x + top) {{ t = top; }} ]");
        let trimmed = run(&src, false);
        proptest::prop_assert!(!trimmed.starts_with("error"), "{src}: {trimmed}");
        proptest::prop_assert_eq!(trimmed, run(&src, true), "{}", src);
    }
}

/// Lazily evaluated expressions nested far deeper than one wrapper can
/// skip (63 frames) read the right frames: 150 nested functions, each
/// returning a list (an item, an argument: two lazy levels per function)
/// whose innermost item reads a variable from outside all of them.
#[test]
fn deep_nesting_reads_the_right_frames() {
    let depth = 150;
    let mut src = String::from("a");
    for i in (0..depth).rev() {
        src = format!("((x{i}: [ {src} (x{i} + a) ]) {i})");
    }
    let src = format!("let a = 1000; in {src}");
    let ev = Eval::default();
    let mut v = ev.eval_string(&src, "/").expect("evaluates");
    for i in 0..depth {
        let ferrix_eval::Value::List(l) = &ev.force(&v).expect("forces") else { panic!("a list") };
        assert_eq!(print_value(&ev.force(&l[1]).expect("forces")), (1000 + i).to_string());
        v = l[0].clone();
    }
    assert_eq!(print_value(&ev.force(&v).expect("forces")), "1000");
}

/// A variable read from further up than a wrapper's mask tells exactly
/// (69 frames up), inside lazy expressions at every level on the way out:
/// the levels near the frame it reads must still keep that frame.
#[test]
fn far_reads_keep_their_frames() {
    let levels = 80;
    let mut body = String::from("(x10 * 100 + x79)");
    for i in (0..levels).rev() {
        body = format!("(x{i}: [ {body} ])");
    }
    let mut get = String::from("f");
    for i in 0..levels {
        get = format!("(builtins.head ({get} {i}))");
    }
    assert_eq!(eval(&format!("let f = {body}; in {get}")), "1079");
}
