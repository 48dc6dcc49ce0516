//! `derivationStrict`: attribute set → [`Derivation`], following C++ Nix
//! 2.8's `prim_derivationStrict` (attribute order, coercions, fixed-output
//! rules, inputs from string contexts, hash-derivation-modulo).

use std::collections::{BTreeMap, BTreeSet};

use ferrix_eval::{Attr, AttrSet, Coerce, Context, ContextElem, Error, Eval, Result, Span, Symbol, Value};
use ferrix_formats::{finish_parts, fixed_output_ca, CAHash, CaMethod, Derivation, DerivationParts, FinishedParts, StorePath};

use crate::context::{self, Parsed};
use crate::io::{store_io, StoreIO};
use crate::store::key;

/// Force a string that must not carry context (C++ `forceStringNoCtx`).
pub fn force_string_noctx(ev: &Eval, v: &Value) -> Result<String> {
    let s = ev.force_string(v)?;
    if s.has_context() {
        // the first element in C++ Nix's order (by text)
        let first = s.context.sorted_strs()[0];
        let p = first.trim_start_matches('=');
        let p = if let Some(r) = p.strip_prefix('!') { r.split_once('!').map(|x| x.1).unwrap_or(r) } else { p };
        return Err(Error::eval(format!(
            "the string '{}' is not allowed to refer to a store path (such as '{p}')",
            s.to_str_lossy()
        )));
    }
    Ok(s.to_str_lossy().into_owned())
}

const ENV: Coerce = Coerce { more: true, copy_to_store: true };

/// `builtins.derivationStrict { name = "x"; builder = "/bin/sh"; system = "x86_64-linux"; }`
/// → `{ drvPath = "/nix/store/…-x.drv"; out = "/nix/store/…-x"; }`
///
/// Forcing an attribute may instantiate the derivations it depends on,
/// recursively (a chain of 10 000 of them is 10 000 levels deep), so what
/// stays on the stack and the heap for each level is kept small: this one
/// frame, which forces every attribute, list element and `outPath` itself
/// ([`collect_attr`] is inlined into it), and a [`Collected`] of about a
/// hundred bytes whose values so far share one byte buffer; everything else
/// happens in functions that return before the next attribute is forced.
pub fn derivation_strict(ev: &Eval, a: &[Value], pos: Span) -> Result<Value> {
    let attrs = ev.force_attrs(&a[0])?;
    let mut c = start(ev, &attrs)?;
    for attr in attrs.sorted_by_name() {
        if let Err(e) = collect_attr(ev, &mut c, attr) {
            return Err(attr_error(e, attr, &c));
        }
    }
    finish(ev, c, pos)
}

/// What the attributes of a derivation give, collected one attribute at a
/// time (see [`derivation_strict`]).
struct Collected {
    name: String,
    name_pos: Span,
    structured: bool,
    ignore_nulls: bool,
    ctx: Context,
    /// The values so far, in attribute name order (the environment's): each
    /// `(what, end)`, its bytes ending at `end` in `bytes` (and starting where
    /// the one before ends). `what` is the [`Symbol`] of an environment
    /// variable, or [`ARG`], [`BUILDER`], [`SYSTEM`].
    parts: Vec<(u32, u32)>,
    bytes: Vec<u8>,
    /// What only some derivations have.
    rare: Option<Box<Rare>>,
}

/// A part that is an element of `args`.
const ARG: u32 = u32::MAX;
/// A part that is the builder or the system of a derivation with
/// structured attributes (otherwise they are environment variables).
const BUILDER: u32 = u32::MAX - 1;
const SYSTEM: u32 = u32::MAX - 2;

#[derive(Default)]
struct Rare {
    /// `__json` (structured attributes) so far.
    json: Vec<u8>,
    output_hash: Option<String>,
    output_hash_algo: Option<String>,
    hash_mode: Option<CaMethod>,
    /// `None`: `[ "out" ]`.
    outputs: Option<Vec<String>>,
}

