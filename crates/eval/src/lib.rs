//! ferrix-eval: the Nix language (lowering, lazy evaluation, builtins that need no store).
//!
//! Knows nothing of the store: file access goes through [`EvalIO`], and the
//! glue adds store builtins (`derivationStrict`, `toFile`, `path`, …) through
//! [`Builtins`] before constructing an [`Eval`].
//!
//! # How it works
//! - `parse` + `lower`: a hand-written lexer and parser build a compact
//!   arena syntax tree (rnix 0.15 is the fallback for syntax errors and the
//!   oracle in the tests); the tree is lowered once into [`ir::Expr`] with
//!   variables resolved to (frame depth, slot), `with` only as a dynamic
//!   fallback ([`ir::Expr::WithVar`]), names interned ([`Symbol`]), literal
//!   attribute sets sorted and nested paths merged. Duplicate attributes and
//!   formals and undefined variables are reported here. IR lives forever
//!   (leaked, like C++ Nix's AST), so thunks hold `&'static Expr`.
//! - `eval`: [`Eval::eval`] evaluates to weak head normal form; anything lazy
//!   is a [`Thunk`] (suspended → blackhole → done / failed, errors are
//!   memoised; one 32-byte block). Forcing a done thunk clones a handle at
//!   most. Frames are [`Env`]s (one allocation per call: a 16-byte header
//!   and the slots inline). Deep recursion grows the stack with
//!   `stacker` and stops at `max_call_depth` with "stack overflow".
//! - Values are 16 bytes ([`Value`]); strings are bytes plus a [`Context`];
//!   attribute sets are vectors sorted by symbol id.
//!
//! # Hooking in (the glue)
//! - Implement [`EvalIO`] (a store-backed `import_path` makes `"${./file}"`
//!   work) and pass it to [`Eval::new`].
//! - Register builtins with [`Builtins::add`] (a [`PrimOpDef`]: name, arity,
//!   `fn(&Eval, &[Value], Span) -> Result<Value>`). Registering
//!   `derivationStrict` enables `derivation` ([`DERIVATION_NIX`], C++ Nix's
//!   wrapper). Use [`Eval::force`], [`Eval::force_attrs`],
//!   [`Eval::coerce_to_string`] (collects string context), [`Eval::call`]
//!   and the [`Value`] constructors in builtins.
//!
//! ```
//! use ferrix_eval::{Eval, print::print_value};
//! let ev = Eval::default();
//! let v = ev.eval_string("let f = x: x * 2; in map f [ 1 2 3 ]", "/").unwrap();
//! let v = ev.force_deep(&v).unwrap();
//! assert_eq!(print_value(&v), "[ 2 4 6 ]");
//! ```

pub mod alloc;
pub mod builtins;
pub mod error;
mod eval;
pub mod io;
pub mod ir;
pub(crate) mod lower;
#[doc(hidden)]
pub mod parse;
pub mod print;
pub mod source;
pub mod symbol;
pub mod value;

use std::cell::{Cell, RefCell};


use rustc_hash::FxHashMap;

pub use error::{Error, ErrorKind, Result};
pub use eval::{missing_attr, show_value_short, Coerce, Eval, EvalOptions};
pub use io::{EvalIO, FileType, HostIO};
pub use ir::Span;
pub use lower::{canon_path, decode_source, LintLevel, Lints};
pub use symbol::Symbol;
pub use value::{Attr, AttrSet, Context, ContextElem, Env, List, NixStr, NixString, PrimOpDef, Thunk, Value, Want};

/// Builtins the embedder adds on top of the core set. Register everything
/// before [`Eval::new`]; names must not collide with core builtins unless
/// meant to replace them.
#[derive(Default)]
pub struct Builtins {
    pub primops: Vec<&'static PrimOpDef>,
    /// Extra constants in `builtins` (name, value).
    pub constants: Vec<(String, Value)>,
}

impl Builtins {
    pub fn add(&mut self, def: PrimOpDef) -> &mut Self {
        self.primops.push(Box::leak(Box::new(def)));
        self
    }
    pub fn add_constant(&mut self, name: &str, v: Value) -> &mut Self {
        self.constants.push((name.to_string(), v));
        self
    }
}

/// Names that are in the base environment without the `__` prefix.
const PLAIN_GLOBALS: &[&str] = &[
    "abort",
    "baseNameOf",
    "break",
    "derivation",
    "derivationStrict",
    "dirOf",
    "fetchGit",
    "fetchMercurial",
    "fetchTarball",
    "fetchTree",
    "fromTOML",
    "import",
    "isNull",
    "map",
    "placeholder",
    "removeAttrs",
    "scopedImport",
    "throw",
    "toString",
];

/// C++ Nix's `derivation` wrapper, enabled when the embedder registers
/// `derivationStrict`, loaded as `«nix-internal»/derivation-internal.nix`
/// as newer C++ Nix names it, laid out as that file is (the same line for
/// every expression a trace can quote, upstream's eval-fail-derivation-name
/// and -stack-trace pin them): `commonAttrs` bound once in the `let`,
/// `outPath` a selection as in newer Nix's file rather than 2.8's `getAttr`
/// call (the same value; an error in the derivation is traced "while
/// selecting an attribute", and each level of a chain of derivations takes
/// less stack). The comment at its top is ferrix's own.
pub const DERIVATION_NIX: &str = r#"# The `derivation` function: a thin wrapper around the `derivationStrict`
# builtin, which checks the attributes, writes the `.drv` file and returns
# the store paths of the derivation and of each of its outputs.
#
# The wrapper turns that into the value Nix code works with:
#
#   derivation {
#     name = "hello";
#     system = "x86_64-linux";
#     builder = "/bin/sh";
#     args = [ "-c" "echo hi > $out" ];
#   }
#
# is a set holding every attribute given (`drvAttrs`, also under that
# name), `type = "derivation"`, `drvPath`, and for each output named in
# `outputs` (default: `[ "out" ]`) a set like the whole one whose
# `outPath` is that output's path and whose `outputName` is its name.
# The whole set is the first output's set; `all` lists every output's set.
#
# Nothing is built. `outPath` and `drvPath` stay suspended until they are
# needed: interpolating a derivation into a string, or passing it to
# another derivation, forces `derivationStrict` on it and adds the output
# to the string's context, so the other derivation depends on it.
#
# The strict result is shared by all outputs: `derivationStrict` runs once
# per derivation, however many outputs are asked for.
#
# This file is laid out line for line as C++ Nix's own wrapper is (its
# `outPath` on line 49), so that error traces through it quote the same
# lines as C++ Nix's do; keep the code below where it is when editing
# this comment.
#
# (ferrix loads it as «nix-internal»/derivation-internal.nix.)

drvAttrs@{ outputs ? [ "out" ], ... }:

let

  strict = derivationStrict drvAttrs;

  commonAttrs = drvAttrs // (builtins.listToAttrs outputsList) // {
    all = map (x: x.value) outputsList;
    inherit drvAttrs;
  };

  outputToAttrListElement = outputName: {
    name = outputName;
    value = commonAttrs // {
      outPath = strict.${outputName};
      drvPath = strict.drvPath;
      type = "derivation";
      inherit outputName;
    };
  };

  outputsList = map outputToAttrListElement outputs;

in
(builtins.head outputsList).value
"#;

impl Default for Eval {
    fn default() -> Self {
        Eval::new(Box::new(HostIO), EvalOptions::default(), Builtins::default())
    }
}