impl Collected {
    /// The value collected since the last part becomes a part.
    #[inline(never)]
    fn push_part(&mut self, what: u32) -> Result<()> {
        let end = u32::try_from(self.bytes.len()).map_err(|_| Error::eval("derivation attributes of 4 GiB or more"))?;
        self.parts.push((what, end));
        Ok(())
    }

    /// The bytes of the value collected since the last part.
    fn pending(&self) -> &[u8] {
        let start = self.parts.last().map_or(0, |p| p.1 as usize);
        &self.bytes[start..]
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Default::default)
    }
}

/// The name (checked), and the flags that change how attributes are taken.
#[inline(never)]
fn start(ev: &Eval, attrs: &AttrSet) -> Result<Box<Collected>> {
    let name_attr = attrs.get_attr(Symbol::new("name")).ok_or_else(|| {
        Error::eval("attribute 'name' missing").while_("in the attrset passed as argument to builtins.derivationStrict", Span::NONE)
    })?;
    let drv_name = force_string_noctx(ev, &name_attr.value).map_err(|e| {
        e.while_("while evaluating the `name` attribute passed to builtins.derivationStrict", Span::NONE)
            .while_("while evaluating the derivation attribute 'name'", name_attr.pos)
    })?;
    let mut c = Box::new(Collected {
        name: drv_name,
        name_pos: name_attr.pos.into(),
        structured: false,
        ignore_nulls: false,
        ctx: Context::new(),
        parts: Vec::with_capacity(attrs.len() + 2),
        bytes: Vec::with_capacity(64),
        rare: None,
    });
    let flags = (|| {
        if let Some(ch) = c.name.chars().find(|ch| !(ch.is_ascii_alphanumeric() || "+-._?=".contains(*ch))) {
            return Err(Error::eval(format!(
                "invalid derivation name: name '{}' contains illegal character '{ch}'. Please pass a different 'name'.",
                c.name
            )));
        }
        let get_bool = |n: &str| -> Result<bool> {
            match attrs.get(Symbol::new(n)) {
                Some(v) => ev.force_bool(v).map_err(|e| {
                    e.while_(format!("while evaluating the `{n}` attribute passed to builtins.derivationStrict"), Span::NONE)
                }),
                None => Ok(false),
            }
        };
        Ok((get_bool("__structuredAttrs")?, get_bool("__ignoreNulls")?))
    })();
    match flags {
        Ok((structured, ignore_nulls)) => {
            c.structured = structured;
            c.ignore_nulls = ignore_nulls;
            Ok(c)
        }
        Err(e) => Err(drv_frame(e, &c)),
    }
}

/// C++ Nix's frame around every error of a derivation's evaluation.
#[cold]
#[inline(never)]
fn drv_frame(e: Error, c: &Collected) -> Error {
    name_frame(e, &c.name, c.name_pos)
}

#[cold]
#[inline(never)]
fn name_frame(e: Error, name: &str, name_pos: Span) -> Error {
    e.while_always(
        format!(
            "while evaluating derivation '{name}'\n  whose name attribute is located at {}",
            ferrix_eval::print::pos_string(name_pos)
        ),
        Span::NONE,
    )
}

/// An error of one attribute, with C++ Nix's frames.
#[cold]
#[inline(never)]
fn attr_error(e: Error, attr: &Attr, c: &Collected) -> Error {
    let e = e.while_(format!("while evaluating attribute '{}' of derivation '{}'", attr.name.as_str(), c.name), attr.pos);
    drv_frame(e, c)
}

/// One attribute into `c` (inlined into [`derivation_strict`]: what it
/// does besides forcing happens in functions that return before anything
/// else is forced, or in [`coerce_env`], whose frame is the only other one
/// a level of a chain of derivations keeps on the stack).
#[inline(always)]
fn collect_attr(ev: &Eval, c: &mut Collected, attr: &Attr) -> Result<()> {
    let key = attr.name.as_bytes();
    if key == b"__ignoreNulls" {
        return Ok(());
    }
    let v = ev.force(&attr.value)?;
    match classify(ev, c, key, &v, attr.pos.into())? {
        Kind::Done => Ok(()),
        Kind::Args(l) => coerce_args(ev, l, c),
        Kind::Env => {
            coerce_env(ev, &v, c)?;
            set_env(c, attr.name, key)
        }
    }
}