impl Eval {
    /// An evaluator with the core builtins plus `extra`.
    pub fn new(io: Box<dyn EvalIO>, opts: EvalOptions, extra: Builtins) -> Eval {
        let mut defs: Vec<&'static PrimOpDef> = builtins::core();
        for d in extra.primops {
            defs.retain(|x| x.name != d.name);
            defs.push(d);
        }
        if opts.lazy_builtin_args {
            // (leaked: a handful of small definitions per evaluator, in tests)
            for d in &mut defs {
                *d = Box::leak(Box::new(PrimOpDef { name: d.name, arity: d.arity, func: d.func, forces: &[] }));
            }
        }
        let has_drv_strict = defs.iter().any(|d| d.name == "derivationStrict");
        let mut globals: Vec<Value> = Vec::new();
        let mut names: FxHashMap<Symbol, u32> = FxHashMap::default();
        let mut set: Vec<Attr> = Vec::new();
        let add_global = |globals: &mut Vec<Value>, names: &mut FxHashMap<Symbol, u32>, n: &str, v: Value| {
            let idx = globals.len() as u32;
            globals.push(v);
            names.insert(Symbol::new(n), idx);
        };
        for d in &defs {
            let v = Value::PrimOp(d);
            set.push(Attr { name: Symbol::new(d.name), value: v.clone(), pos: crate::ir::Pos::NONE });
            add_global(&mut globals, &mut names, &format!("__{}", d.name), v.clone());
            if PLAIN_GLOBALS.contains(&d.name) {
                add_global(&mut globals, &mut names, d.name, v);
            }
        }
        let mut consts: Vec<(String, Value)> = vec![
            ("nixVersion".into(), Value::str("2.24.0")),
            ("langVersion".into(), Value::Int(6)),
            ("storeDir".into(), Value::str(&opts.store_dir)),
            ("currentSystem".into(), Value::str("x86_64-linux")),
            (
                "currentTime".into(),
                Value::Int(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0),
                ),
            ),
            ("null".into(), Value::Null),
            ("true".into(), Value::Bool(true)),
            ("false".into(), Value::Bool(false)),
            (
                "nixPath".into(),
                Value::list(
                    opts.search_path
                        .iter()
                        .map(|(p, d)| {
                            Value::attrs_from([
                                (symbol::sym::prefix(), Value::str(p)),
                                (symbol::sym::path(), Value::str(d)),
                            ])
                        })
                        .collect(),
                ),
            ),
        ];
        consts.extend(extra.constants);
        for (n, v) in consts {
            set.retain(|a| a.name != Symbol::new(&n));
            set.push(Attr { name: Symbol::new(&n), value: v.clone(), pos: crate::ir::Pos::NONE });
            add_global(&mut globals, &mut names, &format!("__{n}"), v.clone());
            if matches!(n.as_str(), "null" | "true" | "false") {
                add_global(&mut globals, &mut names, &n, v);
            }
        }
        // `builtins.derivation` is filled in once the wrapper is evaluated.
        let drv_thunk = Thunk::blackhole();
        set.retain(|a| a.name != Symbol::new("derivation"));
        set.push(Attr { name: Symbol::new("derivation"), value: Value::from_thunk(drv_thunk.clone()), pos: crate::ir::Pos::NONE });
        // `builtins` contains itself: a thunk filled in after the set exists.
        let self_thunk = Thunk::blackhole();
        set.push(Attr { name: Symbol::new("builtins"), value: Value::from_thunk(self_thunk.clone()), pos: crate::ir::Pos::NONE });
        let builtins_v = Value::attrs(AttrSet::from_unsorted(set));
        self_thunk.set_done(builtins_v.clone());
        add_global(&mut globals, &mut names, "builtins", builtins_v);
        let drv_idx = globals.len();
        add_global(&mut globals, &mut names, "derivation", Value::PrimOp(&builtins::control::NO_DERIVATION));

        let ev = Eval {
            io,
            opts,
            globals: RefCell::new(globals),
            global_names: names,
            import_cache: RefCell::new(FxHashMap::default()),
            call_depth: Cell::new(0),
            stack_bounds: Cell::new((usize::MAX, 0)),
            root_env: Env::with_len(None, 0),
            copied: RefCell::new(FxHashMap::default()),
        };
        if has_drv_strict {
            let v = ev
                .eval_source(DERIVATION_NIX, "«nix-internal»/derivation-internal.nix", "/")
                .expect("the built-in derivation.nix evaluates");
            ev.globals.borrow_mut()[drv_idx] = v;
        }
        drv_thunk.set_done(ev.globals.borrow()[drv_idx].clone());
        ev
    }

    /// What lowering needs from this evaluator, for a registered file.
    fn lower_ctx<'a>(&'a self, file: u32, base_dir: &'a str, scope: Option<&'a [Symbol]>) -> lower::LowerCtx<'a> {
        lower::LowerCtx { file, base_dir, globals: &self.global_names, home: self.opts.home.as_deref(), scope, lints: self.opts.lints }
    }

    /// Register `text` under `name` and parse and lower it, with an extra
    /// outermost frame binding `scope` if given.
    fn parse_in(&self, text: &str, name: &str, base_dir: &str, scope: Option<&[Symbol]>) -> Result<&'static ir::Expr> {
        let text = normalise_newlines(text);
        let cx = self.lower_ctx(source::add(name, &text), base_dir, scope);
        let mut e = lower::parse_and_lower(&text, &cx)?;
        if !self.opts.keep_frames {
            ir::trim_thunks(&mut e, u32::from(scope.is_some()));
        }
        Ok(Box::leak(Box::new(e)))
    }

    /// A source text as `nix-instantiate --parse` prints it (after the
    /// same checks as [`Eval::parse`]).
    /// (Bytes: a string literal's bytes that are not UTF-8 print as they are.)
    pub fn parse_show(&self, text: &str, name: &str, base_dir: &str) -> Result<Vec<u8>> {
        let text = normalise_newlines(text);
        let cx = self.lower_ctx(source::add(name, &text), base_dir, None);
        Ok(lower::lit_bytes(lower::parse_and_show(&text, &cx)?).into_vec())
    }

    /// Parse and lower a source text; `name` is shown in positions and
    /// `base_dir` resolves relative paths.
    pub fn parse(&self, text: &str, name: &str, base_dir: &str) -> Result<&'static ir::Expr> {
        self.parse_in(text, name, base_dir, None)
    }

    /// Parse and lower with an extra outermost frame binding `names`
    /// (slot `i` holds `names[i]`); used by `scopedImport`.
    pub fn parse_scoped(&self, text: &str, name: &str, base_dir: &str, names: &[Symbol]) -> Result<&'static ir::Expr> {
        self.parse_in(text, name, base_dir, Some(names))
    }

    /// Parse and lower `text` and drop the result, with the fast front end
    /// (falling back to rnix as [`Eval::parse`] does) or with rnix only: for
    /// the parser benchmarks. Positions point at no registered file.
    #[doc(hidden)]
    pub fn parse_discard(&self, text: &str, base_dir: &str, rnix_only: bool) -> Result<()> {
        let cx = self.lower_ctx(u32::MAX - 1, base_dir, None);
        let (ast, root) = if rnix_only { parse::parse_rnix(text, cx.file)? } else { parse::parse(text, cx.file)? };
        lower::lower(text, &ast, root, &cx).map(drop)
    }

    /// Parse, lower and evaluate a source text (to weak head normal form).
    pub fn eval_source(&self, text: &str, name: &str, base_dir: &str) -> Result<Value> {
        let e = self.parse(text, name, base_dir)?;
        self.eval(e, &self.root_env.clone())
    }

    /// Evaluate an expression given on the command line (`-E`).
    pub fn eval_string(&self, text: &str, base_dir: &str) -> Result<Value> {
        self.eval_source(text, "«string»", base_dir)
    }

    /// Evaluate a file (through the import cache).
    pub fn eval_file(&self, path: &str) -> Result<Value> {
        builtins::io::import_path(self, path)
    }

    /// Parse `text` with the variables of `scope` bound above the base
    /// environment (they shadow builtins) and return it unevaluated, as a
    /// thunk (used by the REPL for its bindings).
    pub fn thunk_in_scope(&self, text: &str, name: &str, base_dir: &str, scope: &[(Symbol, Value)]) -> Result<Value> {
        let names: Vec<Symbol> = scope.iter().map(|(n, _)| *n).collect();
        let e = self.parse_scoped(text, name, base_dir, &names)?;
        let env = Env::new(Some(self.root_env.clone()), scope.iter().map(|(_, v)| v.clone()));
        Ok(self.thunk(e, &env))
    }

    /// Names of the variables in the base environment (`builtins`,
    /// `__add`, `map`, `true`, …), sorted.
    pub fn global_var_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.global_names.keys().map(|s| s.as_str().into_owned()).collect();
        v.sort();
        v
    }

    /// The `builtins` attribute set.
    pub fn builtins_value(&self) -> Value {
        let idx = self.global_names[&Symbol::new("builtins")];
        self.globals.borrow()[idx as usize].clone()
    }

    /// Call a function with several arguments.
    pub fn call_n(&self, f: &Value, args: &[Value]) -> Result<Value> {
        let mut v = f.clone();
        for a in args {
            v = self.call(&v, a.clone(), Span::NONE)?;
        }
        Ok(v)
    }
}

/// Source text with `\r\n` and lone `\r` line ends turned into `\n`, as Nix
/// reads files.
pub(crate) fn normalise_newlines(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\r') { text.replace("\r\n", "\n").replace('\r', "\n").into() } else { text.into() }
}

/// The command line of the profiling examples (`eval_file`, glue's
/// `instantiate_file`): `[-I name=path]... FILE`, the file canonicalised.
#[doc(hidden)]
pub fn example_args(usage: &str) -> (EvalOptions, std::path::PathBuf) {
    let mut args = std::env::args().skip(1);
    let mut opts = EvalOptions::default();
    let mut file = None;
    while let Some(a) = args.next() {
        if a == "-I" {
            let v = args.next().expect("-I needs an argument");
            let (p, d) = v.split_once('=').unwrap_or(("", &v));
            opts.search_path.push((p.to_string(), d.to_string()));
        } else {
            file = Some(a);
        }
    }
    let file = std::fs::canonicalize(file.unwrap_or_else(|| panic!("usage: {usage}"))).expect("file exists");
    (opts, file)
}