/// The elements of `args`, each a part (a frame of its own: arguments
/// seldom instantiate other derivations).
#[inline(never)]
fn coerce_args(ev: &Eval, l: &ferrix_eval::List, c: &mut Collected) -> Result<()> {
    for x in l.iter() {
        let r = match ev.force(x) {
            Ok(x) => coerce_env(ev, &x, c),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            return Err(arg_frame(e));
        }
        c.push_part(ARG)?;
    }
    Ok(())
}

/// What to do with a forced attribute value.
enum Kind<'a> {
    /// Nothing more (skipped, or taken already).
    Done,
    /// The elements of `args`.
    Args(&'a ferrix_eval::List),
    /// Coerce it into an environment variable.
    Env,
}

/// Everything about a forced attribute that forces nothing more than it
/// (or is rare): null skipping, experimental flags, `args` checks,
/// structured attributes.
#[inline(never)]
fn classify<'a>(ev: &Eval, c: &mut Collected, key: &[u8], v: &'a Value, pos: Span) -> Result<Kind<'a>> {
    if c.ignore_nulls && matches!(v, Value::Null) {
        return Ok(Kind::Done);
    }
    if matches!(key, b"__contentAddressed" | b"__impure") {
        experimental(ev, key, v)?;
        return Ok(Kind::Done);
    }
    if key == b"args" {
        return match v {
            Value::List(l) => Ok(Kind::Args(l)),
            _ => Err(not_a_list(ev, v)),
        };
    }
    if c.structured {
        collect_structured(ev, c, key, v)?;
        if matches!(
            key,
            b"allowedReferences" | b"allowedRequisites" | b"disallowedReferences" | b"disallowedRequisites" | b"maxSize" | b"maxClosureSize"
        ) {
            output_check_warning(c, key, pos);
        }
        return Ok(Kind::Done);
    }
    Ok(Kind::Env)
}

/// C++ Nix's warning that with structured attributes an output check set
/// at the top level does nothing (it belongs under `outputChecks`).
#[cold]
#[inline(never)]
fn output_check_warning(c: &Collected, key: &[u8], pos: Span) {
    let key = String::from_utf8_lossy(key);
    let w = Error::eval(format!(
        "'structuredAttrs' disables the effect of the derivation attribute '{key}'; use 'outputChecks.<output>.{key}' instead"
    ))
    .at(pos)
    .while_always(format!("while evaluating derivation '{}'", c.name), Span::NONE);
    eprintln!("{}", w.render_warning());
}

/// The error for an `args` that is not a list (from the evaluator, for
/// its text).
#[cold]
#[inline(never)]
fn not_a_list(ev: &Eval, v: &Value) -> Error {
    match ev.force_list(v) {
        Err(e) => e,
        Ok(_) => Error::eval("value is a list"),
    }
}

/// Coerce a forced value for the environment or the arguments (as
/// `Eval::coerce_to_string` with `more` and `copy_to_store`) onto
/// `c.bytes`. Lists and `outPath`s of strings are taken apart here: forcing
/// one of them may instantiate another derivation, recursively, so this
/// frame is kept small (everything but forcing is done by helpers).
#[inline(never)]
fn coerce_env(ev: &Eval, v: &Value, c: &mut Collected) -> Result<()> {
    let Value::List(l) = v else {
        return coerce_one(ev, v, c);
    };
    let n = l.len();
    for (i, x) in l.iter().enumerate() {
        let x = ev.force(x)?;
        coerce_one(ev, &x, c)?;
        // like C++ Nix: no separator after an empty list
        if i + 1 < n && !matches!(&x, Value::List(p) if p.is_empty()) {
            c.bytes.push(b' ');
        }
    }
    Ok(())
}

/// One forced value onto `c.bytes`: strings and attribute sets with an
/// `outPath` string here, anything else by the evaluator.
#[inline(always)]
fn coerce_one(ev: &Eval, v: &Value, c: &mut Collected) -> Result<()> {
    if let Value::String(s) = v {
        push_string(c, s);
        return Ok(());
    }
    let Some(attr) = out_path_attr(v) else {
        return coerce_other(ev, v, c);
    };
    match ev.force(&attr.value) {
        Ok(Value::String(ref s)) => {
            push_string(c, s);
            Ok(())
        }
        Ok(o) => coerce_other(ev, &o, c).map_err(|e| out_path_frame(e, attr)),
        Err(e) => Err(out_path_frame(e, attr)),
    }
}

/// The `outPath` of a set without `__toString`, which is coerced through it.
#[inline(never)]
fn out_path_attr(v: &Value) -> Option<&Attr> {
    match v {
        Value::Attrs(a) if a.get_attr(ferrix_eval::symbol::sym::to_string()).is_none() => {
            a.get_attr(ferrix_eval::symbol::sym::out_path())
        }
        _ => None,
    }
}

/// A string's bytes and context onto `c`.
#[inline(never)]
fn push_string(c: &mut Collected, s: &ferrix_eval::NixString) {
    s.collect_context(&mut c.ctx);
    c.bytes.extend_from_slice(&s.bytes);
}

/// Anything but a string or a set with a string `outPath`: by the evaluator.
#[inline(never)]
fn coerce_other(ev: &Eval, v: &Value, c: &mut Collected) -> Result<()> {
    let s = ev.coerce_to_string(v, &mut c.ctx, ENV)?;
    c.bytes.extend_from_slice(&s);
    Ok(())
}

#[cold]
fn out_path_frame(e: Error, attr: &Attr) -> Error {
    e.while_("while evaluating the `outPath` attribute", attr.pos)
}

fn set_outputs(ss: Vec<String>, outputs: &mut Option<Vec<String>>) -> Result<()> {
    let mut seen = BTreeSet::new();
    for o in &ss {
        if !seen.insert(o.as_str()) {
            return Err(Error::eval(format!("duplicate derivation output '{o}'")));
        }
        // `drv` and `drvPath` would clash with the result's `drvPath`
        if o == "drv" || o == "drvPath" {
            return Err(Error::eval(format!("invalid derivation output name '{o}'")));
        }
    }
    if ss.is_empty() {
        return Err(Error::eval("derivation cannot have an empty set of outputs"));
    }
    *outputs = Some(ss);
    Ok(())
}

fn hash_mode(s: &str) -> Result<CaMethod> {
    match s {
        "recursive" => Ok(CaMethod::Recursive),
        "flat" => Ok(CaMethod::Flat),
        "text" => Ok(CaMethod::Text),
        _ => Err(Error::eval(format!("invalid value '{s}' for 'outputHashMode' attribute"))),
    }
}

/// The value just collected becomes the environment variable `name`.
#[inline(never)]
fn set_env(c: &mut Collected, name: Symbol, key: &[u8]) -> Result<()> {
    if matches!(key, b"outputHash" | b"outputHashAlgo" | b"outputHashMode" | b"outputs") {
        special_attr(c, key)?;
    }
    c.push_part(name.0)
}

#[cold]
fn arg_frame(e: Error) -> Error {
    e.while_("while evaluating an element of the argument list", Span::NONE)
}

/// `__contentAddressed` and `__impure`: experimental features that are off.
#[inline(never)]
fn experimental(ev: &Eval, key: &[u8], value: &Value) -> Result<()> {
    if !ev.force_bool(value)? {
        return Ok(());
    }
    Err(Error::eval(if key == b"__impure" {
        "experimental Nix feature 'impure-derivations' is disabled; use '--extra-experimental-features impure-derivations' to override"
    } else {
        "experimental Nix feature 'ca-derivations' is disabled; use '--extra-experimental-features ca-derivations' to override"
    }))
}

/// The attributes with a meaning of their own, given as strings (the value
/// just collected).
#[cold]
#[inline(never)]
fn special_attr(c: &mut Collected, key: &[u8]) -> Result<()> {
    let st = String::from_utf8_lossy(c.pending()).into_owned();
    let rare = c.rare();
    match key {
        b"outputHash" => rare.output_hash = Some(st),
        b"outputHashAlgo" => rare.output_hash_algo = Some(st),
        b"outputHashMode" => rare.hash_mode = Some(hash_mode(&st)?),
        b"outputs" => {
            let ss = st.split([' ', '\t', '\n', '\r']).filter(|x| !x.is_empty()).map(String::from).collect();
            set_outputs(ss, &mut rare.outputs)?;
        }
        _ => {}
    }
    Ok(())
}

/// An attribute under `__structuredAttrs = true`: into the JSON object.
#[inline(never)]
fn collect_structured(ev: &Eval, c: &mut Collected, key: &[u8], value: &Value) -> Result<()> {
    if key == b"__structuredAttrs" {
        return Ok(());
    }
    let rare = c.rare.get_or_insert_with(Default::default);
    rare.json.push(if rare.json.is_empty() { b'{' } else { b',' });
    crate::json::string(&mut rare.json, key);
    rare.json.push(b':');
    crate::json::value(ev, value, &mut c.ctx, &mut rare.json)?;
    match key {
        b"builder" => {
            let s = ev.force_string(value)?;
            s.collect_context(&mut c.ctx);
            c.bytes.extend_from_slice(&s.bytes);
            c.push_part(BUILDER)?;
        }
        b"system" => {
            let s = force_string_noctx(ev, value)?;
            c.bytes.extend_from_slice(s.as_bytes());
            c.push_part(SYSTEM)?;
        }
        b"outputHash" => c.rare().output_hash = Some(force_string_noctx(ev, value)?),
        b"outputHashAlgo" => c.rare().output_hash_algo = Some(force_string_noctx(ev, value)?),
        b"outputHashMode" => c.rare().hash_mode = Some(hash_mode(&force_string_noctx(ev, value)?)?),
        b"outputs" => {
            let l = ev.force_list(value)?;
            let ss = l.iter().map(|x| force_string_noctx(ev, x)).collect::<Result<Vec<_>>>()?;
            set_outputs(ss, &mut c.rare().outputs)?;
        }
        _ => {}
    }
    Ok(())
}

/// Inputs from the context, the derivation, its paths and `.drv` file, and
/// the result set.
#[inline(never)]
// boxed on purpose: the collected inputs stay off the stack of the deep
// recursion that instantiates dependencies
#[allow(clippy::boxed_local)]
fn finish(ev: &Eval, mut c: Box<Collected>, pos: Span) -> Result<Value> {
    let name = std::mem::take(&mut c.name);
    let name_pos = c.name_pos;
    finish_inner(ev, *c, &name, pos).map_err(|e| name_frame(e, &name, name_pos))
}

fn finish_inner(ev: &Eval, c: Collected, drv_name: &str, pos: Span) -> Result<Value> {
    let Collected { structured, ctx, parts, bytes, rare, .. } = c;
    let Rare { mut json, output_hash, output_hash_algo, hash_mode, outputs } = rare.map(|r| *r).unwrap_or_default();
    // the strings stay where they were collected: the environment and the
    // arguments are slices of `bytes`
    let mut env: Vec<(&[u8], &[u8])> = Vec::with_capacity(parts.len() + 1);
    let mut args: Vec<&[u8]> = Vec::new();
    let (mut builder, mut system): (&[u8], &[u8]) = (b"", b"");
    let (builder_sym, system_sym) = (Symbol::new("builder").0, Symbol::new("system").0);
    let mut from = 0;
    for &(what, end) in &parts {
        let v = &bytes[from..end as usize];
        from = end as usize;
        match what {
            ARG => args.push(v),
            BUILDER => builder = v,
            SYSTEM => system = v,
            name => {
                if name == builder_sym {
                    builder = v;
                } else if name == system_sym {
                    system = v;
                }
                // in name order already
                env.push((Symbol(name).as_bytes(), v));
            }
        }
    }
    if structured {
        if json.is_empty() {
            json.push(b'{');
        }
        json.push(b'}');
        let k: &[u8] = b"__json";
        match env.binary_search_by(|e| e.0.cmp(k)) {
            Ok(i) => env[i].1 = &json,
            Err(i) => env.insert(i, (k, &json)),
        }
    }

    let io = store_io(ev)?;
    let dir = &io.store_dir;

    let mut input_drvs: BTreeMap<StorePath, BTreeSet<String>> = BTreeMap::new();
    let mut input_srcs: BTreeSet<StorePath> = BTreeSet::new();
    for e in ctx.iter() {
        match context::parse(dir, e)? {
            Parsed::Opaque(p) => {
                input_srcs.insert(p);
            }
            Parsed::Built { drv, output } => {
                input_drvs.entry(drv).or_default().insert(output);
            }
            Parsed::DrvDeep(drv) => {
                for p in closure(io, &drv)? {
                    if p.is_derivation() {
                        let d = get_drv(io, &p)?;
                        input_drvs.insert(p.clone(), d.outputs.keys().cloned().collect());
                    }
                    input_srcs.insert(p);
                }
            }
        }
    }

    if builder.is_empty() {
        return Err(Error::eval("required attribute 'builder' missing"));
    }
    if system.is_empty() {
        return Err(Error::eval("required attribute 'system' missing"));
    }
    if drv_name.ends_with(".drv") {
        return Err(Error::eval("derivation names are not allowed to end in '.drv'").at(pos));
    }

    let drv_outputs = if let Some(h) = &output_hash {
        let outputs = outputs.unwrap_or_else(|| vec!["out".into()]);
        if outputs.len() != 1 || outputs[0] != "out" {
            return Err(Error::eval("multiple outputs are not supported in fixed-output derivations").at(pos));
        }
        let mode = hash_mode.unwrap_or(CaMethod::Flat);
        let mode_s = match mode {
            CaMethod::Recursive => "recursive",
            _ => "flat",
        };
        let ca = fixed_output_ca(h, output_hash_algo.as_deref(), Some(mode_s)).map_err(|e| Error::eval(e.to_string()).at(pos))?;
        Derivation::fixed_output(CAHash::new(mode, ca.hash)).outputs
    } else {
        match &outputs {
            Some(o) => Derivation::with_outputs(o.iter().map(|s| s.as_str())).outputs,
            None => Derivation::with_outputs(["out"]).outputs,
        }
    };
    let drv = DerivationParts {
        outputs: &drv_outputs,
        input_drvs: &input_drvs,
        input_srcs: &input_srcs,
        system,
        builder,
        args: &args,
        env: &env,
    };
    let finished = with_modulo_hashes(io, |h| finish_parts(&drv, dir, drv_name, h))?.map_err(|e| Error::eval(e.to_string()).at(pos))?;
    drop(env);
    drop(args);
    drop(json);
    drop(bytes);
    let FinishedParts { drv_path, mut aterm, modulo_hash, outputs: out_paths } = finished;
    let drv_path = &drv_path;
    let drv_key = key(drv_path);
    if !io.known.borrow().modulo.get(&drv_key).is_some_and(|m| m.1) {
        // the `.drv` bytes and references go to the sink as they are (the
        // bytes without the room `finish_parts` left for them: the sink
        // may hold them a while)
        aterm.shrink_to_fit();
        let mut refs = input_srcs;
        refs.extend(input_drvs.into_keys());
        io.sink.add_derivation(drv_path, aterm, refs).map_err(Error::eval)?;
    }
    // Its modulo hash is needed as soon as another derivation depends on
    // it; `finish_parts` computed it from the `.drv` bytes.
    io.known.borrow_mut().modulo.insert(drv_key, (modulo_hash, true));

    // the context texts (`=<drv>`, `!<output>!<drv>`) built in one buffer
    let mut text = String::with_capacity(dir.as_str().len() + drv_path.name().len() + 48);
    text.push('=');
    dir.push_display(&mut text, drv_path);
    let drv_path_s = &text[1..];
    let mut pairs = Vec::with_capacity(1 + drv_outputs.len());
    pairs.push((
        ferrix_eval::symbol::sym::drv_path(),
        Value::string_ctx(drv_path_s.as_bytes(), ContextElem::new(&text).into()),
    ));
    let mut built = String::with_capacity(text.len() + 16);
    for (o, (path, _)) in drv_outputs.keys().zip(&out_paths) {
        let mut p = String::new();
        if let Some(op) = path {
            dir.push_display(&mut p, op);
        }
        built.clear();
        built.push('!');
        built.push_str(o);
        built.push('!');
        built.push_str(drv_path_s);
        pairs.push((Symbol::new(o), Value::string_ctx(p.into_bytes(), ContextElem::new(&built).into())));
    }
    Ok(Value::attrs_from(pairs))
}

/// Run `f` with a lookup of input derivations' modulo hashes (computed and
/// cached as needed); an error from a lookup wins over `f`'s own result.
fn with_modulo_hashes<T>(io: &StoreIO, f: impl FnOnce(&mut dyn FnMut(&StorePath) -> Option<[u8; 32]>) -> T) -> Result<T> {
    let mut err = None;
    let r = f(&mut |p: &StorePath| match modulo_hash(io, p) {
        Ok(h) => Some(h),
        Err(e) => {
            err.get_or_insert(e);
            None
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(r),
    }
}

/// A derivation by path: one made in this evaluation (read back from the
/// sink), or one read from the host's store directory (kept).
pub fn get_drv(io: &StoreIO, p: &StorePath) -> Result<Derivation> {
    let ps = io.store_dir.display(p);
    let parse = |a: &[u8]| Derivation::from_aterm(a, &io.store_dir).map_err(|e| Error::eval(format!("parsing derivation '{ps}': {e}")));
    if let Some(a) = io.known.borrow().drvs.get(p) {
        return parse(a);
    }
    if io.known.borrow().modulo.get(&key(p)).is_some_and(|m| m.1)
        && let Some(r) = io.sink.read_file(p, "")
    {
        return parse(&r.map_err(|e| Error::eval(format!("reading derivation '{ps}': {e}")))?);
    }
    let bytes = std::fs::read(&ps).map_err(|e| Error::eval(format!("reading derivation '{ps}': {e}")))?;
    let d = parse(&bytes)?;
    let refs: BTreeSet<StorePath> = d.input_srcs.iter().chain(d.input_drvs.keys()).cloned().collect();
    let mut known = io.known.borrow_mut();
    known.refs.insert(p.clone(), refs);
    known.drvs.insert(p.clone(), bytes.into());
    Ok(d)
}

/// `hashDerivationModulo(drv, false)` of a derivation by path, cached.
pub fn modulo_hash(io: &StoreIO, p: &StorePath) -> Result<[u8; 32]> {
    let k = key(p);
    if let Some(&(h, _)) = io.known.borrow().modulo.get(&k) {
        return Ok(h);
    }
    let d = get_drv(io, p)?;
    let h = with_modulo_hashes(io, |h| d.hash_modulo(&io.store_dir, false, h))?.map_err(|e| Error::eval(e.to_string()))?;
    io.known.borrow_mut().modulo.entry(k).or_insert((h, false));
    Ok(h)
}

/// References of a store path: known from this evaluation, or (for `.drv`
/// files) from the derivation; other unknown paths have none.
fn references(io: &StoreIO, p: &StorePath) -> Result<BTreeSet<StorePath>> {
    if let Some(r) = io.known.borrow().refs.get(p) {
        return Ok(r.clone());
    }
    if p.is_derivation() {
        let d = get_drv(io, p)?;
        return Ok(d.input_srcs.iter().chain(d.input_drvs.keys()).cloned().collect());
    }
    Ok(BTreeSet::new())
}

/// The closure of a store path under references (including itself).
pub fn closure(io: &StoreIO, start: &StorePath) -> Result<BTreeSet<StorePath>> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![start.clone()];
    while let Some(p) = todo.pop() {
        if !seen.insert(p.clone()) {
            continue;
        }
        for r in references(io, &p)? {
            if !seen.contains(&r) {
                todo.push(r);
            }
        }
    }
    Ok(seen)
}

/// `builtins.placeholder "out"` → `"/1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9"`
pub fn placeholder(ev: &Eval, a: &[Value], _: Span) -> Result<Value> {
    let o = force_string_noctx(ev, &a[0])?;
    Ok(Value::str(&ferrix_formats::hash_placeholder(&o)))
}
